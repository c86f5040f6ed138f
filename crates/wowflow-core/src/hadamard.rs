//! Fast Walsh–Hadamard transforms of eight points at a time: the kernels behind the
//! structured directions ([`crate::directions::DirectionSampler::Structured`]).
//!
//! A structured block `M = H·D₃·H·D₂·H·D₁` (docs/math.md §3) is applied to a point in three
//! transforms of size `d'` instead of a `d' × d` matrix product. The transforms here work on
//! a *batch* of [`LANES`] points laid out element-major (`buf[j]` holds coordinate `j` of all
//! eight points), so every butterfly is a plain vertical add/subtract of two 8-wide vectors:
//! no shuffles inside the transform, one AVX2 instruction per butterfly half. Only the
//! transposes between this layout and the point-major clouds need shuffles (an 8 × 8 register
//! transpose on AVX2, `hadamard/avx2.rs`).
//!
//! The transform is written once as portable Rust on `[f32; 8]` arrays; it is compiled twice,
//! for the baseline target and inside `#[target_feature(enable = "avx2")]` functions, and the
//! CPU is checked once per call ([`Isa::detect`]). Both give the same bits: each output is
//! the same sequence of `f32` additions in either build.
//!
//! Levels are grouped three at a time (radix 8: eight vectors loaded, 12 butterflies in
//! registers, eight stored), which makes the transform bound by arithmetic rather than by the
//! loads and stores of one pass per level.

#[cfg(target_arch = "x86_64")]
mod avx2;

/// Points per batch: one AVX2 register of `f32`.
pub(crate) const LANES: usize = 8;
/// Coordinate `j` of the batch's eight points.
pub(crate) type Lane = [f32; LANES];

/// Which build of the kernels runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Baseline x86-64 (SSE2) or any other architecture.
    Portable,
    /// x86-64 with AVX2 (checked at run time).
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Isa {
    /// The fastest build this CPU runs.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Isa::Avx2;
        }
        Isa::Portable
    }
}

/// The three scaled sign diagonals of one block, each `d'` values `±1/√d'` (the
/// normalisation of the three Hadamard matrices is folded into them, which also keeps the
/// magnitudes of intermediate values those of the input).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockSigns<'a> {
    pub d1: &'a [f32],
    pub d2: &'a [f32],
    pub d3: &'a [f32],
}

/// `buf ← H·D₃·H·D₂·H·D₁ · buf` (`H` with entries ±1), `buf` of `d'` lanes.
pub(crate) fn forward(isa: Isa, buf: &mut [Lane], signs: BlockSigns) {
    match isa {
        Isa::Portable => forward_body(buf, signs),
        // SAFETY: `Isa::Avx2` is only constructed after the CPU reported AVX2.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { forward_avx2(buf, signs) },
    }
}

/// `buf ← D₁·H·D₂·H·D₃·H · buf`: the transpose of [`forward`] (`H` is symmetric).
pub(crate) fn backward(isa: Isa, buf: &mut [Lane], signs: BlockSigns) {
    match isa {
        Isa::Portable => backward_body(buf, signs),
        // SAFETY: as in `forward`.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { backward_avx2(buf, signs) },
    }
}

/// `buf[j][p] = points[p·d + j]` for the `w ≤ 8` rows of `points` (`w × d`), zero in the
/// missing lanes and for `j ≥ d`.
pub(crate) fn gather(isa: Isa, points: &[f32], d: usize, w: usize, buf: &mut [Lane]) {
    debug_assert!(w <= LANES && points.len() == w * d && buf.len() >= d);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if w == LANES => {
            // SAFETY: AVX2 checked; `points` holds 8 rows of `d` values, `buf` ≥ d lanes.
            unsafe { avx2::gather(points, d, buf) }
        }
        _ => {
            for (j, lane) in buf[..d].iter_mut().enumerate() {
                for (p, v) in lane.iter_mut().enumerate() {
                    *v = if p < w { points[p * d + j] } else { 0.0 };
                }
            }
        }
    }
    buf[d..].fill([0.0; LANES]);
}

/// `out[p·d + j] = buf[j][p]` (or `+=` when `accumulate`) for the `w` rows of `out`
/// (`w × d`).
pub(crate) fn scatter(
    isa: Isa,
    buf: &[Lane],
    d: usize,
    w: usize,
    out: &mut [f32],
    accumulate: bool,
) {
    debug_assert!(w <= LANES && out.len() == w * d && buf.len() >= d);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if w == LANES => {
            // SAFETY: AVX2 checked; `out` holds 8 rows of `d` values, `buf` ≥ d lanes.
            unsafe { avx2::scatter(buf, d, out, accumulate) }
        }
        _ => {
            for (p, row) in out.chunks_exact_mut(d).enumerate() {
                for (o, lane) in row.iter_mut().zip(buf) {
                    *o = if accumulate { *o + lane[p] } else { lane[p] };
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn forward_avx2(buf: &mut [Lane], signs: BlockSigns) {
    forward_body(buf, signs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn backward_avx2(buf: &mut [Lane], signs: BlockSigns) {
    backward_body(buf, signs)
}

#[inline(always)]
fn forward_body(buf: &mut [Lane], s: BlockSigns) {
    fwht(buf, Some(s.d1));
    fwht(buf, Some(s.d2));
    fwht(buf, Some(s.d3));
}

#[inline(always)]
fn backward_body(buf: &mut [Lane], s: BlockSigns) {
    fwht(buf, None);
    fwht(buf, Some(s.d3));
    fwht(buf, Some(s.d2));
    scale_by(buf, s.d1);
}

#[inline(always)]
fn scale_by(buf: &mut [Lane], s: &[f32]) {
    for (lane, &f) in buf.iter_mut().zip(s) {
        for v in lane.iter_mut() {
            *v *= f;
        }
    }
}

/// `buf ← H · diag(pre) · buf`, unnormalised (`H` of ±1 entries); `pre` is applied while
/// the first pass loads `buf`, so it costs no sweep of its own.
#[inline(always)]
fn fwht(buf: &mut [Lane], pre: Option<&[f32]>) {
    let n = buf.len();
    debug_assert!(n.is_power_of_two() && pre.is_none_or(|p| p.len() == n));
    let levels = n.trailing_zeros() as usize;
    if levels == 0 {
        if let Some(pre) = pre {
            scale_by(buf, pre);
        }
        return;
    }
    let (mut h, mut done, mut pre) = (1, 0, pre);
    while done < levels {
        let radix = (levels - done).min(3);
        match radix {
            3 => pass::<8>(buf, h, pre),
            2 => pass::<4>(buf, h, pre),
            _ => pass::<2>(buf, h, pre),
        }
        pre = None;
        h <<= radix;
        done += radix;
    }
}

/// One pass of `log2 R` butterfly levels at strides `h, 2h, …, (R/2)h`: the `R` vectors
/// `buf[j + k·h]` of each group stay in registers across the levels. `pre` (only in a first
/// pass, where `h = 1`) multiplies each vector as it is loaded.
#[inline(always)]
fn pass<const R: usize>(buf: &mut [Lane], h: usize, pre: Option<&[f32]>) {
    debug_assert!(pre.is_none() || h == 1);
    for (g, group) in buf.chunks_exact_mut(R * h).enumerate() {
        for j in 0..h {
            let mut v = [[0.0f32; LANES]; R];
            for (k, vk) in v.iter_mut().enumerate() {
                *vk = group[j + k * h];
            }
            if let Some(pre) = pre {
                let f = &pre[g * R..g * R + R];
                for k in 0..R {
                    for x in v[k].iter_mut() {
                        *x *= f[k];
                    }
                }
            }
            let mut stride = 1;
            while stride < R {
                for k in 0..R {
                    if k & stride == 0 {
                        let (a, b) = (v[k], v[k + stride]);
                        for p in 0..LANES {
                            v[k][p] = a[p] + b[p];
                            v[k + stride][p] = a[p] - b[p];
                        }
                    }
                }
                stride *= 2;
            }
            for (k, vk) in v.iter().enumerate() {
                group[j + k * h] = *vk;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_batch(rng: &mut ChaCha8Rng, n: usize) -> Vec<Lane> {
        (0..n)
            .map(|_| std::array::from_fn(|_| rng.random_range(-1.0..1.0)))
            .collect()
    }

    fn signs(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        let s = 1.0 / (n as f32).sqrt();
        (0..3 * n)
            .map(|_| if rng.random::<bool>() { s } else { -s })
            .collect()
    }

    fn block(s: &[f32]) -> BlockSigns<'_> {
        let n = s.len() / 3;
        BlockSigns {
            d1: &s[..n],
            d2: &s[n..2 * n],
            d3: &s[2 * n..],
        }
    }

    /// `H D₃ H D₂ H D₁` as a dense f64 matrix, `H[i][j] = (−1)^popcount(i & j)`.
    fn dense_block(s: &[f32]) -> Vec<Vec<f64>> {
        let n = s.len() / 3;
        let h = |i: usize, j: usize| {
            if (i & j).count_ones().is_multiple_of(2) {
                1.0
            } else {
                -1.0
            }
        };
        let mut m: Vec<Vec<f64>> = (0..n)
            .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
            .collect();
        for k in 0..3 {
            let d = &s[k * n..(k + 1) * n];
            m = (0..n)
                .map(|i| {
                    (0..n)
                        .map(|j| (0..n).map(|t| h(i, t) * d[t] as f64 * m[t][j]).sum())
                        .collect()
                })
                .collect();
        }
        m
    }

    #[test]
    fn forward_is_the_dense_block_and_backward_its_transpose() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n in [1usize, 2, 4, 8, 16, 32, 64, 128] {
            let s = signs(&mut rng, n);
            let m = dense_block(&s);
            let x = random_batch(&mut rng, n);
            for (dir, transposed) in [("forward", false), ("backward", true)] {
                let mut got = x.clone();
                if transposed {
                    backward(Isa::Portable, &mut got, block(&s));
                } else {
                    forward(Isa::Portable, &mut got, block(&s));
                }
                for i in 0..n {
                    for p in 0..LANES {
                        let want: f64 = (0..n)
                            .map(|j| {
                                let mij = if transposed { m[j][i] } else { m[i][j] };
                                mij * x[j][p] as f64
                            })
                            .sum();
                        assert!(
                            (got[i][p] as f64 - want).abs() < 1e-5,
                            "{dir} n={n} ({i},{p}): {} vs {want}",
                            got[i][p]
                        );
                    }
                }
            }
            // An orthogonal matrix: the scaled signs make H·D·H·D·H·D exactly orthonormal.
            for i in 0..n {
                for j in 0..n {
                    let dot: f64 = (0..n).map(|t| m[i][t] * m[j][t]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-5, "n={n} rows {i},{j}: {dot}");
                }
            }
        }
    }

    #[test]
    fn gather_and_scatter_move_rows_to_lanes_and_back() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let isas = [Some(Isa::Portable), Some(Isa::detect())];
        for isa in isas.into_iter().flatten() {
            for (d, w) in [(1usize, 8usize), (7, 8), (16, 8), (29, 8), (29, 3), (64, 1)] {
                let pts: Vec<f32> = (0..w * d).map(|_| rng.random_range(-1.0..1.0)).collect();
                let mut buf = vec![[9.0f32; LANES]; d.next_power_of_two() * 2];
                gather(isa, &pts, d, w, &mut buf);
                for (j, lane) in buf.iter().enumerate() {
                    for (p, &v) in lane.iter().enumerate() {
                        let want = if j < d && p < w { pts[p * d + j] } else { 0.0 };
                        assert_eq!(v, want, "{isa:?} d={d} w={w} ({j},{p})");
                    }
                }
                let mut out = vec![0.5f32; w * d];
                scatter(isa, &buf, d, w, &mut out, false);
                assert_eq!(out, pts);
                scatter(isa, &buf, d, w, &mut out, true);
                let doubled: Vec<f32> = pts.iter().map(|v| v + v).collect();
                assert_eq!(out, doubled);
            }
        }
    }

    #[test]
    fn every_build_gives_the_same_bits() {
        let isa = Isa::detect();
        if isa == Isa::Portable {
            eprintln!("no AVX2 on this CPU: only the portable build exists here");
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for n in [2usize, 8, 32, 1024] {
            let s = signs(&mut rng, n);
            let x = random_batch(&mut rng, n);
            let (mut a, mut b) = (x.clone(), x.clone());
            forward(Isa::Portable, &mut a, block(&s));
            forward(isa, &mut b, block(&s));
            assert_eq!(a, b, "forward n={n}");
            backward(Isa::Portable, &mut a, block(&s));
            backward(isa, &mut b, block(&s));
            assert_eq!(a, b, "backward n={n}");
        }
    }
}

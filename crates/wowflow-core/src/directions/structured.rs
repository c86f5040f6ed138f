//! Structured random directions: blocks of rows of `M = H·D₃·H·D₂·H·D₁` (docs/math.md §3).
//!
//! `H` is the Walsh–Hadamard matrix of size `d'` (the next power of two ≥ `d`, at least
//! [`MIN_TRANSFORM`]) normalised to
//! be orthogonal, `Dᵢ` are independent random ±1 diagonals, so `M` is an orthogonal matrix
//! whose rows are close to uniform on the sphere (Yu et al., "Orthogonal Random Features",
//! NeurIPS 2016). A point is zero-padded to `d'` and multiplied by `M` with three fast
//! transforms ([`crate::hadamard`]): `O(d' log d')` per block instead of `O(L·d)`.
//!
//! Zero-padding makes the effective directions the rows of `M` restricted to the first `d`
//! columns, which are not unit vectors: for `d = 784`, `d' = 1024` their squared norms
//! scatter around `d/d' ≈ 0.77`. Each direction is therefore divided by its exact norm
//! (computed once per draw, `L` transposed transforms), which makes every direction a unit
//! vector whose law is that of a uniformly random row restricted and renormalised — uniform
//! on `S^{d−1}` if `M` were Haar-distributed. The rows are then only nearly orthogonal
//! (inner products about `√(d'−d)/d'`, against `1/√d` for independent directions).
//!
//! `L` directions take `⌈L/d'⌉` independent blocks, the last one truncated.

use crate::error::{invalid, Result};
use crate::hadamard::{backward, forward, gather, scatter, BlockSigns, Isa, Lane, LANES};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Smallest transform size `d'`: data of fewer than 33 dimensions are zero-padded to 64.
///
/// Blocks of `d' ≤ 16` mix too few coordinates: their rows take few distinct values and the
/// SW₂² estimate is measurably biased (−0.17 % at `d = d' = 16`, −0.5 % at 4, −0.4 % at 2,
/// 5 to 350 standard errors; `examples/structured_bias.rs`, docs/math.md §3). A floor of 32
/// is not enough for `d ≤ 4` (+3.4 % at `d = 2`); from 64 on no bias is detectable at any `d`
/// (|z| ≤ 2.1 over 4 000 draws, |bias| ≤ 0.15 %) and the variance stays below the Gaussian
/// family's. At `d ≥ 33` the floor changes nothing.
pub const MIN_TRANSFORM: usize = 64;

/// Points per parallel task (eight batches of eight).
const CHUNK: usize = 64;

/// One draw of the structured family.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Structured {
    count: usize,
    dim: usize,
    padded: usize,
    /// Per block, `D₁, D₂, D₃` one after the other, each `d'` values `±1/√d'`.
    signs: Vec<f32>,
    /// `1/‖M_l[..d]‖` per direction.
    inv_norms: Vec<f32>,
    /// Blocks drawn again because a restricted row was zero.
    redraws: usize,
}

impl Structured {
    /// Draws `count` directions in `R^dim` from `seed`.
    pub(super) fn draw(count: usize, dim: usize, seed: u64) -> Result<Self> {
        if dim == 0 {
            return Err(crate::error::CoreError::ZeroDimension);
        }
        if count == 0 {
            return Err(invalid("directions", "need at least one direction (L ≥ 1)"));
        }
        let padded = dim.next_power_of_two().max(MIN_TRANSFORM);
        let blocks = count.div_ceil(padded);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut s = Structured {
            count,
            dim,
            padded,
            signs: vec![0.0; blocks * 3 * padded],
            inv_norms: vec![0.0; count],
            redraws: 0,
        };
        let scale = 1.0 / (padded as f32).sqrt();
        for b in 0..blocks {
            // A block whose restricted rows include a zero row has no direction there; it is
            // redrawn (possible when d ≪ d': at d = 1 a row's first entry is 0 with
            // probability about 1/8 at d' = 64; at d ≥ 33 the restricted squared norms
            // concentrate at d/d').
            loop {
                let block = &mut s.signs[b * 3 * padded..(b + 1) * 3 * padded];
                for chunk in block.chunks_mut(64) {
                    let bits = rng.next_u64();
                    for (i, v) in chunk.iter_mut().enumerate() {
                        *v = if bits >> i & 1 == 1 { scale } else { -scale };
                    }
                }
                let norms = s.block_sq_norms(b);
                if norms.iter().all(|&n| n > 0.0) {
                    let first = b * padded;
                    for (inv, n) in s.inv_norms[first..first + norms.len()]
                        .iter_mut()
                        .zip(norms)
                    {
                        *inv = (1.0 / n.sqrt()) as f32;
                    }
                    break;
                }
                s.redraws += 1;
                if s.redraws > 1000 {
                    return Err(invalid(
                        "directions",
                        format!("no structured block in R^{dim} without a zero row in 1000 draws"),
                    ));
                }
            }
        }
        Ok(s)
    }

    pub(super) fn count(&self) -> usize {
        self.count
    }
    pub(super) fn dim(&self) -> usize {
        self.dim
    }
    fn blocks(&self) -> usize {
        self.count.div_ceil(self.padded)
    }
    /// Directions of block `b` (all `d'` but in the last block).
    fn rows_in(&self, b: usize) -> usize {
        self.padded.min(self.count - b * self.padded)
    }
    fn block_signs(&self, b: usize) -> BlockSigns<'_> {
        let n = self.padded;
        let s = &self.signs[b * 3 * n..(b + 1) * 3 * n];
        BlockSigns {
            d1: &s[..n],
            d2: &s[n..2 * n],
            d3: &s[2 * n..],
        }
    }

    /// Runs `f(l0, w, buf)` on the rows `l0..l0+w` of block `b`, eight at a time, with
    /// `buf[j][p] = M[l0 + p, j]` (the rows of `M`, `Mᵀ e_l`, by the transposed transform).
    fn for_rows(&self, b: usize, isa: Isa, mut f: impl FnMut(usize, usize, &[Lane])) {
        let mut buf = vec![[0.0f32; LANES]; self.padded];
        let rows = self.rows_in(b);
        for l0 in (0..rows).step_by(LANES) {
            let w = LANES.min(rows - l0);
            buf.fill([0.0; LANES]);
            for p in 0..w {
                buf[l0 + p][p] = 1.0;
            }
            backward(isa, &mut buf, self.block_signs(b));
            f(l0, w, &buf);
        }
    }

    /// `‖M_l[..d]‖²` for the rows of block `b`, in `f64`.
    fn block_sq_norms(&self, b: usize) -> Vec<f64> {
        let mut out = vec![0.0f64; self.rows_in(b)];
        self.for_rows(b, Isa::detect(), |l0, w, buf| {
            for (p, o) in out[l0..l0 + w].iter_mut().enumerate() {
                *o = buf[..self.dim].iter().map(|v| (v[p] as f64).powi(2)).sum();
            }
        });
        out
    }

    /// The `L × d` matrix of unit directions.
    pub(super) fn to_dense(&self) -> Vec<f32> {
        let d = self.dim;
        let mut out = vec![0.0f32; self.count * d];
        let isa = Isa::detect();
        for b in 0..self.blocks() {
            let first = b * self.padded;
            self.for_rows(b, isa, |l0, w, buf| {
                for p in 0..w {
                    let l = first + l0 + p;
                    let inv = self.inv_norms[l];
                    for (o, v) in out[l * d..(l + 1) * d].iter_mut().zip(buf) {
                        *o = v[p] * inv;
                    }
                }
            });
        }
        out
    }

    /// `out (L × n)`: `out[l, i] = θ_l · x_i`.
    pub(super) fn project(&self, points: &[f32], n: usize, out: &mut [f32]) {
        let (d, dp) = (self.dim, self.padded);
        let isa = Isa::detect();
        let target = SharedOut(out.as_mut_ptr());
        points.par_chunks(CHUNK * d).enumerate().for_each_init(
            || vec![[0.0f32; LANES]; dp],
            |buf, (task, rows)| {
                for (batch, pts) in rows.chunks(LANES * d).enumerate() {
                    let (i0, w) = (task * CHUNK + batch * LANES, pts.len() / d);
                    for b in 0..self.blocks() {
                        gather(isa, pts, d, w, buf);
                        forward(isa, buf, self.block_signs(b));
                        let first = b * dp;
                        for (l, lane) in buf[..self.rows_in(b)].iter().enumerate() {
                            let inv = self.inv_norms[first + l];
                            // SAFETY: row `first + l < L` and columns `i0..i0+w ≤ n` of
                            // the `L × n` output; every task writes only the columns of
                            // its own points, so no two tasks touch the same element.
                            unsafe {
                                let at = target.get().add((first + l) * n + i0);
                                if w == LANES {
                                    // One unaligned 8-wide store instead of eight scalar ones.
                                    let row: Lane = std::array::from_fn(|p| lane[p] * inv);
                                    at.cast::<Lane>().write_unaligned(row);
                                } else {
                                    for (p, &v) in lane[..w].iter().enumerate() {
                                        *at.add(p) = v * inv;
                                    }
                                }
                            }
                        }
                    }
                }
            },
        );
    }

    /// `out (n × d) = scale · Σ_l derivs[l, i] θ_l`.
    pub(super) fn back_project(&self, derivs: &[f32], n: usize, scale: f32, out: &mut [f32]) {
        let (d, dp) = (self.dim, self.padded);
        let isa = Isa::detect();
        out.par_chunks_mut(CHUNK * d).enumerate().for_each_init(
            || vec![[0.0f32; LANES]; dp],
            |buf, (task, rows)| {
                for (batch, g) in rows.chunks_mut(LANES * d).enumerate() {
                    let (i0, w) = (task * CHUNK + batch * LANES, g.len() / d);
                    for b in 0..self.blocks() {
                        let (first, rows_b) = (b * dp, self.rows_in(b));
                        for (l, lane) in buf.iter_mut().enumerate() {
                            if l >= rows_b {
                                *lane = [0.0; LANES];
                                continue;
                            }
                            let f = scale * self.inv_norms[first + l];
                            let src = &derivs[(first + l) * n + i0..][..w];
                            match <&Lane>::try_from(src) {
                                // A full batch: one 8-wide load and multiply.
                                Ok(src) => *lane = std::array::from_fn(|p| src[p] * f),
                                Err(_) => {
                                    *lane = [0.0; LANES];
                                    for (x, &v) in lane.iter_mut().zip(src) {
                                        *x = v * f;
                                    }
                                }
                            }
                        }
                        backward(isa, buf, self.block_signs(b));
                        scatter(isa, buf, d, w, g, b > 0);
                    }
                }
            },
        );
    }
}

/// The projection output shared by the tasks that write disjoint columns of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

impl SharedOut {
    /// Through a method, so closures capture the `Sync` wrapper and not its raw field.
    fn get(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: tasks write disjoint elements (see `Structured::project`), and the pointer does not
// outlive the borrow of the output it was made from (the parallel loop ends before return).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

#[cfg(test)]
mod tests {
    use super::super::tests::dot;
    use super::*;
    use rand::Rng;

    #[test]
    fn directions_are_unit_and_nearly_orthogonal_within_a_block() {
        // d = 100 pads to d' = 128; L = 300 takes three blocks, the last one truncated.
        let (l, d) = (300, 100);
        let s = Structured::draw(l, d, 7).unwrap();
        let dense = s.to_dense();
        let row = |i: usize| &dense[i * d..(i + 1) * d];
        let mut worst = 0.0f64;
        for i in 0..l {
            assert!((dot(row(i), row(i)) - 1.0).abs() < 1e-5, "row {i}");
            for j in (i + 1)..l {
                if i / 128 == j / 128 {
                    worst = worst.max(dot(row(i), row(j)).abs());
                }
            }
        }
        // Restricted rows of an orthogonal matrix: |θ_i·θ_j| = |Σ_{k≥d} M_ik M_jk| / (n_i n_j),
        // about √(d'−d)/d' ≈ 0.04 typically; i.i.d. directions would reach ~4/√d = 0.4 here.
        assert!(worst < 0.3, "largest inner product within a block {worst}");
        // At d = d' the block is exactly orthonormal.
        let s = Structured::draw(64, 64, 8).unwrap();
        let dense = s.to_dense();
        for i in 0..64 {
            for j in 0..64 {
                let want = if i == j { 1.0 } else { 0.0 };
                let got = dot(&dense[i * 64..][..64], &dense[j * 64..][..64]);
                assert!((got - want).abs() < 1e-5, "{i} {j}: {got}");
            }
        }
    }

    #[test]
    fn second_moments_are_isotropic() {
        // E[θθᵀ] = I/d for uniform directions; restriction to d < d' coordinates and the
        // renormalisation must keep it (d = 100 pads to 128). 300 draws of 128 directions:
        // d·E[θ_j²] has a standard error of about 0.01 per coordinate.
        let (l, d, draws) = (128usize, 100usize, 300u64);
        let mut diag = vec![0.0f64; d];
        let mut cross = 0.0f64;
        for seed in 0..draws {
            let dense = Structured::draw(l, d, seed).unwrap().to_dense();
            for row in dense.chunks(d) {
                for (s, &v) in diag.iter_mut().zip(row) {
                    *s += (v as f64).powi(2);
                }
                cross += row[0] as f64 * row[d - 1] as f64;
            }
        }
        let n = (l as u64 * draws) as f64;
        for (j, s) in diag.iter().enumerate() {
            let v = s / n * d as f64;
            assert!((v - 1.0).abs() < 0.06, "d·E[θ_{j}²] = {v}");
        }
        let c = cross / n * d as f64;
        assert!(c.abs() < 0.06, "d·E[θ_0 θ_(d-1)] = {c}");
    }

    #[test]
    fn fast_products_equal_the_dense_matrix_products() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for (l, d, n) in [(300usize, 100usize, 77usize), (20, 16, 9), (5, 784, 130)] {
            let s = Structured::draw(l, d, 11).unwrap();
            let theta = s.to_dense();
            let x: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut fast = vec![0.0f32; l * n];
            s.project(&x, n, &mut fast);
            let mut slow = vec![0.0f32; l * n];
            crate::sliced::project(&x, n, d, &theta, l, &mut slow);
            for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                assert!(
                    (a - b).abs() < 1e-4,
                    "project L={l} d={d} n={n} [{i}]: {a} vs {b}"
                );
            }
            let derivs: Vec<f32> = (0..l * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut fast = vec![7.0f32; n * d];
            s.back_project(&derivs, n, 0.25, &mut fast);
            let mut slow = vec![0.0f32; n * d];
            crate::sliced::back_project(&derivs, n, &theta, l, d, 0.25, &mut slow);
            for (i, (a, b)) in fast.iter().zip(&slow).enumerate() {
                assert!(
                    (a - b).abs() < 1e-4,
                    "back L={l} d={d} n={n} [{i}]: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn seeded_and_defined_in_every_dimension() {
        assert_eq!(
            Structured::draw(50, 30, 1).unwrap(),
            Structured::draw(50, 30, 1).unwrap()
        );
        assert_ne!(
            Structured::draw(50, 30, 1).unwrap(),
            Structured::draw(50, 30, 2).unwrap()
        );
        assert!(Structured::draw(0, 30, 1).is_err());
        assert!(Structured::draw(5, 0, 1).is_err());
        // Small d pads to MIN_TRANSFORM: unit directions, a zero restricted row redrawn.
        let mut redraws = 0;
        for d in 1..=8 {
            for seed in 0..20 {
                let s = Structured::draw(150, d, seed).unwrap();
                assert_eq!(s.padded, MIN_TRANSFORM);
                redraws += s.redraws;
                let dense = s.to_dense();
                for row in dense.chunks(d) {
                    assert!((dot(row, row) - 1.0).abs() < 1e-5, "d = {d}");
                }
            }
        }
        eprintln!("{redraws} blocks redrawn");
    }
}

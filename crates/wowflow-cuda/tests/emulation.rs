//! Line-by-line Rust transcriptions of the index logic of `src/kernels.cu` (bitonic network,
//! merge-pass ranks, the per-atom walk over the monotone coupling), checked against the CPU
//! engine's definitions. They run everywhere, so the algorithms are checked even where no GPU
//! can run the kernels themselves; keep them in sync with the CUDA source.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wowflow_core::ot1d::{interval_means, wasserstein_sorted, CostPower, SortedMeasure};

fn key(x: f32) -> u32 {
    let b = x.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}
fn pack(x: f32, i: u32) -> u64 {
    ((key(x) as u64) << 32) | i as u64
}

/// `sort_chunks` for one chunk (all "threads" of a stage run before the next stage).
fn bitonic(values: &[f32]) -> Vec<u64> {
    let len = values.len();
    let pad = len.next_power_of_two();
    let mut sh: Vec<u64> = (0..pad)
        .map(|t| {
            if t < len {
                pack(values[t], t as u32)
            } else {
                !0
            }
        })
        .collect();
    let mut k = 2;
    while k <= pad {
        let mut j = k >> 1;
        while j > 0 {
            for t in 0..pad / 2 {
                let i = 2 * t - (t & (j - 1));
                let p = i + j;
                let up = (i & k) == 0;
                let (a, b) = (sh[i], sh[p]);
                if (a > b) == up {
                    sh[i] = b;
                    sh[p] = a;
                }
            }
            j >>= 1;
        }
        k <<= 1;
    }
    sh.truncate(len);
    sh
}

/// `sort_warp<E>` for one chunk: 32 lanes of `e` registers each, lane `w` holding entries
/// `e·w .. e·w + e`; a stage runs every lane before the next (as the warp does in lockstep).
fn warp_sort(values: &[f32], e: usize) -> Vec<u64> {
    let len = values.len();
    let pad = 32 * e;
    assert!(len <= pad);
    let mut v: Vec<Vec<u64>> = (0..32)
        .map(|lane| {
            (0..e)
                .map(|r| {
                    let i = e * lane + r;
                    if i < len {
                        pack(values[i], i as u32)
                    } else {
                        !0
                    }
                })
                .collect()
        })
        .collect();
    let log_pad = pad.trailing_zeros();
    for lk in 1..=log_pad {
        let k = 1usize << lk;
        for lj in (0..lk).rev() {
            let j = 1usize << lj;
            if j < e {
                for (lane, regs) in v.iter_mut().enumerate() {
                    for r in 0..e {
                        if r & j == 0 {
                            let p = r | j;
                            let up = ((e * lane + r) & k) == 0;
                            let (a, b) = (regs[r], regs[p]);
                            if (a > b) == up {
                                regs[r] = b;
                                regs[p] = a;
                            }
                        }
                    }
                }
            } else {
                let before = v.clone(); // __shfl_xor reads every lane's value before writes
                for (lane, regs) in v.iter_mut().enumerate() {
                    for (r, reg) in regs.iter_mut().enumerate() {
                        let i = e * lane + r;
                        let other = before[lane ^ (j / e)][r];
                        let lower = i & j == 0;
                        let up = i & k == 0;
                        let (lo, hi) = ((*reg).min(other), (*reg).max(other));
                        *reg = if lower == up { lo } else { hi };
                    }
                }
            }
        }
    }
    let mut out: Vec<u64> = v.into_iter().flatten().collect();
    out.truncate(len);
    out
}

#[test]
fn warp_register_sort_sorts_with_ties_broken_by_index() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for e in [1usize, 2, 4, 8, 16] {
        for len in [1, 2, 3, 17, 31, 32, 33, 32 * e - 1, 32 * e] {
            if len > 32 * e {
                continue;
            }
            // Few distinct values, so ties are frequent.
            let values: Vec<f32> = (0..len)
                .map(|_| (rng.random_range(0..7) as f32 - 3.0) * 0.5)
                .collect();
            let got = warp_sort(&values, e);
            let mut want: Vec<u64> = (0..len).map(|i| pack(values[i], i as u32)).collect();
            want.sort_unstable();
            assert_eq!(got, want, "E = {e}, len = {len}");
        }
    }
}

/// `merge_pass` over one segment of sorted runs of `width`.
fn merge_pass(input: &[u64], width: usize) -> Vec<u64> {
    let len = input.len();
    let mut out = vec![u64::MAX; len];
    for (local, &me) in input.iter().enumerate() {
        let mut dest = local;
        if len > width {
            let run = local / width;
            let pr = run ^ 1;
            let ps = pr * width;
            if ps < len {
                let pe = (ps + width).min(len);
                let (mut lo, mut hi) = (ps, pe);
                while lo < hi {
                    let mid = (lo + hi) >> 1;
                    if input[mid] < me {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                dest = run.min(pr) * width + (local - run * width) + (lo - ps);
            }
        }
        assert_eq!(out[dest], u64::MAX, "two entries sent to {dest}");
        out[dest] = me;
    }
    out
}

#[test]
fn chunked_bitonic_sort_and_merge_passes_sort_with_ties_broken_by_index() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for len in [1usize, 2, 3, 5, 64, 100, 513, 1000, 4096, 4097, 9000, 20000] {
        // Few distinct values: many ties, broken by the class-local index.
        let values: Vec<f32> = (0..len)
            .map(|_| rng.random_range(-20..20) as f32 * 0.5)
            .collect();
        let chunk = 4096;
        let mut packed = Vec::with_capacity(len);
        for start in (0..len).step_by(chunk) {
            let end = (start + chunk).min(len);
            let sorted = bitonic(&values[start..end]);
            // chunk_local: indices are class-local, not chunk-local
            packed.extend(
                sorted
                    .into_iter()
                    .map(|v| (v & !0xffff_ffff) | ((v & 0xffff_ffff) + start as u64)),
            );
        }
        let mut width = chunk;
        while width < len {
            packed = merge_pass(&packed, width);
            width *= 2;
        }
        let mut want: Vec<u64> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| pack(v, i as u32))
            .collect();
        want.sort_unstable();
        assert_eq!(packed, want, "len {len}");
    }
}

fn level(lev: Option<&[f64]>, i: usize, n: usize) -> f64 {
    lev.map_or((i + 1) as f64 / n as f64, |l| l[i])
}

fn first_above(lev: Option<&[f64]>, n: usize, a: f64) -> usize {
    match lev {
        None => {
            let mut j = ((a * n as f64).floor() as i64).clamp(0, n as i64 - 1) as usize;
            while j > 0 && j as f64 / n as f64 > a {
                j -= 1;
            }
            while j < n - 1 && (j + 1) as f64 / n as f64 <= a {
                j += 1;
            }
            j
        }
        Some(l) => {
            let (mut lo, mut hi) = (0, n - 1);
            while lo < hi {
                let mid = (lo + hi) >> 1;
                if l[mid] > a {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        }
    }
}

/// `interval_sum` with f(u, v) given.
fn interval_sum(
    u: &[f32],
    lu: Option<&[f64]>,
    i: usize,
    v: &[f32],
    lv: Option<&[f64]>,
    f: impl Fn(f64, f64) -> f64,
) -> f64 {
    let (nu, nv) = (u.len(), v.len());
    let a0 = if i == 0 { 0.0 } else { level(lu, i - 1, nu) };
    let a1 = level(lu, i, nu);
    let mut acc = 0.0;
    let mut j = first_above(lv, nv, a0);
    while j < nv {
        let b0 = if j == 0 { 0.0 } else { level(lv, j - 1, nv) };
        let b1 = level(lv, j, nv);
        let (st, en) = (a0.max(b0), a1.min(b1));
        if en > st {
            acc += (en - st) * f(u[i] as f64, v[j] as f64);
        }
        if b1 >= a1 {
            break;
        }
        j += 1;
    }
    acc
}

fn cumulative(w: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    let mut out: Vec<f64> = w
        .iter()
        .map(|x| {
            acc += x;
            acc
        })
        .collect();
    *out.last_mut().unwrap() = 1.0;
    out
}

#[test]
fn per_atom_walk_matches_the_cpu_merge() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for case in 0..200 {
        let (nu, nv) = (rng.random_range(1..40usize), rng.random_range(1..40usize));
        let mut u: Vec<f32> = (0..nu).map(|_| rng.random_range(-3.0..3.0)).collect();
        let mut v: Vec<f32> = (0..nv).map(|_| rng.random_range(-3.0..3.0)).collect();
        u.sort_by(f32::total_cmp);
        v.sort_by(f32::total_cmp);
        let weights = |n: usize, rng: &mut ChaCha8Rng| {
            let w: Vec<f64> = (0..n).map(|_| rng.random_range(0.1..2.0)).collect();
            let t: f64 = w.iter().sum();
            w.into_iter().map(|x| x / t).collect::<Vec<f64>>()
        };
        let wu = (case % 3 == 1).then(|| weights(nu, &mut rng));
        let wv = (case % 4 == 2).then(|| weights(nv, &mut rng));
        let (cu, cv) = (wu.as_deref().map(cumulative), wv.as_deref().map(cumulative));
        let a = SortedMeasure {
            values: &u,
            weights: wu.as_deref(),
        };
        let b = SortedMeasure {
            values: &v,
            weights: wv.as_deref(),
        };
        for power in [CostPower::Two, CostPower::One] {
            let cost = |x: f64, y: f64| match power {
                CostPower::Two => (x - y) * (x - y),
                CostPower::One => (x - y).abs(),
            };
            let total: f64 = (0..nu)
                .map(|i| interval_sum(&u, cu.as_deref(), i, &v, cv.as_deref(), cost))
                .sum();
            let want = wasserstein_sorted(a, b, power);
            assert!(
                (total - want).abs() < 1e-12,
                "case {case} {power:?}: {total} vs {want}"
            );
            let mut means = vec![0.0; nu];
            interval_means(a, b, power, &mut means);
            for (i, &m) in means.iter().enumerate() {
                let s = interval_sum(
                    &u,
                    cu.as_deref(),
                    i,
                    &v,
                    cv.as_deref(),
                    |x, y| match power {
                        CostPower::Two => y,
                        CostPower::One => (x - y).signum() * ((x - y) != 0.0) as i32 as f64,
                    },
                );
                let mass = wu.as_ref().map_or(1.0 / nu as f64, |w| w[i]);
                assert!(
                    (s / mass - m).abs() < 1e-9,
                    "case {case} {power:?} atom {i}"
                );
            }
        }
    }
}

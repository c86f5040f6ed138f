//! Exact optimal transport on the real line (MATH.md §2).
//!
//! In one dimension the optimal plan is the monotone (quantile) coupling, so
//! `W_p^p(α, β) = ∫_0^1 |F⁻¹(t) − G⁻¹(t)|^p dt` is computed exactly by sorting both supports
//! and walking the merged cumulative-mass breakpoints. Every piece `[t, t')` of that walk
//! pairs one source atom with one target atom; values and derivatives are sums over pieces.
//!
//! Derivatives with respect to a source atom `u_i` of mass `a_i` occupying the quantile
//! interval `I_i` (valid when atoms are distinct):
//! `∂W_2²/∂u_i = 2(a_i u_i − ∫_{I_i} G⁻¹)` and `∂W_1/∂u_i = ∫_{I_i} sign(u_i − G⁻¹)`.

use serde::{Deserialize, Serialize};

/// Which transport cost: `W_1` (`|u − v|`) or `W_2²` (`|u − v|²`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CostPower {
    /// `W_1`, cost `|u − v|`.
    One,
    /// `W_2²`, cost `(u − v)²`.
    Two,
}

impl CostPower {
    #[inline]
    pub(crate) fn cost(self, diff: f64) -> f64 {
        match self {
            Self::One => diff.abs(),
            Self::Two => diff * diff,
        }
    }
}

/// A scalar atom position: `f32` on the fast path, `f64` for reference computations.
pub trait Atom: Copy + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn total_cmp_(&self, other: &Self) -> std::cmp::Ordering;
}
impl Atom for f32 {
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn total_cmp_(&self, other: &Self) -> std::cmp::Ordering {
        self.total_cmp(other)
    }
}
impl Atom for f64 {
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    fn total_cmp_(&self, other: &Self) -> std::cmp::Ordering {
        self.total_cmp(other)
    }
}

/// A sorted measure on the line: ascending values and optional weights in the same order
/// (`None` = uniform `1/n`). Weights must sum to 1.
#[derive(Debug)]
pub struct SortedMeasure<'a, T = f32> {
    pub values: &'a [T],
    pub weights: Option<&'a [f64]>,
}

impl<T> Clone for SortedMeasure<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SortedMeasure<'_, T> {}

/// Calls `piece(i, j, mass)` for each piece of the monotone coupling of two sorted measures.
#[inline]
pub(crate) fn for_each_piece<T>(
    a: SortedMeasure<T>,
    b: SortedMeasure<T>,
    mut piece: impl FnMut(usize, usize, f64),
) {
    match (a.weights, b.weights) {
        (None, None) => {
            let inv = 1.0 / (a.values.len() as f64 * b.values.len() as f64);
            walk_uniform(a.values.len(), b.values.len(), |i, j, d| {
                piece(i, j, d as f64 * inv)
            })
        }
        _ => for_each_piece_weighted(a, b, piece),
    }
}

/// Uniform weights on both sides: atom `i` of `n` ends at level `(i+1)/n = (i+1)·m / (n·m)`,
/// so the walk runs on exact integers: `piece(i, j, δ)` receives the piece's mass times
/// `n·m` (no division per piece, ties exact). This is the hot loop for classes of
/// different sizes (transfer learning, distillation), so it is kept branch-light.
#[inline(always)]
fn walk_uniform(n: usize, m: usize, mut piece: impl FnMut(usize, usize, u64)) {
    let (nn, mm) = (n as u64, m as u64);
    let (mut i, mut j, mut t) = (0usize, 0usize, 0u64);
    while i < n && j < m {
        let (ta, tb) = ((i as u64 + 1) * mm, (j as u64 + 1) * nn);
        let next = ta.min(tb);
        piece(i, j, next - t);
        t = next;
        i += (ta <= tb) as usize;
        j += (tb <= ta) as usize;
    }
}

/// At least one side weighted: levels are running sums of the weights (the last level is
/// forced to exactly 1 so both measures end together despite rounding).
fn for_each_piece_weighted<T>(
    a: SortedMeasure<T>,
    b: SortedMeasure<T>,
    mut piece: impl FnMut(usize, usize, f64),
) {
    let (na, nb) = (a.values.len(), b.values.len());
    if na == 0 || nb == 0 {
        return;
    }
    let level = |m: &SortedMeasure<T>, i: usize, running: f64| -> f64 {
        if i + 1 == m.values.len() {
            1.0
        } else if m.weights.is_some() {
            running
        } else {
            (i + 1) as f64 / m.values.len() as f64
        }
    };
    let weight = |m: &SortedMeasure<T>, i: usize| m.weights.map_or(0.0, |w| w[i]);
    let (mut i, mut j, mut t) = (0usize, 0usize, 0.0f64);
    let (mut run_a, mut run_b) = (weight(&a, 0), weight(&b, 0));
    while i < na && j < nb {
        let (ta, tb) = (level(&a, i, run_a), level(&b, j, run_b));
        let next = ta.min(tb);
        if next > t {
            piece(i, j, next - t);
            t = next;
        }
        if ta <= tb {
            i += 1;
            if i < na {
                run_a += weight(&a, i);
            }
        }
        if tb <= ta {
            j += 1;
            if j < nb {
                run_b += weight(&b, j);
            }
        }
    }
}

/// `W_p^p` between two sorted measures (exact).
pub fn wasserstein_sorted<T: Atom>(
    a: SortedMeasure<T>,
    b: SortedMeasure<T>,
    power: CostPower,
) -> f64 {
    if a.weights.is_none() && b.weights.is_none() {
        let (u, v) = (a.values, b.values);
        let mut total = 0.0;
        match power {
            CostPower::Two => walk_uniform(u.len(), v.len(), |i, j, d| {
                let x = u[i].to_f64() - v[j].to_f64();
                total += d as f64 * x * x;
            }),
            CostPower::One => walk_uniform(u.len(), v.len(), |i, j, d| {
                total += d as f64 * (u[i].to_f64() - v[j].to_f64()).abs();
            }),
        }
        return total / (u.len() as f64 * v.len() as f64);
    }
    let mut total = 0.0;
    for_each_piece(a, b, |i, j, m| {
        total += m * power.cost(a.values[i].to_f64() - b.values[j].to_f64());
    });
    total
}

/// For each source atom `i`, the average over its quantile interval `I_i` of
/// `G⁻¹` (power Two) or of `sign(u_i − G⁻¹)` (power One), written into `out`.
///
/// These are the derivatives of MATH.md §2 divided by the atom's mass:
/// `∂W_2²/∂u_i / a_i = 2(u_i − out_i)` and `∂W_1/∂u_i / a_i = out_i`. Dividing by the mass is
/// exactly the WoW rescaling, so the engine uses these directly.
pub fn interval_means<T: Atom>(
    a: SortedMeasure<T>,
    b: SortedMeasure<T>,
    power: CostPower,
    out: &mut [f64],
) {
    out.iter_mut().for_each(|o| *o = 0.0);
    if a.weights.is_none() && b.weights.is_none() {
        // out_i = Σ_j mass_ij x_j / (1/n) = Σ_j δ_ij x_j / m.
        let (u, v) = (a.values, b.values);
        match power {
            CostPower::Two => walk_uniform(u.len(), v.len(), |i, j, d| {
                out[i] += d as f64 * v[j].to_f64()
            }),
            CostPower::One => walk_uniform(u.len(), v.len(), |i, j, d| {
                out[i] += d as f64 * sign(u[i].to_f64() - v[j].to_f64())
            }),
        }
        let inv_m = 1.0 / v.len() as f64;
        out.iter_mut().for_each(|o| *o *= inv_m);
        return;
    }
    for_each_piece(a, b, |i, j, m| {
        out[i] += m * match power {
            CostPower::Two => b.values[j].to_f64(),
            CostPower::One => sign(a.values[i].to_f64() - b.values[j].to_f64()),
        };
    });
    match a.weights {
        Some(w) => out.iter_mut().zip(w).for_each(|(o, &w)| *o /= w),
        None => {
            let n = a.values.len() as f64;
            out.iter_mut().for_each(|o| *o *= n);
        }
    }
}

#[inline]
pub(crate) fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Sorts `values` (with their weights) ascending; returns the sorted values, weights and the
/// permutation (`sorted[k] = values[perm[k]]`).
fn sort_measure<T: Atom>(
    values: &[T],
    weights: Option<&[f64]>,
) -> (Vec<T>, Option<Vec<f64>>, Vec<usize>) {
    let mut perm: Vec<usize> = (0..values.len()).collect();
    perm.sort_by(|&x, &y| values[x].total_cmp_(&values[y]));
    let sorted = perm.iter().map(|&k| values[k]).collect();
    let w = weights.map(|w| {
        let total: f64 = w.iter().sum();
        perm.iter().map(|&k| w[k] / total).collect()
    });
    (sorted, w, perm)
}

/// `W_p^p(α, β)` between weighted empirical measures on the line, in any order and of any
/// sizes. Weights are normalised here; `None` means uniform.
///
/// This is the convenience entry point; the flow engine works on pre-sorted rows.
pub fn wasserstein_1d<T: Atom>(
    u: &[T],
    u_weights: Option<&[f64]>,
    v: &[T],
    v_weights: Option<&[f64]>,
    power: CostPower,
) -> f64 {
    let (us, uw, _) = sort_measure(u, u_weights);
    let (vs, vw, _) = sort_measure(v, v_weights);
    wasserstein_sorted(
        SortedMeasure {
            values: &us,
            weights: uw.as_deref(),
        },
        SortedMeasure {
            values: &vs,
            weights: vw.as_deref(),
        },
        power,
    )
}

/// `W_p^p(α, β)` and its derivative with respect to every source atom `u_i` (input order).
pub fn wasserstein_1d_grad<T: Atom>(
    u: &[T],
    u_weights: Option<&[f64]>,
    v: &[T],
    v_weights: Option<&[f64]>,
    power: CostPower,
) -> (f64, Vec<f64>) {
    let (us, uw, perm) = sort_measure(u, u_weights);
    let (vs, vw, _) = sort_measure(v, v_weights);
    let a = SortedMeasure {
        values: &us,
        weights: uw.as_deref(),
    };
    let b = SortedMeasure {
        values: &vs,
        weights: vw.as_deref(),
    };
    let value = wasserstein_sorted(a, b, power);
    let mut means = vec![0.0; us.len()];
    interval_means(a, b, power, &mut means);
    let mut grad = vec![0.0; u.len()];
    for (k, &i) in perm.iter().enumerate() {
        let mass = uw.as_ref().map_or(1.0 / us.len() as f64, |w| w[k]);
        grad[i] = match power {
            CostPower::Two => 2.0 * mass * (us[k].to_f64() - means[k]),
            CostPower::One => mass * means[k],
        };
    }
    (value, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: expand both measures to `N` equal atoms by integer multiplicities and
    /// minimise over all permutations.
    fn brute(u: &[f32], um: &[usize], v: &[f32], vm: &[usize], power: CostPower) -> f64 {
        let expand = |x: &[f32], m: &[usize]| -> Vec<f32> {
            x.iter()
                .zip(m)
                .flat_map(|(&x, &k)| std::iter::repeat_n(x, k))
                .collect()
        };
        let (a, b) = (expand(u, um), expand(v, vm));
        assert_eq!(a.len(), b.len());
        let mut idx: Vec<usize> = (0..b.len()).collect();
        let mut best = f64::INFINITY;
        permute(&mut idx, 0, &mut |p| {
            let c: f64 = a
                .iter()
                .zip(p)
                .map(|(&x, &j)| power.cost(x as f64 - b[j] as f64))
                .sum();
            best = best.min(c / a.len() as f64);
        });
        best
    }

    fn permute(idx: &mut Vec<usize>, k: usize, f: &mut dyn FnMut(&[usize])) {
        if k == idx.len() {
            f(idx);
            return;
        }
        for i in k..idx.len() {
            idx.swap(k, i);
            permute(idx, k + 1, f);
            idx.swap(k, i);
        }
    }

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
    }

    #[test]
    fn matches_brute_force_on_unequal_sizes_weights_and_ties() {
        let mut seed = 7;
        for case in 0..60 {
            let (n, m) = [(1, 3), (2, 3), (3, 2), (2, 2), (4, 2), (3, 3)][case % 6];
            let mut u: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
            let v: Vec<f32> = (0..m).map(|_| lcg(&mut seed)).collect();
            if case.is_multiple_of(5) {
                u[0] = v[0]; // a tie across measures
            }
            if case.is_multiple_of(7) && n > 1 {
                u[1] = u[0]; // a tie inside a measure
            }
            // Uniform weights: expand to n·m atoms.
            for power in [CostPower::One, CostPower::Two] {
                let want = brute(&u, &vec![m; n], &v, &vec![n; m], power);
                let got = wasserstein_1d(&u, None, &v, None, power);
                assert!(
                    (got - want).abs() < 1e-9,
                    "case {case} {power:?}: {got} vs {want}"
                );
            }
            // Integer weights (normalised inside); totals must match for the expansion.
            if n == 2 && m == 3 {
                let (um, vm) = ([1usize, 2], [1usize, 1, 1]);
                let uw: Vec<f64> = um.iter().map(|&k| k as f64).collect();
                let want = brute(&u, &um, &v, &vm, CostPower::Two);
                let got = wasserstein_1d(&u, Some(&uw), &v, None, CostPower::Two);
                assert!(
                    (got - want).abs() < 1e-9,
                    "weighted case {case}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let mut seed = 3;
        for (n, m) in [(5, 5), (4, 7), (6, 3)] {
            let u: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
            let v: Vec<f32> = (0..m).map(|_| lcg(&mut seed)).collect();
            let w: Vec<f64> = (0..n).map(|i| 1.0 + i as f64).collect();
            for weights in [None, Some(&w[..])] {
                for power in [CostPower::One, CostPower::Two] {
                    let (_, grad) = wasserstein_1d_grad(&u, weights, &v, None, power);
                    for i in 0..n {
                        let h = 1e-3f32;
                        let mut up = u.clone();
                        up[i] += h;
                        let mut dn = u.clone();
                        dn[i] -= h;
                        let fd = (wasserstein_1d(&up, weights, &v, None, power)
                            - wasserstein_1d(&dn, weights, &v, None, power))
                            / (up[i] as f64 - dn[i] as f64);
                        assert!(
                            (fd - grad[i]).abs() < 1e-4,
                            "n={n} m={m} i={i} {power:?}: fd {fd} vs {}",
                            grad[i]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn equal_uniform_reduces_to_sorted_differences() {
        let u = [3.0f32, -1.0, 2.0];
        let v = [0.0f32, 5.0, 1.0];
        // sorted: u = -1, 2, 3 ; v = 0, 1, 5
        let want = ((1.0f64) + 1.0 + 4.0) / 3.0;
        assert!((wasserstein_1d(&u, None, &v, None, CostPower::Two) - want).abs() < 1e-12);
        let (_, g) = wasserstein_1d_grad(&u, None, &v, None, CostPower::Two);
        // ∂/∂u_(k) = (2/n)(u_(k) − v_(k)): u=3 ↔ 5 → -4/3 ; u=-1 ↔ 0 → -2/3 ; u=2 ↔ 1 → 2/3
        let want_g = [-4.0 / 3.0, -2.0 / 3.0, 2.0 / 3.0];
        for (a, b) in g.iter().zip(want_g) {
            assert!((a - b).abs() < 1e-12);
        }
    }
}

//! Exact optimal transport on the real line (docs/math.md §2).
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
    /// The position as `f64` (all costs are accumulated in `f64`).
    fn to_f64(self) -> f64;
    /// IEEE 754 total order ([`f32::total_cmp`] / [`f64::total_cmp`]), used to sort atoms.
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
    /// Atom positions, ascending.
    pub values: &'a [T],
    /// Atom masses, same length and order as `values`, summing to 1; `None` for `1/n` each.
    pub weights: Option<&'a [f64]>,
}

impl<T> Clone for SortedMeasure<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SortedMeasure<'_, T> {}

/// The monotone coupling of two uniform measures, one call per atom of the larger one.
///
/// With `nb ≥ ns` atoms, atom `k` of the larger measure spans the levels
/// `[k·ns, (k+1)·ns)` in units of `1/(nb·ns)` and atom `s` of the smaller one
/// `[s·nb, (s+1)·nb)`. A span of width `ns ≤ nb` meets at most two of the latter, so
/// `piece(k, s, s1, d0, d1)` receives both pieces: `d0` units with atom `s` and `d1` with
/// `s1 = s + 1` (`d1 = 0` and `s1 = s` when there is only one). The integers are exact,
/// ties included. Unlike a merge walk, no call depends on the previous one's arithmetic,
/// so the pieces of different atoms overlap in the CPU — this is the hot loop of classes
/// of different sizes (transfer learning, distillation).
#[inline(always)]
fn for_each_two_tap(nb: usize, ns: usize, mut piece: impl FnMut(usize, usize, usize, u64, u64)) {
    debug_assert!(nb >= ns);
    if ns == 0 {
        return;
    }
    let (nb64, ns64) = (nb as u64, ns as u64);
    // Invariant: k·ns = s·nb + rem, with 0 ≤ rem < nb.
    let (mut s, mut rem) = (0usize, 0u64);
    for k in 0..nb {
        let end = rem + ns64;
        if end < nb64 {
            piece(k, s, s, ns64, 0);
            rem = end;
        } else if end == nb64 {
            piece(k, s, s, ns64, 0);
            s += 1;
            rem = 0;
        } else {
            let d0 = nb64 - rem;
            piece(k, s, s + 1, d0, ns64 - d0);
            s += 1;
            rem = end - nb64;
        }
    }
}

/// `W_p^p` between uniform sorted measures of any sizes (≥ 1 atom each).
fn wasserstein_uniform<T: Atom>(u: &[T], v: &[T], power: CostPower) -> f64 {
    // The cost is symmetric: walk the larger side. One loop per power, so the hot loop
    // computes one cost, not both and a select (11 % off a re-purposing step with k-means
    // classes of unequal sizes, BENCHMARKS.md).
    let (x, y) = if u.len() >= v.len() { (u, v) } else { (v, u) };
    match (power, y.len()) {
        (CostPower::Two, 1) => one_atom_cost(x, y[0], |d| d * d),
        (CostPower::One, 1) => one_atom_cost(x, y[0], f64::abs),
        (CostPower::Two, _) => two_tap_cost(x, y, |d| d * d),
        (CostPower::One, _) => two_tap_cost(x, y, f64::abs),
    }
}

/// [`two_tap_cost`] when the smaller measure is one atom `y0`, to the last bit.
///
/// Every piece of the walk is then `d0 = 1, d1 = 0` against `y0`: the term of atom `k` is
/// `1·c_k + 0·c_k` (`c_k + 0·c_k` here — equal for every `c_k`, and NaN for an infinite one
/// as there), added to partial sum `k mod 4`, and the four sums are combined in the order the
/// walk's rotation leaves them in. No walk state, so the loop vectorises. This is every pair
/// of a one-image class with a real class (distillation at k = 1, k-shot transfer at k = 1),
/// where the walk's state machine took half of the step (BENCHMARKS.md).
#[inline(always)]
fn one_atom_cost<T: Atom>(x: &[T], y0: T, cost: impl Fn(f64) -> f64) -> f64 {
    let y0 = y0.to_f64();
    let term = |xk: T| {
        let c = cost(xk.to_f64() - y0);
        c + 0.0 * c
    };
    let mut lanes = [0.0f64; 4];
    let chunks = x.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for (lane, &xk) in lanes.iter_mut().zip(c) {
            *lane += term(xk);
        }
    }
    for (lane, &xk) in lanes.iter_mut().zip(rest) {
        *lane += term(xk);
    }
    // The walk's rotation leaves partial sum `j` in slot `(j − n) mod 4`.
    let n = x.len();
    let slot = |p: usize| lanes[(p + n) % 4];
    ((slot(0) + slot(1)) + (slot(2) + slot(3))) / (n as f64 * 1.0)
}

/// `Σ_k Σ_pieces d · cost(x_k − y_s) / (nb·ns)` over the two-tap coupling, `x` the larger.
#[inline(always)]
fn two_tap_cost<T: Atom>(x: &[T], y: &[T], cost: impl Fn(f64) -> f64) -> f64 {
    // Four partial sums, rotated every atom (register renames, no stores), so consecutive
    // atoms do not wait on one another's addition.
    let mut acc = [0.0f64; 4];
    for_each_two_tap(x.len(), y.len(), |k, s, s1, d0, d1| {
        let xk = x[k].to_f64();
        let term = d0 as f64 * cost(xk - y[s].to_f64()) + d1 as f64 * cost(xk - y[s1].to_f64());
        acc = [acc[1], acc[2], acc[3], acc[0] + term];
    });
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) / (x.len() as f64 * y.len() as f64)
}

/// [`interval_means`] for uniform measures of any sizes (≥ 1 atom each).
fn interval_means_uniform<T: Atom>(u: &[T], v: &[T], power: CostPower, out: &mut [f64]) {
    // One loop per power, as in `wasserstein_uniform`.
    let one_atom = u.len() == 1 || v.len() == 1;
    match (power, one_atom) {
        (CostPower::Two, true) => one_atom_means(u, v, out, |_, y| y),
        (CostPower::One, true) => one_atom_means(u, v, out, |x, y| sign(x - y)),
        (CostPower::Two, false) => two_tap_means(u, v, out, |_, y| y),
        (CostPower::One, false) => two_tap_means(u, v, out, |x, y| sign(x - y)),
    }
}

/// [`two_tap_means`] when either measure is one atom, to the last bit: every piece is then
/// `d0 = 1, d1 = 0`. A one-atom target gives every source atom `f(u_k, v_0)`, the walk's
/// `1·f + 0·f`, with no walk state (see [`one_atom_cost`]); a one-atom source against more
/// atoms takes the mean of all of `v`, summed in `v`'s order, as the walk does.
#[inline(always)]
fn one_atom_means<T: Atom>(u: &[T], v: &[T], out: &mut [f64], f: impl Fn(f64, f64) -> f64) {
    let inv_m = 1.0 / v.len() as f64;
    if v.len() == 1 {
        // The walk's `n ≥ m` branch (one against one included).
        let v0 = v[0].to_f64();
        for (o, &x) in out.iter_mut().zip(u) {
            let t = f(x.to_f64(), v0);
            *o = (t + 0.0 * t) * inv_m;
        }
    } else {
        let u0 = u[0].to_f64();
        let mut cur = 0.0f64;
        for &y in v {
            cur += f(u0, y.to_f64());
        }
        out[0] = cur * inv_m;
    }
}

/// `out_i = Σ_j d_ij f(u_i, v_j) / m`, with `d` in units of `1/(n·m)`.
#[inline(always)]
fn two_tap_means<T: Atom>(u: &[T], v: &[T], out: &mut [f64], f: impl Fn(f64, f64) -> f64) {
    let f = |x: T, y: T| f(x.to_f64(), y.to_f64());
    let (n, m) = (u.len(), v.len());
    if n >= m {
        // Each source atom meets at most two target atoms: independent per atom.
        for_each_two_tap(n, m, |k, s, s1, d0, d1| {
            out[k] = d0 as f64 * f(u[k], v[s]) + d1 as f64 * f(u[k], v[s1]);
        });
    } else {
        // Each target atom meets at most two source atoms: a source atom's sum runs over
        // consecutive target atoms and is written once it is complete.
        let (mut cur_s, mut cur) = (0usize, 0.0f64);
        for_each_two_tap(m, n, |k, s, s1, d0, d1| {
            if s != cur_s {
                out[cur_s] = cur;
                (cur_s, cur) = (s, 0.0);
            }
            cur += d0 as f64 * f(u[s], v[k]);
            if d1 > 0 {
                out[s] = cur;
                (cur_s, cur) = (s1, d1 as f64 * f(u[s1], v[k]));
            }
        });
        out[cur_s] = cur;
    }
    let inv_m = 1.0 / m as f64;
    out.iter_mut().for_each(|o| *o *= inv_m);
}

/// Calls `piece(i, j, mass)` for each piece of the monotone coupling of two sorted measures,
/// weighted or not: levels are running sums of the weights (the last level is forced to
/// exactly 1 so both measures end together despite rounding).
fn for_each_piece<T>(
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
    if a.weights.is_none() && b.weights.is_none() && !a.values.is_empty() && !b.values.is_empty() {
        return wasserstein_uniform(a.values, b.values, power);
    }
    let mut total = 0.0;
    for_each_piece(a, b, |i, j, m| {
        total += m * power.cost(a.values[i].to_f64() - b.values[j].to_f64());
    });
    total
}

/// `W_p^p` for any real `p ≥ 1` between two sorted measures, weighted or not.
///
/// The monotone coupling is optimal for every convex cost `|u − v|^p`, so this walks the
/// same pieces as [`wasserstein_sorted`], in one merge; use that one (faster on uniform
/// measures) for `p = 1, 2`. The caller checks `p ≥ 1` (for `p < 1` the cost is concave
/// and the monotone coupling is not optimal).
pub fn wasserstein_sorted_p<T: Atom>(a: SortedMeasure<T>, b: SortedMeasure<T>, p: f64) -> f64 {
    let mut total = 0.0;
    for_each_piece(a, b, |i, j, m| {
        total += m * (a.values[i].to_f64() - b.values[j].to_f64()).abs().powf(p);
    });
    total
}

/// [`wasserstein_1d`] for any real `p ≥ 1` (see [`wasserstein_sorted_p`]).
pub fn wasserstein_1d_p<T: Atom>(
    u: &[T],
    u_weights: Option<&[f64]>,
    v: &[T],
    v_weights: Option<&[f64]>,
    p: f64,
) -> f64 {
    let (us, uw, _) = sort_measure(u, u_weights);
    let (vs, vw, _) = sort_measure(v, v_weights);
    let a = SortedMeasure {
        values: &us,
        weights: uw.as_deref(),
    };
    let b = SortedMeasure {
        values: &vs,
        weights: vw.as_deref(),
    };
    if p == 2.0 {
        wasserstein_sorted(a, b, CostPower::Two)
    } else if p == 1.0 {
        wasserstein_sorted(a, b, CostPower::One)
    } else {
        wasserstein_sorted_p(a, b, p)
    }
}

/// For each source atom `i`, the average over its quantile interval `I_i` of
/// `G⁻¹` (power Two) or of `sign(u_i − G⁻¹)` (power One), written into `out`.
///
/// These are the derivatives of docs/math.md §2 divided by the atom's mass:
/// `∂W_2²/∂u_i / a_i = 2(u_i − out_i)` and `∂W_1/∂u_i / a_i = out_i`. Dividing by the mass is
/// exactly the WoW rescaling, so the engine uses these directly.
pub fn interval_means<T: Atom>(
    a: SortedMeasure<T>,
    b: SortedMeasure<T>,
    power: CostPower,
    out: &mut [f64],
) {
    if a.weights.is_none() && b.weights.is_none() && !a.values.is_empty() && !b.values.is_empty() {
        // Writes every entry of `out`.
        interval_means_uniform(a.values, b.values, power, out);
        return;
    }
    out.iter_mut().for_each(|o| *o = 0.0);
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
    let p = match power {
        CostPower::One => 1.0,
        CostPower::Two => 2.0,
    };
    // p = 1, 2 take `wasserstein_sorted` with `power` there.
    wasserstein_1d_p(u, u_weights, v, v_weights, p)
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

    #[test]
    fn any_power_p_matches_brute_force_and_the_fast_paths() {
        let u = [0.3f32, -1.2, 2.5, 0.9];
        let v = [1.1f32, -0.4, 0.0, 3.3];
        // Masses 2/6, 1/6, 2/6, 1/6 against 1/6, 3/6, 1/6, 1/6 (6 equal atoms each).
        let (um, vm) = ([2usize, 1, 2, 1], [1usize, 3, 1, 1]);
        let uw: Vec<f64> = um.iter().map(|&k| k as f64 / 6.0).collect();
        let vw: Vec<f64> = vm.iter().map(|&k| k as f64 / 6.0).collect();
        for p in [1.0, 1.5, 2.0, 3.0] {
            let expand = |x: &[f32], m: &[usize]| -> Vec<f32> {
                x.iter()
                    .zip(m)
                    .flat_map(|(&x, &k)| std::iter::repeat_n(x, k))
                    .collect()
            };
            let (a, b) = (expand(&u, &um), expand(&v, &vm));
            let mut idx: Vec<usize> = (0..b.len()).collect();
            let mut best = f64::INFINITY;
            permute(&mut idx, 0, &mut |perm| {
                let c: f64 = a
                    .iter()
                    .zip(perm)
                    .map(|(&x, &j)| (x as f64 - b[j] as f64).abs().powf(p))
                    .sum();
                best = best.min(c / a.len() as f64);
            });
            let got = wasserstein_1d_p(&u, Some(&uw), &v, Some(&vw), p);
            assert!(
                (got - best).abs() < 1e-9 * best.max(1.0),
                "p = {p}: {got} vs {best}"
            );
        }
        // p = 1, 2 take the fast uniform path; the general walk agrees with it.
        let (x, y) = ([0.5f32, -2.0, 1.0, 4.0, 0.1], [1.0f32, 2.0, -3.0]);
        let sorted = |z: &[f32]| {
            let mut z = z.to_vec();
            z.sort_by(f32::total_cmp);
            z
        };
        let (xs, ys) = (sorted(&x), sorted(&y));
        fn m(z: &[f32]) -> SortedMeasure<'_> {
            SortedMeasure {
                values: z,
                weights: None,
            }
        }
        for (p, power) in [(1.0, CostPower::One), (2.0, CostPower::Two)] {
            let walk = wasserstein_sorted_p(m(&xs), m(&ys), p);
            let fast = wasserstein_sorted(m(&xs), m(&ys), power);
            assert!((walk - fast).abs() < 1e-12, "p = {p}: {walk} vs {fast}");
        }
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

    /// The plain merge walk over integer levels that `for_each_two_tap` replaces.
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

    #[test]
    fn two_tap_coupling_has_the_pieces_of_the_merge_walk() {
        for (n, m) in [
            (1, 1),
            (1, 5),
            (5, 1),
            (3, 3),
            (200, 5),
            (5, 200),
            (7, 3),
            (3, 7),
        ]
        .into_iter()
        .chain([(50, 256), (256, 50), (500, 499), (12, 18)])
        {
            let mut want = Vec::new();
            walk_uniform(n, m, |i, j, d| want.push((i, j, d)));
            let mut got = Vec::new();
            let flip = n < m;
            let (nb, ns) = if flip { (m, n) } else { (n, m) };
            for_each_two_tap(nb, ns, |k, s, s1, d0, d1| {
                for (j, d) in [(s, d0), (s1, d1)] {
                    if d > 0 {
                        got.push(if flip { (j, k, d) } else { (k, j, d) });
                    }
                }
            });
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "n={n} m={m}");
        }
    }

    #[test]
    fn uniform_fast_paths_match_the_weighted_walk() {
        // The same measures with explicit uniform weights take the general walk.
        let mut seed = 5;
        for (n, m) in [
            (200, 5),
            (5, 200),
            (50, 256),
            (256, 50),
            (7, 3),
            (3, 7),
            (9, 9),
        ] {
            let mut u: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
            let mut v: Vec<f32> = (0..m).map(|_| lcg(&mut seed)).collect();
            u.sort_by(f32::total_cmp);
            v.sort_by(f32::total_cmp);
            let (uw, vw) = (vec![1.0 / n as f64; n], vec![1.0 / m as f64; m]);
            let fast = (
                SortedMeasure {
                    values: &u[..],
                    weights: None,
                },
                SortedMeasure {
                    values: &v[..],
                    weights: None,
                },
            );
            let slow = (
                SortedMeasure {
                    values: &u[..],
                    weights: Some(&uw[..]),
                },
                SortedMeasure {
                    values: &v[..],
                    weights: Some(&vw[..]),
                },
            );
            for power in [CostPower::One, CostPower::Two] {
                let (a, b) = (
                    wasserstein_sorted(fast.0, fast.1, power),
                    wasserstein_sorted(slow.0, slow.1, power),
                );
                assert!(
                    (a - b).abs() < 1e-12 * (1.0 + b.abs()),
                    "{n}x{m} {power:?}: {a} {b}"
                );
                // NaN-filled: every entry must be written, not accumulated onto.
                let (mut ma, mut mb) = (vec![f64::NAN; n], vec![f64::NAN; n]);
                interval_means(fast.0, fast.1, power, &mut ma);
                interval_means(slow.0, slow.1, power, &mut mb);
                for (i, (a, b)) in ma.iter().zip(&mb).enumerate() {
                    assert!((a - b).abs() < 1e-9, "{n}x{m} {power:?} atom {i}: {a} {b}");
                }
            }
        }
    }

    #[test]
    fn one_atom_paths_are_the_two_tap_walk_to_the_last_bit() {
        // One atom against 1 … 9 (every remainder of the four rotated sums) and 256 (the
        // distillation batch), in both orders; zeros of either sign, an infinite atom (the
        // walk's `0·∞` makes NaN, the shortcut must too) and a NaN one.
        let mut seed = 11;
        let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let specials = [f32::INFINITY, f32::NAN, -0.0, 0.0];
        // Magnitudes over six decades, so that regrouping the sums changes their last bits.
        let mut draw = || lcg(&mut seed) * 10f32.powf(3.0 * lcg(&mut seed));
        let sizes = (1..=9).chain([10, 11, 200, 255, 256]);
        for (case, n) in sizes.flat_map(|n| std::iter::repeat_n(n, 20)).enumerate() {
            let mut many: Vec<f32> = (0..n).map(|_| draw()).collect();
            if case < specials.len() {
                many[n / 2] = specials[case];
            }
            many.sort_by(f32::total_cmp);
            for one in [[draw()], [-0.0], [0.0], [f32::NEG_INFINITY]] {
                for power in [CostPower::One, CostPower::Two] {
                    type Cost = fn(f64) -> f64;
                    type Mean = fn(f64, f64) -> f64;
                    let (f_cost, f_mean): (Cost, Mean) = match power {
                        CostPower::Two => (|d| d * d, |_, y| y),
                        CostPower::One => (f64::abs, |x, y| sign(x - y)),
                    };
                    let (fast, walk) = (
                        one_atom_cost(&many, one[0], f_cost),
                        two_tap_cost(&many, &one, f_cost),
                    );
                    assert_eq!(
                        fast.to_bits(),
                        walk.to_bits(),
                        "cost n={n} {power:?}: {fast} {walk}"
                    );
                    for (u, v) in [(&many[..], &one[..]), (&one[..], &many[..])] {
                        let (mut a, mut b) = (vec![f64::NAN; u.len()], vec![f64::NAN; u.len()]);
                        one_atom_means(u, v, &mut a, f_mean);
                        two_tap_means(u, v, &mut b, f_mean);
                        assert_eq!(
                            bits(&a),
                            bits(&b),
                            "means {}x{} {power:?}",
                            u.len(),
                            v.len()
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

//! Exact discrete OT: the transportation linear program solved by the network simplex.
//!
//! No maintained pure-Rust exact OT crate exists (`rust-optimal-transport` and `emd` wrap
//! C/C++ code, depend on `ndarray` and have had no release since 2022/2019), so this module
//! implements the primal network simplex on the complete bipartite graph (rows → columns),
//! as POT's `emd` does (Bonneel et al. 2011, after LEMON):
//!
//! - the basis is a spanning tree of `n + m − 1` arcs, started by the north-west corner rule;
//! - node potentials `u_i + v_j = C_ij` on tree arcs; an arc with reduced cost
//!   `C_ij − u_i − v_j < 0` enters, chosen by *block search* (the most negative in a block of
//!   about `√(nm)` arcs scanned round-robin, LEMON's default pivot rule);
//! - flow is pushed around the tree cycle it closes; the leaving arc is the *last* blocking
//!   arc met when walking the cycle from its apex in the direction of the push (the
//!   strongly-feasible rule that avoids cycling on degenerate pivots, frequent here because
//!   uniform histograms are highly degenerate);
//! - only the subtree cut off by the leaving arc gets new potentials and depths.
//!
//! Uniform histograms of equal length skip the simplex: an optimal plan is then a permutation,
//! found by the assignment solver of [`super::assignment`] (2.8× faster at n = 2000).
//!
//! The result carries the optimal dual potentials, so optimality can be certified:
//! `Σ a_i u_i + Σ b_j v_j = ⟨π, C⟩` and `C_ij − u_i − v_j ≥ 0`.

use super::{check_cost, normalised, TransportPlan};
use wowflow_core::error::{invalid, Result};

/// Result of [`exact_ot`].
#[derive(Debug, Clone, PartialEq)]
pub struct ExactOt {
    /// The optimal plan (sparse: at most `n + m − 1` non-zeros).
    pub plan: TransportPlan,
    /// `⟨π, C⟩`.
    pub cost: f64,
    /// Dual potentials `u` (rows) and `v` (columns): `u_i + v_j ≤ C_ij`, with equality on the
    /// support of `π`.
    pub row_potentials: Vec<f64>,
    /// Column potentials `v_j` (length `m`); pass them to [`exact_ot_from`] to warm-start a
    /// nearby problem.
    pub col_potentials: Vec<f64>,
    /// Simplex pivots taken (0 when the problem was solved as an assignment: uniform
    /// histograms of equal length).
    pub pivots: usize,
}

/// `min_{π ≥ 0, π1 = a, πᵀ1 = b} ⟨π, C⟩` exactly, for histograms `a` (length `n`) and `b`
/// (length `m`) — both normalised to total mass 1 here — and a row-major `n × m` cost.
pub fn exact_ot(a: &[f64], b: &[f64], cost: &[f64]) -> Result<ExactOt> {
    exact_ot_from(a, b, cost, None)
}

/// [`exact_ot`] warm-started from column potentials (a previous solution's
/// `col_potentials`, for a cost that changed a little, as between two steps of a flow). Only
/// the assignment route (uniform histograms of equal length) uses the start; it changes how
/// fast the optimum is found, not the optimum (for costs in general position the optimal
/// plan is unique, so warm and cold starts return the same plan).
pub fn exact_ot_from(a: &[f64], b: &[f64], cost: &[f64], start: Option<&[f64]>) -> Result<ExactOt> {
    let a = normalised("source histogram", a)?;
    let b = normalised("target histogram", b)?;
    let (n, m) = (a.len(), b.len());
    check_cost(cost, n, m)?;
    if n == m && uniform(&a, n * m) && uniform(&b, n * m) {
        let a = if a.iter().all(|&x| x == a[0]) {
            a
        } else {
            vec![1.0 / n as f64; n]
        };
        return via_assignment(&a, cost, start.filter(|v| v.len() == n));
    }
    simplex_ot(&a, &b, cost)
}

/// Problem size (`n · m` entries) from which wowflow takes the faster routes that agree with
/// the small-problem ones only to rounding: 2²² ≈ 4.2 M, above Alvarez-Melis & Fusi's
/// 5 000 × 5 000 and below the k-shot transfer problems (2 000 × 10 k) whose committed results
/// were computed without them. From this size on,
/// - [`exact_ot`] treats a normalised histogram whose entries agree to a relative `1e-12` as
///   the uniform one (proportional class weights of unequal classes give every point
///   `(n_c/N)·(1/n_c)`, which is `1/N` only up to the last bit; the exact test sent 5 000 ×
///   5 000 to the network simplex, 100× slower than the assignment, BENCHMARKS.md);
/// - the OTDD ground cost and the exact label costs share one matrix of point distances
///   ([`crate::distance::exact_label_costs_and_ground_cost`]).
pub const LARGE_PROBLEM_ENTRIES: usize = 1 << 22;

/// Whether a normalised histogram is uniform: exactly, or to a relative `1e-12` on problems of
/// [`LARGE_PROBLEM_ENTRIES`] and more.
fn uniform(h: &[f64], entries: usize) -> bool {
    let first = h[0];
    if entries >= LARGE_PROBLEM_ENTRIES {
        h.iter().all(|&x| (x - first).abs() <= 1e-12 * first)
    } else {
        h.iter().all(|&x| x == first)
    }
}

/// The network simplex on normalised histograms.
fn simplex_ot(a: &[f64], b: &[f64], cost: &[f64]) -> Result<ExactOt> {
    let (n, m) = (a.len(), b.len());
    let mut ns = NetworkSimplex::new(a, b, cost);
    let pivots = ns.run()?;
    let mut entries = Vec::with_capacity(n + m - 1);
    let mut total = 0.0;
    for arc in &ns.arcs {
        if arc.flow > 0.0 {
            let (i, j) = (arc.row as usize, arc.col as usize);
            entries.push((i, j, arc.flow));
            total += arc.flow * cost[i * m + j];
        }
    }
    entries.sort_by_key(|&(i, j, _)| (i, j));
    Ok(ExactOt {
        plan: TransportPlan::Sparse {
            rows: n,
            cols: m,
            entries,
        },
        cost: total,
        row_potentials: ns.pot[..n].to_vec(),
        col_potentials: ns.pot[n..].to_vec(),
        pivots,
    })
}

/// Uniform histograms of equal length: an optimal permutation (see [`super::assignment`]),
/// with the assignment's duals, which are optimal duals of the OT problem too (the same
/// constraints `u_i + v_j ≤ C_ij`, tight on the plan's support).
fn via_assignment(a: &[f64], cost: &[f64], start: Option<&[f64]>) -> Result<ExactOt> {
    let n = a.len();
    let s = super::assignment::linear_assignment_from(cost, n, start)?;
    let entries: Vec<(usize, usize, f64)> = s
        .col_of_row
        .iter()
        .enumerate()
        .map(|(i, &j)| (i, j, a[i]))
        .collect();
    let total = entries.iter().map(|&(i, j, w)| w * cost[i * n + j]).sum();
    Ok(ExactOt {
        plan: TransportPlan::Sparse {
            rows: n,
            cols: n,
            entries,
        },
        cost: total,
        row_potentials: s.row_potentials,
        col_potentials: s.col_potentials,
        pivots: 0,
    })
}

const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct TreeArc {
    row: u32,
    col: u32,
    flow: f64,
}

struct NetworkSimplex<'a> {
    n: usize,
    m: usize,
    cost: &'a [f64],
    arcs: Vec<TreeArc>,
    /// Tree arcs incident to each node (rows `0..n`, columns `n..n+m`).
    adj: Vec<Vec<u32>>,
    parent: Vec<u32>,
    parent_arc: Vec<u32>,
    depth: Vec<u32>,
    pot: Vec<f64>,
}

impl<'a> NetworkSimplex<'a> {
    fn new(a: &[f64], b: &[f64], cost: &'a [f64]) -> Self {
        let (n, m) = (a.len(), b.len());
        // North-west corner: every step advances the row or the column, so it produces
        // exactly n + m − 1 arcs forming a spanning tree (some may carry zero flow).
        let mut arcs = Vec::with_capacity(n + m - 1);
        let (mut ra, mut rb) = (a[0], b[0]);
        let (mut i, mut j) = (0usize, 0usize);
        loop {
            let f = ra.min(rb).max(0.0);
            arcs.push(TreeArc {
                row: i as u32,
                col: j as u32,
                flow: f,
            });
            ra -= f;
            rb -= f;
            if i + 1 == n && j + 1 == m {
                break;
            }
            if j + 1 == m || (i + 1 < n && ra <= rb) {
                i += 1;
                ra = a[i];
            } else {
                j += 1;
                rb = b[j];
            }
        }
        let mut adj = vec![Vec::new(); n + m];
        for (k, arc) in arcs.iter().enumerate() {
            adj[arc.row as usize].push(k as u32);
            adj[n + arc.col as usize].push(k as u32);
        }
        let mut s = Self {
            n,
            m,
            cost,
            arcs,
            adj,
            parent: vec![NONE; n + m],
            parent_arc: vec![NONE; n + m],
            depth: vec![0; n + m],
            pot: vec![0.0; n + m],
        };
        s.reroot_subtree(0, NONE, NONE);
        s
    }

    #[inline]
    fn arc_cost(&self, arc: u32) -> f64 {
        let a = self.arcs[arc as usize];
        self.cost[a.row as usize * self.m + a.col as usize]
    }

    #[inline]
    fn other_end(&self, arc: u32, node: usize) -> usize {
        let a = self.arcs[arc as usize];
        if a.row as usize == node {
            self.n + a.col as usize
        } else {
            a.row as usize
        }
    }

    /// Recomputes parents, depths and potentials of the subtree hanging from `start`, whose
    /// parent is `parent` through `arc` (`NONE` for the root, whose potential is 0).
    fn reroot_subtree(&mut self, start: usize, parent: u32, arc: u32) {
        self.parent[start] = parent;
        self.parent_arc[start] = arc;
        if parent == NONE {
            self.depth[start] = 0;
            self.pot[start] = 0.0;
        } else {
            self.depth[start] = self.depth[parent as usize] + 1;
            self.pot[start] = self.arc_cost(arc) - self.pot[parent as usize];
        }
        let mut stack = vec![start];
        while let Some(x) = stack.pop() {
            for k in 0..self.adj[x].len() {
                let a = self.adj[x][k];
                if a == self.parent_arc[x] {
                    continue;
                }
                let y = self.other_end(a, x);
                self.parent[y] = x as u32;
                self.parent_arc[y] = a;
                self.depth[y] = self.depth[x] + 1;
                self.pot[y] = self.arc_cost(a) - self.pot[x];
                stack.push(y);
            }
        }
    }

    fn run(&mut self) -> Result<usize> {
        let (n, m) = (self.n, self.m);
        let total = n * m;
        let scale = self
            .cost
            .iter()
            .fold(0.0f64, |s, c| s.max(c.abs()))
            .max(1e-300);
        // Reduced costs of tree arcs are 0 up to rounding accumulated along tree paths.
        let tol = 1e-11 * scale;
        let block = ((total as f64).sqrt() as usize).clamp(10.min(total), total);
        let max_pivots = 50usize.saturating_mul(total).max(10_000);
        let (mut ci, mut cj) = (0usize, 0usize);
        let mut pivots = 0usize;
        let mut path_i: Vec<u32> = Vec::new();
        let mut path_j: Vec<u32> = Vec::new();
        loop {
            // Block search for the entering arc.
            let mut best = -tol;
            let mut enter = None;
            let mut scanned = 0usize;
            while scanned < total {
                let rc = self.cost[ci * m + cj] - self.pot[ci] - self.pot[n + cj];
                if rc < best {
                    best = rc;
                    enter = Some((ci, cj));
                }
                cj += 1;
                if cj == m {
                    cj = 0;
                    ci += 1;
                    if ci == n {
                        ci = 0;
                    }
                }
                scanned += 1;
                if enter.is_some() && scanned.is_multiple_of(block) {
                    break;
                }
            }
            let Some((ei, ej)) = enter else {
                return Ok(pivots);
            };
            pivots += 1;
            if pivots > max_pivots {
                return Err(invalid(
                    "exact OT",
                    format!("the network simplex did not finish within {max_pivots} pivots ({n}×{m} problem)"),
                ));
            }
            // The cycle: entering arc i → j, then the tree path j → apex → i. `path_j` holds
            // the child nodes from j up to the apex, `path_i` from i up to the apex.
            path_i.clear();
            path_j.clear();
            let (mut x, mut y) = (ei, n + ej);
            while self.depth[x] > self.depth[y] {
                path_i.push(x as u32);
                x = self.parent[x] as usize;
            }
            while self.depth[y] > self.depth[x] {
                path_j.push(y as u32);
                y = self.parent[y] as usize;
            }
            while x != y {
                path_i.push(x as u32);
                x = self.parent[x] as usize;
                path_j.push(y as u32);
                y = self.parent[y] as usize;
            }
            // Arcs that lose flow: on the j side those whose child is a column, on the i side
            // those whose child is a row. Walk from the apex along the push direction
            // (i side downwards, then j side upwards) and keep the last minimum.
            let mut theta = f64::INFINITY;
            let mut leave: Option<(bool, u32)> = None; // (on i side, child node)
            for &c in path_i.iter().rev() {
                if (c as usize) < n {
                    let f = self.arcs[self.parent_arc[c as usize] as usize].flow;
                    if f <= theta {
                        theta = f;
                        leave = Some((true, c));
                    }
                }
            }
            for &c in path_j.iter() {
                if (c as usize) >= n {
                    let f = self.arcs[self.parent_arc[c as usize] as usize].flow;
                    if f <= theta {
                        theta = f;
                        leave = Some((false, c));
                    }
                }
            }
            let Some((on_i_side, leave_child)) = leave else {
                return Err(invalid(
                    "exact OT",
                    "internal error: a simplex cycle with no blocking arc (the problem would be unbounded)",
                ));
            };
            let theta = theta.max(0.0);
            if theta > 0.0 {
                for &c in &path_i {
                    let a = self.parent_arc[c as usize] as usize;
                    if (c as usize) < n {
                        self.arcs[a].flow -= theta;
                    } else {
                        self.arcs[a].flow += theta;
                    }
                }
                for &c in &path_j {
                    let a = self.parent_arc[c as usize] as usize;
                    if (c as usize) >= n {
                        self.arcs[a].flow -= theta;
                    } else {
                        self.arcs[a].flow += theta;
                    }
                }
            }
            // Swap the leaving arc for the entering one and re-hang the cut-off subtree.
            let slot = self.parent_arc[leave_child as usize];
            let old = self.arcs[slot as usize];
            let (r_old, c_old) = (old.row as usize, n + old.col as usize);
            self.adj[r_old].retain(|&k| k != slot);
            self.adj[c_old].retain(|&k| k != slot);
            self.arcs[slot as usize] = TreeArc {
                row: ei as u32,
                col: ej as u32,
                flow: theta,
            };
            self.adj[ei].push(slot);
            self.adj[n + ej].push(slot);
            if on_i_side {
                self.reroot_subtree(ei, (n + ej) as u32, slot);
            } else {
                self.reroot_subtree(n + ej, ei as u32, slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The two exact solvers agree on uniform square problems (which `exact_ot` routes to the
    /// assignment solver): same cost, both certified by their duals, and the assignment's
    /// plan is a permutation with mass 1/n per row.
    #[test]
    fn assignment_route_agrees_with_the_network_simplex() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for (n, range) in [(1, 10), (2, 3), (9, 4), (40, 1000), (150, 10)] {
            let cost: Vec<f64> = (0..n * n)
                .map(|_| rng.random_range(0..range) as f64 / 7.0)
                .collect();
            let a = vec![1.0 / n as f64; n];
            let s = simplex_ot(&a, &a, &cost).unwrap();
            let e = exact_ot(&vec![3.0; n], &vec![3.0; n], &cost).unwrap();
            assert_eq!(e.pivots, 0, "n = {n}: the assignment route was not taken");
            assert!(
                (s.cost - e.cost).abs() < 1e-9,
                "n = {n}: {} vs {}",
                s.cost,
                e.cost
            );
            let mut rows = vec![0usize; n];
            e.plan.for_each(|i, j, w| {
                rows[i] += 1;
                assert!((w - 1.0 / n as f64).abs() < 1e-15);
                let reduced = cost[i * n + j] - e.row_potentials[i] - e.col_potentials[j];
                assert!(reduced.abs() < 1e-9, "plan entry ({i}, {j}) not tight");
            });
            assert!(rows.iter().all(|&r| r == 1));
            let dual: f64 = (0..n)
                .map(|i| (e.row_potentials[i] + e.col_potentials[i]) / n as f64)
                .sum();
            assert!(
                (dual - e.cost).abs() < 1e-9,
                "duality gap {}",
                dual - e.cost
            );
        }
    }

    fn permutations(k: usize) -> Vec<Vec<usize>> {
        if k == 0 {
            return vec![vec![]];
        }
        let mut out = Vec::new();
        for p in permutations(k - 1) {
            for pos in 0..=p.len() {
                let mut q = p.clone();
                q.insert(pos, k - 1);
                out.push(q);
            }
        }
        out
    }

    /// Checks primal feasibility, dual feasibility and zero duality gap.
    fn certify(a: &[f64], b: &[f64], cost: &[f64], s: &ExactOt) {
        let (n, m) = (a.len(), b.len());
        let (ta, tb): (f64, f64) = (a.iter().sum(), b.iter().sum());
        let pi = s.plan.to_dense();
        for i in 0..n {
            let row: f64 = pi[i * m..(i + 1) * m].iter().sum();
            assert!((row - a[i] / ta).abs() < 1e-12, "row {i} marginal");
        }
        for j in 0..m {
            let col: f64 = (0..n).map(|i| pi[i * m + j]).sum();
            assert!((col - b[j] / tb).abs() < 1e-12, "column {j} marginal");
        }
        let scale = cost.iter().fold(1.0f64, |s, c| s.max(c.abs()));
        let (u, v) = (&s.row_potentials, &s.col_potentials);
        for i in 0..n {
            for j in 0..m {
                assert!(
                    cost[i * m + j] - u[i] - v[j] > -1e-9 * scale,
                    "dual infeasible"
                );
            }
        }
        let dual: f64 = (0..n).map(|i| a[i] / ta * u[i]).sum::<f64>()
            + (0..m).map(|j| b[j] / tb * v[j]).sum::<f64>();
        assert!(
            (dual - s.cost).abs() < 1e-9 * scale,
            "gap {} vs {}",
            dual,
            s.cost
        );
    }

    #[test]
    fn matches_brute_force_over_permutations() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for k in 1..=7 {
            for _ in 0..5 {
                let cost: Vec<f64> = (0..k * k).map(|_| rng.random_range(0.0..10.0)).collect();
                let w = vec![1.0; k];
                let s = exact_ot(&w, &w, &cost).unwrap();
                let best = permutations(k)
                    .iter()
                    .map(|p| {
                        p.iter()
                            .enumerate()
                            .map(|(i, &j)| cost[i * k + j])
                            .sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min)
                    / k as f64;
                assert!(
                    (s.cost - best).abs() < 1e-12,
                    "k = {k}: {} vs {best}",
                    s.cost
                );
                certify(&w, &w, &cost, &s);
            }
        }
    }

    #[test]
    fn integer_masses_match_expanded_assignment() {
        // Masses that are multiples of 1/6 expand into a 6×6 assignment of unit atoms, whose
        // optimum (by enumeration) is the transport optimum (integrality of the LP).
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let perms = permutations(6);
        for (a, b) in [
            (vec![3.0, 2.0, 1.0], vec![1.0, 1.0, 4.0]),
            (vec![1.0, 5.0], vec![2.0, 2.0, 1.0, 1.0]),
        ] {
            for _ in 0..5 {
                let (n, m) = (a.len(), b.len());
                let cost: Vec<f64> = (0..n * m).map(|_| rng.random_range(-2.0..5.0)).collect();
                let rows: Vec<usize> = (0..n)
                    .flat_map(|i| std::iter::repeat_n(i, a[i] as usize))
                    .collect();
                let cols: Vec<usize> = (0..m)
                    .flat_map(|j| std::iter::repeat_n(j, b[j] as usize))
                    .collect();
                let best = perms
                    .iter()
                    .map(|p| {
                        p.iter()
                            .enumerate()
                            .map(|(r, &c)| cost[rows[r] * m + cols[c]])
                            .sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min)
                    / 6.0;
                let s = exact_ot(&a, &b, &cost).unwrap();
                assert!((s.cost - best).abs() < 1e-12, "{} vs {best}", s.cost);
                certify(&a, &b, &cost, &s);
            }
        }
    }

    #[test]
    fn certified_on_random_weighted_rectangular_problems() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for &(n, m) in &[(1, 5), (5, 1), (13, 29), (60, 40), (150, 150)] {
            let a: Vec<f64> = (0..n).map(|_| rng.random_range(0.01..1.0)).collect();
            let b: Vec<f64> = (0..m).map(|_| rng.random_range(0.01..1.0)).collect();
            let cost: Vec<f64> = (0..n * m).map(|_| rng.random_range(0.0..1.0)).collect();
            let s = exact_ot(&a, &b, &cost).unwrap();
            certify(&a, &b, &cost, &s);
        }
    }

    /// Proportional class weights of unequal classes give point masses `(n_c/N)(1/n_c)` that
    /// differ from `1/N` in the last bits. From `LARGE_PROBLEM_ENTRIES` the problem is solved
    /// as the uniform one it is (the assignment: a permutation, all entries equal, `1/N`);
    /// below, and for masses that really differ, the histograms are taken as given.
    #[test]
    fn histograms_uniform_to_rounding_are_uniform_on_large_problems() {
        use wowflow_core::cloud::LabeledCloud;
        use wowflow_core::ClassWeighting;
        let sizes = [1200usize, 549, 300];
        let n: usize = sizes.iter().sum();
        assert!(n * n >= LARGE_PROBLEM_ENTRIES);
        let mut offsets = vec![0];
        for s in sizes {
            offsets.push(offsets[offsets.len() - 1] + s);
        }
        let masses = LabeledCloud::from_parts(vec![0.0; n], 1, offsets, vec![0, 1, 2])
            .unwrap()
            .with_class_weighting(ClassWeighting::Proportional)
            .masses();
        assert!(
            masses.iter().any(|&m| m != masses[0]),
            "the premise: rounding makes these masses differ"
        );
        assert!(uniform(&masses, n * n) && !uniform(&masses, 40 * 40));
        let mut skewed = masses.clone();
        skewed[7] *= 1.0 + 1e-9;
        assert!(!uniform(&skewed, n * n));

        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let cost: Vec<f64> = (0..n * n).map(|_| rng.random_range(0.0..1.0)).collect();
        let s = exact_ot(&masses, &masses, &cost).unwrap();
        assert_eq!(s.pivots, 0, "the assignment route was not taken");
        let mut rows = vec![0usize; n];
        let mut total = 0.0;
        s.plan.for_each(|i, j, w| {
            rows[i] += 1;
            assert_eq!(w, 1.0 / n as f64, "entry ({i}, {j})");
            total += w * cost[i * n + j];
        });
        assert!(rows.iter().all(|&r| r == 1), "not a permutation");
        assert!((total - s.cost).abs() < 1e-12);
        // A small problem takes the masses as given (the simplex): rows carry them.
        let small = &masses[1180..1220]; // across classes 0 and 1
        let s = exact_ot(small, small, &cost[..1600]).unwrap();
        certify(small, small, &cost[..1600], &s);
    }

    #[test]
    fn names_bad_input() {
        assert!(exact_ot(&[1.0, -1.0], &[1.0], &[0.0, 0.0]).is_err());
        assert!(exact_ot(&[1.0], &[1.0], &[0.0, 0.0]).is_err());
        assert!(exact_ot(&[1.0], &[1.0], &[f64::NAN]).is_err());
    }
}

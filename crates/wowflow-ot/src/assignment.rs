//! The linear assignment problem by shortest augmenting paths (Jonker & Volgenant 1987, in
//! the form of Crouse 2016 that SciPy's `linear_sum_assignment` uses).
//!
//! Exact OT between two *uniform* histograms of the same length `n` has a permutation among
//! its optimal plans (Birkhoff–von Neumann: the transportation polytope with all masses `1/n`
//! is `1/n` times the Birkhoff polytope). Those problems are the common case here — an OTDD
//! flow step between equal-size datasets, the inner W₂ between equal-size classes — and are
//! highly degenerate for the network simplex (`2n − 1` basic arcs, `n` of them carrying
//! flow), while the assignment solver handles them directly: 0.22 s instead of 1.67 s at
//! `n = 2000` with squared-Euclidean costs in d = 784.
//!
//! Before the searches, column reduction and augmenting row reduction (Jonker & Volgenant's
//! first two phases) assign most rows by cheap moves. Then each free row `r` is added by a
//! Dijkstra search from `r` over the reduced costs
//! `C_ij − u_i − v_j ≥ 0` until it reaches an unassigned column; the duals are then updated so
//! that every assigned pair stays tight, and the path is flipped. The returned duals certify
//! optimality: `u_i + v_j ≤ C_ij` everywhere, with equality on the assignment.

use wowflow_core::error::{invalid, Result};

/// An optimal assignment with its duals.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// `col_of_row[i]`: the column assigned to row `i`.
    pub col_of_row: Vec<usize>,
    /// `Σ_i C[i, col_of_row[i]]`.
    pub cost: f64,
    /// Dual potentials: `u_i + v_j ≤ C_ij`, with equality on the assignment.
    pub row_potentials: Vec<f64>,
    /// Column potentials `v_j` (length `n`); pass them to [`linear_assignment_from`] to
    /// warm-start a nearby problem.
    pub col_potentials: Vec<f64>,
}

const NONE: usize = usize::MAX;

/// `min_σ Σ_i C[i, σ(i)]` over permutations `σ` of a row-major `n × n` cost matrix.
///
/// Errors on a cost that is not finite (an infinite entry could make the problem infeasible,
/// and NaN has no order).
pub fn linear_assignment(cost: &[f64], n: usize) -> Result<Assignment> {
    linear_assignment_from(cost, n, None)
}

/// [`linear_assignment`] started from column potentials `v` (e.g. the previous solution's,
/// when the costs changed a little, as between two steps of a flow): rows are reduced
/// against them (`u_i = min_j C_ij − v_j`) and each row whose minimising column is still free
/// takes it, so only the rows whose choice changed need a search. Any `v` gives the same
/// optimal cost; a good one gives it sooner.
pub fn linear_assignment_from(cost: &[f64], n: usize, start: Option<&[f64]>) -> Result<Assignment> {
    if cost.len() != n * n {
        return Err(wowflow_core::error::shape(
            "assignment cost",
            format!("n × n = {n} × {n}"),
            cost.len(),
        ));
    }
    if let Some(k) = cost.iter().position(|c| !c.is_finite()) {
        return Err(invalid(
            "assignment cost",
            format!("entry ({}, {}) is {}", k / n, k % n, cost[k]),
        ));
    }
    let mut u = vec![0.0f64; n];
    let mut v = vec![0.0f64; n];
    let mut col_of_row = vec![NONE; n];
    let mut row_of_col = vec![NONE; n];
    let mut shortest = vec![f64::INFINITY; n];
    let mut path = vec![NONE; n];
    let mut seen_row = vec![false; n];
    let mut seen_col = vec![false; n];
    let mut remaining: Vec<usize> = Vec::with_capacity(n);
    if let Some(v0) = start {
        if v0.len() != n || v0.iter().any(|x| !x.is_finite()) {
            return Err(invalid(
                "assignment start",
                format!("need {n} finite column potentials"),
            ));
        }
        v.copy_from_slice(v0);
        for i in 0..n {
            let row = &cost[i * n..(i + 1) * n];
            let (mut best, mut at) = (f64::INFINITY, 0);
            for j in 0..n {
                let r = row[j] - v[j];
                if r < best {
                    best = r;
                    at = j;
                }
            }
            u[i] = best;
            if row_of_col[at] == NONE {
                col_of_row[i] = at;
                row_of_col[at] = i;
            }
        }
    }
    // Column reduction (the first phase of Jonker–Volgenant): v_j = min_i C_ij keeps every
    // reduced cost non-negative with u = 0, and each column's minimising row, if still free,
    // takes it (a tight pair). Most rows start assigned, so few long searches remain.
    for j in (0..n).filter(|_| start.is_none()) {
        let (mut best, mut at) = (f64::INFINITY, 0);
        for i in 0..n {
            if cost[i * n + j] < best {
                best = cost[i * n + j];
                at = i;
            }
        }
        v[j] = best;
        if col_of_row[at] == NONE {
            col_of_row[at] = j;
            row_of_col[j] = at;
        }
    }
    augmenting_row_reduction(cost, n, &mut v, &mut col_of_row, &mut row_of_col);
    // Row duals for the searches: tight on every assigned pair, the row minimum of the
    // reduced costs on free rows, so that every reduced cost is non-negative.
    for i in 0..n {
        let row = &cost[i * n..(i + 1) * n];
        u[i] = match col_of_row[i] {
            NONE => row
                .iter()
                .zip(&v)
                .map(|(c, v)| c - v)
                .fold(f64::INFINITY, f64::min),
            j => row[j] - v[j],
        };
    }
    for cur in 0..n {
        if col_of_row[cur] != NONE {
            continue;
        }
        shortest.fill(f64::INFINITY);
        path.fill(NONE);
        seen_row.fill(false);
        seen_col.fill(false);
        remaining.clear();
        remaining.extend((0..n).rev());
        let mut min_val = 0.0f64;
        let mut i = cur;
        let sink = loop {
            seen_row[i] = true;
            let row = &cost[i * n..(i + 1) * n];
            let base = min_val - u[i];
            let (mut best, mut best_at) = (f64::INFINITY, NONE);
            for (at, &j) in remaining.iter().enumerate() {
                let r = base + row[j] - v[j];
                if r < shortest[j] {
                    path[j] = i;
                    shortest[j] = r;
                }
                // Ties go to an unassigned column: the search can stop there.
                if shortest[j] < best || (shortest[j] == best && row_of_col[j] == NONE) {
                    best = shortest[j];
                    best_at = at;
                }
            }
            if best_at == NONE {
                return Err(invalid("assignment cost", "no feasible assignment"));
            }
            min_val = best;
            let j = remaining.swap_remove(best_at);
            seen_col[j] = true;
            if row_of_col[j] == NONE {
                break j;
            }
            i = row_of_col[j];
        };
        // Duals: keep every assigned pair tight and all reduced costs non-negative.
        u[cur] += min_val;
        for r in 0..n {
            if seen_row[r] && r != cur {
                u[r] += min_val - shortest[col_of_row[r]];
            }
        }
        for c in 0..n {
            if seen_col[c] {
                v[c] -= min_val - shortest[c];
            }
        }
        // Flip the augmenting path.
        let mut j = sink;
        loop {
            let r = path[j];
            row_of_col[j] = r;
            std::mem::swap(&mut col_of_row[r], &mut j);
            if r == cur {
                break;
            }
        }
    }
    let total = (0..n).map(|i| cost[i * n + col_of_row[i]]).sum();
    Ok(Assignment {
        col_of_row,
        cost: total,
        row_potentials: u,
        col_potentials: v,
    })
}

/// Passes of augmenting row reduction. Jonker & Volgenant use two; on the 2000 × 2000 OTDD
/// problems of a 10-class flow step the free rows left for the searches go from 1843 (after
/// column reduction) to 538 after two passes and 146 after eight (each pass ≈ 9 ms), and the
/// solve from about 0.8 s to 0.53 s; more passes gain little.
const ARR_PASSES: usize = 8;

/// Augmenting row reduction, the second phase of Jonker & Volgenant (1987): each free row
/// takes the column of its smallest reduced cost `C_ij − v_j`, lowering that column's
/// potential by the gap to its second smallest so the row is tight there and prefers no
/// other column; the row it displaces is free again and is treated at once when the gap was
/// positive (else at the next pass). Every assigned row `i` stays at a column minimising
/// `C_ij − v_j` (lowering `v` elsewhere only raises other columns' reduced costs), which is
/// what the shortest-path phase needs; it is left with the few free rows that cheap moves do
/// not place.
fn augmenting_row_reduction(
    cost: &[f64],
    n: usize,
    v: &mut [f64],
    col_of_row: &mut [usize],
    row_of_col: &mut [usize],
) {
    let mut free: Vec<usize> = (0..n).filter(|&i| col_of_row[i] == NONE).collect();
    for _ in 0..ARR_PASSES {
        let mut next = Vec::new();
        // A displaced row can push another one out in turn; the budget bounds the chains
        // (rows still free afterwards are left to the searches).
        let mut budget = 4 * n;
        let mut k = 0;
        while k < free.len() {
            let i = free[k];
            k += 1;
            let row = &cost[i * n..(i + 1) * n];
            let (mut u1, mut j1, mut u2, mut j2) = (f64::INFINITY, NONE, f64::INFINITY, NONE);
            for j in 0..n {
                let r = row[j] - v[j];
                if r < u2 {
                    if r < u1 {
                        (u2, j2) = (u1, j1);
                        (u1, j1) = (r, j);
                    } else {
                        (u2, j2) = (r, j);
                    }
                }
            }
            if j1 == NONE {
                next.push(i);
                continue;
            }
            let (mut j, mut displaced) = (j1, row_of_col[j1]);
            let lowered = j2 != NONE && u2 > u1;
            if lowered {
                v[j1] -= u2 - u1;
            } else if displaced != NONE && j2 != NONE {
                // A tie: take the second column instead, if that displaces nobody.
                j = j2;
                displaced = row_of_col[j2];
            }
            col_of_row[i] = j;
            row_of_col[j] = i;
            if displaced != NONE {
                col_of_row[displaced] = NONE;
                if lowered && budget > 0 {
                    budget -= 1;
                    k -= 1;
                    free[k] = displaced;
                } else {
                    next.push(displaced);
                }
            }
        }
        free = next;
        if free.is_empty() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The minimum over all permutations, by enumeration (Heap's algorithm).
    fn brute_force(cost: &[f64], n: usize) -> f64 {
        let mut p: Vec<usize> = (0..n).collect();
        let mut c = vec![0usize; n];
        let eval = |p: &[usize]| (0..n).map(|i| cost[i * n + p[i]]).sum::<f64>();
        let mut best = eval(&p);
        let mut i = 0;
        while i < n {
            if c[i] < i {
                if i % 2 == 0 {
                    p.swap(0, i);
                } else {
                    p.swap(c[i], i);
                }
                best = best.min(eval(&p));
                c[i] += 1;
                i = 0;
            } else {
                c[i] = 0;
                i += 1;
            }
        }
        best
    }

    fn certify(cost: &[f64], n: usize, a: &Assignment) {
        let mut used = vec![false; n];
        for &j in &a.col_of_row {
            assert!(!used[j], "column {j} assigned twice");
            used[j] = true;
        }
        for i in 0..n {
            for j in 0..n {
                let reduced = cost[i * n + j] - a.row_potentials[i] - a.col_potentials[j];
                assert!(reduced > -1e-9, "reduced cost ({i}, {j}) = {reduced}");
            }
            let tight = cost[i * n + a.col_of_row[i]]
                - a.row_potentials[i]
                - a.col_potentials[a.col_of_row[i]];
            assert!(
                tight.abs() < 1e-9,
                "assigned pair of row {i} not tight: {tight}"
            );
        }
    }

    #[test]
    fn matches_enumeration_on_small_problems_with_ties() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for n in 1..=7 {
            for trial in 0..30 {
                // Integer costs in a small range: many ties and degenerate optima.
                let cost: Vec<f64> = (0..n * n)
                    .map(|_| rng.random_range(0..(if trial % 2 == 0 { 4 } else { 100 })) as f64)
                    .collect();
                let a = linear_assignment(&cost, n).unwrap();
                let want = brute_force(&cost, n);
                assert!(
                    (a.cost - want).abs() < 1e-9,
                    "n = {n}: {} vs {want}",
                    a.cost
                );
                certify(&cost, n, &a);
            }
        }
    }

    /// Clustered clouds (ten classes, as in an OTDD step) leave most rows free after column
    /// reduction and send augmenting row reduction through long displacement chains; the
    /// result must still be certified optimal, cold and from any start.
    #[test]
    fn certified_on_clustered_costs_cold_and_warm() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, d) = (300, 8);
        let centres: Vec<f64> = (0..10 * d).map(|_| rng.random_range(-3.0..3.0)).collect();
        let mut cloud = |shift: f64| -> Vec<f64> {
            (0..n * d)
                .map(|k| centres[(k / d % 10) * d + k % d] + shift + rng.random_range(-1.0..1.0))
                .collect()
        };
        let (x, y) = (cloud(0.0), cloud(0.3));
        let cost: Vec<f64> = (0..n * n)
            .map(|k| {
                let (i, j) = (k / n, k % n);
                (0..d).map(|t| (x[i * d + t] - y[j * d + t]).powi(2)).sum()
            })
            .collect();
        let cold = linear_assignment(&cost, n).unwrap();
        certify(&cost, n, &cold);
        let noisy: Vec<f64> = cold
            .col_potentials
            .iter()
            .map(|v| v + rng.random_range(-0.5..0.5))
            .collect();
        for start in [&cold.col_potentials, &noisy] {
            let warm = linear_assignment_from(&cost, n, Some(start)).unwrap();
            certify(&cost, n, &warm);
            assert!(
                (warm.cost - cold.cost).abs() < 1e-9 * cold.cost,
                "{} vs {}",
                warm.cost,
                cold.cost
            );
        }
    }

    #[test]
    fn certified_on_a_larger_random_problem_and_rejects_bad_costs() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let n = 120;
        let cost: Vec<f64> = (0..n * n).map(|_| rng.random_range(-5.0..5.0)).collect();
        certify(&cost, n, &linear_assignment(&cost, n).unwrap());
        assert!(linear_assignment(&[1.0, f64::NAN, 0.0, 1.0], 2).is_err());
        assert!(linear_assignment(&[1.0, 2.0, 3.0], 2).is_err());
        let empty = linear_assignment(&[], 0).unwrap();
        assert_eq!(empty.cost, 0.0);
    }
}

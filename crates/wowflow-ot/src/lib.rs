//! # wowflow-ot
//!
//! Optimal transport beyond one dimension, for wowflow (docs/math.md §6, §8):
//!
//! - **Solvers** between weighted histograms with a general cost matrix. Following the split
//!   of ott-jax/POT: the *problem* is `(a, b, C)` — two histograms and a row-major cost
//!   matrix; the *solvers* are [`exact`] (network simplex, the linear program solved to
//!   optimality), [`assignment`] (uniform histograms of equal length: an optimal plan is a
//!   permutation) and [`sinkhorn`](mod@sinkhorn) (entropic, log-domain); what comes out is a
//!   [`TransportPlan`] with its cost, dual potentials and convergence information.
//! - **Gaussians** and the Bures–Wasserstein closed form ([`gaussian`]).
//! - **Dataset distances** ([`distance`]): WoW, sliced WoW, OTDD (exact or Gaussian label
//!   costs) and SW-MMD between labeled clouds, on the measures the clouds carry.
//! - **Labels from plans** ([`assign`]): the class each flowed class or particle becomes;
//!   [`correspondence`]: the class-coupling layer that lets a classifier of `K` classes
//!   predict `C` others, and the matching of cluster ids with true labels.
//!
//! The one-dimensional exact OT that the sliced engine runs millions of times a step lives in
//! `wowflow-core` (`ot1d`), beside the engine that needs it.

#![warn(missing_docs)]

pub mod assign;
pub mod assignment;
pub mod correspondence;
pub mod distance;
pub mod exact;
pub mod gaussian;
pub mod sinkhorn;

pub use assign::{
    assign_by_nearest_neighbor, assign_by_ot, assign_from_costs, AssignmentMethod, ClassCost,
    LabelAssignment,
};
pub use assignment::{linear_assignment, linear_assignment_from, Assignment};
pub use correspondence::{ClassCorrespondence, LabelMatching};
pub use distance::{
    otdd, sliced_wow_distance, sw_mmd_distance, wow_distance, DatasetDistance, LabelCost,
    OtddConfig,
};
pub use exact::{exact_ot, exact_ot_from, ExactOt, LARGE_PROBLEM_ENTRIES};
pub use gaussian::{bures_wasserstein2, Gaussian, SpdRoots};
pub use sinkhorn::{sinkhorn, SinkhornConfig, SinkhornOt};

use serde::{Deserialize, Serialize};
use wowflow_core::error::{invalid, shape, CoreError, Result};

/// How an OT problem between histograms is solved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OtSolver {
    /// The exact linear program (network simplex).
    Exact,
    /// Entropic OT, log-domain Sinkhorn.
    Sinkhorn(SinkhornConfig),
}

/// A transport plan `π` (`rows × cols`), stored sparse (exact solutions have at most
/// `rows + cols − 1` non-zeros) or dense (entropic ones have none that are zero).
#[derive(Debug, Clone, PartialEq)]
pub enum TransportPlan {
    /// `(i, j, π_ij)` for the non-zero entries.
    Sparse {
        /// Number of source atoms `n` (length of `a`).
        rows: usize,
        /// Number of target atoms `m` (length of `b`).
        cols: usize,
        /// The non-zero entries `(i, j, π_ij)`; an exact solver returns them sorted by
        /// `(i, j)`.
        entries: Vec<(usize, usize, f64)>,
    },
    /// Row-major `rows × cols`.
    Dense {
        /// Number of source atoms `n` (length of `a`).
        rows: usize,
        /// Number of target atoms `m` (length of `b`).
        cols: usize,
        /// `π_ij` at `values[i * cols + j]`.
        values: Vec<f64>,
    },
}

impl TransportPlan {
    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Self::Sparse { rows, cols, .. } | Self::Dense { rows, cols, .. } => (*rows, *cols),
        }
    }

    /// Calls `f(i, j, π_ij)` for every (non-zero, for sparse plans) entry.
    pub fn for_each(&self, mut f: impl FnMut(usize, usize, f64)) {
        match self {
            Self::Sparse { entries, .. } => entries.iter().for_each(|&(i, j, v)| f(i, j, v)),
            Self::Dense { cols, values, .. } => values
                .iter()
                .enumerate()
                .filter(|(_, &v)| v != 0.0)
                .for_each(|(k, &v)| f(k / cols, k % cols, v)),
        }
    }

    /// The dense row-major matrix.
    pub fn to_dense(&self) -> Vec<f64> {
        match self {
            Self::Dense { values, .. } => values.clone(),
            Self::Sparse {
                cols,
                rows,
                entries,
            } => {
                let mut out = vec![0.0; rows * cols];
                entries.iter().for_each(|&(i, j, v)| out[i * cols + j] += v);
                out
            }
        }
    }

    /// `⟨π, C⟩`.
    pub fn cost(&self, cost: &[f64]) -> f64 {
        let cols = self.shape().1;
        let mut total = 0.0;
        self.for_each(|i, j, v| total += v * cost[i * cols + j]);
        total
    }
}

/// Solves `min_{π ∈ Π(a, b)} ⟨π, C⟩` with `solver`; returns the plan and `⟨π, C⟩`.
pub fn solve(
    a: &[f64],
    b: &[f64],
    cost: &[f64],
    solver: &OtSolver,
) -> Result<(TransportPlan, f64)> {
    match solver {
        OtSolver::Exact => {
            let s = exact_ot(a, b, cost)?;
            Ok((s.plan, s.cost))
        }
        OtSolver::Sinkhorn(cfg) => {
            let s = sinkhorn(a, b, cost, cfg)?;
            Ok((s.plan, s.cost))
        }
    }
}

/// Checks a histogram (finite, non-negative, positive total) and returns it normalised to
/// sum 1.
pub fn normalised(what: &str, h: &[f64]) -> Result<Vec<f64>> {
    if h.is_empty() {
        return Err(invalid(what, "a histogram needs at least one bin"));
    }
    if let Some(i) = h.iter().position(|&w| !(w.is_finite() && w >= 0.0)) {
        return Err(CoreError::BadWeight {
            what: what.into(),
            index: i,
            value: h[i],
        });
    }
    let total: f64 = h.iter().sum();
    if total <= 0.0 {
        return Err(invalid(what, "the histogram has zero total mass"));
    }
    Ok(h.iter().map(|w| w / total).collect())
}

pub(crate) fn check_cost(cost: &[f64], n: usize, m: usize) -> Result<()> {
    if cost.len() != n * m {
        return Err(shape(
            "cost matrix",
            format!("{n}×{m} = {} values", n * m),
            cost.len(),
        ));
    }
    if let Some(k) = cost.iter().position(|c| !c.is_finite()) {
        return Err(CoreError::NonFinite {
            what: format!("cost matrix (row {}, column {})", k / m, k % m),
            index: k,
            value: cost[k],
        });
    }
    Ok(())
}

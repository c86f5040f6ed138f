//! Entropic OT by log-domain Sinkhorn iterations (Cuturi 2013; the log-domain form of
//! Peyré & Cuturi 2019, §4.4).
//!
//! Solves `min_{π ∈ Π(a, b)} ⟨π, C⟩ + ε KL(π ‖ a ⊗ b)` through the dual potentials
//!
//! ```text
//! f_i ← −ε LSE_j((g_j − C_ij)/ε + log b_j)      g_j ← −ε LSE_i((f_i − C_ij)/ε + log a_i)
//! π_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)
//! ```
//!
//! Working with potentials instead of the scalings `exp(f/ε)` never overflows, whatever ε
//! is relative to the costs, so ε can go to 0 (where the plan tends to an exact optimum —
//! a test checks it). After each `g` update the column marginals are exact; the iteration
//! stops when the row marginals are within `tolerance` in ℓ¹.

use super::{check_cost, normalised, TransportPlan};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use wowflow_core::error::{invalid, Result};

/// Sinkhorn settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SinkhornConfig {
    /// Entropic regularisation ε (same units as the costs), > 0.
    pub epsilon: f64,
    /// Stop when `‖π1 − a‖₁ ≤ tolerance`.
    pub tolerance: f64,
    /// Iteration cap (one iteration = one `f` and one `g` update).
    pub max_iterations: usize,
}

impl Default for SinkhornConfig {
    fn default() -> Self {
        Self {
            epsilon: 0.05,
            tolerance: 1e-9,
            max_iterations: 1000,
        }
    }
}

/// Result of [`sinkhorn`].
#[derive(Debug, Clone, PartialEq)]
pub struct SinkhornOt {
    /// The entropic plan (dense).
    pub plan: TransportPlan,
    /// Transport cost `⟨π, C⟩` of the plan (without the entropy term).
    pub cost: f64,
    /// Dual potentials `f` (rows) and `g` (columns).
    pub f: Vec<f64>,
    /// Column potentials `g_j` (length `m`), in the units of the costs; the plan is
    /// `π_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)`.
    pub g: Vec<f64>,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the marginal error reached `tolerance` within `max_iterations`.
    pub converged: bool,
    /// Final `‖π1 − a‖₁`.
    ///
    /// When `converged`, this is the error of the returned plan. When the cap stopped the
    /// iteration it was measured one iteration before the returned plan, and it is `+∞`
    /// when the cap allowed a single iteration (`max_iterations ≤ 1`: nothing was measured).
    pub marginal_error: f64,
}

/// Log-domain Sinkhorn between histograms `a` (length `n`) and `b` (length `m`), both
/// normalised to mass 1, with the row-major `n × m` cost `cost`.
pub fn sinkhorn(a: &[f64], b: &[f64], cost: &[f64], config: &SinkhornConfig) -> Result<SinkhornOt> {
    let a = normalised("source histogram", a)?;
    let b = normalised("target histogram", b)?;
    let (n, m) = (a.len(), b.len());
    check_cost(cost, n, m)?;
    let eps = config.epsilon;
    if !(eps.is_finite() && eps > 0.0) {
        return Err(invalid(
            "epsilon",
            format!("must be finite and > 0, got {eps}"),
        ));
    }
    if config.tolerance.is_nan() || config.tolerance < 0.0 {
        return Err(invalid("tolerance", "must be ≥ 0"));
    }
    let log_a: Vec<f64> = a
        .iter()
        .map(|&w| if w > 0.0 { w.ln() } else { f64::NEG_INFINITY })
        .collect();
    let log_b: Vec<f64> = b
        .iter()
        .map(|&w| if w > 0.0 { w.ln() } else { f64::NEG_INFINITY })
        .collect();
    let cost_t: Vec<f64> = {
        let mut t = vec![0.0; n * m];
        for i in 0..n {
            for j in 0..m {
                t[j * n + i] = cost[i * m + j];
            }
        }
        t
    };
    let mut f = vec![0.0; n];
    let mut g = vec![0.0; m];
    let mut iterations = 0;
    let mut err = f64::INFINITY;
    // One soft-min update: out_r = −ε LSE_s((other_s − C_rs)/ε + log w_s).
    let update = |out: &mut [f64], other: &[f64], log_w: &[f64], c: &[f64], width: usize| {
        out.par_iter_mut().enumerate().for_each(|(r, o)| {
            let row = &c[r * width..(r + 1) * width];
            let mut mx = f64::NEG_INFINITY;
            for s in 0..width {
                mx = mx.max((other[s] - row[s]) / eps + log_w[s]);
            }
            let mut sum = 0.0;
            for s in 0..width {
                sum += ((other[s] - row[s]) / eps + log_w[s] - mx).exp();
            }
            *o = -eps * (mx + sum.ln());
        });
    };
    let mut f_new = vec![0.0; n];
    update(&mut f, &g, &log_b, cost, m);
    update(&mut g, &f, &log_a, &cost_t, n);
    iterations += 1;
    while iterations < config.max_iterations {
        // The next f update also measures the current plan's row marginals for free:
        // Σ_j π_ij = a_i exp((f_i − f_i^new)/ε). Columns are exact after each g update.
        update(&mut f_new, &g, &log_b, cost, m);
        err = (0..n)
            .map(|i| (a[i] * ((f[i] - f_new[i]) / eps).exp() - a[i]).abs())
            .sum();
        if err <= config.tolerance {
            break;
        }
        std::mem::swap(&mut f, &mut f_new);
        update(&mut g, &f, &log_a, &cost_t, n);
        iterations += 1;
    }
    let mut values = vec![0.0; n * m];
    values.par_chunks_mut(m).enumerate().for_each(|(i, row)| {
        for (j, v) in row.iter_mut().enumerate() {
            *v = ((f[i] + g[j] - cost[i * m + j]) / eps + log_a[i] + log_b[j]).exp();
        }
    });
    let total_cost = values.iter().zip(cost).map(|(p, c)| p * c).sum();
    Ok(SinkhornOt {
        plan: TransportPlan::Dense {
            rows: n,
            cols: m,
            values,
        },
        cost: total_cost,
        f,
        g,
        iterations,
        converged: err <= config.tolerance,
        marginal_error: err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact_ot;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn tends_to_the_exact_cost_as_epsilon_goes_to_zero() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (n, m) = (12, 9);
        let a: Vec<f64> = (0..n).map(|_| rng.random_range(0.1..1.0)).collect();
        let b: Vec<f64> = (0..m).map(|_| rng.random_range(0.1..1.0)).collect();
        let cost: Vec<f64> = (0..n * m).map(|_| rng.random_range(0.0..1.0)).collect();
        let exact = exact_ot(&a, &b, &cost).unwrap().cost;
        let mut prev_gap = f64::INFINITY;
        for eps in [1e-1, 1e-2, 1e-3, 1e-4] {
            let cfg = SinkhornConfig {
                epsilon: eps,
                tolerance: 1e-10,
                max_iterations: 200_000,
            };
            let s = sinkhorn(&a, &b, &cost, &cfg).unwrap();
            assert!(
                s.converged,
                "ε = {eps}: not converged after {} iterations",
                s.iterations
            );
            let gap = s.cost - exact;
            assert!(gap > -1e-8, "entropic cost below the exact optimum: {gap}");
            assert!(gap <= prev_gap + 1e-12, "gap did not shrink at ε = {eps}");
            prev_gap = gap;
        }
        assert!(prev_gap < 1e-3, "gap at ε = 1e-4 is {prev_gap}");
    }

    #[test]
    fn reports_non_convergence_and_bad_epsilon() {
        let cost = [0.0, 1.0, 1.0, 0.0];
        let cfg = SinkhornConfig {
            epsilon: 1e-3,
            tolerance: 0.0,
            max_iterations: 3,
        };
        let s = sinkhorn(&[1.0, 2.0], &[2.0, 1.0], &cost, &cfg).unwrap();
        assert_eq!(s.iterations, 3);
        assert!(!s.converged);
        let bad = SinkhornConfig {
            epsilon: 0.0,
            ..cfg
        };
        assert!(sinkhorn(&[1.0, 2.0], &[2.0, 1.0], &cost, &bad).is_err());
    }
}

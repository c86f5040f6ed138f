//! Distances between labeled datasets (docs/math.md §6): WoW, sliced WoW, OTDD (exact or
//! Gaussian label costs) and SW-MMD.
//!
//! All squared distances are returned as such (`W_{W_2}²`, `OTDD²`, …) together with what
//! produced them (plans, inner cost matrices), so callers can assign labels (docs/math.md §8) or
//! differentiate through the envelope theorem.
//!
//! # Which measure
//! Every function here works on the measures the clouds carry: class weights `a_c` and
//! particle weights `w_ci` are used exactly as given. The papers differ in how they build
//! those measures from a labeled dataset when classes differ in size (see
//! [`ClassWeighting`](wowflow_core::ClassWeighting)):
//! - WoW, sliced WoW and SW-MMD (Bonet, Vauthier & Korba 2025) are defined on
//!   `P = Σ_c a_c δ(μ_c)` with any class weights; the paper uses uniform `a_c = 1/C`.
//! - OTDD (Alvarez-Melis & Fusi 2020) is defined on the dataset's empirical measure, where
//!   every labeled point has mass `1/N`: build the clouds with
//!   [`ClassWeighting::Proportional`](wowflow_core::ClassWeighting::Proportional) (the CLI's
//!   default for `--kind otdd`). With uniform class weights and unequal class sizes the value
//!   is a different (class-balanced) quantity.

use crate::{
    bures_wasserstein2, exact_ot, solve, ExactOt, Gaussian, OtSolver, TransportPlan,
    LARGE_PROBLEM_ENTRIES,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use wowflow_core::cloud::LabeledCloud;
use wowflow_core::directions::DirectionSampler;
use wowflow_core::engine::{CpuEngine, Engine};
use wowflow_core::error::{shape, CoreError, Result};
use wowflow_core::kernel::Kernel;
use wowflow_core::linalg::pairwise_sq_dists;
use wowflow_core::ot1d::CostPower;

/// A dataset distance with its outer plan and inner (class-to-class) costs.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetDistance {
    /// The squared distance.
    pub value: f64,
    /// Outer optimal plan: `C × K` between classes (WoW) or `N × M` between labeled points
    /// (OTDD).
    pub plan: TransportPlan,
    /// Class-to-class costs, `C × K` row-major: `W_2²` (WoW, OTDD) or `SW_2²` (sliced WoW).
    pub inner_costs: Vec<f64>,
}

fn check_same_dim(p: &LabeledCloud, q: &LabeledCloud) -> Result<()> {
    if p.dim() != q.dim() {
        return Err(CoreError::DimensionMismatch {
            what: "second dataset".into(),
            expected: p.dim(),
            got: q.dim(),
        });
    }
    Ok(())
}

/// Exact `W_2²(μ_c, ν_k)` for every class pair (`C × K`, row-major): one GEMM and one network
/// simplex per pair (in parallel).
pub fn class_w2_costs(p: &LabeledCloud, q: &LabeledCloud) -> Result<Vec<f64>> {
    check_same_dim(p, q)?;
    Ok(class_w2_plans(p, q)?.into_iter().map(|s| s.cost).collect())
}

/// Exact label costs `W_2²(μ_c, ν_k)` with their plans (`C × K`, row-major) and the OTDD
/// ground cost `‖x_i − x'_j‖² + λ W_2²(μ_{y_i}, ν_{y'_j})` for them: what an OTDD evaluation
/// with exact label costs needs.
///
/// The class-pair ground costs are blocks of the `N × M` point distances. From
/// [`LARGE_PROBLEM_ENTRIES`] point pairs on, that matrix is computed once (one GEMM) and
/// both are read off it; below, each pair gets its own GEMM and the ground cost another, the
/// same numbers twice — ¾ of an OTDD flow step at 5 000 × 5 000, d = 784, and 1.6× the step
/// time (BENCHMARKS.md). Both routes agree to f32 rounding; they are not bit-identical for
/// every class shape (a one-point class takes a matrix–vector kernel), which is why the small
/// problems — where the GEMM never dominated and whose results are committed — keep theirs.
pub fn exact_label_costs_and_ground_cost(
    p: &LabeledCloud,
    q: &LabeledCloud,
    weight: f64,
) -> Result<(Vec<ExactOt>, Vec<f64>)> {
    check_same_dim(p, q)?;
    if p.n_points() * q.n_points() >= LARGE_PROBLEM_ENTRIES {
        let dists = PointSqDists::between(p, q)?;
        let plans = dists.class_w2_plans(p, q)?;
        let labels: Vec<f64> = plans.iter().map(|s| s.cost).collect();
        return Ok((plans, dists.into_ground_cost(p, q, &labels, weight)));
    }
    let plans = class_w2_plans(p, q)?;
    let labels: Vec<f64> = plans.iter().map(|s| s.cost).collect();
    Ok((plans, otdd_ground_cost(p, q, &labels, weight)))
}

/// Exact `W_2²(μ_c, ν_k)` and its solution for every class pair (`C × K`, row-major), one
/// GEMM and one network simplex per pair, in parallel.
fn class_w2_plans(p: &LabeledCloud, q: &LabeledCloud) -> Result<Vec<ExactOt>> {
    let d = p.dim();
    class_pair_solves(p, q, |c, k| {
        pairwise_sq_dists(
            p.class_points(c),
            p.class_len(c),
            q.class_points(k),
            q.class_len(k),
            d,
        )
    })
}

/// The exact OT between every class pair (in parallel), each on the ground cost `cost(c, k)`.
fn class_pair_solves(
    p: &LabeledCloud,
    q: &LabeledCloud,
    cost: impl Fn(usize, usize) -> Vec<f64> + Sync,
) -> Result<Vec<ExactOt>> {
    let kn = q.n_classes();
    let qw: Vec<Vec<f64>> = (0..kn).map(|k| q.class_particle_weights(k)).collect();
    let pw: Vec<Vec<f64>> = (0..p.n_classes())
        .map(|c| p.class_particle_weights(c))
        .collect();
    (0..p.n_classes() * kn)
        .into_par_iter()
        .map(|ck| {
            let (c, k) = (ck / kn, ck % kn);
            exact_ot(&pw[c], &qw[k], &cost(c, k))
        })
        .collect()
}

/// The `N × M` squared distances `‖x_i − x'_j‖²` between every point of `p` and every point
/// of `q`, computed once (one GEMM).
#[derive(Debug, Clone)]
struct PointSqDists {
    values: Vec<f64>,
    m: usize,
}

impl PointSqDists {
    /// All squared distances between the points of `p` (rows) and of `q` (columns).
    fn between(p: &LabeledCloud, q: &LabeledCloud) -> Result<Self> {
        check_same_dim(p, q)?;
        let (n, m) = (p.n_points(), q.n_points());
        Ok(Self {
            values: pairwise_sq_dists(p.points(), n, q.points(), m, p.dim()),
            m,
        })
    }

    /// The block of rows `rows` and columns `cols`, row-major.
    fn block(&self, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> Vec<f64> {
        let mut out = Vec::with_capacity(rows.len() * cols.len());
        for i in rows {
            out.extend_from_slice(&self.values[i * self.m + cols.start..i * self.m + cols.end]);
        }
        out
    }

    /// [`class_w2_plans`] with each pair's ground cost read off this matrix's `(c, k)` block.
    /// `p` and `q` are the clouds the matrix was computed [`between`](Self::between).
    fn class_w2_plans(&self, p: &LabeledCloud, q: &LabeledCloud) -> Result<Vec<ExactOt>> {
        if self.values.len() != p.n_points() * q.n_points() || self.m != q.n_points() {
            return Err(shape(
                "point distances for the class-pair W_2²",
                format!(
                    "{} × {} (the two clouds' points)",
                    p.n_points(),
                    q.n_points()
                ),
                format!("{} × {}", self.values.len() / self.m.max(1), self.m),
            ));
        }
        class_pair_solves(p, q, |c, k| self.block(p.class_range(c), q.class_range(k)))
    }

    /// The OTDD ground cost `‖x_i − x'_j‖² + λ L[y_i, y'_j]` for the label-to-label costs
    /// `labels` (`C × K`), built in place in this matrix.
    fn into_ground_cost(
        self,
        p: &LabeledCloud,
        q: &LabeledCloud,
        labels: &[f64],
        weight: f64,
    ) -> Vec<f64> {
        add_label_costs(self.values, &p.row_classes(), q, labels, weight)
    }
}

/// The Gaussian `N(m_c, Σ_c)` with the mean and covariance of each class measure `μ_c`
/// (its particle weights `w_c·` honoured; uniform weights give the maximum-likelihood
/// estimate, normalised by `n_c`).
pub fn class_gaussians(cloud: &LabeledCloud) -> Result<Vec<Gaussian>> {
    let d = cloud.dim();
    (0..cloud.n_classes())
        .map(|c| {
            let w = cloud.particle_weights().map(|w| &w[cloud.class_range(c)]);
            Gaussian::from_weighted_samples(cloud.class_points(c), w, cloud.class_len(c), d)
        })
        .collect()
}

/// `W_2²(N(m_c, Σ_c), N(m'_k, Σ'_k))` between the classes' Gaussians (the OTDD Gaussian
/// approximation), `C × K`. Each class Gaussian has the mean and covariance of the class
/// measure `μ_c`, particle weights included.
pub fn class_gaussian_costs(p: &LabeledCloud, q: &LabeledCloud) -> Result<Vec<f64>> {
    check_same_dim(p, q)?;
    let gp = class_gaussians(p)?;
    let gq = class_gaussians(q)?;
    let kn = gq.len();
    (0..gp.len() * kn)
        .into_par_iter()
        .map(|ck| bures_wasserstein2(&gp[ck / kn], &gq[ck % kn]))
        .collect()
}

/// WoW distance `W_{W_2}²(P, Q) = min_{Γ ∈ Π(a, b)} Σ Γ_ck W_2²(μ_c, ν_k)`, exact inside and
/// outside, with the clouds' class weights `a`, `b` and particle weights.
pub fn wow_distance(p: &LabeledCloud, q: &LabeledCloud) -> Result<DatasetDistance> {
    let inner = class_w2_costs(p, q)?;
    let s = exact_ot(p.class_weights(), q.class_weights(), &inner)?;
    Ok(DatasetDistance {
        value: s.cost,
        plan: s.plan,
        inner_costs: inner,
    })
}

/// Sliced WoW distance: `SW_2²` between classes (with `projections` random directions drawn
/// from `seed`), exact outer OT between the class weights `a`, `b`.
pub fn sliced_wow_distance(
    p: &LabeledCloud,
    q: &LabeledCloud,
    projections: usize,
    seed: u64,
) -> Result<DatasetDistance> {
    check_same_dim(p, q)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dirs = DirectionSampler::Gaussian.sample(projections, p.dim(), &mut rng)?;
    let inner = CpuEngine::new().sliced_costs(p, q, &dirs, CostPower::Two)?;
    let s = exact_ot(p.class_weights(), q.class_weights(), &inner)?;
    Ok(DatasetDistance {
        value: s.cost,
        plan: s.plan,
        inner_costs: inner,
    })
}

/// How OTDD measures the distance between two labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelCost {
    /// Exact `W_2²` between the class point clouds.
    Exact,
    /// Bures–Wasserstein between the class Gaussians.
    Gaussian,
}

/// OTDD settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OtddConfig {
    /// How the label-to-label term `W_2²(α_y, β_y')` is computed: exactly between the class
    /// clouds, or in closed form between their Gaussians.
    pub label_cost: LabelCost,
    /// Outer solver (exact, or entropic as in Alvarez-Melis & Fusi).
    pub solver: OtSolver,
    /// Weight of the label term in the ground cost `‖x − x'‖² + λ W_2²(α_y, β_y')`
    /// (1 in docs/math.md §6; 0 gives the feature-only `W_2²`).
    pub label_weight: f64,
}

impl Default for OtddConfig {
    fn default() -> Self {
        Self {
            label_cost: LabelCost::Exact,
            solver: OtSolver::Exact,
            label_weight: 1.0,
        }
    }
}

/// `OTDD²(P, Q) = min_π Σ π_ij [‖x_i − x'_j‖² + λ W_2²(α_{y_i}, β_{y'_j})]` (docs/math.md §6;
/// Alvarez-Melis & Fusi 2020), with particle masses `a_c w_ci` and `b_k w'_kj`. The plan is
/// `N × M` between labeled points; `inner_costs` are the label-to-label costs `C × K`.
///
/// Alvarez-Melis & Fusi's definition puts mass `1/N` on every labeled point: clouds with
/// [`ClassWeighting::Proportional`](wowflow_core::ClassWeighting::Proportional) class weights and
/// uniform particle weights (the module documentation says why this matters).
pub fn otdd(p: &LabeledCloud, q: &LabeledCloud, config: &OtddConfig) -> Result<DatasetDistance> {
    check_same_dim(p, q)?;
    let (labels, cost) = match config.label_cost {
        LabelCost::Exact => {
            let (plans, cost) = exact_label_costs_and_ground_cost(p, q, config.label_weight)?;
            (plans.into_iter().map(|s| s.cost).collect(), cost)
        }
        LabelCost::Gaussian => {
            let labels = class_gaussian_costs(p, q)?;
            let cost = otdd_ground_cost(p, q, &labels, config.label_weight);
            (labels, cost)
        }
    };
    let (plan, value) = solve(&p.masses(), &q.masses(), &cost, &config.solver)?;
    Ok(DatasetDistance {
        value,
        plan,
        inner_costs: labels,
    })
}

/// The `N × M` OTDD ground cost for given label-to-label costs.
pub fn otdd_ground_cost(
    p: &LabeledCloud,
    q: &LabeledCloud,
    labels: &[f64],
    weight: f64,
) -> Vec<f64> {
    labeled_ground_cost(p.points(), &p.row_classes(), q, labels, weight)
}

/// `‖x_i − x'_j‖² + λ L[g_i, y'_j]` for source rows `xs` whose labels are the rows `g_i` of
/// the label-cost table `L` (`· × K`): a class per row for the usual OTDD, one label
/// Gaussian per particle for the joint-driven variable-label dynamics.
pub fn labeled_ground_cost(
    xs: &[f32],
    row_labels: &[usize],
    q: &LabeledCloud,
    labels: &[f64],
    weight: f64,
) -> Vec<f64> {
    let (n, m) = (row_labels.len(), q.n_points());
    let cost = pairwise_sq_dists(xs, n, q.points(), m, q.dim());
    add_label_costs(cost, row_labels, q, labels, weight)
}

/// `cost[i, j] += λ L[g_i, y'_j]` on an `N × M` matrix of squared feature distances.
fn add_label_costs(
    mut cost: Vec<f64>,
    row_labels: &[usize],
    q: &LabeledCloud,
    labels: &[f64],
    weight: f64,
) -> Vec<f64> {
    let (m, kn) = (q.n_points(), q.n_classes());
    let yq = q.row_classes();
    cost.par_chunks_mut(m).enumerate().for_each(|(i, row)| {
        let li = &labels[row_labels[i] * kn..(row_labels[i] + 1) * kn];
        for (j, c) in row.iter_mut().enumerate() {
            *c += weight * li[yq[j]];
        }
    });
    cost
}

/// `MMD_K(P, Q)` with a sliced-Wasserstein kernel (`projections` directions from `seed`),
/// between `P = Σ a_c δ(μ_c)` and `Q = Σ b_k δ(ν_k)` with the clouds' class weights.
/// Returns the MMD itself (not squared), `√(2F)` with `F = ½ MMD²` of docs/math.md §5.
pub fn sw_mmd_distance(
    p: &LabeledCloud,
    q: &LabeledCloud,
    kernel: &Kernel,
    projections: usize,
    seed: u64,
) -> Result<f64> {
    check_same_dim(p, q)?;
    kernel.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dirs = DirectionSampler::Gaussian.sample(projections, p.dim(), &mut rng)?;
    let mut grad = vec![0.0f32; p.points().len()];
    let out = CpuEngine::new().sw_mmd(p, q, &dirs, kernel, &mut grad)?;
    Ok((2.0 * out.value).max(0.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn random_cloud(classes: usize, per: usize, d: usize, seed: u64) -> LabeledCloud {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pts = (0..classes * per * d)
            .map(|k| rng.random_range(-1.0..1.0) + (k / (per * d)) as f32 * 0.7)
            .collect();
        LabeledCloud::uniform(classes, per, d, pts).unwrap()
    }

    #[test]
    fn wow_is_symmetric_zero_on_equal_and_obeys_the_triangle_inequality() {
        for seed in 0..6 {
            let p = random_cloud(3, 5, 2, seed);
            let q = random_cloud(2, 6, 2, seed + 100);
            let r = random_cloud(3, 4, 2, seed + 200);
            let pq = wow_distance(&p, &q).unwrap().value;
            let qp = wow_distance(&q, &p).unwrap().value;
            assert!(
                (pq - qp).abs() < 1e-9 * pq.max(1.0),
                "symmetry: {pq} vs {qp}"
            );
            assert!(wow_distance(&p, &p).unwrap().value.abs() < 1e-9);
            let pr = wow_distance(&p, &r).unwrap().value;
            let rq = wow_distance(&r, &q).unwrap().value;
            // The metric is W_{W_2} = √(value).
            assert!(
                pq.sqrt() <= pr.sqrt() + rq.sqrt() + 1e-9,
                "triangle: {pq} {pr} {rq}"
            );
        }
    }

    /// The shared point distances give the label costs (to f32 rounding) and the ground cost
    /// (bit for bit, the same GEMM) of the separate computations: class blocks of unequal sizes on both sides (the network simplex route)
    /// and of equal sizes (the assignment route); bad pairings of matrix and clouds are
    /// refused.
    #[test]
    fn shared_point_distances_match_the_separate_computations() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut cloud = |sizes: &[usize], d: usize| {
            let n: usize = sizes.iter().sum();
            let pts: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut offsets = vec![0];
            for &s in sizes {
                offsets.push(offsets[offsets.len() - 1] + s);
            }
            let ids = (0..sizes.len() as i64).collect();
            LabeledCloud::from_parts(pts, d, offsets, ids).unwrap()
        };
        for (ps, qs, d) in [
            (vec![7, 3, 12], vec![5, 9], 40),
            (vec![6, 6], vec![6, 6, 6], 3),
            (vec![1, 4], vec![2, 1, 3], 50),
        ] {
            let (p, q) = (cloud(&ps, d), cloud(&qs, d));
            let dists = PointSqDists::between(&p, &q).unwrap();
            let plans = dists.class_w2_plans(&p, &q).unwrap();
            let separate = class_w2_costs(&p, &q).unwrap();
            for (ck, (ExactOt { cost: v, plan, .. }, w)) in plans.iter().zip(&separate).enumerate()
            {
                // Both read squared distances from an f32 GEMM (of different shapes here):
                // agreement to f32 rounding.
                assert!((v - w).abs() <= 1e-5 * w.max(1.0), "pair {ck}: {v} vs {w}");
                let (c, k) = (ck / qs.len(), ck % qs.len());
                assert_eq!(plan.shape(), (ps[c], qs[k]));
            }
            let labels: Vec<f64> = plans.iter().map(|s| s.cost).collect();
            let shared = dists.into_ground_cost(&p, &q, &labels, 0.7);
            let direct = otdd_ground_cost(&p, &q, &labels, 0.7);
            assert!(shared
                .iter()
                .zip(&direct)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        let (p, q) = (cloud(&[3, 3], 4), cloud(&[2, 2], 4));
        let other = cloud(&[3, 4], 4);
        let err = PointSqDists::between(&p, &q)
            .unwrap()
            .class_w2_plans(&p, &other)
            .unwrap_err()
            .to_string();
        assert!(err.contains("6 × 7") && err.contains("6 × 4"), "{err}");
        assert!(PointSqDists::between(&p, &cloud(&[2], 5)).is_err());
    }

    #[test]
    fn otdd_reduces_to_feature_w2_with_a_single_label() {
        let p = random_cloud(1, 12, 3, 1);
        let q = random_cloud(1, 12, 3, 2);
        let w2 = class_w2_costs(&p, &q).unwrap()[0];
        // One label each side: the label term is the constant W_2²(P, Q), so OTDD² = 2 W_2²…
        let full = otdd(&p, &q, &OtddConfig::default()).unwrap().value;
        assert!((full - 2.0 * w2).abs() < 1e-9, "{full} vs 2 × {w2}");
        // …and without the label term it is exactly the feature W_2².
        let cfg = OtddConfig {
            label_weight: 0.0,
            ..OtddConfig::default()
        };
        let feat = otdd(&p, &q, &cfg).unwrap().value;
        assert!((feat - w2).abs() < 1e-9, "{feat} vs {w2}");
        // Gaussian label costs and entropic outer OT run and stay close.
        let cfg = OtddConfig {
            label_cost: LabelCost::Gaussian,
            solver: OtSolver::Sinkhorn(crate::SinkhornConfig {
                epsilon: 1e-2,
                tolerance: 1e-7,
                max_iterations: 100_000,
            }),
            label_weight: 1.0,
        };
        let g = otdd(&p, &q, &cfg).unwrap().value;
        assert!(g.is_finite() && g > 0.0);
    }

    #[test]
    fn sliced_wow_and_sw_mmd_vanish_on_equal_datasets() {
        let p = random_cloud(3, 8, 4, 7);
        let q = random_cloud(3, 8, 4, 8);
        assert!(sliced_wow_distance(&p, &p, 50, 0).unwrap().value < 1e-9);
        assert!(sliced_wow_distance(&p, &q, 50, 0).unwrap().value > 0.0);
        assert!(sw_mmd_distance(&p, &p, &Kernel::RIESZ, 50, 0).unwrap() < 1e-6);
        assert!(sw_mmd_distance(&p, &q, &Kernel::RIESZ, 50, 0).unwrap() > 0.0);
    }
}

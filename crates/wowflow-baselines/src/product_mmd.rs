//! The product-space MMD flow of Hua et al. (2023), a baseline of the documents
//! (docs/math.md §7; labels as in §8).
//!
//! # The method
//!
//! Each labeled point becomes a particle `z = (x, m, Σ) ∈ R^d × R^p × S_p^{++}`: its
//! features `x` and the Gaussian `N(m, Σ)` of its class in a `p`-dimensional PCA embedding
//! of the labels ([`LabelEmbedding`]; `p = 2` as in the paper: enough to separate ten class
//! Gaussians, and `Σ` stays a cheap `2 × 2` matrix). With particle masses `p_i`
//! (source, `a_c w_ci`) and `q_j` (target), the functional is
//!
//! ```text
//! F(μ) = ½ MMD_k²(μ, ν) = ½ Σ_ij p_i p_j k(z_i, z_j) − Σ_ij p_i q_j k(z_i, w_j) + ½ Σ_ij q_i q_j k(w_i, w_j)
//! k(z, z') = exp(−‖x − x'‖² / h_x) · exp(−‖m − m'‖² / h_m) · exp(−‖Σ − Σ'‖_F² / h_Σ)
//! ```
//!
//! The product of Gaussian kernels with a *Frobenius* kernel on `Σ` is the one in the
//! authors' slides (the paper's source); note `h` divides the squared distance directly
//! (no factor 2).
//!
//! # Conventions
//!
//! - **Gradients** are WoW-style: the gradient of the first variation
//!   `δF/δμ(z) = Σ_j p_j k(z, z_j) − Σ_j q_j k(z, w_j)` at particle `i`, i.e. `∂F/∂z_i / p_i`
//!   (as in [`crate::euclid_mmd`]), so the step size does not scale with `N`. The `Σ` part is
//!   the symmetric Euclidean gradient `−(2/h_Σ) Σ_j w_ij (Σ_i − Σ_j)`, paired with symmetric
//!   directions by the Frobenius inner product.
//! - **Steps**: heavy ball as in the paper's code (`v ← g + m v`) on all three parts; `x` and
//!   `m` move by `−τ v`, `Σ` by the Bures–Wasserstein exponential map
//!   `exp_Σ(S) = (I + S) Σ (I + S)` with `S = −2τ v_Σ` ([`bures_exp`]; one `τ` as in the
//!   paper, or per part with [`ProductMmdConfig::tau_m`] / `tau_sigma`), which keeps `Σ`
//!   positive semi-definite by construction. A step with `I + S` not positive definite
//!   passes the cut locus of the geodesic (no longer a gradient step; in practice it throws
//!   `Σ` far away and the flow stalls), so it is refused with [`CoreError::Diverged`]: lower
//!   `tau_sigma` then. The velocity of `Σ` is reused at the new point without parallel
//!   transport, as in the authors' scheme.
//! - **Labels** at the end ([`assign_product_labels`]): exact OT between the particle
//!   Gaussians `(m_i, Σ_i)` (masses `p_i`) and the target class Gaussians (class weights)
//!   with cost `W_2²` between Gaussians; each particle takes the target class where its plan
//!   row has most mass.
//! - **Determinism**: there is no randomness in the flow (the PCA start block uses a fixed
//!   seed), and every reduction runs in a fixed order, so the same inputs give bit-identical
//!   results for a fixed thread count.
//!
//! # Cost
//!
//! The product kernel is one Gaussian kernel on the scaled coordinates
//! `u = [x / √h_x, m / √h_m, vec(Σ) / √h_Σ]`, so for `d > 32` a step is two `f32` GEMMs over
//! the column set `[source; target]` — `U_src Uᵀ` for the squared distances and `W U` for
//! every part of the gradient, about `4 N (N + M) (d + p + p²)` flops — plus one parallel
//! pass of `N (N + M)` exponentials. For `d ≤ 32` everything is computed directly in `f64`.
//! The PCA is fitted once (see [`LabelEmbedding`]).
//!
//! # Example
//!
//! ```
//! use wowflow_baselines::{ProductMmdConfig, ProductMmdObjective};
//! use wowflow_core::{Flow, FlowConfig, FlowState, LabeledCloud};
//! # fn main() -> wowflow_core::Result<()> {
//! // Two classes in R^3, the source a shifted copy of the target.
//! let target = LabeledCloud::uniform(2, 3, 3, vec![
//!     -2.0, 0.1, 0.0, -2.2, -0.1, 0.1, -1.9, 0.0, -0.1,
//!      2.0, 0.3, 0.0,  2.1, -0.2, 0.1,  1.8, 0.0,  0.2,
//! ])?;
//! let shifted: Vec<f32> = target.points().iter().map(|v| v + 0.3).collect();
//! let source = LabeledCloud::uniform(2, 3, 3, shifted)?;
//! // Three points per class give tiny, similar covariances: Σ needs a small step here.
//! let config = ProductMmdConfig { steps: 30, tau_sigma: Some(1e-3), ..Default::default() };
//! let mut objective = ProductMmdObjective::new(&source, &target, config)?;
//! let mut state = FlowState::new(source.clone());
//! Flow {
//!     optimizer: config.optimizer()?,
//!     objective: &mut objective,
//!     config: FlowConfig { steps: config.steps, seed: 0, clip: None, temperature: None },
//! }
//! .run(&mut state, &mut [])?;
//! assert!(state.losses[29] < state.losses[0]);
//! assert_eq!(objective.assign_labels(state.cloud.points())?, vec![0, 0, 0, 1, 1, 1]);
//! # Ok(())
//! # }
//! ```

mod embedding;
mod objective;

pub use embedding::{ClassGaussians, EmbeddingConfig, LabelEmbedding, FULL_EIGEN_MAX_DIM};
pub use objective::{Bandwidth, BandwidthSpec, Bandwidths, ProductGrad, ProductMmd};

use embedding::{check_finite, is_symmetric};
use rand::RngCore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use wowflow_core::cloud::LabeledCloud;
use wowflow_core::error::{invalid, shape, CoreError, Result};
use wowflow_core::linalg::symmetrise;
use wowflow_core::linalg::{matmul, symmetric_eigenvalues};
use wowflow_core::objective::{check_inputs, Objective};
use wowflow_core::optim::{Method, Optimizer};
use wowflow_ot::assign::assign_from_costs;
use wowflow_ot::{bures_wasserstein2, Gaussian};

/// Particles `(x_i, m_i, Σ_i)` with masses `p_i`.
///
/// `x` is row-major `N × d` (`f32`, like [`LabeledCloud`]), `m` is `N × p` and `sigma` is
/// `N × p × p` (row-major, symmetric), both `f64`. Masses are positive and sum to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductParticles {
    feature_dim: usize,
    label_dim: usize,
    /// Features, `N × d`.
    pub x: Vec<f32>,
    /// Embedded class means, `N × p`.
    pub m: Vec<f64>,
    /// Embedded class covariances, `N × p × p`.
    pub sigma: Vec<f64>,
    masses: Vec<f64>,
}

impl ProductParticles {
    /// The particles of a labeled dataset: row `i` of `cloud` (same order) with the Gaussian
    /// of its class in `embedding`, mass `a_c w_ci`.
    pub fn from_cloud(cloud: &LabeledCloud, embedding: &LabelEmbedding) -> Result<Self> {
        let gaussians = embedding.class_gaussians(cloud)?;
        let (n, p) = (cloud.n_points(), embedding.dim());
        let mut m = Vec::with_capacity(n * p);
        let mut sigma = Vec::with_capacity(n * p * p);
        let mut masses = Vec::with_capacity(n);
        for c in 0..cloud.n_classes() {
            for i in cloud.class_range(c) {
                m.extend_from_slice(gaussians.mean(c));
                sigma.extend_from_slice(gaussians.covariance(c));
                masses.push(cloud.class_weights()[c] * cloud.particle_weight(c, i));
            }
        }
        Self::from_parts(cloud.points().to_vec(), cloud.dim(), m, sigma, p, masses)
    }

    /// From raw parts (shapes as in the type's docs); checks shapes, finiteness, symmetry of
    /// every `Σ_i` and the masses (positive, finite; normalised here to sum to 1).
    pub fn from_parts(
        x: Vec<f32>,
        feature_dim: usize,
        m: Vec<f64>,
        sigma: Vec<f64>,
        label_dim: usize,
        masses: Vec<f64>,
    ) -> Result<Self> {
        if feature_dim == 0 {
            return Err(CoreError::ZeroDimension);
        }
        if label_dim == 0 {
            return Err(invalid("label dimension", "p must be at least 1"));
        }
        let masses = wowflow_ot::normalised("particle masses", &masses)?;
        let out = Self {
            feature_dim,
            label_dim,
            x,
            m,
            sigma,
            masses,
        };
        out.check_shapes()?;
        check_finite("particle features", out.x.iter().map(|&v| v as f64))?;
        check_finite("particle means", out.m.iter().copied())?;
        check_finite("particle covariances", out.sigma.iter().copied())?;
        let pp = label_dim * label_dim;
        if let Some(i) = out
            .sigma
            .chunks_exact(pp)
            .position(|s| !is_symmetric(s, label_dim))
        {
            return Err(invalid(
                "particle covariances",
                format!("Σ of particle {i} is not symmetric"),
            ));
        }
        Ok(out)
    }

    fn check_shapes(&self) -> Result<()> {
        let (n, d, p) = (self.len(), self.feature_dim, self.label_dim);
        let expect = |what: &str, len: usize, want: usize, dims: String| {
            if len == want {
                Ok(())
            } else {
                Err(shape(what, format!("{dims} = {want} values"), len))
            }
        };
        expect("particle features", self.x.len(), n * d, format!("{n}×{d}"))?;
        expect("particle means", self.m.len(), n * p, format!("{n}×{p}"))?;
        expect(
            "particle covariances",
            self.sigma.len(),
            n * p * p,
            format!("{n}×{p}×{p}"),
        )
    }

    /// Number of particles `N`.
    pub fn len(&self) -> usize {
        self.masses.len()
    }
    /// Always false (masses are checked non-empty).
    pub fn is_empty(&self) -> bool {
        self.masses.is_empty()
    }
    /// Feature dimension `d`.
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }
    /// Label-embedding dimension `p`.
    pub fn label_dim(&self) -> usize {
        self.label_dim
    }
    /// Particle masses (sum to 1).
    pub fn masses(&self) -> &[f64] {
        &self.masses
    }
    /// Mean of particle `i` (length `p`).
    pub fn mean(&self, i: usize) -> &[f64] {
        &self.m[i * self.label_dim..(i + 1) * self.label_dim]
    }
    /// Covariance of particle `i` (`p × p`).
    pub fn covariance(&self, i: usize) -> &[f64] {
        let pp = self.label_dim * self.label_dim;
        &self.sigma[i * pp..(i + 1) * pp]
    }
    /// Clamps every feature to `[lo, hi]` (the transfer experiment clips images to `[0, 1]`
    /// once, at the end of the flow).
    pub fn clip(&mut self, lo: f32, hi: f32) {
        self.x.iter_mut().for_each(|v| *v = v.clamp(lo, hi));
    }
}

/// A flowing source: its particles, the heavy-ball velocities of the three parts, and the
/// number of steps taken. Everything a checkpoint needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductState {
    /// The source particles `(x_i, m_i, Σ_i)` at step `step`.
    pub particles: ProductParticles,
    /// Velocity of `x` (`N × d`).
    pub velocity_x: Vec<f32>,
    /// Velocity of `m` (`N × p`).
    pub velocity_m: Vec<f64>,
    /// Velocity of `Σ` (`N × p × p`, symmetric).
    pub velocity_sigma: Vec<f64>,
    /// Steps completed.
    pub step: usize,
}

impl ProductState {
    /// The source dataset at rest (row order = the cloud's rows), see
    /// [`ProductParticles::from_cloud`].
    pub fn new(source: &LabeledCloud, embedding: &LabelEmbedding) -> Result<Self> {
        Ok(Self::at_rest(ProductParticles::from_cloud(
            source, embedding,
        )?))
    }

    /// Given particles with zero velocities at step 0.
    pub fn at_rest(particles: ProductParticles) -> Self {
        Self {
            velocity_x: vec![0.0; particles.x.len()],
            velocity_m: vec![0.0; particles.m.len()],
            velocity_sigma: vec![0.0; particles.sigma.len()],
            particles,
            step: 0,
        }
    }

    /// One heavy-ball step with WoW gradient `grad`: `v ← g + momentum · v`, then
    /// `x ← x − τ_x v_x`, `m ← m − τ_m v_m`, `Σ ← exp_Σ(−2τ_Σ v_Σ)`. The update is computed
    /// aside and committed only when every new value is finite and every `Σ` step stays
    /// inside the geodesic's domain (`I + S` positive definite); otherwise the state is left
    /// as it was and [`CoreError::Diverged`] names the part that failed.
    pub fn apply_gradient(
        &mut self,
        grad: &ProductGrad,
        tau: StepSizes,
        momentum: f64,
    ) -> Result<()> {
        tau.validate()?;
        if !(0.0..1.0).contains(&momentum) {
            return Err(invalid(
                "momentum",
                format!("must lie in [0, 1), got {momentum}"),
            ));
        }
        let pt = &self.particles;
        pt.check_shapes()?;
        for (what, got, want) in [
            ("feature gradient", grad.x.len(), pt.x.len()),
            ("mean gradient", grad.m.len(), pt.m.len()),
            ("covariance gradient", grad.sigma.len(), pt.sigma.len()),
            ("feature velocity", self.velocity_x.len(), pt.x.len()),
            ("mean velocity", self.velocity_m.len(), pt.m.len()),
            (
                "covariance velocity",
                self.velocity_sigma.len(),
                pt.sigma.len(),
            ),
        ] {
            if got != want {
                return Err(shape(what, want, got));
            }
        }
        let vx = heavy_ball_f32(&self.velocity_x, &grad.x, momentum as f32);
        let tau_x = tau.x as f32;
        let x: Vec<f32> = pt.x.iter().zip(&vx).map(|(&x, &v)| x - tau_x * v).collect();
        let labels = self.label_step(grad, tau, momentum)?;
        if let Some((i, v)) = first_non_finite(x.iter().map(|&v| v as f64)) {
            return Err(self.diverged(format!(
                "features x: value {v} at index {i} after the update"
            )));
        }
        self.velocity_x = vx;
        self.particles.x = x;
        self.commit_labels(labels);
        Ok(())
    }

    fn diverged(&self, reason: String) -> CoreError {
        CoreError::Diverged {
            step: self.step,
            last_good_step: self.step,
            reason,
        }
    }

    /// The heavy-ball step of the label parts `(m, Σ)`, computed aside: new velocities,
    /// means and covariances, or the reason the step is refused (a `Σ` step past the cut
    /// locus, a non-finite value).
    fn label_step(&self, grad: &ProductGrad, tau: StepSizes, momentum: f64) -> Result<LabelStep> {
        let pt = &self.particles;
        let vm = heavy_ball(&self.velocity_m, &grad.m, momentum);
        let vs = heavy_ball(&self.velocity_sigma, &grad.sigma, momentum);
        let m: Vec<f64> = pt.m.iter().zip(&vm).map(|(&m, &v)| m - tau.m * v).collect();
        let p = pt.label_dim;
        let pp = p * p;
        let stepped: Vec<std::result::Result<Vec<f64>, f64>> = pt
            .sigma
            .par_chunks_exact(pp)
            .zip(vs.par_chunks_exact(pp))
            .map(|(s, v)| bures_step(s, v, tau.sigma, p))
            .collect();
        if let Some((i, lambda)) = stepped
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.as_ref().err().map(|&l| (i, l)))
        {
            return Err(self.diverged(format!(
                "the Σ step of particle {i} passes the cut locus of the Bures–Wasserstein \
                 geodesic (smallest eigenvalue of I + S is {lambda:.3e} ≤ 0): lower tau_sigma"
            )));
        }
        let sigma: Vec<f64> = stepped.into_iter().flatten().flatten().collect();
        for (what, bad) in [
            ("means m", first_non_finite(m.iter().copied())),
            ("covariances Σ", first_non_finite(sigma.iter().copied())),
        ] {
            if let Some((i, v)) = bad {
                return Err(
                    self.diverged(format!("{what}: value {v} at index {i} after the update"))
                );
            }
        }
        Ok(LabelStep { vm, vs, m, sigma })
    }

    fn commit_labels(&mut self, l: LabelStep) {
        self.velocity_m = l.vm;
        self.velocity_sigma = l.vs;
        self.particles.m = l.m;
        self.particles.sigma = l.sigma;
        self.step += 1;
    }
}

/// A computed, not yet committed, step of the label parts.
struct LabelStep {
    vm: Vec<f64>,
    vs: Vec<f64>,
    m: Vec<f64>,
    sigma: Vec<f64>,
}

/// Step sizes of the three parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepSizes {
    /// `τ_x`, step size of the features (`x ← x − τ_x v_x`).
    pub x: f64,
    /// `τ_m`, step size of the embedded means (`m ← m − τ_m v_m`).
    pub m: f64,
    /// `τ_Σ`, step size of the covariances (`Σ ← exp_Σ(−2τ_Σ v_Σ)`, dimensionless).
    pub sigma: f64,
}

impl StepSizes {
    /// Checks that all three are finite and positive.
    pub fn validate(&self) -> Result<()> {
        for (name, tau) in [
            ("tau", self.x),
            ("tau_m", self.m),
            ("tau_sigma", self.sigma),
        ] {
            if !(tau.is_finite() && tau > 0.0) {
                return Err(invalid(
                    name,
                    format!("step size must be finite and > 0, got {tau}"),
                ));
            }
        }
        Ok(())
    }
}

/// `exp_Σ(S)` with `S = −2 τ_Σ v` (`v` the symmetric velocity, `p × p`), or the smallest
/// eigenvalue of `I + S` when it is not positive: the geodesic
/// `t ↦ (I + tS) Σ (I + tS)` only minimises length while `I + tS` stays positive definite,
/// so a longer step is no longer a Bures–Wasserstein gradient step (and in practice throws
/// the covariances far away, where the kernel vanishes and the flow stalls).
pub(crate) fn bures_step(
    sigma: &[f64],
    v: &[f64],
    tau_sigma: f64,
    p: usize,
) -> std::result::Result<Vec<f64>, f64> {
    let step: Vec<f64> = v.iter().map(|&v| -2.0 * tau_sigma * v).collect();
    let mut shifted = step.clone();
    (0..p).for_each(|i| shifted[i * p + i] += 1.0);
    let smallest = symmetric_eigenvalues(&shifted, p)
        .ok()
        .and_then(|e| e.first().copied())
        .unwrap_or(f64::NAN);
    // NaN (a non-finite velocity) falls through to the finiteness check of the caller.
    if smallest <= 0.0 {
        return Err(smallest);
    }
    Ok(bures_exp(sigma, &step, p))
}

fn heavy_ball(v: &[f64], g: &[f64], momentum: f64) -> Vec<f64> {
    v.iter().zip(g).map(|(&v, &g)| g + momentum * v).collect()
}

fn heavy_ball_f32(v: &[f32], g: &[f32], momentum: f32) -> Vec<f32> {
    v.iter().zip(g).map(|(&v, &g)| g + momentum * v).collect()
}

fn first_non_finite(values: impl IntoIterator<Item = f64>) -> Option<(usize, f64)> {
    values.into_iter().enumerate().find(|(_, v)| !v.is_finite())
}

/// The Bures–Wasserstein exponential map `exp_Σ(S) = (I + S) Σ (I + S)` for a symmetric
/// `p × p` step `S` (the result is symmetrised against rounding). It is the point reached at
/// time 1 by the geodesic leaving `Σ` with velocity `S Σ + Σ S`, so a gradient step in the
/// Bures–Wasserstein geometry is `S = −2τ ∇_Σ F` with `∇_Σ F` the symmetric Euclidean
/// gradient.
pub fn bures_exp(sigma: &[f64], s: &[f64], p: usize) -> Vec<f64> {
    let mut a = s.to_vec();
    (0..p).for_each(|i| a[i * p + i] += 1.0);
    let mut out = matmul(&matmul(&a, sigma, p, p, p), &a, p, p, p);
    symmetrise(&mut out, p);
    out
}

/// Labels from exact OT between the particle Gaussians `N(m_i, Σ_i)` (masses `p_i`) and the
/// target class Gaussians (histogram `target_class_weights`), with cost
/// `‖m_i − m'_k‖² + BW²(Σ_i, Σ'_k)` (docs/math.md §6). Particle `i` gets the index `k` in `0..K`
/// of the target class where row `i` of the optimal plan has most mass (ties: the cheaper
/// class); map it to a label id with the target's `class_ids()`.
pub fn assign_product_labels(
    particles: &ProductParticles,
    target: &ClassGaussians,
    target_class_weights: &[f64],
) -> Result<Vec<usize>> {
    particles.check_shapes()?;
    let (p, kn) = (particles.label_dim, target.len());
    if target.dim() != p {
        return Err(CoreError::DimensionMismatch {
            what: "target class Gaussians".into(),
            expected: p,
            got: target.dim(),
        });
    }
    if target_class_weights.len() != kn {
        return Err(shape(
            "target class weights",
            kn,
            target_class_weights.len(),
        ));
    }
    let gaussian = |mean: &[f64], cov: &[f64]| Gaussian::from_mean_cov(mean.to_vec(), cov);
    let classes: Vec<Gaussian> = (0..kn)
        .map(|k| gaussian(target.mean(k), target.covariance(k)))
        .collect::<Result<_>>()?;
    let costs: Vec<f64> = (0..particles.len())
        .into_par_iter()
        .map(|i| -> Result<Vec<f64>> {
            let own = gaussian(particles.mean(i), particles.covariance(i))?;
            classes
                .iter()
                .map(|c| bures_wasserstein2(&own, c))
                .collect()
        })
        .collect::<Result<Vec<_>>>()?
        .concat();
    Ok(assign_from_costs(particles.masses(), target_class_weights, &costs)?.labels)
}

/// Parameters of the flow.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProductMmdConfig {
    /// Step size `τ` (of all three parts unless `tau_m` / `tau_sigma` are given).
    pub tau: f64,
    /// Step size of the means, when it should differ from `τ`.
    #[serde(default)]
    pub tau_m: Option<f64>,
    /// Step size of the covariances, when it should differ from `τ`. The paper uses one
    /// `τ`, but the Bures–Wasserstein step `S = −2τ ∇_Σ` is dimensionless while `∇_Σ` scales
    /// as 1/(embedding scale)², so a `τ` suited to the features can overshoot on `Σ` (an
    /// eigenvalue of `S` below −1 passes the geodesic's cut locus) when the embedded class
    /// covariances are small.
    #[serde(default)]
    pub tau_sigma: Option<f64>,
    /// Heavy-ball coefficient in `[0, 1)`.
    pub momentum: f64,
    /// Steps of the flow (the experiments' protocol; [`Flow`](wowflow_core::Flow) runs them).
    pub steps: usize,
    /// Kernel bandwidths.
    pub bandwidths: BandwidthSpec,
    /// Label embedding (PCA dimension and ridge).
    pub embedding: EmbeddingConfig,
}

impl Default for ProductMmdConfig {
    /// The transfer-learning protocol's optimiser (docs/math.md §9: τ = 1, momentum 0.9, 5000
    /// steps), median bandwidths, `p = 2`.
    fn default() -> Self {
        Self {
            tau: 1.0,
            tau_m: None,
            tau_sigma: None,
            momentum: 0.9,
            steps: 5000,
            bandwidths: BandwidthSpec::default(),
            embedding: EmbeddingConfig::default(),
        }
    }
}

impl ProductMmdConfig {
    /// The step sizes of the three parts.
    pub fn step_sizes(&self) -> StepSizes {
        StepSizes {
            x: self.tau,
            m: self.tau_m.unwrap_or(self.tau),
            sigma: self.tau_sigma.unwrap_or(self.tau),
        }
    }

    /// Checks the step sizes (`> 0`) and `0 ≤ momentum < 1`.
    pub fn validate(&self) -> Result<()> {
        self.step_sizes().validate()?;
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(invalid(
                "momentum",
                format!("must lie in [0, 1), got {}", self.momentum),
            ));
        }
        Ok(())
    }
}

/// The whole method: embedding, objective and label assignment for one source/target pair.
#[derive(Debug, Clone)]
pub struct ProductMmdFlow {
    /// The settings the flow was built with (step sizes, momentum, steps, bandwidth rules,
    /// embedding); the bandwidths actually used are resolved once, in
    /// [`ProductMmdFlow::new`].
    pub config: ProductMmdConfig,
    embedding: LabelEmbedding,
    objective: ProductMmd,
    target_gaussians: ClassGaussians,
    target_class_weights: Vec<f64>,
}

impl ProductMmdFlow {
    /// Fits the embedding on both datasets, builds the target particles, resolves the
    /// bandwidths, and returns the flow with the source's initial state.
    pub fn new(
        source: &LabeledCloud,
        target: &LabeledCloud,
        config: ProductMmdConfig,
    ) -> Result<(Self, ProductState)> {
        config.validate()?;
        let embedding = LabelEmbedding::fit(source, target, &config.embedding)?;
        let state = ProductState::new(source, &embedding)?;
        let target_particles = ProductParticles::from_cloud(target, &embedding)?;
        let objective =
            ProductMmd::with_spec(target_particles, &config.bandwidths, &state.particles)?;
        let flow = Self {
            config,
            target_gaussians: embedding.class_gaussians(target)?,
            target_class_weights: target.class_weights().to_vec(),
            embedding,
            objective,
        };
        Ok((flow, state))
    }

    /// The fitted label embedding.
    pub fn embedding(&self) -> &LabelEmbedding {
        &self.embedding
    }
    /// The objective (target particles and bandwidths).
    pub fn objective(&self) -> &ProductMmd {
        &self.objective
    }
    /// The target's class Gaussians in the embedding.
    pub fn target_gaussians(&self) -> &ClassGaussians {
        &self.target_gaussians
    }

    /// One step; returns `F` before it. A non-finite value or gradient stops with
    /// [`CoreError::Diverged`] and leaves `state` untouched.
    pub fn step(&self, state: &mut ProductState) -> Result<f64> {
        let (value, grad) = self.objective.value_and_grad(&state.particles)?;
        let bad = if value.is_finite() {
            grad.first_non_finite()
                .map(|(part, i, v)| format!("gradient of {part}: value {v} at index {i}"))
        } else {
            Some(format!("F = {value}"))
        };
        if let Some(reason) = bad {
            return Err(CoreError::Diverged {
                step: state.step,
                last_good_step: state.step,
                reason,
            });
        }
        state.apply_gradient(&grad, self.config.step_sizes(), self.config.momentum)?;
        Ok(value)
    }

    /// Labels of the flowed particles, [`assign_product_labels`] against the target classes
    /// (indices in `0..K`).
    pub fn assign_labels(&self, state: &ProductState) -> Result<Vec<usize>> {
        assign_product_labels(
            &state.particles,
            &self.target_gaussians,
            &self.target_class_weights,
        )
    }
}

impl ProductMmdConfig {
    /// The optimiser of the features `x` in [`Flow`](wowflow_core::Flow): heavy ball
    /// `v ← g + m v; x ← x − τ v` (plain gradient descent when `momentum` is 0, the same
    /// update bit for bit).
    pub fn optimizer(&self) -> Result<Optimizer> {
        let method = if self.momentum == 0.0 {
            Method::Gd
        } else {
            Method::Momentum { m: self.momentum }
        };
        Optimizer::new(method, self.tau)
    }
}

/// The product-space MMD flow as an [`Objective`] on the features, so the one flow loop
/// ([`Flow`](wowflow_core::Flow)) runs it with observers, checkpoints and resume.
///
/// The features `x` are the cloud's particles and move by the flow's optimiser
/// ([`ProductMmdConfig::optimizer`]); the label Gaussians `(m, Σ)` are the objective's moving
/// parameters: their gradient is kept from [`Objective::value_and_wow_grad`] and their heavy
/// ball step taken in [`Objective::accept_step`], after the flow has accepted the value and
/// the feature gradient, and they travel in
/// [`FlowState::objective_state`](wowflow_core::FlowState::objective_state).
#[derive(Debug, Clone)]
pub struct ProductMmdObjective {
    flow: ProductMmdFlow,
    state: ProductState,
    pending: Option<ProductGrad>,
}

impl ProductMmdObjective {
    /// The flow from `source` towards `target` (see [`ProductMmdFlow::new`]).
    pub fn new(
        source: &LabeledCloud,
        target: &LabeledCloud,
        config: ProductMmdConfig,
    ) -> Result<Self> {
        let (flow, state) = ProductMmdFlow::new(source, target, config)?;
        Ok(Self {
            flow,
            state,
            pending: None,
        })
    }

    /// The method's embedding, target and settings.
    pub fn flow(&self) -> &ProductMmdFlow {
        &self.flow
    }

    /// The particles `(x, m, Σ)` with `x` as of the last evaluated step.
    pub fn particles(&self) -> &ProductParticles {
        &self.state.particles
    }

    /// Labels of the flowed particles `points` (the flow's final cloud, row order of the
    /// source): [`assign_product_labels`] of their Gaussians against the target classes
    /// (indices in `0..K`).
    pub fn assign_labels(&self, points: &[f32]) -> Result<Vec<usize>> {
        let mut state = self.state.clone();
        if points.len() != state.particles.x.len() {
            return Err(shape(
                "flowed features",
                state.particles.x.len(),
                points.len(),
            ));
        }
        state.particles.x = points.to_vec();
        self.flow.assign_labels(&state)
    }
}

impl Objective for ProductMmdObjective {
    fn name(&self) -> String {
        "product-mmd".into()
    }

    fn value_and_wow_grad(
        &mut self,
        cloud: &LabeledCloud,
        _rng: &mut dyn RngCore,
        grad: &mut [f32],
    ) -> Result<f64> {
        check_inputs(cloud, Some(self.state.particles.feature_dim()), grad)?;
        if cloud.n_points() != self.state.particles.len() {
            return Err(shape(
                "particles",
                self.state.particles.len(),
                cloud.n_points(),
            ));
        }
        self.state.particles.x.copy_from_slice(cloud.points());
        let (value, g) = self
            .flow
            .objective()
            .value_and_grad(&self.state.particles)?;
        // The flow checks the value and the feature gradient; the label parts are ours.
        if let Some((part, i, v)) = g.first_non_finite().filter(|(part, ..)| *part != "x") {
            return Err(self
                .state
                .diverged(format!("gradient of {part}: value {v} at index {i}")));
        }
        grad.copy_from_slice(&g.x);
        self.pending = Some(g);
        Ok(value)
    }

    fn accept_step(&mut self) -> Result<()> {
        let Some(g) = self.pending.take() else {
            return Ok(());
        };
        let config = &self.flow.config;
        let step = self
            .state
            .label_step(&g, config.step_sizes(), config.momentum)?;
        self.state.commit_labels(step);
        Ok(())
    }

    fn state(&self) -> Option<Vec<f64>> {
        let s = &self.state;
        let mut out = Vec::with_capacity(1 + 2 * (s.particles.m.len() + s.particles.sigma.len()));
        out.push(s.step as f64);
        for part in [
            &s.particles.m,
            &s.particles.sigma,
            &s.velocity_m,
            &s.velocity_sigma,
        ] {
            out.extend_from_slice(part);
        }
        Some(out)
    }

    fn restore_state(&mut self, saved: &[f64]) -> Result<()> {
        let s = &mut self.state;
        let (nm, ns) = (s.particles.m.len(), s.particles.sigma.len());
        if saved.len() != 1 + 2 * (nm + ns) {
            return Err(shape(
                "product-mmd objective state (step, m, Σ and their velocities)",
                1 + 2 * (nm + ns),
                saved.len(),
            ));
        }
        let (step, rest) = saved.split_at(1);
        let (m, rest) = rest.split_at(nm);
        let (sigma, rest) = rest.split_at(ns);
        let (vm, vs) = rest.split_at(nm);
        s.step = step[0] as usize;
        s.particles.m = m.to_vec();
        s.particles.sigma = sigma.to_vec();
        s.velocity_m = vm.to_vec();
        s.velocity_sigma = vs.to_vec();
        self.pending = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

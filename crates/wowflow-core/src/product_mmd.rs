//! The product-space MMD flow of Hua et al. (2023), a baseline of the documents
//! (MATH.md §7; labels as in §8).
//!
//! # The method
//!
//! Each labeled point becomes a particle `z = (x, m, Σ) ∈ R^d × R^p × S_p^{++}`: its
//! features `x` and the Gaussian `N(m, Σ)` of its class in a `p`-dimensional PCA embedding
//! of the labels ([`LabelEmbedding`]; `p = 2` as in the paper). With particle masses `p_i`
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
//!   `exp_Σ(S) = (I + S) Σ (I + S)` with `S = −2τ v_Σ` ([`bures_exp`]), which keeps `Σ`
//!   positive semi-definite by construction (definite unless `I + S` is singular). The
//!   velocity of `Σ` is reused at the new point without parallel transport, as in the
//!   authors' scheme.
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
//! Per step, the feature part dominates: the squared distances `‖x_i − x_j‖²` and
//! `‖x_i − y_j‖²` by one `f32` GEMM each ([`crate::linalg::pairwise_sq_dists`]), and the
//! feature gradient `−(2/h_x) (s_i x_i − Σ_j w_ij z_j)` by two more `f32` GEMMs on the kernel
//! weights — about `4 N (N + M) d` flops. The label parts are `O(N (N + M) p²)` direct
//! loops, run in parallel over rows. For `d ≤ 32` everything is computed directly in `f64`.

mod embedding;

pub use embedding::{ClassGaussians, EmbeddingConfig, LabelEmbedding, FULL_EIGEN_MAX_DIM};

use crate::cloud::LabeledCloud;
use crate::error::{invalid, shape, CoreError, Result};
use crate::linalg::{matmul, pairwise_sq_dists};
use crate::ot::{bures_wasserstein2, exact_ot, Gaussian};
use embedding::{check_finite, is_symmetric, symmetrise};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Up to this feature dimension the feature distances and gradient are computed directly in
/// `f64`; above it by `f32` GEMMs (the same switch as [`pairwise_sq_dists`]).
const DIRECT_MAX_DIM: usize = 32;

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
        let masses = crate::ot::normalised("particle masses", &masses)?;
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
    /// aside and committed only when every new value is finite; otherwise the state is left
    /// as it was and [`CoreError::Diverged`] names the part that blew up.
    pub fn apply_gradient(
        &mut self,
        grad: &ProductGrad,
        tau: StepSizes,
        momentum: f64,
    ) -> Result<()> {
        let pt = &self.particles;
        if grad.x.len() != pt.x.len() || grad.m.len() != pt.m.len() {
            return Err(shape(
                "gradient",
                format!("{} feature and {} mean values", pt.x.len(), pt.m.len()),
                format!("{} and {}", grad.x.len(), grad.m.len()),
            ));
        }
        if grad.sigma.len() != pt.sigma.len() {
            return Err(shape(
                "covariance gradient",
                pt.sigma.len(),
                grad.sigma.len(),
            ));
        }
        let vx = heavy_ball_f32(&self.velocity_x, &grad.x, momentum as f32);
        let vm = heavy_ball(&self.velocity_m, &grad.m, momentum);
        let vs = heavy_ball(&self.velocity_sigma, &grad.sigma, momentum);
        let tau_x = tau.x as f32;
        let x: Vec<f32> = pt.x.iter().zip(&vx).map(|(&x, &v)| x - tau_x * v).collect();
        let m: Vec<f64> = pt.m.iter().zip(&vm).map(|(&m, &v)| m - tau.m * v).collect();
        let p = pt.label_dim;
        let pp = p * p;
        let sigma: Vec<f64> = pt
            .sigma
            .par_chunks_exact(pp)
            .zip(vs.par_chunks_exact(pp))
            .flat_map_iter(|(s, v)| {
                let step: Vec<f64> = v.iter().map(|&v| -2.0 * tau.sigma * v).collect();
                bures_exp(s, &step, p)
            })
            .collect();
        let diverged = |reason: String| CoreError::Diverged {
            step: self.step,
            last_good_step: self.step,
            reason,
        };
        for (what, bad) in [
            ("features x", first_non_finite(x.iter().map(|&v| v as f64))),
            ("means m", first_non_finite(m.iter().copied())),
            ("covariances Σ", first_non_finite(sigma.iter().copied())),
        ] {
            if let Some((i, v)) = bad {
                return Err(diverged(format!(
                    "{what}: value {v} at index {i} after the update"
                )));
            }
        }
        self.velocity_x = vx;
        self.velocity_m = vm;
        self.velocity_sigma = vs;
        self.particles.x = x;
        self.particles.m = m;
        self.particles.sigma = sigma;
        self.step += 1;
        Ok(())
    }
}

/// Step sizes of the three parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepSizes {
    pub x: f64,
    pub m: f64,
    pub sigma: f64,
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

/// Bandwidth of one part of the product kernel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Bandwidth {
    /// A given `h > 0`.
    Fixed { h: f64 },
    /// `factor ×` the median of that part's squared source–target distances at the start.
    Median { factor: f64 },
}

/// Bandwidth choice for the three parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandwidthSpec {
    pub x: Bandwidth,
    pub m: Bandwidth,
    pub sigma: Bandwidth,
}

impl Default for BandwidthSpec {
    /// The median heuristic on every part.
    fn default() -> Self {
        let median = Bandwidth::Median { factor: 1.0 };
        Self {
            x: median,
            m: median,
            sigma: median,
        }
    }
}

/// Resolved bandwidths `h_x`, `h_m`, `h_Σ` (all `> 0`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bandwidths {
    pub x: f64,
    pub m: f64,
    pub sigma: f64,
}

impl Bandwidths {
    /// Checks that all three are finite and positive.
    pub fn validate(&self) -> Result<()> {
        for (name, h) in [
            ("bandwidth h_x", self.x),
            ("bandwidth h_m", self.m),
            ("bandwidth h_sigma", self.sigma),
        ] {
            if !(h.is_finite() && h > 0.0) {
                return Err(invalid(name, format!("must be finite and > 0, got {h}")));
            }
        }
        Ok(())
    }

    /// Resolves `spec` against the source and target particles (median heuristics are
    /// computed here, once).
    pub fn resolve(
        spec: &BandwidthSpec,
        source: &ProductParticles,
        target: &ProductParticles,
    ) -> Result<Self> {
        check_compatible(source, target)?;
        let (n, t) = (source.len(), target.len());
        let x = resolve_one("bandwidth h_x", spec.x, || {
            pairwise_sq_dists(&source.x, n, &target.x, t, source.feature_dim)
        })?;
        let label_dists = |a: &[f64], b: &[f64], width: usize| -> Vec<f64> {
            a.chunks_exact(width)
                .flat_map(|u| b.chunks_exact(width).map(move |v| sq_dist(u, v)))
                .collect()
        };
        let p = source.label_dim;
        let m = resolve_one("bandwidth h_m", spec.m, || {
            label_dists(&source.m, &target.m, p)
        })?;
        let sigma = resolve_one("bandwidth h_sigma", spec.sigma, || {
            label_dists(&source.sigma, &target.sigma, p * p)
        })?;
        let out = Self { x, m, sigma };
        out.validate()?;
        Ok(out)
    }
}

fn resolve_one(name: &str, rule: Bandwidth, dists: impl FnOnce() -> Vec<f64>) -> Result<f64> {
    match rule {
        Bandwidth::Fixed { h } => Ok(h),
        Bandwidth::Median { factor } => {
            if !(factor.is_finite() && factor > 0.0) {
                return Err(invalid(
                    name,
                    format!("median factor must be finite and > 0, got {factor}"),
                ));
            }
            let mut d = dists();
            let mid = d.len() / 2;
            let median = *d.select_nth_unstable_by(mid, f64::total_cmp).1;
            // A median of 0 (most pairs identical in that part) falls back to the mean.
            let base = if median > 0.0 {
                median
            } else {
                d.iter().sum::<f64>() / d.len() as f64
            };
            if base > 0.0 {
                Ok(factor * base)
            } else {
                Err(invalid(
                    name,
                    "median heuristic: every source–target squared distance of this part is 0; \
                     give an explicit bandwidth",
                ))
            }
        }
    }
}

fn check_compatible(source: &ProductParticles, target: &ProductParticles) -> Result<()> {
    source.check_shapes()?;
    target.check_shapes()?;
    for (what, got, expected) in [
        ("target features", target.feature_dim, source.feature_dim),
        ("target label embedding", target.label_dim, source.label_dim),
    ] {
        if got != expected {
            return Err(CoreError::DimensionMismatch {
                what: what.into(),
                expected,
                got,
            });
        }
    }
    Ok(())
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The WoW gradient of [`ProductMmd`] (shapes as [`ProductParticles`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ProductGrad {
    /// `∂F/∂x_i / p_i`, `N × d`.
    pub x: Vec<f32>,
    /// `∂F/∂m_i / p_i`, `N × p`.
    pub m: Vec<f64>,
    /// Symmetric `∂F/∂Σ_i / p_i`, `N × p × p`.
    pub sigma: Vec<f64>,
}

/// How the feature part of the kernel is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FeaturePath {
    /// `f64` differences, `O(N (N + M) d)` scalar work: exact, for small `d`.
    Direct,
    /// `f32` GEMMs for distances and gradient.
    Gemm,
}

impl FeaturePath {
    fn for_dim(d: usize) -> Self {
        if d <= DIRECT_MAX_DIM {
            Self::Direct
        } else {
            Self::Gemm
        }
    }
}

/// `F = ½ MMD_k²(μ, ν)` with the product kernel, towards fixed target particles.
#[derive(Debug, Clone)]
pub struct ProductMmd {
    target: ProductParticles,
    bandwidths: Bandwidths,
    /// `½ Σ q_i q_j k(w_i, w_j)`, constant in the source.
    target_term: f64,
}

impl ProductMmd {
    /// Towards `target` with the given bandwidths.
    pub fn new(target: ProductParticles, bandwidths: Bandwidths) -> Result<Self> {
        bandwidths.validate()?;
        target.check_shapes()?;
        let mut out = Self {
            target,
            bandwidths,
            target_term: 0.0,
        };
        let path = FeaturePath::for_dim(out.target.feature_dim);
        out.target_term = 0.5 * out.kernel_pass(&out.target, path, false).self_sum;
        Ok(out)
    }

    /// Towards `target`, bandwidths resolved from `spec` against `source` (the median
    /// heuristic is evaluated once, here).
    pub fn with_spec(
        target: ProductParticles,
        spec: &BandwidthSpec,
        source: &ProductParticles,
    ) -> Result<Self> {
        let bandwidths = Bandwidths::resolve(spec, source, &target)?;
        Self::new(target, bandwidths)
    }

    /// The bandwidths in use.
    pub fn bandwidths(&self) -> Bandwidths {
        self.bandwidths
    }
    /// The target particles.
    pub fn target(&self) -> &ProductParticles {
        &self.target
    }

    /// `F` at `source` and its WoW gradient.
    pub fn value_and_grad(&self, source: &ProductParticles) -> Result<(f64, ProductGrad)> {
        self.value_and_grad_with(source, FeaturePath::for_dim(source.feature_dim))
    }

    fn value_and_grad_with(
        &self,
        source: &ProductParticles,
        path: FeaturePath,
    ) -> Result<(f64, ProductGrad)> {
        check_compatible(source, &self.target)?;
        let pass = self.kernel_pass(source, path, true);
        let value = 0.5 * pass.self_sum - pass.cross_sum + self.target_term;
        let mut grad = pass.grad;
        grad.x = self.feature_grad(source, &pass.weights, path);
        Ok((value, grad))
    }

    /// One pass over the `N × (N + M)` kernel matrix: turns the feature distances into the
    /// signed weights `w_ij = p_j k(z_i, z_j)` (source columns) and `−q_j k(z_i, w_j)`
    /// (target columns), and accumulates the value terms and the label gradients.
    /// With `against_target = false` only the source–source part is evaluated.
    fn kernel_pass(
        &self,
        source: &ProductParticles,
        path: FeaturePath,
        against_target: bool,
    ) -> KernelPass {
        let (n, d, p) = (source.len(), source.feature_dim, source.label_dim);
        let (t, pp) = (if against_target { self.target.len() } else { 0 }, p * p);
        let sq = |a: &ProductParticles, na: usize, b: &ProductParticles, nb: usize| match path {
            FeaturePath::Direct => direct_sq_dists(&a.x, na, &b.x, nb, d),
            FeaturePath::Gemm => pairwise_sq_dists(&a.x, na, &b.x, nb, d),
        };
        let mut self_w = sq(source, n, source, n);
        let mut cross_w = if against_target {
            sq(source, n, &self.target, t)
        } else {
            Vec::new()
        };
        let inv = InverseBandwidths::of(&self.bandwidths);
        let mut gm = vec![0.0; n * p];
        let mut gs = vec![0.0; n * pp];
        // `par_chunks_mut` yields no chunks for an empty target block, so the cross rows are
        // split by hand (`n` empty rows then).
        let cross_rows: Vec<&mut [f64]> = if t > 0 {
            cross_w.chunks_mut(t).collect()
        } else {
            (0..n).map(|_| <&mut [f64]>::default()).collect()
        };
        let rows: Vec<RowSums> = self_w
            .par_chunks_mut(n)
            .zip(cross_rows.into_par_iter())
            .zip(gm.par_chunks_mut(p))
            .zip(gs.par_chunks_mut(pp))
            .enumerate()
            .map(|(i, (((self_row, cross_row), gm_i), gs_i))| {
                // The diagonal is exactly 0; the GEMM form only gives it to rounding.
                self_row[i] = 0.0;
                let (mi, si) = (source.mean(i), source.covariance(i));
                let own = weigh_row(mi, si, source, 1.0, self_row, &inv, gm_i, gs_i);
                let other = weigh_row(mi, si, &self.target, -1.0, cross_row, &inv, gm_i, gs_i);
                gm_i.iter_mut().for_each(|g| *g *= -2.0 * inv.m);
                gs_i.iter_mut().for_each(|g| *g *= -2.0 * inv.sigma);
                let pi = source.masses[i];
                RowSums {
                    self_sum: pi * own.kernel_sum,
                    cross_sum: pi * other.kernel_sum,
                    weight_sum: own.weight_sum + other.weight_sum,
                }
            })
            .collect();
        // Sequential sums in row order: deterministic whatever the thread count.
        KernelPass {
            self_sum: rows.iter().map(|r| r.self_sum).sum(),
            cross_sum: rows.iter().map(|r| r.cross_sum).sum(),
            weights: Weights {
                self_w,
                cross_w,
                row_sums: rows.iter().map(|r| r.weight_sum).collect(),
            },
            grad: ProductGrad {
                x: Vec::new(),
                m: gm,
                sigma: gs,
            },
        }
    }

    /// `g_x_i = −(2/h_x) Σ_j w_ij (x_i − z_j) = −(2/h_x) (s_i x_i − Σ_j w_ij z_j)` over the
    /// source and target columns (`s_i = Σ_j w_ij`).
    fn feature_grad(&self, source: &ProductParticles, w: &Weights, path: FeaturePath) -> Vec<f32> {
        let (n, d, t) = (source.len(), source.feature_dim, self.target.len());
        let scale = -2.0 / self.bandwidths.x;
        let (xs, ys) = (&source.x, &self.target.x);
        let mut out = vec![0.0f32; n * d];
        match path {
            FeaturePath::Direct => {
                out.par_chunks_mut(d).enumerate().for_each(|(i, g)| {
                    let xi = &xs[i * d..(i + 1) * d];
                    let mut acc = vec![0.0f64; d];
                    let mut add = |z: &[f32], wij: f64| {
                        for ((a, &u), &v) in acc.iter_mut().zip(xi).zip(z) {
                            *a += wij * (u as f64 - v as f64);
                        }
                    };
                    for (j, &wij) in w.self_w[i * n..(i + 1) * n].iter().enumerate() {
                        add(&xs[j * d..(j + 1) * d], wij);
                    }
                    for (j, &wij) in w.cross_w[i * t..(i + 1) * t].iter().enumerate() {
                        add(&ys[j * d..(j + 1) * d], wij);
                    }
                    g.iter_mut()
                        .zip(&acc)
                        .for_each(|(g, &a)| *g = (scale * a) as f32);
                });
            }
            FeaturePath::Gemm => {
                let to_f32 = |v: &[f64]| -> Vec<f32> { v.par_iter().map(|&w| w as f32).collect() };
                let mut wz = vec![0.0f32; n * d];
                sgemm_acc(&mut wz, &to_f32(&w.self_w), xs, n, n, d);
                sgemm_acc(&mut wz, &to_f32(&w.cross_w), ys, n, t, d);
                out.par_chunks_mut(d).enumerate().for_each(|(i, g)| {
                    let s = w.row_sums[i];
                    let (xi, wzi) = (&xs[i * d..(i + 1) * d], &wz[i * d..(i + 1) * d]);
                    for ((g, &x), &z) in g.iter_mut().zip(xi).zip(wzi) {
                        *g = (scale * (s * x as f64 - z as f64)) as f32;
                    }
                });
            }
        }
        out
    }
}

struct InverseBandwidths {
    x: f64,
    m: f64,
    sigma: f64,
}

impl InverseBandwidths {
    fn of(h: &Bandwidths) -> Self {
        Self {
            x: 1.0 / h.x,
            m: 1.0 / h.m,
            sigma: 1.0 / h.sigma,
        }
    }
}

struct RowSums {
    self_sum: f64,
    cross_sum: f64,
    weight_sum: f64,
}

struct BlockSums {
    /// `Σ_j mass_j k_ij`.
    kernel_sum: f64,
    /// `Σ_j w_ij` (signed).
    weight_sum: f64,
}

/// Signed kernel weights `w_ij`, `N × N` and `N × M`, with their row sums `s_i`.
struct Weights {
    self_w: Vec<f64>,
    cross_w: Vec<f64>,
    row_sums: Vec<f64>,
}

struct KernelPass {
    self_sum: f64,
    cross_sum: f64,
    weights: Weights,
    /// Label parts filled, `x` empty.
    grad: ProductGrad,
}

/// For one source row `(m_i, Σ_i)` against the particles `other` (sign `+1` for the source
/// itself, `−1` for the target): replaces the squared feature distances in `row` by the
/// signed weights `sign · mass_j · k_ij` and adds `Σ_j w_ij (m_i − m_j)` to `gm` and
/// `Σ_j w_ij (Σ_i − Σ_j)` to `gs`.
#[allow(clippy::too_many_arguments)]
fn weigh_row(
    mi: &[f64],
    si: &[f64],
    other: &ProductParticles,
    sign: f64,
    row: &mut [f64],
    inv: &InverseBandwidths,
    gm: &mut [f64],
    gs: &mut [f64],
) -> BlockSums {
    let (p, pp) = (mi.len(), si.len());
    let mut sums = BlockSums {
        kernel_sum: 0.0,
        weight_sum: 0.0,
    };
    for (j, w) in row.iter_mut().enumerate() {
        let (mj, sj) = (
            &other.m[j * p..(j + 1) * p],
            &other.sigma[j * pp..(j + 1) * pp],
        );
        let exponent = *w * inv.x + sq_dist(mi, mj) * inv.m + sq_dist(si, sj) * inv.sigma;
        let mass_k = other.masses[j] * (-exponent).exp();
        let wij = sign * mass_k;
        *w = wij;
        sums.kernel_sum += mass_k;
        sums.weight_sum += wij;
        gm.iter_mut()
            .zip(mi.iter().zip(mj))
            .for_each(|(g, (a, b))| *g += wij * (a - b));
        gs.iter_mut()
            .zip(si.iter().zip(sj))
            .for_each(|(g, (a, b))| *g += wij * (a - b));
    }
    sums
}

/// `‖a_i − b_j‖²` by `f64` differences (row-major `na × nb`).
fn direct_sq_dists(a: &[f32], na: usize, b: &[f32], nb: usize, d: usize) -> Vec<f64> {
    let mut out = vec![0.0; na * nb];
    out.par_chunks_mut(nb.max(1))
        .enumerate()
        .for_each(|(i, row)| {
            let x = &a[i * d..(i + 1) * d];
            for (o, y) in row.iter_mut().zip(b.chunks_exact(d)) {
                *o = x
                    .iter()
                    .zip(y)
                    .map(|(&u, &v)| (u as f64 - v as f64).powi(2))
                    .sum();
            }
        });
    out
}

/// `dst += A B` for row-major `A` (`m × k`), `B` (`k × n`), `dst` (`m × n`), in `f32` with
/// the `gemm` crate.
fn sgemm_acc(dst: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize) {
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), k * n);
    assert_eq!(dst.len(), m * n);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let par = match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        t => gemm::Parallelism::Rayon(t),
    };
    // SAFETY: dst is m × n (row stride n), a is m × k (row stride k), b is k × n (row stride
    // n); lengths asserted above, dst aliases neither input. `read_dst = true` with
    // alpha = beta = 1 computes dst ← dst + a b.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            true,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Labels from exact OT between the particle Gaussians `N(m_i, Σ_i)` (masses `p_i`) and the
/// target class Gaussians (histogram `target_class_weights`), with cost
/// `‖m_i − m'_k‖² + BW²(Σ_i, Σ'_k)` (MATH.md §6). Particle `i` gets the index `k` in `0..K`
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
    let plan = exact_ot(particles.masses(), target_class_weights, &costs)?
        .plan
        .to_dense();
    Ok(plan
        .chunks_exact(kn)
        .zip(costs.chunks_exact(kn))
        .map(|(row, cost)| {
            (0..kn)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(cost[b].total_cmp(&cost[a])))
                .unwrap_or(0)
        })
        .collect())
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
    /// Steps taken by [`ProductMmdFlow::run`].
    pub steps: usize,
    /// Kernel bandwidths.
    pub bandwidths: BandwidthSpec,
    /// Label embedding (PCA dimension and ridge).
    pub embedding: EmbeddingConfig,
}

impl Default for ProductMmdConfig {
    /// The transfer-learning protocol's optimiser (MATH.md §9: τ = 1, momentum 0.9, 5000
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
        let steps = self.step_sizes();
        for (name, tau) in [
            ("tau", steps.x),
            ("tau_m", steps.m),
            ("tau_sigma", steps.sigma),
        ] {
            if !(tau.is_finite() && tau > 0.0) {
                return Err(invalid(
                    name,
                    format!("step size must be finite and > 0, got {tau}"),
                ));
            }
        }
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
        let bad = first_non_finite(std::iter::once(value))
            .map(|_| format!("F = {value}"))
            .or_else(|| {
                first_non_finite(grad.x.iter().map(|&v| v as f64))
                    .or_else(|| first_non_finite(grad.m.iter().copied()))
                    .or_else(|| first_non_finite(grad.sigma.iter().copied()))
                    .map(|(i, v)| format!("gradient value {v} at index {i}"))
            });
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

    /// Runs `config.steps` steps, calling `on_step(step, F)` after each (return `false` to
    /// stop early); returns the loss history (`F` before each step taken).
    pub fn run(
        &self,
        state: &mut ProductState,
        on_step: &mut impl FnMut(usize, f64) -> bool,
    ) -> Result<Vec<f64>> {
        let mut losses = Vec::with_capacity(self.config.steps);
        for _ in 0..self.config.steps {
            let loss = self.step(state)?;
            losses.push(loss);
            if !on_step(state.step - 1, loss) {
                break;
            }
        }
        Ok(losses)
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

#[cfg(test)]
mod tests;

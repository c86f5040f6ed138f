//! Joint-driven OTDD dynamics (Alvarez-Melis & Fusi 2021, §6.1, Algorithms 2–3; docs/math.md §7):
//! the label distributions are Gaussians `v_g = N(μ_g, Σ_g)` with a gradient step of their
//! own, instead of following the particles as in the feature-driven dynamics.
//!
//! - [`LabelDynamics::Fixed`] (jd-fl): one Gaussian per source class; every particle keeps
//!   its class.
//! - [`LabelDynamics::Variable`] (jd-vl): at step 0 every particle gets its own copy of its
//!   class's Gaussian, and the copies move independently; discrete labels are recovered by
//!   clustering the particles' Gaussians ([`JointOtdd::labels`], k-means or DBSCAN), so the
//!   number of classes can change along the flow.
//!
//! # The functional and its gradients
//!
//! With `g(i)` the Gaussian of particle `i` and `β_k = N(m'_k, Σ'_k)` the target's class
//! Gaussians,
//!
//! ```text
//! F = min_π Σ_ij π_ij [‖x_i − x'_j‖² + λ W_2²(v_{g(i)}, β_{y'_j})]
//! ∂F/∂x_i = 2 Σ_j π_ij (x_i − x'_j)                          (labels are detached from x)
//! ∂F/∂μ_g = 2λ Σ_k Γ_gk (μ_g − m'_k)
//! ∂F/∂Σ_g = λ Σ_k Γ_gk (I − T_gk)        T_gk the Monge map N(0, Σ_g) → N(0, Σ'_k)
//! ```
//!
//! by the envelope theorem, with `Γ_gk = Σ_{g(i) = g, y'_j = k} π_ij` (see
//! [`wowflow_ot::SpdRoots`] for `∇_Σ W_2²`). As for the particles, the gradients are divided
//! by the mass `Σ_k Γ_gk` of the Gaussian's row, so a step `τ = ½` sends `μ_g` to the
//! barycentre of its targets' means.
//!
//! # The step
//!
//! Particles move by the flow's optimiser. The Gaussians take a plain gradient step: `μ` by
//! `τ_μ`, `Σ` by the Bures–Wasserstein exponential map `Σ ← exp_Σ(−2τ_Σ ∇_Σ F)`
//! ([`crate::bures_exp`]), which keeps `Σ` positive definite (the paper takes Adam steps on
//! `Σ` in Euclidean coordinates, which does not). With `2 τ_Σ λ ≤ 1`, `I − 2τ_Σ λ (I − T̄)`
//! is a convex combination of positive definite matrices, so the step never leaves the
//! geodesic's domain; longer steps are checked and refused with an error naming `tau_sigma`.
//! The step is computed during the evaluation and committed by
//! [`Objective::accept_step`], so a step the flow refuses leaves the Gaussians in place.
//!
//! # Where the Gaussians live
//!
//! In a `p`-dimensional PCA of both datasets ([`LabelEmbedding`], as for the product-space
//! MMD flow of Hua et al.): a `p × p` covariance per class — or per particle, for
//! jd-vl — stays cheap at `d = 784`. With `p = d` the PCA is a rotation and the label costs
//! are the full Bures–Wasserstein distances of the Gaussian approximation (plus the ridge).
//! `p` is clamped to `d`.

use crate::cluster::{sq_dist, Clustering, Clusters};
use crate::product_mmd::{bures_step, ClassGaussians, EmbeddingConfig, LabelEmbedding};
use rand::RngCore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use wowflow_core::cloud::LabeledCloud;
use wowflow_core::error::{invalid, shape, CoreError, Result};
use wowflow_core::objective::{check_inputs, Objective};
use wowflow_ot::assign::assign_from_costs;
use wowflow_ot::distance::labeled_ground_cost;
use wowflow_ot::{OtSolver, SpdRoots, TransportPlan};

use super::{feature_gradient, solve_outer};

/// Whether labels stay fixed (one Gaussian per class) or vary (one per particle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelDynamics {
    /// jd-fl: class Gaussians are stepped; labels never change.
    Fixed,
    /// jd-vl: per-particle Gaussians are stepped; labels come from clustering them.
    Variable,
}

/// Settings of the joint-driven dynamics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JointOtddConfig {
    /// One Gaussian per class with fixed labels (jd-fl), or one per particle with labels
    /// from clustering (jd-vl).
    pub labels: LabelDynamics,
    /// Outer solver (exact, or entropic as in the paper).
    pub solver: OtSolver,
    /// Weight `λ` of the label term.
    pub label_weight: f64,
    /// PCA dimension `p` of the label Gaussians (clamped to `d`) and the ridge added to
    /// their initial covariances.
    pub embedding: EmbeddingConfig,
    /// Step size of the means `μ`.
    pub tau_mean: f64,
    /// Step size of the covariances `Σ` (Bures–Wasserstein exponential map).
    pub tau_sigma: f64,
}

impl Default for JointOtddConfig {
    /// jd-fl, exact OT, `λ = 1`, `p = 16`, `τ_μ = τ_Σ = 0.1` (the paper's flow step size).
    fn default() -> Self {
        Self {
            labels: LabelDynamics::Fixed,
            solver: OtSolver::Exact,
            label_weight: 1.0,
            embedding: EmbeddingConfig {
                dim: 16,
                ridge: 1e-3,
            },
            tau_mean: 0.1,
            tau_sigma: 0.1,
        }
    }
}

impl JointOtddConfig {
    /// Checks `λ ≥ 0` and the step sizes (`> 0`).
    pub fn validate(&self) -> Result<()> {
        if !(self.label_weight.is_finite() && self.label_weight >= 0.0) {
            return Err(invalid(
                "label_weight",
                format!("must be finite and ≥ 0, got {}", self.label_weight),
            ));
        }
        for (name, tau) in [("tau_mean", self.tau_mean), ("tau_sigma", self.tau_sigma)] {
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

/// OTDD² with joint-driven dynamics, an [`Objective`] whose label Gaussians are its own
/// state (see the module docs).
#[derive(Debug, Clone)]
pub struct JointOtdd {
    target: LabeledCloud,
    config: JointOtddConfig,
    embedding: LabelEmbedding,
    target_gaussians: ClassGaussians,
    /// The target class Gaussians in the clustering coordinates (`K × (p + p²)`).
    target_coordinates: Vec<f64>,
    target_masses: Vec<f64>,
    /// The source's shape `(N, d, C)`: evaluations must be at the same particles.
    source_shape: (usize, usize, usize),
    /// Gaussian of every source row.
    owner: Vec<usize>,
    /// Label Gaussians: means `G × p`, covariances `G × p × p`.
    means: Vec<f64>,
    covariances: Vec<f64>,
    /// The step computed by the last evaluation, committed by `accept_step`.
    pending: Option<(Vec<f64>, Vec<f64>)>,
    outer_start: Option<Vec<f64>>,
}

/// The labels a joint-driven run ends with ([`JointOtdd::labelling`]), cloud row order.
#[derive(Debug, Clone, PartialEq)]
pub struct JointLabelling {
    /// The class id of each particle: its own class (fixed labels) or the target class its
    /// cluster is matched with (variable labels); `−1` for DBSCAN noise.
    pub y: Vec<i64>,
    /// The raw cluster of each particle (`−1`: noise); variable labels only.
    pub cluster: Option<Vec<i64>>,
    /// The clusters (for fixed labels: the source classes).
    pub clusters: Clusters,
}

impl JointOtdd {
    /// The dynamics from `source` (whose class Gaussians are the initial labels) towards
    /// `target`. Evaluations must be at clouds with the source's rows and classes.
    pub fn new(
        source: &LabeledCloud,
        target: LabeledCloud,
        config: JointOtddConfig,
    ) -> Result<Self> {
        config.validate()?;
        source.validate()?;
        target.validate()?;
        let d = source.dim();
        let embedding_config = EmbeddingConfig {
            dim: config.embedding.dim.min(d),
            ..config.embedding
        };
        let embedding = LabelEmbedding::fit(source, &target, &embedding_config)?;
        let classes = embedding.class_gaussians(source)?;
        let p = embedding.dim();
        let rows = source.row_classes();
        let (owner, means, covariances): (Vec<usize>, Vec<f64>, Vec<f64>) = match config.labels {
            LabelDynamics::Fixed => (
                rows,
                classes.means().to_vec(),
                classes.covariances().to_vec(),
            ),
            LabelDynamics::Variable => (
                (0..source.n_points()).collect(),
                rows.iter()
                    .flat_map(|&c| classes.mean(c).to_vec())
                    .collect(),
                rows.iter()
                    .flat_map(|&c| classes.covariance(c).to_vec())
                    .collect(),
            ),
        };
        debug_assert_eq!(covariances.len(), means.len() * p);
        let target_gaussians = embedding.class_gaussians(&target)?;
        Ok(Self {
            target_coordinates: Self::cluster_coordinates(
                target_gaussians.means(),
                target_gaussians.covariances(),
                p,
            )?,
            target_gaussians,
            target_masses: target.masses(),
            source_shape: (source.n_points(), d, source.n_classes()),
            target,
            config,
            embedding,
            owner,
            means,
            covariances,
            pending: None,
            outer_start: None,
        })
    }

    /// The settings.
    pub fn config(&self) -> &JointOtddConfig {
        &self.config
    }
    /// The fitted PCA the Gaussians live in.
    pub fn embedding(&self) -> &LabelEmbedding {
        &self.embedding
    }
    /// The target's class Gaussians in the embedding.
    pub fn target_gaussians(&self) -> &ClassGaussians {
        &self.target_gaussians
    }
    /// The current label Gaussians: one per source class (jd-fl) or per particle (jd-vl,
    /// in the cloud's row order).
    pub fn label_gaussians(&self) -> Result<ClassGaussians> {
        ClassGaussians::from_parts(
            self.embedding.dim(),
            self.means.clone(),
            self.covariances.clone(),
        )
    }

    fn n_gaussians(&self) -> usize {
        self.means.len() / self.embedding.dim()
    }

    /// The coordinates the labels are clustered in: `[μ, vec(Σ^{1/2})]` per Gaussian. Their
    /// squared Euclidean distance is `‖μ − μ'‖² + ‖Σ^{1/2} − Σ'^{1/2}‖_F²`, which equals
    /// `W_2²` between the Gaussians when the covariances commute and bounds it from above
    /// otherwise — a Bures–Wasserstein geometry that k-means and DBSCAN can use directly.
    fn cluster_coordinates(means: &[f64], covariances: &[f64], p: usize) -> Result<Vec<f64>> {
        let rows: Vec<Result<Vec<f64>>> = means
            .par_chunks_exact(p)
            .zip(covariances.par_chunks_exact(p * p))
            .map(|(m, s)| {
                let root = SpdRoots::new(s, p)?;
                Ok(m.iter().chain(root.sqrt()).copied().collect())
            })
            .collect();
        Ok(rows.into_iter().collect::<Result<Vec<_>>>()?.concat())
    }

    /// A DBSCAN radius from the target: half the smallest distance between two target class
    /// Gaussians in the clustering coordinates (one class: the class's own spread
    /// `√tr Σ'`), so particles sharing a target class cluster together and particles of
    /// different ones do not.
    pub fn default_dbscan_eps(&self) -> Result<f64> {
        let p = self.embedding.dim();
        let t = &self.target_gaussians;
        let z = &self.target_coordinates;
        let w = p + p * p;
        let mut closest = f64::INFINITY;
        for a in 0..t.len() {
            for b in 0..a {
                let d2 = sq_dist(&z[a * w..(a + 1) * w], &z[b * w..(b + 1) * w]);
                closest = closest.min(d2.sqrt());
            }
        }
        if closest.is_finite() && closest > 0.0 {
            return Ok(0.5 * closest);
        }
        let spread = (0..p)
            .map(|i| t.covariance(0)[i * p + i])
            .sum::<f64>()
            .sqrt();
        if spread > 0.0 {
            Ok(spread)
        } else {
            Err(invalid(
                "DBSCAN eps",
                "the target's class Gaussians coincide: give eps explicitly",
            ))
        }
    }

    /// Discrete labels of the particles (cloud row order). jd-fl: the source classes. jd-vl:
    /// `clustering` of the particles' Gaussians (see `cluster_coordinates`); `None` there
    /// is an error, as the labels are what the clustering decides.
    pub fn labels(&self, clustering: Option<&Clustering>) -> Result<Clusters> {
        match (self.config.labels, clustering) {
            (LabelDynamics::Fixed, _) => Ok(Clusters {
                labels: self.owner.iter().map(|&c| Some(c)).collect(),
                count: self.source_shape.2,
            }),
            (LabelDynamics::Variable, None) => Err(invalid(
                "clustering",
                "variable-label dynamics need k-means or DBSCAN to recover labels",
            )),
            (LabelDynamics::Variable, Some(rule)) => {
                let p = self.embedding.dim();
                let z = Self::cluster_coordinates(&self.means, &self.covariances, p)?;
                rule.run(&z, p + p * p)
            }
        }
    }

    /// The target class (index in `0..K`) each cluster of `clusters` corresponds to: exact OT
    /// between the clusters' masses and the target's class weights with cost the squared
    /// distance between cluster centroids and target class Gaussians in the clustering
    /// coordinates; each cluster takes its plan row's largest entry (docs/math.md §8: with other
    /// class counts the plan is the correspondence).
    pub fn match_clusters(&self, clusters: &Clusters, masses: &[f64]) -> Result<Vec<usize>> {
        let (n, p) = (self.source_shape.0, self.embedding.dim());
        if clusters.labels.len() != n || masses.len() != n {
            return Err(shape(
                "cluster labels and masses",
                format!("{n} each"),
                format!("{} and {}", clusters.labels.len(), masses.len()),
            ));
        }
        let w = p + p * p;
        let z = Self::cluster_coordinates(&self.means, &self.covariances, p)?;
        let kc = clusters.count;
        let mut centroid = vec![0.0; kc * w];
        let mut mass = vec![0.0; kc];
        for (i, l) in clusters.labels.iter().enumerate() {
            let Some(c) = *l else { continue };
            let zi = &z[self.owner[i] * w..(self.owner[i] + 1) * w];
            mass[c] += masses[i];
            centroid[c * w..(c + 1) * w]
                .iter_mut()
                .zip(zi)
                .for_each(|(a, &b)| *a += masses[i] * b);
        }
        if let Some(c) = mass.iter().position(|&m| m <= 0.0) {
            return Err(invalid("clusters", format!("cluster {c} has no mass")));
        }
        for c in 0..kc {
            centroid[c * w..(c + 1) * w]
                .iter_mut()
                .for_each(|v| *v /= mass[c]);
        }
        let (t, tz) = (&self.target_gaussians, &self.target_coordinates);
        let kn = t.len();
        let cost: Vec<f64> = (0..kc * kn)
            .map(|ck| {
                let (c, k) = (ck / kn, ck % kn);
                sq_dist(&centroid[c * w..(c + 1) * w], &tz[k * w..(k + 1) * w])
            })
            .collect();
        Ok(assign_from_costs(&mass, self.target.class_weights(), &cost)?.labels)
    }

    /// The labels a run on `cloud` (this objective's particles, cloud row order) ends with:
    /// for fixed labels each particle keeps its class's id; for variable labels `rule`
    /// clusters the particles' Gaussians ([`JointOtdd::labels`]) and each particle takes the
    /// id of the target class its cluster is matched with ([`JointOtdd::match_clusters`],
    /// masses `a_c w_ci`), `−1` for DBSCAN noise.
    pub fn labelling(
        &self,
        cloud: &LabeledCloud,
        rule: Option<&Clustering>,
    ) -> Result<JointLabelling> {
        if self.config.labels == LabelDynamics::Fixed {
            return Ok(JointLabelling {
                y: cloud.row_labels(),
                cluster: None,
                clusters: self.labels(None)?,
            });
        }
        let clusters = self.labels(rule)?;
        let matched = self.match_clusters(&clusters, &cloud.masses())?;
        let ids = self.target.class_ids();
        let y = clusters
            .labels
            .iter()
            .map(|l| l.map_or(-1, |c| ids[matched[c]]))
            .collect();
        let cluster = clusters
            .labels
            .iter()
            .map(|l| l.map_or(-1, |c| c as i64))
            .collect();
        Ok(JointLabelling {
            y,
            cluster: Some(cluster),
            clusters,
        })
    }

    /// The square roots of every label covariance and the label costs
    /// `W_2²(v_g, β_k)` (`G × K`).
    fn label_costs(&self) -> Result<(Vec<SpdRoots>, Vec<f64>)> {
        let (p, kn) = (self.embedding.dim(), self.target.n_classes());
        let t = &self.target_gaussians;
        let roots: Vec<SpdRoots> = self
            .covariances
            .par_chunks_exact(p * p)
            .map(|s| SpdRoots::new(s, p))
            .collect::<Result<_>>()?;
        let labels: Vec<f64> = (0..self.n_gaussians() * kn)
            .into_par_iter()
            .map(|gk| {
                let (g, k) = (gk / kn, gk % kn);
                let mean = sq_dist(&self.means[g * p..(g + 1) * p], t.mean(k));
                Ok(mean + roots[g].bures2(t.covariance(k))?)
            })
            .collect::<Result<_>>()?;
        Ok((roots, labels))
    }

    /// `Γ` (`G × K`): plan mass between every label Gaussian and every target class.
    fn label_plan(&self, plan: &TransportPlan) -> Vec<f64> {
        let kn = self.target.n_classes();
        let yq = self.target.row_classes();
        let mut gamma = vec![0.0; self.n_gaussians() * kn];
        plan.for_each(|i, j, v| gamma[self.owner[i] * kn + yq[j]] += v);
        gamma
    }

    /// `∂F/∂μ_g` and `∂F/∂Σ_g` (`G × p`, `G × p × p`) from the label plan `gamma`, each
    /// divided by the row mass `Σ_k Γ_gk` (zero for a Gaussian the plan does not use).
    fn label_gradients(&self, roots: &[SpdRoots], gamma: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
        let (p, kn, lambda) = (
            self.embedding.dim(),
            self.target.n_classes(),
            self.config.label_weight,
        );
        let t = &self.target_gaussians;
        let parts: Vec<Result<(Vec<f64>, Vec<f64>)>> = (0..self.n_gaussians())
            .into_par_iter()
            .map(|g| {
                let mu = &self.means[g * p..(g + 1) * p];
                let row = &gamma[g * kn..(g + 1) * kn];
                let mass: f64 = row.iter().sum();
                let mut grad_mu = vec![0.0; p];
                let mut grad_sigma = vec![0.0; p * p];
                if mass <= 0.0 || lambda == 0.0 {
                    return Ok((grad_mu, grad_sigma));
                }
                for (k, &w) in row.iter().enumerate().filter(|(_, &w)| w > 0.0) {
                    let w = lambda * w / mass;
                    for (a, (&m, &mk)) in mu.iter().zip(t.mean(k)).enumerate() {
                        grad_mu[a] += 2.0 * w * (m - mk);
                    }
                    let map = roots[g].monge_map(t.covariance(k))?;
                    for (a, &tv) in map.iter().enumerate() {
                        let id = if a % (p + 1) == 0 { 1.0 } else { 0.0 };
                        grad_sigma[a] += w * (id - tv);
                    }
                }
                Ok((grad_mu, grad_sigma))
            })
            .collect();
        let mut grad_means = Vec::with_capacity(self.means.len());
        let mut grad_covariances = Vec::with_capacity(self.covariances.len());
        for part in parts {
            let (m, c) = part?;
            grad_means.extend(m);
            grad_covariances.extend(c);
        }
        Ok((grad_means, grad_covariances))
    }

    /// The Gaussians after one step along the gradients (computed aside, not committed).
    fn stepped(
        &self,
        grad_means: &[f64],
        grad_covariances: &[f64],
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let p = self.embedding.dim();
        let pp = p * p;
        let (tau_m, tau_s) = (self.config.tau_mean, self.config.tau_sigma);
        let means: Vec<f64> = self
            .means
            .iter()
            .zip(grad_means)
            .map(|(m, g)| m - tau_m * g)
            .collect();
        let covariances: Vec<Vec<f64>> = self
            .covariances
            .par_chunks_exact(pp)
            .zip(grad_covariances.par_chunks_exact(pp))
            .enumerate()
            .map(|(g, (sigma, grad))| {
                bures_step(sigma, grad, tau_s, p).map_err(|smallest| {
                    invalid(
                        "tau_sigma",
                        format!(
                            "the Σ step of label Gaussian {g} passes the cut locus of the \
                             Bures–Wasserstein geodesic (smallest eigenvalue of I + S is \
                             {smallest:.3e}); 2·tau_sigma·λ ≤ 1 never does"
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?;
        let covariances = covariances.concat();
        if let Some(i) = means
            .iter()
            .chain(&covariances)
            .position(|v| !v.is_finite())
        {
            return Err(CoreError::NonFinite {
                what: "label Gaussians after the step".into(),
                index: i,
                value: f64::NAN,
            });
        }
        Ok((means, covariances))
    }
}

impl Objective for JointOtdd {
    fn name(&self) -> String {
        let labels = match self.config.labels {
            LabelDynamics::Fixed => "fixed-label",
            LabelDynamics::Variable => "variable-label",
        };
        format!(
            "otdd(gaussian, joint-driven {labels}, p = {})",
            self.embedding.dim()
        )
    }

    fn value_and_wow_grad(
        &mut self,
        cloud: &LabeledCloud,
        _rng: &mut dyn RngCore,
        grad: &mut [f32],
    ) -> Result<f64> {
        check_inputs(cloud, Some(self.target.dim()), grad)?;
        let shape_now = (cloud.n_points(), cloud.dim(), cloud.n_classes());
        if shape_now != self.source_shape {
            return Err(shape(
                "particles of the joint-driven OTDD flow (N, d, classes)",
                format!("{:?}, the source it was built for", self.source_shape),
                format!("{shape_now:?}"),
            ));
        }
        let (roots, labels) = self.label_costs()?;
        let cost = labeled_ground_cost(
            cloud.points(),
            &self.owner,
            &self.target,
            &labels,
            self.config.label_weight,
        );
        let masses = cloud.masses();
        let (plan, value) = solve_outer(
            &masses,
            &self.target_masses,
            cost,
            &self.config.solver,
            &mut self.outer_start,
        )?;
        feature_gradient(
            &plan,
            cloud.points(),
            self.target.points(),
            cloud.dim(),
            &masses,
            grad,
        );
        let gamma = self.label_plan(&plan);
        let (grad_means, grad_covariances) = self.label_gradients(&roots, &gamma)?;
        self.pending = Some(self.stepped(&grad_means, &grad_covariances)?);
        Ok(value)
    }

    fn accept_step(&mut self) -> Result<()> {
        if let Some((means, covariances)) = self.pending.take() {
            self.means = means;
            self.covariances = covariances;
        }
        Ok(())
    }

    /// Means then covariances.
    fn state(&self) -> Option<Vec<f64>> {
        Some([self.means.as_slice(), &self.covariances].concat())
    }

    fn restore_state(&mut self, state: &[f64]) -> Result<()> {
        let (m, c) = (self.means.len(), self.covariances.len());
        if state.len() != m + c {
            return Err(shape(
                "label Gaussians of the joint-driven OTDD flow",
                format!("{m} means + {c} covariance values"),
                state.len(),
            ));
        }
        if let Some(i) = state.iter().position(|v| !v.is_finite()) {
            return Err(CoreError::NonFinite {
                what: "label Gaussians to restore".into(),
                index: i,
                value: state[i],
            });
        }
        self.means = state[..m].to_vec();
        self.covariances = state[m..].to_vec();
        self.pending = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

//! The OTDD flow's options (`--label-cost`, `--epsilon`, `--dynamics`, clustering), shared
//! by `wowflow flow` and the demos, and what a joint-driven run adds to its outputs.

use anyhow::{bail, Result};
use wowflow_baselines::{
    Clustering, Clusters, EmbeddingConfig, JointOtdd, JointOtddConfig, LabelDynamics, OtddFlow,
};
use wowflow_core::{LabeledCloud, Objective};
use wowflow_data::NpyArray;
use wowflow_ot::{LabelCost, OtddConfig};
use wowflow_ot::{OtSolver, SinkhornConfig};

/// The label-to-label cost of the feature-driven OTDD flow (`--label-cost`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum LabelCostName {
    /// Exact W₂ between class clouds (differentiated through).
    Exact,
    /// Bures–Wasserstein between class Gaussians (recomputed each step).
    Gaussian,
}

/// Which OTDD dynamics (Alvarez-Melis & Fusi 2021, §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DynamicsName {
    /// Particles move; class label distributions follow them.
    #[default]
    Feature,
    /// Particles and one label Gaussian per class move; labels stay fixed.
    JointFixed,
    /// Particles and one label Gaussian per particle move; labels by clustering.
    JointVariable,
}

/// How the joint-variable dynamics recover labels from the particles' Gaussians.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ClusteringName {
    /// k-means with --clusters k (default: the target's number of classes).
    Kmeans,
    /// DBSCAN: the number of classes is found (radius --dbscan-eps).
    #[default]
    Dbscan,
}

/// Options of `--method otdd`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct OtddArgs {
    /// OTDD: label-to-label cost [default: exact; joint dynamics use Gaussian labels].
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub label_cost: Option<LabelCostName>,
    /// OTDD: entropic regularisation ε of the outer OT (exact OT when absent).
    #[cfg_attr(feature = "clap", arg(long))]
    pub epsilon: Option<f64>,
    /// OTDD: dynamics. Joint ones step label Gaussians of their own (means by --lr,
    /// covariances by --lr-sigma along the Bures–Wasserstein exponential map).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "feature"))]
    pub dynamics: DynamicsName,
    /// OTDD joint dynamics: PCA dimension p of the label Gaussians (clamped to d).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 16))]
    pub label_dim: usize,
    /// OTDD joint-variable: how labels are recovered from the particles' Gaussians.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "dbscan"))]
    pub clustering: ClusteringName,
    /// k-means: number of clusters [default: the target's number of classes].
    #[cfg_attr(feature = "clap", arg(long, value_name = "k"))]
    pub clusters: Option<usize>,
    /// DBSCAN radius in the labels' Bures–Wasserstein coordinates [default: half the
    /// smallest distance between two target class Gaussians].
    #[cfg_attr(feature = "clap", arg(long))]
    pub dbscan_eps: Option<f64>,
    /// DBSCAN: neighbours (the point included) that make a core point (the paper uses 4).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 4))]
    pub dbscan_min_points: usize,
}

impl Default for OtddArgs {
    /// The command line's defaults.
    fn default() -> Self {
        Self {
            label_cost: None,
            epsilon: None,
            dynamics: DynamicsName::Feature,
            label_dim: 16,
            clustering: ClusteringName::Dbscan,
            clusters: None,
            dbscan_eps: None,
            dbscan_min_points: 4,
        }
    }
}

impl OtddArgs {
    fn solver(&self) -> OtSolver {
        match self.epsilon {
            Some(epsilon) => OtSolver::Sinkhorn(SinkhornConfig {
                epsilon,
                ..SinkhornConfig::default()
            }),
            None => OtSolver::Exact,
        }
    }

    /// The settings of the feature-driven flow (`--label-cost`, `--epsilon`).
    pub fn config(&self) -> OtddConfig {
        OtddConfig {
            label_cost: match self.label_cost {
                Some(LabelCostName::Gaussian) => LabelCost::Gaussian,
                _ => LabelCost::Exact,
            },
            solver: self.solver(),
            label_weight: 1.0,
        }
    }

    /// The joint dynamics' settings, or `None` for the feature-driven flow.
    pub fn joint_config(&self, tau_mean: f64, tau_sigma: f64) -> Result<Option<JointOtddConfig>> {
        let labels = match self.dynamics {
            DynamicsName::Feature => return Ok(None),
            DynamicsName::JointFixed => LabelDynamics::Fixed,
            DynamicsName::JointVariable => LabelDynamics::Variable,
        };
        if self.label_dim == 0 {
            bail!("--label-dim: the label Gaussians need at least 1 dimension, got 0");
        }
        if self.label_cost == Some(LabelCostName::Exact) {
            bail!(
                "--dynamics {}: the joint dynamics step Gaussian labels, so --label-cost exact \
                 does not apply (drop it, or use --dynamics feature)",
                self.dynamics_name()
            );
        }
        Ok(Some(JointOtddConfig {
            labels,
            solver: self.solver(),
            label_weight: 1.0,
            embedding: EmbeddingConfig {
                dim: self.label_dim,
                ..JointOtddConfig::default().embedding
            },
            tau_mean,
            tau_sigma,
        }))
    }

    /// The `--dynamics` value as the command line writes it (`feature`, `joint-fixed`,
    /// `joint-variable`).
    pub fn dynamics_name(&self) -> &'static str {
        match self.dynamics {
            DynamicsName::Feature => "feature",
            DynamicsName::JointFixed => "joint-fixed",
            DynamicsName::JointVariable => "joint-variable",
        }
    }

    /// The OTDD objective from `source` towards `target`.
    pub fn objective(
        &self,
        source: &LabeledCloud,
        target: LabeledCloud,
        tau_mean: f64,
        tau_sigma: f64,
    ) -> Result<Box<dyn Objective>> {
        Ok(match self.joint_config(tau_mean, tau_sigma)? {
            Some(config) => Box::new(JointOtdd::new(source, target, config)?),
            None => Box::new(OtddFlow::new(target, self.config())?),
        })
    }

    /// What identifies the objective in checkpoints.
    pub fn name(&self) -> String {
        let solver = self
            .epsilon
            .map_or("exact".to_string(), |e| format!("sinkhorn({e})"));
        match self.dynamics {
            DynamicsName::Feature => format!(
                "otdd:{}:{solver}",
                format!("{:?}", self.label_cost.unwrap_or(LabelCostName::Exact)).to_lowercase()
            ),
            _ => format!("otdd:{}:p{}:{solver}", self.dynamics_name(), self.label_dim),
        }
    }

    /// The clustering rule of `--clustering` for `joint`'s particles.
    pub fn clustering(
        &self,
        joint: &JointOtdd,
        target_classes: usize,
        seed: u64,
    ) -> Result<Clustering> {
        Ok(match self.clustering {
            ClusteringName::Kmeans => Clustering::KMeans {
                k: self.clusters.unwrap_or(target_classes),
                seed,
                restarts: 4,
            },
            ClusteringName::Dbscan => Clustering::Dbscan {
                eps: match self.dbscan_eps {
                    Some(eps) => eps,
                    None => joint.default_dbscan_eps()?,
                },
                min_points: self.dbscan_min_points,
            },
        })
    }
}

/// The labels a joint-driven run ends with, in the cloud's row order, and the arrays it
/// adds to the output.
pub struct JointLabels {
    /// Target label id of each particle's cluster (jd-vl) or the source label (jd-fl);
    /// −1 for DBSCAN noise.
    pub y: Vec<i64>,
    /// Raw cluster index (−1: noise); jd-vl only.
    pub cluster: Option<Vec<i64>>,
    /// The clusters found (for jd-fl: the source classes).
    pub clusters: Clusters,
    /// `label_means` (G, p), `label_covs` (G, p, p).
    pub arrays: Vec<(&'static str, NpyArray)>,
}

/// Reads the labels off a joint-driven objective after a run on `cloud`.
pub fn joint_labels(
    joint: &JointOtdd,
    args: &OtddArgs,
    cloud: &LabeledCloud,
    target: &LabeledCloud,
    seed: u64,
) -> Result<JointLabels> {
    let gaussians = joint.label_gaussians()?;
    let (g, p) = (gaussians.len(), gaussians.dim());
    let (means, covs) = (gaussians.means().to_vec(), gaussians.covariances().to_vec());
    let arrays = vec![
        ("label_means", NpyArray::f64(vec![g, p], means)),
        ("label_covs", NpyArray::f64(vec![g, p, p], covs)),
    ];
    let rule = match joint.config().labels {
        LabelDynamics::Fixed => None,
        LabelDynamics::Variable => Some(args.clustering(joint, target.n_classes(), seed)?),
    };
    let l = joint.labelling(cloud, rule.as_ref())?;
    Ok(JointLabels {
        y: l.y,
        cluster: l.cluster,
        clusters: l.clusters,
        arrays,
    })
}

/// Only with the command line (the `clap` feature) is there a default to compare with.
#[cfg(all(test, feature = "clap"))]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        otdd: OtddArgs,
    }

    /// The demos build `OtddArgs::default()`; it must be what the command line gives.
    #[test]
    fn default_is_the_command_line_default() {
        let parsed = Wrapper::parse_from(["wowflow"]).otdd;
        assert_eq!(format!("{parsed:?}"), format!("{:?}", OtddArgs::default()));
    }
}

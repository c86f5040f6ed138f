//! # wowflow-baselines
//!
//! The flows the papers compare the WoW flow with, each an [`Objective`](wowflow_core::Objective)
//! that the same [`Flow`](wowflow_core::Flow) runs (docs/math.md §7):
//!
//! - the OTDD flows of Alvarez-Melis & Fusi (2021) ([`otdd_flow`]): feature-driven
//!   ([`OtddFlow`]) and joint-driven with label Gaussians that take a step of their own,
//!   labels recovered by [`cluster`]ing ([`JointOtdd`]);
//! - the product-space MMD flow of Hua et al. (2023) on (features, label Gaussian) particles
//!   ([`product_mmd`]);
//! - the Euclidean MMD flow with the Riesz kernel on features, labels ignored
//!   ([`euclid_mmd`]);
//! - distribution matching of class means ([`dm`]);
//! - the dataset-shaping functionals of Alvarez-Melis & Fusi (potential energy, class
//!   repulsion) ([`shaping`]); their entropy term is Langevin noise, which the flow adds
//!   (`FlowConfig::temperature`).
//!
//! The label Gaussians `N(m, Σ)` shared by the joint OTDD dynamics and the product-space MMD
//! flow — their embedding, their class estimates and their Bures–Wasserstein step — are in
//! [`product_mmd`] ([`LabelEmbedding`], [`ClassGaussians`], [`bures_exp`]).

#![warn(missing_docs)]

pub mod cluster;
pub mod dm;
pub mod euclid_mmd;
pub mod otdd_flow;
pub mod product_mmd;
pub mod shaping;

pub use cluster::{Clustering, Clusters};
pub use dm::{dm_value_and_grad, DistributionMatching};
pub use euclid_mmd::EuclidMmd;
pub use otdd_flow::{JointLabelling, JointOtdd, JointOtddConfig, LabelDynamics, OtddFlow};
pub use product_mmd::{
    assign_product_labels, bures_exp, Bandwidth, BandwidthSpec, Bandwidths, ClassGaussians,
    EmbeddingConfig, LabelEmbedding, ProductGrad, ProductMmd, ProductMmdConfig, ProductMmdFlow,
    ProductMmdObjective, ProductParticles, ProductState, StepSizes,
};
pub use shaping::{ClassRepulsion, Potential, PotentialEnergy, Sum};

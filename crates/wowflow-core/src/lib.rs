//! # wowflow-core
//!
//! The mathematics of wowflow, with no I/O: labeled point clouds, slicing directions, exact
//! one-dimensional optimal transport, sliced-Wasserstein distances and gradients, kernels
//! between class measures, the SW-MMD objective with its Wasserstein-over-Wasserstein (WoW)
//! gradient, optimisers and the flow loop. For dataset distillation, [`Featurized`] compares
//! the datasets through a random differentiable [`FeatureMap`] redrawn every step — DSA
//! augmentations ([`Augment`]) and/or a random embedding implemented elsewhere.
//!
//! Beside it, the baselines the documents compare against: the OTDD flow ([`otdd_flow`]; its
//! feature-driven dynamics in [`OtddFlow`], the joint-driven ones — label Gaussians with a
//! step of their own, labels recovered by [`cluster`]ing — in [`JointOtdd`]),
//! the Euclidean MMD flow ([`euclid_mmd`]), distribution matching ([`dm`]) and the
//! product-space MMD flow of Hua et al. 2023 on (features, label Gaussian) particles
//! ([`product_mmd`]).
//!
//! Formulas and conventions are those of `docs/math.md` (sections cited in each module).
//!
//! ```
//! use wowflow_core::{toy, Flow, FlowConfig, FlowState, Kernel, Method, Optimizer, SwMmd};
//! # fn main() -> wowflow_core::Result<()> {
//! let target = toy::rings(40, 0)?;
//! let mut objective = SwMmd::new(target, Kernel::RIESZ, 100)?;
//! let optimizer = Optimizer::new(Method::Momentum { m: 0.9 }, 0.1)?;
//! let mut state = FlowState::new(toy::gaussian_noise(3, 40, 2, 1.0, 1)?);
//! Flow { objective: &mut objective, optimizer, config: FlowConfig { steps: 50, seed: 0, clip: None } }
//!     .run(&mut state, &mut [])?;
//! assert!(state.losses[49] < state.losses[0]);
//! # Ok(())
//! # }
//! ```

pub mod assign;
pub mod augment;
pub mod bench;
pub mod cloud;
pub mod cluster;
pub mod directions;
pub mod distance;
pub mod dm;
pub mod engine;
pub mod error;
pub mod euclid_mmd;
pub mod feature_map;
pub mod flow;
pub mod kernel;
pub mod linalg;
pub mod objective;
pub mod optim;
pub mod ot;
pub mod ot1d;
pub mod otdd_flow;
pub mod product_mmd;
pub mod reference;
pub mod shaping;
pub mod sliced;
pub mod sort;
pub mod toy;

pub use assign::{
    assign_by_nearest_neighbor, assign_by_ot, assign_from_costs, AssignmentMethod, ClassCost,
    LabelAssignment,
};
pub use augment::{Augment, AugmentMode, AugmentOp, DsaParams, ImageShape};
pub use cloud::{ClassWeighting, LabeledCloud};
pub use cluster::{Clustering, Clusters};
pub use directions::{DirectionSampler, Directions};
pub use distance::{
    otdd, sliced_wow_distance, sw_mmd_distance, wow_distance, DatasetDistance, LabelCost,
    OtddConfig,
};
pub use dm::{dm_value_and_grad, DistributionMatching};
pub use engine::{CpuEngine, Engine, SwMmdOutput};
pub use error::{CoreError, Result};
pub use euclid_mmd::EuclidMmd;
pub use feature_map::{Chain, Discrepancy, FeatureMap, Featurized, Frozen, Identity};
pub use flow::{
    Control, Flow, FlowConfig, FlowState, Observer, Outcome, SnapshotRecorder, StepInfo,
    SwMmdFlowSettings,
};
pub use kernel::Kernel;
pub use objective::{Objective, SwMmd};
pub use optim::{Method, Optimizer, OptimizerState, Schedule};
pub use ot1d::{wasserstein_1d, wasserstein_1d_grad, CostPower};
pub use otdd_flow::{JointOtdd, JointOtddConfig, LabelDynamics, OtddFlow};
pub use product_mmd::{
    assign_product_labels, bures_exp, Bandwidth, BandwidthSpec, Bandwidths, ClassGaussians,
    EmbeddingConfig, LabelEmbedding, ProductGrad, ProductMmd, ProductMmdConfig, ProductMmdFlow,
    ProductParticles, ProductState, StepSizes,
};
pub use shaping::{ClassRepulsion, Langevin, Potential, PotentialEnergy, Sum};
pub use sliced::SlicedCloud;

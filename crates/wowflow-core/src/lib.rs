//! # wowflow-core
//!
//! The mathematics of wowflow, with no I/O: labeled point clouds, slicing directions, exact
//! one-dimensional optimal transport, sliced-Wasserstein distances and gradients, kernels
//! between class measures, the SW-MMD objective with its Wasserstein-over-Wasserstein (WoW)
//! gradient, optimisers and the flow loop.
//!
//! Formulas and conventions are those of `MATH.md` (sections cited in each module).

pub mod bench;
pub mod cloud;
pub mod error;

pub use cloud::LabeledCloud;
pub use error::{CoreError, Result};
pub mod directions;
pub mod ot1d;

pub use directions::{DirectionSampler, Directions};
pub use ot1d::{wasserstein_1d, wasserstein_1d_grad, CostPower};
pub mod engine;
pub mod kernel;
pub mod objective;
pub mod reference;
pub mod sliced;

pub use engine::{CpuEngine, Engine, SwMmdOutput};
pub use kernel::Kernel;
pub use objective::{Objective, SwMmd};
pub use sliced::SlicedCloud;
pub mod flow;
pub mod optim;
pub mod toy;

pub use flow::{Control, Flow, FlowConfig, FlowState, Observer, Outcome, SnapshotRecorder, StepInfo};
pub use optim::{Method, Optimizer, OptimizerState, Schedule};

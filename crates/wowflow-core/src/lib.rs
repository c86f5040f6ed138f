//! # wowflow-core
//!
//! The Wasserstein-over-Wasserstein (WoW) gradient flow itself, with no I/O: labeled point
//! clouds ([`LabeledCloud`], docs/math.md §1), slicing directions ([`Directions`]), exact
//! one-dimensional optimal transport ([`ot1d`], §2), sliced-Wasserstein distances and kernels
//! between class measures ([`Kernel`], §3–4), the SW-MMD objective with its WoW gradient
//! ([`SwMmd`] on the CPU [`Engine`], §5), optimisers ([`Optimizer`]) and the flow loop
//! ([`Flow`]) with observers, snapshots and checkpointable state.
//!
//! The [`Objective`] trait is the seam: the baselines (`wowflow-baselines`), distillation's
//! feature-mapped objectives (`wowflow-distill`) and the GPU engine (`wowflow-cuda`) plug in
//! here; general OT solvers and dataset distances are in `wowflow-ot`.
//!
//! ```
//! use wowflow_core::{toy, Flow, FlowConfig, FlowState, Kernel, Method, Optimizer, SwMmd};
//! # fn main() -> wowflow_core::Result<()> {
//! let target = toy::rings(40, 0)?;
//! let mut objective = SwMmd::new(target, Kernel::RIESZ, 100)?;
//! let optimizer = Optimizer::new(Method::Momentum { m: 0.9 }, 0.1)?;
//! let mut state = FlowState::new(toy::gaussian_noise(3, 40, 2, 1.0, 1)?);
//! Flow { objective: &mut objective, optimizer, config: FlowConfig { steps: 50, seed: 0, clip: None, temperature: None } }
//!     .run(&mut state, &mut [])?;
//! assert!(state.losses[49] < state.losses[0]);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod cloud;
pub mod directions;
pub mod engine;
pub mod error;
pub mod flow;
mod hadamard;
pub mod kernel;
pub mod linalg;
pub mod objective;
pub mod optim;
pub mod ot1d;
pub mod sliced;
mod sort;
pub mod toy;

pub use cloud::{ClassLayout, ClassWeighting, LabeledCloud};
pub use directions::{DirectionSampler, Directions};
pub use engine::{CpuEngine, Engine, SwMmdOutput};
pub use error::{CoreError, Result};
pub use flow::{
    drive, Control, Flow, FlowConfig, FlowState, Observer, Outcome, SnapshotRecorder, StepInfo,
    StepOutput, Stepper, SwMmdFlowSettings,
};
pub use kernel::Kernel;
pub use objective::{Objective, SwMmd};
pub use optim::{Method, Optimizer, OptimizerState, Schedule};
pub use ot1d::{wasserstein_1d, wasserstein_1d_grad, CostPower};
/// The random source an [`Objective`] draws from (re-exported so implementors need no
/// `rand` dependency of their own).
pub use rand::RngCore;
pub use sliced::{sliced_wasserstein, SlicedCloud};

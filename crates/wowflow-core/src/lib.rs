//! # wowflow-core
//!
//! The mathematics of wowflow, with no I/O: labeled point clouds, slicing directions, exact
//! one-dimensional optimal transport, sliced-Wasserstein distances and gradients, kernels
//! between class measures, the SW-MMD objective with its Wasserstein-over-Wasserstein (WoW)
//! gradient, optimisers and the flow loop.
//!
//! Formulas and conventions are those of `MATH.md` (sections cited in each module).

pub mod cloud;
pub mod error;

pub use cloud::LabeledCloud;
pub use error::{CoreError, Result};

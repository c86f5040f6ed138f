//! # wowflow-cuda
//!
//! The GPU engine of wowflow: [`CudaEngine`] implements [`wowflow_core::Engine`], so every
//! objective that takes an engine (`SwMmd::with_engine`) and the CLI (`--device cuda`) run
//! on an NVIDIA GPU with the same results as the CPU engine to `f32` tolerance.
//!
//! Built on `cudarc` with dynamic loading: the crate compiles on machines without CUDA, and
//! the driver, NVRTC and cuBLAS are loaded when an engine is created. A missing library is
//! an error naming it ([`CudaError::MissingLibrary`]), never a panic.
//!
//! ```no_run
//! use std::sync::Arc;
//! use wowflow_core::{toy, Kernel, Objective, SwMmd};
//! use wowflow_cuda::CudaEngine;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Arc::new(CudaEngine::new()?); // Err if no driver / NVRTC / cuBLAS / GPU
//! let target = toy::rings(80, 0)?;
//! let mut objective = SwMmd::new(target, Kernel::RIESZ, 500)?.with_engine(engine);
//! # let _ = &mut objective;
//! # Ok(())
//! # }
//! ```
//!
//! For whole flows, [`DeviceFlow`] keeps everything on the device (the engine path moves both
//! clouds over PCIe every call). See `GPU.md` in this crate for how to run the GPU tests and
//! benchmarks, and `PERF.md` for the measured step times and what each optimisation bought.

#![warn(missing_docs)]

pub mod engine;
pub mod error;
pub mod flow;
pub mod kernels;
pub mod libs;

pub use engine::CudaEngine;
pub use error::{CudaError, Result};
pub use flow::{host_directions, host_normals, DeviceFlow, DeviceStep};

//! Where computation runs: the `--device` and `--tf32` options, the engine a device gives,
//! and the error of a binary built without CUDA. Both `bench` and the device-resident flow
//! (`resident`) read from here, so neither imports the other.

use anyhow::Result;
use std::sync::Arc;
use wowflow_core::{CpuEngine, Engine};

/// Where the SW-MMD step runs (`--device` of `flow` and `bench`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Device {
    /// The CPU engine (all cores, or `--threads`).
    #[default]
    Cpu,
    /// The CUDA engine on GPU 0 (binaries built with `--features cuda`).
    Cuda,
}

/// The engine for `--device` (`threads` applies to the CPU engine only).
pub fn make_engine(device: Device, threads: Option<usize>) -> Result<Arc<dyn Engine>> {
    Ok(match device {
        Device::Cpu => Arc::new(match threads {
            Some(t) => CpuEngine::with_threads(t)?,
            None => CpuEngine::new(),
        }),
        Device::Cuda => cuda_engine()?,
    })
}

#[cfg(feature = "cuda")]
fn cuda_engine() -> Result<Arc<dyn Engine>> {
    use anyhow::Context;
    let engine = wowflow_cuda::CudaEngine::new().context("--device cuda")?;
    eprintln!("device: {}", engine.device());
    Ok(Arc::new(engine))
}

#[cfg(not(feature = "cuda"))]
fn cuda_engine() -> Result<Arc<dyn Engine>> {
    Err(no_cuda())
}

/// The error of `--device cuda` in a binary built without the `cuda` feature.
#[cfg_attr(feature = "cuda", allow(dead_code))]
pub fn no_cuda() -> anyhow::Error {
    anyhow::anyhow!(
        "--device cuda: this wowflow binary was built without CUDA support; rebuild it with \
         `cargo build --release -p wowflow-cli --features cuda` and run it with the CUDA \
         libraries on the library path (e.g. LD_LIBRARY_PATH=/usr/local/cuda/lib64)"
    )
}

/// `--device` and `--tf32` of the experiments.
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DeviceArgs {
    /// Where the SW-MMD flows run: the CPU engine, or the GPU (`cuda`: particles, target and
    /// optimiser state stay on the device; a binary built with `--features cuda`).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "cpu"))]
    pub device: Device,
    /// With `--device cuda`: TF32 tensor cores for the projections (≈1e-3 relative error in
    /// the projections, about 1.6× faster at the paper's sizes).
    #[cfg_attr(feature = "clap", arg(long))]
    pub tf32: bool,
}

impl DeviceArgs {
    /// Whether flows go to the GPU.
    pub fn is_cuda(&self) -> bool {
        self.device == Device::Cuda
    }

    /// Refuses, before any work, a direction sampler (the setting `what`) that the
    /// GPU-resident SW-MMD flow cannot draw: it draws Gaussian directions on the device.
    pub fn check_sampler(&self, sampler: crate::method::SamplerName, what: &str) -> Result<()> {
        if self.is_cuda() && sampler != crate::method::SamplerName::Gaussian {
            anyhow::bail!(
                "setting `{what}` = \"{name}\": the GPU-resident flow (--device cuda) draws \
                 Gaussian directions only; run {name} directions on the CPU (drop --device \
                 cuda) or set `{what}` = \"gaussian\"",
                name = sampler.name()
            );
        }
        Ok(())
    }

    /// Refuses, before any work, what cannot run: `cuda` in a build without CUDA support,
    /// `--tf32` without `cuda`.
    pub fn check(&self) -> Result<()> {
        if self.is_cuda() && !cfg!(feature = "cuda") {
            return Err(no_cuda());
        }
        if self.tf32 && !self.is_cuda() {
            anyhow::bail!("--tf32 applies to --device cuda only");
        }
        Ok(())
    }
}

//! Errors of the CUDA engine.
//!
//! Each variant says what failed and, where the cause is usually the environment (a library
//! that cannot be loaded, no device), what to do about it.

use thiserror::Error;

/// Where the CUDA libraries are on the project's GPU machines.
pub const LIBRARY_HINT: &str =
    "put the CUDA libraries on the loader's path, e.g. `LD_LIBRARY_PATH=/usr/local/cuda/lib64`";

/// Errors raised by `wowflow-cuda`.
#[derive(Debug, Error)]
pub enum CudaError {
    /// A shared library the engine loads at run time was not found.
    #[error(
        "{what} could not be loaded ({names}); {LIBRARY_HINT} \
         (the loader searched its default path and LD_LIBRARY_PATH)"
    )]
    MissingLibrary {
        /// Which libraries, e.g. `the CUDA driver library` or `the NVRTC and cuBLAS
        /// libraries`.
        what: String,
        /// The file names looked for, e.g. `libcuda.so.1`.
        names: String,
    },
    /// The driver loaded but found no usable device (or failed to create a context).
    #[error("CUDA driver: {0}")]
    Driver(String),
    /// NVRTC rejected the kernels' source.
    #[error("NVRTC could not compile the wowflow kernels: {0}")]
    Compile(String),
    /// A cuBLAS call failed.
    #[error("cuBLAS: {0}")]
    Cublas(String),
    /// The inputs exceed what the kernels support.
    #[error("unsupported by the CUDA engine: {0}")]
    Unsupported(String),
    /// Invalid inputs or a diverged flow, reported exactly as the CPU path reports them.
    #[error(transparent)]
    Core(#[from] wowflow_core::CoreError),
}

/// Convenience alias used across the crate.
pub type Result<T, E = CudaError> = std::result::Result<T, E>;

impl From<cudarc::driver::DriverError> for CudaError {
    fn from(e: cudarc::driver::DriverError) -> Self {
        CudaError::Driver(format!("{e:?}"))
    }
}

impl From<cudarc::cublas::result::CublasError> for CudaError {
    fn from(e: cudarc::cublas::result::CublasError) -> Self {
        CudaError::Cublas(format!("{e:?}"))
    }
}

/// The [`wowflow_core::Engine`] trait reports [`wowflow_core::CoreError`]; a device failure
/// becomes [`CoreError::Backend`](wowflow_core::CoreError::Backend) with this error as its
/// source (errors of the mathematics pass through unchanged).
impl From<CudaError> for wowflow_core::CoreError {
    fn from(e: CudaError) -> Self {
        match e {
            CudaError::Core(core) => core,
            other => wowflow_core::CoreError::Backend {
                backend: "CUDA engine",
                source: Box::new(other),
            },
        }
    }
}

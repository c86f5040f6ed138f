//! The CUDA C source of the engine's kernels and its run-time compilation by NVRTC.
//!
//! The kernels live in `kernels.cu` (embedded with `include_str!`) rather than in a build
//! script so the crate builds on machines without a CUDA toolkit: NVRTC compiles them to PTX
//! when a [`crate::CudaEngine`] is created, for the device it runs on. The same compilation
//! runs in the tests on a machine without a GPU (NVRTC alone is enough), so CI catches a
//! kernel that no longer compiles.

use crate::error::{CudaError, Result};
use crate::libs;
use cudarc::nvrtc::{compile_ptx_with_opts, CompileOptions, Ptx};

/// The CUDA C source of every kernel.
pub const SOURCE: &str = include_str!("kernels.cu");

/// Entry points defined in [`SOURCE`] (all `extern "C"`, so their PTX names are these).
pub const KERNEL_NAMES: [&str; 21] = [
    "sort_chunks",
    "sort_warp_16_direct",
    "sort_warp_1",
    "sort_warp_2",
    "sort_warp_4",
    "sort_warp_8",
    "sort_warp_16",
    "merge_pass",
    "segment_levels",
    "pair_costs",
    "sum_dirs",
    "coefficients",
    "derivatives",
    "pair_costs_equal",
    "derivatives_equal",
    "gaussian_directions",
    "normalize_rows",
    "gather_rows",
    "optimizer_update",
    "sum_squares",
    "step_guard",
];

/// Longest chunk sorted by one warp in registers (`sort_warp_E`, E = 16 entries per lane);
/// longer chunks go through the shared-memory kernel.
pub const WARP_SORT_MAX: usize = 512;

/// Shared memory (bytes) every CUDA device gives a block without opting in. The
/// one-block-per-direction kernels (`pair_costs_equal`, `derivatives_equal`) opt in to the
/// device's maximum (227 KiB on an H100) when the engine is created, and fall back to this.
pub const SHARED_DEFAULT: usize = 48 * 1024;

/// Longest segment sorted in one shared-memory bitonic pass (entries of 8 bytes: 32 KiB of
/// shared memory, under the 48 KiB every CUDA device gives a block without opting in).
/// Longer segments are sorted in chunks of this size and merged by `merge_pass`.
pub const CHUNK: usize = 4096;

/// The NVRTC virtual architecture for a compute capability, when it is one NVRTC 13 knows
/// (`None` lets NVRTC pick its default, which every supported device can run).
pub fn arch_for(major: i32, minor: i32) -> Option<&'static str> {
    Some(match (major, minor) {
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 7) => "compute_87",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (10, 3) => "compute_103",
        (12, 0) => "compute_120",
        _ => return None,
    })
}

/// Compiles [`SOURCE`] to PTX for `arch` (e.g. `Some("compute_90")`).
///
/// Checks first that NVRTC can be loaded: cudarc panics on a missing library, and a missing
/// library is an environment problem the caller should be able to report, not a crash.
pub fn compile(arch: Option<&'static str>) -> Result<Ptx> {
    libs::require_nvrtc()?;
    let opts = CompileOptions {
        arch,
        name: Some("wowflow_kernels.cu".into()),
        options: vec!["--std=c++17".into()],
        ..Default::default()
    };
    compile_ptx_with_opts(SOURCE, opts).map_err(|e| CudaError::Compile(describe_compile_error(&e)))
}

fn describe_compile_error(e: &cudarc::nvrtc::CompileError) -> String {
    match e {
        cudarc::nvrtc::CompileError::CompileError {
            nvrtc,
            options,
            log,
        } => format!(
            "{nvrtc:?} with options {options:?}:\n{}",
            log.to_string_lossy()
        ),
        other => format!("{other:?}"),
    }
}

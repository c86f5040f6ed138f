//! Run-time checks for the shared libraries the engine loads.
//!
//! cudarc's `dynamic-loading` feature resolves every CUDA symbol on first use and *panics* if
//! the library cannot be loaded. The engine therefore asks each library's
//! `is_culib_present()` before the first call into it and turns a missing library into
//! [`CudaError::MissingLibrary`], which names the library and says how to fix the path.

use crate::error::{CudaError, Result};

/// Whether the CUDA driver library (`libcuda.so`) can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library by its candidate names and drops the handle.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether NVRTC (`libnvrtc.so`) can be loaded.
pub fn nvrtc_present() -> bool {
    // SAFETY: as above.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// Whether cuBLAS (`libcublas.so`, which itself needs `libcublasLt.so`) can be loaded.
pub fn cublas_present() -> bool {
    // SAFETY: as above.
    unsafe { cudarc::cublas::sys::is_culib_present() }
}

/// The libraries the engine needs: (name, file names, loadable?).
fn status() -> [(&'static str, &'static str, bool); 3] {
    [
        ("CUDA driver", "libcuda.so.1", driver_present()),
        ("NVRTC", "libnvrtc.so.13", nvrtc_present()),
        (
            "cuBLAS",
            "libcublas.so.13 with libcublasLt.so.13",
            cublas_present(),
        ),
    ]
}

fn missing(list: &[(&'static str, &'static str)]) -> CudaError {
    let names: Vec<&str> = list.iter().map(|m| m.0).collect();
    let what = match names.len() {
        1 => format!("the {} library", names[0]),
        _ => format!(
            "the {} and {} libraries",
            names[..names.len() - 1].join(", "),
            names[names.len() - 1]
        ),
    };
    CudaError::MissingLibrary {
        what,
        names: list.iter().map(|m| m.1).collect::<Vec<_>>().join(", "),
    }
}

/// Errors unless the driver, NVRTC and cuBLAS can all be loaded; the error names every
/// missing one, so a single run tells the user everything to fix.
pub fn require_all() -> Result<()> {
    let absent: Vec<(&str, &str)> = status()
        .iter()
        .filter(|s| !s.2)
        .map(|s| (s.0, s.1))
        .collect();
    if absent.is_empty() {
        Ok(())
    } else {
        Err(missing(&absent))
    }
}

/// Errors unless NVRTC can be loaded (all that compiling the kernels needs).
pub fn require_nvrtc() -> Result<()> {
    if nvrtc_present() {
        Ok(())
    } else {
        Err(missing(&[("NVRTC", "libnvrtc.so.13")]))
    }
}

/// Loads NVRTC (and its builtins library, which NVRTC itself opens by name) from a directory
/// such as the one `scripts/install-nvrtc.sh` prints, so the rest of the process finds it by
/// name without `LD_LIBRARY_PATH`. Returns whether NVRTC is loadable afterwards.
///
/// The dynamic loader matches later by-name loads against the sonames of libraries already
/// loaded, so loading both files by full path once is enough; the handles are kept for the
/// life of the process (unloading NVRTC while cudarc holds symbols from it would be unsound).
pub fn preload_nvrtc_from(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("libnvrtc") && name.contains(".so") && !name.contains(".alt.")
        })
        .collect();
    // builtins first: libnvrtc opens it by name when it compiles.
    files.sort_by_key(|p| !p.to_string_lossy().contains("builtins"));
    for f in files {
        // SAFETY: loading NVRTC runs its initialisers only; the handle is leaked on purpose
        // (see above).
        if let Ok(lib) = unsafe { libloading::Library::new(&f) } {
            std::mem::forget(lib);
        }
    }
    nvrtc_present()
}

/// Makes NVRTC loadable if it can be found: already on the loader's path, in
/// `$WOWFLOW_NVRTC_DIR`, or where `scripts/install-nvrtc.sh` puts it (`target/nvrtc` of this
/// workspace). Returns where it was found, or `None`.
///
/// Used by the PTX tests on machines without CUDA; the engine itself relies on the loader's
/// path (`LD_LIBRARY_PATH=/usr/local/cuda/lib64` on the GPU machines).
pub fn locate_nvrtc() -> Option<String> {
    if nvrtc_present() {
        return Some("the loader's path".into());
    }
    let mut dirs = Vec::new();
    if let Ok(d) = std::env::var("WOWFLOW_NVRTC_DIR") {
        if !d.is_empty() {
            dirs.push(std::path::PathBuf::from(d));
        }
    }
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dirs.push(workspace.join("target/nvrtc/nvidia/cu13/lib"));
    dirs.into_iter()
        .find(|d| preload_nvrtc_from(d))
        .map(|d| d.display().to_string())
}

//! Without the CUDA libraries, creating the engine is an error that names what is missing
//! and how to fix the library path, never a panic.

use wowflow_cuda::{libs, CudaEngine, CudaError};

/// Prints a line that stays visible under `cargo test`'s output capture (which only takes
/// the `print!`/`eprint!` macros), so a skipped GPU/NVRTC check shows up in CI logs.
fn visible(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[test]
fn missing_driver_is_a_named_error() {
    if libs::driver_present() {
        visible(
            "SKIPPED wowflow-cuda missing_driver_is_a_named_error: the CUDA driver library is \
             present on this machine",
        );
        return;
    }
    let err = CudaEngine::new().expect_err("no driver, yet the engine was created");
    assert!(matches!(err, CudaError::MissingLibrary { .. }), "{err:?}");
    let msg = err.to_string();
    for needle in [
        "CUDA driver",
        "libcuda.so",
        "LD_LIBRARY_PATH=/usr/local/cuda/lib64",
    ] {
        assert!(msg.contains(needle), "`{needle}` missing from: {msg}");
    }
    // The message survives the conversion to the core error the Engine trait reports.
    let core: wowflow_core::CoreError = err.into();
    assert!(core.to_string().contains("libcuda.so"), "{core}");
    // As a backend failure with the CUDA error kept whole as its source.
    assert!(
        matches!(
            core,
            wowflow_core::CoreError::Backend {
                backend: "CUDA engine",
                ..
            }
        ),
        "{core:?}"
    );
    let source = std::error::Error::source(&core).expect("the CUDA error as the source");
    assert!(source.downcast_ref::<CudaError>().is_some(), "{source:?}");
}

#[test]
fn every_missing_library_is_named() {
    let absent: Vec<&str> = [
        ("CUDA driver", libs::driver_present()),
        ("NVRTC", libs::nvrtc_present()),
        ("cuBLAS", libs::cublas_present()),
    ]
    .iter()
    .filter(|s| !s.1)
    .map(|s| s.0)
    .collect();
    match libs::require_all() {
        Ok(()) => assert!(absent.is_empty()),
        Err(e) => {
            let msg = e.to_string();
            for name in &absent {
                assert!(msg.contains(name), "`{name}` missing from: {msg}");
            }
        }
    }
}

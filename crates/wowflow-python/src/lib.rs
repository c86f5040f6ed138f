//! `wowflow._native`: the Rust engine of the `wowflow` Python package.
//!
//! Thin on purpose: it turns numpy arrays into [`wowflow_core::LabeledCloud`]s (one pass,
//! any float dtype and memory order, every bad input named), calls the same library
//! functions as the `wowflow` command (so the same settings and seed give the same bits),
//! releases the GIL while they run, and maps errors to the Python exceptions users catch.
//! The documented API, with docstrings and type stubs, is the pure-Python package
//! `python/wowflow`.

mod arrays;
mod data;
mod errors;
mod flow;
mod measures;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("WowflowError", m.py().get_type::<errors::WowflowError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Whether this build has the CUDA engine (`device="cuda"`).
    m.add("HAS_CUDA", cfg!(feature = "cuda"))?;
    m.add_function(wrap_pyfunction!(measures::sliced_wasserstein, m)?)?;
    m.add_function(wrap_pyfunction!(measures::sw_mmd, m)?)?;
    m.add_class::<measures::SwMmdObjective>()?;
    m.add_function(wrap_pyfunction!(measures::distance, m)?)?;
    m.add_function(wrap_pyfunction!(measures::assign_labels, m)?)?;
    m.add_function(wrap_pyfunction!(flow::flow, m)?)?;
    m.add_function(wrap_pyfunction!(data::load, m)?)?;
    m.add_function(wrap_pyfunction!(data::names, m)?)?;
    m.add_function(wrap_pyfunction!(data::rings, m)?)?;
    m.add_function(wrap_pyfunction!(data::gaussian_noise, m)?)?;
    m.add_function(wrap_pyfunction!(data::run_experiment, m)?)?;
    m.add_function(wrap_pyfunction!(data::table_plan, m)?)?;
    Ok(())
}

//! The dataset registry and cache of `wowflow data`, and the papers' experiments, from
//! Python.

use crate::arrays::array;
use crate::errors::{value_error, IntoPy};
use clap::Parser;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use wowflow_data::{draw_disjoint, load_split, to_cloud, DataDirs, Split, Transform};

/// One split of a registered dataset as `x (N, c·h·w)` float32 in `[0, 1]` and `y (N,)`;
/// `per_class` seeded images of each class (grouped by class), or the whole split in file
/// order.
#[pyfunction]
#[pyo3(signature = (name, split="test", per_class=None, seed=0, data_dir=None, size=None))]
pub fn load<'py>(
    py: Python<'py>,
    name: &str,
    split: &str,
    per_class: Option<usize>,
    seed: u64,
    data_dir: Option<PathBuf>,
    size: Option<(usize, usize)>,
) -> PyResult<Bound<'py, PyDict>> {
    if let Some((h, w)) = size {
        if h == 0 || w == 0 {
            return Err(value_error(format!(
                "size: expected (height, width) ≥ 1, got ({h}, {w})"
            )));
        }
    }
    let split: Split = split
        .parse()
        .map_err(|e: wowflow_data::DataError| value_error(format!("split: {e}")))?;
    if per_class == Some(0) {
        return Err(value_error(
            "per_class: must be ≥ 1 (or None for the whole split)",
        ));
    }
    let name = name.to_string();
    let (x, y, n, d, shape) = py
        .detach(move || -> anyhow::Result<_> {
            let dirs = DataDirs::new(data_dir.as_deref());
            let set = load_split(&dirs, &name, split)?;
            let (h, w) = size.unwrap_or((set.height, set.width));
            let shape = (set.channels, h, w);
            let indices: Vec<Vec<usize>> = match per_class {
                Some(k) => draw_disjoint(&set, &[k], seed)?.swap_remove(0),
                None => vec![(0..set.len()).collect()],
            };
            let transform = Transform {
                resize: size.filter(|&s| s != (set.height, set.width)),
                normalize: None,
            };
            let cloud = to_cloud(&set, &indices, &transform)?;
            let y: Vec<i64> = match per_class {
                Some(_) => cloud.row_labels(),
                None => set.labels.iter().map(|&l| l as i64).collect(),
            };
            Ok((
                cloud.points().to_vec(),
                y,
                cloud.n_points(),
                cloud.dim(),
                shape,
            ))
        })
        .py()?;
    let out = PyDict::new(py);
    out.set_item("x", array(py, &[n, d], x)?)?;
    out.set_item("y", array(py, &[n], y)?)?;
    out.set_item("image_shape", shape)?;
    Ok(out)
}

/// The three rings of the papers' toy flow (`wowflow demo rings`): `(3, per_ring, 2)`.
#[pyfunction]
#[pyo3(signature = (per_ring=200, seed=0))]
pub fn rings(py: Python<'_>, per_ring: usize, seed: u64) -> PyResult<Bound<'_, PyAny>> {
    let cloud = wowflow_core::toy::rings(per_ring, seed).py()?;
    array(py, &[3, per_ring, 2], cloud.points().to_vec())
}

/// `classes × per_class` i.i.d. `N(0, std² I_d)` points: `(classes, per_class, dim)`.
#[pyfunction]
#[pyo3(signature = (classes, per_class, dim, std=1.0, seed=0))]
pub fn gaussian_noise(
    py: Python<'_>,
    classes: usize,
    per_class: usize,
    dim: usize,
    std: f32,
    seed: u64,
) -> PyResult<Bound<'_, PyAny>> {
    let cloud = wowflow_core::toy::gaussian_noise(classes, per_class, dim, std, seed).py()?;
    array(py, &[classes, per_class, dim], cloud.points().to_vec())
}

/// The names of the registered datasets.
#[pyfunction]
pub fn names() -> Vec<&'static str> {
    wowflow_data::registry::DATASETS
        .iter()
        .map(|d| d.name)
        .collect()
}

#[derive(Parser)]
#[command(name = "wowflow experiment")]
struct ExperimentCli {
    #[command(subcommand)]
    experiment: wowflow_experiments::Experiment,
}

/// Runs one of the papers' experiments with the command line's options (`args`, e.g.
/// `["transfer", "--profile", "quick", "--out", "runs/t"]`), with the GIL released.
///
/// Ctrl-C is Python's: the run goes on a thread of its own while this one waits with the GIL
/// released and looks for signals every 50 ms. A `KeyboardInterrupt` stops the running flow
/// after its current step, its state saved as the cell's last segment (the network training
/// in progress, if any, finishes first); the same call then continues from there. No signal
/// handler of the Rust side is installed in the Python process.
#[pyfunction]
pub fn run_experiment(py: Python<'_>, args: Vec<String>) -> PyResult<()> {
    let argv = std::iter::once("wowflow experiment".to_string()).chain(args);
    let cli =
        ExperimentCli::try_parse_from(argv).map_err(|e| value_error(e.render().to_string()))?;
    let flag = wowflow_experiments::progress::host_interrupt_flag();
    let worker = std::thread::Builder::new()
        .name("wowflow-experiment".into())
        .stack_size(8 << 20)
        .spawn(move || wowflow_experiments::run(cli.experiment))
        .map_err(|e| PyRuntimeError::new_err(format!("starting the experiment's thread: {e}")))?;
    let mut interrupt: Option<PyErr> = None;
    while !worker.is_finished() {
        py.detach(|| std::thread::sleep(std::time::Duration::from_millis(50)));
        // Later signals are taken too (and dropped), so none is left pending.
        if let Err(e) = py.check_signals() {
            flag.store(true, Ordering::SeqCst);
            interrupt.get_or_insert(e);
        }
    }
    let result = worker
        .join()
        .map_err(|_| PyRuntimeError::new_err("the experiment's thread panicked"))?;
    match (interrupt, result) {
        (None, result) => result.py(),
        (Some(e), Err(stopped)) if e.is_instance_of::<PyKeyboardInterrupt>(py) => {
            Err(PyKeyboardInterrupt::new_err(format!("{stopped:#}")))
        }
        (Some(e), _) => Err(e),
    }
}

/// The work left in a table (`wowflow experiment table ... --plan`), as JSON, for the
/// options `args` of `run_experiment(["table", *args])`.
#[pyfunction]
pub fn table_plan(py: Python<'_>, args: Vec<String>) -> PyResult<String> {
    let argv = ["wowflow experiment".to_string(), "table".to_string()]
        .into_iter()
        .chain(args);
    let cli =
        ExperimentCli::try_parse_from(argv).map_err(|e| value_error(e.render().to_string()))?;
    let wowflow_experiments::Experiment::Table(table) = cli.experiment else {
        return Err(value_error("table_plan: not a table".to_string()));
    };
    py.detach(move || wowflow_experiments::table::plan_json(&table))
        .py()
}

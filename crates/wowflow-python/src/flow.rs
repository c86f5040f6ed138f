//! `flow`: every method of `wowflow flow`, run by the same library code
//! ([`wowflow_experiments::method::MethodFlow`]) with the GIL released. Between steps the
//! loop takes the GIL back only to check for Ctrl-C and to call the Python step callback
//! (progress bar, user callback); a Ctrl-C stops the flow after the current step and the
//! partial result comes back (and is checkpointed when a checkpoint path is given).

use crate::arrays::{array, Dataset};
use crate::errors::{to_py, value_error, IntoPy};
use crate::measures::{by_name, directions, pair};
use anyhow::Context;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::time::Instant;
use wowflow_core::{Control, FlowState, Observer, Outcome, SnapshotRecorder, StepInfo};
use wowflow_experiments::checkpoint::{self, Checkpointer, RunSettings};
use wowflow_experiments::method::{FinalLabels, FlowSettings, MethodFlow};
use wowflow_experiments::otdd::OtddArgs;

/// Why the Python side stopped a flow early.
#[derive(Default)]
struct PyStep {
    /// Called after every step with `(step, total, loss, grad_norm)`; `False` stops.
    on_step: Option<Py<PyAny>>,
    /// A Ctrl-C (KeyboardInterrupt) arrived.
    interrupted: bool,
    /// The callback returned `False`.
    stopped: bool,
    /// The callback raised (re-raised once the flow has stopped).
    error: Option<PyErr>,
}

impl Observer for PyStep {
    fn on_step(&mut self, info: &StepInfo, _state: &FlowState) -> wowflow_core::Result<Control> {
        Python::attach(|py| {
            let outcome = py.check_signals().and_then(|()| match &self.on_step {
                Some(cb) => cb
                    .call1(py, (info.step, info.total, info.loss, info.grad_norm))
                    .map(|r| r.bind(py).is(pyo3::types::PyBool::new(py, false))),
                None => Ok(false),
            });
            match outcome {
                Ok(false) => Ok(Control::Continue),
                Ok(true) => {
                    self.stopped = true;
                    Ok(Control::Stop)
                }
                Err(e) if e.is_instance_of::<PyKeyboardInterrupt>(py) => {
                    self.interrupted = true;
                    Ok(Control::Stop)
                }
                Err(e) => {
                    self.error = Some(e);
                    Ok(Control::Stop)
                }
            }
        })
    }

    fn needs_state(&self, _steps_done: usize, _total: usize) -> bool {
        false
    }
}

/// Runs a flow (see the Python docstring of `wowflow.flow`); returns a dict.
#[pyfunction]
#[pyo3(signature = (
    source, target, method="sw-mmd", steps=1000, lr=0.1, optimizer=None, momentum=None,
    kernel="riesz", h=None, r=1.0, n_projections=500, projections=None, sampler="gaussian",
    target_batch=None, clip=None, seed=0, class_weights=None, target_class_weights=None,
    source_weights=None, target_weights=None, threads=None, device="cpu", lr_sigma=0.1,
    dynamics="feature", label_cost=None, epsilon=None, label_dim=16, clustering="dbscan",
    clusters=None, dbscan_eps=None, dbscan_min_points=4, save_every=None, on_step=None,
    checkpoint=None, checkpoint_every=None, resume=None
))]
#[allow(clippy::too_many_arguments)]
pub fn flow<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    method: &str,
    steps: usize,
    lr: f64,
    optimizer: Option<&str>,
    momentum: Option<f64>,
    kernel: &str,
    h: Option<f64>,
    r: f64,
    n_projections: usize,
    projections: Option<&Bound<'py, PyAny>>,
    sampler: &str,
    target_batch: Option<usize>,
    clip: Option<(f32, f32)>,
    seed: u64,
    class_weights: Option<&Bound<'py, PyAny>>,
    target_class_weights: Option<&Bound<'py, PyAny>>,
    source_weights: Option<&Bound<'py, PyAny>>,
    target_weights: Option<&Bound<'py, PyAny>>,
    threads: Option<usize>,
    device: &str,
    lr_sigma: f64,
    dynamics: &str,
    label_cost: Option<&str>,
    epsilon: Option<f64>,
    label_dim: usize,
    clustering: &str,
    clusters: Option<usize>,
    dbscan_eps: Option<f64>,
    dbscan_min_points: usize,
    save_every: Option<usize>,
    on_step: Option<Py<PyAny>>,
    checkpoint: Option<PathBuf>,
    checkpoint_every: Option<usize>,
    resume: Option<PathBuf>,
) -> PyResult<Bound<'py, PyDict>> {
    let method: wowflow_experiments::method::FlowMethod = by_name(method, "method")?;
    if let Some((lo, hi)) = clip {
        if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
            return Err(value_error(format!(
                "clip: expected (lo, hi) with lo < hi, got ({lo}, {hi})"
            )));
        }
    }
    if save_every == Some(0) {
        return Err(value_error(
            "save_every: must be ≥ 1 (or None for first and last only)",
        ));
    }
    if checkpoint_every.is_some() && checkpoint.is_none() {
        return Err(value_error(
            "checkpoint_every: needs checkpoint= (the file to write)",
        ));
    }
    let (src, tgt) = pair(
        source,
        target,
        source_weights,
        target_weights,
        class_weights,
        target_class_weights,
        method.class_weighting(),
    )?;
    let d = src.cloud.dim();
    let fixed_directions = match projections.filter(|p| !p.is_none()) {
        Some(_) => Some(directions(projections, 0, d, sampler, seed)?),
        None => None,
    };
    let settings = FlowSettings {
        method,
        otdd: OtddArgs {
            label_cost: label_cost.map(|s| by_name(s, "label_cost")).transpose()?,
            epsilon,
            dynamics: by_name(dynamics, "dynamics")?,
            label_dim,
            clustering: by_name(clustering, "clustering")?,
            clusters,
            dbscan_eps,
            dbscan_min_points,
        },
        kernel: by_name(kernel, "kernel")?,
        h,
        r,
        projections: n_projections,
        sampler: by_name(sampler, "sampler")?,
        directions: None,
        fixed_directions,
        steps,
        lr,
        optimizer: optimizer.map(|s| by_name(s, "optimizer")).transpose()?,
        momentum,
        target_batch,
        clip,
        seed,
        class_weights: None,
        threads,
        device: by_name(device, "device")?,
        lr_sigma,
    };
    let run_settings = RunSettings::of(&settings, &src.cloud, &tgt.cloud).py()?;
    if let Some(path) = &checkpoint {
        wowflow_data::prepare_output_file(path).py()?;
    }
    if let Some(p) = resume.as_ref().filter(|p| !p.exists()) {
        return Err(pyo3::exceptions::PyFileNotFoundError::new_err(format!(
            "resume: {} does not exist",
            p.display()
        )));
    }
    let mut state = match &resume {
        // A checkpoint of other settings is a bad value, not a failed computation.
        Some(p) => checkpoint::load(p, &run_settings)
            .with_context(|| format!("resume: {}", p.display()))
            .map_err(|e| {
                let err = to_py(e);
                Python::attach(|py| {
                    if err.is_instance_of::<crate::errors::WowflowError>(py) {
                        value_error(err.value(py).to_string())
                    } else {
                        err
                    }
                })
            })?,
        None => FlowState::new(src.cloud.clone()),
    };
    let mut snaps = SnapshotRecorder::new(save_every.unwrap_or(usize::MAX));
    snaps.record(&state);
    let mut step = PyStep {
        on_step,
        ..PyStep::default()
    };
    let started = Instant::now();
    let first_step = state.step;
    let (state_ref, snaps_ref, step_ref) = (&mut state, &mut snaps, &mut step);
    let (source, target) = (&src.cloud, &tgt.cloud);
    let ckpt_path = checkpoint.clone();
    let (result, saved) = py.detach(move || {
        let (state, snaps, step) = (state_ref, snaps_ref, step_ref);
        let result = (|| -> anyhow::Result<(Outcome, FinalLabels)> {
            let mut flow = MethodFlow::new(&settings, state, source, target)?;
            let path = ckpt_path.clone().unwrap_or_default();
            let mut ckpt = Checkpointer {
                path: &path,
                every: checkpoint_every.unwrap_or(0),
                settings: &run_settings,
            };
            let mut observers: Vec<&mut dyn Observer> = vec![step, snaps];
            if ckpt_path.is_some() {
                observers.push(&mut ckpt);
            }
            let outcome = flow.run(state, &mut observers)?;
            Ok((outcome, flow.final_labels(state, target)?))
        })();
        // A stopped or failed run keeps its last good state on disk when asked to.
        let keep = !matches!(result, Ok((Outcome::Finished, _)));
        let saved = match (&ckpt_path, keep) {
            (Some(path), true) => Some(
                checkpoint::save(path, state, &run_settings)
                    .with_context(|| format!("writing checkpoint {}", path.display())),
            ),
            _ => None,
        };
        (result, saved)
    });
    if let Some(e) = step.error.take() {
        return Err(e);
    }
    if let Some(Err(e)) = saved {
        return Err(to_py(e));
    }
    let (outcome, labels) = match result {
        Ok(r) => r,
        Err(e) => {
            let e = match &checkpoint {
                Some(p) => e.context(format!(
                    "the state of the last good step (step {}) is saved in {}",
                    state.step,
                    p.display()
                )),
                None => e.context(format!(
                    "stopped after {} good steps; pass checkpoint=PATH to keep their state",
                    state.step
                )),
            };
            return Err(to_py(e));
        }
    };
    // The last state is a snapshot whether the flow finished or was stopped early.
    snaps.record(&state);
    let out = PyDict::new(py);
    write_result(py, &out, &src, &state, &snaps, &labels)?;
    out.set_item("interrupted", step.interrupted)?;
    out.set_item("stopped", step.stopped || step.interrupted)?;
    out.set_item("seconds", started.elapsed().as_secs_f64())?;
    out.set_item("first_step", first_step)?;
    out.set_item(
        "checkpoint",
        checkpoint.filter(|_| outcome == Outcome::Stopped),
    )?;
    Ok(out)
}

/// The result arrays, in the source's own layout and row order.
fn write_result(
    py: Python<'_>,
    out: &Bound<'_, PyDict>,
    src: &Dataset,
    state: &FlowState,
    snaps: &SnapshotRecorder,
    labels: &FinalLabels,
) -> PyResult<()> {
    let cloud = &state.cloud;
    out.set_item("x", src.to_input(py, cloud.points())?)?;
    let rows = labels.labels.clone().unwrap_or_else(|| cloud.row_labels());
    out.set_item("y", src.labels_to_input(py, &rows)?)?;
    let mut shape = vec![snaps.snapshots.len()];
    shape.extend(&src.shape);
    let mut data = Vec::with_capacity(snaps.snapshots.len() * cloud.points().len());
    for (_, pts) in &snaps.snapshots {
        match &src.order {
            Some(order) => data.extend(wowflow_core::cloud::rows_to_input_order(
                pts,
                cloud.dim(),
                order,
            )),
            None => data.extend_from_slice(pts),
        }
    }
    out.set_item("snapshots", array(py, &shape, data)?)?;
    let steps: Vec<i64> = snaps.snapshots.iter().map(|(s, _)| *s as i64).collect();
    out.set_item("snapshot_steps", array(py, &[steps.len()], steps)?)?;
    out.set_item(
        "losses",
        array(py, &[state.losses.len()], state.losses.clone())?,
    )?;
    out.set_item(
        "grad_norms",
        array(py, &[state.grad_norms.len()], state.grad_norms.clone())?,
    )?;
    out.set_item("steps", state.step)?;
    if let Some(joint) = &labels.joint {
        if let Some(cluster) = &joint.cluster {
            out.set_item("cluster", src.labels_to_input(py, cluster)?)?;
        }
        for (name, a) in &joint.arrays {
            out.set_item(*name, crate::arrays::npy(py, a)?)?;
        }
    }
    Ok(())
}

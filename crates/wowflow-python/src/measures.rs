//! What is computed between two measures in one call: sliced Wasserstein between point
//! clouds, SW-MMD and its WoW gradient between labeled datasets, dataset distances and the
//! labels a flowed dataset is given. The work runs with the GIL released.

use crate::arrays::{array, class_weighting, floats, weights, Dataset};
use crate::errors::{value_error, IntoPy};
use clap::ValueEnum;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex, OnceLock};
use wowflow_core::{ClassWeighting, DirectionSampler, Directions, Objective};
use wowflow_experiments::distance::{dataset_distance, DistanceKind, DistanceOptions};
use wowflow_experiments::method::{KernelName, SamplerName};

/// Parses a name of a clap `ValueEnum` (the CLI's spelling), or a `ValueError` listing the
/// names there are.
pub fn by_name<T: ValueEnum>(value: &str, arg: &str) -> PyResult<T> {
    T::from_str(value, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| format!("{:?}", p.get_name())))
            .collect();
        value_error(format!(
            "{arg}: unknown value {value:?}; expected one of {}",
            names.join(", ")
        ))
    })
}

/// User directions `(L, d)` (rows normalised), or `count` seeded draws of `sampler`.
pub fn directions(
    projections: Option<&Bound<'_, PyAny>>,
    count: usize,
    dim: usize,
    sampler: &str,
    seed: u64,
) -> PyResult<Directions> {
    if let Some(p) = projections.filter(|p| !p.is_none()) {
        let f = floats(p, "projections", &[2], &format!("(L, {dim})"))?;
        if f.shape[1] != dim {
            return Err(value_error(format!(
                "projections: expected shape (L, {dim}), one direction per row in the data's \
                 d = {dim} dimensions, got ({}, {}) (POT's projections are (d, L): pass \
                 their transpose)",
                f.shape[0], f.shape[1]
            )));
        }
        return Directions::from_rows(f.shape[0], dim, f.values)
            .map_err(|e| value_error(format!("projections: {e}")));
    }
    if count == 0 {
        return Err(value_error(
            "n_projections: need at least one direction, got 0",
        ));
    }
    let sampler = DirectionSampler::from(by_name::<SamplerName>(sampler, "sampler")?);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    sampler.sample(count, dim, &mut rng).py()
}

/// Sliced Wasserstein SW_p between two weighted point clouds (see the Python docstring).
#[pyfunction]
#[pyo3(signature = (x, y, a=None, b=None, n_projections=500, p=2.0, projections=None, seed=0, sampler="gaussian"))]
#[allow(clippy::too_many_arguments)]
pub fn sliced_wasserstein(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    a: Option<&Bound<'_, PyAny>>,
    b: Option<&Bound<'_, PyAny>>,
    n_projections: usize,
    p: f64,
    projections: Option<&Bound<'_, PyAny>>,
    seed: u64,
    sampler: &str,
) -> PyResult<f64> {
    let fx = floats(x, "x", &[2], "(n, d)")?;
    let fy = floats(y, "y", &[2], "(m, d)")?;
    let d = fx.shape[1];
    if fy.shape[1] != d {
        return Err(value_error(format!(
            "y: expected shape (m, {d}) (the same d as x), got ({}, {})",
            fy.shape[0], fy.shape[1]
        )));
    }
    if fx.shape[0] == 0 || fy.shape[0] == 0 || d == 0 {
        return Err(value_error(format!(
            "x and y need at least one point each and d ≥ 1; got x ({}, {d}), y ({}, {d})",
            fx.shape[0], fy.shape[0]
        )));
    }
    if !(p.is_finite() && p >= 1.0) {
        return Err(value_error(format!(
            "p: must be a finite number ≥ 1, got {p}"
        )));
    }
    let wa = weights(a, "a", fx.shape[0], "one weight per row of x")?;
    let wb = weights(b, "b", fy.shape[0], "one weight per row of y")?;
    let dirs = directions(projections, n_projections, d, sampler, seed)?;
    py.detach(|| {
        wowflow_core::sliced_wasserstein(
            &fx.values,
            wa.as_deref(),
            &fy.values,
            wb.as_deref(),
            &dirs,
            p,
        )
    })
    .py()
}

/// The kernel `name` with `h` / `r`.
pub fn kernel(name: &str, h: Option<f64>, r: f64) -> PyResult<wowflow_core::Kernel> {
    let k = by_name::<KernelName>(name, "kernel")?;
    let param = match k {
        KernelName::Riesz => Some(r),
        _ => h,
    };
    k.kernel(param).map_err(|e| value_error(format!("{e:#}")))
}

/// The CPU engine every call shares: its workspace (projections, sorted segments, ~100 MB at
/// domain-adaptation size) is allocated once per process, not once per call.
fn shared_engine() -> Arc<dyn wowflow_core::Engine> {
    static ENGINE: OnceLock<Arc<wowflow_core::CpuEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| Arc::new(wowflow_core::CpuEngine::new()))
        .clone()
}

/// The direction sampler `projections` / `sampler` choose.
fn sampler_choice(
    projections: Option<&Bound<'_, PyAny>>,
    n_projections: usize,
    dim: usize,
    sampler: &str,
) -> PyResult<DirectionSampler> {
    Ok(match projections.filter(|p| !p.is_none()) {
        Some(_) => DirectionSampler::Fixed(directions(projections, 0, dim, sampler, 0)?),
        None => {
            if n_projections == 0 {
                return Err(value_error(
                    "n_projections: need at least one direction, got 0",
                ));
            }
            by_name::<SamplerName>(sampler, "sampler")?.into()
        }
    })
}

/// ½MMD² towards a fixed target with its own workspace: the object a loop calls every step
/// (see the Python docstring of `wowflow.SwMmd`).
#[pyclass(name = "SwMmd", module = "wowflow._native")]
pub struct SwMmdObjective {
    objective: Mutex<wowflow_core::SwMmd>,
    dim: usize,
}

impl SwMmdObjective {
    /// Value (and WoW gradient) at `source`, directions drawn from `seed` as the first
    /// step of a flow with that seed.
    #[allow(clippy::too_many_arguments)]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        source: &Bound<'py, PyAny>,
        seed: u64,
        step: usize,
        source_weights: Option<&Bound<'py, PyAny>>,
        class_weights: Option<&Bound<'py, PyAny>>,
        return_grad: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut src = Dataset::read(source, "source", source_weights)?;
        if src.cloud.dim() != self.dim {
            return Err(value_error(format!(
                "source: has d = {} features but the target has d = {}: both datasets must \
                 live in the same space",
                src.cloud.dim(),
                self.dim
            )));
        }
        src.weigh("source", class_weights, ClassWeighting::Uniform)?;
        let cloud = &src.cloud;
        let objective = &self.objective;
        let (value, grad) = py
            .detach(move || -> anyhow::Result<(f64, Vec<f32>)> {
                let mut objective = objective
                    .lock()
                    .map_err(|_| anyhow::anyhow!("a previous call panicked inside the engine"))?;
                let mut grad = vec![0.0f32; cloud.points().len()];
                // The draw of step `step` of a flow with this seed (`flow`, `wowflow flow`),
                // so a Python loop can take the flow's steps bit for bit.
                let mut rng = wowflow_core::flow::step_rng(seed, step);
                let value = objective.value_and_wow_grad(cloud, &mut rng, &mut grad)?;
                Ok((value, grad))
            })
            .py()?;
        if !return_grad {
            return Ok(value.into_pyobject(py)?.into_any());
        }
        let g = src.rows_to_input(py, grad)?;
        Ok((value, g).into_pyobject(py)?.into_any())
    }
}

#[pymethods]
impl SwMmdObjective {
    #[new]
    #[pyo3(signature = (target, kernel="riesz", h=None, r=1.0, n_projections=500, projections=None, sampler="gaussian", target_weights=None, target_class_weights=None, target_batch=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        target: &Bound<'_, PyAny>,
        kernel: &str,
        h: Option<f64>,
        r: f64,
        n_projections: usize,
        projections: Option<&Bound<'_, PyAny>>,
        sampler: &str,
        target_weights: Option<&Bound<'_, PyAny>>,
        target_class_weights: Option<&Bound<'_, PyAny>>,
        target_batch: Option<usize>,
    ) -> PyResult<Self> {
        let mut tgt = Dataset::read(target, "target", target_weights)?;
        tgt.weigh("target", target_class_weights, ClassWeighting::Uniform)?;
        let dim = tgt.cloud.dim();
        let k = self::kernel(kernel, h, r)?;
        let sampler = sampler_choice(projections, n_projections, dim, sampler)?;
        if target_batch == Some(0) {
            return Err(value_error(
                "target_batch: must be ≥ 1 (or None for every point)",
            ));
        }
        let objective = wowflow_core::SwMmd::new(tgt.cloud, k, n_projections.max(1))
            .and_then(|o| o.with_directions(sampler))
            .and_then(|o| o.with_target_batch(target_batch))
            .py()?
            .with_engine(shared_engine());
        Ok(Self {
            objective: Mutex::new(objective),
            dim,
        })
    }

    /// `(value, grad)` at `source` (or the value alone).
    #[pyo3(signature = (source, seed=0, step=0, source_weights=None, class_weights=None, return_grad=true))]
    #[allow(clippy::too_many_arguments)]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        source: &Bound<'py, PyAny>,
        seed: u64,
        step: usize,
        source_weights: Option<&Bound<'py, PyAny>>,
        class_weights: Option<&Bound<'py, PyAny>>,
        return_grad: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.evaluate(
            py,
            source,
            seed,
            step,
            source_weights,
            class_weights,
            return_grad,
        )
    }
}

/// ½MMD² with a sliced-Wasserstein kernel and its WoW gradient (see the Python docstring).
#[pyfunction]
#[pyo3(signature = (source, target, kernel="riesz", h=None, r=1.0, n_projections=500, projections=None, seed=0, sampler="gaussian", source_weights=None, target_weights=None, class_weights=None, target_class_weights=None, return_grad=true, step=0))]
#[allow(clippy::too_many_arguments)]
pub fn sw_mmd<'py>(
    py: Python<'py>,
    source: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    kernel: &str,
    h: Option<f64>,
    r: f64,
    n_projections: usize,
    projections: Option<&Bound<'py, PyAny>>,
    seed: u64,
    sampler: &str,
    source_weights: Option<&Bound<'py, PyAny>>,
    target_weights: Option<&Bound<'py, PyAny>>,
    class_weights: Option<&Bound<'py, PyAny>>,
    target_class_weights: Option<&Bound<'py, PyAny>>,
    return_grad: bool,
    step: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let target_choice = target_weighting(class_weights, target_class_weights);
    let objective = SwMmdObjective::py_new(
        target,
        kernel,
        h,
        r,
        n_projections,
        projections,
        sampler,
        target_weights,
        target_choice.as_ref(),
        None,
    )?;
    objective.evaluate(
        py,
        source,
        seed,
        step,
        source_weights,
        class_weights,
        return_grad,
    )
}

/// The target's class weights: its own, else a string `class_weights` (which names a rule
/// for both sides; an array belongs to the source alone).
fn target_weighting<'py>(
    class_weights: Option<&Bound<'py, PyAny>>,
    target_class_weights: Option<&Bound<'py, PyAny>>,
) -> Option<Bound<'py, PyAny>> {
    match target_class_weights.filter(|o| !o.is_none()) {
        Some(t) => Some(t.clone()),
        None => class_weights
            .filter(|o| o.extract::<String>().is_ok())
            .cloned(),
    }
}

/// Reads both datasets and settles their class weights (each side's own, else `default`).
#[allow(clippy::too_many_arguments)]
pub fn pair(
    source: &Bound<'_, PyAny>,
    target: &Bound<'_, PyAny>,
    source_weights: Option<&Bound<'_, PyAny>>,
    target_weights: Option<&Bound<'_, PyAny>>,
    class_weights: Option<&Bound<'_, PyAny>>,
    target_class_weights: Option<&Bound<'_, PyAny>>,
    default: ClassWeighting,
) -> PyResult<(Dataset, Dataset)> {
    let mut src = Dataset::read(source, "source", source_weights)?;
    let mut tgt = Dataset::read(target, "target", target_weights)?;
    if src.cloud.dim() != tgt.cloud.dim() {
        return Err(value_error(format!(
            "target: has d = {} features but source has d = {}: both datasets must live in \
             the same space",
            tgt.cloud.dim(),
            src.cloud.dim()
        )));
    }
    let target_choice = target_weighting(class_weights, target_class_weights);
    src.weigh("source", class_weights, default)?;
    tgt.weigh("target", target_choice.as_ref(), default)?;
    Ok((src, tgt))
}

/// A dataset distance (see the Python docstring); returns a dict.
#[pyfunction]
#[pyo3(signature = (a, b, kind="wow", n_projections=500, seed=0, epsilon=None, a_weights=None, b_weights=None, class_weights=None, b_class_weights=None))]
#[allow(clippy::too_many_arguments)]
pub fn distance<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    kind: &str,
    n_projections: usize,
    seed: u64,
    epsilon: Option<f64>,
    a_weights: Option<&Bound<'py, PyAny>>,
    b_weights: Option<&Bound<'py, PyAny>>,
    class_weights: Option<&Bound<'py, PyAny>>,
    b_class_weights: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let kind: DistanceKind = by_name(kind, "kind")?;
    if let Some(e) = epsilon {
        if !(e.is_finite() && e > 0.0) {
            return Err(value_error(format!(
                "epsilon: must be finite and > 0, got {e}"
            )));
        }
    }
    if n_projections == 0 {
        return Err(value_error(
            "n_projections: need at least one direction, got 0",
        ));
    }
    let (da, db) = pair(
        a,
        b,
        a_weights,
        b_weights,
        class_weights,
        b_class_weights,
        kind.class_weighting(),
    )?;
    let options = DistanceOptions {
        projections: n_projections,
        seed,
        epsilon,
    };
    let (ca, cb) = (&da.cloud, &db.cloud);
    let report = py
        .detach(move || dataset_distance(kind, ca, cb, &options))
        .py()?;
    let out = PyDict::new(py);
    out.set_item("distance", report.distance())?;
    out.set_item("squared", report.squared)?;
    let (c, k) = (da.cloud.n_classes(), db.cloud.n_classes());
    out.set_item(
        "class_costs",
        match report.class_costs {
            Some(costs) => Some(array(py, &[c, k], costs)?),
            None => None,
        },
    )?;
    out.set_item(
        "plan",
        match report.plan {
            Some(plan) => {
                let (rows, cols) = plan.shape();
                Some(array(py, &[rows, cols], plan.to_dense())?)
            }
            None => None,
        },
    )?;
    out.set_item(
        "class_ids",
        (da.cloud.class_ids().to_vec(), db.cloud.class_ids().to_vec()),
    )?;
    out.set_item(
        "class_weights",
        (
            array(py, &[c], da.cloud.class_weights().to_vec())?,
            array(py, &[k], db.cloud.class_weights().to_vec())?,
        ),
    )?;
    Ok(out)
}

/// Labels for the classes of a flowed dataset (see the Python docstring).
#[pyfunction]
#[pyo3(signature = (flowed, target, method="ot", cost="sliced", n_projections=500, seed=0, class_weights=None))]
#[allow(clippy::too_many_arguments)]
pub fn assign_labels<'py>(
    py: Python<'py>,
    flowed: &Bound<'py, PyAny>,
    target: &Bound<'py, PyAny>,
    method: &str,
    cost: &str,
    n_projections: usize,
    seed: u64,
    class_weights: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let weighting = match class_weights.filter(|o| !o.is_none()) {
        Some(o) => class_weighting(&o.extract::<String>()?, "flowed")?,
        None => ClassWeighting::Uniform,
    };
    let (src, tgt) = pair(flowed, target, None, None, None, None, weighting)?;
    let class_cost = match cost {
        "sliced" => {
            if n_projections == 0 {
                return Err(value_error(
                    "n_projections: need at least one direction, got 0",
                ));
            }
            wowflow_ot::ClassCost::Sliced {
                projections: n_projections,
                seed,
            }
        }
        "exact" | "wasserstein" => wowflow_ot::ClassCost::Wasserstein,
        other => {
            return Err(value_error(format!(
                "cost: unknown value {other:?}; expected \"sliced\" or \"exact\""
            )))
        }
    };
    let nearest = match method {
        "ot" => false,
        "nn" | "nearest" => true,
        other => {
            return Err(value_error(format!(
                "method: unknown value {other:?}; expected \"ot\" or \"nn\""
            )))
        }
    };
    let (fc, tc) = (&src.cloud, &tgt.cloud);
    let assignment = py
        .detach(move || {
            if nearest {
                wowflow_ot::assign_by_nearest_neighbor(fc, tc)
            } else {
                wowflow_ot::assign_by_ot(fc, tc, class_cost)
            }
        })
        .py()?;
    let ids = assignment.target_ids(&tgt.cloud);
    let rows: Vec<i64> = (0..src.cloud.n_classes())
        .flat_map(|c| std::iter::repeat_n(ids[c], src.cloud.class_len(c)))
        .collect();
    let out = PyDict::new(py);
    out.set_item("labels", src.labels_to_input(py, &rows)?)?;
    out.set_item("class_labels", (src.cloud.class_ids().to_vec(), ids))?;
    out.set_item("is_permutation", assignment.is_permutation())?;
    out.set_item(
        "costs",
        array(
            py,
            &[assignment.sources, assignment.targets],
            assignment.costs.clone(),
        )?,
    )?;
    Ok(out)
}

//! numpy arrays in and out: features and labels read in one pass from any float dtype and
//! any memory order (no copy before the one into the engine's row-major `f32`), every bad
//! input named by argument, shape and dtype.

use crate::errors::{type_error, value_error};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use wowflow_core::{ClassWeighting, LabeledCloud};
use wowflow_data::shape_string;

/// A float array read as row-major `f32`, with its shape.
pub struct Floats {
    /// The values in C order.
    pub values: Vec<f32>,
    /// The array's shape.
    pub shape: Vec<usize>,
}

fn dtype_name(a: &Bound<'_, PyUntypedArray>) -> String {
    a.dtype().to_string()
}

/// The numpy array behind `obj`, or a `TypeError` naming `name` and what was given.
fn untyped<'a, 'py>(
    obj: &'a Bound<'py, PyAny>,
    name: &str,
    expected: &str,
) -> PyResult<&'a Bound<'py, PyUntypedArray>> {
    obj.cast::<PyUntypedArray>().map_err(|_| {
        let given = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "?".into());
        type_error(format!(
            "{name}: expected a numpy array {expected}, got {given}"
        ))
    })
}

/// Reads a float32/float64 array of `ndim` dimensions (any of `ndims`) into row-major
/// `f32`, refusing NaN and ±∞ with the index of the first one.
pub fn floats(
    obj: &Bound<'_, PyAny>,
    name: &str,
    ndims: &[usize],
    expected: &str,
) -> PyResult<Floats> {
    let arr = untyped(obj, name, expected)?;
    let shape = arr.shape().to_vec();
    if !ndims.contains(&arr.ndim()) {
        return Err(value_error(format!(
            "{name}: expected shape {expected}, got an array of shape {}",
            shape_string(&shape)
        )));
    }
    let values: Vec<f32> = if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, f32>>() {
        // A C-ordered float32 array is one memcpy; any other layout one strided pass.
        // (ndarray's `as_slice` is `Some` for C order only; numpy's would also take Fortran.)
        let view = a.as_array();
        match view.as_slice() {
            Some(s) => s.to_vec(),
            None => view.iter().copied().collect(),
        }
    } else if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, f64>>() {
        a.as_array().iter().map(|&v| v as f32).collect()
    } else {
        return Err(type_error(format!(
            "{name}: expected a float32 or float64 array {expected}, got dtype {} (convert \
             with {name}.astype(np.float32))",
            dtype_name(arr)
        )));
    };
    // Branch-free per block (it vectorises); the position is looked for only on failure.
    let all_finite = values
        .chunks(4096)
        .all(|c| c.iter().fold(true, |ok, v| ok & v.is_finite()));
    if let Some(i) = (!all_finite)
        .then(|| values.iter().position(|v| !v.is_finite()))
        .flatten()
    {
        let mut index = Vec::with_capacity(shape.len());
        let mut rest = i;
        for &s in shape.iter().rev() {
            index.push(rest % s.max(1));
            rest /= s.max(1);
        }
        index.reverse();
        return Err(value_error(format!(
            "{name}: non-finite value {} at index {} (shape {}); every feature must be finite",
            values[i],
            shape_string(&index).replace(",)", ")"),
            shape_string(&shape)
        )));
    }
    Ok(Floats { values, shape })
}

/// Optional float64 weights of length `n` (`None` stays `None`), each finite and > 0;
/// `each` says what one weight is for (in errors).
pub fn weights(
    obj: Option<&Bound<'_, PyAny>>,
    name: &str,
    n: usize,
    each: &str,
) -> PyResult<Option<Vec<f64>>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let expected = format!("({n},)");
    let w = floats(obj, name, &[1], &expected)?;
    if w.shape[0] != n {
        return Err(value_error(format!(
            "{name}: expected shape {expected} ({each}), got {}",
            shape_string(&w.shape)
        )));
    }
    let exact: Vec<f64> = match obj.extract::<PyReadonlyArrayDyn<'_, f64>>() {
        Ok(a) => a.as_array().iter().copied().collect(),
        Err(_) => w.values.iter().map(|&v| v as f64).collect(),
    };
    if let Some(i) = exact.iter().position(|&v| v <= 0.0) {
        return Err(value_error(format!(
            "{name}: weight {} at index {i} must be > 0",
            exact[i]
        )));
    }
    Ok(Some(exact))
}

/// Integer labels `(N,)`: any integer dtype, or floats that are all whole numbers.
pub fn labels(obj: &Bound<'_, PyAny>, name: &str, n: usize) -> PyResult<Vec<i64>> {
    let expected = format!("({n},) of integer class labels");
    let arr = untyped(obj, name, &expected)?;
    if arr.ndim() != 1 || arr.shape()[0] != n {
        return Err(value_error(format!(
            "{name}: expected shape ({n},), one label per row of x, got {}",
            shape_string(arr.shape())
        )));
    }
    macro_rules! ints {
        ($($t:ty),*) => {$(
            if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, $t>>() {
                return a.as_array().iter().map(|&v| i64::try_from(v).map_err(|_| value_error(
                    format!("{name}: label {v} does not fit in a 64-bit integer")))).collect();
            }
        )*};
    }
    ints!(i64, i32, i16, i8, u64, u32, u16, u8);
    let floats: Option<Vec<f64>> = if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, f64>>() {
        Some(a.as_array().iter().copied().collect())
    } else if let Ok(a) = obj.extract::<PyReadonlyArrayDyn<'_, f32>>() {
        Some(a.as_array().iter().map(|&v| v as f64).collect())
    } else {
        None
    };
    let Some(floats) = floats else {
        return Err(type_error(format!(
            "{name}: expected integer class labels, got dtype {}",
            dtype_name(arr)
        )));
    };
    floats
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Ok(v as i64)
            } else {
                Err(value_error(format!(
                    "{name}: label {v} at index {i} is not an integer"
                )))
            }
        })
        .collect()
}

/// A labeled dataset from Python, with how to give results back in its own layout.
pub struct Dataset {
    /// The classes, grouped by label (ascending ids).
    pub cloud: LabeledCloud,
    /// Row `r` of `cloud` is row `order[r]` of the input (`None`: the identity).
    pub order: Option<Vec<usize>>,
    /// The input's shape: `(C, n, d)` or `(N, d)`.
    pub shape: Vec<usize>,
}

impl Dataset {
    /// Reads `(C, n, d)` or `(x, y)`: `x (N, d)`, `y (N,)` integer labels, optional
    /// per-point weights `w (N,)` (normalised inside each class).
    pub fn read(
        obj: &Bound<'_, PyAny>,
        name: &str,
        w: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let expected = "(C, n, d), or a pair (x, y) with x (N, d) and integer labels y (N,)";
        if let Ok((x, y)) = obj.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>() {
            let xname = format!("{name}[0] (features x)");
            let f = floats(&x, &xname, &[2], "(N, d)")?;
            let (n, d) = (f.shape[0], f.shape[1]);
            check_nonempty(&xname, n, d)?;
            let y = labels(&y, &format!("{name}[1] (labels y)"), n)?;
            let (mut cloud, order) = LabeledCloud::from_labeled_rows(&f.values, d, &y)
                .map_err(|e| value_error(format!("{name}: {e}")))?;
            if let Some(w) = weights(w, &format!("{name} weights"), n, "one weight per point")? {
                let by_row: Vec<f64> = order.iter().map(|&i| w[i]).collect();
                cloud = cloud
                    .with_particle_weights(by_row)
                    .map_err(|e| value_error(format!("{name} weights: {e}")))?;
            }
            return Ok(Self {
                cloud,
                order: Some(order),
                shape: f.shape,
            });
        }
        if obj.cast::<PyUntypedArray>().is_err() {
            return Err(type_error(format!(
                "{name}: expected a numpy array {expected}, got {}",
                obj.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "?".into())
            )));
        }
        let f = floats(obj, name, &[3], expected)?;
        let (c, n, d) = (f.shape[0], f.shape[1], f.shape[2]);
        if c == 0 || n == 0 {
            return Err(value_error(format!(
                "{name}: got shape {}: every dataset needs at least one class and every class \
                 at least one point",
                shape_string(&f.shape)
            )));
        }
        check_nonempty(name, c * n, d)?;
        let mut cloud = LabeledCloud::uniform(c, n, d, f.values)
            .map_err(|e| value_error(format!("{name}: {e}")))?;
        if let Some(w) = weights(w, &format!("{name} weights"), c * n, "one weight per point")? {
            cloud = cloud
                .with_particle_weights(w)
                .map_err(|e| value_error(format!("{name} weights: {e}")))?;
        }
        Ok(Self {
            cloud,
            order: None,
            shape: f.shape,
        })
    }

    /// Sets the class weights `a_c`: `"uniform"`, `"proportional"`, an array `(C,)` in
    /// ascending label order, or `None` for `default`.
    pub fn weigh(
        &mut self,
        name: &str,
        class_weights: Option<&Bound<'_, PyAny>>,
        default: ClassWeighting,
    ) -> PyResult<()> {
        let c = self.cloud.n_classes();
        let cloud = self.cloud.clone();
        self.cloud = match class_weights.filter(|o| !o.is_none()) {
            None => cloud.with_class_weighting(default),
            Some(o) => {
                if let Ok(s) = o.extract::<String>() {
                    cloud.with_class_weighting(class_weighting(&s, name)?)
                } else {
                    let each = format!(
                        "one weight per class, in ascending label order: ids {:?}",
                        self.cloud.class_ids()
                    );
                    let w = weights(Some(o), &format!("{name} class_weights"), c, &each)?;
                    cloud
                        .with_class_weights(w.unwrap_or_default())
                        .map_err(|e| value_error(format!("{name} class_weights: {e}")))?
                }
            }
        };
        Ok(())
    }

    /// Rows of the cloud (`N × d`, class order) back in the input's layout.
    pub fn to_input<'py>(&self, py: Python<'py>, rows: &[f32]) -> PyResult<Bound<'py, PyAny>> {
        let values = match &self.order {
            Some(order) => wowflow_core::cloud::rows_to_input_order(rows, self.cloud.dim(), order),
            None => rows.to_vec(),
        };
        array(py, &self.shape, values)
    }

    /// [`Dataset::to_input`] taking the rows by value: no copy when the layout is the
    /// input's own (`(C, n, d)`).
    pub fn rows_to_input<'py>(
        &self,
        py: Python<'py>,
        rows: Vec<f32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match &self.order {
            Some(_) => self.to_input(py, &rows),
            None => array(py, &self.shape, rows),
        }
    }

    /// Per-row integers (class order) back in the input's row order, `(N,)`.
    pub fn labels_to_input<'py>(
        &self,
        py: Python<'py>,
        rows: &[i64],
    ) -> PyResult<Bound<'py, PyAny>> {
        let values = match &self.order {
            Some(order) => {
                let mut out = vec![0i64; rows.len()];
                for (&i, &v) in order.iter().zip(rows) {
                    out[i] = v;
                }
                out
            }
            None => rows.to_vec(),
        };
        array(py, &[values.len()], values)
    }
}

fn check_nonempty(name: &str, n: usize, d: usize) -> PyResult<()> {
    if n == 0 || d == 0 {
        return Err(value_error(format!(
            "{name}: got {n} points in d = {d} dimensions; need at least one point and d ≥ 1"
        )));
    }
    Ok(())
}

/// `"uniform"` or `"proportional"`.
pub fn class_weighting(s: &str, name: &str) -> PyResult<ClassWeighting> {
    match s {
        "uniform" => Ok(ClassWeighting::Uniform),
        "proportional" => Ok(ClassWeighting::Proportional),
        other => Err(value_error(format!(
            "{name} class_weights: expected \"uniform\", \"proportional\" or an array (C,), got \
             {other:?}"
        ))),
    }
}

/// A numpy array of `shape` owning `values`.
pub fn array<'py, T: numpy::Element>(
    py: Python<'py>,
    shape: &[usize],
    values: Vec<T>,
) -> PyResult<Bound<'py, PyAny>> {
    let a = ArrayD::from_shape_vec(IxDyn(shape), values)
        .map_err(|e| value_error(format!("internal shape error: {e}")))?;
    Ok(a.into_pyarray(py).into_any())
}

/// A numpy array holding a copy of `a` in its own dtype.
pub fn npy<'py>(py: Python<'py>, a: &wowflow_data::NpyArray) -> PyResult<Bound<'py, PyAny>> {
    use wowflow_data::ArrayData;
    match &a.data {
        ArrayData::F32(v) => array(py, &a.shape, v.clone()),
        ArrayData::F64(v) => array(py, &a.shape, v.clone()),
        ArrayData::I64(v) => array(py, &a.shape, v.clone()),
        ArrayData::I32(v) => array(py, &a.shape, v.clone()),
        ArrayData::U8(v) => array(py, &a.shape, v.clone()),
    }
}

//! The user's own data for `wowflow flow` and `wowflow distance`: one function that turns a
//! `.npy`, `.npz` or `.csv` file into a [`LabeledCloud`], and one that writes a cloud back in
//! the same layout, so the CLI and the library share a single implementation.
//!
//! Accepted layouts (chosen by extension):
//! - `.npy`: a float32/float64 array of shape `(C, n, d)`: `n` points of dimension `d` for
//!   each of `C` classes (class ids `0..C`). Two-dimensional arrays are rejected because
//!   they carry no labels.
//! - `.npz`: arrays `x` of shape `(N, d)` (or `(N, h, w, …)`, flattened to `d = h·w·…`),
//!   float32/float64, and `y` of shape `(N,)`, integer labels (floats holding integers are
//!   accepted). Classes may have different sizes. Two optional arrays set the measure
//!   `P = Σ_c a_c δ(μ_c)`, `μ_c = Σ_i w_ci δ(x_ci)`:
//!   - `weights` `(N,)`: a positive mass per row; inside each class they are normalised to
//!     `w_ci` (so only their ratios within a class matter);
//!   - `class_weights` `(C,)`: the class weights `a_c`, one per distinct label in ascending
//!     label order (`np.unique(y)`'s order), normalised to sum to 1.
//!
//!   Without `class_weights` the caller chooses `a_c` by a
//!   [`ClassWeighting`] ([`LoadedCloud::weighted`]).
//! - `.csv`: a label column, then `d` feature columns; an optional header line.
//!
//! Non-finite features are rejected with their position, because a single NaN poisons every
//! sliced-Wasserstein projection and the resulting error inside the flow would be far from
//! its cause.

use crate::csv::{read_labeled_csv, write_csv};
use crate::error::{name, DataError, Result};
use crate::npy::{read_npy, shape_string, write_npy, ArrayData, NpyArray};
use crate::npz::{read_npz, write_npz};
use std::path::Path;
use wowflow_core::{ClassWeighting, LabeledCloud};

/// A cloud read from a user file, with the permutation back to the file's row order.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedCloud {
    /// The classes, with the file's particle and class weights when it has them (uniform
    /// otherwise).
    pub cloud: LabeledCloud,
    /// Row `r` of `cloud` is row `order[r]` of the file (as
    /// [`LabeledCloud::from_labeled_rows`] returns it); the identity for `.npy`.
    pub order: Vec<usize>,
    /// The file's name when it stored class weights (`class_weights` of an `.npz`); these
    /// are already set on `cloud` and take the place of any [`ClassWeighting`].
    pub class_weights_from: Option<String>,
}

impl LoadedCloud {
    /// The cloud with its class weights `a_c` settled: the file's own when it has them,
    /// else `choice` (what the user asked for) or, when the user asked nothing, `default`
    /// (the convention of the method that will use the cloud).
    ///
    /// Class weights in the file *and* an explicit `choice` are an error naming the file:
    /// silently preferring either would compute a different measure than one of the two
    /// places says.
    pub fn weighted(
        &self,
        choice: Option<ClassWeighting>,
        default: ClassWeighting,
    ) -> Result<LabeledCloud> {
        match (&self.class_weights_from, choice) {
            (Some(file), Some(choice)) => Err(DataError::Invalid {
                what: format!("class weights of {file}"),
                problem: format!(
                    "the file stores `class_weights` and `{choice}` class weights were asked \
                     for as well; drop one of the two"
                ),
            }),
            (Some(_), None) => Ok(self.cloud.clone()),
            (None, choice) => Ok(self
                .cloud
                .clone()
                .with_class_weighting(choice.unwrap_or(default))),
        }
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Loads a labeled cloud from `.npy` `(C, n, d)`, `.npz` (`x`, `y`) or `.csv`
/// (`label, x1, …, xd`); see the module documentation for the exact layouts.
pub fn load_cloud(path: &Path) -> Result<LoadedCloud> {
    let file = name(path);
    match extension(path).as_str() {
        "npy" => load_npy_cloud(path, &file),
        "npz" => load_npz_cloud(path, &file),
        "csv" => {
            let rows = read_labeled_csv(path)?;
            rows_to_cloud(&rows.features, rows.dim, &rows.labels, &file)
        }
        other => Err(DataError::Unsupported {
            file,
            what: format!(
                "file type `.{other}`: wowflow reads .npy (C, n, d), .npz (arrays x and y) and .csv (label, features)"
            ),
        }),
    }
}

fn float_values(a: &NpyArray, file: &str, what: &str) -> Result<Vec<f32>> {
    if !a.data.is_float() {
        return Err(DataError::Unsupported {
            file: file.to_string(),
            what: format!(
                "{what} of type {}: expected float32 or float64 (convert with x.astype(np.float32))",
                a.data.dtype_name()
            ),
        });
    }
    Ok(a.to_f32())
}

fn check_finite(
    values: &[f32],
    original: &ArrayData,
    file: &str,
    locate: impl Fn(usize) -> String,
) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(DataError::NonFinite {
            file: file.to_string(),
            location: locate(i),
            value: match original {
                ArrayData::F64(v) => v[i],
                _ => values[i] as f64,
            },
        }),
    }
}

fn load_npy_cloud(path: &Path, file: &str) -> Result<LoadedCloud> {
    let a = read_npy(path)?;
    let &[c, n, d] = a.shape.as_slice() else {
        return Err(DataError::shape(
            file,
            format!(
                "array has shape {}, expected 3 dimensions (C, n, d): n points of dimension d per class; \
                 for labeled rows use an .npz with arrays x and y, or a CSV",
                a.shape_string()
            ),
        ));
    };
    if c == 0 || n == 0 || d == 0 {
        return Err(DataError::shape(
            file,
            format!(
                "array has shape {}, expected (C, n, d) with every size at least 1",
                a.shape_string()
            ),
        ));
    }
    let points = float_values(&a, file, "array")?;
    check_finite(&points, &a.data, file, |i| {
        format!(
            "class {}, point {}, feature {}",
            i / (n * d),
            (i / d) % n,
            i % d
        )
    })?;
    let cloud = LabeledCloud::uniform(c, n, d, points).map_err(|source| DataError::Cloud {
        file: file.to_string(),
        source,
    })?;
    Ok(LoadedCloud {
        cloud,
        order: (0..c * n).collect(),
        class_weights_from: None,
    })
}

fn load_npz_cloud(path: &Path, file: &str) -> Result<LoadedCloud> {
    let arrays = read_npz(path)?;
    let names = || {
        arrays
            .keys()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let get = |key: &str| {
        arrays.get(key).ok_or_else(|| {
            DataError::shape(
                file,
                format!("no array `{key}` (found: {}); expected `x` (N, d) features and `y` (N,) labels", names()),
            )
        })
    };
    let (x, y) = (get("x")?, get("y")?);
    if x.shape.len() < 2 || x.shape.contains(&0) {
        return Err(DataError::shape(
            file,
            format!(
                "array `x` has shape {}, expected (N, d) with N, d ≥ 1",
                x.shape_string()
            ),
        ));
    }
    let n = x.shape[0];
    let d: usize = x.shape[1..].iter().product();
    let y_ok = y.shape == [n] || y.shape == [n, 1];
    if !y_ok {
        return Err(DataError::shape(
            file,
            format!(
                "array `y` has shape {}, expected {} to match `x` {}",
                y.shape_string(),
                shape_string(&[n]),
                x.shape_string()
            ),
        ));
    }
    let labels = y.to_i64().map_err(|e| {
        DataError::format(file, format!("array `y`: {e} (labels must be integers)"))
    })?;
    let points = float_values(x, file, "array `x`")?;
    check_finite(&points, &x.data, file, |i| {
        format!("array `x` row {}, column {}", i / d, i % d)
    })?;
    let mut loaded = rows_to_cloud(&points, d, &labels, file)?;
    let cloud_err = |source| DataError::Cloud {
        file: file.to_string(),
        source,
    };
    if let Some(w) = arrays.get("weights") {
        let masses = weight_values(w, "weights", n, "one positive mass per row of `x`", file)?;
        let in_cloud_order = loaded.order.iter().map(|&i| masses[i]).collect();
        loaded.cloud = loaded
            .cloud
            .with_particle_weights(in_cloud_order)
            .map_err(cloud_err)?;
    }
    if let Some(a) = arrays.get("class_weights") {
        let classes = loaded.cloud.n_classes();
        let ids = loaded.cloud.class_ids();
        let shown: Vec<String> = ids.iter().take(6).map(|l| l.to_string()).collect();
        let labels = if classes > 6 {
            format!("{}, …", shown.join(", "))
        } else {
            shown.join(", ")
        };
        let expected = format!("one weight per class in ascending label order (labels {labels})");
        let a = weight_values(a, "class_weights", classes, &expected, file)?;
        loaded.cloud = loaded.cloud.with_class_weights(a).map_err(cloud_err)?;
        loaded.class_weights_from = Some(file.to_string());
    }
    Ok(loaded)
}

/// The values of an optional weight array: shape `(len,)`, float, finite and positive.
fn weight_values(
    a: &NpyArray,
    key: &str,
    len: usize,
    expected: &str,
    file: &str,
) -> Result<Vec<f64>> {
    if a.shape != [len] {
        return Err(DataError::shape(
            file,
            format!(
                "array `{key}` has shape {}, expected {}: {expected}",
                a.shape_string(),
                shape_string(&[len])
            ),
        ));
    }
    let values: Vec<f64> = match &a.data {
        ArrayData::F64(v) => v.clone(),
        ArrayData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        _ => {
            return Err(DataError::Unsupported {
                file: file.to_string(),
                what: format!(
                    "array `{key}` of type {}: expected float32 or float64",
                    a.data.dtype_name()
                ),
            })
        }
    };
    if let Some(i) = values.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(DataError::Invalid {
            what: format!("{file}: array `{key}` element {i}"),
            problem: format!("is {}, expected a finite number > 0", values[i]),
        });
    }
    Ok(values)
}

fn rows_to_cloud(points: &[f32], dim: usize, labels: &[i64], file: &str) -> Result<LoadedCloud> {
    let (cloud, order) =
        LabeledCloud::from_labeled_rows(points, dim, labels).map_err(|source| {
            DataError::Cloud {
                file: file.to_string(),
                source,
            }
        })?;
    Ok(LoadedCloud {
        cloud,
        order,
        class_weights_from: None,
    })
}

/// Writes a cloud in the layout its extension implies, the inverse of [`load_cloud`].
///
/// With `order` (from [`LoadedCloud`]), `.npz` and `.csv` rows are written in the original
/// file's row order, so results line up with the user's input row by row. `.npy` needs
/// equal class sizes (`(C, n, d)`) and is written in class order.
pub fn save_cloud(path: &Path, cloud: &LabeledCloud, order: Option<&[usize]>) -> Result<()> {
    let file = name(path);
    let d = cloud.dim();
    let n = cloud.n_points();
    if let Some(o) = order {
        if o.len() != n {
            return Err(DataError::Invalid {
                what: "row order".to_string(),
                problem: format!("has {} entries, the cloud has {n} rows", o.len()),
            });
        }
    }
    let (points, labels) = match order {
        Some(o) => {
            let row_labels = cloud.row_labels();
            let mut labels = vec![0i64; n];
            for (r, &i) in o.iter().enumerate() {
                if i >= n {
                    return Err(DataError::Invalid {
                        what: "row order".to_string(),
                        problem: format!("entry {r} = {i} is not below {n}"),
                    });
                }
                labels[i] = row_labels[r];
            }
            (cloud.to_input_order(o), labels)
        }
        None => (cloud.points().to_vec(), cloud.row_labels()),
    };
    match extension(path).as_str() {
        "npy" => {
            let per = cloud.class_len(0);
            if (0..cloud.n_classes()).any(|c| cloud.class_len(c) != per) {
                return Err(DataError::shape(
                    file,
                    "classes have different sizes, which a (C, n, d) .npy cannot hold; write .npz or .csv",
                ));
            }
            write_npy(
                path,
                &NpyArray::f32(vec![cloud.n_classes(), per, d], cloud.points().to_vec()),
            )
        }
        "npz" => write_npz(
            path,
            &[
                ("x", &NpyArray::f32(vec![n, d], points)),
                ("y", &NpyArray::i64(vec![n], labels)),
            ],
        ),
        "csv" => {
            let mut header = vec!["label".to_string()];
            header.extend((1..=d).map(|j| format!("x{j}")));
            let header: Vec<&str> = header.iter().map(|s| s.as_str()).collect();
            let rows = labels.iter().enumerate().map(|(i, &l)| {
                std::iter::once(l.to_string())
                    .chain(points[i * d..(i + 1) * d].iter().map(|v| v.to_string()))
            });
            write_csv(path, &header, rows)
        }
        other => Err(DataError::Unsupported {
            file,
            what: format!("file type `.{other}` (write .npy, .npz or .csv)"),
        }),
    }
}

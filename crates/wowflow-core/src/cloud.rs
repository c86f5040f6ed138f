//! The data model: a labeled dataset as a measure over class measures (docs/math.md §1).
//!
//! `P = Σ_c a_c δ(μ_c)`, `μ_c = Σ_i w_ci δ(x_ci)`. Particles are stored row-major `N × d`
//! in `f32`, grouped by class: class `c` owns rows `offsets[c]..offsets[c + 1]`. Grouping
//! rows by class (CSR style) lets classes differ in size while every per-class operation
//! works on one contiguous slice.

use crate::error::{invalid, shape, CoreError, Result};
use serde::{Deserialize, Serialize};

/// How the class weights `a_c` of `P = Σ_c a_c δ(μ_c)` are chosen from the classes.
///
/// The two conventions of the literature differ only when classes differ in size:
/// Bonet, Vauthier & Korba (WoW, sliced WoW, SW-MMD) weigh every class the same;
/// Alvarez-Melis & Fusi (OTDD) work on the dataset's empirical measure, where every labeled
/// point has mass `1/N`, i.e. `a_c = n_c / N`. With equal class sizes both give the same
/// weights, bit for bit (`n / (C n)` and `1 / C` round to the same `f64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeighting {
    /// `a_c = 1 / C`: every class counts the same, whatever its size.
    #[default]
    Uniform,
    /// `a_c = n_c / N`: proportional to the class sizes (with uniform particle weights,
    /// every labeled point then has mass `1 / N`, the empirical measure).
    Proportional,
}

impl ClassWeighting {
    /// The name used on the command line and in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            ClassWeighting::Uniform => "uniform",
            ClassWeighting::Proportional => "proportional",
        }
    }

    /// The weights `a_c` for classes of the given sizes (each `n_c ≥ 1`).
    ///
    /// Computed directly as `1 / C` or `n_c / N` (no renormalisation), so that equal sizes
    /// give identical bits under both conventions.
    pub fn weights(self, class_sizes: &[usize]) -> Vec<f64> {
        let classes = class_sizes.len().max(1) as f64;
        let total = class_sizes.iter().sum::<usize>().max(1) as f64;
        class_sizes
            .iter()
            .map(|&n| match self {
                ClassWeighting::Uniform => 1.0 / classes,
                ClassWeighting::Proportional => n as f64 / total,
            })
            .collect()
    }
}

impl std::fmt::Display for ClassWeighting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ClassWeighting {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "uniform" => Ok(ClassWeighting::Uniform),
            "proportional" => Ok(ClassWeighting::Proportional),
            other => Err(invalid(
                "class weighting",
                format!("`{other}`: expected `uniform` or `proportional`"),
            )),
        }
    }
}

/// The class structure of a labeled dataset without its points: which rows form each
/// class (CSR offsets), the class ids, the class weights `a_c` and the optional particle
/// weights `w_ci`.
///
/// Why a type of its own: code that keeps the points elsewhere (the GPU-resident flow keeps
/// them on the device) still needs the classes and weights; it holds a `ClassLayout`
/// instead of a cloud with made-up points.
///
/// Invariants (checked by [`ClassLayout::validate`]): at least one class; offsets start at 0
/// and every class is non-empty; class weights finite, positive and summing to 1; particle
/// weights (when given) finite, positive and summing to 1 inside each class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassLayout {
    offsets: Vec<usize>,
    class_weights: Vec<f64>,
    particle_weights: Option<Vec<f64>>,
    class_ids: Vec<i64>,
}

impl ClassLayout {
    /// Classes given by row offsets (`offsets[0] = 0`, `offsets[C] = N`, non-decreasing) and
    /// ids; uniform class and particle weights.
    pub fn new(offsets: Vec<usize>, class_ids: Vec<i64>) -> Result<Self> {
        let classes = offsets.len().saturating_sub(1);
        let layout = Self {
            class_weights: vec![1.0 / classes.max(1) as f64; classes],
            offsets,
            particle_weights: None,
            class_ids,
        };
        layout.validate()?;
        Ok(layout)
    }

    /// Re-checks every invariant.
    pub fn validate(&self) -> Result<()> {
        let classes = self.offsets.len().saturating_sub(1);
        if classes == 0 {
            return Err(invalid(
                "offsets",
                "need at least one class (offsets of length ≥ 2)",
            ));
        }
        if self.offsets[0] != 0 {
            return Err(shape("offsets[0]", 0, self.offsets[0]));
        }
        if self.class_ids.len() != classes {
            return Err(shape("class ids", classes, self.class_ids.len()));
        }
        for c in 0..classes {
            if self.offsets[c + 1] < self.offsets[c] {
                return Err(invalid(
                    "offsets",
                    format!("offsets must not decrease (class {c})"),
                ));
            }
            if self.offsets[c + 1] == self.offsets[c] {
                return Err(CoreError::EmptyClass {
                    class: c,
                    id: self.class_ids[c],
                });
            }
        }
        check_weights("class weights", &self.class_weights)?;
        if let Some(w) = &self.particle_weights {
            let n = self.n_points();
            if w.len() != n {
                return Err(shape("particle weights", n, w.len()));
            }
            check_weights("particle weights", w)?;
        }
        Ok(())
    }

    /// Sets class weights `a_c` (positive, finite; normalised here to sum to 1).
    pub fn with_class_weights(mut self, weights: Vec<f64>) -> Result<Self> {
        if weights.len() != self.n_classes() {
            return Err(shape("class weights", self.n_classes(), weights.len()));
        }
        check_weights("class weights", &weights)?;
        let total: f64 = weights.iter().sum();
        self.class_weights = weights.into_iter().map(|w| w / total).collect();
        Ok(self)
    }

    /// Sets the class weights `a_c` by a convention (see [`ClassWeighting`]); particle
    /// weights are kept.
    pub fn with_class_weighting(mut self, weighting: ClassWeighting) -> Self {
        let sizes: Vec<usize> = (0..self.n_classes()).map(|c| self.class_len(c)).collect();
        self.class_weights = weighting.weights(&sizes);
        self
    }

    /// Sets particle weights `w_ci` (positive, finite; normalised here to sum to 1 inside
    /// each class).
    pub fn with_particle_weights(mut self, mut weights: Vec<f64>) -> Result<Self> {
        if weights.len() != self.n_points() {
            return Err(shape("particle weights", self.n_points(), weights.len()));
        }
        check_weights("particle weights", &weights)?;
        for c in 0..self.n_classes() {
            let range = self.class_range(c);
            let total: f64 = weights[range.clone()].iter().sum();
            weights[range].iter_mut().for_each(|w| *w /= total);
        }
        self.particle_weights = Some(weights);
        Ok(self)
    }

    /// The layout of only the given rows of each class (`rows[c]` are indices local to
    /// class `c`, each class keeping at least one); weights are restricted and renormalised.
    pub fn select(&self, rows: &[Vec<usize>]) -> Result<Self> {
        if rows.len() != self.n_classes() {
            return Err(shape("row selection", self.n_classes(), rows.len()));
        }
        let mut offsets = vec![0];
        let mut weights = self.particle_weights.as_ref().map(|_| Vec::new());
        for (c, sel) in rows.iter().enumerate() {
            let start = self.offsets[c];
            for &i in sel {
                if i >= self.class_len(c) {
                    return Err(shape(
                        format!("row selection of class {c}"),
                        format!("index < {}", self.class_len(c)),
                        i,
                    ));
                }
                if let (Some(out), Some(w)) = (weights.as_mut(), self.particle_weights.as_ref()) {
                    out.push(w[start + i]);
                }
            }
            offsets.push(offsets[c] + sel.len());
        }
        let layout = Self::new(offsets, self.class_ids.clone())?
            .with_class_weights(self.class_weights.clone())?;
        match weights {
            Some(w) => layout.with_particle_weights(w),
            None => Ok(layout),
        }
    }

    /// Number of classes `C`.
    pub fn n_classes(&self) -> usize {
        self.offsets.len() - 1
    }
    /// Total number of particles `N`.
    pub fn n_points(&self) -> usize {
        self.offsets[self.n_classes()]
    }
    /// Class row offsets (length `C + 1`).
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }
    /// Rows of class `c`.
    pub fn class_range(&self, c: usize) -> std::ops::Range<usize> {
        self.offsets[c]..self.offsets[c + 1]
    }
    /// Number of particles `n_c` in class `c`.
    pub fn class_len(&self, c: usize) -> usize {
        self.offsets[c + 1] - self.offsets[c]
    }
    /// Class weights `a_c` (sum to 1).
    pub fn class_weights(&self) -> &[f64] {
        &self.class_weights
    }
    /// Explicit particle weights, if any (`None` means uniform `1/n_c` in each class).
    pub fn particle_weights(&self) -> Option<&[f64]> {
        self.particle_weights.as_deref()
    }
    /// The mass of every row in the joint measure, `a_c w_ci` (row order; sums to 1).
    pub fn masses(&self) -> Vec<f64> {
        (0..self.n_classes())
            .flat_map(|c| self.class_range(c).map(move |i| (c, i)))
            .map(|(c, i)| self.class_weights[c] * self.particle_weight(c, i))
            .collect()
    }
    /// The weights `w_c·` of class `c`'s particles inside the class (summing to 1), in row
    /// order.
    pub fn class_particle_weights(&self, c: usize) -> Vec<f64> {
        self.class_range(c)
            .map(|i| self.particle_weight(c, i))
            .collect()
    }
    /// The class index (`0..C`, not the class id) of every row.
    pub fn row_classes(&self) -> Vec<usize> {
        (0..self.n_classes())
            .flat_map(|c| std::iter::repeat_n(c, self.class_len(c)))
            .collect()
    }
    /// Weight `w_ci` of particle row `i` inside its class `c`.
    pub fn particle_weight(&self, c: usize, i: usize) -> f64 {
        match &self.particle_weights {
            Some(w) => w[i],
            None => 1.0 / self.class_len(c) as f64,
        }
    }
    /// Class ids (labels), one per class.
    pub fn class_ids(&self) -> &[i64] {
        &self.class_ids
    }
    /// One label per row, in the (class-grouped) row order.
    pub fn row_labels(&self) -> Vec<i64> {
        (0..self.n_classes())
            .flat_map(|c| std::iter::repeat_n(self.class_ids[c], self.class_len(c)))
            .collect()
    }
    /// True when every class has the same size and all weights are uniform: the `(C, n, d)`
    /// case with the fast paths.
    pub fn is_uniform(&self) -> bool {
        let n0 = self.class_len(0);
        let a = 1.0 / self.n_classes() as f64;
        self.particle_weights.is_none()
            && (0..self.n_classes()).all(|c| self.class_len(c) == n0)
            && self
                .class_weights
                .iter()
                .all(|&w| (w - a).abs() <= 1e-12 * a)
    }
}

/// A labeled point cloud: `C` classes, `N = Σ_c n_c` particles in `R^d`: the points, row-major
/// `N × d` in `f32` and grouped by class, and their [`ClassLayout`].
///
/// Invariants (checked by every constructor and by [`LabeledCloud::validate`]):
/// `d ≥ 1`; points finite and as many as the layout has rows; the layout's own (every class
/// non-empty, weights finite, positive and normalised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabeledCloud {
    points: Vec<f32>,
    dim: usize,
    #[serde(flatten)]
    layout: ClassLayout,
}

impl LabeledCloud {
    /// The common case: `classes × per_class` particles of dimension `dim`, laid out as a
    /// `(C, n, d)` array, uniform weights, class ids `0..C`.
    pub fn uniform(classes: usize, per_class: usize, dim: usize, points: Vec<f32>) -> Result<Self> {
        if classes == 0 {
            return Err(invalid(
                "classes",
                "a labeled cloud needs at least one class",
            ));
        }
        if per_class == 0 {
            return Err(CoreError::EmptyClass { class: 0, id: 0 });
        }
        let offsets = (0..=classes).map(|c| c * per_class).collect();
        Self::from_parts(points, dim, offsets, (0..classes as i64).collect())
    }

    /// Classes given by row offsets (`offsets[0] = 0`, `offsets[C] = N`, non-decreasing) and
    /// ids; uniform class and particle weights.
    pub fn from_parts(
        points: Vec<f32>,
        dim: usize,
        offsets: Vec<usize>,
        class_ids: Vec<i64>,
    ) -> Result<Self> {
        if dim == 0 {
            return Err(CoreError::ZeroDimension);
        }
        Self::from_layout(points, dim, ClassLayout::new(offsets, class_ids)?)
    }

    /// Points with a given layout (`N × dim` values for the layout's `N` rows).
    pub fn from_layout(points: Vec<f32>, dim: usize, layout: ClassLayout) -> Result<Self> {
        let cloud = Self {
            points,
            dim,
            layout,
        };
        cloud.validate()?;
        Ok(cloud)
    }

    /// Groups rows by integer label (ascending label order, stable inside a class).
    ///
    /// Returns the cloud and `order`, where row `r` of the cloud is row `order[r]` of the
    /// input, so results can be written back in the caller's original order
    /// (see [`LabeledCloud::to_input_order`]).
    pub fn from_labeled_rows(
        points: &[f32],
        dim: usize,
        labels: &[i64],
    ) -> Result<(Self, Vec<usize>)> {
        if dim == 0 {
            return Err(CoreError::ZeroDimension);
        }
        if points.len() != labels.len() * dim {
            return Err(shape(
                "points",
                format!(
                    "{} values ({} labels × d = {dim})",
                    labels.len() * dim,
                    labels.len()
                ),
                format!("{} values", points.len()),
            ));
        }
        if labels.is_empty() {
            return Err(invalid("labels", "at least one labeled row is required"));
        }
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.sort_by_key(|&i| labels[i]); // stable
        let mut sorted = Vec::with_capacity(points.len());
        let mut offsets = vec![0];
        let mut class_ids = Vec::new();
        for (r, &i) in order.iter().enumerate() {
            if r == 0 || labels[i] != labels[order[r - 1]] {
                if r > 0 {
                    offsets.push(r);
                }
                class_ids.push(labels[i]);
            }
            sorted.extend_from_slice(&points[i * dim..(i + 1) * dim]);
        }
        offsets.push(labels.len());
        Ok((Self::from_parts(sorted, dim, offsets, class_ids)?, order))
    }

    /// Sets class weights `a_c` (positive, finite; normalised here to sum to 1).
    pub fn with_class_weights(mut self, weights: Vec<f64>) -> Result<Self> {
        self.layout = self.layout.with_class_weights(weights)?;
        Ok(self)
    }

    /// Sets the class weights `a_c` by a convention (see [`ClassWeighting`]); particle
    /// weights are kept.
    pub fn with_class_weighting(mut self, weighting: ClassWeighting) -> Self {
        self.layout = self.layout.with_class_weighting(weighting);
        self
    }

    /// Sets particle weights `w_ci` (positive, finite; normalised here to sum to 1 inside
    /// each class).
    pub fn with_particle_weights(mut self, weights: Vec<f64>) -> Result<Self> {
        self.layout = self.layout.with_particle_weights(weights)?;
        Ok(self)
    }

    /// Re-checks every invariant; constructors call it, and so should code that edits
    /// points in place from untrusted sources.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 {
            return Err(CoreError::ZeroDimension);
        }
        self.layout.validate()?;
        let n = self.layout.n_points();
        if self.points.len() != n * self.dim {
            return Err(shape(
                "points",
                format!("{} values (N = {n} × d = {})", n * self.dim, self.dim),
                format!("{} values", self.points.len()),
            ));
        }
        if let Some(i) = self.points.iter().position(|v| !v.is_finite()) {
            return Err(CoreError::NonFinite {
                what: format!(
                    "points (particle {}, feature {})",
                    i / self.dim,
                    i % self.dim
                ),
                index: i,
                value: self.points[i] as f64,
            });
        }
        Ok(())
    }

    /// The classes and weights without the points.
    pub fn layout(&self) -> &ClassLayout {
        &self.layout
    }
    /// Number of classes `C`.
    pub fn n_classes(&self) -> usize {
        self.layout.n_classes()
    }
    /// Total number of particles `N`.
    pub fn n_points(&self) -> usize {
        self.layout.n_points()
    }
    /// Feature dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// All particles, row-major `N × d`, grouped by class.
    pub fn points(&self) -> &[f32] {
        &self.points
    }
    /// Mutable particles. Callers that write untrusted values should call
    /// [`LabeledCloud::validate`] afterwards.
    pub fn points_mut(&mut self) -> &mut [f32] {
        &mut self.points
    }
    /// Class row offsets (length `C + 1`).
    pub fn offsets(&self) -> &[usize] {
        self.layout.offsets()
    }
    /// Rows of class `c`.
    pub fn class_range(&self, c: usize) -> std::ops::Range<usize> {
        self.layout.class_range(c)
    }
    /// Number of particles `n_c` in class `c`.
    pub fn class_len(&self, c: usize) -> usize {
        self.layout.class_len(c)
    }
    /// Particles of class `c`, row-major `n_c × d`.
    pub fn class_points(&self, c: usize) -> &[f32] {
        let r = self.class_range(c);
        &self.points[r.start * self.dim..r.end * self.dim]
    }
    /// Class weights `a_c` (sum to 1).
    pub fn class_weights(&self) -> &[f64] {
        self.layout.class_weights()
    }
    /// Explicit particle weights, if any (`None` means uniform `1/n_c` in each class).
    pub fn particle_weights(&self) -> Option<&[f64]> {
        self.layout.particle_weights()
    }
    /// The mass of every row in the joint measure, `a_c w_ci` (row order; sums to 1).
    pub fn masses(&self) -> Vec<f64> {
        self.layout.masses()
    }
    /// The weights `w_c·` of class `c`'s particles inside the class (summing to 1), in row
    /// order.
    pub fn class_particle_weights(&self, c: usize) -> Vec<f64> {
        self.layout.class_particle_weights(c)
    }
    /// The class index (`0..C`, not the class id) of every row.
    pub fn row_classes(&self) -> Vec<usize> {
        self.layout.row_classes()
    }
    /// Weight `w_ci` of particle row `i` inside its class `c`.
    pub fn particle_weight(&self, c: usize, i: usize) -> f64 {
        self.layout.particle_weight(c, i)
    }
    /// Class ids (labels), one per class.
    pub fn class_ids(&self) -> &[i64] {
        self.layout.class_ids()
    }
    /// One label per row, in the cloud's (class-grouped) row order.
    pub fn row_labels(&self) -> Vec<i64> {
        self.layout.row_labels()
    }
    /// True when every class has the same size and all weights are uniform: the `(C, n, d)`
    /// case with the fast paths.
    pub fn is_uniform(&self) -> bool {
        self.layout.is_uniform()
    }

    /// The same classes, ids and weights with new rows of length `dim` — e.g. every row
    /// sent through a feature map. Validated like any constructor, so a map that produced a
    /// non-finite value or the wrong number of values gets a named error here.
    pub fn with_points(&self, points: Vec<f32>, dim: usize) -> Result<Self> {
        Self::from_layout(points, dim, self.layout.clone())
    }

    /// Rows put back in the order of the input given to [`LabeledCloud::from_labeled_rows`]
    /// (`order` is the permutation it returned).
    pub fn to_input_order(&self, order: &[usize]) -> Vec<f32> {
        rows_to_input_order(&self.points, self.dim, order)
    }

    /// A copy holding only the given rows of each class (`rows[c]` are indices local to
    /// class `c`); weights are restricted and renormalised. Used for target mini-batches.
    pub fn select(&self, rows: &[Vec<usize>]) -> Result<Self> {
        let layout = self.layout.select(rows)?;
        let d = self.dim;
        let mut points = Vec::with_capacity(layout.n_points() * d);
        for (c, sel) in rows.iter().enumerate() {
            let start = self.layout.offsets()[c];
            for &i in sel {
                points.extend_from_slice(&self.points[(start + i) * d..(start + i + 1) * d]);
            }
        }
        Self::from_layout(points, d, layout)
    }
}

/// Rows of a class-grouped `N × d` buffer (e.g. a snapshot of a flowing cloud) put back in
/// the input order described by `order` (see [`LabeledCloud::from_labeled_rows`]).
pub fn rows_to_input_order(points: &[f32], dim: usize, order: &[usize]) -> Vec<f32> {
    let mut out = vec![0.0f32; points.len()];
    for (r, &i) in order.iter().enumerate() {
        out[i * dim..(i + 1) * dim].copy_from_slice(&points[r * dim..(r + 1) * dim]);
    }
    out
}

fn check_weights(what: &str, weights: &[f64]) -> Result<()> {
    match weights.iter().position(|&w| !(w.is_finite() && w > 0.0)) {
        Some(index) => Err(CoreError::BadWeight {
            what: what.to_string(),
            index,
            value: weights[index],
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_layout_and_accessors() {
        let cloud = LabeledCloud::uniform(2, 3, 2, (0..12).map(|v| v as f32).collect()).unwrap();
        assert_eq!(cloud.n_classes(), 2);
        assert_eq!(cloud.n_points(), 6);
        assert_eq!(cloud.class_points(1), &[6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
        assert!(cloud.is_uniform());
        assert_eq!(cloud.row_labels(), vec![0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn labeled_rows_round_trip_to_input_order() {
        let labels = [3, 1, 3, 2, 1];
        let points: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let (cloud, order) = LabeledCloud::from_labeled_rows(&points, 2, &labels).unwrap();
        assert_eq!(cloud.class_ids(), &[1, 2, 3]);
        assert_eq!(cloud.offsets(), &[0, 2, 3, 5]);
        assert!(!cloud.is_uniform());
        assert_eq!(cloud.to_input_order(&order), points);
    }

    #[test]
    fn named_errors() {
        assert_eq!(
            LabeledCloud::uniform(2, 2, 0, vec![]).unwrap_err(),
            CoreError::ZeroDimension
        );
        assert!(matches!(
            LabeledCloud::uniform(2, 2, 2, vec![0.0; 7]).unwrap_err(),
            CoreError::Shape { .. }
        ));
        let mut pts = vec![0.0; 8];
        pts[5] = f32::NAN;
        assert!(matches!(
            LabeledCloud::uniform(2, 2, 2, pts).unwrap_err(),
            CoreError::NonFinite { index: 5, .. }
        ));
        assert!(matches!(
            LabeledCloud::from_parts(vec![0.0; 4], 2, vec![0, 2, 2], vec![0, 1]).unwrap_err(),
            CoreError::EmptyClass { class: 1, id: 1 }
        ));
        let cloud = LabeledCloud::uniform(2, 2, 2, vec![0.0; 8]).unwrap();
        assert!(matches!(
            cloud
                .clone()
                .with_class_weights(vec![1.0, 0.0])
                .unwrap_err(),
            CoreError::BadWeight { index: 1, .. }
        ));
        assert!(matches!(
            cloud
                .with_particle_weights(vec![1.0, -1.0, 1.0, 1.0])
                .unwrap_err(),
            CoreError::BadWeight { index: 1, .. }
        ));
    }

    #[test]
    fn with_points_keeps_classes_and_weights() {
        let cloud = LabeledCloud::from_parts(vec![0.0; 6], 2, vec![0, 1, 3], vec![4, 7])
            .unwrap()
            .with_class_weights(vec![1.0, 3.0])
            .unwrap()
            .with_particle_weights(vec![1.0, 1.0, 3.0])
            .unwrap();
        let mapped = cloud.with_points(vec![1.0, 2.0, 3.0], 1).unwrap();
        assert_eq!(mapped.dim(), 1);
        assert_eq!(mapped.offsets(), cloud.offsets());
        assert_eq!(mapped.class_ids(), cloud.class_ids());
        assert_eq!(mapped.class_weights(), cloud.class_weights());
        assert_eq!(mapped.particle_weights(), cloud.particle_weights());
        assert!(matches!(
            cloud.with_points(vec![0.0; 4], 1).unwrap_err(),
            CoreError::Shape { .. }
        ));
        assert!(matches!(
            cloud.with_points(vec![0.0, f32::NAN, 0.0], 1).unwrap_err(),
            CoreError::NonFinite { index: 1, .. }
        ));
    }

    #[test]
    fn weights_are_normalised() {
        let cloud = LabeledCloud::uniform(2, 2, 1, vec![0.0; 4])
            .unwrap()
            .with_class_weights(vec![1.0, 3.0])
            .unwrap()
            .with_particle_weights(vec![1.0, 1.0, 1.0, 3.0])
            .unwrap();
        assert_eq!(cloud.class_weights(), &[0.25, 0.75]);
        assert_eq!(cloud.particle_weight(1, 3), 0.75);
    }

    #[test]
    fn a_layout_is_the_clouds_structure_and_selects_alike() {
        let cloud = LabeledCloud::from_parts(
            (0..12).map(|v| v as f32).collect(),
            2,
            vec![0, 1, 4, 6],
            vec![7, 3, 9],
        )
        .unwrap()
        .with_class_weights(vec![1.0, 2.0, 5.0])
        .unwrap()
        .with_particle_weights(vec![1.0, 1.0, 2.0, 3.0, 4.0, 4.0])
        .unwrap();
        let layout = cloud.layout();
        assert_eq!(layout.n_points(), 6);
        assert_eq!(layout.masses(), cloud.masses());
        assert_eq!(layout.row_labels(), vec![7, 3, 3, 3, 9, 9]);
        // Selecting rows of the cloud selects the same rows of its layout.
        let rows = vec![vec![0], vec![2, 0], vec![1]];
        let picked = cloud.select(&rows).unwrap();
        assert_eq!(picked.layout(), &layout.select(&rows).unwrap());
        assert_eq!(picked.points(), &[0.0, 1.0, 6.0, 7.0, 2.0, 3.0, 10.0, 11.0]);
        assert_eq!(picked.particle_weights().unwrap(), &[1.0, 0.75, 0.25, 1.0]);
        // The layout checks itself, and a cloud checks its points against it.
        assert!(matches!(
            ClassLayout::new(vec![0, 2, 2], vec![0, 1]).unwrap_err(),
            CoreError::EmptyClass { class: 1, id: 1 }
        ));
        assert!(matches!(
            LabeledCloud::from_layout(vec![0.0; 5], 2, layout.clone()).unwrap_err(),
            CoreError::Shape { .. }
        ));
        assert!(layout.select(&[vec![0], vec![], vec![1]]).is_err());
    }
}

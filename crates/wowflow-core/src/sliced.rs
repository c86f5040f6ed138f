//! Projected and sorted clouds: the shared first half of every sliced computation.
//!
//! A step projects all `N` particles on all `L` directions with one GEMM
//! (`P = Θ Xᵀ`, shape `L × N`) and sorts every `(direction, class)` segment of `P` once.
//! Because classes are contiguous rows of the cloud, each such segment is a contiguous
//! slice of a row of `P`, so sorting happens in place and every class pair then reads two
//! sorted slices — the sort is paid once per class, not once per pair (docs/design.md).

use crate::cloud::LabeledCloud;
use crate::directions::Directions;
use crate::error::{CoreError, Result};
use crate::sort::SegmentSorter;
use rayon::prelude::*;

/// Projections of one cloud on `L` directions, sorted inside every `(direction, class)`
/// segment.
#[derive(Debug, Clone, Default)]
pub struct SlicedCloud {
    dirs: usize,
    points: usize,
    offsets: Vec<usize>,
    /// `L × N`: row `l`, segment `offsets[c]..offsets[c+1]` ascending.
    sorted: Vec<f32>,
    /// `L × N` class-local index of the particle at each sorted position (kept only when
    /// asked for: the moving cloud needs it to scatter gradients back, a fixed target does
    /// not unless it carries particle weights).
    perm: Option<Vec<u32>>,
    /// `L × N` particle weights in sorted order (only for clouds with explicit weights).
    weights: Option<Vec<f64>>,
    /// Whether `perm` describes the current projections (it may be a kept buffer only).
    perm_is_valid: bool,
}

impl SlicedCloud {
    /// Projects `cloud` on `directions` and sorts every segment. `keep_perm` keeps the
    /// sorting permutation (needed to send gradients back to particles).
    pub fn new(cloud: &LabeledCloud, directions: &Directions, keep_perm: bool) -> Result<Self> {
        let mut sliced = Self::default();
        sliced.rebuild(cloud, directions, keep_perm)?;
        Ok(sliced)
    }

    /// Same as [`SlicedCloud::new`], reusing this value's buffers: a flow re-slices clouds
    /// of the same shape every step, and reusing ~10 MB buffers (at the paper's sizes)
    /// saves their allocation and page faults each time.
    pub fn rebuild(
        &mut self,
        cloud: &LabeledCloud,
        directions: &Directions,
        keep_perm: bool,
    ) -> Result<()> {
        self.project_from(cloud, directions)?;
        self.sort_segments(cloud, keep_perm)
    }

    /// First half of [`SlicedCloud::rebuild`]: the projection GEMM.
    fn project_from(&mut self, cloud: &LabeledCloud, directions: &Directions) -> Result<()> {
        if directions.dim() != cloud.dim() {
            return Err(CoreError::DimensionMismatch {
                what: "directions".into(),
                expected: cloud.dim(),
                got: directions.dim(),
            });
        }
        if cloud.n_points() > u32::MAX as usize {
            return Err(crate::error::invalid(
                "cloud",
                "more than 2^32 particles are not supported",
            ));
        }
        let (l, n) = (directions.count(), cloud.n_points());
        self.dirs = l;
        self.points = n;
        self.offsets.clear();
        self.offsets.extend_from_slice(cloud.offsets());
        self.sorted.resize(l * n, 0.0);
        directions.project(cloud.points(), n, &mut self.sorted);
        Ok(())
    }

    /// Second half of [`SlicedCloud::rebuild`]: sorts every (direction, class) segment of
    /// the projections of the same `cloud`.
    fn sort_segments(&mut self, cloud: &LabeledCloud, keep_perm: bool) -> Result<()> {
        let (l, n) = (self.dirs, self.points);
        if cloud.n_points() != n || cloud.offsets() != self.offsets.as_slice() {
            return Err(crate::error::invalid(
                "sort_segments",
                "the cloud differs from the one that was projected",
            ));
        }
        let weighted = cloud.particle_weights().is_some();
        let need_perm = keep_perm || weighted;
        let offsets = &self.offsets;
        let mut perm = self.perm.take().unwrap_or_default();
        if need_perm {
            perm.resize(l * n, 0);
            self.sorted
                .par_chunks_mut(n)
                .zip(perm.par_chunks_mut(n))
                .for_each_init(SegmentSorter::new, |sorter, (row, prow)| {
                    for c in 0..offsets.len() - 1 {
                        let r = offsets[c]..offsets[c + 1];
                        sorter.sort_with_perm(&mut row[r.clone()], &mut prow[r]);
                    }
                });
        } else {
            self.sorted
                .par_chunks_mut(n)
                .for_each_init(SegmentSorter::new, |sorter, row| {
                    for c in 0..offsets.len() - 1 {
                        sorter.sort(&mut row[offsets[c]..offsets[c + 1]]);
                    }
                });
        }
        self.weights = cloud.particle_weights().map(|w| {
            let mut out = self.weights.take().unwrap_or_default();
            out.resize(l * n, 0.0);
            out.par_chunks_mut(n)
                .zip(perm.par_chunks(n))
                .for_each(|(orow, prow)| {
                    for c in 0..offsets.len() - 1 {
                        for k in offsets[c]..offsets[c + 1] {
                            orow[k] = w[offsets[c] + prow[k] as usize];
                        }
                    }
                });
            out
        });
        // Without `keep_perm` the buffer is only kept for the next rebuild.
        self.perm = Some(perm);
        self.perm_is_valid = keep_perm;
        Ok(())
    }

    /// Number of directions `L`.
    pub fn n_dirs(&self) -> usize {
        self.dirs
    }
    /// Number of particles `N`.
    pub fn n_points(&self) -> usize {
        self.points
    }
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.offsets.len() - 1
    }
    /// Class row offsets.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }
    /// Sorted projections of class `c` on direction `l`.
    #[inline]
    pub fn segment(&self, l: usize, c: usize) -> &[f32] {
        &self.sorted[l * self.points + self.offsets[c]..l * self.points + self.offsets[c + 1]]
    }
    /// Particle weights of class `c`, in the sorted order of direction `l`, if the cloud
    /// has explicit weights.
    #[inline]
    pub fn segment_weights(&self, l: usize, c: usize) -> Option<&[f64]> {
        self.weights
            .as_ref()
            .map(|w| &w[l * self.points + self.offsets[c]..l * self.points + self.offsets[c + 1]])
    }
    /// Class-local particle index at each sorted position of class `c` on direction `l`.
    #[inline]
    pub fn segment_perm(&self, l: usize, c: usize) -> Option<&[u32]> {
        self.perm
            .as_ref()
            .map(|p| &p[l * self.points + self.offsets[c]..l * self.points + self.offsets[c + 1]])
    }
}

/// `out (L × N) = Θ (L × d) · Xᵀ (d × N)` with the `gemm` crate.
pub fn project(points: &[f32], n: usize, d: usize, dirs: &[f32], l: usize, out: &mut [f32]) {
    assert_eq!(points.len(), n * d);
    assert_eq!(dirs.len(), l * d);
    assert_eq!(out.len(), l * n);
    crate::linalg::matmul_abt_f32(dirs, l, points, n, d, out);
}

/// `out (N × d) = scale · Dᵀ (N × L) · Θ (L × d)`: sends per-direction derivatives back to
/// the particles.
pub fn back_project(
    derivs: &[f32],
    n: usize,
    dirs: &[f32],
    l: usize,
    d: usize,
    scale: f32,
    out: &mut [f32],
) {
    assert_eq!(derivs.len(), l * n);
    assert_eq!(dirs.len(), l * d);
    assert_eq!(out.len(), n * d);
    if n == 0 || d == 0 {
        return;
    }
    if l == 0 {
        out.fill(0.0);
        return;
    }
    // SAFETY: lengths checked above; `out` aliases neither input.
    unsafe {
        gemm::gemm(
            n,
            d,
            l,
            out.as_mut_ptr(),
            1,
            d as isize,
            false,
            derivs.as_ptr(),
            n as isize,
            1,
            dirs.as_ptr(),
            1,
            d as isize,
            0.0,
            scale,
            false,
            false,
            false,
            crate::linalg::gemm_parallelism(),
        );
    }
}

/// The sliced Wasserstein distance `SW_p(α, β) = (1/L Σ_l W_p^p(θ_l#α, θ_l#β))^{1/p}`
/// between two weighted point clouds of any sizes (`x` is `n × d` row-major, `y` is
/// `m × d`; weights `None` are uniform, others are normalised), exact in every direction.
///
/// `p ≥ 1` (the monotone coupling on the line is optimal only for convex costs).
pub fn sliced_wasserstein(
    x: &[f32],
    x_weights: Option<&[f64]>,
    y: &[f32],
    y_weights: Option<&[f64]>,
    directions: &Directions,
    p: f64,
) -> Result<f64> {
    let d = directions.dim();
    let l = directions.count();
    if !(p.is_finite() && p >= 1.0) {
        return Err(crate::error::invalid(
            "p",
            format!("the power of SW_p must be a finite number ≥ 1, got {p}"),
        ));
    }
    for (what, pts, w) in [("x", x, x_weights), ("y", y, y_weights)] {
        if pts.is_empty() || !pts.len().is_multiple_of(d) {
            return Err(crate::error::shape(
                what,
                format!("n × d values with n ≥ 1 and d = {d} (the directions' dimension)"),
                format!("{} values", pts.len()),
            ));
        }
        if let Some(w) = w {
            let n = pts.len() / d;
            if w.len() != n {
                return Err(crate::error::shape(
                    format!("{what} weights"),
                    format!("{n} (one per point)"),
                    w.len(),
                ));
            }
            if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(CoreError::BadWeight {
                    what: format!("{what} weights"),
                    index: i,
                    value: w[i],
                });
            }
        }
    }
    let (n, m) = (x.len() / d, y.len() / d);
    let mut px = vec![0.0f32; l * n];
    let mut py = vec![0.0f32; l * m];
    directions.project(x, n, &mut px);
    directions.project(y, m, &mut py);
    // Collected, then summed in direction order: the same bits whatever the threads did.
    let per_direction: Vec<f64> = px
        .par_chunks(n)
        .zip(py.par_chunks(m))
        .map(|(u, v)| crate::ot1d::wasserstein_1d_p(u, x_weights, v, y_weights, p))
        .collect();
    let total: f64 = per_direction.iter().sum();
    Ok((total / l as f64).max(0.0).powf(1.0 / p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_segments_and_permutations() {
        let pts = vec![3.0, 1.0, 2.0, -1.0, 5.0]; // d = 1, classes {0,1,2} and {3,4}
        let cloud = LabeledCloud::from_parts(pts.clone(), 1, vec![0, 3, 5], vec![0, 1]).unwrap();
        let dirs = Directions::from_rows(2, 1, vec![1.0, -1.0]).unwrap();
        let s = SlicedCloud::new(&cloud, &dirs, true).unwrap();
        assert_eq!(s.segment(0, 0), &[1.0, 2.0, 3.0]);
        assert_eq!(s.segment_perm(0, 0).unwrap(), &[1, 2, 0]);
        assert_eq!(s.segment(1, 0), &[-3.0, -2.0, -1.0]);
        assert_eq!(s.segment(1, 1), &[-5.0, 1.0]);
        assert_eq!(s.segment_perm(1, 1).unwrap(), &[1, 0]);
    }

    #[test]
    fn projection_matches_naive_products() {
        let (n, d, l) = (7, 5, 3);
        let pts: Vec<f32> = (0..n * d).map(|i| ((i * 37 % 11) as f32) - 5.0).collect();
        let dirs: Vec<f32> = (0..l * d).map(|i| ((i * 13 % 7) as f32) - 3.0).collect();
        let mut out = vec![0.0; l * n];
        project(&pts, n, d, &dirs, l, &mut out);
        for li in 0..l {
            for i in 0..n {
                let want: f32 = (0..d).map(|k| dirs[li * d + k] * pts[i * d + k]).sum();
                assert_eq!(out[li * n + i], want);
            }
        }
        let derivs: Vec<f32> = (0..l * n).map(|i| (i % 5) as f32).collect();
        let mut g = vec![0.0; n * d];
        back_project(&derivs, n, &dirs, l, d, 0.5, &mut g);
        for i in 0..n {
            for k in 0..d {
                let want: f32 = 0.5
                    * (0..l)
                        .map(|li| derivs[li * n + i] * dirs[li * d + k])
                        .sum::<f32>();
                assert_eq!(g[i * d + k], want);
            }
        }
    }
}

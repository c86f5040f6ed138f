//! Slicing directions `θ_1 … θ_L ∈ S^{d−1}` (docs/math.md §3).
//!
//! The flow redraws directions every step (a fresh Monte-Carlo estimate of SW each step is
//! what makes the scheme a stochastic gradient of the true objective). Orthogonal blocks
//! reduce the variance of that estimate: directions inside a block of `d` are exactly
//! orthonormal, so no two of them duplicate each other's information. Structured blocks
//! ([`DirectionSampler::Structured`], `directions/structured.rs`) are nearly orthonormal and
//! are applied in `O(d log d)` per point instead of `O(L·d)`, without ever forming the
//! `L × d` matrix.

mod structured;

use crate::error::{invalid, shape, CoreError, Result};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use std::sync::OnceLock;
use structured::Structured;
pub use structured::MIN_TRANSFORM;

/// `L` unit vectors in `R^d`: a dense row-major `L × d` matrix, or a structured family
/// applied by fast transforms (its dense matrix is formed only if someone asks for it).
#[derive(Debug, Clone)]
pub struct Directions {
    count: usize,
    dim: usize,
    /// The `L × d` rows: set at construction for dense directions, formed on first use of
    /// [`Directions::as_slice`] for structured ones.
    dense: OnceLock<Vec<f32>>,
    structured: Option<Structured>,
}

impl PartialEq for Directions {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count
            && self.dim == other.dim
            && match (&self.structured, &other.structured) {
                (Some(a), Some(b)) => a == b,
                (None, None) => self.as_slice() == other.as_slice(),
                _ => false,
            }
    }
}

impl Directions {
    /// Wraps user-given directions, normalising each row to unit length.
    ///
    /// Errors on shape mismatch, non-finite values or a zero row (it has no direction).
    pub fn from_rows(count: usize, dim: usize, mut data: Vec<f32>) -> Result<Self> {
        if dim == 0 {
            return Err(CoreError::ZeroDimension);
        }
        if count == 0 {
            return Err(invalid("directions", "need at least one direction (L ≥ 1)"));
        }
        if data.len() != count * dim {
            return Err(shape(
                "directions",
                format!("L × d = {count} × {dim} values"),
                data.len(),
            ));
        }
        for (l, row) in data.chunks_exact_mut(dim).enumerate() {
            if let Some(j) = row.iter().position(|v| !v.is_finite()) {
                return Err(CoreError::NonFinite {
                    what: format!("directions (row {l}, column {j})"),
                    index: l * dim + j,
                    value: row[j] as f64,
                });
            }
            let norm = row
                .iter()
                .map(|&v| (v as f64) * (v as f64))
                .sum::<f64>()
                .sqrt();
            if norm == 0.0 {
                return Err(invalid(
                    "directions",
                    format!("row {l} is zero and has no direction"),
                ));
            }
            row.iter_mut().for_each(|v| *v = (*v as f64 / norm) as f32);
        }
        Ok(Self {
            count,
            dim,
            dense: OnceLock::from(data),
            structured: None,
        })
    }

    fn from_structured(s: Structured) -> Self {
        Self {
            count: s.count(),
            dim: s.dim(),
            dense: OnceLock::new(),
            structured: Some(s),
        }
    }

    /// Number of directions `L`.
    pub fn count(&self) -> usize {
        self.count
    }
    /// Dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Row-major `L × d` values. Structured directions form this matrix on the first call
    /// (`L` transposed transforms) and keep it; their projections never need it.
    pub fn as_slice(&self) -> &[f32] {
        self.dense.get_or_init(|| match &self.structured {
            Some(s) => s.to_dense(),
            None => Vec::new(), // unreachable: dense directions are set at construction
        })
    }
    /// Direction `l`.
    pub fn row(&self, l: usize) -> &[f32] {
        &self.as_slice()[l * self.dim..(l + 1) * self.dim]
    }
    /// Whether these are structured directions (projected by fast transforms).
    pub fn is_structured(&self) -> bool {
        self.structured.is_some()
    }

    /// `out (L × N) = Θ · Xᵀ`: the projections of the `n` points (`n × d` row-major) on
    /// every direction, one row per direction.
    ///
    /// # Panics
    /// If `points.len() != n·d` or `out.len() != L·n` (callers size both from the same
    /// cloud; user input is checked before it gets here).
    pub fn project(&self, points: &[f32], n: usize, out: &mut [f32]) {
        assert_eq!(points.len(), n * self.dim, "points must be n × d");
        assert_eq!(out.len(), self.count * n, "projections must be L × n");
        match &self.structured {
            Some(s) => s.project(points, n, out),
            None => crate::sliced::project(points, n, self.dim, self.as_slice(), self.count, out),
        }
    }

    /// `out (N × d) = scale · Dᵀ · Θ`: sends per-direction derivatives `D` (`L × n`) back to
    /// the points — the transpose of [`Directions::project`].
    ///
    /// # Panics
    /// If `derivs.len() != L·n` or `out.len() != n·d`.
    pub fn back_project(&self, derivs: &[f32], n: usize, scale: f32, out: &mut [f32]) {
        assert_eq!(derivs.len(), self.count * n, "derivatives must be L × n");
        assert_eq!(out.len(), n * self.dim, "the gradient must be n × d");
        match &self.structured {
            Some(s) => s.back_project(derivs, n, scale, out),
            None => crate::sliced::back_project(
                derivs,
                n,
                self.as_slice(),
                self.count,
                self.dim,
                scale,
                out,
            ),
        }
    }
}

/// How directions are drawn each step.
#[derive(Debug, Clone, PartialEq)]
pub enum DirectionSampler {
    /// i.i.d. uniform on the sphere: Gaussian vectors, normalised.
    Gaussian,
    /// Blocks of `d` exactly orthonormal directions (a uniformly random rotation per block,
    /// by Gram–Schmidt on Gaussian vectors); the last block is truncated to reach `L`.
    OrthogonalBlocks,
    /// Structured orthogonal blocks (Yu et al., "Orthogonal Random Features", 2016): rows of
    /// `H·D₃·H·D₂·H·D₁` (`H` the normalised Walsh–Hadamard matrix of size `d'`, the next
    /// power of two ≥ `d`, `Dᵢ` random ±1 diagonals) restricted to the first `d` coordinates
    /// and normalised to unit length; `⌈L/d'⌉` independent blocks. Projecting a point costs
    /// three fast transforms of size `d'` per block instead of `L·d` multiply-adds.
    /// Transforms are at least [`MIN_TRANSFORM`] = 64 long (smaller ones are measurably
    /// biased), so data of `d ≤ 32` are padded to 64.
    Structured,
    /// The same directions at every step (reproducibility, cross-checks with other code).
    Fixed(Directions),
}

impl DirectionSampler {
    /// The family's short name, as configs and the command line spell it (`gaussian`,
    /// `orthogonal`, `structured`, `fixed`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Gaussian => "gaussian",
            Self::OrthogonalBlocks => "orthogonal",
            Self::Structured => "structured",
            Self::Fixed(_) => "fixed",
        }
    }

    /// Draws `count` directions in `R^dim`.
    pub fn sample(&self, count: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Directions> {
        match self {
            Self::Fixed(dirs) => {
                self.check_dim(dim)?;
                Ok(dirs.clone())
            }
            Self::Gaussian => {
                // One seed from the caller's stream, then one ChaCha stream per direction:
                // rows are drawn in parallel and the result does not depend on threads.
                let seed = rng.next_u64();
                let mut data = vec![0.0f32; count * dim];
                data.par_chunks_mut(dim.max(1))
                    .enumerate()
                    .for_each(|(l, row)| {
                        let mut row_rng = ChaCha8Rng::seed_from_u64(seed);
                        row_rng.set_stream(l as u64);
                        row.iter_mut()
                            .for_each(|x| *x = StandardNormal.sample(&mut row_rng));
                    });
                Directions::from_rows(count, dim, data).or_else(|_| self.sample(count, dim, rng))
            }
            Self::OrthogonalBlocks => {
                if count == 0 || dim == 0 {
                    return Directions::from_rows(count, dim, vec![]);
                }
                let mut data = Vec::with_capacity(count * dim);
                while data.len() < count * dim {
                    let rows = (count - data.len() / dim).min(dim);
                    data.extend(orthonormal_rows(rows, dim, rng));
                }
                Directions::from_rows(count, dim, data)
            }
            Self::Structured => {
                Structured::draw(count, dim, rng.next_u64()).map(Directions::from_structured)
            }
        }
    }

    /// Checks, before any draw, that this sampler can give directions in `R^dim`: fixed
    /// directions must have that dimension.
    pub fn check_dim(&self, dim: usize) -> Result<()> {
        match self {
            Self::Fixed(dirs) if dirs.dim != dim => Err(CoreError::DimensionMismatch {
                what: "fixed directions".into(),
                expected: dim,
                got: dirs.dim,
            }),
            _ => Ok(()),
        }
    }

    /// The number of directions this sampler always returns, if it fixes one.
    pub fn fixed_count(&self) -> Option<usize> {
        match self {
            Self::Fixed(d) => Some(d.count),
            _ => None,
        }
    }
}

fn gaussian(len: usize, rng: &mut dyn RngCore) -> Vec<f32> {
    (0..len)
        .map(|_| <StandardNormal as Distribution<f32>>::sample(&StandardNormal, rng))
        .collect()
}

/// `rows ≤ dim` orthonormal rows by modified Gram–Schmidt in f64 (re-orthogonalised once,
/// which keeps them orthogonal to ~1e-15 even for d in the thousands).
fn orthonormal_rows(rows: usize, dim: usize, rng: &mut dyn RngCore) -> Vec<f32> {
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(rows);
    while basis.len() < rows {
        let mut v: Vec<f64> = gaussian(dim, rng).into_iter().map(f64::from).collect();
        for _ in 0..2 {
            for b in &basis {
                let dot: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
                v.iter_mut().zip(b).for_each(|(x, y)| *x -= dot * y);
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-8 {
            v.iter_mut().for_each(|x| *x /= norm);
            basis.push(v);
        }
    }
    basis.into_iter().flatten().map(|x| x as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// `a · b` in `f64` (also used by `structured`'s tests).
    pub(super) fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
    }

    #[test]
    fn gaussian_directions_are_unit_and_seeded() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let a = DirectionSampler::Gaussian.sample(50, 7, &mut rng).unwrap();
        for l in 0..50 {
            assert!((dot(a.row(l), a.row(l)) - 1.0).abs() < 1e-6);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(
            a,
            DirectionSampler::Gaussian.sample(50, 7, &mut rng).unwrap()
        );
    }

    #[test]
    fn orthogonal_blocks_are_orthonormal_within_a_block() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let dirs = DirectionSampler::OrthogonalBlocks
            .sample(13, 5, &mut rng)
            .unwrap();
        assert_eq!(dirs.count(), 13);
        for block in [0..5, 5..10, 10..13] {
            for i in block.clone() {
                for j in block.clone() {
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!(
                        (dot(dirs.row(i), dirs.row(j)) - want).abs() < 1e-6,
                        "{i} {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn from_rows_rejects_bad_input() {
        assert!(matches!(
            Directions::from_rows(2, 2, vec![1.0, 0.0, 0.0, 0.0]),
            Err(CoreError::InvalidParameter { .. })
        ));
        assert!(matches!(
            Directions::from_rows(2, 2, vec![1.0, f32::INFINITY, 0.0, 1.0]),
            Err(CoreError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            Directions::from_rows(2, 2, vec![1.0; 3]),
            Err(CoreError::Shape { .. })
        ));
    }
}

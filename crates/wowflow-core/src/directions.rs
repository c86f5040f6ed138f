//! Slicing directions `θ_1 … θ_L ∈ S^{d−1}` (docs/math.md §3).
//!
//! The flow redraws directions every step (a fresh Monte-Carlo estimate of SW each step is
//! what makes the scheme a stochastic gradient of the true objective). Orthogonal blocks
//! reduce the variance of that estimate: directions inside a block of `d` are exactly
//! orthonormal, so no two of them duplicate each other's information.

use crate::error::{invalid, shape, CoreError, Result};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

/// `L` unit vectors in `R^d`, row-major `L × d`.
#[derive(Debug, Clone, PartialEq)]
pub struct Directions {
    count: usize,
    dim: usize,
    data: Vec<f32>,
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
        Ok(Self { count, dim, data })
    }

    /// Number of directions `L`.
    pub fn count(&self) -> usize {
        self.count
    }
    /// Dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Row-major `L × d` values.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }
    /// Direction `l`.
    pub fn row(&self, l: usize) -> &[f32] {
        &self.data[l * self.dim..(l + 1) * self.dim]
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
    /// The same directions at every step (reproducibility, cross-checks with other code).
    Fixed(Directions),
}

impl DirectionSampler {
    /// Draws `count` directions in `R^dim`.
    pub fn sample(&self, count: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Directions> {
        match self {
            Self::Fixed(dirs) => {
                if dirs.dim != dim {
                    return Err(CoreError::DimensionMismatch {
                        what: "fixed directions".into(),
                        expected: dim,
                        got: dirs.dim,
                    });
                }
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

    fn dot(a: &[f32], b: &[f32]) -> f64 {
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

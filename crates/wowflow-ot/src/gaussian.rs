//! Gaussians and the Bures–Wasserstein distance (docs/math.md §6, the OTDD Gaussian
//! approximation; Hua et al. 2023 for the flows).
//!
//! `W_2²(N(m, Σ), N(m', Σ')) = ‖m − m'‖² + tr Σ + tr Σ' − 2 tr (Σ^{1/2} Σ' Σ^{1/2})^{1/2}`.
//!
//! A Gaussian is stored as its mean and a *factor* `F` (`d × r`) with `Σ = F Fᵀ`. The cross
//! term is then a nuclear norm: the non-zero eigenvalues of `Σ Σ'` are those of
//! `(Fᵀ F')ᵀ (Fᵀ F')`, so `tr (Σ^{1/2} Σ' Σ^{1/2})^{1/2} = ‖Fᵀ F'‖_*` (sum of singular values).
//! For a class of `n` samples in `d` dimensions the factor is the centred samples over `√n`
//! (`r = n`), which makes the distance cost O(n² d + n³) instead of O(d³) when `n < d` — the
//! usual case for image classes (d = 784) — and handles the rank-deficient covariance
//! exactly. With `n > d` the factor is `Σ^{1/2}` (`r = d`). Tiny negative eigenvalues from
//! rounding are clamped to zero before square roots.

use wowflow_core::error::{shape, CoreError, Result};
use wowflow_core::linalg::{
    matmul, matmul_tn, mean_cov, sqrtm_psd, symmetric_eigenvalues, symmetrise, SymmetricEigen,
};

/// `N(m, F Fᵀ)` in `R^d`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    dim: usize,
    mean: Vec<f64>,
    /// Row-major `d × rank`.
    factor: Vec<f64>,
    rank: usize,
}

impl Gaussian {
    /// From a mean and a symmetric PSD covariance (`d × d`, row-major).
    pub fn from_mean_cov(mean: Vec<f64>, cov: &[f64]) -> Result<Self> {
        let d = mean.len();
        if cov.len() != d * d {
            return Err(shape("covariance", format!("{d}×{d} values"), cov.len()));
        }
        if let Some(i) = mean.iter().chain(cov).position(|v| !v.is_finite()) {
            return Err(CoreError::NonFinite {
                what: "Gaussian mean/covariance".into(),
                index: i,
                value: f64::NAN,
            });
        }
        let factor = sqrtm_psd(cov, d)?;
        Ok(Self {
            dim: d,
            mean,
            factor,
            rank: d,
        })
    }

    /// The Gaussian with the mean and covariance of the weighted samples
    /// `Σ_i w_i δ(x_i)` (rows of `points`, `n × d`; `weights` positive, summing to 1):
    /// `m = Σ w_i x_i`, `Σ = Σ w_i (x_i − m)(x_i − m)ᵀ`. `None` means uniform weights and
    /// is exactly [`Gaussian::from_samples`].
    pub fn from_weighted_samples(
        points: &[f32],
        weights: Option<&[f64]>,
        n: usize,
        d: usize,
    ) -> Result<Self> {
        let Some(w) = weights else {
            return Self::from_samples(points, n, d);
        };
        if points.len() != n * d || n == 0 || w.len() != n {
            return Err(shape(
                "weighted samples",
                format!("{n}×{d} values and {n} weights, n ≥ 1"),
                format!("{} values and {} weights", points.len(), w.len()),
            ));
        }
        let mut mean = vec![0.0; d];
        for (row, &wi) in points.chunks_exact(d).zip(w) {
            mean.iter_mut()
                .zip(row)
                .for_each(|(m, &x)| *m += wi * x as f64);
        }
        // Factor columns √w_i (x_i − m): Σ = F Fᵀ whatever the rank.
        let mut factor = vec![0.0; d * n];
        for (i, (row, &wi)) in points.chunks_exact(d).zip(w).enumerate() {
            let s = wi.sqrt();
            for k in 0..d {
                factor[k * n + i] = (row[k] as f64 - mean[k]) * s;
            }
        }
        if n > d {
            // Full covariance, then its square root as a d × d factor (as from_samples).
            let mut cov = vec![0.0; d * d];
            for i in 0..d {
                for j in 0..=i {
                    let v: f64 = (0..n).map(|r| factor[i * n + r] * factor[j * n + r]).sum();
                    cov[i * d + j] = v;
                    cov[j * d + i] = v;
                }
            }
            return Self::from_mean_cov(mean, &cov);
        }
        Ok(Self {
            dim: d,
            mean,
            factor,
            rank: n,
        })
    }

    /// The maximum-likelihood Gaussian of `n` samples (rows of `points`, `n × d`).
    pub fn from_samples(points: &[f32], n: usize, d: usize) -> Result<Self> {
        if points.len() != n * d || n == 0 {
            return Err(shape(
                "samples",
                format!("{n}×{d} values, n ≥ 1"),
                points.len(),
            ));
        }
        if n > d {
            let (mean, cov) = mean_cov(points, n, d);
            return Self::from_mean_cov(mean, &cov);
        }
        let mut mean = vec![0.0; d];
        for row in points.chunks_exact(d) {
            mean.iter_mut().zip(row).for_each(|(m, &x)| *m += x as f64);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let s = 1.0 / (n as f64).sqrt();
        let mut factor = vec![0.0; d * n];
        for (i, row) in points.chunks_exact(d).enumerate() {
            for k in 0..d {
                factor[k * n + i] = (row[k] as f64 - mean[k]) * s;
            }
        }
        Ok(Self {
            dim: d,
            mean,
            factor,
            rank: n,
        })
    }

    /// Dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// The mean.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }
    /// The covariance `F Fᵀ` (`d × d`, row-major).
    pub fn covariance(&self) -> Vec<f64> {
        let (d, r) = (self.dim, self.rank);
        let mut ft = vec![0.0; r * d];
        for k in 0..d {
            for j in 0..r {
                ft[j * d + k] = self.factor[k * r + j];
            }
        }
        matmul_tn(&ft, &ft, r, d, d)
    }
    /// `tr Σ = ‖F‖²_F`.
    pub fn trace(&self) -> f64 {
        self.factor.iter().map(|v| v * v).sum()
    }
}

/// `tr (Σ^{1/2} Σ' Σ^{1/2})^{1/2} = ‖Fᵀ F'‖_*`.
fn fidelity_term(a: &Gaussian, b: &Gaussian) -> Result<f64> {
    let (ra, rb) = (a.rank, b.rank);
    let g = matmul_tn(&a.factor, &b.factor, a.dim, ra, rb); // ra × rb
                                                            // Singular values of G from the eigenvalues of the smaller Gram matrix.
    let (h, p) = if ra <= rb {
        // G Gᵀ (ra × ra) = (Gᵀ)ᵀ Gᵀ.
        let mut gt = vec![0.0; rb * ra];
        for i in 0..ra {
            for j in 0..rb {
                gt[j * ra + i] = g[i * rb + j];
            }
        }
        (matmul_tn(&gt, &gt, rb, ra, ra), ra)
    } else {
        (matmul_tn(&g, &g, ra, rb, rb), rb)
    };
    let eig = symmetric_eigenvalues(&h, p)?;
    Ok(eig.iter().map(|&l| l.max(0.0).sqrt()).sum())
}

/// Squared Bures–Wasserstein distance `W_2²(N(m, Σ), N(m', Σ'))` (clamped at 0 against
/// rounding).
pub fn bures_wasserstein2(a: &Gaussian, b: &Gaussian) -> Result<f64> {
    if a.dim != b.dim {
        return Err(CoreError::DimensionMismatch {
            what: "second Gaussian".into(),
            expected: a.dim,
            got: b.dim,
        });
    }
    let mean_term: f64 = a
        .mean
        .iter()
        .zip(&b.mean)
        .map(|(x, y)| (x - y) * (x - y))
        .sum();
    let cov_term = a.trace() + b.trace() - 2.0 * fidelity_term(a, b)?;
    Ok(mean_term + cov_term.max(0.0))
}

/// A symmetric positive-definite covariance `Σ` (`p × p`) with its square root and inverse
/// square root: the point at which the joint-driven OTDD flow differentiates the Bures
/// part of `W_2²` (docs/math.md §7).
///
/// For a second covariance `Σ'`, `B(Σ) = tr Σ + tr Σ' − 2 tr (Σ^{1/2} Σ' Σ^{1/2})^{1/2}` has
/// the symmetric Euclidean gradient `∇_Σ B = I − T`, where
/// `T = Σ^{-1/2} (Σ^{1/2} Σ' Σ^{1/2})^{1/2} Σ^{-1/2}` is the Monge map from `N(0, Σ)` to
/// `N(0, Σ')` (`T Σ T = Σ'`). So the Bures–Wasserstein step
/// `exp_Σ(−2τ ∇_Σ B) = (I − 2τ(I − T)) Σ (I − 2τ(I − T))` lands exactly on `Σ'` at `τ = ½`,
/// just as a feature step of ½ lands a particle on its barycentric target.
#[derive(Debug, Clone, PartialEq)]
pub struct SpdRoots {
    dim: usize,
    trace: f64,
    sqrt: Vec<f64>,
    inv_sqrt: Vec<f64>,
}

impl SpdRoots {
    /// Decomposes `sigma`; refuses a matrix that is not symmetric positive definite (its
    /// inverse square root, and the Monge map, would not exist).
    pub fn new(sigma: &[f64], p: usize) -> Result<Self> {
        let eig = SymmetricEigen::new(sigma, p)?;
        let smallest = eig.values.first().copied().unwrap_or(f64::NAN);
        if !(smallest > 0.0 && eig.values.iter().all(|v| v.is_finite())) {
            return Err(wowflow_core::error::invalid(
                "covariance",
                format!("must be symmetric positive definite, smallest eigenvalue {smallest:e}"),
            ));
        }
        Ok(Self {
            dim: p,
            trace: eig.values.iter().sum(),
            sqrt: eig.apply(f64::sqrt),
            inv_sqrt: eig.apply(|l| 1.0 / l.sqrt()),
        })
    }

    /// `Σ^{1/2}`.
    pub fn sqrt(&self) -> &[f64] {
        &self.sqrt
    }

    /// `Σ^{1/2} Σ' Σ^{1/2}`, symmetrised against rounding.
    fn sandwich(&self, other: &[f64]) -> Result<Vec<f64>> {
        let p = self.dim;
        if other.len() != p * p {
            return Err(shape("covariance", format!("{p}×{p} values"), other.len()));
        }
        let mut m = matmul(&matmul(&self.sqrt, other, p, p, p), &self.sqrt, p, p, p);
        symmetrise(&mut m, p);
        Ok(m)
    }

    /// `B(Σ) = tr Σ + tr Σ' − 2 tr (Σ^{1/2} Σ' Σ^{1/2})^{1/2}` (eigenvalues only; clamped at 0).
    pub fn bures2(&self, other: &[f64]) -> Result<f64> {
        let p = self.dim;
        let m = self.sandwich(other)?;
        let fidelity: f64 = symmetric_eigenvalues(&m, p)?
            .iter()
            .map(|&l| l.max(0.0).sqrt())
            .sum();
        let other_trace: f64 = (0..p).map(|i| other[i * p + i]).sum();
        Ok((self.trace + other_trace - 2.0 * fidelity).max(0.0))
    }

    /// The Monge map `T` from `N(0, Σ)` to `N(0, Σ')` (symmetric PSD, `p × p`); the
    /// gradient of [`SpdRoots::bures2`] is `I − T`.
    pub fn monge_map(&self, other: &[f64]) -> Result<Vec<f64>> {
        let p = self.dim;
        let root = SymmetricEigen::new(&self.sandwich(other)?, p)?.apply(|l| l.max(0.0).sqrt());
        let mut t = matmul(
            &matmul(&self.inv_sqrt, &root, p, p, p),
            &self.inv_sqrt,
            p,
            p,
            p,
        );
        symmetrise(&mut t, p);
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact_ot;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};
    use wowflow_core::ot1d::{wasserstein_1d, CostPower};

    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
    }

    #[test]
    fn commuting_covariances_have_the_closed_form() {
        let a = Gaussian::from_mean_cov(vec![1.0, 0.0], &[4.0, 0.0, 0.0, 1.0]).unwrap();
        let b = Gaussian::from_mean_cov(vec![0.0, 2.0], &[1.0, 0.0, 0.0, 9.0]).unwrap();
        let want = 1.0 + 4.0 + (2.0f64 - 1.0).powi(2) + (1.0f64 - 3.0).powi(2);
        assert!((bures_wasserstein2(&a, &b).unwrap() - want).abs() < 1e-12);
        assert!(bures_wasserstein2(&a, &a).unwrap() < 1e-12);
    }

    #[test]
    fn low_rank_sample_factor_matches_full_covariance() {
        // 5 samples in R^8: rank-deficient covariance, both representations must agree.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut draw = |n: usize| -> Vec<f32> {
            (0..n * 8)
                .map(|_| <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng))
                .collect()
        };
        let (x, y) = (draw(5), draw(6));
        let (gx, gy) = (
            Gaussian::from_samples(&x, 5, 8).unwrap(),
            Gaussian::from_samples(&y, 6, 8).unwrap(),
        );
        let (mx, cx) = mean_cov(&x, 5, 8);
        let (my, cy) = mean_cov(&y, 6, 8);
        let (fx, fy) = (
            Gaussian::from_mean_cov(mx, &cx).unwrap(),
            Gaussian::from_mean_cov(my, &cy).unwrap(),
        );
        let (low, full) = (
            bures_wasserstein2(&gx, &gy).unwrap(),
            bures_wasserstein2(&fx, &fy).unwrap(),
        );
        // The full path takes square roots of the rounding-level (~1e-16) eigenvalues of the
        // rank-deficient covariance, which adds ~1e-8 per zero eigenvalue.
        assert!((low - full).abs() < 1e-6 * full.max(1.0), "{low} vs {full}");
    }

    /// Samples of N(m, L Lᵀ) in 2-D.
    fn sample_2d(n: usize, m: [f64; 2], l: [[f64; 2]; 2], seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let z: [f64; 2] = [normal(&mut rng), normal(&mut rng)];
            out.push((m[0] + l[0][0] * z[0]) as f32);
            out.push((m[1] + l[1][0] * z[0] + l[1][1] * z[1]) as f32);
        }
        out
    }

    #[test]
    fn matches_exact_w2_between_large_gaussian_samples() {
        // 1-D: exact W_2² of 20 000 samples each (sorting) vs the closed form.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 20_000;
        let x: Vec<f64> = (0..n)
            .map(|_| 1.0 + 2.0 * normal(&mut rng))
            .collect::<Vec<f64>>();
        let y: Vec<f64> = (0..n)
            .map(|_| -0.5 + 0.5 * normal(&mut rng))
            .collect::<Vec<f64>>();
        let emp = wasserstein_1d(&x, None, &y, None, CostPower::Two);
        let g1 = Gaussian::from_mean_cov(vec![1.0], &[4.0]).unwrap();
        let g2 = Gaussian::from_mean_cov(vec![-0.5], &[0.25]).unwrap();
        let bw = bures_wasserstein2(&g1, &g2).unwrap(); // 2.25 + 2.25 = 4.5
        assert!((emp - bw).abs() < 0.03 * bw, "1-D: {emp} vs {bw}");

        // 2-D, non-commuting covariances: exact OT between 700 samples each.
        let n = 700;
        let (la, lb) = ([[1.5, 0.0], [0.9, 0.6]], [[0.4, 0.0], [-0.5, 1.2]]);
        let xa = sample_2d(n, [0.0, 0.0], la, 4);
        let xb = sample_2d(n, [1.0, -1.0], lb, 5);
        let cost = wowflow_core::linalg::pairwise_sq_dists(&xa, n, &xb, n, 2);
        let w = vec![1.0; n];
        let emp = exact_ot(&w, &w, &cost).unwrap().cost;
        let cov = |l: [[f64; 2]; 2]| {
            [
                l[0][0] * l[0][0],
                l[0][0] * l[1][0],
                l[0][0] * l[1][0],
                l[1][0] * l[1][0] + l[1][1] * l[1][1],
            ]
        };
        let g1 = Gaussian::from_mean_cov(vec![0.0, 0.0], &cov(la)).unwrap();
        let g2 = Gaussian::from_mean_cov(vec![1.0, -1.0], &cov(lb)).unwrap();
        let bw = bures_wasserstein2(&g1, &g2).unwrap();
        // Empirical W_2² is biased upwards by O(n^{-1/2}) in 2-D; 10 % covers it at n = 700.
        assert!((emp - bw).abs() < 0.10 * bw, "2-D: {emp} vs {bw}");
    }

    fn random_spd(p: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let a: Vec<f64> = (0..p * p).map(|_| normal(rng)).collect();
        let mut s = wowflow_core::linalg::matmul_tn(&a, &a, p, p, p);
        (0..p).for_each(|i| s[i * p + i] += 0.5);
        s
    }

    #[test]
    fn bures_gradient_is_identity_minus_the_monge_map() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let p = 4;
        let (sigma, other) = (random_spd(p, &mut rng), random_spd(p, &mut rng));
        let roots = SpdRoots::new(&sigma, p).unwrap();
        let t = roots.monge_map(&other).unwrap();
        // T Σ T = Σ'.
        let tst = matmul(&matmul(&t, &sigma, p, p, p), &t, p, p, p);
        for (a, b) in tst.iter().zip(&other) {
            assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
        }
        // Directional derivatives along random symmetric E match ⟨I − T, E⟩.
        for trial in 0..5 {
            let mut e: Vec<f64> = (0..p * p).map(|_| normal(&mut rng)).collect();
            wowflow_core::linalg::symmetrise(&mut e, p);
            let h = 1e-6;
            let at = |s: f64| {
                let moved: Vec<f64> = sigma.iter().zip(&e).map(|(a, b)| a + s * b).collect();
                SpdRoots::new(&moved, p).unwrap().bures2(&other).unwrap()
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            let analytic: f64 = (0..p * p)
                .map(|k| (if k % (p + 1) == 0 { 1.0 } else { 0.0 } - t[k]) * e[k])
                .sum();
            assert!(
                (fd - analytic).abs() < 1e-6 * (1.0 + fd.abs()),
                "trial {trial}: {fd} vs {analytic}"
            );
        }
        // The value agrees with the factor-based distance.
        let g1 = Gaussian::from_mean_cov(vec![0.0; p], &sigma).unwrap();
        let g2 = Gaussian::from_mean_cov(vec![0.0; p], &other).unwrap();
        let want = bures_wasserstein2(&g1, &g2).unwrap();
        assert!((roots.bures2(&other).unwrap() - want).abs() < 1e-9 * want.max(1.0));
    }

    #[test]
    fn commuting_monge_map_is_the_ratio_of_square_roots() {
        let roots = SpdRoots::new(&[4.0, 0.0, 0.0, 1.0], 2).unwrap();
        let t = roots.monge_map(&[1.0, 0.0, 0.0, 9.0]).unwrap();
        for (a, b) in t.iter().zip([0.5, 0.0, 0.0, 3.0]) {
            assert!((a - b).abs() < 1e-12, "{t:?}");
        }
        assert!((roots.bures2(&[1.0, 0.0, 0.0, 9.0]).unwrap() - 5.0).abs() < 1e-12);
        assert!(SpdRoots::new(&[1.0, 0.0, 0.0, 0.0], 2).is_err());
    }
}

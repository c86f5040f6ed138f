//! Moments of the SW₂² estimator over independent draws of directions, for comparing
//! direction families on fixed pairs of clouds (shared by `tests/structured_directions.rs`
//! and `examples/structured_bias.rs`).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use wowflow_core::{sliced_wasserstein, DirectionSampler};

/// Mean, variance and draws of one estimator.
#[derive(Debug, Clone, Copy)]
pub struct Moments {
    pub mean: f64,
    pub var: f64,
    pub draws: usize,
}

impl Moments {
    /// Standard error of the mean.
    pub fn se(&self) -> f64 {
        (self.var / self.draws as f64).sqrt()
    }
    /// `(self − other) / SE(difference)` for independent estimates.
    pub fn z_against(&self, other: &Moments) -> f64 {
        (self.mean - other.mean) / (self.se().powi(2) + other.se().powi(2)).sqrt()
    }
}

/// SW₂²(x, y) with `l` directions drawn from `sampler`, `draws` independent times (draw `r`
/// seeded by `seed + r`): its mean and variance.
pub fn sw2_moments(
    sampler: &DirectionSampler,
    x: &[f32],
    y: &[f32],
    d: usize,
    l: usize,
    draws: usize,
    seed: u64,
) -> Moments {
    let values: Vec<f64> = (0..draws)
        .into_par_iter()
        .map(|r| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(r as u64));
            let dirs = sampler.sample(l, d, &mut rng).expect("directions");
            sliced_wasserstein(x, None, y, None, &dirs, 2.0)
                .expect("SW")
                .powi(2)
        })
        .collect();
    let mean = values.iter().sum::<f64>() / draws as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (draws - 1) as f64;
    Moments { mean, var, draws }
}

/// A pair of anisotropic Gaussian blobs in `R^d`, `n` points each: `x ~ N(0, diag(λ))` with
/// `λ_j` spread geometrically from 4 to 1/4, `y ~ N(2·e₀ + shift, I)` with `y`'s first
/// coordinate also stretched ×3 — a distance that depends on the directions well beyond their
/// second moments (a mean along one axis, a variance mismatch along others).
pub fn anisotropic_blobs(d: usize, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut g = || -> f32 { StandardNormal.sample(&mut rng) };
    let scale = |j: usize| {
        if d == 1 {
            1.0
        } else {
            4f32.powf(1.0 - 2.0 * j as f32 / (d - 1) as f32).sqrt()
        }
    };
    let x: Vec<f32> = (0..n * d).map(|k| scale(k % d) * g()).collect();
    let y: Vec<f32> = (0..n * d)
        .map(|k| {
            let j = k % d;
            if j == 0 {
                2.0 + 3.0 * g()
            } else {
                g()
            }
        })
        .collect();
    (x, y)
}

//! Synthetic labeled clouds that need no files: the rings target of the paper's first
//! figure and Gaussian-noise sources.

use crate::cloud::LabeledCloud;
use crate::error::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Three rings in `R²`, one class each: radius 0.5, centres on a circle of radius 1.2
/// (an equilateral layout so no ring overlaps another), `per_ring` points per ring at
/// uniformly random angles with radial noise of standard deviation 0.02.
pub fn rings(per_ring: usize, seed: u64) -> Result<LabeledCloud> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pts = Vec::with_capacity(3 * per_ring * 2);
    for c in 0..3 {
        let phi = std::f32::consts::FRAC_PI_2 + c as f32 * 2.0 * std::f32::consts::PI / 3.0;
        let (cx, cy) = (1.2 * phi.cos(), 1.2 * phi.sin());
        for _ in 0..per_ring {
            let t: f32 = rng.random_range(0.0..2.0 * std::f32::consts::PI);
            let r = 0.5
                + 0.02 * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng);
            pts.push(cx + r * t.cos());
            pts.push(cy + r * t.sin());
        }
    }
    LabeledCloud::uniform(3, per_ring, 2, pts)
}

/// `classes × per_class` i.i.d. `N(0, std² I_d)` particles (the generative source).
pub fn gaussian_noise(
    classes: usize,
    per_class: usize,
    dim: usize,
    std: f32,
    seed: u64,
) -> Result<LabeledCloud> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pts = (0..classes * per_class * dim)
        .map(|_| std * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng))
        .collect();
    LabeledCloud::uniform(classes, per_class, dim, pts)
}

/// Two classes of standard Gaussian noise in `R²`, `per_class` points each, the second
/// moved `shift` to the right: a source whose two label distributions start apart, for
/// flows towards the three [`rings`] (the variable-label OTDD dynamics must split them
/// into three).
pub fn two_noise_classes(per_class: usize, shift: f32, seed: u64) -> Result<LabeledCloud> {
    let noise = gaussian_noise(2, per_class, 2, 1.0, seed)?;
    let second = 2 * per_class;
    let points = noise
        .points()
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if i >= second && i % 2 == 0 {
                v + shift
            } else {
                v
            }
        })
        .collect();
    noise.with_points(points, 2)
}

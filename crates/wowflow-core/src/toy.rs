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

/// A swiss roll in `R³` cut into `classes` consecutive pieces along the roll, `per_class`
/// points each (the target of Alvarez-Melis & Fusi's shaping figure): the angle `t` runs
/// over `[1.5π, 4.5π]`, class `c` takes the `c`-th equal part of that range, and a point is
/// `(t cos t, h, t sin t) / 10` with `h` uniform in `[−1, 1] · 10 / 3` — so the roll spans
/// about `[−1.4, 1.4]` in x and z and `[−0.33, 0.33]` in y — plus Gaussian noise of standard
/// deviation 0.02.
pub fn swiss_roll(classes: usize, per_class: usize, seed: u64) -> Result<LabeledCloud> {
    use std::f32::consts::PI;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pts = Vec::with_capacity(classes * per_class * 3);
    let span = 3.0 * PI / classes.max(1) as f32;
    for c in 0..classes {
        for _ in 0..per_class {
            let t = 1.5 * PI + span * (c as f32 + rng.random_range(0.0..1.0f32));
            let h: f32 = rng.random_range(-1.0..1.0f32) * 10.0 / 3.0;
            for v in [t * t.cos(), h, t * t.sin()] {
                let noise: f32 = StandardNormal.sample(&mut rng);
                pts.push(v / 10.0 + 0.02 * noise);
            }
        }
    }
    LabeledCloud::uniform(classes, per_class, 3, pts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_swiss_roll_classes_are_consecutive_pieces_of_the_roll() {
        let roll = swiss_roll(3, 200, 1).unwrap();
        assert_eq!((roll.n_classes(), roll.n_points(), roll.dim()), (3, 600, 3));
        // The distance from the roll's axis (x, z) grows with t, so class by class.
        let radius = |c: usize| {
            let p = roll.class_points(c);
            p.chunks(3)
                .map(|q| (q[0] * q[0] + q[2] * q[2]).sqrt())
                .sum::<f32>()
                / 200.0
        };
        assert!(radius(0) < radius(1) && radius(1) < radius(2));
        // t / 10 lies in [0.47, 1.41]; noise moves it a little.
        for q in roll.points().chunks(3) {
            let r = (q[0] * q[0] + q[2] * q[2]).sqrt();
            assert!((0.35..1.55).contains(&r), "{r}");
            assert!(q[1].abs() < 0.45);
        }
        assert_eq!(swiss_roll(3, 200, 1).unwrap().points(), roll.points());
    }
}

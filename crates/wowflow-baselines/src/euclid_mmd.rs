//! The Euclidean MMD flow of Arbel et al. (2019) with the Riesz kernel `k(x, y) = −‖x − y‖`
//! on `R^d` (docs/math.md §7): labels are ignored, every particle is one atom of the joint
//! feature distribution.
//!
//! `F = ½ MMD_k²(ρ, β)` with particle masses `p_i = a_c w_ci` and `q_j = b_k w'_kj`. The
//! gradient returned is `∂F/∂x_i / p_i` (the Wasserstein gradient at the particle):
//!
//! ```text
//! g_i = Σ_j q_j u(x_i − y_j) − Σ_j p_j u(x_i − x_j),     u(v) = v / ‖v‖ (0 at v = 0)
//! ```
//!
//! so a gradient step of size τ is the particle scheme of the paper. Cost O(N (N + M) d)
//! per step, direct (the baseline is meant for the 2-D comparisons).

use rand::RngCore;
use rayon::prelude::*;
use wowflow_core::cloud::LabeledCloud;
use wowflow_core::error::Result;
use wowflow_core::objective::Objective;

/// `½ MMD²` with the Riesz kernel `−‖x − y‖`, labels ignored.
#[derive(Debug, Clone)]
pub struct EuclidMmd {
    target: LabeledCloud,
    target_masses: Vec<f64>,
    /// `½ Σ q q' k(y, y')`, constant in the particles.
    target_term: f64,
}

fn dist(x: &[f32], y: &[f32]) -> f64 {
    x.iter()
        .zip(y)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum::<f64>()
        .sqrt()
}

impl EuclidMmd {
    /// The flow towards `target`.
    pub fn new(target: LabeledCloud) -> Result<Self> {
        target.validate()?;
        let q = target.masses();
        let d = target.dim();
        let pts = target.points();
        let target_term: f64 = (0..target.n_points())
            .into_par_iter()
            .map(|i| {
                let xi = &pts[i * d..(i + 1) * d];
                (0..target.n_points())
                    .map(|j| -q[i] * q[j] * dist(xi, &pts[j * d..(j + 1) * d]))
                    .sum::<f64>()
            })
            .sum::<f64>()
            * 0.5;
        Ok(Self {
            target,
            target_masses: q,
            target_term,
        })
    }
}

impl Objective for EuclidMmd {
    fn name(&self) -> String {
        "euclid-mmd(riesz)".into()
    }

    fn value_and_wow_grad(
        &mut self,
        cloud: &LabeledCloud,
        _rng: &mut dyn RngCore,
        grad: &mut [f32],
    ) -> Result<f64> {
        wowflow_core::objective::check_inputs(cloud, Some(self.target.dim()), grad)?;
        let d = cloud.dim();
        let p = cloud.masses();
        let (xs, ys, q) = (cloud.points(), self.target.points(), &self.target_masses);
        let parts: Vec<f64> = grad
            .par_chunks_mut(d)
            .enumerate()
            .map(|(i, g)| {
                let xi = &xs[i * d..(i + 1) * d];
                let mut acc = vec![0.0f64; d];
                let mut value = 0.0;
                let mut add = |y: &[f32], w: f64, value_w: f64| {
                    let r = dist(xi, y);
                    value -= value_w * r;
                    if r > 0.0 {
                        for k in 0..d {
                            acc[k] += w * (xi[k] as f64 - y[k] as f64) / r;
                        }
                    }
                };
                for (j, &qj) in q.iter().enumerate() {
                    add(&ys[j * d..(j + 1) * d], qj, -p[i] * qj);
                }
                for (j, &pj) in p.iter().enumerate() {
                    add(&xs[j * d..(j + 1) * d], -pj, 0.5 * p[i] * pj);
                }
                g.iter_mut().zip(&acc).for_each(|(g, &a)| *g = a as f32);
                value
            })
            .collect();
        Ok(parts.iter().sum::<f64>() + self.target_term)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use wowflow_core::toy::{gaussian_noise, rings};

    #[test]
    fn gradient_matches_finite_differences_and_value_vanishes_at_target() {
        let target = rings(6, 0).unwrap();
        let src = gaussian_noise(3, 4, 2, 1.0, 1).unwrap();
        let mut obj = EuclidMmd::new(target.clone()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut g = vec![0.0; src.points().len()];
        let f0 = obj.value_and_wow_grad(&src, &mut rng, &mut g).unwrap();
        let masses = src.masses();
        let h = 1e-3f32;
        for k in [0usize, 3, 10, 23] {
            let mut plus = src.clone();
            plus.points_mut()[k] += h;
            let mut minus = src.clone();
            minus.points_mut()[k] -= h;
            let mut tmp = vec![0.0; g.len()];
            let fp = obj.value_and_wow_grad(&plus, &mut rng, &mut tmp).unwrap();
            let fm = obj.value_and_wow_grad(&minus, &mut rng, &mut tmp).unwrap();
            let fd = (fp - fm) / (2.0 * h as f64) / masses[k / 2];
            assert!(
                (fd - g[k] as f64).abs() < 2e-3 * (1.0 + fd.abs()),
                "coord {k}: fd {fd} vs {}",
                g[k]
            );
        }
        assert!(f0 > 0.0);
        let mut g2 = vec![0.0; target.points().len()];
        let at_target = obj.value_and_wow_grad(&target, &mut rng, &mut g2).unwrap();
        assert!(at_target.abs() < 1e-9, "F(target) = {at_target}");
    }
}

//! Shaping functionals of Alvarez-Melis & Fusi (2021, §5; docs/math.md §7) and weighted sums of
//! objectives.
//!
//! - potential energy `𝒱(ρ) = ∫ V dρ` ([`Potential`]): affine feature-norm bound, hyperplane
//!   margin, dimension collapse. WoW gradient at particle `i`: `∇V(x_i)`.
//! - interaction energy `𝒲(ρ) = ½ ∬ W dρ dρ` ([`ClassRepulsion`], `W = exp(−‖x − x'‖)
//!   1[y ≠ y']`). WoW gradient: `Σ_j p_j ∇W(x_i − x_j)`.
//! - entropy `T ∫ ρ log ρ`: its particle scheme is the Euler–Maruyama step
//!   `x ← x − τ ∇ + √(2τT) ξ`, noise rather than a gradient, so it belongs to the integrator:
//!   [`FlowConfig::temperature`](wowflow_core::FlowConfig::temperature).
//!
//! [`Sum`] combines any objectives with weights, e.g. `OTDD² + λ 𝒱`.

use rand::RngCore;
use rayon::prelude::*;
use wowflow_core::cloud::LabeledCloud;
use wowflow_core::error::{invalid, shape, CoreError, Result};
use wowflow_core::objective::Objective;

/// A per-particle potential `V(x, y)`.
#[derive(Debug, Clone, PartialEq)]
pub enum Potential {
    /// `V = (‖A x − b‖ − r)_+`: keeps `A x` within distance `r` of `b`. `matrix` is `A`
    /// (`p × d` row-major; `None` for the identity), `offset` is `b` (length `p`).
    NormBound {
        /// `A`, row-major `p × d`; `None` for the identity (`p = d`).
        matrix: Option<Vec<f64>>,
        /// `b`, length `p` (`d` when `matrix` is `None`).
        offset: Vec<f64>,
        /// `r ≥ 0`, in the units of `A x`.
        radius: f64,
    },
    /// `V = max(0, s_y (wᵀx − b))` with a sign `s_y = ±1` per class: pushes class `y` to the
    /// side `s_y (wᵀx − b) ≤ 0` of the hyperplane (linear separability).
    HyperplaneMargin {
        /// `w`, length `d` (not normalised: `V` scales with `‖w‖`).
        normal: Vec<f64>,
        /// `b`, the hyperplane's offset.
        offset: f64,
        /// `s_y` for each class, indexed by class position `0..C` in the cloud (not by class
        /// id); length `C`.
        class_signs: Vec<f64>,
    },
    /// `V = ½ Σ_{k ∈ dims} x_k²`: collapses the features `dims` to 0.
    DimensionCollapse {
        /// Feature indices `k < d` to collapse.
        dims: Vec<usize>,
    },
}

impl Potential {
    fn check(&self, d: usize, classes: usize) -> Result<()> {
        match self {
            Potential::NormBound {
                matrix,
                offset,
                radius,
            } => {
                if let Some(a) = matrix {
                    if a.len() != offset.len() * d {
                        return Err(shape(
                            "norm-bound matrix A",
                            format!("{}×{d}", offset.len()),
                            a.len(),
                        ));
                    }
                } else if offset.len() != d {
                    return Err(shape("norm-bound centre", d, offset.len()));
                }
                if radius.is_nan() || *radius < 0.0 {
                    return Err(invalid("radius", "must be ≥ 0"));
                }
            }
            Potential::HyperplaneMargin {
                normal,
                class_signs,
                ..
            } => {
                if normal.len() != d {
                    return Err(shape("hyperplane normal", d, normal.len()));
                }
                if class_signs.len() != classes {
                    return Err(shape("class signs", classes, class_signs.len()));
                }
            }
            Potential::DimensionCollapse { dims } => {
                if let Some(&k) = dims.iter().find(|&&k| k >= d) {
                    return Err(invalid("collapse dims", format!("dimension {k} ≥ d = {d}")));
                }
            }
        }
        Ok(())
    }

    /// `V(x)` and `∇V(x)` (written into `g`) for a particle of class `c`.
    fn eval(&self, x: &[f32], c: usize, g: &mut [f32]) -> f64 {
        g.fill(0.0);
        match self {
            Potential::NormBound {
                matrix,
                offset,
                radius,
            } => {
                let r: Vec<f64> = match matrix {
                    None => x.iter().zip(offset).map(|(&v, b)| v as f64 - b).collect(),
                    Some(a) => offset
                        .iter()
                        .enumerate()
                        .map(|(p, b)| {
                            a[p * x.len()..(p + 1) * x.len()]
                                .iter()
                                .zip(x)
                                .map(|(a, &v)| a * v as f64)
                                .sum::<f64>()
                                - b
                        })
                        .collect(),
                };
                let norm = r.iter().map(|v| v * v).sum::<f64>().sqrt();
                if norm <= *radius || norm == 0.0 {
                    return 0.0;
                }
                match matrix {
                    None => g
                        .iter_mut()
                        .zip(&r)
                        .for_each(|(g, v)| *g = (v / norm) as f32),
                    Some(a) => {
                        for (p, v) in r.iter().enumerate() {
                            for (k, gk) in g.iter_mut().enumerate() {
                                *gk += (a[p * x.len() + k] * v / norm) as f32;
                            }
                        }
                    }
                }
                norm - radius
            }
            Potential::HyperplaneMargin {
                normal,
                offset,
                class_signs,
            } => {
                let s = class_signs[c];
                let t = s
                    * (normal
                        .iter()
                        .zip(x)
                        .map(|(w, &v)| w * v as f64)
                        .sum::<f64>()
                        - offset);
                if t <= 0.0 {
                    return 0.0;
                }
                g.iter_mut()
                    .zip(normal)
                    .for_each(|(g, w)| *g = (s * w) as f32);
                t
            }
            Potential::DimensionCollapse { dims } => {
                let mut v = 0.0;
                for &k in dims {
                    v += 0.5 * (x[k] as f64).powi(2);
                    g[k] = x[k];
                }
                v
            }
        }
    }
}

/// `𝒱(ρ) = Σ_i p_i V(x_i, y_i)`.
#[derive(Debug, Clone)]
pub struct PotentialEnergy {
    /// The potential `V`; its shapes are checked against the cloud at every evaluation.
    pub potential: Potential,
}

impl Objective for PotentialEnergy {
    fn name(&self) -> String {
        let kind = match self.potential {
            Potential::NormBound { .. } => "norm-bound",
            Potential::HyperplaneMargin { .. } => "margin",
            Potential::DimensionCollapse { .. } => "collapse",
        };
        format!("potential({kind})")
    }

    fn value_and_wow_grad(
        &mut self,
        cloud: &LabeledCloud,
        _rng: &mut dyn RngCore,
        grad: &mut [f32],
    ) -> Result<f64> {
        let d = cloud.dim();
        check_grad(cloud, grad)?;
        self.potential.check(d, cloud.n_classes())?;
        let (p, y) = (cloud.masses(), cloud.row_classes());
        let pts = cloud.points();
        let value = grad
            .par_chunks_mut(d)
            .enumerate()
            .map(|(i, g)| p[i] * self.potential.eval(&pts[i * d..(i + 1) * d], y[i], g))
            .sum();
        Ok(value)
    }
}

/// Class repulsion `𝒲(ρ) = ½ ∬ exp(−‖x − x'‖) 1[y ≠ y'] dρ dρ`.
#[derive(Debug, Clone, Default)]
pub struct ClassRepulsion;

impl Objective for ClassRepulsion {
    fn name(&self) -> String {
        "class-repulsion".into()
    }

    fn value_and_wow_grad(
        &mut self,
        cloud: &LabeledCloud,
        _rng: &mut dyn RngCore,
        grad: &mut [f32],
    ) -> Result<f64> {
        let d = cloud.dim();
        check_grad(cloud, grad)?;
        let (p, y) = (cloud.masses(), cloud.row_classes());
        let pts = cloud.points();
        let value = grad
            .par_chunks_mut(d)
            .enumerate()
            .map(|(i, g)| {
                let xi = &pts[i * d..(i + 1) * d];
                let mut acc = vec![0.0f64; d];
                let mut v = 0.0;
                for j in (0..p.len()).filter(|&j| y[j] != y[i]) {
                    let xj = &pts[j * d..(j + 1) * d];
                    let r = xi
                        .iter()
                        .zip(xj)
                        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    let w = (-r).exp();
                    v += 0.5 * p[i] * p[j] * w;
                    if r > 0.0 {
                        for k in 0..d {
                            acc[k] -= p[j] * w * (xi[k] as f64 - xj[k] as f64) / r;
                        }
                    }
                }
                g.iter_mut().zip(&acc).for_each(|(g, &a)| *g = a as f32);
                v
            })
            .sum();
        Ok(value)
    }
}

/// `F = Σ_t λ_t F_t` over objectives (values and WoW gradients add with the same weights).
pub struct Sum {
    /// `(λ_t, F_t)` pairs, evaluated in order on the same cloud and random source.
    pub terms: Vec<(f64, Box<dyn Objective>)>,
}

impl Objective for Sum {
    fn name(&self) -> String {
        self.terms
            .iter()
            .map(|(w, t)| {
                if *w == 1.0 {
                    t.name()
                } else {
                    format!("{w}·{}", t.name())
                }
            })
            .collect::<Vec<_>>()
            .join(" + ")
    }

    fn value_and_wow_grad(
        &mut self,
        cloud: &LabeledCloud,
        rng: &mut dyn RngCore,
        grad: &mut [f32],
    ) -> Result<f64> {
        check_grad(cloud, grad)?;
        grad.fill(0.0);
        let mut tmp = vec![0.0f32; grad.len()];
        let mut value = 0.0;
        for (w, term) in self.terms.iter_mut() {
            value += *w * term.value_and_wow_grad(cloud, rng, &mut tmp)?;
            grad.iter_mut()
                .zip(&tmp)
                .for_each(|(g, &t)| *g += (*w as f32) * t);
        }
        Ok(value)
    }

    fn accept_step(&mut self) -> Result<()> {
        self.terms.iter_mut().try_for_each(|(_, t)| t.accept_step())
    }

    /// The terms' states end to end (terms without state add nothing).
    fn state(&self) -> Option<Vec<f64>> {
        let parts: Vec<Vec<f64>> = self.terms.iter().filter_map(|(_, t)| t.state()).collect();
        (!parts.is_empty()).then(|| parts.concat())
    }

    fn restore_state(&mut self, state: &[f64]) -> Result<()> {
        let mut rest = state;
        for (_, term) in self.terms.iter_mut() {
            if let Some(len) = term.state().map(|s| s.len()) {
                if rest.len() < len {
                    return Err(shape("objective state", len, rest.len()));
                }
                term.restore_state(&rest[..len])?;
                rest = &rest[len..];
            }
        }
        if !rest.is_empty() {
            return Err(shape(
                "objective state",
                state.len() - rest.len(),
                state.len(),
            ));
        }
        Ok(())
    }
}

fn check_grad(cloud: &LabeledCloud, grad: &[f32]) -> Result<()> {
    if grad.len() != cloud.points().len() {
        return Err(shape("gradient buffer", cloud.points().len(), grad.len()));
    }
    if cloud.dim() == 0 {
        return Err(CoreError::ZeroDimension);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use wowflow_core::toy::gaussian_noise;

    fn check_fd(obj: &mut dyn Objective, cloud: &LabeledCloud) {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut g = vec![0.0; cloud.points().len()];
        obj.value_and_wow_grad(cloud, &mut rng, &mut g).unwrap();
        let masses = cloud.masses();
        let d = cloud.dim();
        for k in 0..cloud.points().len() {
            let h = 1e-3f32;
            let mut tmp = vec![0.0; g.len()];
            let mut at = |delta: f32| {
                let mut c = cloud.clone();
                c.points_mut()[k] += delta;
                obj.value_and_wow_grad(&c, &mut rng, &mut tmp).unwrap()
            };
            let fd = (at(h) - at(-h)) / (2.0 * h as f64) / masses[k / d];
            assert!(
                (fd - g[k] as f64).abs() < 5e-3 * (1.0 + fd.abs()),
                "{}: coord {k}: fd {fd} vs {}",
                obj.name(),
                g[k]
            );
        }
    }

    #[test]
    fn potentials_and_repulsion_match_finite_differences() {
        let cloud = gaussian_noise(2, 4, 3, 1.5, 3).unwrap();
        let mut objs: Vec<Box<dyn Objective>> = vec![
            Box::new(PotentialEnergy {
                potential: Potential::NormBound {
                    matrix: None,
                    offset: vec![0.1, 0.0, -0.2],
                    radius: 0.5,
                },
            }),
            Box::new(PotentialEnergy {
                potential: Potential::NormBound {
                    matrix: Some(vec![1.0, 0.5, 0.0, 0.0, -1.0, 2.0]),
                    offset: vec![0.0, 0.3],
                    radius: 0.2,
                },
            }),
            Box::new(PotentialEnergy {
                potential: Potential::HyperplaneMargin {
                    normal: vec![1.0, -0.5, 0.2],
                    offset: 0.1,
                    class_signs: vec![1.0, -1.0],
                },
            }),
            Box::new(PotentialEnergy {
                potential: Potential::DimensionCollapse { dims: vec![1] },
            }),
            Box::new(ClassRepulsion),
        ];
        for obj in objs.iter_mut() {
            check_fd(obj.as_mut(), &cloud);
        }
        let mut sum = Sum {
            terms: vec![
                (2.0, Box::new(ClassRepulsion) as Box<dyn Objective>),
                (
                    0.5,
                    Box::new(PotentialEnergy {
                        potential: Potential::DimensionCollapse { dims: vec![0, 2] },
                    }),
                ),
            ],
        };
        check_fd(&mut sum, &cloud);
    }
}

//! Distribution matching (DM, Zhao & Bilen 2023) on raw features (docs/math.md §7): the
//! linear-kernel MMD between each source class and the target class with the same id.
//!
//! `F = Σ_c a_c ‖m_c − m'_c‖²` with `m_c = Σ_i w_ci x_ci` and `m'_c` the matching target class
//! mean. DM sums over classes without the `a_c`; with uniform classes this only rescales the
//! step size by `C`, and the weighting makes the WoW convention exact: the gradient returned
//! is `∂F/∂x_ci / (a_c w_ci) = 2 (m_c − m'_c)` — every particle of a class moves by the same
//! vector, and a step of τ = ½ matches the means exactly.
//!
//! Optionally each step compares with a random batch of target rows per class (the paper's
//! 256 real images per class per step).

use rand::RngCore;
use wowflow_core::cloud::LabeledCloud;
use wowflow_core::error::{invalid, Result};
use wowflow_core::objective::{class_batch, Objective};

/// DM towards `target`; source classes are matched to target classes by class id.
#[derive(Debug, Clone)]
pub struct DistributionMatching {
    target: LabeledCloud,
    target_batch: Option<usize>,
}

fn class_mean(cloud: &LabeledCloud, c: usize) -> Vec<f64> {
    let d = cloud.dim();
    let mut m = vec![0.0; d];
    for (r, row) in cloud
        .class_range(c)
        .zip(cloud.class_points(c).chunks_exact(d))
    {
        let w = cloud.particle_weight(c, r);
        m.iter_mut().zip(row).for_each(|(m, &x)| *m += w * x as f64);
    }
    m
}

impl DistributionMatching {
    /// DM towards the whole of `target` every step (see
    /// [`DistributionMatching::with_target_batch`]). Errors if `target` is not a valid
    /// labeled cloud; a source class whose id the target lacks is an error at evaluation.
    pub fn new(target: LabeledCloud) -> Result<Self> {
        target.validate()?;
        Ok(Self {
            target,
            target_batch: None,
        })
    }

    /// Compares with `batch` random target rows per class each step.
    pub fn with_target_batch(mut self, batch: Option<usize>) -> Result<Self> {
        self.target_batch = wowflow_core::objective::check_target_batch(batch)?;
        Ok(self)
    }
}

impl Objective for DistributionMatching {
    fn name(&self) -> String {
        "dm(linear)".into()
    }

    fn value_and_wow_grad(
        &mut self,
        cloud: &LabeledCloud,
        rng: &mut dyn RngCore,
        grad: &mut [f32],
    ) -> Result<f64> {
        wowflow_core::objective::check_inputs(cloud, Some(self.target.dim()), grad)?;
        let batch = match self.target_batch {
            Some(b) => class_batch(&self.target, b, rng)?,
            None => None,
        };
        dm_value_and_grad(cloud, batch.as_ref().unwrap_or(&self.target), grad)
    }
}

/// The DM value `F = Σ_c a_c ‖m_c − m'_c‖²` of `source` against `target` (classes matched by
/// id) and, written into `grad` (`N × d`, the source's row order), its WoW gradient
/// `2 (m_c − m'_c)` for every particle of class `c` (see the module docs).
///
/// Shared by [`DistributionMatching`] and by `wowflow_distill::feature_map::Featurized`, which calls
/// it on embedded clouds, so DM on raw features and DM in an embedding are one formula.
pub fn dm_value_and_grad(
    source: &LabeledCloud,
    target: &LabeledCloud,
    grad: &mut [f32],
) -> Result<f64> {
    wowflow_core::objective::check_inputs(source, Some(target.dim()), grad)?;
    let d = source.dim();
    let mut value = 0.0;
    for c in 0..source.n_classes() {
        let id = source.class_ids()[c];
        let k = target
            .class_ids()
            .iter()
            .position(|&t| t == id)
            .ok_or_else(|| {
                invalid(
                    "target",
                    format!("DM matches classes by id, and the target has no class {id}"),
                )
            })?;
        let (m, mt) = (class_mean(source, c), class_mean(target, k));
        let diff: Vec<f64> = m.iter().zip(&mt).map(|(a, b)| a - b).collect();
        value += source.class_weights()[c] * diff.iter().map(|v| v * v).sum::<f64>();
        for row in grad[source.offsets()[c] * d..source.offsets()[c + 1] * d].chunks_exact_mut(d) {
            row.iter_mut()
                .zip(&diff)
                .for_each(|(g, &v)| *g = (2.0 * v) as f32);
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wowflow_core::toy::{gaussian_noise, rings};
    use wowflow_core::{Flow, FlowConfig, FlowState, Method, Optimizer};

    #[test]
    fn half_step_matches_class_means_and_the_flow_decreases() {
        let target = rings(10, 0).unwrap();
        let mut obj = DistributionMatching::new(target.clone()).unwrap();
        let mut state = FlowState::new(gaussian_noise(3, 10, 2, 1.0, 1).unwrap());
        Flow {
            objective: &mut obj,
            optimizer: Optimizer::new(Method::Gd, 0.25).unwrap(),
            config: FlowConfig {
                steps: 3,
                seed: 0,
                clip: None,
                temperature: None,
            },
        }
        .run(&mut state, &mut [])
        .unwrap();
        assert!(
            state.losses.windows(2).all(|w| w[1] < w[0]),
            "{:?}",
            state.losses
        );
        // τ = ½ lands on the means in one step.
        let mut state = FlowState::new(gaussian_noise(3, 10, 2, 1.0, 1).unwrap());
        Flow {
            objective: &mut obj,
            optimizer: Optimizer::new(Method::Gd, 0.5).unwrap(),
            config: FlowConfig {
                steps: 2,
                seed: 0,
                clip: None,
                temperature: None,
            },
        }
        .run(&mut state, &mut [])
        .unwrap();
        assert!(state.losses[1] < 1e-10, "{:?}", state.losses);
    }
}

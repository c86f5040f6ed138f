//! Objectives: functionals `F(P)` of a labeled cloud with their WoW gradient.
//!
//! Every flow in wowflow — the paper's SW-MMD and the baselines — is an [`Objective`]; the
//! [`crate::flow::Flow`] loop does not know which one it runs.

use crate::cloud::LabeledCloud;
use crate::directions::DirectionSampler;
use crate::engine::{CpuEngine, Engine, SwMmdOutput};
use crate::error::{invalid, CoreError, Result};
use crate::kernel::Kernel;
use rand::seq::index::sample;
use rand::RngCore;
use std::sync::Arc;

/// A functional of a labeled cloud that can be flowed.
pub trait Objective: Send {
    /// A short name for logs (`sw-mmd`, …).
    fn name(&self) -> String;

    /// Evaluates `F` at `cloud` and writes its WoW gradient (row-major `N × d`, the cloud's
    /// row order) into `grad`. Randomness (directions, mini-batches) comes only from `rng`,
    /// so a seeded generator makes the step reproducible.
    fn value_and_wow_grad(
        &mut self,
        cloud: &LabeledCloud,
        rng: &mut dyn RngCore,
        grad: &mut [f32],
    ) -> Result<f64>;

    /// Called by [`crate::Flow`] once it has accepted the value and gradient of the last
    /// [`Objective::value_and_wow_grad`] (both finite), before the particles move.
    ///
    /// Most objectives are functions of the particles alone and have nothing to do. Those
    /// that move parameters of their own alongside the particles — the label Gaussians of
    /// the joint-driven OTDD dynamics — compute that move during the evaluation and commit
    /// it here, so a refused step leaves them where they were, in step with the particles.
    fn accept_step(&mut self) -> Result<()> {
        Ok(())
    }

    /// The objective's own moving parameters, flattened (`None`: it has none). The flow
    /// copies them into [`crate::FlowState::objective_state`] after every step, so
    /// checkpoints carry them and a resumed run continues bit-identically.
    fn state(&self) -> Option<Vec<f64>> {
        None
    }

    /// Restores parameters written by [`Objective::state`] (on resume).
    fn restore_state(&mut self, state: &[f64]) -> Result<()> {
        Err(invalid(
            "objective state",
            format!(
                "`{}` has no state of its own, but {} values were given to restore",
                self.name(),
                state.len()
            ),
        ))
    }
}

/// `F(P) = ½ MMD_K²(P, Q)` with a sliced-Wasserstein kernel `K` (docs/math.md §4–5), the
/// functional of Bonet, Vauthier & Korba (2025).
#[derive(Debug, Clone)]
pub struct SwMmd {
    target: LabeledCloud,
    kernel: Kernel,
    projections: usize,
    sampler: DirectionSampler,
    target_batch: Option<usize>,
    engine: Arc<dyn Engine>,
    last: Option<SwMmdOutput>,
}

impl SwMmd {
    /// SW-MMD towards `target` with `kernel` and `projections` Gaussian directions per step,
    /// on the CPU engine.
    pub fn new(target: LabeledCloud, kernel: Kernel, projections: usize) -> Result<Self> {
        kernel.validate()?;
        if projections == 0 {
            return Err(invalid(
                "projections",
                "need at least one direction (L ≥ 1)",
            ));
        }
        target.validate()?;
        Ok(Self {
            target,
            kernel,
            projections,
            sampler: DirectionSampler::Gaussian,
            target_batch: None,
            engine: Arc::new(CpuEngine::new()),
            last: None,
        })
    }

    /// How directions are drawn (fixed directions set `L` to their count).
    pub fn with_directions(mut self, sampler: DirectionSampler) -> Result<Self> {
        if let Some(l) = sampler.fixed_count() {
            self.projections = l;
        }
        sampler.check_dim(self.target.dim())?;
        self.sampler = sampler;
        Ok(self)
    }

    /// Compares with a fresh random subset of `batch` particles per target class each step
    /// (the stochastic variant used for transfer learning and distillation). Classes with at
    /// most `batch` particles are used whole.
    pub fn with_target_batch(mut self, batch: Option<usize>) -> Result<Self> {
        self.target_batch = check_target_batch(batch)?;
        Ok(self)
    }

    /// Runs on another engine (e.g. CUDA).
    pub fn with_engine(mut self, engine: Arc<dyn Engine>) -> Self {
        self.engine = engine;
        self
    }

    /// The target dataset.
    pub fn target(&self) -> &LabeledCloud {
        &self.target
    }
    /// The kernel.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }
    /// Costs and value of the last evaluation (for inspection and label assignment).
    pub fn last_output(&self) -> Option<&SwMmdOutput> {
        self.last.as_ref()
    }
}

/// A per-class target mini-batch size: `None` (the whole target) or at least 1.
pub fn check_target_batch(batch: Option<usize>) -> Result<Option<usize>> {
    if batch == Some(0) {
        return Err(invalid("target batch", "must be at least 1"));
    }
    Ok(batch)
}

/// The checks every objective makes before evaluating: the gradient buffer matches the
/// cloud, and (when the objective has a target) both live in the same dimension.
pub fn check_inputs(cloud: &LabeledCloud, target_dim: Option<usize>, grad: &[f32]) -> Result<()> {
    if let Some(expected) = target_dim {
        if cloud.dim() != expected {
            return Err(CoreError::DimensionMismatch {
                what: "source".into(),
                expected,
                got: cloud.dim(),
            });
        }
    }
    if grad.len() != cloud.points().len() {
        return Err(crate::error::shape(
            "gradient buffer",
            cloud.points().len(),
            grad.len(),
        ));
    }
    Ok(())
}

/// Draws `batch` rows (without replacement) of every class of `cloud`, or returns `None`
/// when every class is already that small.
pub fn class_batch(
    cloud: &LabeledCloud,
    batch: usize,
    rng: &mut dyn RngCore,
) -> Result<Option<LabeledCloud>> {
    if (0..cloud.n_classes()).all(|c| cloud.class_len(c) <= batch) {
        return Ok(None);
    }
    let rows: Vec<Vec<usize>> = (0..cloud.n_classes())
        .map(|c| {
            let n = cloud.class_len(c);
            if n <= batch {
                (0..n).collect()
            } else {
                sample(rng, n, batch).into_vec()
            }
        })
        .collect();
    cloud.select(&rows).map(Some)
}

impl Objective for SwMmd {
    fn name(&self) -> String {
        format!("sw-mmd({})", self.kernel.name())
    }

    fn value_and_wow_grad(
        &mut self,
        cloud: &LabeledCloud,
        rng: &mut dyn RngCore,
        grad: &mut [f32],
    ) -> Result<f64> {
        let dirs = self.sampler.sample(self.projections, cloud.dim(), rng)?;
        let batch = match self.target_batch {
            Some(b) => class_batch(&self.target, b, rng)?,
            None => None,
        };
        let target = batch.as_ref().unwrap_or(&self.target);
        let out = self
            .engine
            .sw_mmd(cloud, target, &dirs, &self.kernel, grad)?;
        let value = out.value;
        self.last = Some(out);
        Ok(value)
    }
}

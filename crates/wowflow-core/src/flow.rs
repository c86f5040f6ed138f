//! The flow loop: an [`Objective`] and an [`Optimizer`] run for `K` steps, with observers.
//!
//! Reproducibility is by construction: step `k` draws all its randomness from a ChaCha8
//! stream keyed by `(seed, k)`, so the randomness of a step does not depend on how many
//! steps ran before it in this process. A run resumed from a checkpoint of step `k`
//! therefore continues bit-identically to an uninterrupted one.

use crate::cloud::LabeledCloud;
use crate::error::{CoreError, Result};
use crate::objective::Objective;
use crate::optim::{Optimizer, OptimizerState};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Everything needed to continue a flow: what a checkpoint stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowState {
    /// The moving dataset.
    pub cloud: LabeledCloud,
    /// Steps completed.
    pub step: usize,
    /// Optimiser velocities / moments.
    pub optimizer: OptimizerState,
    /// `F` before each completed step.
    pub losses: Vec<f64>,
    /// Root-mean-square of the WoW gradient at each completed step.
    pub grad_norms: Vec<f64>,
    /// The objective's own moving parameters after the last step ([`Objective::state`]),
    /// e.g. the label Gaussians of the joint-driven OTDD dynamics; `None` for objectives
    /// that are functions of the particles alone. A run starting from a state that has
    /// them restores them into its objective first.
    #[serde(default)]
    pub objective_state: Option<Vec<f64>>,
}

impl FlowState {
    /// A fresh state at step 0.
    pub fn new(cloud: LabeledCloud) -> Self {
        Self {
            cloud,
            step: 0,
            optimizer: OptimizerState::default(),
            losses: Vec::new(),
            grad_norms: Vec::new(),
            objective_state: None,
        }
    }
}

/// What an observer sees after each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepInfo {
    /// Index of the step just taken (0-based); `state.step == step + 1` afterwards.
    pub step: usize,
    /// Total steps of this run.
    pub total: usize,
    /// `F` at the start of the step.
    pub loss: f64,
    /// RMS of the WoW gradient.
    pub grad_norm: f64,
    /// Wall time of the step, seconds.
    pub seconds: f64,
}

/// An observer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Stop after this step (the state is consistent and can be checkpointed).
    Stop,
}

/// Receives every step: progress bars, snapshot recorders, checkpoint writers.
pub trait Observer {
    /// Called after step `info.step` was applied to `state`.
    fn on_step(&mut self, info: &StepInfo, state: &FlowState) -> Result<Control>;
}

/// Records the particles every `every` steps (and at step 0 and the end).
#[derive(Debug, Clone, Default)]
pub struct SnapshotRecorder {
    pub every: usize,
    /// `(step, points)`, `step` = number of steps applied when recorded.
    pub snapshots: Vec<(usize, Vec<f32>)>,
}

impl SnapshotRecorder {
    pub fn new(every: usize) -> Self {
        Self {
            every: every.max(1),
            snapshots: Vec::new(),
        }
    }
    /// Records the initial state (call before running).
    pub fn record(&mut self, state: &FlowState) {
        if self.snapshots.last().map(|s| s.0) != Some(state.step) {
            self.snapshots
                .push((state.step, state.cloud.points().to_vec()));
        }
    }
}

impl Observer for SnapshotRecorder {
    fn on_step(&mut self, info: &StepInfo, state: &FlowState) -> Result<Control> {
        if state.step.is_multiple_of(self.every) || info.step + 1 == info.total {
            self.record(state);
        }
        Ok(Control::Continue)
    }
}

/// Flow settings that are not the objective or the optimiser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowConfig {
    /// Total number of steps (a resumed run continues up to this count).
    pub steps: usize,
    /// Seed of all randomness.
    pub seed: u64,
    /// Keep particles inside `[lo, hi]` after every step (e.g. `[0, 1]` for images).
    pub clip: Option<(f32, f32)>,
}

/// An SW-MMD flow with Gaussian directions, described by plain values, for runners that own
/// the whole loop: the CUDA crate's `DeviceFlow` keeps particles, target and optimiser state
/// on a GPU. On the host the same scheme is an [`crate::SwMmd`] objective in a [`Flow`].
#[derive(Debug, Clone, PartialEq)]
pub struct SwMmdFlowSettings {
    /// Kernel on the sliced distances between classes.
    pub kernel: crate::kernel::Kernel,
    /// Directions `L` per step (Gaussian, redrawn every step).
    pub projections: usize,
    /// Target particles per class per step (`None`: the whole target).
    pub target_batch: Option<usize>,
    /// Update rule, step size and schedule.
    pub optimizer: Optimizer,
    /// Seed of all randomness.
    pub seed: u64,
    /// Keep particles inside `[lo, hi]` after every step.
    pub clip: Option<(f32, f32)>,
}

/// The random stream of step `step` under `seed`.
pub fn step_rng(seed: u64, step: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step as u64);
    rng
}

/// Runs the explicit scheme.
pub struct Flow<'a> {
    pub objective: &'a mut dyn Objective,
    pub optimizer: Optimizer,
    pub config: FlowConfig,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All `config.steps` steps done.
    Finished,
    /// An observer asked to stop.
    Stopped,
}

impl Flow<'_> {
    /// Continues `state` up to `config.steps` steps.
    ///
    /// On a non-finite loss or gradient it returns [`CoreError::Diverged`] and leaves
    /// `state` at the last good step (the bad update is never applied).
    pub fn run(
        &mut self,
        state: &mut FlowState,
        observers: &mut [&mut dyn Observer],
    ) -> Result<Outcome> {
        let mut grad = vec![0.0f32; state.cloud.points().len()];
        if let Some(saved) = &state.objective_state {
            self.objective.restore_state(saved)?;
        }
        while state.step < self.config.steps {
            let started = Instant::now();
            let step = state.step;
            let mut rng = step_rng(self.config.seed, step);
            let loss = self
                .objective
                .value_and_wow_grad(&state.cloud, &mut rng, &mut grad)?;
            let diverged = |reason: String| CoreError::Diverged {
                step,
                last_good_step: step,
                reason,
            };
            if !loss.is_finite() {
                return Err(diverged(format!("the objective is {loss}")));
            }
            if let Some(i) = grad.iter().position(|g| !g.is_finite()) {
                let d = state.cloud.dim();
                return Err(diverged(format!(
                    "the gradient of particle {} (feature {}) is {}",
                    i / d,
                    i % d,
                    grad[i]
                )));
            }
            let sq: f64 = grad.iter().map(|&g| g as f64 * g as f64).sum();
            let grad_norm = (sq / grad.len().max(1) as f64).sqrt();
            self.objective.accept_step()?;
            self.optimizer
                .step(state.cloud.points_mut(), &grad, &mut state.optimizer)?;
            if let Some((lo, hi)) = self.config.clip {
                state
                    .cloud
                    .points_mut()
                    .iter_mut()
                    .for_each(|x| *x = x.clamp(lo, hi));
            }
            state.step += 1;
            state.objective_state = self.objective.state();
            state.losses.push(loss);
            state.grad_norms.push(grad_norm);
            let info = StepInfo {
                step,
                total: self.config.steps,
                loss,
                grad_norm,
                seconds: started.elapsed().as_secs_f64(),
            };
            let mut stop = false;
            for obs in observers.iter_mut() {
                stop |= obs.on_step(&info, state)? == Control::Stop;
            }
            if stop {
                return Ok(Outcome::Stopped);
            }
        }
        Ok(Outcome::Finished)
    }
}

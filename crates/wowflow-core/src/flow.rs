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
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
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
    /// Go on with the next step.
    Continue,
    /// Stop after this step (the state is consistent and can be checkpointed).
    Stop,
}

/// Receives every step: progress bars, snapshot recorders, checkpoint writers.
pub trait Observer {
    /// Called after step `info.step` was applied to `state`.
    fn on_step(&mut self, info: &StepInfo, state: &FlowState) -> Result<Control>;

    /// Whether [`Observer::on_step`] reads `state.cloud` after `steps_done` of `total` steps.
    ///
    /// Why: a [`Stepper`] that keeps the particles elsewhere (a GPU) copies them to
    /// `state.cloud` only when some observer will read them. The step count, losses and
    /// gradient norms are always current. The default, `true`, is always correct.
    fn needs_state(&self, steps_done: usize, total: usize) -> bool {
        let _ = (steps_done, total);
        true
    }
}

/// Records the particles every `every` steps (and at step 0 and the end).
#[derive(Debug, Clone, Default)]
pub struct SnapshotRecorder {
    /// Record when the number of steps applied is a multiple of `every`
    /// ([`SnapshotRecorder::new`] makes it ≥ 1; with the `Default` of `0`,
    /// [`Observer::on_step`] records only the final state).
    pub every: usize,
    /// `(step, points)`, `step` = number of steps applied when recorded.
    pub snapshots: Vec<(usize, Vec<f32>)>,
}

impl SnapshotRecorder {
    /// A recorder with no snapshots yet, recording every `every` steps (`0` is read as `1`).
    /// Call [`SnapshotRecorder::record`] before the run to keep the initial state too.
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
        if self.needs_state(state.step, info.total) {
            self.record(state);
        }
        Ok(Control::Continue)
    }

    fn needs_state(&self, steps_done: usize, total: usize) -> bool {
        steps_done.is_multiple_of(self.every) || steps_done == total
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
    /// Temperature `T ≥ 0` of Langevin noise: adds the entropy `T ∫ ρ log ρ` to the
    /// functional through its particle scheme, the Euler–Maruyama step
    /// `x ← x − τ ∇F + √(2τT) ξ` with `ξ` standard normal (the shaping functional of
    /// Alvarez-Melis & Fusi 2021, §5). The noise is added after the optimiser's update with
    /// that update's step size τ (exact for plain gradient descent) and drawn from a stream of
    /// its own, so the objective's randomness is the same with and without it. `None`: no
    /// noise.
    #[serde(default)]
    pub temperature: Option<f64>,
}

impl FlowConfig {
    /// `steps` steps under `seed`, no clipping, no Langevin noise (set the public fields
    /// for those).
    pub fn new(steps: usize, seed: u64) -> Self {
        Self {
            steps,
            seed,
            clip: None,
            temperature: None,
        }
    }
}

/// An SW-MMD flow described by plain values, for runners that own the whole loop: the CUDA
/// crate's `DeviceFlow` keeps particles, target and optimiser state on a GPU (Gaussian
/// directions only). On the host the same scheme is an [`crate::SwMmd`] objective in a
/// [`Flow`].
#[derive(Debug, Clone, PartialEq)]
pub struct SwMmdFlowSettings {
    /// Kernel on the sliced distances between classes.
    pub kernel: crate::kernel::Kernel,
    /// Directions `L` per step, redrawn every step.
    pub projections: usize,
    /// How the directions are drawn ([`DirectionSampler::Gaussian`] on the GPU).
    pub sampler: crate::DirectionSampler,
    /// Target particles per class per step (`None`: the whole target).
    pub target_batch: Option<usize>,
    /// Update rule, step size and schedule.
    pub optimizer: Optimizer,
    /// Seed of all randomness.
    pub seed: u64,
    /// Keep particles inside `[lo, hi]` after every step.
    pub clip: Option<(f32, f32)>,
}

/// The Langevin noise of step `step` under `seed`: a key of its own, so that adding noise
/// leaves the objective's draws ([`step_rng`]) unchanged.
fn noise_rng(seed: u64, step: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4c41_4e47_4556_494e); // "LANGEVIN"
    rng.set_stream(step as u64);
    rng
}

impl SwMmdFlowSettings {
    /// The same flow on the host: the [`SwMmd`](crate::SwMmd) objective (the default CPU
    /// engine).
    pub fn host_objective(&self, target: LabeledCloud) -> Result<crate::SwMmd> {
        crate::SwMmd::new(target, self.kernel, self.projections)?
            .with_directions(self.sampler.clone())?
            .with_target_batch(self.target_batch)
    }

    /// The host flow's settings for `steps` steps (no Langevin noise: the device flow has
    /// none).
    pub fn flow_config(&self, steps: usize) -> FlowConfig {
        FlowConfig {
            steps,
            seed: self.seed,
            clip: self.clip,
            temperature: None,
        }
    }
}

/// The random stream of step `step` under `seed`.
pub fn step_rng(seed: u64, step: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step as u64);
    rng
}

/// What one step reports to the runner.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutput {
    /// `F` at the start of the step.
    pub loss: f64,
    /// Root-mean-square of the WoW gradient the step used.
    pub grad_norm: f64,
}

/// One step of a flow, wherever its particles live: the host [`Flow`] (an [`Objective`] and
/// an [`Optimizer`]), or a runner that keeps particles, target and optimiser state on a GPU
/// (`wowflow-cuda`'s `DeviceFlow`). [`drive`] is the one loop around every stepper.
pub trait Stepper {
    /// Prepares a run that continues `state` (e.g. restores an objective's moving
    /// parameters from [`FlowState::objective_state`]).
    fn begin(&mut self, state: &mut FlowState) -> Result<()> {
        let _ = state;
        Ok(())
    }

    /// Takes step `state.step`: applies the update to the particles and to what `state`
    /// holds of the stepper (optimiser moments, [`FlowState::objective_state`]), and returns
    /// the loss before the step and the gradient's RMS. It does not advance `state.step` or
    /// record the loss: [`drive`] does.
    ///
    /// On a non-finite loss or gradient it returns [`CoreError::Diverged`] without applying
    /// the update, so the particles are those of the last good step.
    fn step(&mut self, state: &mut FlowState) -> Result<StepOutput>;

    /// Makes `state.cloud` hold the current particles (a device stepper copies them to the
    /// host; the host stepper has nothing to do).
    fn sync(&mut self, state: &mut FlowState) -> Result<()> {
        let _ = state;
        Ok(())
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All `config.steps` steps done.
    Finished,
    /// An observer asked to stop.
    Stopped,
}

/// The flow loop, once for every [`Stepper`]: continues `state` up to `total` steps, records
/// each step's loss and gradient norm, shows each step to the observers (after syncing the
/// particles when one of them reads them), and stops when one asks.
///
/// On an error from the stepper (divergence, a backend failure) `state` is synced to the
/// last good step before the error returns, so it can be checkpointed.
pub fn drive(
    stepper: &mut dyn Stepper,
    state: &mut FlowState,
    total: usize,
    observers: &mut [&mut dyn Observer],
) -> Result<Outcome> {
    stepper.begin(state)?;
    while state.step < total {
        let started = Instant::now();
        let step = state.step;
        let out = match stepper.step(state) {
            Ok(out) => out,
            Err(e) => {
                stepper.sync(state)?;
                return Err(e);
            }
        };
        state.step += 1;
        state.losses.push(out.loss);
        state.grad_norms.push(out.grad_norm);
        if observers.iter().any(|o| o.needs_state(state.step, total)) {
            stepper.sync(state)?;
        }
        let info = StepInfo {
            step,
            total,
            loss: out.loss,
            grad_norm: out.grad_norm,
            seconds: started.elapsed().as_secs_f64(),
        };
        let mut stop = false;
        for obs in observers.iter_mut() {
            stop |= obs.on_step(&info, state)? == Control::Stop;
        }
        if stop {
            stepper.sync(state)?;
            return Ok(Outcome::Stopped);
        }
    }
    stepper.sync(state)?;
    Ok(Outcome::Finished)
}

/// The explicit scheme on the host: an [`Objective`]'s WoW gradient, an [`Optimizer`]'s
/// update, optional clipping.
pub struct Flow<'a> {
    /// What is minimised.
    pub objective: &'a mut dyn Objective,
    /// How the particles move along the gradient.
    pub optimizer: Optimizer,
    /// Steps, seed, clipping.
    pub config: FlowConfig,
}

impl Flow<'_> {
    /// Continues `state` up to `config.steps` steps ([`drive`] with this flow as stepper).
    ///
    /// On a non-finite loss or gradient it returns [`CoreError::Diverged`] and leaves
    /// `state` at the last good step (the bad update is never applied).
    pub fn run(
        &mut self,
        state: &mut FlowState,
        observers: &mut [&mut dyn Observer],
    ) -> Result<Outcome> {
        let total = self.config.steps;
        let mut stepper = HostStepper {
            grad: vec![0.0f32; state.cloud.points().len()],
            flow: self,
        };
        drive(&mut stepper, state, total, observers)
    }
}

/// A [`Flow`] with its gradient buffer, allocated once per run (a DA-size gradient is
/// 31 MB: zeroing it every step would cost as much as a sort).
struct HostStepper<'f, 'a> {
    flow: &'f mut Flow<'a>,
    grad: Vec<f32>,
}

impl Stepper for HostStepper<'_, '_> {
    fn begin(&mut self, state: &mut FlowState) -> Result<()> {
        if let Some(t) = self.flow.config.temperature {
            if !(t.is_finite() && t >= 0.0) {
                return Err(crate::error::invalid(
                    "temperature",
                    format!("the Langevin temperature must be finite and ≥ 0, got {t}"),
                ));
            }
        }
        if let Some(saved) = &state.objective_state {
            self.flow.objective.restore_state(saved)?;
        }
        Ok(())
    }

    fn step(&mut self, state: &mut FlowState) -> Result<StepOutput> {
        let step = state.step;
        let grad = &mut self.grad;
        let flow = &mut *self.flow;
        let mut rng = step_rng(flow.config.seed, step);
        let loss = flow
            .objective
            .value_and_wow_grad(&state.cloud, &mut rng, grad)?;
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
        flow.objective.accept_step()?;
        let tau = flow.optimizer.lr_at(state.optimizer.t);
        flow.optimizer
            .step(state.cloud.points_mut(), grad, &mut state.optimizer)?;
        if let Some(t) = flow.config.temperature.filter(|&t| t > 0.0) {
            let scale = (2.0 * tau * t).sqrt();
            let mut rng = noise_rng(flow.config.seed, step);
            for x in state.cloud.points_mut() {
                let z: f64 = rng.sample(StandardNormal);
                *x += (scale * z) as f32;
            }
        }
        if let Some((lo, hi)) = flow.config.clip {
            state
                .cloud
                .points_mut()
                .iter_mut()
                .for_each(|x| *x = x.clamp(lo, hi));
        }
        state.objective_state = flow.objective.state();
        Ok(StepOutput { loss, grad_norm })
    }
}

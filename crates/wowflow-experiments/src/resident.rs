//! The device-resident flow: `--device cuda` for SW-MMD with Gaussian directions keeps
//! particles, target, directions and optimiser state on the GPU
//! (`wowflow_cuda::DeviceFlow`) instead of sending both clouds over PCIe every step (the
//! `Engine` path, which other objectives and direction samplers still use).

use crate::bench::{BenchConfig, BenchResult};
use crate::device::DeviceArgs;
use anyhow::Result;
use wowflow_core::{FlowState, LabeledCloud, Observer, Outcome, SwMmdFlowSettings};

/// Per-stage milliseconds of one step (median over a few profiled steps).
pub type Profile = Vec<(&'static str, f64)>;

/// An SW-MMD flow ready to run where `--device` says: the one place that chooses between
/// the device-resident flow (particles, target and optimiser state on the GPU) and the same
/// flow on the host ([`SwMmdFlowSettings::host_objective`] in a core `Flow`). Both run
/// through the one flow loop, `wowflow_core::drive`.
pub enum SwMmdRunner {
    /// On the GPU.
    Device(Box<Resident>),
    /// On the host.
    Host {
        /// The SW-MMD objective towards the target.
        objective: Box<wowflow_core::SwMmd>,
        /// The flow's settings (optimiser, seed, clipping).
        settings: Box<SwMmdFlowSettings>,
    },
}

impl SwMmdRunner {
    /// Prepares the flow from `state` towards `target` (uploads both for the GPU, which
    /// fails here, before any step, when no usable GPU or CUDA support is there).
    pub fn start(
        settings: &SwMmdFlowSettings,
        gpu: DeviceArgs,
        state: &FlowState,
        target: &LabeledCloud,
    ) -> Result<Self> {
        Ok(if gpu.is_cuda() {
            SwMmdRunner::Device(Box::new(Resident::start(
                state, target, settings, gpu.tf32,
            )?))
        } else {
            SwMmdRunner::Host {
                objective: Box::new(settings.host_objective(target.clone())?),
                settings: Box::new(settings.clone()),
            }
        })
    }

    /// Continues `state` up to `steps` steps.
    pub fn run(
        &mut self,
        state: &mut FlowState,
        steps: usize,
        observers: &mut [&mut dyn Observer],
    ) -> Result<Outcome> {
        match self {
            SwMmdRunner::Device(flow) => flow.run(state, steps, observers),
            SwMmdRunner::Host {
                objective,
                settings,
            } => Ok(wowflow_core::Flow {
                objective: objective.as_mut(),
                optimizer: settings.optimizer.clone(),
                config: settings.flow_config(steps),
            }
            .run(state, observers)?),
        }
    }
}

/// Continues `state` up to `steps` steps of an SW-MMD flow ([`SwMmdRunner`]).
pub fn run_sw_mmd(
    settings: &SwMmdFlowSettings,
    gpu: DeviceArgs,
    state: &mut FlowState,
    target: &LabeledCloud,
    steps: usize,
    observers: &mut [&mut dyn Observer],
) -> Result<Outcome> {
    SwMmdRunner::start(settings, gpu, state, target)?.run(state, steps, observers)
}

/// Runs `steps` steps of an SW-MMD flow from `start` with a progress bar
/// ([`run_sw_mmd`]); the final state, or an error naming the step when interrupted.
pub fn flow_to_end(
    start: LabeledCloud,
    target: &LabeledCloud,
    settings: &SwMmdFlowSettings,
    gpu: DeviceArgs,
    steps: usize,
    segments: Option<&crate::checkpoint::FlowSegments>,
) -> Result<FlowState> {
    let mut state = crate::checkpoint::FlowSegments::resume_or_start(segments, start)?;
    crate::run_observed(steps, segments, &mut state, |state, observers| {
        run_sw_mmd(settings, gpu, state, target, steps, observers)
    })?;
    Ok(state)
}

#[cfg(feature = "cuda")]
mod imp {
    use super::*;
    use anyhow::Context;
    use std::time::Instant;
    use wowflow_core::{Kernel, Method, Optimizer};
    use wowflow_cuda::DeviceFlow;

    fn create(
        state: &FlowState,
        target: &LabeledCloud,
        settings: &SwMmdFlowSettings,
        tf32: bool,
    ) -> Result<DeviceFlow> {
        let mut flow =
            DeviceFlow::new(state, target, settings.clone(), 0).context("--device cuda")?;
        flow.set_tf32(tf32)?;
        Ok(flow)
    }

    pub type Flow = DeviceFlow;

    pub fn start(
        state: &FlowState,
        target: &LabeledCloud,
        settings: &SwMmdFlowSettings,
        tf32: bool,
    ) -> Result<Flow> {
        let flow = create(state, target, settings, tf32)?;
        eprintln!("device: {} (resident flow)", flow.device());
        Ok(flow)
    }

    pub fn run(
        flow: &mut Flow,
        state: &mut FlowState,
        steps: usize,
        observers: &mut [&mut dyn Observer],
    ) -> Result<Outcome> {
        Ok(wowflow_core::drive(flow, state, steps, observers)?)
    }

    pub fn bench(config: &BenchConfig, reps: usize, tf32: bool) -> Result<(BenchResult, Profile)> {
        let (source, target) = crate::bench::workload(config)?;
        let settings = SwMmdFlowSettings {
            kernel: Kernel::RIESZ,
            projections: config.projections,
            sampler: wowflow_core::DirectionSampler::Gaussian,
            target_batch: config.target_batch,
            // The paper's heavy ball at a step small enough that the particles stay in
            // place over a benchmark's few hundred steps.
            optimizer: Optimizer::new(Method::Momentum { m: 0.9 }, 1e-3)?,
            seed: 3,
            clip: None,
        };
        let state = FlowState::new(source);
        let mut flow = create(&state, &target, &settings, tf32)?;
        for _ in 0..3 {
            flow.step()?;
        }
        let mut times_ms = Vec::with_capacity(reps);
        for _ in 0..reps.max(1) {
            let start = Instant::now();
            flow.step()?; // returns after the device finished the step
            times_ms.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let mut runs: Vec<Profile> = Vec::new();
        for _ in 0..5 {
            runs.push(flow.step_profiled()?.1);
        }
        let profile = runs[0]
            .iter()
            .enumerate()
            .map(|(i, &(stage, _))| {
                let mut t: Vec<f64> = runs.iter().map(|r| r[i].1).collect();
                t.sort_by(f64::total_cmp);
                (stage, t[t.len() / 2])
            })
            .collect();
        Ok((
            BenchResult {
                config: *config,
                directions: "gaussian",
                engine: if tf32 {
                    "cuda-resident-tf32"
                } else {
                    "cuda-resident"
                }
                .into(),
                times_ms,
            },
            profile,
        ))
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use super::*;

    /// Never constructed: without the `cuda` feature `start` always fails.
    pub enum Flow {}

    pub fn start(
        _state: &FlowState,
        _target: &LabeledCloud,
        _settings: &SwMmdFlowSettings,
        _tf32: bool,
    ) -> Result<Flow> {
        Err(crate::device::no_cuda())
    }

    pub fn run(
        flow: &mut Flow,
        _state: &mut FlowState,
        _steps: usize,
        _observers: &mut [&mut dyn Observer],
    ) -> Result<Outcome> {
        match *flow {}
    }

    pub fn bench(
        _config: &BenchConfig,
        _reps: usize,
        _tf32: bool,
    ) -> Result<(BenchResult, Profile)> {
        Err(crate::device::no_cuda())
    }
}

/// A flow whose state lives on the GPU.
pub struct Resident(imp::Flow);

impl Resident {
    /// Uploads `state` and `target` (errors without a usable GPU or CUDA support); `tf32`
    /// lets the GEMMs use TF32 tensor cores.
    pub fn start(
        state: &FlowState,
        target: &LabeledCloud,
        settings: &SwMmdFlowSettings,
        tf32: bool,
    ) -> Result<Self> {
        imp::start(state, target, settings, tf32).map(Resident)
    }

    /// Continues `state` up to `steps` steps through the one flow loop
    /// ([`wowflow_core::drive`]). The host copy of the particles is refreshed when an
    /// observer reads it, at a stop and at the end; on divergence it holds the last good
    /// step.
    pub fn run(
        &mut self,
        state: &mut FlowState,
        steps: usize,
        observers: &mut [&mut dyn Observer],
    ) -> Result<Outcome> {
        imp::run(&mut self.0, state, steps, observers)
    }
}

/// Times `reps` resident steps of a benchmark workload (optimiser update included), and
/// where one step's time goes.
pub fn bench(config: &BenchConfig, reps: usize, tf32: bool) -> Result<(BenchResult, Profile)> {
    imp::bench(config, reps, tf32)
}

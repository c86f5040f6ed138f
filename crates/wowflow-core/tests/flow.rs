//! The flow loop: it descends, it resumes bit-identically, it stops cleanly on divergence.

use rand::RngCore;
use wowflow_core::toy::{gaussian_noise, rings};
use wowflow_core::{
    Control, CoreError, Flow, FlowConfig, FlowState, Kernel, LabeledCloud, Method, Objective,
    Observer, Optimizer, Outcome, StepInfo, SwMmd,
};

fn rings_flow(steps: usize) -> (SwMmd, Optimizer, FlowConfig, FlowState) {
    let target = rings(80, 0).unwrap();
    let source = gaussian_noise(3, 80, 2, 1.0, 1).unwrap();
    let objective = SwMmd::new(target, Kernel::RIESZ, 200).unwrap();
    let optimizer = Optimizer::new(Method::Momentum { m: 0.9 }, 0.1).unwrap();
    let config = FlowConfig {
        steps,
        seed: 42,
        clip: None,
        temperature: None,
    };
    (objective, optimizer, config, FlowState::new(source))
}

#[test]
fn rings_flow_lowers_the_objective_by_two_orders_of_magnitude() {
    let (mut obj, optimizer, config, mut state) = rings_flow(300);
    let mut flow = Flow {
        objective: &mut obj,
        optimizer,
        config,
    };
    assert_eq!(flow.run(&mut state, &mut []).unwrap(), Outcome::Finished);
    let first = state.losses[0];
    let last: f64 = state.losses[290..].iter().sum::<f64>() / 10.0;
    assert!(first > 0.0);
    assert!(
        last < first / 100.0,
        "F went from {first:e} to {last:e} (want a factor ≥ 100)"
    );
}

struct StopAt(usize);
impl Observer for StopAt {
    fn on_step(&mut self, info: &StepInfo, _: &FlowState) -> wowflow_core::Result<Control> {
        Ok(if info.step + 1 == self.0 {
            Control::Stop
        } else {
            Control::Continue
        })
    }
}

#[test]
fn resumed_run_is_bit_identical() {
    let (mut obj, optimizer, config, mut whole) = rings_flow(40);
    let mut flow = Flow {
        objective: &mut obj,
        optimizer: optimizer.clone(),
        config: config.clone(),
    };
    flow.run(&mut whole, &mut []).unwrap();

    // Interrupted at step 17, serialised (as a checkpoint would), restored into fresh objects.
    let (mut obj2, _, _, mut part) = rings_flow(40);
    let mut flow2 = Flow {
        objective: &mut obj2,
        optimizer: optimizer.clone(),
        config: config.clone(),
    };
    assert_eq!(
        flow2.run(&mut part, &mut [&mut StopAt(17)]).unwrap(),
        Outcome::Stopped
    );
    assert_eq!(part.step, 17);
    let saved = serde_json::to_string(&part).unwrap();
    let mut restored: FlowState = serde_json::from_str(&saved).unwrap();
    let (mut obj3, _, _, _) = rings_flow(40);
    let mut flow3 = Flow {
        objective: &mut obj3,
        optimizer,
        config,
    };
    flow3.run(&mut restored, &mut []).unwrap();

    let bits = |s: &FlowState| {
        s.cloud
            .points()
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&whole), bits(&restored));
    assert_eq!(whole.losses, restored.losses);
    assert_eq!(whole.optimizer, restored.optimizer);
}

/// An objective that returns NaN at a given step.
struct Poisoned {
    inner: SwMmd,
    calls: usize,
    at: usize,
}
impl Objective for Poisoned {
    fn name(&self) -> String {
        "poisoned".into()
    }
    fn value_and_wow_grad(
        &mut self,
        c: &LabeledCloud,
        rng: &mut dyn RngCore,
        g: &mut [f32],
    ) -> wowflow_core::Result<f64> {
        let v = self.inner.value_and_wow_grad(c, rng, g)?;
        self.calls += 1;
        if self.calls == self.at {
            g[5] = f32::NAN;
        }
        Ok(v)
    }
}

#[test]
fn divergence_stops_with_the_last_good_state() {
    let (inner, optimizer, config, mut state) = rings_flow(20);
    let mut obj = Poisoned {
        inner,
        calls: 0,
        at: 8,
    };
    let mut flow = Flow {
        objective: &mut obj,
        optimizer,
        config,
    };
    let err = flow.run(&mut state, &mut []).unwrap_err();
    assert!(
        err.to_string().contains("particle 2 (feature 1) is NaN"),
        "{err}"
    );
    match err {
        CoreError::Diverged {
            step,
            last_good_step,
            ..
        } => assert_eq!((step, last_good_step), (7, 7)),
        other => panic!("expected divergence, got {other}"),
    }
    assert_eq!(state.step, 7);
    assert!(state.cloud.points().iter().all(|v| v.is_finite()));
    assert_eq!(state.losses.len(), 7);
}

#[test]
fn overflowing_projections_are_a_divergence_not_a_silent_zero() {
    // Target features at f32::MAX: projections overflow to ±∞ and the sliced costs are NaN.
    // The kernels must not read NaN as 0 (f64::max would), or F would look finite and the
    // gradient would ignore the target.
    let (mut obj, optimizer, config, mut state) = rings_flow(5);
    let mut target = obj.target().clone();
    target.points_mut().iter_mut().for_each(|v| *v = f32::MAX);
    obj = SwMmd::new(target, Kernel::RIESZ, 50).unwrap();
    let start = state.cloud.clone();
    let mut flow = Flow {
        objective: &mut obj,
        optimizer,
        config,
    };
    match flow.run(&mut state, &mut []).unwrap_err() {
        CoreError::Diverged {
            step,
            last_good_step,
            ..
        } => assert_eq!((step, last_good_step), (0, 0)),
        other => panic!("expected divergence, got {other}"),
    }
    assert_eq!(state.cloud, start);
    for k in [
        Kernel::RIESZ,
        Kernel::Gaussian { h: 1.0 },
        Kernel::Imq { h: 1.0 },
        Kernel::Laplace { h: 1.0 },
    ] {
        assert!(
            k.value(f64::NAN).is_nan() && k.derivative(f64::NAN).is_nan(),
            "{k:?}"
        );
        assert_eq!(k.value(-1e-12), k.value(0.0), "{k:?}");
    }
}

#[test]
fn clip_keeps_particles_in_the_box() {
    let (mut obj, optimizer, mut config, mut state) = rings_flow(5);
    config.clip = Some((-0.25, 0.25));
    let mut flow = Flow {
        objective: &mut obj,
        optimizer,
        config,
    };
    flow.run(&mut state, &mut []).unwrap();
    assert!(state
        .cloud
        .points()
        .iter()
        .all(|&v| (-0.25..=0.25).contains(&v)));
}

/// `F = 0`: the flow of pure noise, to see the integrator's Langevin term alone.
struct Zero;

impl wowflow_core::Objective for Zero {
    fn name(&self) -> String {
        "zero".into()
    }
    fn value_and_wow_grad(
        &mut self,
        _cloud: &wowflow_core::LabeledCloud,
        _rng: &mut dyn rand::RngCore,
        grad: &mut [f32],
    ) -> wowflow_core::Result<f64> {
        grad.iter_mut().for_each(|g| *g = 0.0);
        Ok(0.0)
    }
}

#[test]
fn langevin_noise_has_the_euler_maruyama_variance_and_its_own_stream() {
    let start = wowflow_core::toy::gaussian_noise(1, 4000, 2, 1.0, 0).unwrap();
    let (tau, temperature) = (0.1, 0.5);
    let run = |temperature: Option<f64>, steps: usize| {
        let mut state = FlowState::new(start.clone());
        Flow {
            objective: &mut Zero,
            optimizer: Optimizer::new(Method::Gd, tau).unwrap(),
            config: FlowConfig {
                steps,
                seed: 9,
                clip: None,
                temperature,
            },
        }
        .run(&mut state, &mut [])
        .map(|_| state)
    };
    // One step: x moves by √(2τT) ξ, so the displacement's variance is 2τT.
    let moved = run(Some(temperature), 1).unwrap();
    let var = moved
        .cloud
        .points()
        .iter()
        .zip(start.points())
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum::<f64>()
        / start.points().len() as f64;
    let want = 2.0 * tau * temperature;
    assert!((var - want).abs() < 0.05 * want, "{var} vs {want}");
    // Same seed, same noise; no temperature (or T = 0), no movement at all.
    assert_eq!(
        run(Some(temperature), 3).unwrap(),
        run(Some(temperature), 3).unwrap()
    );
    assert_eq!(run(None, 3).unwrap().cloud, start);
    assert_eq!(run(Some(0.0), 3).unwrap().cloud, start);
    // A temperature that is not a number ≥ 0 is refused by name before any step.
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let e = run(Some(bad), 1).unwrap_err().to_string();
        assert!(e.contains("temperature"), "{e}");
    }
}

/// Records the first number it draws at each step (and has zero gradient).
struct Draws(Vec<u64>);

impl wowflow_core::Objective for Draws {
    fn name(&self) -> String {
        "draws".into()
    }
    fn value_and_wow_grad(
        &mut self,
        _cloud: &wowflow_core::LabeledCloud,
        rng: &mut dyn rand::RngCore,
        grad: &mut [f32],
    ) -> wowflow_core::Result<f64> {
        self.0.push(rng.next_u64());
        grad.iter_mut().for_each(|g| *g = 0.0);
        Ok(0.0)
    }
}

#[test]
fn langevin_noise_leaves_the_objectives_randomness_unchanged() {
    let start = wowflow_core::toy::gaussian_noise(2, 10, 3, 1.0, 0).unwrap();
    let draws = |temperature| {
        let mut objective = Draws(Vec::new());
        let mut state = FlowState::new(start.clone());
        Flow {
            objective: &mut objective,
            optimizer: Optimizer::new(Method::Gd, 0.1).unwrap(),
            config: FlowConfig {
                steps: 5,
                seed: 3,
                clip: None,
                temperature,
            },
        }
        .run(&mut state, &mut [])
        .unwrap();
        (objective.0, state.cloud)
    };
    let (quiet, still) = draws(None);
    let (noisy, moved) = draws(Some(0.5));
    assert_eq!(quiet, noisy);
    assert_eq!(still, start);
    assert_ne!(moved, start);
}

/// A stepper that keeps its particles to itself, as the GPU flow does: `state.cloud` is
/// current only after `sync`.
struct Remote {
    points: Vec<f32>,
    syncs: Vec<usize>,
    fail_at: Option<usize>,
}

impl wowflow_core::Stepper for Remote {
    fn step(&mut self, state: &mut FlowState) -> wowflow_core::Result<wowflow_core::StepOutput> {
        if self.fail_at == Some(state.step) {
            return Err(CoreError::Diverged {
                step: state.step,
                last_good_step: state.step,
                reason: "test".into(),
            });
        }
        self.points.iter_mut().for_each(|x| *x += 1.0);
        Ok(wowflow_core::StepOutput {
            loss: state.step as f64,
            grad_norm: 1.0,
        })
    }
    fn sync(&mut self, state: &mut FlowState) -> wowflow_core::Result<()> {
        state.cloud.points_mut().copy_from_slice(&self.points);
        self.syncs.push(state.step);
        Ok(())
    }
}

/// Reads the particles every `every` steps and checks they are current (one more per step).
struct Reader {
    every: usize,
    start: f32,
    stop_at: Option<usize>,
}

impl Observer for Reader {
    fn on_step(&mut self, _: &StepInfo, state: &FlowState) -> wowflow_core::Result<Control> {
        if self.needs_state(state.step, 0) {
            let want = self.start + state.step as f32;
            assert!(
                state.cloud.points().iter().all(|&x| x == want),
                "stale at {}",
                state.step
            );
        }
        Ok(match self.stop_at {
            Some(s) if state.step >= s => Control::Stop,
            _ => Control::Continue,
        })
    }
    fn needs_state(&self, steps_done: usize, _total: usize) -> bool {
        steps_done.is_multiple_of(self.every)
    }
}

#[test]
fn the_one_loop_syncs_a_remote_stepper_only_when_someone_reads() {
    let start = LabeledCloud::uniform(2, 3, 2, vec![0.5; 12]).unwrap();
    let run = |fail_at, stop_at, total| {
        let mut state = FlowState::new(start.clone());
        let mut remote = Remote {
            points: start.points().to_vec(),
            syncs: Vec::new(),
            fail_at,
        };
        let mut reader = Reader {
            every: 3,
            start: 0.5,
            stop_at,
        };
        let outcome = wowflow_core::drive(&mut remote, &mut state, total, &mut [&mut reader]);
        (outcome, state, remote.syncs)
    };
    // Synced where the reader reads (3, 6, 9) and at the end (10); losses and steps always.
    let (outcome, state, syncs) = run(None, None, 10);
    assert_eq!(outcome.unwrap(), Outcome::Finished);
    assert_eq!(syncs, vec![3, 6, 9, 10]);
    assert_eq!((state.step, state.losses.len()), (10, 10));
    assert!(state.cloud.points().iter().all(|&x| x == 10.5));
    // A stop syncs the stopped state, so it can be checkpointed.
    let (outcome, state, syncs) = run(None, Some(4), 10);
    assert_eq!(outcome.unwrap(), Outcome::Stopped);
    assert_eq!(syncs, vec![3, 4]);
    assert!(state.cloud.points().iter().all(|&x| x == 4.5));
    // A failing step syncs the last good state before the error returns.
    let (outcome, state, syncs) = run(Some(5), None, 10);
    assert!(matches!(outcome, Err(CoreError::Diverged { step: 5, .. })));
    assert_eq!(syncs, vec![3, 5]);
    assert!(state.cloud.points().iter().all(|&x| x == 5.5));
    assert_eq!(state.step, 5);
}

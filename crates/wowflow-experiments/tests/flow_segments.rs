//! A cell's flow stopped between two segments continues from the last saved one and ends
//! exactly where an uninterrupted flow ends (particles, momentum, losses), with a target
//! mini-batch and momentum so that both the step-keyed randomness and the optimiser state
//! must survive the file — whether the segment ended by steps, by time, or because the flow
//! was interrupted.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wowflow_core::{
    Control, DirectionSampler, Flow, FlowConfig, FlowState, Kernel, LabeledCloud, Method, Observer,
    Optimizer, StepInfo, SwMmdFlowSettings,
};
use wowflow_experiments::checkpoint::FlowSegments;
use wowflow_experiments::{run_flow, run_observed};

fn cloud(sizes: &[usize], d: usize, shift: f32, seed: u64) -> LabeledCloud {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut points = Vec::new();
    let mut labels = Vec::new();
    for (c, &n) in sizes.iter().enumerate() {
        for _ in 0..n {
            points.extend((0..d).map(|j| rng.random::<f32>() + shift * (c + j % 2) as f32));
            labels.push(c as i64);
        }
    }
    LabeledCloud::from_labeled_rows(&points, d, &labels)
        .unwrap()
        .0
}

/// Unbalanced classes on both sides, a target mini-batch and momentum.
fn problem() -> (LabeledCloud, LabeledCloud, SwMmdFlowSettings) {
    let source = cloud(&[12, 7, 9], 5, 0.0, 1);
    let target = cloud(&[10, 10, 6], 5, 1.5, 2);
    let settings = SwMmdFlowSettings {
        kernel: Kernel::by_name("riesz", None).unwrap(),
        projections: 20,
        sampler: DirectionSampler::Gaussian,
        target_batch: Some(4),
        optimizer: Optimizer::new(Method::Momentum { m: 0.9 }, 0.5).unwrap(),
        seed: 7,
        clip: None,
    };
    (source, target, settings)
}

/// `steps` steps of the problem's flow from `start`, through the cells' `run_flow`.
fn run(
    settings: &SwMmdFlowSettings,
    target: &LabeledCloud,
    start: &LabeledCloud,
    steps: usize,
    segments: Option<&FlowSegments>,
) -> FlowState {
    let mut objective = settings.host_objective(target.clone()).unwrap();
    let optimizer = settings.optimizer.clone();
    run_flow(&mut objective, optimizer, start.clone(), steps, 7, segments).unwrap()
}

#[test]
fn a_flow_resumed_from_its_last_segment_ends_where_an_uninterrupted_one_ends() {
    let (source, target, settings) = problem();
    let flow_from = |start: &LabeledCloud, steps: usize, segments: Option<&FlowSegments>| {
        run(&settings, &target, start, steps, segments)
    };
    let flow = |steps, segments| flow_from(&source, steps, segments);
    let whole = flow(30, None);

    let dir = tempfile::tempdir().unwrap();
    let segments = FlowSegments {
        path: dir.path().join("t0.flow.npz"),
        every: 10,
        every_seconds: None,
        name: "trial 0".into(),
    };
    // A run that stopped after step 20: its last segment holds step 20.
    let first = flow(20, Some(&segments));
    assert_eq!(first.step, 20);
    assert!(segments.path.is_file());
    // Resumed from another start of the same shape: only the saved state can give the
    // uninterrupted run's numbers.
    let elsewhere = cloud(&[12, 7, 9], 5, 3.0, 9);
    let resumed = flow_from(&elsewhere, 30, Some(&segments));
    assert_eq!(resumed.step, 30);
    assert_eq!(resumed.cloud.points(), whole.cloud.points(), "particles");
    assert_eq!(resumed.optimizer.first, whole.optimizer.first, "momentum");
    assert_eq!(
        resumed.losses, whole.losses,
        "losses, including the first segments'"
    );

    // Another flow's state in the same file is refused, not continued.
    let other = FlowSegments {
        name: "trial 1".into(),
        ..segments.clone()
    };
    let err = other.resume(source.clone()).unwrap_err().to_string();
    assert!(err.contains("another flow"), "{err}");
    segments.finish().unwrap();
    assert!(!segments.path.exists());
    segments.finish().unwrap();
}

/// Stops the flow after `at` steps, as the progress bar does on Ctrl-C or SIGTERM.
struct StopAt(usize);

impl Observer for StopAt {
    fn on_step(&mut self, _: &StepInfo, state: &FlowState) -> wowflow_core::Result<Control> {
        Ok(if state.step == self.0 {
            Control::Stop
        } else {
            Control::Continue
        })
    }
    fn needs_state(&self, _: usize, _: usize) -> bool {
        false
    }
}

/// `observers` and then `extra`.
fn with<'a>(
    observers: &'a mut [&mut dyn Observer],
    extra: &'a mut dyn Observer,
) -> Vec<&'a mut (dyn Observer + 'a)> {
    let mut list: Vec<&'a mut (dyn Observer + 'a)> = Vec::new();
    for o in observers.iter_mut() {
        list.push(&mut **o);
    }
    list.push(extra);
    list
}

#[test]
fn segments_also_end_by_time_and_on_interruption_and_resume_exactly() {
    let (source, target, settings) = problem();
    let flow_from = |start: &LabeledCloud, steps: usize, segments: Option<&FlowSegments>| {
        run(&settings, &target, start, steps, segments)
    };
    let whole = flow_from(&source, 30, None);
    let elsewhere = cloud(&[12, 7, 9], 5, 3.0, 9);
    let dir = tempfile::tempdir().unwrap();

    // By time: far more steps per segment than the flow has, no seconds between saves.
    let by_time = FlowSegments {
        path: dir.path().join("t0.flow.npz"),
        every: 1000,
        every_seconds: Some(0),
        name: "trial 0".into(),
    };
    assert_eq!(flow_from(&source, 13, Some(&by_time)).step, 13);
    let saved = by_time.resume(elsewhere.clone()).unwrap();
    assert_eq!(saved.step, 13, "the time rule saved the last step");
    let resumed = flow_from(&elsewhere, 30, Some(&by_time));
    assert_eq!(resumed.cloud.points(), whole.cloud.points(), "particles");
    assert_eq!(resumed.losses, whole.losses, "losses");
    by_time.finish().unwrap();

    // Interrupted after step 7, between two step segments: the state of step 7 is saved and
    // the error says where.
    let by_steps = FlowSegments {
        every: 5,
        every_seconds: None,
        ..by_time.clone()
    };
    let mut state = by_steps.resume(source.clone()).unwrap();
    let mut objective = settings.host_objective(target.clone()).unwrap();
    let err = run_observed(30, Some(&by_steps), &mut state, |state, observers| {
        let mut stop = StopAt(7);
        let mut list = with(observers, &mut stop);
        let mut flow = Flow {
            objective: &mut objective,
            optimizer: settings.optimizer.clone(),
            config: FlowConfig {
                steps: 30,
                seed: 7,
                clip: None,
                temperature: None,
            },
        };
        Ok(flow.run(state, &mut list)?)
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("step 7 of 30") && err.contains("saved"),
        "{err}"
    );
    assert_eq!(by_steps.resume(elsewhere.clone()).unwrap().step, 7);
    let resumed = flow_from(&elsewhere, 30, Some(&by_steps));
    assert_eq!(resumed.cloud.points(), whole.cloud.points(), "particles");
    assert_eq!(resumed.optimizer.first, whole.optimizer.first, "momentum");
    assert_eq!(resumed.losses, whole.losses, "losses");
}

//! A cell's flow stopped between two segments continues from the last saved one and ends
//! exactly where an uninterrupted flow ends (particles, momentum, losses), with a target
//! mini-batch and momentum so that both the step-keyed randomness and the optimiser state
//! must survive the file.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wowflow_core::{DirectionSampler, Kernel, LabeledCloud, Method, Optimizer, SwMmdFlowSettings};
use wowflow_experiments::checkpoint::FlowSegments;
use wowflow_experiments::run_flow;

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

#[test]
fn a_flow_resumed_from_its_last_segment_ends_where_an_uninterrupted_one_ends() {
    // Unbalanced classes on both sides.
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
    let flow_from = |start: &LabeledCloud, steps: usize, segments: Option<&FlowSegments>| {
        let mut objective = settings.host_objective(target.clone()).unwrap();
        let optimizer = settings.optimizer.clone();
        run_flow(&mut objective, optimizer, start.clone(), steps, 7, segments).unwrap()
    };
    let flow = |steps, segments| flow_from(&source, steps, segments);
    let whole = flow(30, None);

    let dir = tempfile::tempdir().unwrap();
    let segments = FlowSegments {
        path: dir.path().join("t0.flow.npz"),
        every: 10,
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

//! The device-resident flow against an independent replay on the CPU: the same directions
//! (the host transcription of the device's Philox generator), the same target mini-batches,
//! the CPU engine's gradient and the core optimiser. Also: resuming from a downloaded state
//! is bit-identical to an uninterrupted run, and a diverging step never lands.
//!
//! Needs a GPU (`LD_LIBRARY_PATH=/usr/local/cuda/lib64`); elsewhere every test prints a
//! SKIPPED line and passes.

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use wowflow_core::flow::step_rng;
use wowflow_core::{
    CoreError, CpuEngine, Engine, FlowState, Kernel, LabeledCloud, Method, Optimizer,
    OptimizerState, SwMmdFlowSettings,
};
use wowflow_cuda::{host_directions, CudaError, DeviceFlow};

fn visible(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `None` (with a visible SKIPPED line) when no CUDA device can be used.
fn gpu_available(test: &str) -> bool {
    match wowflow_cuda::CudaEngine::new() {
        Ok(_) => true,
        Err(why) => {
            visible(&format!(
                "SKIPPED wowflow-cuda {test}: no usable CUDA device ({why})"
            ));
            false
        }
    }
}

fn cloud(seed: u64, sizes: &[usize], d: usize, shift: f32) -> LabeledCloud {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut offsets = vec![0];
    for s in sizes {
        offsets.push(offsets.last().unwrap() + s);
    }
    let n = *offsets.last().unwrap();
    let mut pts: Vec<f32> = (0..n * d)
        .map(|_| <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng))
        .collect();
    for (c, w) in offsets.windows(2).enumerate() {
        for v in &mut pts[w[0] * d..w[1] * d] {
            *v += shift + 0.5 * c as f32;
        }
    }
    LabeledCloud::from_parts(pts, d, offsets, (0..sizes.len() as i64).collect()).unwrap()
}

/// The CPU replay of `steps` device steps; returns the final state and the losses.
fn replay(
    source: &LabeledCloud,
    target: &LabeledCloud,
    s: &SwMmdFlowSettings,
    steps: usize,
) -> (LabeledCloud, Vec<f64>) {
    let cpu = CpuEngine::new();
    let mut x = source.clone();
    let mut opt = OptimizerState::default();
    let mut losses = Vec::new();
    let d = source.dim();
    for k in 0..steps {
        let dirs = host_directions(s.seed, k as u64, s.projections, d).unwrap();
        let batch = s
            .target_batch
            .filter(|&b| (0..target.n_classes()).any(|c| target.class_len(c) > b));
        let tk = match batch {
            Some(b) => {
                let mut rng = step_rng(s.seed, k);
                let picks: Vec<Vec<usize>> = (0..target.n_classes())
                    .map(|c| {
                        let n = target.class_len(c);
                        if n <= b {
                            (0..n).collect()
                        } else {
                            sample(&mut rng, n, b).into_vec()
                        }
                    })
                    .collect();
                target.select(&picks).unwrap()
            }
            None => target.clone(),
        };
        let mut g = vec![0.0f32; x.points().len()];
        let out = cpu.sw_mmd(&x, &tk, &dirs, &s.kernel, &mut g).unwrap();
        losses.push(out.value);
        s.optimizer.step(x.points_mut(), &g, &mut opt).unwrap();
        if let Some((lo, hi)) = s.clip {
            x.points_mut().iter_mut().for_each(|v| *v = v.clamp(lo, hi));
        }
    }
    (x, losses)
}

fn rel(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den.max(1e-300)).sqrt()
}

fn check_against_replay(
    case: &str,
    source: LabeledCloud,
    target: LabeledCloud,
    s: SwMmdFlowSettings,
    steps: usize,
) {
    let mut state = FlowState::new(source.clone());
    let mut flow = DeviceFlow::new(&state, &target, s.clone(), 0).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        losses.push(flow.step().unwrap().loss);
    }
    flow.download(&mut state).unwrap();
    let (want, want_losses) = replay(&source, &target, &s, steps);
    let moved = rel(want.points(), source.points());
    let err = rel(state.cloud.points(), want.points());
    let loss_err = losses
        .iter()
        .zip(&want_losses)
        .map(|(a, b)| ((a - b) / b.abs().max(1e-12)).abs())
        .fold(0.0, f64::max);
    visible(&format!(
        "{case}: particles moved {moved:.2e} (relative), device vs CPU replay {err:.2e}, \
         losses {loss_err:.2e}"
    ));
    assert!(moved > 1e-3, "{case}: the flow did not move the particles");
    assert!(
        err < 1e-4 * moved.max(1.0),
        "{case}: device and CPU replay differ by {err:.3e}"
    );
    assert!(loss_err < 1e-4, "{case}: losses differ by {loss_err:.3e}");
    assert_eq!(state.step, steps);
    assert_eq!(state.optimizer.t, steps as u64);
}

fn settings(kernel: Kernel, optimizer: Optimizer) -> SwMmdFlowSettings {
    SwMmdFlowSettings {
        kernel,
        projections: 48,
        sampler: wowflow_core::DirectionSampler::Gaussian,
        target_batch: None,
        optimizer,
        seed: 11,
        clip: None,
    }
}

#[test]
fn matches_a_cpu_replay() {
    if !gpu_available("matches_a_cpu_replay") {
        return;
    }
    // Equal class sizes, heavy ball (the paper's optimiser).
    let s = settings(
        Kernel::RIESZ,
        Optimizer::new(Method::Momentum { m: 0.9 }, 0.05).unwrap(),
    );
    check_against_replay(
        "equal sizes, momentum",
        cloud(1, &[40; 4], 12, 0.0),
        cloud(2, &[40; 4], 12, 1.0),
        s,
        6,
    );
    // Unequal sizes, target mini-batches and clipping, Gaussian kernel, GD.
    let mut s = settings(
        Kernel::Gaussian { h: 2.0 },
        Optimizer::new(Method::Gd, 0.5).unwrap(),
    );
    s.target_batch = Some(9);
    s.clip = Some((-1.5, 2.5));
    check_against_replay(
        "mini-batch, clip",
        cloud(3, &[20, 33, 7], 10, 0.0),
        cloud(4, &[30, 30, 5], 10, 0.8),
        s,
        5,
    );
    // Adam, weighted source, IMQ.
    let src = cloud(5, &[25, 25, 25], 8, 0.0)
        .with_class_weights(vec![1.0, 2.0, 1.5])
        .unwrap();
    let s = settings(
        Kernel::Imq { h: 1.0 },
        Optimizer::new(Method::by_name("adam", 0.0).unwrap(), 0.02).unwrap(),
    );
    check_against_replay("adam, class weights", src, cloud(6, &[25; 3], 8, 0.5), s, 5);
}

#[test]
fn resume_is_bit_identical() {
    if !gpu_available("resume_is_bit_identical") {
        return;
    }
    let (source, target) = (cloud(7, &[30; 3], 16, 0.0), cloud(8, &[64; 3], 16, 1.0));
    let mut s = settings(
        Kernel::RIESZ,
        Optimizer::new(Method::Momentum { m: 0.9 }, 0.05).unwrap(),
    );
    s.target_batch = Some(16);
    let mut straight = FlowState::new(source.clone());
    let mut flow = DeviceFlow::new(&straight, &target, s.clone(), 0).unwrap();
    let mut losses = Vec::new();
    for _ in 0..8 {
        losses.push(flow.step().unwrap().loss);
    }
    flow.download(&mut straight).unwrap();

    let mut half = FlowState::new(source);
    let mut first = DeviceFlow::new(&half, &target, s.clone(), 0).unwrap();
    let mut resumed_losses = Vec::new();
    for _ in 0..4 {
        resumed_losses.push(first.step().unwrap().loss);
    }
    first.download(&mut half).unwrap();
    drop(first);
    let mut second = DeviceFlow::new(&half, &target, s, 0).unwrap();
    for _ in 0..4 {
        resumed_losses.push(second.step().unwrap().loss);
    }
    second.download(&mut half).unwrap();
    assert_eq!(resumed_losses, losses);
    assert_eq!(
        half, straight,
        "resumed state differs from the uninterrupted one"
    );
}

#[test]
fn a_diverging_step_never_lands() {
    if !gpu_available("a_diverging_step_never_lands") {
        return;
    }
    // Target features at f32::MAX: projections on most directions overflow to ±∞, so the
    // costs and the gradient of the very first step are NaN.
    let source = cloud(9, &[20; 2], 6, 0.0);
    let mut target = cloud(10, &[20; 2], 6, 0.0);
    target.points_mut().iter_mut().for_each(|v| *v = f32::MAX);
    let s = settings(
        Kernel::RIESZ,
        Optimizer::new(Method::Momentum { m: 0.9 }, 0.1).unwrap(),
    );
    let mut state = FlowState::new(source.clone());
    let mut flow = DeviceFlow::new(&state, &target, s, 0).unwrap();
    match flow.step() {
        Err(CudaError::Core(CoreError::Diverged {
            step,
            last_good_step,
            reason,
        })) => {
            visible(&format!("diverged at step {step}: {reason}"));
            assert_eq!((step, last_good_step), (0, 0));
        }
        other => panic!("expected a divergence at step 0, got {other:?}"),
    }
    flow.download(&mut state).unwrap();
    assert_eq!(state.step, 0);
    assert_eq!(state.optimizer.t, 0);
    assert_eq!(
        state.cloud.points(),
        source.points(),
        "the diverged update landed on the device"
    );
    assert!(state.optimizer.first.iter().all(|&v| v == 0.0));
}

/// The device flow in the one flow loop (`wowflow_core::drive`) takes exactly its own
/// steps: the same losses and final particles as stepping it by hand, with snapshots taken
/// where the recorder reads the particles and a stop that leaves a consistent state.
#[test]
fn the_one_loop_runs_the_device_flow_step_for_step() {
    if !gpu_available("the_one_loop_runs_the_device_flow_step_for_step") {
        return;
    }
    let (source, target) = (cloud(7, &[30; 3], 16, 0.0), cloud(8, &[64; 3], 16, 1.0));
    let s = settings(
        Kernel::RIESZ,
        Optimizer::new(Method::Momentum { m: 0.9 }, 0.05).unwrap(),
    );
    let mut by_hand = FlowState::new(source.clone());
    let mut flow = DeviceFlow::new(&by_hand, &target, s.clone(), 0).unwrap();
    let losses: Vec<f64> = (0..8).map(|_| flow.step().unwrap().loss).collect();
    flow.download(&mut by_hand).unwrap();

    let mut driven = FlowState::new(source);
    let mut flow = DeviceFlow::new(&driven, &target, s, 0).unwrap();
    let mut snaps = wowflow_core::SnapshotRecorder::new(3);
    snaps.record(&driven);
    let outcome = wowflow_core::drive(&mut flow, &mut driven, 8, &mut [&mut snaps]).unwrap();
    assert_eq!(outcome, wowflow_core::Outcome::Finished);
    assert_eq!(driven.losses, losses);
    assert_eq!(driven.cloud, by_hand.cloud);
    assert_eq!(driven.optimizer, by_hand.optimizer);
    let steps: Vec<usize> = snaps.snapshots.iter().map(|s| s.0).collect();
    assert_eq!(steps, vec![0, 3, 6, 8]);
    assert_eq!(snaps.snapshots[3].1, by_hand.cloud.points());
}

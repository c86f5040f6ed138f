//! The issue-5 benchmarks on synthetic class clouds (Gaussian classes with distinct means,
//! values comparable to images in [0, 1]):
//! - one OTDD-flow step, 2000 particles in d = 784, 10 classes each side (exact and Gaussian
//!   label costs; exact and entropic outer OT; the joint-driven fixed- and variable-label
//!   dynamics with label Gaussians in p = 16 PCA dimensions);
//! - the WoW distance between two 10 × 500 × 784 datasets.
//!
//! `cargo run --release -p wowflow-baselines --example baselines_bench`

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use wowflow_baselines::{JointOtdd, JointOtddConfig, LabelDynamics, OtddFlow};
use wowflow_core::{LabeledCloud, Objective};
use wowflow_ot::{wow_distance, LabelCost, OtddConfig};
use wowflow_ot::{OtSolver, SinkhornConfig};

fn classes(c: usize, n: usize, d: usize, seed: u64) -> wowflow_core::Result<LabeledCloud> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..c * d).map(|_| rng.random_range(0.0..1.0)).collect();
    let mut pts = Vec::with_capacity(c * n * d);
    for k in 0..c {
        for _ in 0..n {
            for t in 0..d {
                pts.push(centres[k * d + t] + rng.random_range(-0.3..0.3));
            }
        }
    }
    LabeledCloud::uniform(c, n, d, pts)
}

fn main() -> wowflow_core::Result<()> {
    let d = 784;
    let (src, tgt) = (classes(10, 200, d, 1)?, classes(10, 200, d, 2)?);
    let mut grad = vec![0.0f32; src.points().len()];
    for (name, label_cost, solver) in [
        (
            "exact labels, exact outer",
            LabelCost::Exact,
            OtSolver::Exact,
        ),
        (
            "gaussian labels, exact outer",
            LabelCost::Gaussian,
            OtSolver::Exact,
        ),
        (
            "gaussian labels, sinkhorn outer (ε = 5 % of mean cost)",
            LabelCost::Gaussian,
            OtSolver::Sinkhorn(SinkhornConfig {
                epsilon: 8.0,
                tolerance: 1e-4,
                max_iterations: 200,
            }),
        ),
    ] {
        let cfg = OtddConfig {
            label_cost,
            solver,
            label_weight: 1.0,
        };
        let mut obj = OtddFlow::new(tgt.clone(), cfg)?;
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let t = Instant::now();
        let v = obj.value_and_wow_grad(&src, &mut rng, &mut grad)?;
        println!(
            "OTDD-flow step, 2000 particles, d = 784, {name}: {:.2} s (F = {v:.3})",
            t.elapsed().as_secs_f64()
        );
        // The next step of the flow (τ = 0.1), where the exact outer problem starts from the
        // previous step's duals.
        let mut moved = src.clone();
        for (x, g) in moved.points_mut().iter_mut().zip(&grad) {
            *x -= 0.1 * g;
        }
        let t = Instant::now();
        let v = obj.value_and_wow_grad(&moved, &mut rng, &mut grad)?;
        println!(
            "  next step of the flow: {:.2} s (F = {v:.3})",
            t.elapsed().as_secs_f64()
        );
    }
    for labels in [LabelDynamics::Fixed, LabelDynamics::Variable] {
        let config = JointOtddConfig {
            labels,
            ..Default::default()
        };
        let t = Instant::now();
        let mut obj = JointOtdd::new(&src, tgt.clone(), config)?;
        let setup = t.elapsed().as_secs_f64();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut moved = src.clone();
        for step in 0..3 {
            let t = Instant::now();
            let v = obj.value_and_wow_grad(&moved, &mut rng, &mut grad)?;
            obj.accept_step()?;
            println!(
                "OTDD-flow step, 2000 particles, d = 784, joint-driven {labels:?} labels (p = 16), \
                 step {step}: {:.2} s (F = {v:.3}; PCA fit {setup:.2} s)",
                t.elapsed().as_secs_f64()
            );
            for (x, g) in moved.points_mut().iter_mut().zip(&grad) {
                *x -= 0.1 * g;
            }
        }
    }
    // Where an exact-label step goes: the 100 inner W₂ problems alone.
    let t = Instant::now();
    let inner = wowflow_ot::distance::class_w2_costs(&src, &tgt)?;
    println!(
        "  of which the {} inner W₂ between 200-point classes: {:.2} s",
        inner.len(),
        t.elapsed().as_secs_f64()
    );
    let (p, q) = (classes(10, 500, d, 3)?, classes(10, 500, d, 4)?);
    let t = Instant::now();
    let w = wow_distance(&p, &q)?;
    println!(
        "WoW distance, 10×500×784 vs 10×500×784: {:.2} s (W² = {:.3})",
        t.elapsed().as_secs_f64(),
        w.value
    );
    Ok(())
}

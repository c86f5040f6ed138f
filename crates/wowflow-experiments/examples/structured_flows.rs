//! Evidence that flows with structured directions are no worse (issue 20, docs/math.md §3),
//! Gaussian and structured directions side by side, several seeds each:
//!
//! - `rings`: the rings flow of the paper's Figure 1 (Gaussian noise → three rings in R²,
//!   Riesz SW-MMD, gradient descent τ = 0.1, L = 500, 500 steps, 80 particles a ring, as
//!   `wowflow demo rings`), five seeds;
//! - `images`: a small domain-adaptation flow, Fashion-MNIST → MNIST, 50 train images a class
//!   each (seeded draws), d = 784, Riesz, heavy ball τ = 0.1, m = 0.9, L = 200, 3000 steps,
//!   three seeds (needs the shared data: `WOWFLOW_DATA`, else `<repo>/../shared/data`).
//!
//! The objective is measured with one common set of orthogonal-block directions (20 000 in
//! R², 2 352 in R^784), not with a step's own draw, so both families are judged by the same
//! yardstick.
//!
//! `cargo run --release -p wowflow-experiments --example structured_flows [-- rings|images]`

use anyhow::Result;
use std::time::Instant;
use wowflow_core::toy::{gaussian_noise, rings};
use wowflow_core::{
    CpuEngine, DirectionSampler, Directions, Engine, Flow, FlowConfig, FlowState, Kernel,
    LabeledCloud, Method, Optimizer, SwMmd,
};
use wowflow_data::DataDirs;
use wowflow_experiments::sample_train;

fn main() -> anyhow::Result<()> {
    let which: Option<String> = std::env::args().nth(1);
    if which.as_deref() != Some("images") {
        rings_case()?;
    }
    if which.as_deref() != Some("rings") {
        images_case()?;
    }
    Ok(())
}

/// `F` of `cloud` against `target` with the common `yardstick` directions.
fn measured(cloud: &LabeledCloud, target: &LabeledCloud, yardstick: &Directions) -> Result<f64> {
    let mut grad = vec![0.0f32; cloud.points().len()];
    Ok(CpuEngine::new()
        .sw_mmd(cloud, target, yardstick, &Kernel::RIESZ, &mut grad)?
        .value)
}

fn yardstick(count: usize, dim: usize) -> Result<Directions> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(999);
    Ok(DirectionSampler::OrthogonalBlocks.sample(count, dim, &mut rng)?)
}

fn summary(name: &str, finals: &[f64]) {
    let mean = finals.iter().sum::<f64>() / finals.len() as f64;
    let sd =
        (finals.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / (finals.len() - 1) as f64).sqrt();
    println!("{name:<10}  mean F(final) {mean:.6} ± {sd:.6} (sd over seeds)");
}

fn images_case() -> Result<()> {
    let dirs =
        DataDirs::new(wowflow_testkit::shared_data("the images case", &["mnist"]).as_deref());
    let yardstick = yardstick(3 * 784, 784)?;
    println!("images: fashion-mnist → mnist, 50 a class, L = 200, heavy ball 0.1/0.9");
    println!("sampler     seed  F@0        F@1000     F@2000     F@3000     seconds");
    for sampler in [DirectionSampler::Gaussian, DirectionSampler::Structured] {
        let mut finals = Vec::new();
        for seed in 0..3u64 {
            let (source, _) = sample_train(&dirs, "fashion-mnist", 50, seed)?;
            let (target, _) = sample_train(&dirs, "mnist", 50, seed + 100)?;
            let mut sw_mmd =
                SwMmd::new(target.clone(), Kernel::RIESZ, 200)?.with_directions(sampler.clone())?;
            let mut state = FlowState::new(source);
            let mut values = vec![measured(&state.cloud, &target, &yardstick)?];
            let started = Instant::now();
            for total in [1000, 2000, 3000] {
                Flow {
                    objective: &mut sw_mmd,
                    optimizer: Optimizer::new(Method::Momentum { m: 0.9 }, 0.1)?,
                    config: FlowConfig::new(total, seed),
                }
                .run(&mut state, &mut [])?;
                values.push(measured(&state.cloud, &target, &yardstick)?);
            }
            let seconds = started.elapsed().as_secs_f64();
            let v: Vec<String> = values.iter().map(|v| format!("{v:.4e}")).collect();
            println!(
                "{:<10} {seed:>5}  {}  {seconds:>7.1}",
                sampler.name(),
                v.join(" ")
            );
            finals.push(values[3]);
        }
        summary(sampler.name(), &finals);
    }
    Ok(())
}

fn rings_case() -> Result<()> {
    let yardstick = yardstick(20_000, 2)?;
    println!("sampler     seed  F(final, L=20000)  last-step loss  seconds");
    for sampler in [DirectionSampler::Gaussian, DirectionSampler::Structured] {
        let mut finals = Vec::new();
        for seed in 0..5u64 {
            let target = rings(80, seed)?;
            let source = gaussian_noise(3, 80, 2, 1.0, seed.wrapping_add(1))?;
            let mut objective =
                SwMmd::new(target.clone(), Kernel::RIESZ, 500)?.with_directions(sampler.clone())?;
            let mut flow = Flow {
                objective: &mut objective,
                optimizer: Optimizer::new(Method::Gd, 0.1)?,
                config: FlowConfig::new(500, seed),
            };
            let mut state = FlowState::new(source);
            let started = Instant::now();
            flow.run(&mut state, &mut [])?;
            let seconds = started.elapsed().as_secs_f64();
            let f = measured(&state.cloud, &target, &yardstick)?;
            let last = state.losses.last().copied().unwrap_or(f64::NAN);
            println!(
                "{:<10} {seed:>5}  {f:>17.6}  {last:>14.6}  {seconds:>7.2}",
                sampler.name()
            );
            finals.push(f);
        }
        summary(sampler.name(), &finals);
    }
    Ok(())
}

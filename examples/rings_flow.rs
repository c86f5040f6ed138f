//! Flow three classes of Gaussian noise to three rings with the WoW gradient flow of SW-MMD
//! (the first figure of Bonet, Vauthier & Korba 2025), through the library only.
//!
//! A dataset is a measure over its classes, `P = Σ_c a_c δ(μ_c)`. The flow minimises
//! `F(P) = ½ MMD²_K(P, Q)` towards the rings `Q`, where the kernel between two classes is
//! the Riesz kernel `K(μ, ν) = −SW₂(μ, ν)`: minus their sliced-Wasserstein distance
//! (docs/math.md §4–5). Every particle moves by heavy-ball momentum on its WoW gradient,
//! `v ← g + m v`, `x ← x − τ v`.
//!
//! Run it (the optional argument is where to write a scatter plot of the final particles):
//!
//!     cargo run --release -p wowflow-cli --example rings_flow -- rings.png

use std::path::{Path, PathBuf};
use wowflow_core::flow::step_rng;
use wowflow_core::{toy, Flow, FlowConfig, FlowState, Kernel, LabeledCloud, Method};
use wowflow_core::{Objective, Optimizer, SwMmd};
use wowflow_viz::{save_png, scatter, Bounds, ScatterFrame};

const PER_CLASS: usize = 80; // particles per class (source) and per ring (target)
const PROJECTIONS: usize = 200; // slicing directions L, redrawn at every step
const STEPS: usize = 400;
const SEED: u64 = 0;

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The first argument, if any, names the PNG to write. Under `cargo test` (which runs
    // this `main` from crates/wowflow-cli/tests/examples.rs) the arguments belong to the
    // test harness, so they are ignored there.
    let png: Option<PathBuf> = std::env::args_os()
        .nth(1)
        .filter(|_| !cfg!(test))
        .map(PathBuf::from);

    // Target: 3 rings in R², one class each. Source: 3 classes of N(0, I₂) noise.
    let target = toy::rings(PER_CLASS, SEED)?;
    let source = toy::gaussian_noise(3, PER_CLASS, 2, 1.0, SEED + 1)?;

    let mut objective = SwMmd::new(target.clone(), Kernel::RIESZ, PROJECTIONS)?;
    let optimizer = Optimizer::new(Method::Momentum { m: 0.9 }, 0.01)?;
    let config = FlowConfig::new(STEPS, SEED);

    let mut state = FlowState::new(source);
    Flow {
        objective: &mut objective,
        optimizer,
        config,
    }
    .run(&mut state, &mut [])?;

    // `state.losses[k]` is F before step k. F after the last step needs one more evaluation;
    // `step_rng(seed, k)` is the random stream (slicing directions) the flow gives step k.
    let mut grad = vec![0.0f32; state.cloud.points().len()];
    let f_end =
        objective.value_and_wow_grad(&state.cloud, &mut step_rng(SEED, STEPS), &mut grad)?;
    let f_start = state.losses[0];
    println!("SW-MMD (Riesz), {STEPS} steps of momentum 0.9, L = {PROJECTIONS}");
    println!("F before: {f_start:.4e}");
    println!("F after:  {f_end:.4e}  ({:.1}× smaller)", f_start / f_end);
    if f_end >= 0.05 * f_start {
        return Err(format!("F fell only from {f_start:.3e} to {f_end:.3e}").into());
    }

    if let Some(path) = png {
        save_scatter(&state.cloud, &target, &path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// A scatter plot of the flowed particles (coloured by class) over the faint target.
fn save_scatter(
    flowed: &LabeledCloud,
    target: &LabeledCloud,
    path: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    // Clouds store points flat (row-major N × 2); the plot wants one [x, y] per point.
    let xy = |c: &LabeledCloud| -> Vec<[f32; 2]> {
        c.points().chunks_exact(2).map(|p| [p[0], p[1]]).collect()
    };
    let (points, target_points) = (xy(flowed), xy(target));
    let frame = ScatterFrame {
        points: &points,
        labels: &flowed.row_classes(),
        target_points: &target_points,
        target_labels: &target.row_classes(),
        title: format!("SW-MMD flow, step {STEPS}"),
    };
    let bounds = Bounds::covering(&[&points, &target_points], 0.05).square();
    save_png(&scatter(&frame, &bounds, (480, 480))?, path)?;
    Ok(())
}

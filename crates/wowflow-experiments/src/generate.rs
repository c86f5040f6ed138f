//! `wowflow experiment generate`: Gaussian noise `(C, n, 784)` flowed to the MNIST classes
//! (class-conditional generation, docs/math.md §9; profiles in `experiments/generate.toml`).

use super::{load_profile, machine, sample_train, save_grid, write_file, CommonArgs};
use crate::method::SamplerName;
use crate::progress::{interrupt_flag, Progress};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use wowflow_core::{
    toy, Control, Flow, FlowConfig, FlowState, Kernel, LabeledCloud, Method, Observer, Optimizer,
    StepInfo, SwMmd,
};
use wowflow_data::DataDirs;
use wowflow_ot::{assign_by_ot, ClassCost};

const BUILTIN: &str = include_str!("../../../experiments/generate.toml");

/// Options of `wowflow experiment generate`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct GenerateArgs {
    /// Dataset whose classes are generated.
    #[cfg_attr(feature = "clap", arg(long, default_value = "mnist"))]
    pub target: String,
    /// `--config`, `--profile`, `--out`, `--data-dir`.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub common: CommonArgs,
}

/// A profile of `experiments/generate.toml`: Gaussian noise flowed to the target's classes
/// by the Riesz SW-MMD flow (K = −SW₂).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSettings {
    /// One line saying what the profile is (kept in `summary.json`).
    pub description: String,
    /// Noise images per class.
    pub per_class: usize,
    /// Target images per class the noise is flowed to (a seeded draw of the train split).
    pub target_per_class: usize,
    /// Standard deviation of the Gaussian noise `N(0, σ² I)` the flow starts from (pixel
    /// units: images lie in [0, 1]).
    pub noise_std: f32,
    /// Slicing directions L, drawn afresh every step.
    pub projections: usize,
    /// How the directions are drawn: `gaussian` (the default), `orthogonal` or `structured`
    /// (docs/math.md §3).
    #[serde(default)]
    pub sampler: SamplerName,
    /// Step size τ.
    pub tau: f64,
    /// Heavy-ball momentum.
    pub momentum: f64,
    /// Flow steps.
    pub steps: usize,
    /// Steps between image grids (also at step 0 and at the last step).
    pub checkpoint_every: usize,
    /// Seed of the target draw, of the noise and of the flow's directions.
    pub seed: u64,
    /// Flowed images per class in each grid.
    pub grid_per_class: usize,
}

struct Grids<'a> {
    target: &'a LabeledCloud,
    settings: &'a GenerateSettings,
    out: &'a Path,
    written: Vec<(usize, Vec<usize>)>,
    error: Option<anyhow::Error>,
}

impl Grids<'_> {
    /// A grid of the current particles, one row per class, rows ordered by the target class
    /// each flowed class is assigned to (exact OT on SW₂²).
    fn write(&mut self, state: &FlowState) -> Result<()> {
        let a = assign_by_ot(
            &state.cloud,
            self.target,
            ClassCost::Sliced {
                projections: 500,
                seed: 0,
            },
        )?;
        let mut order: Vec<usize> = (0..state.cloud.n_classes()).collect();
        order.sort_by_key(|&c| a.labels[c]);
        let step = state.step;
        save_grid(
            &state.cloud,
            &order,
            self.settings.grid_per_class,
            &self.out.join(format!("grid_step{step:05}.png")),
        )?;
        self.written.push((step, a.labels));
        Ok(())
    }
}

impl Observer for Grids<'_> {
    fn on_step(&mut self, info: &StepInfo, state: &FlowState) -> wowflow_core::Result<Control> {
        if self.needs_state(state.step, info.total) {
            if let Err(e) = self.write(state) {
                self.error = Some(e);
                return Ok(Control::Stop);
            }
        }
        Ok(Control::Continue)
    }

    fn needs_state(&self, steps_done: usize, total: usize) -> bool {
        steps_done.is_multiple_of(self.settings.checkpoint_every.max(1)) || steps_done == total
    }
}

/// Runs `wowflow experiment generate`: writes the image grids (`grid_stepNNNNN.png`),
/// `loss.csv`, `loss.png` and `summary.json` to OUT.
pub fn run(args: GenerateArgs) -> Result<()> {
    let started = Instant::now();
    let s: GenerateSettings = load_profile(
        BUILTIN,
        "experiments/generate.toml",
        args.common.config.as_deref(),
        &args.common.profile,
    )?;
    crate::at_least_one(&[
        ("per_class", s.per_class),
        ("target_per_class", s.target_per_class),
        ("projections", s.projections),
        ("checkpoint_every", s.checkpoint_every),
        ("grid_per_class", s.grid_per_class),
    ])?;
    let target_name = crate::dataset_name(&args.target).to_string();
    let out = args.common.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "runs/generate-{}-{}",
            target_name, args.common.profile
        ))
    });
    wowflow_data::prepare_output_dir(&out)?;
    crate::clear_old_grids(&out)?;
    let dirs = DataDirs::new(args.common.data_dir.as_deref());
    let (target, note) = sample_train(&dirs, &target_name, s.target_per_class, s.seed)?;
    if let Some(note) = &note {
        eprintln!("note: {note}");
    }
    if target.dim() != 784 {
        bail!(
            "target {target_name}: images of {} values, the grids expect 28×28",
            target.dim()
        );
    }
    let classes = target.n_classes();
    let source = toy::gaussian_noise(classes, s.per_class, target.dim(), s.noise_std, s.seed)?;
    eprintln!(
        "generate: N(0, {}²) noise, {} per class → {} {} per class, Riesz SW-MMD, L = {}, τ = {}, \
         momentum {}, {} steps",
        s.noise_std,
        s.per_class,
        target_name,
        s.target_per_class,
        s.projections,
        s.tau,
        s.momentum,
        s.steps
    );
    let mut objective = SwMmd::new(target.clone(), Kernel::RIESZ, s.projections)?
        .with_directions(s.sampler.into())?;
    let optimizer = Optimizer::new(Method::Momentum { m: s.momentum }, s.tau)?;
    let mut state = FlowState::new(source);
    let mut grids = Grids {
        target: &target,
        settings: &s,
        out: &out,
        written: Vec::new(),
        error: None,
    };
    grids.write(&state)?;
    let mut progress = Progress::new(s.steps, 0, interrupt_flag());
    let flow_started = Instant::now();
    let outcome = Flow {
        objective: &mut objective,
        optimizer,
        config: FlowConfig {
            steps: s.steps,
            seed: s.seed,
            clip: None,
            temperature: None,
        },
    }
    .run(&mut state, &mut [&mut progress, &mut grids]);
    progress.finish();
    let flow_seconds = flow_started.elapsed().as_secs_f64();
    if let Some(e) = grids.error.take() {
        return Err(e.context(format!("checkpoint at step {}", state.step)));
    }
    outcome?;
    let mut csv = String::from("step,loss\n");
    for (k, l) in state.losses.iter().enumerate() {
        csv.push_str(&format!("{k},{l:.6e}\n"));
    }
    write_file(&out.join("loss.csv"), &csv)?;
    let x: Vec<f64> = (0..state.losses.len()).map(|k| k as f64).collect();
    if !x.is_empty() {
        let plot = wowflow_viz::line_plot(
            &wowflow_viz::LinePlot {
                title: "noise → MNIST: ½ MMD² (Riesz SW kernel)",
                x_label: "flow step",
                y_label: "F",
                log_y: true,
                series: &[wowflow_viz::Series {
                    name: "F",
                    x: &x,
                    y: &state.losses,
                }],
            },
            (640, 400),
        )
        .context("drawing loss.png")?;
        wowflow_viz::save_png(&plot, &out.join("loss.png")).context("writing loss.png")?;
    }
    let summary = serde_json::json!({
        "experiment": "generate",
        "target": target_name,
        "profile": args.common.profile,
        "settings": s,
        "grids": grids.written.iter().map(|(step, labels)| serde_json::json!({
            "step": step,
            "file": format!("grid_step{step:05}.png"),
            "assigned_labels": labels,
        })).collect::<Vec<_>>(),
        "steps_done": state.step,
        "final_loss": state.losses.last(),
        "flow_and_grid_seconds": flow_seconds,
        "total_seconds": started.elapsed().as_secs_f64(),
        "machine": machine(),
    });
    write_file(
        &out.join("summary.json"),
        &serde_json::to_string_pretty(&summary)?,
    )?;
    println!(
        "generated {} × {} images in {} steps ({:.1} s); grids in {}",
        classes,
        s.per_class,
        state.step,
        flow_seconds,
        out.display()
    );
    Ok(())
}

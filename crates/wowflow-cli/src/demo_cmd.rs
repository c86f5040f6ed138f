//! `wowflow demo rings`: the paper's first figure, with no data and no network.
//!
//! Three classes of Gaussian noise in R² flow to three rings (80 particles each) under the
//! Riesz SW-MMD flow; frames, an animated GIF and the loss curve show what happens.

use crate::flow_cmd::{FlowMethod, FlowSettings, KernelName};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;
use wowflow_core::toy::{gaussian_noise, rings};
use wowflow_core::{Flow, FlowState, LabeledCloud, SnapshotRecorder};
use wowflow_experiments::method::SamplerName;
use wowflow_experiments::otdd::{joint_labels, DynamicsName, OtddArgs};
use wowflow_experiments::progress::{interrupt_flag, Progress};
use wowflow_viz::{
    line_plot, save_gif, save_png, scatter, side_by_side, Bounds, LinePlot, ScatterFrame, Series,
};

/// The Gaussian kernel's bandwidth on the rings (docs/math.md §4: 0.05 on rings, 0.1
/// otherwise), the demo's default when `--h` is not given.
const RINGS_GAUSSIAN_H: f64 = 0.05;

#[derive(Subcommand, Debug)]
pub enum Demo {
    /// Gaussian noise → three rings in R² (Figure 1 of Bonet, Vauthier & Korba 2025).
    Rings(RingsArgs),
    /// A 3-D dataset → a swiss roll under each shaping functional (Figure 1, bottom row, of
    /// Alvarez-Melis & Fusi 2021).
    Shaping(crate::demo_shaping::ShapingArgs),
}

#[derive(Args, Debug)]
pub struct RingsArgs {
    /// Output directory (created): frames/, flow.gif, final.png, loss.png, loss.csv
    /// (with --compare: compare.png and one final_<method>.png per method).
    #[arg(long, default_value = "rings")]
    pub out: PathBuf,
    /// Functional to flow (sw-mmd is the paper's WoW flow; the others are the baselines).
    #[arg(long, value_enum, default_value = "sw-mmd")]
    pub method: FlowMethod,
    /// Run SW-MMD, Euclidean MMD and OTDD from the same noise and write a side-by-side
    /// figure of their final states (compare.png).
    #[arg(long)]
    pub compare: bool,
    /// Kernel between classes.
    #[arg(long, value_enum, default_value = "riesz")]
    pub kernel: KernelName,
    /// Bandwidth of the Gaussian/IMQ/Laplace kernel (the paper uses 0.05 for Gaussian here).
    #[arg(long)]
    pub h: Option<f64>,
    /// Particles per ring (and per source class).
    #[arg(long, default_value_t = 80)]
    pub per_class: usize,
    /// Number of steps.
    #[arg(long, default_value_t = 500)]
    pub steps: usize,
    /// Step size τ (plain gradient descent, as in the paper's notebook).
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Slicing directions per step.
    #[arg(long, default_value_t = 500)]
    pub projections: usize,
    /// How the directions are drawn (structured: Hadamard blocks, docs/math.md §3).
    #[arg(long, value_enum, default_value = "gaussian")]
    pub sampler: SamplerName,
    /// A frame every k steps.
    #[arg(long, default_value_t = 5)]
    pub frame_every: usize,
    /// Seed of the data and the flow.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// `--method otdd` options (label Gaussians of the joint dynamics step by --lr too).
    #[command(flatten)]
    pub otdd: OtddArgs,
}

pub fn run(demo: Demo) -> Result<()> {
    match demo {
        Demo::Rings(args) => rings_demo(&args),
        Demo::Shaping(args) => crate::demo_shaping::shaping_demo(&args),
    }
}

/// One flow of the rings demo.
struct RingsRun {
    snaps: SnapshotRecorder,
    losses: Vec<f64>,
    seconds: f64,
    /// Colour of every particle when not its source class: the target class its label
    /// cluster matched (joint-driven variable-label OTDD; noise gets the next colour).
    colours: Option<Vec<usize>>,
}

fn rings_flow(
    args: &RingsArgs,
    method: FlowMethod,
    target: &LabeledCloud,
    source: LabeledCloud,
) -> Result<RingsRun> {
    let settings = FlowSettings {
        method,
        otdd: if method == FlowMethod::Otdd {
            args.otdd.clone()
        } else {
            OtddArgs::default()
        },
        lr_sigma: args.lr,
        kernel: args.kernel,
        h: args
            .h
            .or(matches!(args.kernel, KernelName::Gaussian).then_some(RINGS_GAUSSIAN_H)),
        projections: args.projections,
        sampler: args.sampler,
        steps: args.steps,
        lr: args.lr,
        seed: args.seed,
        ..FlowSettings::default()
    };
    let mut joint = settings.joint_otdd(&source, target)?;
    let mut boxed;
    let objective: &mut dyn wowflow_core::Objective = match joint.as_mut() {
        Some(j) => j,
        None => {
            boxed = settings.objective(&source, target.clone())?;
            boxed.as_mut()
        }
    };
    let mut flow = Flow {
        objective,
        optimizer: settings.optimizer()?,
        config: settings.config(),
    };
    let mut state = FlowState::new(source);
    let mut snaps = SnapshotRecorder::new(args.frame_every);
    snaps.record(&state);
    let mut progress = Progress::new(args.steps, 0, interrupt_flag());
    let started = Instant::now();
    flow.run(&mut state, &mut [&mut progress, &mut snaps])?;
    progress.finish();
    snaps.record(&state);
    let seconds = started.elapsed().as_secs_f64();
    let colours = match joint
        .as_ref()
        .filter(|_| settings.otdd.dynamics == DynamicsName::JointVariable)
    {
        Some(j) => {
            let labels = joint_labels(j, &settings.otdd, &state.cloud, target, args.seed)?;
            eprintln!(
                "labels recovered from the particles' Gaussians: {} clusters, {} noise",
                labels.clusters.count,
                labels.clusters.noise()
            );
            let k = target.n_classes();
            Some(
                labels
                    .y
                    .iter()
                    .map(|&y| {
                        target
                            .class_ids()
                            .iter()
                            .position(|&id| id == y)
                            .unwrap_or(k)
                    })
                    .collect(),
            )
        }
        None => None,
    };
    Ok(RingsRun {
        snaps,
        losses: state.losses,
        seconds,
        colours,
    })
}

fn method_title(method: FlowMethod, kernel: &str) -> String {
    match method {
        FlowMethod::SwMmd => format!("SW-MMD flow, {kernel} kernel"),
        FlowMethod::EuclidMmd => "Euclidean MMD flow, Riesz kernel".into(),
        FlowMethod::Otdd => "OTDD flow".into(),
        FlowMethod::Dm => "DM (class means)".into(),
        FlowMethod::ProductMmd => "product-space MMD flow".into(),
    }
}

fn rings_demo(args: &RingsArgs) -> Result<()> {
    let target = rings(args.per_class, args.seed)?;
    let source = gaussian_noise(3, args.per_class, 2, 1.0, args.seed.wrapping_add(1))?;
    let kernel_name = args
        .kernel
        .kernel(match args.kernel {
            KernelName::Riesz => None,
            KernelName::Gaussian => args.h.or(Some(RINGS_GAUSSIAN_H)),
            _ => args.h,
        })?
        .name();
    wowflow_data::prepare_output_dir(&args.out.join("frames"))?;
    if args.compare {
        return compare_demo(args, &target, source, kernel_name);
    }
    let RingsRun {
        snaps,
        losses,
        seconds: secs,
        colours,
    } = rings_flow(args, args.method, &target, source)?;
    let mut title = method_title(args.method, kernel_name);
    if args.method == FlowMethod::Otdd {
        title = format!("{title} ({} dynamics)", args.otdd.dynamics_name());
    }
    let frames = render_frames(&snaps, &losses, &target, &title, colours.as_deref())?;
    for ((step, _), frame) in snaps.snapshots.iter().zip(&frames) {
        save_png(
            frame,
            &args.out.join("frames").join(format!("step_{step:05}.png")),
        )?;
    }
    if let Some(last) = frames.last() {
        save_png(last, &args.out.join("final.png"))?;
    }
    save_gif(&frames, 60, &args.out.join("flow.gif"))?;
    write_loss(&args.out, &losses, args.method.name())?;

    let first = losses.first().copied().unwrap_or(f64::NAN);
    let tail = &losses[losses.len().saturating_sub(10)..];
    let last = tail.iter().sum::<f64>() / tail.len().max(1) as f64;
    eprintln!(
        "rings ({}): {} steps in {secs:.1} s; F went from {first:.3e} to {last:.3e} (mean of the last 10 steps), a factor {:.0}",
        args.method.name(),
        args.steps,
        first / last
    );
    eprintln!(
        "wrote {}/{{flow.gif, final.png, loss.png, loss.csv, frames/}}",
        args.out.display()
    );
    Ok(())
}

/// SW-MMD vs Euclidean MMD vs OTDD from the same noise, final states side by side.
fn compare_demo(
    args: &RingsArgs,
    target: &LabeledCloud,
    source: LabeledCloud,
    kernel_name: &str,
) -> Result<()> {
    let methods = [FlowMethod::SwMmd, FlowMethod::EuclidMmd, FlowMethod::Otdd];
    let mut finals = Vec::new();
    for method in methods {
        let RingsRun {
            snaps,
            losses,
            seconds: secs,
            colours,
        } = rings_flow(args, method, target, source.clone())?;
        let mut last_only = SnapshotRecorder::new(usize::MAX);
        if let Some(last) = snaps.snapshots.last() {
            last_only.snapshots.push(last.clone());
        }
        let title = method_title(method, kernel_name);
        let frame = render_frames(&last_only, &losses, target, &title, colours.as_deref())?
            .pop()
            .context("no final frame")?;
        save_png(
            &frame,
            &args.out.join(format!("final_{}.png", method.name())),
        )?;
        eprintln!(
            "{}: {} steps in {secs:.1} s, F {:.3e} → {:.3e}",
            method.name(),
            args.steps,
            losses.first().copied().unwrap_or(f64::NAN),
            losses.last().copied().unwrap_or(f64::NAN)
        );
        finals.push((method.name(), frame));
    }
    let panels: Vec<(&str, &wowflow_viz::Rgb8Image)> =
        finals.iter().map(|(n, f)| (*n, f)).collect();
    let figure = side_by_side(&panels)?;
    let path = args.out.join("compare.png");
    save_png(&figure, &path)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn as_xy(points: &[f32]) -> Vec<[f32; 2]> {
    points.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
}

/// One scatter frame per snapshot, all on the same axes (covering every frame and the
/// target) so motion is not confused with rescaling.
fn render_frames(
    snaps: &SnapshotRecorder,
    losses: &[f64],
    target: &LabeledCloud,
    title: &str,
    colours: Option<&[usize]>,
) -> Result<Vec<wowflow_viz::Rgb8Image>> {
    let target_xy = as_xy(target.points());
    let target_labels: Vec<usize> = (0..target.n_classes())
        .flat_map(|c| std::iter::repeat_n(c, target.class_len(c)))
        .collect();
    let all: Vec<Vec<[f32; 2]>> = snaps.snapshots.iter().map(|(_, p)| as_xy(p)).collect();
    let mut sets: Vec<&[[f32; 2]]> = all.iter().map(Vec::as_slice).collect();
    sets.push(&target_xy);
    let bounds = Bounds::covering(&sets, 0.05);
    let per = target.class_len(0);
    let labels: Vec<usize> = match colours {
        Some(c) => c.to_vec(),
        None => (0..all.first().map_or(0, Vec::len))
            .map(|i| i / per)
            .collect(),
    };
    all.iter()
        .zip(&snaps.snapshots)
        .map(|(pts, (step, _))| {
            let loss = losses
                .get(*step)
                .or(losses.last())
                .copied()
                .unwrap_or(f64::NAN);
            let frame = ScatterFrame {
                points: pts,
                labels: &labels,
                target_points: &target_xy,
                target_labels: &target_labels,
                title: format!("{title} — step {step} — F = {loss:.2e}"),
            };
            Ok(scatter(&frame, &bounds, (480, 480))?)
        })
        .collect()
}

fn write_loss(dir: &Path, losses: &[f64], method: &str) -> Result<()> {
    let x: Vec<f64> = (0..losses.len()).map(|k| k as f64).collect();
    let plot = LinePlot {
        title: "the objective F along the flow",
        x_label: "step",
        y_label: "F",
        log_y: true,
        series: &[Series {
            name: method,
            x: &x,
            y: losses,
        }],
    };
    save_png(&line_plot(&plot, (640, 400))?, &dir.join("loss.png"))?;
    crate::flow_cmd::write_loss_csv(&dir.join("loss.csv"), losses)
}

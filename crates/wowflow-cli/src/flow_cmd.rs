//! `wowflow flow`: flow the user's labeled dataset towards a target.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wowflow_core::cloud::rows_to_input_order;
use wowflow_core::{FlowState, Outcome, SnapshotRecorder};
use wowflow_data::{load_cloud, prepare_output_file, rescue_path, write_csv, write_npz, NpyArray};
use wowflow_experiments::checkpoint::{self, Checkpointer, RunSettings};
pub use wowflow_experiments::method::{
    settle_class_weights, ClassWeightsArg, FinalLabels, FlowMethod, FlowSettings, KernelName,
    MethodFlow,
};
use wowflow_experiments::progress::{interrupt_flag, Progress};

#[derive(Args, Debug)]
pub struct FlowArgs {
    /// Source dataset: .npy (C, n, d), .npz with `x` (N, d) and `y` (N,), or CSV (label, features…).
    #[arg(long, value_name = "FILE")]
    pub source: PathBuf,
    /// Target dataset, same formats.
    #[arg(long, value_name = "FILE")]
    pub target: PathBuf,
    /// Output .npz: `x` (N, d) final particles in the source's row order, `y` (N,), `snapshots`
    /// (S, N, d), `snapshot_steps` (S,), `loss` (K,), `grad_norm` (K,); plus OUT_loss.csv.
    #[arg(long, value_name = "OUT.npz")]
    pub out: PathBuf,
    #[command(flatten)]
    pub settings: FlowSettings,
    /// Keep a snapshot of the particles every k steps (always the first and the last).
    #[arg(long, value_name = "k")]
    pub save_every: Option<usize>,
    /// Checkpoint file (default: OUT with `.ckpt.npz`); written on Ctrl-C and every
    /// --checkpoint-every steps.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,
    /// Write the checkpoint every k steps.
    #[arg(long, value_name = "k")]
    pub checkpoint_every: Option<usize>,
    /// Continue from a checkpoint (same settings; --steps is the new total).
    #[arg(long, value_name = "CKPT")]
    pub resume: Option<PathBuf>,
}

/// `OUT.npz` → `OUT.ckpt.npz` or `OUT_loss.csv` beside it.
pub fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "wowflow".into());
    out.with_file_name(format!("{stem}{suffix}"))
}

/// Checks, before any work, that every file this run writes can be written (the result,
/// its loss CSV, the checkpoint).
fn prepare_outputs(args: &FlowArgs, ckpt_path: &Path) -> Result<()> {
    for path in [
        args.out.as_path(),
        &sibling(&args.out, "_loss.csv"),
        ckpt_path,
    ] {
        prepare_output_file(path)?;
    }
    Ok(())
}

/// Runs `write` on `path`; if that fails, runs it on [`rescue_path`] so the result is not
/// lost, and fails with both places named. `write` writes everything that belongs to one
/// result (its siblings are derived from the path it is given).
pub fn write_or_rescue(path: &Path, write: impl Fn(&Path) -> Result<()>) -> Result<()> {
    let Err(error) = write(path) else {
        return Ok(());
    };
    let fallback = rescue_path(path);
    match write(&fallback) {
        Ok(()) => Err(error.context(format!(
            "could not write {}; the result was written to {} instead",
            path.display(),
            fallback.display()
        ))),
        Err(second) => Err(error.context(format!(
            "could not write {}, nor the fallback {} ({second:#})",
            path.display(),
            fallback.display()
        ))),
    }
}

pub fn run(args: FlowArgs) -> Result<()> {
    let ckpt_path = args
        .checkpoint
        .clone()
        .unwrap_or_else(|| sibling(&args.out, ".ckpt.npz"));
    prepare_outputs(&args, &ckpt_path)?;
    let mut source = load_cloud(&args.source)?;
    let mut target = load_cloud(&args.target)?;
    let weighting = args.settings.method.class_weighting();
    settle_class_weights(&mut source, args.settings.class_weights, weighting)?;
    settle_class_weights(&mut target, args.settings.class_weights, weighting)?;
    if source.cloud.dim() != target.cloud.dim() {
        bail!(
            "{} has d = {} features but {} has d = {}: both datasets must live in the same space",
            args.source.display(),
            source.cloud.dim(),
            args.target.display(),
            target.cloud.dim()
        );
    }
    let settings = RunSettings::of(&args.settings, &source.cloud, &target.cloud)?;
    let save_checkpoint =
        |state: &FlowState| write_or_rescue(&ckpt_path, |p| checkpoint::save(p, state, &settings));
    let mut state = match &args.resume {
        Some(p) => checkpoint::load(p, &settings)?,
        None => FlowState::new(source.cloud.clone()),
    };
    let interrupted = interrupt_flag();
    let mut progress = Progress::new(args.settings.steps, state.step, interrupted.clone());
    let mut snaps = SnapshotRecorder::new(args.save_every.unwrap_or(usize::MAX));
    snaps.record(&state);
    let mut ckpt = Checkpointer {
        path: &ckpt_path,
        every: args.checkpoint_every.unwrap_or(0),
        settings: &settings,
    };
    let started = Instant::now();
    let first_step = state.step;
    // Built before the loop so that bad settings or a missing GPU are errors of their own,
    // not a "diverged, checkpoint saved" one.
    let mut flow = MethodFlow::new(&args.settings, &state, &source.cloud, &target.cloud)?;
    let outcome = flow.run(&mut state, &mut [&mut progress, &mut snaps, &mut ckpt]);
    progress.finish();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            save_checkpoint(&state)?;
            return Err(e).with_context(|| {
                format!(
                    "the state of the last good step is saved in {}",
                    ckpt_path.display()
                )
            });
        }
    };
    if outcome == Outcome::Stopped {
        save_checkpoint(&state)?;
        eprintln!(
            "interrupted after step {}; checkpoint written to {}\nresume with: wowflow flow ... --resume {}",
            state.step,
            ckpt_path.display(),
            ckpt_path.display()
        );
        return Ok(());
    }
    snaps.record(&state);
    let FinalLabels { labels, joint } = flow.final_labels(&state, &target.cloud)?;
    write_or_rescue(&args.out, |out| {
        write_outputs(
            out,
            &state,
            &source.order,
            &snaps,
            labels.as_deref(),
            joint.as_ref(),
        )
    })?;
    if let Some(r) = joint.as_ref().filter(|r| r.cluster.is_some()) {
        eprintln!(
            "labels: {} clusters ({} noise particles) from the particles' Gaussians ({:?}); \
             y holds the matched target labels, cluster the raw clusters",
            r.clusters.count,
            r.clusters.noise(),
            args.settings.otdd.clustering,
        );
    }
    let secs = started.elapsed().as_secs_f64();
    let steps = state.step - first_step;
    eprintln!(
        "flowed {} particles ({} classes, d = {}) for {steps} steps in {secs:.1} s ({:.1} steps/s); F: {:.4e} → {:.4e}",
        state.cloud.n_points(),
        state.cloud.n_classes(),
        state.cloud.dim(),
        steps as f64 / secs.max(1e-9),
        state.losses.first().copied().unwrap_or(f64::NAN),
        state.losses.last().copied().unwrap_or(f64::NAN),
    );
    eprintln!(
        "wrote {} and {}",
        args.out.display(),
        sibling(&args.out, "_loss.csv").display()
    );
    Ok(())
}

/// `step,loss` rows, one per step.
pub fn write_loss_csv(path: &Path, losses: &[f64]) -> Result<()> {
    write_csv(
        path,
        &["step", "loss"],
        losses
            .iter()
            .enumerate()
            .map(|(k, l)| vec![k.to_string(), l.to_string()]),
    )?;
    Ok(())
}

/// Writes the result `.npz` (input row order) and the loss CSV.
/// `labels`: each particle's label when the run assigned new ones (cloud row order), else
/// the classes' ids; `joint`: the label Gaussians a joint-driven OTDD run ends with
/// (`cluster`, `label_means`, `label_covs` are added).
pub fn write_outputs(
    out: &Path,
    state: &FlowState,
    order: &[usize],
    snaps: &SnapshotRecorder,
    labels: Option<&[i64]>,
    joint: Option<&wowflow_experiments::otdd::JointLabels>,
) -> Result<()> {
    let cloud = &state.cloud;
    let (n, d) = (cloud.n_points(), cloud.dim());
    let in_input_order = |row_values: &[i64]| {
        let mut out = vec![0i64; n];
        for (&i, &y) in order.iter().zip(row_values) {
            out[i] = y;
        }
        out
    };
    let labels = in_input_order(&labels.map_or_else(|| cloud.row_labels(), <[i64]>::to_vec));
    let mut snapshot_data = Vec::with_capacity(snaps.snapshots.len() * n * d);
    for (_, pts) in &snaps.snapshots {
        snapshot_data.extend(rows_to_input_order(pts, d, order));
    }
    let steps: Vec<i64> = snaps.snapshots.iter().map(|(s, _)| *s as i64).collect();
    let x = NpyArray::f32(vec![n, d], cloud.to_input_order(order));
    let y = NpyArray::i64(vec![n], labels);
    let snapshots = NpyArray::f32(vec![snaps.snapshots.len(), n, d], snapshot_data);
    let snapshot_steps = NpyArray::i64(vec![steps.len()], steps);
    let loss = NpyArray::f64(vec![state.losses.len()], state.losses.clone());
    let grad_norm = NpyArray::f64(vec![state.grad_norms.len()], state.grad_norms.clone());
    let mut arrays: Vec<(&str, &NpyArray)> = vec![
        ("x", &x),
        ("y", &y),
        ("snapshots", &snapshots),
        ("snapshot_steps", &snapshot_steps),
        ("loss", &loss),
        ("grad_norm", &grad_norm),
    ];
    let cluster = joint
        .and_then(|j| j.cluster.as_ref())
        .map(|c| NpyArray::i64(vec![n], in_input_order(c)));
    if let Some(c) = &cluster {
        arrays.push(("cluster", c));
    }
    if let Some(j) = joint {
        arrays.extend(j.arrays.iter().map(|(name, a)| (*name, a)));
    }
    write_npz(out, &arrays)?;
    write_csv(
        &sibling(out, "_loss.csv"),
        &["step", "loss", "grad_norm"],
        state
            .losses
            .iter()
            .zip(&state.grad_norms)
            .enumerate()
            .map(|(k, (l, g))| vec![k.to_string(), l.to_string(), g.to_string()]),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn a_failed_write_goes_to_the_rescue_path_and_both_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let wanted = dir.path().join("gone/flowed.npz");
        let tried = RefCell::new(Vec::new());
        // The destination fails (as when its directory vanished during the run); the
        // fallback is written with the same bytes.
        let e = write_or_rescue(&wanted, |p| {
            tried.borrow_mut().push(p.to_path_buf());
            if p == wanted {
                bail!("disk full");
            }
            std::fs::write(p, b"result")?;
            Ok(())
        })
        .unwrap_err();
        let tried = tried.into_inner();
        assert_eq!(tried.len(), 2);
        let fallback = &tried[1];
        assert_eq!(fallback, &rescue_path(&wanted));
        assert_eq!(std::fs::read(fallback).unwrap(), b"result");
        let msg = format!("{e:#}");
        assert!(
            msg.contains("gone/flowed.npz")
                && msg.contains(&fallback.display().to_string())
                && msg.contains("disk full"),
            "{msg}"
        );
        std::fs::remove_file(fallback).unwrap();
        // A write that works touches nothing else.
        let fine = dir.path().join("fine.npz");
        write_or_rescue(&fine, |p| Ok(std::fs::write(p, b"ok")?)).unwrap();
        assert_eq!(std::fs::read(&fine).unwrap(), b"ok");
    }
}

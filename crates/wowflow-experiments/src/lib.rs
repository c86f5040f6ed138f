//! # wowflow-experiments
//!
//! The papers' experiments as a library, each a protocol from a typed TOML profile
//! (`experiments/*.toml`) to the files it writes: domain adaptation ([`domain_adaptation`]),
//! class-conditional generation ([`generate`]), k-shot transfer learning (Table 2,
//! [`transfer`]), dataset distillation (Table 1, [`distill`]), model re-purposing
//! (Alvarez-Melis & Fusi's Table 1, [`repurpose`]), trajectories and a learned push-forward
//! as training data (their Figures 3e and 4, [`trajectories`]) and the table runner that fills
//! a paper's table cell by cell and resumes ([`table`]); the networks that score them are
//! trained in [`evaluate`].
//!
//! Each config holds complete profiles (`[profile.quick]`, `[profile.paper]`); the built-in
//! copies of `experiments/*.toml` are compiled in, and a file given in the options replaces
//! them. The options of every experiment are plain structs (`DaArgs`, `TransferArgs`, …);
//! with the `clap` feature (the `wowflow` binary turns it on) they are also its command-line
//! arguments, so each option is written once.
//!
//! Every flow method by name ([`method`]) and every dataset distance by name
//! ([`distance`]) are here too, so the CLI, the demos and the Python package share one
//! dispatch and give the same bits for the same settings. Around the experiments: where SW-MMD flows run, on the CPU or resident on a GPU
//! ([`device`], [`resident`]), the OTDD flow's settings and the labels its joint dynamics end
//! with ([`otdd`]), and the progress bar and Ctrl-C handling of long runs ([`progress`]).

#![warn(missing_docs)]

pub mod bench;
pub mod checkpoint;
pub mod device;
pub mod distance;
pub mod distill;
pub mod domain_adaptation;
pub mod evaluate;
pub mod generate;
pub mod method;
pub mod otdd;
pub mod progress;
pub mod repurpose;
pub mod resident;
pub mod table;
pub mod trajectories;
pub mod transfer;
pub mod trials;

use crate::progress::{interrupt_flag, Progress};
use anyhow::{anyhow, Context, Result};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use wowflow_core::{
    Flow, FlowConfig, FlowState, LabeledCloud, Objective, Observer, Optimizer, Outcome,
};
use wowflow_data::{draw_disjoint, load_split, to_cloud, DataDirs, Split, Transform};
use wowflow_ot::{assign_by_nearest_neighbor, assign_by_ot, ClassCost, LabelAssignment};

/// The experiments, one per `wowflow experiment` subcommand; [`run`] runs one.
#[cfg_attr(feature = "clap", derive(clap::Subcommand))]
pub enum Experiment {
    /// Flow Fashion-MNIST, KMNIST or USPS to MNIST and watch a frozen MNIST classifier's
    /// accuracy on the flowed images rise (writes CSV, plot and image grids).
    DomainAdaptation(domain_adaptation::DaArgs),
    /// Flow Gaussian noise to the MNIST classes (class-conditional generation; image grids).
    Generate(generate::GenerateArgs),
    /// k-shot transfer learning: flow MNIST to k images per class of another dataset and
    /// train LeNet-5 on the k-shot set with and without the flowed images (Table 2).
    Transfer(transfer::TransferArgs),
    /// Dataset distillation: flow k real images per class to the whole class and train a
    /// ConvNet on them (Table 1).
    Distill(distill::DistillArgs),
    /// Fill one of the paper's tables (`experiments/table1.toml`, `table2.toml`) cell by
    /// cell, with the paper's number beside ours; resumes where it stopped.
    Table(table::TableArgs),
}

/// Runs an experiment to the end: loads its profile, computes, and writes its result files.
pub fn run(e: Experiment) -> Result<()> {
    match e {
        Experiment::DomainAdaptation(args) => domain_adaptation::run(args),
        Experiment::Generate(args) => generate::run(args),
        Experiment::Transfer(args) => transfer::run(args),
        Experiment::Distill(args) => distill::run(args),
        Experiment::Table(args) => table::run(args),
    }
}

/// Options every experiment takes.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct CommonArgs {
    /// A TOML config with `[profile.NAME]` tables (default: the built-in copy of
    /// `experiments/<experiment>.toml`).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub config: Option<PathBuf>,
    /// Which profile of the config to run: `quick` (CPU-sized) or `paper`.
    #[cfg_attr(feature = "clap", arg(long, default_value = "quick"))]
    pub profile: String,
    /// Output directory [default: runs/EXPERIMENT-...-PROFILE].
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub out: Option<PathBuf>,
    /// Where datasets are looked for first (then $WOWFLOW_DATA, then the cache directory).
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub data_dir: Option<PathBuf>,
}

/// Reads profile `profile` of a config: `file` if given, else the built-in text.
pub fn load_profile<T: DeserializeOwned>(
    builtin: &str,
    builtin_name: &str,
    file: Option<&Path>,
    profile: &str,
) -> Result<T> {
    let (text, origin) = match file {
        Some(p) => (
            std::fs::read_to_string(p)
                .with_context(|| format!("reading config {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (builtin.to_string(), format!("built-in {builtin_name}")),
    };
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing config {origin}"))?;
    let profiles = table
        .get("profile")
        .and_then(|p| p.as_table())
        .ok_or_else(|| anyhow!("config {origin}: no [profile.NAME] tables"))?;
    let value = profiles.get(profile).ok_or_else(|| {
        let names: Vec<&str> = profiles.keys().map(String::as_str).collect();
        anyhow!(
            "config {origin}: no profile `{profile}` (it has: {})",
            names.join(", ")
        )
    })?;
    value
        .clone()
        .try_into()
        .with_context(|| format!("config {origin}, [profile.{profile}]"))
}

/// The registry name of a dataset given on the command line (`fmnist` → `fashion-mnist`).
pub fn dataset_name(s: &str) -> &str {
    match s {
        "fmnist" | "fashion" => "fashion-mnist",
        other => other,
    }
}

/// `per_class` seeded images of every class of `name`'s train split as a (10, n, 784) cloud
/// in MNIST space (resized to 28×28 if needed). Where the train split is missing (KMNIST in
/// the shared data) the documented fallback is used: a seeded half of the test split; the
/// returned note says so.
pub fn sample_train(
    dirs: &DataDirs,
    name: &str,
    per_class: usize,
    seed: u64,
) -> Result<(LabeledCloud, Option<String>)> {
    let (set, note) = match load_split(dirs, name, Split::Train) {
        Ok(set) => (set, None),
        Err(wowflow_data::DataError::NotFound { .. }) => {
            let pe = wowflow_data::pool_and_eval(dirs, name, seed)
                .with_context(|| format!("loading {name}"))?;
            (pe.pool, pe.note)
        }
        Err(e) => return Err(e).with_context(|| format!("loading the {name} train split")),
    };
    let t = Transform::mnist_size(&set);
    let draw = draw_disjoint(&set, &[per_class], seed)
        .with_context(|| format!("drawing {per_class} images per class of {name}"))?;
    let cloud = to_cloud(&set, &draw[0], &t).with_context(|| format!("sampling {name}"))?;
    Ok((cloud, note))
}

/// How flowed classes get their labels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AssignMethod {
    /// `sliced`: exact OT between flowed and target classes with cost SW₂² between the class
    /// clouds (the experiments' choice; `projections` directions).
    Sliced,
    /// `wasserstein`: exact OT between classes with cost exact W₂² between the class clouds
    /// (slow: one network simplex per class pair).
    Wasserstein,
    /// `nearest-neighbor`: each flowed class takes the majority label of its images' nearest
    /// target images (1-NN, squared Euclidean distance).
    NearestNeighbor,
}

/// The `assign` table of a profile: how flowed classes are given target labels
/// (docs/math.md §8).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AssignSettings {
    /// The rule: `sliced`, `wasserstein` or `nearest-neighbor`.
    pub method: AssignMethod,
    /// Slicing directions L for `sliced` (drawn once, the same at every checkpoint; default
    /// 500).
    #[serde(default = "default_assign_projections")]
    pub projections: usize,
}

fn default_assign_projections() -> usize {
    500
}

impl AssignSettings {
    /// The target label of every class of `flowed` (classes of `target`, by `method`).
    pub fn assign(&self, flowed: &LabeledCloud, target: &LabeledCloud) -> Result<LabelAssignment> {
        Ok(match self.method {
            AssignMethod::Sliced => assign_by_ot(
                flowed,
                target,
                ClassCost::Sliced {
                    projections: self.projections,
                    seed: 0,
                },
            )?,
            AssignMethod::Wasserstein => assign_by_ot(flowed, target, ClassCost::Wasserstein)?,
            AssignMethod::NearestNeighbor => assign_by_nearest_neighbor(flowed, target)?,
        })
    }
}

/// The first `per_class` images of every class of `cloud`, classes in `order`, as one
/// image-major buffer for [`wowflow_viz::image_grid`] (one row per class).
pub fn grid_images(cloud: &LabeledCloud, order: &[usize], per_class: usize) -> (Vec<f32>, usize) {
    let d = cloud.dim();
    let mut out = Vec::new();
    let mut cols = usize::MAX;
    for &c in order {
        let n = cloud.class_len(c).min(per_class);
        cols = cols.min(n);
    }
    let cols = cols.clamp(1, per_class.max(1));
    for &c in order {
        let pts = cloud.class_points(c);
        for i in 0..cols.min(cloud.class_len(c)) {
            out.extend_from_slice(&pts[i * d..(i + 1) * d]);
        }
    }
    (out, cols)
}

/// Saves a grid of 28×28 images (one row per class) as PNG.
pub fn save_grid(
    cloud: &LabeledCloud,
    order: &[usize],
    per_class: usize,
    path: &Path,
) -> Result<()> {
    let (images, cols) = grid_images(cloud, order, per_class);
    let count = images.len() / 784;
    let img = wowflow_viz::image_grid(&images, count, 28, 28, cols, 2)
        .with_context(|| format!("drawing {}", path.display()))?;
    wowflow_viz::save_png(&img, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Removes the `grid_step*.png` files an earlier run left in `out`, so the grids there are
/// all from this run.
pub fn clear_old_grids(out: &Path) -> Result<()> {
    let entries = std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("grid_step") && name.ends_with(".png") {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// A line describing this machine for result files: CPU model and thread count.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {threads} threads")
}

/// Runs a cell's flow (`run`, given the state and the observers) with the progress bar and,
/// with `segments`, the segment saver. Ctrl-C (or SIGTERM / SIGHUP, as a batch scheduler sends
/// before it kills a job) stops the flow after the current step; its state is then saved as
/// the last segment and the run ends with an error naming the step, so the same command
/// continues exactly from there.
pub fn run_observed(
    steps: usize,
    segments: Option<&checkpoint::FlowSegments>,
    state: &mut FlowState,
    run: impl FnOnce(&mut FlowState, &mut [&mut dyn Observer]) -> Result<Outcome>,
) -> Result<()> {
    let mut progress = Progress::new(steps, state.step, interrupt_flag());
    let mut saver = segments.map(|s| s.saver());
    let outcome = {
        let mut list: Vec<&mut dyn Observer> = vec![&mut progress];
        if let Some(saver) = saver.as_mut() {
            list.push(saver);
        }
        run(state, &mut list)
    };
    progress.finish();
    if outcome? == Outcome::Stopped {
        let Some(segments) = segments else {
            return Err(anyhow!(
                "interrupted at flow step {} of {steps}",
                state.step
            ));
        };
        segments.save(state)?;
        return Err(anyhow!(
            "interrupted at flow step {} of {steps}; the flow's state is saved in {} and the \
             same command continues from there",
            state.step,
            segments.path.display()
        ));
    }
    Ok(())
}

/// Refuses the first setting among `(name, value)` pairs that is 0, naming it: the counts of a
/// profile (steps, images, trials …) must be at least 1.
pub(crate) fn at_least_one(settings: &[(&str, usize)]) -> Result<()> {
    match settings.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(anyhow!("setting `{name}` must be at least 1")),
        None => Ok(()),
    }
}

/// Writes `text` to `path` atomically (an interrupted run never leaves half a result).
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    wowflow_data::write_text_atomic(path, text)
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `steps` steps of a flow from `start` with a progress bar. Ctrl-C aborts with an
/// error; with `segments`, the flow continues from its last saved segment and saves one
/// every `segments.every` steps (and `segments.every_seconds` seconds), and on Ctrl-C, so an
/// interrupted cell resumes inside its flow ([`run_observed`]).
pub fn run_flow(
    objective: &mut dyn Objective,
    optimizer: Optimizer,
    start: LabeledCloud,
    steps: usize,
    seed: u64,
    segments: Option<&checkpoint::FlowSegments>,
) -> Result<FlowState> {
    let mut state = checkpoint::FlowSegments::resume_or_start(segments, start)?;
    run_observed(steps, segments, &mut state, |state, observers| {
        let mut flow = Flow {
            objective,
            optimizer,
            config: FlowConfig {
                steps,
                seed,
                clip: None,
                temperature: None,
            },
        };
        Ok(flow.run(state, observers)?)
    })?;
    Ok(state)
}

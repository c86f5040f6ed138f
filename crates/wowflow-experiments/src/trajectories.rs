//! Trajectories as training data and a learned push-forward map (Alvarez-Melis & Fusi 2021,
//! §6.3 and §7.2, their Figures 3e and 4; docs/math.md §9). Protocol and profiles in
//! `experiments/trajectories.toml`; the table is `experiments/amf-fig3.toml`
//! (`wowflow experiment table`).
//!
//! A k-shot transfer task: `k` labelled images per class of the target and a labelled source
//! (MNIST, 200 per class: their 2 000 particles). The source is flowed to the k-shot set
//! (OTDD flow or WoW SW-MMD flow), and LeNet-5 is trained on the k-shot set plus, in turn:
//!
//! - `initial`: the source images before the flow (`z₀`);
//! - `final`: the flowed images (`z_T`);
//! - `trajectory`: `snapshots` states evenly spaced along the flow, the last one `z_T`
//!   (`z_{1:T}`; they keep every step, which at 2 000 × 784 would be gigabytes);
//! - `mapped`: source images that were never flowed, moved by a network `h: x₀ ↦ x_T`
//!   fitted on the flow's pairs ([`wowflow_nn::pushforward`]) and labelled by their nearest
//!   flowed particle — no label of theirs is used (their semi-supervised setting);
//!
//! with every flowed (or initial) image labelled by the target class its flowed class is
//! coupled with ([`crate::AssignSettings`]). Two columns need no flow: `target-only`, and
//! `fine-tune` — model adaptation instead of data adaptation (their Figure 4): LeNet-5 trained
//! on the labelled source, then fine-tuned on the k-shot set.
//!
//! One flow per (target, k, method, trial) is shared by its four columns: it is stored under
//! the table's `cells/flows/` with the initial particles, the snapshots, the push-forward's
//! images and the push-forward's error on held-out particles (`h(x₀)` against the true
//! `x_T` of flowed particles that `h` never saw).
//!
//! A stopped table resumes per network and per stored flow; a flow interrupted midway restarts
//! from its beginning (its snapshots live in memory until it is stored: these flows take
//! minutes, not the hour of a Table 2 cell).

use super::{load_profile, machine, sample_train, AssignSettings};
use crate::evaluate::{train_and_test, EvalNet, FlowRecord, Score, Stats, TrainSettings};
use crate::method::{MethodFlow, OtddRun, SwMmdRun};
use crate::progress::{interrupt_flag, Progress};
use crate::trials::{arrays_of, images_of, TrialStore};
use anyhow::{anyhow, bail, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;
use wowflow_core::{Control, FlowState, LabeledCloud, Observer, Outcome, StepInfo};
use wowflow_data::{draw_disjoint, pool_and_eval, to_cloud, DataDirs, NpyArray, Transform};
use wowflow_nn::native::{read_params, write_params};
use wowflow_nn::pushforward::mean_squared_error;
use wowflow_nn::{
    evaluate, fit_push_forward, train, Budget, CpuAutodiff, CpuBackend, Images, LeNet5,
    PushForwardConfig, PushForwardReport, TrainConfig,
};

const BUILTIN: &str = include_str!("../../../experiments/trajectories.toml");
const SHAPE: (usize, usize, usize) = (1, 28, 28);
const CLASSES: usize = 10;

/// The flow whose output is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowKind {
    /// The feature-driven OTDD flow.
    Otdd,
    /// The WoW SW-MMD flow.
    SwMmd,
}

impl FlowKind {
    /// Both, in table order.
    pub const ALL: [FlowKind; 2] = [Self::Otdd, Self::SwMmd];

    /// The name used in configs and keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::Otdd => "otdd",
            Self::SwMmd => "sw-mmd",
        }
    }
}

/// What LeNet-5 is trained on besides the k-shot set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainingData {
    /// Nothing: the k-shot set alone.
    TargetOnly,
    /// Model adaptation: pre-trained on the labelled source, fine-tuned on the k-shot set.
    FineTune,
    /// The source images before the flow.
    Initial,
    /// The flowed images.
    Final,
    /// Snapshots along the flow, the flowed images included.
    Trajectory,
    /// Never-flowed source images moved by the push-forward network.
    Mapped,
}

impl TrainingData {
    /// Every kind, in table order.
    pub const ALL: [TrainingData; 6] = [
        Self::TargetOnly,
        Self::FineTune,
        Self::Initial,
        Self::Final,
        Self::Trajectory,
        Self::Mapped,
    ];

    /// The name used in configs and keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::TargetOnly => "target-only",
            Self::FineTune => "fine-tune",
            Self::Initial => "initial",
            Self::Final => "final",
            Self::Trajectory => "trajectory",
            Self::Mapped => "mapped",
        }
    }

    /// Whether this kind uses a flow's output.
    pub fn needs_flow(self) -> bool {
        !matches!(self, Self::TargetOnly | Self::FineTune)
    }
}

/// One cell: a k-shot task, a kind of training data and (for flowed data) the flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TrajectoryCell {
    /// The k-shot dataset (`usps`, `fashion-mnist`, `kmnist`).
    pub target: String,
    /// Images per class of the k-shot set.
    pub k: usize,
    /// What is added to the k-shot set.
    pub data: TrainingData,
    /// The flow (`None` for `target-only` and `fine-tune`).
    pub flow: Option<FlowKind>,
}

impl TrajectoryCell {
    /// `traj-TARGET-kK-DATA` or `traj-TARGET-kK-FLOW-DATA`.
    pub fn key(&self) -> String {
        match self.flow {
            Some(f) => format!(
                "traj-{}-k{}-{}-{}",
                self.target,
                self.k,
                f.name(),
                self.data.name()
            ),
            None => format!("traj-{}-k{}-{}", self.target, self.k, self.data.name()),
        }
    }

    fn flow_key(&self, flow: FlowKind) -> String {
        format!("traj-{}-k{}-{}", self.target, self.k, flow.name())
    }

    /// The directory, relative to the table's `cells/`, of the flow this cell shares with
    /// the other columns of its row (`None` without a flow).
    pub fn shared_flow_dir(&self) -> Option<String> {
        self.flow.map(|f| format!("flows/{}", self.flow_key(f)))
    }
}

/// The `fine_tune` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FineTuneSettings {
    /// Epochs on the labelled source (theirs: 20).
    pub pretrain_epochs: usize,
    /// Epochs on the k-shot set (theirs: 10).
    pub epochs: usize,
}

/// A profile of `experiments/trajectories.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajectorySettings {
    /// One line saying what the profile is.
    pub description: String,
    /// The labelled source dataset.
    pub source: String,
    /// Source images per class that are flowed (theirs: 2 000 particles in all).
    pub source_per_class: usize,
    /// Further source images per class, never flowed, moved by the push-forward network.
    pub unlabeled_per_class: usize,
    /// Flows per cell (trial t draws its k-shot set, its source and its flow from seed + t).
    pub trials: usize,
    /// Networks trained per flow.
    pub evals: usize,
    /// Seed of trial 0.
    pub seed: u64,
    /// Seed of the documented fallback split where a train split is missing (KMNIST).
    pub split_seed: u64,
    /// States kept along each flow (evenly spaced; the last is the flowed set).
    pub snapshots: usize,
    /// The OTDD flow.
    pub otdd: OtddRun,
    /// The SW-MMD flow.
    pub sw_mmd: SwMmdRun,
    /// How flowed classes get target labels.
    pub assign: AssignSettings,
    /// The push-forward network and its fit.
    pub pushforward: PushForwardConfig,
    /// Share of the flowed particles kept from the push-forward's fit, to measure its error.
    pub holdout: f64,
    /// LeNet-5 on the k-shot set plus the added images.
    pub train: TrainSettings,
    /// The model-adaptation column.
    pub fine_tune: FineTuneSettings,
}

impl TrajectorySettings {
    /// Reads and checks profile `profile` of `config` (default: the built-in
    /// `experiments/trajectories.toml`).
    pub fn load(config: Option<&Path>, profile: &str) -> Result<Self> {
        let s: Self = load_profile(BUILTIN, "experiments/trajectories.toml", config, profile)?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        crate::at_least_one(&[
            ("source_per_class", self.source_per_class),
            ("unlabeled_per_class", self.unlabeled_per_class),
            ("trials", self.trials),
            ("evals", self.evals),
            ("snapshots", self.snapshots),
            ("fine_tune.pretrain_epochs", self.fine_tune.pretrain_epochs),
            ("fine_tune.epochs", self.fine_tune.epochs),
        ])?;
        if !(self.holdout > 0.0 && self.holdout < 1.0) {
            bail!("setting `holdout` must lie in (0, 1), got {}", self.holdout);
        }
        // Before the flow, not after: the push-forward is fitted once the flow has run.
        self.pushforward
            .validate()
            .context("settings `pushforward`")?;
        let n = self.source_per_class * CLASSES;
        if n < 2 || n - held_out(n, self.holdout) < 2 {
            bail!(
                "settings `source_per_class` = {} and `holdout` = {} leave fewer than 2 flowed \
                 particles to fit the push-forward on",
                self.source_per_class,
                self.holdout
            );
        }
        if self.train.net != EvalNet::Lenet5 {
            bail!(
                "setting `train.net`: the trajectory cells and the fine-tuning column train \
                 LeNet-5 (their protocol); other networks are not supported here"
            );
        }
        self.otdd.flow_settings(0).context("settings `otdd`")?;
        self.sw_mmd.flow_settings(0).context("settings `sw_mmd`")?;
        self.train.validate("train")
    }

    fn flow_steps(&self, flow: FlowKind) -> usize {
        match flow {
            FlowKind::Otdd => self.otdd.steps,
            FlowKind::SwMmd => self.sw_mmd.steps,
        }
    }
}

/// What a stored flow records besides its arrays.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowTrial {
    /// Seed of the draws and the flow.
    pub seed: u64,
    /// Target class given to each source class.
    pub labels: Vec<usize>,
    /// Steps at which the snapshots were taken.
    pub snapshot_steps: Vec<usize>,
    /// The flow's time, steps and losses.
    #[serde(flatten)]
    pub flow: FlowRecord,
    /// The push-forward's fit.
    pub pushforward: PushForwardReport,
    /// Mean squared error per pixel of `h(x₀)` against the true `x_T`, on flowed particles
    /// `h` was not fitted on.
    pub heldout_mse: f64,
    /// The same error with no map (`x₀` against `x_T`).
    pub heldout_mse_identity: f64,
    /// Held-out particles.
    pub heldout: usize,
    /// Share of mapped images whose nearest-particle label is the label of their (unused)
    /// true source class: how much the labels of `mapped` can be trusted.
    pub mapped_label_agreement: f64,
}

/// A finished cell.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    /// The cell.
    pub cell: TrajectoryCell,
    /// The profile.
    pub profile: String,
    /// Its settings.
    pub settings: TrajectorySettings,
    /// Test accuracy over every network: mean ± std, percent.
    pub accuracy: Stats,
    /// Every network's score, trial by trial.
    pub scores: Vec<Vec<Score>>,
    /// The flows used (none for `target-only` and `fine-tune`).
    pub flows: Vec<FlowTrial>,
    /// Where the documented fallback split applied (KMNIST).
    pub note: Option<String>,
    /// Wall time.
    pub seconds: f64,
    /// CPU and threads.
    pub machine: String,
}

/// The k-shot set, the flowed and the unlabelled source of one trial.
struct Draw {
    target: LabeledCloud,
    source: LabeledCloud,
    unlabeled: LabeledCloud,
}

fn draw(
    dirs: &DataDirs,
    cell: &TrajectoryCell,
    settings: &TrajectorySettings,
    pool: &wowflow_data::ImageSet,
    seed: u64,
) -> Result<Draw> {
    let t = Transform::mnist_size(pool);
    let shots = draw_disjoint(pool, &[cell.k], seed)
        .with_context(|| format!("drawing {} images per class of {}", cell.k, cell.target))?;
    let target = to_cloud(pool, &shots[0], &t)?;
    let per = settings.source_per_class + settings.unlabeled_per_class;
    let (all, note) = sample_train(dirs, &settings.source, per, seed)?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    if all.dim() != target.dim() || all.n_classes() != CLASSES || target.n_classes() != CLASSES {
        bail!(
            "{} and {} must both be 10 classes of 28×28 images",
            settings.source,
            cell.target
        );
    }
    let split = |lo: usize, hi: usize| -> Vec<Vec<usize>> {
        (0..all.n_classes()).map(|_| (lo..hi).collect()).collect()
    };
    let source = all.select(&split(0, settings.source_per_class))?;
    let unlabeled = all.select(&split(settings.source_per_class, per))?;
    Ok(Draw {
        target,
        source,
        unlabeled,
    })
}

/// Keeps the cloud at evenly spaced steps.
struct Snapshots {
    every: usize,
    kept: Vec<(usize, Vec<f32>)>,
}

impl Observer for Snapshots {
    fn on_step(&mut self, _: &StepInfo, state: &FlowState) -> wowflow_core::Result<Control> {
        if state.step.is_multiple_of(self.every) {
            self.kept.push((state.step, state.cloud.points().to_vec()));
        }
        Ok(Control::Continue)
    }

    fn needs_state(&self, steps_done: usize, _total: usize) -> bool {
        steps_done.is_multiple_of(self.every)
    }
}

/// Flowed particles kept from the push-forward's fit: `holdout · n`, at least 1, at most
/// `n − 1` (`n ≥ 2`).
fn held_out(n: usize, holdout: f64) -> usize {
    ((n as f64 * holdout).round() as usize).clamp(1, n.saturating_sub(1).max(1))
}

fn clamp01(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.clamp(0.0, 1.0)).collect()
}

/// Flows trial `seed`'s source to its k-shot set, labels the flowed classes, fits the
/// push-forward and maps the unlabelled images; returns the record and the arrays stored.
fn compute_flow(
    d: &Draw,
    flow: FlowKind,
    settings: &TrajectorySettings,
    seed: u64,
    figures: Option<&Path>,
) -> Result<(FlowTrial, Vec<(&'static str, NpyArray)>)> {
    let flow_settings = match flow {
        FlowKind::Otdd => settings.otdd.flow_settings(seed)?,
        FlowKind::SwMmd => settings.sw_mmd.flow_settings(seed)?,
    };
    let steps = settings.flow_steps(flow);
    let started = Instant::now();
    let mut state = FlowState::new(d.source.clone());
    let mut runner = MethodFlow::new(&flow_settings, &state, &d.source, &d.target)?;
    let mut snaps = Snapshots {
        every: steps.div_ceil(settings.snapshots).max(1),
        kept: Vec::new(),
    };
    let mut progress = Progress::new(steps, 0, interrupt_flag());
    let outcome = runner.run(&mut state, &mut [&mut progress, &mut snaps])?;
    progress.finish();
    if outcome == Outcome::Stopped {
        bail!("interrupted at flow step {} of {steps}", state.step);
    }
    if snaps.kept.last().map(|(s, _)| *s) != Some(state.step) {
        snaps.kept.push((state.step, state.cloud.points().to_vec()));
    }
    let record = FlowRecord::new(started, state.step, &state.losses);
    let assignment = settings.assign.assign(&state.cloud, &d.target)?;
    let y: Vec<usize> = assignment.row_labels(&state.cloud);
    let n = d.source.n_points();
    let x0 = clamp01(d.source.points());
    let xt = clamp01(state.cloud.points());

    // The push-forward: fitted on the pairs of (1 − holdout) of the particles.
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9));
    let held = held_out(n, settings.holdout);
    let (fit_idx, held_idx) = order.split_at(n - held);
    let rows = |v: &[f32], idx: &[usize]| -> Result<Images> {
        let mut out = Vec::with_capacity(idx.len() * 784);
        for &i in idx {
            out.extend_from_slice(&v[i * 784..(i + 1) * 784]);
        }
        Ok(Images::new(out, vec![0; idx.len()], SHAPE, 1)?)
    };
    let device = Default::default();
    let (h, fit) = fit_push_forward::<CpuAutodiff>(
        &rows(&x0, fit_idx)?,
        &rows(&xt, fit_idx)?,
        &settings.pushforward,
        seed,
        &device,
    )?;
    let (held0, heldt) = (rows(&x0, held_idx)?, rows(&xt, held_idx)?);
    let heldout_mse = mean_squared_error(&h.push(&held0)?, heldt.values());
    let heldout_mse_identity = mean_squared_error(held0.values(), heldt.values());

    // The unlabelled images, moved by h and labelled by their nearest flowed particle.
    let m = d.unlabeled.n_points();
    let un = Images::new(clamp01(d.unlabeled.points()), vec![0; m], SHAPE, 1)?;
    // Clipped like every other image the networks see.
    let mapped = clamp01(&h.push(&un)?);
    let ids: Vec<i64> = y.iter().map(|&l| l as i64).collect();
    let (flowed, _) = LabeledCloud::from_labeled_rows(&xt, 784, &ids)?;
    let (mapped_cloud, _) = LabeledCloud::from_labeled_rows(&mapped, 784, &vec![0; m])?;
    let nearest = wowflow_ot::assign::nearest_target_class(&mapped_cloud, &flowed)?;
    let mapped_y: Vec<usize> = nearest
        .iter()
        .map(|&k| flowed.class_ids()[k] as usize)
        .collect();
    let true_source = d.unlabeled.row_classes();
    let agree = mapped_y
        .iter()
        .zip(&true_source)
        .filter(|(&l, &c)| l == assignment.labels[c])
        .count();

    let snapshot_steps: Vec<usize> = snaps.kept.iter().map(|(s, _)| *s).collect();
    let s = snaps.kept.len();
    let traj: Vec<f32> = snaps.kept.iter().flat_map(|(_, p)| clamp01(p)).collect();
    if let Some(dir) = figures {
        let mapped_held = h.push(&held0)?;
        draw_flow(
            dir,
            d,
            &x0,
            &traj,
            s,
            &held0,
            &mapped_held,
            &heldt,
            &un,
            &mapped,
        )?;
    }
    let yv = |l: &[usize]| NpyArray::i64(vec![l.len()], l.iter().map(|&v| v as i64).collect());
    let (tx, ty) = arrays_of(&Images::from_cloud(&d.target, SHAPE, None, CLASSES)?);
    let arrays = vec![
        ("target_x", tx),
        ("target_y", ty),
        ("x0", NpyArray::f32(vec![n, 784], x0)),
        ("y", yv(&y)),
        ("traj", NpyArray::f32(vec![s, n, 784], traj)),
        ("mapped", NpyArray::f32(vec![m, 784], mapped)),
        ("mapped_y", yv(&mapped_y)),
        ("source_y", yv(&d.source.row_classes())),
    ];
    let trial = FlowTrial {
        seed,
        labels: assignment.labels.clone(),
        snapshot_steps,
        flow: record,
        pushforward: fit,
        heldout_mse,
        heldout_mse_identity,
        heldout: held,
        mapped_label_agreement: agree as f64 / m.max(1) as f64,
    };
    Ok((trial, arrays))
}

/// `trajectory.png`: one row per source class (its first particle), the initial image then
/// every snapshot; `pushforward.png`: ten held-out particles as `x₀`, `h(x₀)` and the true
/// `x_T` (rows 1–3), then ten never-flowed images (one per class) before and after `h`
/// (rows 4–5).
#[allow(clippy::too_many_arguments)]
fn draw_flow(
    dir: &Path,
    d: &Draw,
    x0: &[f32],
    traj: &[f32],
    states: usize,
    held0: &Images,
    mapped_held: &[f32],
    heldt: &Images,
    unlabeled: &Images,
    mapped: &[f32],
) -> Result<()> {
    let n = d.source.n_points();
    let image = |v: &[f32], i: usize| v[i * 784..(i + 1) * 784].to_vec();
    let mut grid = Vec::new();
    for c in 0..d.source.n_classes() {
        let i = d.source.class_range(c).start;
        grid.extend(image(x0, i));
        for s in 0..states {
            grid.extend(image(&traj[s * n * 784..(s + 1) * n * 784], i));
        }
    }
    let rows = d.source.n_classes();
    let img = wowflow_viz::image_grid(&grid, rows * (states + 1), 28, 28, states + 1, 2)?;
    wowflow_viz::save_png(&img, &dir.join("trajectory.png"))?;
    let cols = 10.min(held0.len()).min(unlabeled.len());
    let mut grid = Vec::new();
    for source in [held0.values(), mapped_held, heldt.values()] {
        for i in 0..cols {
            grid.extend(image(source, i));
        }
    }
    // The unlabelled images are in class order: one every len / cols.
    for source in [unlabeled.values(), mapped] {
        for i in 0..cols {
            grid.extend(image(source, i * unlabeled.len() / cols));
        }
    }
    let img = wowflow_viz::image_grid(&grid, 5 * cols, 28, 28, cols, 2)?;
    wowflow_viz::save_png(&img, &dir.join("pushforward.png"))?;
    Ok(())
}

/// The k-shot set plus what `data` adds, from a stored flow's arrays.
fn training_set(
    data: TrainingData,
    arrays: &std::collections::BTreeMap<String, NpyArray>,
) -> Result<Images> {
    let target = images_of(arrays, "target_x", "target_y", SHAPE, CLASSES)?;
    let mut values = target.values().to_vec();
    let mut labels = target.labels().to_vec();
    let y = images_of(arrays, "x0", "y", SHAPE, CLASSES)?
        .labels()
        .to_vec();
    let get = |name: &str| -> Result<Vec<f32>> {
        Ok(arrays
            .get(name)
            .ok_or_else(|| anyhow!("array `{name}` missing"))?
            .to_f32())
    };
    match data {
        TrainingData::Initial => {
            values.extend(get("x0")?);
            labels.extend(&y);
        }
        TrainingData::Final | TrainingData::Trajectory => {
            let traj = get("traj")?;
            let per = y.len() * 784;
            let states = traj.len() / per.max(1);
            let from = if data == TrainingData::Final {
                states - 1
            } else {
                0
            };
            for s in from..states {
                values.extend_from_slice(&traj[s * per..(s + 1) * per]);
                labels.extend(&y);
            }
        }
        TrainingData::Mapped => {
            let mapped = images_of(arrays, "mapped", "mapped_y", SHAPE, CLASSES)?;
            values.extend_from_slice(mapped.values());
            labels.extend_from_slice(mapped.labels());
        }
        TrainingData::TargetOnly | TrainingData::FineTune => {}
    }
    Ok(Images::new(values, labels, SHAPE, CLASSES)?)
}

/// LeNet-5 trained on the labelled source, then on the k-shot set, scored on `test`.
fn fine_tune(
    settings: &TrajectorySettings,
    source: &Images,
    target: &Images,
    test: &Images,
    seed: u64,
) -> Result<Score> {
    let device = Default::default();
    let t = &settings.train;
    let config = |epochs| TrainConfig {
        budget: Budget::Epochs(epochs),
        batch_size: t.batch_size,
        lr: t.lr,
        weight_decay: t.weight_decay,
        engine: Default::default(),
        seed,
    };
    let started = Instant::now();
    let fresh = || LeNet5::<CpuAutodiff>::new(CLASSES, seed, &device);
    let (pre, _) = train(
        fresh(),
        source,
        &config(settings.fine_tune.pretrain_epochs),
        &device,
        &mut |_| {},
    )?;
    let params = read_params::<CpuBackend, _>(&pre)?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let model = write_params::<CpuAutodiff, _>(fresh(), params);
    let (tuned, report) = train(
        model,
        target,
        &config(settings.fine_tune.epochs),
        &device,
        &mut |_| {},
    )?;
    Ok(Score {
        accuracy: evaluate(&tuned, test, &device)?.accuracy,
        train_images: target.len(),
        train_seconds: started.elapsed().as_secs_f64(),
        final_loss: report.final_loss,
    })
}

/// Runs one cell: for each trial, loads (or computes and stores) the shared flow, then
/// trains `evals` networks on the cell's training set. `out` is the cell's directory under
/// the table's `cells/`; flows go to `cells/flows/`.
pub fn run_cell(
    cell: &TrajectoryCell,
    settings: &TrajectorySettings,
    profile: &str,
    dirs: &DataDirs,
    out: &Path,
) -> Result<CellResult> {
    let started = Instant::now();
    if cell.data.needs_flow() != cell.flow.is_some() {
        bail!(
            "cell {}: `{}` {} a flow",
            cell.key(),
            cell.data.name(),
            if cell.data.needs_flow() {
                "needs"
            } else {
                "takes no"
            }
        );
    }
    let pe = pool_and_eval(dirs, &cell.target, settings.split_seed)
        .with_context(|| format!("loading {}", cell.target))?;
    let all = pe.eval.class_indices();
    let test_cloud = to_cloud(&pe.eval, &all, &Transform::mnist_size(&pe.eval))?;
    let test = Images::from_cloud(&test_cloud, SHAPE, None, CLASSES)?;
    let mut fingerprint = settings.clone();
    (fingerprint.trials, fingerprint.evals) = (0, 0);
    let scores_store = TrialStore::open(out, &(cell, profile, &fingerprint))?;
    let flows_dir = out
        .parent()
        .ok_or_else(|| {
            anyhow!(
                "{}: no parent directory for the shared flows",
                out.display()
            )
        })?
        .join("flows");
    let mut scores = Vec::with_capacity(settings.trials);
    let mut flows = Vec::new();
    for t in 0..settings.trials {
        let seed = settings.seed + t as u64;
        let train_set = match cell.flow {
            Some(flow) => {
                let dir = flows_dir.join(cell.flow_key(flow));
                let flow_fingerprint = (
                    &cell.target,
                    cell.k,
                    flow,
                    profile,
                    &settings.source,
                    settings.source_per_class,
                    settings.unlabeled_per_class,
                    settings.seed,
                    settings.split_seed,
                    settings.snapshots,
                    match flow {
                        FlowKind::Otdd => serde_json::to_value(&settings.otdd)?,
                        FlowKind::SwMmd => serde_json::to_value(&settings.sw_mmd)?,
                    },
                    &settings.assign,
                    &settings.pushforward,
                    settings.holdout,
                );
                let store = TrialStore::open(&dir, &flow_fingerprint)?;
                let (record, arrays) = match store.load_arrays::<FlowTrial>(t)? {
                    Some(done) => done,
                    None => {
                        let d = draw(dirs, cell, settings, &pe.pool, seed)?;
                        // Trial 0 draws its trajectories and push-forward in the flow's
                        // directory.
                        let figures = (t == 0).then_some(dir.as_path());
                        let (record, arrays) = compute_flow(&d, flow, settings, seed, figures)?;
                        let named: Vec<(&str, &NpyArray)> =
                            arrays.iter().map(|(k, v)| (*k, v)).collect();
                        store.save_arrays(t, &record, &named)?;
                        eprintln!(
                            "{} trial {t}: flow stored; push-forward held-out error {:.4} \
                             (no map {:.4})",
                            cell.flow_key(flow),
                            record.heldout_mse,
                            record.heldout_mse_identity
                        );
                        (
                            record,
                            arrays
                                .into_iter()
                                .map(|(k, v)| (k.to_string(), v))
                                .collect(),
                        )
                    }
                };
                flows.push(record);
                Some(training_set(cell.data, &arrays)?)
            }
            None => None,
        };
        // Without a flow, the trial's k-shot and source images are drawn once, and only if a
        // network still has to be trained.
        let mut drawn: Option<(Images, Images)> = None;
        let trial_scores =
            crate::trials::scores(Some(&scores_store), &cell.key(), t, settings.evals, |e| {
                let net_seed = 1000 * seed + e as u64;
                if let Some(set) = &train_set {
                    return train_and_test(&settings.train, set, &test, net_seed);
                }
                if drawn.is_none() {
                    let d = draw(dirs, cell, settings, &pe.pool, seed)?;
                    drawn = Some((
                        Images::from_cloud(&d.target, SHAPE, None, CLASSES)?,
                        Images::from_cloud(&d.source, SHAPE, None, CLASSES)?,
                    ));
                }
                let Some((target, source)) = &drawn else {
                    bail!("the trial's images were not drawn");
                };
                if cell.data == TrainingData::FineTune {
                    fine_tune(settings, source, target, &test, net_seed)
                } else {
                    train_and_test(&settings.train, target, &test, net_seed)
                }
            })?;
        scores.push(trial_scores);
    }
    let accuracies: Vec<f64> = scores.iter().flatten().map(|s| s.accuracy).collect();
    Ok(CellResult {
        cell: cell.clone(),
        profile: profile.to_string(),
        settings: settings.clone(),
        accuracy: Stats::of_accuracies(&accuracies),
        scores,
        flows,
        note: pe.note,
        seconds: started.elapsed().as_secs_f64(),
        machine: machine(),
    })
}

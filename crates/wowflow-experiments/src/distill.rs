//! `wowflow experiment distill`: dataset distillation (docs/math.md §9, Table 1 of Bonet,
//! Vauthier & Korba 2025). k synthetic images per class, initialised from real ones, are
//! flowed to 5000 real images per class; a ConvNet trained on the k-per-class synthetic set
//! is scored on the test split. Protocol and profiles in `experiments/distill.toml`.

use super::{dataset_name, load_profile, machine, run_flow, save_grid, write_file};
use super::{AssignSettings, CommonArgs};
use crate::checkpoint::FlowSegments;
use crate::evaluate::{train_and_test, FlowRecord, Score, Stats, TrainSettings};
use crate::method::SamplerName;
use crate::trials::{Piece, TrialStore};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use wowflow_baselines::DistributionMatching;
use wowflow_core::{CpuEngine, Kernel, LabeledCloud, Method, Objective, Optimizer, SwMmd};
use wowflow_data::{
    draw_disjoint, load_split, to_cloud, DataDirs, ImageSet, Normalize, NpyArray, Split, Transform,
};
use wowflow_distill::{Augment, Chain, Discrepancy, FeatureMap, Featurized, ImageShape};
use wowflow_nn::{ConvNetConfig, Images, RandomEmbedding};

/// The built-in copy of `experiments/distill.toml` (the profiles read when no `--config` is
/// given).
pub const BUILTIN: &str = include_str!("../../../experiments/distill.toml");

/// What produces the k-per-class training set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum DistillMethod {
    /// The WoW flow of ½ MMD² with an SW kernel (the paper's method).
    SwMmd,
    /// Distribution matching (Zhao & Bilen 2023): class means matched.
    Dm,
    /// k random real images per class, not moved (baseline).
    RandomReal,
    /// The whole train split (the upper bound; k is ignored).
    FullData,
}

impl DistillMethod {
    /// Every method, in the order of the paper's table.
    pub const ALL: [Self; 4] = [Self::SwMmd, Self::Dm, Self::RandomReal, Self::FullData];

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::SwMmd => "sw-mmd",
            Self::Dm => "dm",
            Self::RandomReal => "random-real",
            Self::FullData => "full-data",
        }
    }

    fn flows(self) -> bool {
        matches!(self, Self::SwMmd | Self::Dm)
    }
}

/// Options of `wowflow experiment distill`: one cell of Table 1.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DistillArgs {
    /// mnist or fmnist.
    #[cfg_attr(feature = "clap", arg(long))]
    pub dataset: String,
    /// Synthetic images per class.
    #[cfg_attr(feature = "clap", arg(long))]
    pub k: usize,
    /// What produces the k-per-class training set.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "sw-mmd"))]
    pub method: DistillMethod,
    /// Compare through a random DSA augmentation each step (A in the paper).
    #[cfg_attr(feature = "clap", arg(long))]
    pub augment: bool,
    /// Compare through a freshly initialised ConvNet embedding each step (ψ in the paper).
    #[cfg_attr(feature = "clap", arg(long))]
    pub embed: bool,
    /// Flows [default: the profile's].
    #[cfg_attr(feature = "clap", arg(long))]
    pub trials: Option<usize>,
    /// Networks trained per flow [default: the profile's].
    #[cfg_attr(feature = "clap", arg(long))]
    pub evals: Option<usize>,
    /// `--config`, `--profile`, `--out`, `--data-dir`.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub common: CommonArgs,
}

/// A profile of `experiments/distill.toml`: the distillation protocol (docs/math.md §9).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillSettings {
    /// One line saying what the profile is (kept in the results).
    pub description: String,
    /// Real images per class the synthetic set is flowed to.
    pub target_per_class: usize,
    /// Synthetic sets per cell (the paper: 3), each drawn (and flowed) with its own seed;
    /// `full-data` has one.
    pub trials: usize,
    /// ConvNets trained on each synthetic set (the paper: 5), each from its own initial
    /// weights and batch order.
    pub evals: usize,
    /// Seed of trial 0 (trial t draws its images and flows with seed + t).
    pub seed: u64,
    /// The flow of the synthetic images (`dm` replaces its step size and momentum for DM).
    pub flow: DistillFlowSettings,
    /// DM's own step size (its gradient, 2 (m_c − m'_c) per image in the WoW convention,
    /// overshoots at τ = 1).
    pub dm: StepSettings,
    /// The random ConvNet ψ of `--embed`.
    pub embed: EmbedSettings,
    /// The diagnostic matching of flowed to real classes after the flow
    /// ([`Trial::assigned`]); the labels stay those of the images' own classes.
    pub assign: AssignSettings,
    /// Training of the scoring ConvNet on the k-per-class set.
    pub train: TrainSettings,
    /// Training of the "full data" baseline (the whole train split).
    pub full_data_train: TrainSettings,
    /// Synthetic images per class drawn in `synthetic.png` (trial 0).
    pub grid_per_class: usize,
}

/// The `flow` table of a distillation profile: the flow of the synthetic images to the real
/// ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillFlowSettings {
    /// SW kernel between class measures: `riesz`, `gaussian`, `imq` or `laplace`
    /// (docs/math.md §4).
    pub kernel: String,
    /// The kernel's parameter (Riesz exponent r, otherwise bandwidth h); absent: the default
    /// of docs/math.md §4 (Riesz r = 1).
    pub kernel_param: Option<f64>,
    /// Slicing directions L, drawn afresh every step.
    pub projections: usize,
    /// How the directions are drawn: `gaussian` (the default), `orthogonal` or `structured`
    /// (docs/math.md §3).
    #[serde(default)]
    pub sampler: SamplerName,
    /// Step size τ of the SW-MMD flow (DM steps by `dm.tau`).
    pub tau: f64,
    /// Heavy-ball momentum of the SW-MMD flow (DM uses `dm.momentum`).
    pub momentum: f64,
    /// Flow steps (SW-MMD and DM).
    pub steps: usize,
    /// Real images per class drawn each step.
    pub real_batch: usize,
}

/// A step size and a heavy-ball momentum (the `dm` table).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSettings {
    /// Step size τ.
    pub tau: f64,
    /// Heavy-ball momentum (0: plain gradient descent).
    pub momentum: f64,
}

/// The `embed` table: the random ConvNet ψ that `--embed` compares through (fresh weights
/// every step; the paper's: depth 3, width 128).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedSettings {
    /// Convolution blocks of ψ (1–3 for 28×28 images).
    pub depth: usize,
    /// Channels of each of ψ's convolutions.
    pub width: usize,
}

impl DistillSettings {
    /// Reads and checks profile `profile` of `config` (default: the built-in
    /// `experiments/distill.toml`).
    pub fn load(config: Option<&Path>, profile: &str) -> Result<Self> {
        let s: Self = load_profile(BUILTIN, "experiments/distill.toml", config, profile)?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        crate::at_least_one(&[
            ("target_per_class", self.target_per_class),
            ("trials", self.trials),
            ("evals", self.evals),
            ("flow.projections", self.flow.projections),
            ("flow.real_batch", self.flow.real_batch),
            ("embed.width", self.embed.width),
            ("grid_per_class", self.grid_per_class),
        ])?;
        if !(1..=3).contains(&self.embed.depth) {
            bail!(
                "setting `embed.depth` must be 1–3 for 28×28 images, got {}",
                self.embed.depth
            );
        }
        Kernel::by_name(&self.flow.kernel, self.flow.kernel_param)
            .context("setting `flow.kernel`")?;
        self.train.validate("train")?;
        self.full_data_train.validate("full_data_train")
    }
}

/// What one table cell is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DistillCell {
    /// Registry name of the distilled dataset (`mnist`, `fashion-mnist`).
    pub dataset: String,
    /// Synthetic images per class (ignored by `full-data`).
    pub k: usize,
    /// What produces the training set.
    pub method: DistillMethod,
    /// Compare through a random DSA augmentation A each step (flowing methods only).
    pub augment: bool,
    /// Compare through a fresh random ConvNet ψ each step (flowing methods only).
    pub embed: bool,
}

impl DistillCell {
    /// A file-name-safe identifier.
    pub fn key(&self) -> String {
        if self.method == DistillMethod::FullData {
            // k plays no part: every row of a table shares this cell.
            return format!("distill-{}-full-data", self.dataset);
        }
        let mut key = format!(
            "distill-{}-k{}-{}",
            self.dataset,
            self.k,
            self.method.name()
        );
        if self.method.flows() {
            if self.augment {
                key.push_str("-aug");
            }
            if self.embed {
                key.push_str("-embed");
            }
        }
        key
    }
}

/// One synthetic set and the networks trained on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    /// Seed of the trial's draws and flow (`seed + t`); network e starts from seed
    /// `1000 · seed + e`.
    pub seed: u64,
    /// The flow (zero steps for the methods that do not flow).
    #[serde(flatten)]
    pub flow: FlowRecord,
    /// Label of each synthetic class: the class its images were drawn from (the flow keeps
    /// them, as in the paper).
    pub labels: Vec<usize>,
    /// Diagnostic: the real class each synthetic class is matched with by exact OT on SW₂²
    /// after the flow (the identity unless a class drifted towards another one).
    pub assigned: Vec<usize>,
    /// One score per network trained on the set.
    pub scores: Vec<Score>,
}

/// The result of a cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    /// The cell computed.
    pub cell: DistillCell,
    /// Name of the profile its settings come from.
    pub profile: String,
    /// The settings it ran with (command-line overrides applied).
    pub settings: DistillSettings,
    /// Pixel mean and standard deviation of the train split, which normalised every image.
    pub normalize: (f32, f32),
    /// Test accuracy over every network of every trial: mean ± sample std, in percent.
    pub accuracy: Stats,
    /// Each synthetic set and its networks.
    pub trials: Vec<Trial>,
    /// Wall time of the cell, in seconds.
    pub seconds: f64,
    /// The machine it ran on ([`machine`]).
    pub machine: String,
}

/// Mean and standard deviation of every pixel value of `set` (the normalisation constants:
/// 0.1307 / 0.3081 for MNIST).
fn pixel_stats(set: &ImageSet) -> Normalize {
    let (mut sum, mut sq, mut n) = (0f64, 0f64, 0usize);
    let mut row = Vec::new();
    for i in 0..set.len() {
        row.clear();
        set.push_image(i, &mut row);
        for &v in &row {
            sum += v as f64;
            sq += (v as f64) * (v as f64);
        }
        n += row.len();
    }
    let mean = sum / n.max(1) as f64;
    let var = (sq / n.max(1) as f64 - mean * mean).max(0.0);
    Normalize {
        mean: mean as f32,
        std: var.sqrt().max(1e-6) as f32,
    }
}

/// The objective for a flowing method: SW-MMD or DM, compared directly or through the
/// per-step random maps (augmentation, then embedding).
fn objective(
    cell: &DistillCell,
    settings: &DistillSettings,
    target: &LabeledCloud,
    shape: (usize, usize, usize),
) -> Result<(Box<dyn Objective>, Optimizer)> {
    let f = &settings.flow;
    let kernel = Kernel::by_name(&f.kernel, f.kernel_param)?;
    let batch = Some(f.real_batch);
    let (tau, momentum) = match cell.method {
        DistillMethod::Dm => (settings.dm.tau, settings.dm.momentum),
        _ => (f.tau, f.momentum),
    };
    let optimizer = Optimizer::new(Method::Momentum { m: momentum }, tau)?;
    if !cell.augment && !cell.embed {
        let objective: Box<dyn Objective> = match cell.method {
            DistillMethod::Dm => {
                Box::new(DistributionMatching::new(target.clone())?.with_target_batch(batch)?)
            }
            _ => Box::new(
                SwMmd::new(target.clone(), kernel, f.projections)?
                    .with_directions(f.sampler.into())?
                    .with_target_batch(batch)?,
            ),
        };
        return Ok((objective, optimizer));
    }
    let mut maps: Vec<Box<dyn FeatureMap>> = Vec::new();
    if cell.augment {
        let (channels, height, width) = shape;
        maps.push(Box::new(Augment::digits(ImageShape {
            channels,
            height,
            width,
        })?));
    }
    if cell.embed {
        let (c, h, _) = shape;
        let net = ConvNetConfig {
            depth: settings.embed.depth,
            width: settings.embed.width,
            ..ConvNetConfig::standard(c, h, 10)
        };
        maps.push(Box::new(RandomEmbedding::new(net, shape)?));
    }
    let discrepancy = match cell.method {
        DistillMethod::Dm => Discrepancy::Dm,
        _ => Discrepancy::SwMmd {
            kernel,
            projections: f.projections,
            sampler: f.sampler.into(),
            engine: Arc::new(CpuEngine::new()),
        },
    };
    let objective = Featurized::new(target.clone(), Box::new(Chain(maps)), discrepancy)?
        .with_target_batch(batch)?;
    Ok((Box::new(objective), optimizer))
}

/// Test images and the normalisation of a dataset.
struct Splits {
    train: ImageSet,
    test: Images,
    normalize: Normalize,
}

fn splits(dirs: &DataDirs, dataset: &str) -> Result<Splits> {
    let train = load_split(dirs, dataset, Split::Train)
        .with_context(|| format!("loading the {dataset} train split"))?;
    let test = load_split(dirs, dataset, Split::Test)
        .with_context(|| format!("loading the {dataset} test split"))?;
    let normalize = pixel_stats(&train);
    let t = Transform {
        normalize: Some(normalize),
        ..Transform::mnist_size(&test)
    };
    let all = test.class_indices();
    let cloud = to_cloud(&test, &all, &t)?;
    let classes = cloud.n_classes();
    Ok(Splits {
        test: Images::from_cloud(&cloud, (1, 28, 28), None, classes)?,
        train,
        normalize,
    })
}

/// The synthetic set of one trial (or the whole train split for `full-data`), with labels
/// per class, and the trial's flow record.
fn synthesize(
    cell: &DistillCell,
    settings: &DistillSettings,
    data: &Splits,
    seed: u64,
    segments: Option<&FlowSegments>,
) -> Result<(LabeledCloud, Vec<usize>, Trial)> {
    let t = Transform {
        normalize: Some(data.normalize),
        ..Transform::mnist_size(&data.train)
    };
    let mut trial = Trial {
        seed,
        flow: FlowRecord::default(),
        labels: Vec::new(),
        assigned: Vec::new(),
        scores: Vec::new(),
    };
    if cell.method == DistillMethod::FullData {
        let all = data.train.class_indices();
        let cloud = to_cloud(&data.train, &all, &t)?;
        trial.labels = (0..cloud.n_classes()).collect();
        return Ok((cloud, trial.labels.clone(), trial));
    }
    let draws = draw_disjoint(&data.train, &[settings.target_per_class, cell.k], seed)
        .with_context(|| {
            format!(
                "drawing {} + {} images per class of {}",
                settings.target_per_class, cell.k, cell.dataset
            )
        })?;
    let target = to_cloud(&data.train, &draws[0], &t)?;
    let init = to_cloud(&data.train, &draws[1], &t)?;
    if !cell.method.flows() {
        trial.labels = (0..init.n_classes()).collect();
        return Ok((init, trial.labels.clone(), trial));
    }
    let started = Instant::now();
    let (mut objective, optimizer) = objective(cell, settings, &target, (1, 28, 28))?;
    let state = run_flow(
        objective.as_mut(),
        optimizer,
        init,
        settings.flow.steps,
        seed,
        segments,
    )?;
    trial.flow = FlowRecord::new(started, state.step, &state.losses);
    trial.assigned = settings.assign.assign(&state.cloud, &target)?.labels;
    trial.labels = (0..state.cloud.n_classes()).collect();
    let labels = trial.labels.clone();
    Ok((state.cloud, labels, trial))
}

/// Writes the synthetic set of trial 0: `synthetic.npz` (`x` normalised as flowed, `images`
/// in [0, 1] pixel values, `y`) and `synthetic.png` (one row per class).
fn save_synthetic(
    out: &Path,
    cloud: &LabeledCloud,
    labels: &[usize],
    normalize: Normalize,
    per_class: usize,
) -> Result<()> {
    let d = cloud.dim();
    let n = cloud.points().len() / d.max(1);
    let pixels: Vec<f32> = cloud
        .points()
        .iter()
        .map(|&v| (v * normalize.std + normalize.mean).clamp(0.0, 1.0))
        .collect();
    let y: Vec<i64> = (0..cloud.n_classes())
        .flat_map(|c| std::iter::repeat_n(labels[c] as i64, cloud.class_len(c)))
        .collect();
    wowflow_data::write_npz(
        &out.join("synthetic.npz"),
        &[
            ("x", &NpyArray::f32(vec![n, d], cloud.points().to_vec())),
            ("images", &NpyArray::f32(vec![n, 28, 28], pixels.clone())),
            ("y", &NpyArray::i64(vec![n], y)),
        ],
    )
    .with_context(|| format!("writing {}", out.join("synthetic.npz").display()))?;
    let shown = cloud.with_points(pixels, d)?;
    let mut order: Vec<usize> = (0..cloud.n_classes()).collect();
    order.sort_by_key(|&c| labels[c]);
    save_grid(&shown, &order, per_class, &out.join("synthetic.png"))
}

/// A cell opened for work: the dataset's splits loaded once, the store of its finished
/// pieces opened. [`run_cell`] runs every piece; [`run_piece`] one.
struct OpenCell<'a> {
    cell: &'a DistillCell,
    settings: &'a DistillSettings,
    out: Option<&'a Path>,
    data: Splits,
    classes: usize,
    store: Option<TrialStore>,
}

impl<'a> OpenCell<'a> {
    fn open(
        cell: &'a DistillCell,
        settings: &'a DistillSettings,
        profile: &str,
        dirs: &DataDirs,
        out: Option<&'a Path>,
    ) -> Result<Self> {
        let data = splits(dirs, &cell.dataset)?;
        let classes = data.test.n_classes();
        // Finished syntheses and networks are kept under `out/trials` and reused by a rerun;
        // the numbers of the pieces do not depend on how many trials or networks the cell has.
        let store = match out {
            Some(out) => {
                let mut fingerprint = settings.clone();
                (fingerprint.trials, fingerprint.evals) = (0, 0);
                Some(TrialStore::open(out, &(cell, profile, fingerprint))?)
            }
            None => None,
        };
        Ok(Self {
            cell,
            settings,
            out,
            data,
            classes,
            store,
        })
    }

    /// The trials and the training settings (full data: one trial, its own settings).
    fn trials_and_train(&self) -> (usize, &'a TrainSettings) {
        match self.cell.method {
            DistillMethod::FullData => (1, &self.settings.full_data_train),
            _ => (self.settings.trials, &self.settings.train),
        }
    }

    fn seed(&self, t: usize) -> u64 {
        self.settings.seed + t as u64
    }

    /// Where synthetic sets are kept: the full-data column trains on the dataset itself and
    /// keeps nothing but its scores.
    fn flow_store(&self) -> Option<&TrialStore> {
        self.store
            .as_ref()
            .filter(|_| self.cell.method != DistillMethod::FullData)
    }

    /// Trial `t`'s record and synthetic set: loaded where stored, else synthesized (and
    /// stored).
    fn flow(&self, t: usize) -> Result<(Trial, Images)> {
        let (cell, settings, classes) = (self.cell, self.settings, self.classes);
        if let Some(store) = self.flow_store() {
            if let Some(done) = store.load_flow::<Trial>(t, (1, 28, 28), classes)? {
                eprintln!(
                    "{} trial {t}: synthetic set loaded from a previous run",
                    cell.key()
                );
                return Ok(done);
            }
        }
        let segments = self.flow_store().map(|s| s.flow_segments(t));
        let (cloud, labels, trial) =
            synthesize(cell, settings, &self.data, self.seed(t), segments.as_ref())?;
        if t == 0 && cell.method != DistillMethod::FullData {
            if let Some(out) = self.out {
                save_synthetic(
                    out,
                    &cloud,
                    &labels,
                    self.data.normalize,
                    settings.grid_per_class,
                )?;
            }
        }
        let train_set = Images::from_cloud(&cloud, (1, 28, 28), Some(&labels), classes)?;
        if let Some(store) = self.flow_store() {
            store.save_flow(t, &trial, &train_set)?;
        }
        // The segment goes only once the set is stored: a stop in between resumes from it.
        if let Some(segments) = &segments {
            segments.finish()?;
        }
        Ok((trial, train_set))
    }

    /// How network `e` of trial `t` is trained and scored (same seed however it is reached).
    fn train(&self, t: usize, train_set: &Images) -> impl FnMut(usize) -> Result<Score> + '_ {
        let seed = self.seed(t);
        let train = self.trials_and_train().1;
        let test = &self.data.test;
        let train_set = train_set.clone();
        move |e| train_and_test(train, &train_set, test, 1000 * seed + e as u64)
    }
}

/// Runs one cell: `trials` synthetic sets × `evals` trainings (full data: one set).
pub fn run_cell(
    cell: &DistillCell,
    settings: &DistillSettings,
    profile: &str,
    dirs: &DataDirs,
    out: Option<&Path>,
) -> Result<CellResult> {
    let started = Instant::now();
    let open = OpenCell::open(cell, settings, profile, dirs, out)?;
    let trials_n = open.trials_and_train().0;
    let mut trials = Vec::with_capacity(trials_n);
    let mut accuracies = Vec::new();
    for t in 0..trials_n {
        let (mut trial, train_set) = open.flow(t)?;
        let scores = crate::trials::scores(
            open.store.as_ref(),
            &cell.key(),
            t,
            settings.evals,
            open.train(t, &train_set),
        )?;
        accuracies.extend(scores.iter().map(|s| s.accuracy));
        trial.scores = scores;
        trials.push(trial);
    }
    Ok(CellResult {
        cell: cell.clone(),
        profile: profile.to_string(),
        settings: settings.clone(),
        normalize: (open.data.normalize.mean, open.data.normalize.std),
        accuracy: Stats::of_accuracies(&accuracies),
        trials,
        seconds: started.elapsed().as_secs_f64(),
        machine: machine(),
    })
}

/// The pieces of a cell, in the order [`run_cell`] computes them: for each trial its
/// synthetic set, then its networks. The full-data column stores no set (its one trial
/// trains on the dataset), so its networks are its only pieces.
pub fn pieces(cell: &DistillCell, settings: &DistillSettings) -> Vec<Piece> {
    let full = cell.method == DistillMethod::FullData;
    let trials = if full { 1 } else { settings.trials };
    (0..trials)
        .flat_map(|t| {
            let flow = (!full).then_some(Piece::Flow(t));
            flow.into_iter()
                .chain((0..settings.evals).map(move |e| Piece::Network(t, e)))
        })
        .collect()
}

/// Computes one piece of a cell into the cell's store under `out`, exactly as [`run_cell`]
/// would (same files, same bits); a network needs its trial's synthetic set stored there
/// first (except the full-data column's, which trains on the dataset).
pub fn run_piece(
    cell: &DistillCell,
    settings: &DistillSettings,
    profile: &str,
    dirs: &DataDirs,
    out: &Path,
    piece: Piece,
) -> Result<()> {
    let open = OpenCell::open(cell, settings, profile, dirs, Some(out))?;
    match piece {
        Piece::Flow(t) => open.flow(t).map(drop),
        Piece::Network(t, e) => {
            let train_set = match open.flow_store() {
                Some(store) => {
                    store
                        .load_flow::<Trial>(t, (1, 28, 28), open.classes)?
                        .ok_or_else(|| {
                            anyhow!(
                                "{} piece {piece}: trial {t}'s synthetic set is not stored \
                                 under {}; compute piece flow:{t} first",
                                cell.key(),
                                out.display()
                            )
                        })?
                        .1
                }
                None => open.flow(t)?.1,
            };
            crate::trials::score(
                open.store.as_ref(),
                &cell.key(),
                t,
                e,
                &mut open.train(t, &train_set),
            )
            .map(drop)
        }
        Piece::Cell => run_cell(cell, settings, profile, dirs, Some(out)).map(drop),
    }
}

/// Runs `wowflow experiment distill`: one cell, written to `OUT/result.json`, with trial 0's
/// synthetic set in `synthetic.npz` and `synthetic.png` (all methods but `full-data`).
pub fn run(args: DistillArgs) -> Result<()> {
    let mut settings = DistillSettings::load(args.common.config.as_deref(), &args.common.profile)?;
    if let Some(t) = args.trials {
        settings.trials = t;
    }
    if let Some(e) = args.evals {
        settings.evals = e;
    }
    settings.validate()?;
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    let dataset = dataset_name(&args.dataset).to_string();
    if !matches!(dataset.as_str(), "mnist" | "fashion-mnist" | "kmnist") {
        bail!(
            "--dataset {}: distillation needs a 28×28 dataset with a train split (mnist, fmnist)",
            args.dataset
        );
    }
    let cell = DistillCell {
        dataset,
        k: args.k,
        method: args.method,
        augment: args.augment,
        embed: args.embed,
    };
    let out =
        args.common.out.clone().unwrap_or_else(|| {
            PathBuf::from(format!("runs/{}-{}", cell.key(), args.common.profile))
        });
    wowflow_data::prepare_output_dir(&out)?;
    let dirs = DataDirs::new(args.common.data_dir.as_deref());
    let result = run_cell(&cell, &settings, &args.common.profile, &dirs, Some(&out))?;
    write_file(
        &out.join("result.json"),
        &serde_json::to_string_pretty(&result)?,
    )?;
    println!(
        "{} k = {} ({}): test accuracy {} % over {} networks ({:.0} s); {}",
        cell.dataset,
        cell.k,
        cell.key(),
        result.accuracy,
        result.accuracy.n,
        result.seconds,
        out.display()
    );
    Ok(())
}

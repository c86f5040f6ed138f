//! `wowflow experiment transfer`: k-shot transfer learning (docs/math.md §9, Table 2 of Bonet,
//! Vauthier & Korba 2025). A big labelled dataset (MNIST, 200 per class) is flowed to the
//! k images per class of a new dataset; the flowed images, with the labels assigned to
//! their classes, augment the k-shot training set of a LeNet-5. Protocol and profiles in
//! `experiments/transfer.toml`.

use super::{
    dataset_name, load_profile, machine, sample_train, save_grid, write_file, AssignSettings,
};
use super::{run_flow, CommonArgs};
use crate::checkpoint::FlowSegments;
use crate::device::DeviceArgs;
use crate::evaluate::{train_and_test, FlowRecord, Score, Stats, TrainSettings};
use crate::method::SamplerName;
use crate::otdd::{joint_labels, ClusteringName, DynamicsName, OtddArgs};
use crate::trials::{Piece, TrialStore};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use wowflow_baselines::{
    Bandwidth, BandwidthSpec, EmbeddingConfig, JointOtdd, LabelDynamics, OtddFlow,
    ProductMmdConfig, ProductMmdObjective,
};
use wowflow_core::{FlowState, Kernel, LabeledCloud, Method, Optimizer, SwMmdFlowSettings};
use wowflow_data::{draw_disjoint, pool_and_eval, to_cloud, DataDirs, PoolEval, Transform};
use wowflow_nn::Images;
use wowflow_ot::{LabelCost, OtddConfig};
use wowflow_ot::{OtSolver, SinkhornConfig};

/// The built-in copy of `experiments/transfer.toml` (the profiles read when no `--config`
/// is given).
pub const BUILTIN: &str = include_str!("../../../experiments/transfer.toml");

/// How the k-shot set is augmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum TransferMethod {
    /// No augmentation: the network sees the k-shot images only (the "Train on Q" column).
    TargetOnly,
    /// The WoW flow of ½ MMD² with the Riesz SW kernel (the paper's method).
    SwMmd,
    /// The OTDD flow (Alvarez-Melis & Fusi 2021); feature-driven unless the profile's
    /// `otdd.dynamics` says otherwise.
    Otdd,
    /// The product-space MMD flow (Hua et al. 2023).
    ProductMmd,
    /// A control the paper does not have: the k-shot images alone, each class's images
    /// repeated cyclically to `source_per_class` extra rows, so the network takes as many
    /// optimiser steps as with a flow's images but sees no new image. What a flow column
    /// gains over this one is what the flowed images add beyond a longer training.
    TargetRepeated,
}

impl TransferMethod {
    /// Every method, in the order of the paper's table.
    pub const ALL: [Self; 5] = [
        Self::TargetOnly,
        Self::SwMmd,
        Self::Otdd,
        Self::ProductMmd,
        Self::TargetRepeated,
    ];

    /// The name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::TargetOnly => "target-only",
            Self::SwMmd => "sw-mmd",
            Self::Otdd => "otdd",
            Self::ProductMmd => "product-mmd",
            Self::TargetRepeated => "target-repeated",
        }
    }
}

/// Options of `wowflow experiment transfer`: one cell of Table 2.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TransferArgs {
    /// The big labelled dataset that is flowed.
    #[cfg_attr(feature = "clap", arg(long, default_value = "mnist"))]
    pub source: String,
    /// The k-shot dataset: fmnist, kmnist or usps.
    #[cfg_attr(feature = "clap", arg(long))]
    pub target: String,
    /// Target images per class.
    #[cfg_attr(feature = "clap", arg(long))]
    pub k: usize,
    /// How the k-shot set is augmented.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "sw-mmd"))]
    pub method: TransferMethod,
    /// Flows (each with its own k-shot draw and source draw) [default: the profile's].
    #[cfg_attr(feature = "clap", arg(long))]
    pub trials: Option<usize>,
    /// Networks trained per flow [default: the profile's].
    #[cfg_attr(feature = "clap", arg(long))]
    pub evals: Option<usize>,
    /// `--config`, `--profile`, `--out`, `--data-dir`.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub common: CommonArgs,
    /// `--device cuda` runs the SW-MMD flows on the GPU (the OTDD flow and the networks
    /// stay on the CPU).
    #[cfg_attr(feature = "clap", command(flatten))]
    pub gpu: DeviceArgs,
}

/// A profile of `experiments/transfer.toml`: the k-shot transfer protocol (docs/math.md §9).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferSettings {
    /// One line saying what the profile is (kept in the results).
    pub description: String,
    /// Source images per class that are flowed (a seeded draw of the source's train split,
    /// redrawn every trial).
    pub source_per_class: usize,
    /// Flows per cell (the paper: 3), each with its own k-shot draw and source draw.
    pub trials: usize,
    /// Networks trained per flow (the paper: 5), each from its own initial weights and batch
    /// order.
    pub evals: usize,
    /// Seed of trial 0 (trial t uses seed + t for its draws and its flow).
    pub seed: u64,
    /// Seed of the documented fallback split where a train split is missing (KMNIST).
    pub split_seed: u64,
    /// The SW-MMD flow (method `sw-mmd`).
    pub sw_mmd: SwMmdSettings,
    /// The OTDD flow (method `otdd`).
    pub otdd: OtddSettings,
    /// The product-space MMD flow (method `product-mmd`).
    pub product_mmd: ProductMmdSettings,
    /// How flowed classes get target labels (docs/math.md §8; the flows that keep class
    /// labels: SW-MMD and OTDD with feature or joint-fixed dynamics).
    pub assign: AssignSettings,
    /// Training of the scoring network (the paper: LeNet-5, AdamW 3e-4, batch 64, 50
    /// epochs) on the k-shot set plus the flowed images.
    pub train: TrainSettings,
}

/// The `sw_mmd` table: the SW-MMD flow of the source to the k-shot set (target mini-batch
/// k per class).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwMmdSettings {
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
    /// Step size τ.
    pub tau: f64,
    /// Heavy-ball momentum.
    pub momentum: f64,
    /// Flow steps for k < 100.
    pub steps: usize,
    /// Steps for k ≥ 100 (the paper flows longer towards bigger targets).
    pub steps_k100: usize,
}

/// The `otdd` table: the OTDD flow baseline (Alvarez-Melis & Fusi 2021; plain gradient
/// descent, no momentum).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtddSettings {
    /// Gradient-descent step (τ = ½ jumps to the barycentric OT targets).
    pub tau: f64,
    /// Flow steps.
    pub steps: usize,
    /// "exact" (class clouds) or "gaussian" (Bures–Wasserstein) label-to-label costs.
    pub label_cost: String,
    /// Entropic regularisation of the outer OT (0 = exact network simplex).
    pub epsilon: f64,
    /// "feature" (the default: particles move, class statistics follow), "joint-fixed"
    /// (one label Gaussian per class takes steps of its own) or "joint-variable" (one
    /// Gaussian per particle; each flowed image is labelled by clustering the Gaussians and
    /// matching the clusters to the target classes; images DBSCAN calls noise are left
    /// out). Alvarez-Melis & Fusi 2021, §6.1; `label_cost` applies to "feature" only.
    #[serde(default)]
    pub dynamics: DynamicsName,
    /// Joint dynamics: PCA dimension of the label Gaussians.
    #[serde(default = "default_label_dim")]
    pub label_dim: usize,
    /// Joint dynamics: step of the label covariances along the Bures–Wasserstein
    /// exponential map [default: tau].
    #[serde(default)]
    pub tau_sigma: Option<f64>,
    /// Joint-variable: "dbscan" (the paper's; radius half the closest pair of target class
    /// Gaussians, 4 points) or "kmeans" (k = the number of target classes).
    #[serde(default)]
    pub clustering: ClusteringName,
}

fn default_label_dim() -> usize {
    OtddArgs::default().label_dim
}

/// The `product_mmd` table: the product-space MMD flow of Hua et al. (2023) on features,
/// label means and label covariances `(x, m, Σ)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductMmdSettings {
    /// Step size τ of the features and the label means.
    pub tau: f64,
    /// Step of the label covariances (the Bures–Wasserstein step `(I + S) Σ (I + S)`,
    /// `S = −2 τ_Σ ∇_Σ`, overshoots at the features' τ; see `ProductMmdConfig`).
    pub tau_sigma: f64,
    /// Heavy-ball momentum of all three parts, in [0, 1).
    pub momentum: f64,
    /// Flow steps.
    pub steps: usize,
    /// Dimension of the PCA label embedding (2 in Hua et al.).
    pub p: usize,
    /// Bandwidths are these factors times the median squared source–target distance of
    /// each part (features, label means, label covariances).
    pub bandwidth_x: f64,
    /// Bandwidth factor of the label means (see `bandwidth_x`).
    pub bandwidth_m: f64,
    /// Bandwidth factor of the label covariances (see `bandwidth_x`).
    pub bandwidth_sigma: f64,
    /// Ridge added to the label covariances (k = 1 leaves them singular).
    pub ridge: f64,
}

impl TransferSettings {
    /// Reads and checks profile `profile` of `config` (default: the built-in
    /// `experiments/transfer.toml`).
    pub fn load(config: Option<&Path>, profile: &str) -> Result<Self> {
        let s: Self = load_profile(BUILTIN, "experiments/transfer.toml", config, profile)?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        crate::at_least_one(&[
            ("source_per_class", self.source_per_class),
            ("trials", self.trials),
            ("evals", self.evals),
            ("sw_mmd.projections", self.sw_mmd.projections),
            ("product_mmd.p", self.product_mmd.p),
        ])?;
        Kernel::by_name(&self.sw_mmd.kernel, self.sw_mmd.kernel_param)
            .context("setting `sw_mmd.kernel`")?;
        self.otdd_config()?;
        self.otdd_args()?
            .joint_config(self.otdd.tau, self.otdd_tau_sigma())
            .context("settings `otdd`")?;
        self.product_mmd_config()
            .validate()
            .context("settings `product_mmd`")?;
        self.train.validate("train")
    }

    fn otdd_config(&self) -> Result<OtddConfig> {
        let label_cost = match self.otdd.label_cost.as_str() {
            "exact" => LabelCost::Exact,
            "gaussian" => LabelCost::Gaussian,
            other => bail!("setting `otdd.label_cost`: `{other}` is not exact or gaussian"),
        };
        let solver = if self.otdd.epsilon > 0.0 {
            OtSolver::Sinkhorn(SinkhornConfig {
                epsilon: self.otdd.epsilon,
                ..SinkhornConfig::default()
            })
        } else {
            OtSolver::Exact
        };
        Ok(OtddConfig {
            label_cost,
            solver,
            label_weight: 1.0,
        })
    }

    /// The OTDD settings as the options `wowflow flow --method otdd` takes, so both build
    /// the joint dynamics and read their labels the same way.
    fn otdd_args(&self) -> Result<OtddArgs> {
        let o = &self.otdd;
        Ok(OtddArgs {
            // Joint dynamics always use Gaussian labels; `label_cost` is the feature flow's.
            label_cost: None,
            epsilon: (o.epsilon > 0.0).then_some(o.epsilon),
            dynamics: o.dynamics,
            label_dim: o.label_dim,
            clustering: o.clustering,
            ..OtddArgs::default()
        })
    }

    fn otdd_tau_sigma(&self) -> f64 {
        self.otdd.tau_sigma.unwrap_or(self.otdd.tau)
    }

    fn product_mmd_config(&self) -> ProductMmdConfig {
        let p = &self.product_mmd;
        ProductMmdConfig {
            tau: p.tau,
            tau_m: None,
            tau_sigma: Some(p.tau_sigma),
            momentum: p.momentum,
            steps: p.steps,
            bandwidths: BandwidthSpec {
                x: Bandwidth::Median {
                    factor: p.bandwidth_x,
                },
                m: Bandwidth::Median {
                    factor: p.bandwidth_m,
                },
                sigma: Bandwidth::Median {
                    factor: p.bandwidth_sigma,
                },
            },
            embedding: EmbeddingConfig {
                dim: p.p,
                ridge: p.ridge,
            },
        }
    }

    /// Flow steps for a k-shot target.
    pub fn sw_mmd_steps(&self, k: usize) -> usize {
        if k >= 100 {
            self.sw_mmd.steps_k100
        } else {
            self.sw_mmd.steps
        }
    }
}

/// What one table cell is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransferCell {
    /// Registry name of the flowed dataset (the paper's: `mnist`).
    pub source: String,
    /// Registry name of the k-shot dataset (`fashion-mnist`, `kmnist`, `usps`).
    pub target: String,
    /// Target images per class (the k-shot set).
    pub k: usize,
    /// How the k-shot set is augmented.
    pub method: TransferMethod,
}

impl TransferCell {
    /// A file-name-safe identifier.
    pub fn key(&self) -> String {
        format!(
            "transfer-{}-{}-k{}-{}",
            self.source,
            self.target,
            self.k,
            self.method.name()
        )
    }
}

/// One flow and the networks trained on its result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Trial {
    /// Seed of the trial's draws and flow (`seed + t`); network e starts from seed
    /// `1000 · seed + e`.
    pub seed: u64,
    /// The flow (zero steps for target-only).
    #[serde(flatten)]
    pub flow: FlowRecord,
    /// Target label given to each flowed source class (empty for product-mmd, which labels
    /// every particle by its own Gaussian).
    pub labels: Vec<usize>,
    /// Flowed images per target label (a diagnostic of the labelling).
    pub label_counts: Vec<usize>,
    /// One score per network trained.
    pub scores: Vec<Score>,
}

/// The result of a cell: every trial and the mean ± std over trials × evals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    /// The cell computed.
    pub cell: TransferCell,
    /// Name of the profile its settings come from.
    pub profile: String,
    /// The settings it ran with (command-line overrides applied).
    pub settings: TransferSettings,
    /// Test accuracy over every network of every trial: mean ± sample std, in percent.
    pub accuracy: Stats,
    /// Each flow and its networks.
    pub trials: Vec<Trial>,
    /// How the target's pool and test set were made, where the documented fallback applied
    /// (KMNIST: the halves of its test split).
    pub note: Option<String>,
    /// Wall time of the cell, in seconds.
    pub seconds: f64,
    /// The machine it ran on ([`machine`]).
    pub machine: String,
}

/// The k-shot draw and the source draw of one trial.
struct TrialData {
    target: LabeledCloud,
    source: LabeledCloud,
}

fn trial_data(
    dirs: &DataDirs,
    cell: &TransferCell,
    settings: &TransferSettings,
    pool: &wowflow_data::ImageSet,
    seed: u64,
) -> Result<TrialData> {
    let t = Transform::mnist_size(pool);
    let draw = draw_disjoint(pool, &[cell.k], seed)
        .with_context(|| format!("drawing {} images per class of {}", cell.k, cell.target))?;
    let target = to_cloud(pool, &draw[0], &t)?;
    let (source, note) = sample_train(dirs, &cell.source, settings.source_per_class, seed)?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    if source.dim() != target.dim() {
        bail!(
            "{} ({} values per image) and {} ({}) are not in the same space",
            cell.source,
            source.dim(),
            cell.target,
            target.dim()
        );
    }
    Ok(TrialData { target, source })
}

/// Flows the source to the k-shot target with `method`; returns the flowed images (clipped
/// to [0, 1]) with one label per row, and the trial's flow record.
fn augment(
    method: TransferMethod,
    data: &TrialData,
    settings: &TransferSettings,
    k: usize,
    seed: u64,
    gpu: DeviceArgs,
    segments: Option<&FlowSegments>,
) -> Result<(Vec<f32>, Vec<usize>, Trial)> {
    let started = Instant::now();
    let (mut points, row_labels, labels, steps, losses) = match method {
        TransferMethod::TargetOnly => (Vec::new(), Vec::new(), Vec::new(), 0, Vec::new()),
        TransferMethod::TargetRepeated => {
            let (points, row_labels) = repeated(&data.target, settings.source_per_class);
            (points, row_labels, Vec::new(), 0, Vec::new())
        }
        TransferMethod::SwMmd => {
            let s = &settings.sw_mmd;
            let flow = SwMmdFlowSettings {
                kernel: Kernel::by_name(&s.kernel, s.kernel_param)?,
                projections: s.projections,
                sampler: s.sampler.into(),
                target_batch: Some(k),
                optimizer: Optimizer::new(Method::Momentum { m: s.momentum }, s.tau)?,
                seed,
                clip: None,
            };
            let steps = settings.sw_mmd_steps(k);
            let state = crate::resident::flow_to_end(
                data.source.clone(),
                &data.target,
                &flow,
                gpu,
                steps,
                segments,
            )?;
            label_classes(state, data, settings)?
        }
        TransferMethod::Otdd => {
            let args = settings.otdd_args()?;
            let optimizer = Optimizer::new(Method::Gd, settings.otdd.tau)?;
            let (steps, start) = (settings.otdd.steps, data.source.clone());
            match args.joint_config(settings.otdd.tau, settings.otdd_tau_sigma())? {
                None => {
                    let mut objective =
                        OtddFlow::new(data.target.clone(), settings.otdd_config()?)?;
                    let state = run_flow(&mut objective, optimizer, start, steps, seed, segments)?;
                    label_classes(state, data, settings)?
                }
                Some(config) => {
                    let mut joint = JointOtdd::new(&data.source, data.target.clone(), config)?;
                    let state = run_flow(&mut joint, optimizer, start, steps, seed, segments)?;
                    if config.labels == LabelDynamics::Variable {
                        let found = joint_labels(&joint, &args, &state.cloud, &data.target, seed)?;
                        let (points, row_labels) =
                            labelled_rows(&state.cloud, &found.y, &data.target);
                        (points, row_labels, Vec::new(), state.step, state.losses)
                    } else {
                        label_classes(state, data, settings)?
                    }
                }
            }
        }
        TransferMethod::ProductMmd => {
            let config = settings.product_mmd_config();
            let mut objective = ProductMmdObjective::new(&data.source, &data.target, config)?;
            let start = data.source.clone();
            let state = run_flow(
                &mut objective,
                config.optimizer()?,
                start,
                config.steps,
                seed,
                segments,
            )?;
            // One label per particle (its Gaussian's nearest target class by OT).
            let row_labels = objective.assign_labels(state.cloud.points())?;
            let points = state.cloud.points().to_vec();
            (points, row_labels, Vec::new(), state.step, state.losses)
        }
    };
    for v in &mut points {
        *v = v.clamp(0.0, 1.0);
    }
    let mut label_counts = vec![0; data.target.n_classes()];
    for &l in &row_labels {
        if let Some(c) = label_counts.get_mut(l) {
            *c += 1;
        }
    }
    let trial = Trial {
        seed,
        flow: FlowRecord::new(started, steps, &losses),
        labels,
        label_counts,
        scores: Vec::new(),
    };
    Ok((points, row_labels, trial))
}

/// `per_class` rows per class of `target`, cycling through each class's images in order,
/// with the class index of every row.
fn repeated(target: &LabeledCloud, per_class: usize) -> (Vec<f32>, Vec<usize>) {
    let d = target.dim();
    let mut points = Vec::with_capacity(target.n_classes() * per_class * d);
    let mut labels = Vec::with_capacity(target.n_classes() * per_class);
    for c in 0..target.n_classes() {
        let images: Vec<&[f32]> = target.class_points(c).chunks_exact(d).collect();
        for image in images.iter().cycle().take(per_class) {
            points.extend_from_slice(image);
            labels.push(c);
        }
    }
    (points, labels)
}

/// Flowed images, one target class index per row, the label given to each flowed class,
/// and the flow's steps and losses.
type Flowed = (Vec<f32>, Vec<usize>, Vec<usize>, usize, Vec<f64>);

/// Gives every flowed class the label of the target class it is matched with (docs/math.md §8).
fn label_classes(
    state: FlowState,
    data: &TrialData,
    settings: &TransferSettings,
) -> Result<Flowed> {
    let assignment = settings.assign.assign(&state.cloud, &data.target)?;
    let row_labels = assignment.row_labels(&state.cloud);
    Ok((
        state.cloud.points().to_vec(),
        row_labels,
        assignment.labels,
        state.step,
        state.losses,
    ))
}

/// The rows of `cloud` whose label id `y` (a target label id, −1 for clustering noise) is
/// one of `target`'s classes, with that class's index: noise has no label to train on.
fn labelled_rows(cloud: &LabeledCloud, y: &[i64], target: &LabeledCloud) -> (Vec<f32>, Vec<usize>) {
    let ids = target.class_ids();
    let d = cloud.dim();
    let mut points = Vec::with_capacity(cloud.points().len());
    let mut labels = Vec::with_capacity(y.len());
    for (row, &id) in cloud.points().chunks_exact(d).zip(y) {
        if let Some(class) = ids.iter().position(|&t| t == id) {
            points.extend_from_slice(row);
            labels.push(class);
        }
    }
    (points, labels)
}

/// `flowed.png`: up to 10 flowed images per target label, one row per label.
fn save_flowed(out: &Path, points: &[f32], labels: &[usize]) -> Result<()> {
    let ids: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    let (cloud, _) = LabeledCloud::from_labeled_rows(points, 784, &ids)?;
    let order: Vec<usize> = (0..cloud.n_classes()).collect();
    save_grid(&cloud, &order, 10, &out.join("flowed.png"))
}

/// A cell opened for work: the target's pool and test split loaded once, the store of its
/// finished pieces opened. [`run_cell`] runs every piece; [`run_piece`] one.
struct OpenCell<'a> {
    cell: &'a TransferCell,
    settings: &'a TransferSettings,
    dirs: &'a DataDirs,
    out: Option<&'a Path>,
    gpu: DeviceArgs,
    pe: PoolEval,
    test: Images,
    classes: usize,
    store: Option<TrialStore>,
}

impl<'a> OpenCell<'a> {
    fn open(
        cell: &'a TransferCell,
        settings: &'a TransferSettings,
        profile: &str,
        dirs: &'a DataDirs,
        out: Option<&'a Path>,
        gpu: DeviceArgs,
    ) -> Result<Self> {
        let pe = pool_and_eval(dirs, &cell.target, settings.split_seed)
            .with_context(|| format!("loading {}", cell.target))?;
        if let Some(note) = &pe.note {
            eprintln!("note: {note}");
        }
        let all: Vec<Vec<usize>> = pe.eval.class_indices();
        let test_cloud = to_cloud(&pe.eval, &all, &Transform::mnist_size(&pe.eval))?;
        let classes = test_cloud.n_classes();
        let test = Images::from_cloud(&test_cloud, (1, 28, 28), None, classes)?;
        // Finished flows and networks are kept under `out/trials` and reused by a rerun; the
        // numbers of the pieces do not depend on how many trials or networks the cell has.
        let store = match out {
            Some(out) => {
                let mut fingerprint = settings.clone();
                (fingerprint.trials, fingerprint.evals) = (0, 0);
                let device = format!("{gpu:?}");
                Some(TrialStore::open(
                    out,
                    &(cell, profile, fingerprint, device),
                )?)
            }
            None => None,
        };
        Ok(Self {
            cell,
            settings,
            dirs,
            out,
            gpu,
            pe,
            test,
            classes,
            store,
        })
    }

    fn seed(&self, t: usize) -> u64 {
        self.settings.seed + t as u64
    }

    /// Trial `t`'s record and training set: loaded where stored, else flowed and stored.
    fn flow(&self, t: usize) -> Result<(Trial, Images)> {
        let (cell, settings, classes) = (self.cell, self.settings, self.classes);
        if let Some(store) = &self.store {
            if let Some(done) = store.load_flow::<Trial>(t, (1, 28, 28), classes)? {
                eprintln!("{} trial {t}: flow loaded from a previous run", cell.key());
                return Ok(done);
            }
        }
        let seed = self.seed(t);
        let data = trial_data(self.dirs, cell, settings, &self.pe.pool, seed)?;
        let segments = self.store.as_ref().map(|s| s.flow_segments(t));
        let (flowed, flowed_labels, trial) = augment(
            cell.method,
            &data,
            settings,
            cell.k,
            seed,
            self.gpu,
            segments.as_ref(),
        )?;
        let drawn = !flowed.is_empty() && cell.method != TransferMethod::TargetRepeated;
        if let (0, Some(out), true) = (t, self.out, drawn) {
            save_flowed(out, &flowed, &flowed_labels)?;
        }
        let mut values = data.target.points().to_vec();
        let mut labels = Images::from_cloud(&data.target, (1, 28, 28), None, classes)?
            .labels()
            .to_vec();
        values.extend_from_slice(&flowed);
        labels.extend_from_slice(&flowed_labels);
        let train_set = Images::new(values, labels, (1, 28, 28), classes)?;
        if let Some(store) = &self.store {
            store.save_flow(t, &trial, &train_set)?;
        }
        if let Some(segments) = &segments {
            segments.finish()?;
        }
        Ok((trial, train_set))
    }

    /// How network `e` of trial `t` is trained and scored (same seed however it is reached).
    fn train(&self, t: usize, train_set: &Images) -> impl FnMut(usize) -> Result<Score> + '_ {
        let seed = self.seed(t);
        let (settings, test) = (self.settings, &self.test);
        let train_set = train_set.clone();
        move |e| train_and_test(&settings.train, &train_set, test, 1000 * seed + e as u64)
    }
}

/// Runs one cell: `trials` flows × `evals` trainings, scored on the target's test split.
/// With `out`, trial 0's flowed images are drawn there.
pub fn run_cell(
    cell: &TransferCell,
    settings: &TransferSettings,
    profile: &str,
    dirs: &DataDirs,
    out: Option<&Path>,
    gpu: DeviceArgs,
) -> Result<CellResult> {
    let started = Instant::now();
    let open = OpenCell::open(cell, settings, profile, dirs, out, gpu)?;
    let mut trials = Vec::with_capacity(settings.trials);
    let mut accuracies = Vec::new();
    for t in 0..settings.trials {
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
        accuracy: Stats::of_accuracies(&accuracies),
        trials,
        note: open.pe.note,
        seconds: started.elapsed().as_secs_f64(),
        machine: machine(),
    })
}

/// The pieces of a cell, in the order [`run_cell`] computes them: for each trial its flow,
/// then its networks (each needs the flow stored first).
pub fn pieces(settings: &TransferSettings) -> Vec<Piece> {
    (0..settings.trials)
        .flat_map(|t| {
            std::iter::once(Piece::Flow(t))
                .chain((0..settings.evals).map(move |e| Piece::Network(t, e)))
        })
        .collect()
}

/// Computes one piece of a cell into the cell's store under `out`, exactly as [`run_cell`]
/// would (same files, same bits); a network needs its trial's flow stored there first.
pub fn run_piece(
    cell: &TransferCell,
    settings: &TransferSettings,
    profile: &str,
    dirs: &DataDirs,
    out: &Path,
    gpu: DeviceArgs,
    piece: Piece,
) -> Result<()> {
    let open = OpenCell::open(cell, settings, profile, dirs, Some(out), gpu)?;
    match piece {
        Piece::Flow(t) => open.flow(t).map(drop),
        Piece::Network(t, e) => {
            let store = open
                .store
                .as_ref()
                .ok_or_else(|| anyhow!("a network piece needs the cell's store"))?;
            let (_, train_set) = store
                .load_flow::<Trial>(t, (1, 28, 28), open.classes)?
                .ok_or_else(|| {
                    anyhow!(
                        "{} piece {piece}: trial {t}'s flow is not stored under {}; compute \
                         piece flow:{t} first",
                        cell.key(),
                        out.display()
                    )
                })?;
            crate::trials::score(
                Some(store),
                &cell.key(),
                t,
                e,
                &mut open.train(t, &train_set),
            )
            .map(drop)
        }
        Piece::Cell => run_cell(cell, settings, profile, dirs, Some(out), gpu).map(drop),
    }
}

/// Runs `wowflow experiment transfer`: one cell, written to `OUT/result.json`, with trial
/// 0's flowed images in `OUT/flowed.png` (all methods but `target-only`).
pub fn run(args: TransferArgs) -> Result<()> {
    args.gpu.check()?;
    let mut settings = TransferSettings::load(args.common.config.as_deref(), &args.common.profile)?;
    if let Some(t) = args.trials {
        settings.trials = t;
    }
    if let Some(e) = args.evals {
        settings.evals = e;
    }
    settings.validate()?;
    args.gpu
        .check_sampler(settings.sw_mmd.sampler, "sw_mmd.sampler")?;
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    let cell = TransferCell {
        source: dataset_name(&args.source).to_string(),
        target: dataset_name(&args.target).to_string(),
        k: args.k,
        method: args.method,
    };
    let out =
        args.common.out.clone().unwrap_or_else(|| {
            PathBuf::from(format!("runs/{}-{}", cell.key(), args.common.profile))
        });
    wowflow_data::prepare_output_dir(&out)?;
    let dirs = DataDirs::new(args.common.data_dir.as_deref());
    let result = run_cell(
        &cell,
        &settings,
        &args.common.profile,
        &dirs,
        Some(&out),
        args.gpu,
    )?;
    write_file(
        &out.join("result.json"),
        &serde_json::to_string_pretty(&result)?,
    )?;
    println!(
        "{} → {} k = {} ({}): test accuracy {} % over {} networks ({:.0} s); {}",
        cell.source,
        cell.target,
        cell.k,
        cell.method.name(),
        result.accuracy,
        result.accuracy.n,
        result.seconds,
        out.join("result.json").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wowflow_core::toy::{rings, two_noise_classes};

    fn tiny() -> TransferSettings {
        TransferSettings::load(None, "tiny").unwrap()
    }

    #[test]
    fn the_sampler_is_read_by_name_and_defaults_to_gaussian() {
        assert_eq!(tiny().sw_mmd.sampler, SamplerName::Gaussian);
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../experiments/transfer.toml"
        ))
        .unwrap();
        for (name, want) in [
            ("structured", Some(SamplerName::Structured)),
            ("hadamard", None),
        ] {
            let edited = text.replacen(
                "[profile.tiny.sw_mmd]",
                &format!("[profile.tiny.sw_mmd]\nsampler = \"{name}\""),
                1,
            );
            let path = std::env::temp_dir().join(format!(
                "wowflow-transfer-sampler-{name}-{}.toml",
                std::process::id()
            ));
            std::fs::write(&path, edited).unwrap();
            let read = crate::load_profile::<TransferSettings>("", "", Some(&path), "tiny");
            std::fs::remove_file(&path).unwrap();
            match want {
                Some(want) => assert_eq!(read.unwrap().sw_mmd.sampler, want),
                None => {
                    let err = format!("{:#}", read.unwrap_err());
                    assert!(
                        err.contains("hadamard") && err.contains("structured"),
                        "{err}"
                    );
                }
            }
        }
        // The GPU-resident flow draws Gaussian directions only: refused before any work.
        let cuda = DeviceArgs {
            device: crate::device::Device::Cuda,
            tf32: false,
        };
        let err = cuda
            .check_sampler(SamplerName::Structured, "sw_mmd.sampler")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sw_mmd.sampler") && err.contains("gaussian"),
            "{err}"
        );
        assert!(cuda
            .check_sampler(SamplerName::Gaussian, "sw_mmd.sampler")
            .is_ok());
    }

    #[test]
    fn otdd_dynamics_settings_are_checked_by_name() {
        let mut s = tiny();
        assert_eq!(
            s.otdd.dynamics,
            DynamicsName::Feature,
            "profiles without the key keep the default"
        );
        s.otdd.dynamics = DynamicsName::JointVariable;
        s.validate().unwrap();
        s.otdd.label_dim = 0;
        assert!(s.validate().is_err());
        // Names a profile cannot hold are refused where the profile is read, with the
        // profile, the key and the names it takes.
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../experiments/transfer.toml"
        ))
        .unwrap();
        for (key, bad, names) in [
            ("dynamics", "joint", "joint-variable"),
            ("clustering", "spectral", "kmeans"),
        ] {
            let edited = text.replacen(
                "[profile.tiny.otdd]",
                &format!("[profile.tiny.otdd]\n{key} = \"{bad}\""),
                1,
            );
            let path = std::env::temp_dir().join(format!(
                "wowflow-transfer-{key}-{}.toml",
                std::process::id()
            ));
            std::fs::write(&path, edited).unwrap();
            let err =
                crate::load_profile::<TransferSettings>("", "", Some(&path), "tiny").unwrap_err();
            std::fs::remove_file(&path).unwrap();
            let err = format!("{err:#}");
            assert!(
                err.contains(bad) && err.contains(names) && err.contains("tiny"),
                "{err}"
            );
        }
    }

    /// The control repeats each class's own images, in order, to exactly `per_class` rows:
    /// classes of unequal size keep their labels and no image of another class leaks in.
    #[test]
    fn the_repeated_control_cycles_each_class_to_the_flowed_size() {
        // Class 0: two images [0, 0], [1, 1]; class 1: three images [10, 10] … [12, 12].
        let points = vec![0.0, 0.0, 1.0, 1.0, 10.0, 10.0, 11.0, 11.0, 12.0, 12.0];
        let target = LabeledCloud::from_parts(points, 2, vec![0, 2, 5], vec![7, 9]).unwrap();
        let (rows, labels) = repeated(&target, 5);
        assert_eq!(labels, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
        let firsts: Vec<f32> = rows.chunks_exact(2).map(|r| r[0]).collect();
        assert_eq!(
            firsts,
            [0.0, 1.0, 0.0, 1.0, 0.0, 10.0, 11.0, 12.0, 10.0, 11.0]
        );
        let data = TrialData {
            source: target.clone(),
            target,
        };
        let mut settings = tiny();
        settings.source_per_class = 4;
        let (rows, labels, trial) = augment(
            TransferMethod::TargetRepeated,
            &data,
            &settings,
            2,
            0,
            DeviceArgs::default(),
            None,
        )
        .unwrap();
        assert_eq!((rows.len(), labels.len()), (16, 8));
        assert_eq!(trial.label_counts, [4, 4]);
        assert_eq!(trial.flow.flow_steps, 0);
    }

    /// jd-vl from two source classes towards three target classes (the core's test case):
    /// every flowed image gets one of the three target labels from its own Gaussian, so the
    /// augmented set covers a class no source class was matched with.
    #[test]
    fn variable_label_otdd_labels_each_flowed_image() {
        let target = rings(20, 0).unwrap();
        let source = two_noise_classes(30, 4.0, 2).unwrap();
        let data = TrialData { target, source };
        let mut settings = tiny();
        settings.otdd = OtddSettings {
            tau: 0.25,
            steps: 40,
            dynamics: DynamicsName::JointVariable,
            label_dim: 2,
            tau_sigma: Some(0.25),
            ..settings.otdd
        };
        let run = |settings: &TransferSettings| {
            augment(
                TransferMethod::Otdd,
                &data,
                settings,
                20,
                0,
                DeviceArgs::default(),
                None,
            )
            .unwrap()
        };
        let (points, row_labels, trial) = run(&settings);
        assert_eq!(points.len(), 2 * row_labels.len());
        assert_eq!(row_labels.len(), 60, "DBSCAN leaves no noise here");
        assert!(trial.labels.is_empty());
        assert!(
            trial.label_counts.iter().all(|&n| n > 0),
            "{:?}",
            trial.label_counts
        );

        // Fixed labels keep two classes: two target labels at most.
        settings.otdd.dynamics = DynamicsName::JointFixed;
        let (_, row_labels, trial) = run(&settings);
        assert_eq!(row_labels.len(), 60);
        assert_eq!(trial.labels.len(), 2);
        assert_eq!(trial.label_counts.iter().filter(|&&n| n > 0).count(), 2);
    }
}

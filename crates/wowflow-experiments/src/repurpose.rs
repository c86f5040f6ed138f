//! Model re-purposing (Alvarez-Melis & Fusi 2021, §7.3 and their Table 1; docs/math.md §9):
//! one classifier trained on MNIST is frozen, another dataset is flowed to MNIST, and the
//! frozen classifier — with the class-correspondence layer of their §6.4 appended — labels
//! the flowed images. Protocol and profiles in `experiments/repurpose.toml`; the table with
//! their numbers beside ours is `experiments/amf-table1.toml` (`wowflow experiment table`).
//!
//! A cell is one source dataset, one flow (`before`: none; `otdd`: the OTDD flow; `sw-mmd`:
//! the WoW SW-MMD flow) and one modality:
//!
//! - *supervised*: the source's true classes drive the labeled flow;
//! - *unsupervised*: no source label is used by the flow — the classes are k-means
//!   pseudo-labels of the initial images (their §6.3), each cluster weighted by its size.
//!
//! After the flow, the coupling `Γ` between the flowed classes and MNIST's classes (exact OT
//! on the label-to-label costs, [`crate::AssignSettings`]) becomes the layer
//! `q = Mᵀ softmax(logits)` ([`wowflow_ot::ClassCorrespondence`]), which predicts a flowed
//! class for every image. Supervised accuracy: the predicted class against the image's true
//! class. Unsupervised accuracy: the predicted cluster mapped to a true label by the one-to-one
//! matching of clusters with true labels that agrees most with the clustering itself (their
//! Appendix C, [`wowflow_ot::LabelMatching`]: labels are used for scoring only, never by the
//! flow or the layer). `before`: the frozen classifier on the raw images, its digit taken as
//! the class (their "Original" row; only meaningful where classes are digits, i.e. USPS).

use super::{load_profile, machine, sample_train, save_grid, AssignMethod, AssignSettings};
use crate::checkpoint::FlowSegments;
use crate::domain_adaptation::{classifier, ClassifierSettings};
use crate::evaluate::{FlowRecord, Stats};
use crate::method::{FlowSettings, OtddRun, SwMmdRun};
use crate::trials::TrialStore;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;
use wowflow_baselines::Clustering;
use wowflow_core::{ClassWeighting, LabeledCloud};
use wowflow_data::DataDirs;
use wowflow_nn::{predict_proba, CpuBackend, DaCnn, Images, ModelStore};
use wowflow_ot::{ClassCorrespondence, LabelMatching};

const BUILTIN: &str = include_str!("../../../experiments/repurpose.toml");

/// The images the classifier sees: 1 × 28 × 28, 10 MNIST classes.
const SHAPE: (usize, usize, usize) = (1, 28, 28);
const CLASSES: usize = 10;

/// The flow of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepurposeMethod {
    /// No flow: the frozen classifier on the raw images (their "Original" row).
    Before,
    /// The feature-driven OTDD flow (Alvarez-Melis & Fusi 2021).
    Otdd,
    /// The WoW SW-MMD flow (Riesz kernel by default).
    SwMmd,
}

impl RepurposeMethod {
    /// Every method, in table order.
    pub const ALL: [RepurposeMethod; 3] = [Self::Before, Self::Otdd, Self::SwMmd];

    /// The name used in configs and cell keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::Otdd => "otdd",
            Self::SwMmd => "sw-mmd",
        }
    }
}

/// Which classes drive the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Modality {
    /// The source's true classes.
    Supervised,
    /// k-means pseudo-labels of the initial images.
    Unsupervised,
}

impl Modality {
    /// Both, in table order.
    pub const ALL: [Modality; 2] = [Self::Supervised, Self::Unsupervised];

    /// The name used in configs and cell keys.
    pub fn name(self) -> &'static str {
        match self {
            Self::Supervised => "supervised",
            Self::Unsupervised => "unsupervised",
        }
    }
}

/// One cell of the re-purposing table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RepurposeCell {
    /// The dataset flowed to MNIST (`usps`, `kmnist`, `fashion-mnist`).
    pub source: String,
    /// The flow.
    pub method: RepurposeMethod,
    /// The classes that drive it (ignored by `before`).
    pub modality: Modality,
}

impl RepurposeCell {
    /// `repurpose-SOURCE-before` or `repurpose-SOURCE-METHOD-MODALITY`.
    pub fn key(&self) -> String {
        match self.method {
            RepurposeMethod::Before => format!("repurpose-{}-before", self.source),
            m => format!(
                "repurpose-{}-{}-{}",
                self.source,
                m.name(),
                self.modality.name()
            ),
        }
    }
}

/// A profile of `experiments/repurpose.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepurposeSettings {
    /// One line saying what the profile is.
    pub description: String,
    /// Flows per cell (trial `t` draws its source images, clusters and directions from
    /// `seed + t`).
    pub trials: usize,
    /// Seed of trial 0.
    pub seed: u64,
    /// Source images per class flowed (their 5 000 images: 500 per class).
    pub source_per_class: usize,
    /// MNIST images per class the flow goes to: the first this many per class of the
    /// classifier's training images; at most `classifier.per_class`.
    pub target_per_class: usize,
    /// The frozen MNIST classifier (the DA CNN; shared, and cached, with
    /// `wowflow experiment domain-adaptation`).
    pub classifier: ClassifierSettings,
    /// The OTDD flow.
    pub otdd: OtddRun,
    /// The SW-MMD flow.
    pub sw_mmd: SwMmdRun,
    /// The pseudo-labels of the unsupervised modality.
    pub pseudo_labels: PseudoLabels,
    /// The label-to-label costs and the exact OT that give the class coupling `Γ`.
    pub assign: AssignSettings,
}

/// The `pseudo_labels` table: k-means on the initial images.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudoLabels {
    /// Number of clusters (10: the classes of the datasets here).
    pub clusters: usize,
    /// k-means++ restarts; the lowest inertia wins.
    pub restarts: usize,
}

impl RepurposeSettings {
    /// Reads and checks profile `profile` of `config` (default: the built-in
    /// `experiments/repurpose.toml`).
    pub fn load(config: Option<&Path>, profile: &str) -> Result<Self> {
        let s: Self = load_profile(BUILTIN, "experiments/repurpose.toml", config, profile)?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<()> {
        crate::at_least_one(&[
            ("trials", self.trials),
            ("source_per_class", self.source_per_class),
            ("target_per_class", self.target_per_class),
            ("classifier.per_class", self.classifier.per_class),
            ("classifier.steps", self.classifier.steps),
            ("sw_mmd.projections", self.sw_mmd.projections),
            ("pseudo_labels.clusters", self.pseudo_labels.clusters),
        ])?;
        if self.target_per_class > self.classifier.per_class {
            bail!(
                "setting `target_per_class` ({}) exceeds `classifier.per_class` ({}): the \
                 target is a subset of the classifier's training images",
                self.target_per_class,
                self.classifier.per_class
            );
        }
        for m in [RepurposeMethod::Otdd, RepurposeMethod::SwMmd] {
            self.flow_settings(m, 0)?;
        }
        if self.assign.method == AssignMethod::NearestNeighbor {
            bail!(
                "setting `assign.method`: the correspondence layer reads an OT coupling; use \
                 `sliced` or `wasserstein`, not `nearest-neighbor`"
            );
        }
        Ok(())
    }

    /// The flow of `method` with trial seed `seed`, as `wowflow flow` takes it (so both build
    /// the same objective); an error for `before`, which does not flow.
    pub fn flow_settings(&self, method: RepurposeMethod, seed: u64) -> Result<FlowSettings> {
        match method {
            RepurposeMethod::Otdd => self.otdd.flow_settings(seed).context("settings `otdd`"),
            RepurposeMethod::SwMmd => self.sw_mmd.flow_settings(seed).context("settings `sw_mmd`"),
            RepurposeMethod::Before => bail!("the `before` cells do not flow"),
        }
    }
}

/// One flow of a cell and what the frozen classifier made of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepurposeTrial {
    /// Seed of the source draw, the clustering and the flow.
    pub seed: u64,
    /// Accuracy (in [0, 1]) of the cell: see the module documentation.
    pub accuracy: f64,
    /// The frozen classifier on the raw source images, its digit taken as the class.
    pub accuracy_before: f64,
    /// After the flow, the classifier's digit taken as the class, without the layer.
    pub accuracy_without_layer: Option<f64>,
    /// Unsupervised: agreement of the best cluster–label matching with the true labels (the
    /// accuracy the pseudo-labels themselves allow).
    pub clustering_accuracy: Option<f64>,
    /// The correspondence layer `M` (`K × C`) and coupling `Γ` used (absent for `before`).
    pub correspondence: Option<ClassCorrespondence>,
    /// Unsupervised: the true label each cluster was matched with.
    pub cluster_labels: Option<Vec<Option<usize>>>,
    /// How the source was drawn where its train split is missing (KMNIST's fallback).
    #[serde(default)]
    pub note: Option<String>,
    /// The flow's time, steps and losses (the time of this run's part, after a resume).
    #[serde(flatten)]
    pub flow: FlowRecord,
}

/// A finished cell (`OUT/cells/KEY.json` of the table runner).
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    /// The cell.
    pub cell: RepurposeCell,
    /// The profile it was computed with.
    pub profile: String,
    /// The settings of that profile.
    pub settings: RepurposeSettings,
    /// Mean ± std over the trials, in percent.
    pub accuracy: Stats,
    /// Every trial.
    pub trials: Vec<RepurposeTrial>,
    /// The frozen classifier's accuracy on the MNIST test split.
    pub classifier_mnist_test_accuracy: Option<f64>,
    /// How the source was drawn where its train split is missing (KMNIST).
    pub note: Option<String>,
    /// Wall time of the cell.
    pub seconds: f64,
    /// CPU and threads.
    pub machine: String,
}

/// The source images of trial `seed` and the classes that drive its flow: the true classes,
/// or k-means pseudo-labels (clusters weighted by their size). Returns the start cloud, the
/// true label of each of its rows, and the clustering's row ids (unsupervised).
fn start_cloud(
    source: &LabeledCloud,
    modality: Modality,
    settings: &RepurposeSettings,
    seed: u64,
) -> Result<(LabeledCloud, Vec<usize>, Option<Vec<usize>>)> {
    let truth = source.row_classes();
    match modality {
        Modality::Supervised => Ok((source.clone(), truth, None)),
        Modality::Unsupervised => {
            let points: Vec<f64> = source.points().iter().map(|&v| v as f64).collect();
            let clusters = Clustering::KMeans {
                k: settings.pseudo_labels.clusters,
                seed,
                restarts: settings.pseudo_labels.restarts,
            }
            .run(&points, source.dim())
            .context("k-means pseudo-labels of the source images")?;
            let ids: Vec<i64> = clusters
                .labels
                .iter()
                .map(|l| l.map_or(-1, |c| c as i64))
                .collect();
            let (cloud, order) =
                LabeledCloud::from_labeled_rows(source.points(), source.dim(), &ids)?;
            let cloud = cloud.with_class_weighting(ClassWeighting::Proportional);
            let truth = order.iter().map(|&i| truth[i]).collect();
            let rows = cloud.row_classes();
            Ok((cloud, truth, Some(rows)))
        }
    }
}

/// Fraction of rows with `a[i] == b[i]`.
fn agreement(a: &[usize], b: &[usize]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len().max(1) as f64
}

/// Runs one cell: `trials` flows, each scored by the frozen classifier. With `out`, trials
/// are kept in `out/trials` (each trial's record in `tT.json`, its flowed images with their
/// true labels in `tT.npz`; flows resume from 500-step segments) and trial 0's flowed
/// images are drawn in `out/flowed.png` (one row per flowed class, ordered by the MNIST
/// class it is coupled with most).
pub fn run_cell(
    cell: &RepurposeCell,
    settings: &RepurposeSettings,
    profile: &str,
    dirs: &DataDirs,
    out: Option<&Path>,
) -> Result<CellResult> {
    let started = Instant::now();
    let c = &settings.classifier;
    let store = ModelStore::user_cache()
        .unwrap_or_else(|| ModelStore::new(out.unwrap_or(Path::new(".")).join("models")));
    let (mnist, _) = sample_train(dirs, "mnist", c.per_class, c.seed)?;
    let (model, card, _) = classifier(c, &mnist, dirs, &store, false)?;
    let keep: Vec<Vec<usize>> = (0..mnist.n_classes())
        .map(|_| (0..settings.target_per_class).collect())
        .collect();
    let target = mnist.select(&keep)?;
    let trials_store = match out {
        Some(out) => {
            let mut fingerprint = settings.clone();
            fingerprint.trials = 0;
            Some(TrialStore::open(out, &(cell, profile, fingerprint))?)
        }
        None => None,
    };
    let mut trials = Vec::with_capacity(settings.trials);
    let mut note = None;
    for t in 0..settings.trials {
        let seed = settings.seed + t as u64;
        if let Some(store) = &trials_store {
            if let Some((trial, _)) = store.load_flow::<RepurposeTrial>(t, SHAPE, CLASSES)? {
                eprintln!("{} trial {t}: loaded from a previous run", cell.key());
                note = note.or(trial.note.clone());
                trials.push(trial);
                continue;
            }
        }
        let (source, source_note) =
            sample_train(dirs, &cell.source, settings.source_per_class, seed)?;
        if source.n_classes() != CLASSES || source.dim() != SHAPE.1 * SHAPE.2 {
            bail!(
                "source {}: expected {CLASSES} classes of 784 values, got {} classes of {}",
                cell.source,
                source.n_classes(),
                source.dim()
            );
        }
        note = note.or(source_note);
        let segments = trials_store.as_ref().map(|s| s.flow_segments(t));
        let (mut trial, images) = run_trial(
            cell,
            settings,
            &model,
            &source,
            &target,
            seed,
            segments.as_ref(),
            if t == 0 { out } else { None },
        )?;
        trial.note = note.clone();
        eprintln!(
            "{} trial {t}: accuracy {:.2} % (before the flow {:.2} %)",
            cell.key(),
            100.0 * trial.accuracy,
            100.0 * trial.accuracy_before
        );
        if let Some(store) = &trials_store {
            store.save_flow(t, &trial, &images)?;
        }
        if let Some(segments) = &segments {
            segments.finish()?;
        }
        trials.push(trial);
    }
    let accuracies: Vec<f64> = trials.iter().map(|t| t.accuracy).collect();
    Ok(CellResult {
        cell: cell.clone(),
        profile: profile.to_string(),
        settings: settings.clone(),
        accuracy: Stats::of_accuracies(&accuracies),
        trials,
        classifier_mnist_test_accuracy: card.test.map(|t| t.accuracy),
        note,
        seconds: started.elapsed().as_secs_f64(),
        machine: machine(),
    })
}

#[allow(clippy::too_many_arguments)]
fn run_trial(
    cell: &RepurposeCell,
    settings: &RepurposeSettings,
    model: &DaCnn<CpuBackend>,
    source: &LabeledCloud,
    target: &LabeledCloud,
    seed: u64,
    segments: Option<&FlowSegments>,
    out: Option<&Path>,
) -> Result<(RepurposeTrial, Images)> {
    let device = Default::default();
    let probs_of = |cloud: &LabeledCloud| -> Result<Vec<f64>> {
        let n = cloud.n_points();
        let images = Images::new(cloud.points().to_vec(), vec![0; n], SHAPE, CLASSES)?;
        Ok(predict_proba(model, &images, 500, &device)?)
    };
    let argmax_rows = |probs: &[f64]| -> Vec<usize> {
        probs
            .chunks_exact(CLASSES)
            .map(wowflow_ot::correspondence::argmax)
            .collect()
    };
    let truth_source = source.row_classes();
    let accuracy_before = agreement(&argmax_rows(&probs_of(source)?), &truth_source);
    if cell.method == RepurposeMethod::Before {
        let images = Images::new(source.points().to_vec(), truth_source, SHAPE, CLASSES)?;
        let trial = RepurposeTrial {
            seed,
            accuracy: accuracy_before,
            accuracy_before,
            accuracy_without_layer: None,
            clustering_accuracy: None,
            correspondence: None,
            cluster_labels: None,
            note: None,
            flow: FlowRecord::default(),
        };
        return Ok((trial, images));
    }
    let (start, truth, cluster_rows) = start_cloud(source, cell.modality, settings, seed)?;
    let matching = match &cluster_rows {
        Some(rows) => Some(LabelMatching::best(
            rows,
            &truth,
            start.n_classes(),
            CLASSES,
        )?),
        None => None,
    };
    let flow_settings = settings.flow_settings(cell.method, seed)?;
    let started = Instant::now();
    let mut state = FlowSegments::resume_or_start(segments, start.clone())?;
    let mut flow = crate::method::MethodFlow::new(&flow_settings, &state, &start, target)?;
    crate::run_observed(
        flow_settings.steps,
        segments,
        &mut state,
        |state, observers| flow.run(state, observers),
    )?;
    let record = FlowRecord::new(started, state.step, &state.losses);
    let flowed = &state.cloud;
    let assignment = settings.assign.assign(flowed, target)?;
    let layer = ClassCorrespondence::from_assignment(&assignment)?;
    let probs = probs_of(flowed)?;
    let predicted = layer.predict(&probs, flowed.n_points())?;
    let accuracy = match &matching {
        None => agreement(&predicted, &truth),
        Some(m) => m.accuracy_of(&predicted, &truth)?,
    };
    if let Some(out) = out {
        let mut order: Vec<usize> = (0..flowed.n_classes()).collect();
        order.sort_by_key(|&c| assignment.labels[c]);
        save_grid(flowed, &order, 10, &out.join("flowed.png"))?;
    }
    let trial = RepurposeTrial {
        seed,
        accuracy,
        accuracy_before,
        accuracy_without_layer: Some(agreement(&argmax_rows(&probs), &truth)),
        clustering_accuracy: matching.as_ref().map(LabelMatching::accuracy),
        correspondence: Some(layer),
        cluster_labels: matching.map(|m| m.label_of),
        note: None,
        flow: record,
    };
    // The flowed images with their true labels: the scores can be recomputed from them.
    let images = Images::new(flowed.points().to_vec(), truth, SHAPE, CLASSES)?;
    Ok((trial, images))
}

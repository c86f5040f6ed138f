//! `wowflow experiment domain-adaptation`: a frozen MNIST classifier scores a flow of another
//! dataset to MNIST (docs/math.md §9; protocol and profiles in
//! `experiments/domain-adaptation.toml`).

use super::{
    dataset_name, load_profile, machine, sample_train, save_grid, write_file, AssignSettings,
    CommonArgs,
};
use crate::method::SamplerName;
use crate::progress::{interrupt_flag, Progress};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use wowflow_core::{
    Control, FlowState, Kernel, LabeledCloud, Method, Observer, Optimizer, Outcome, StepInfo,
    SwMmdFlowSettings,
};
use wowflow_data::{load_split, DataDirs, Split, Transform};
use wowflow_nn::{
    evaluate, model_key, predict, train, Architecture, Budget, CpuAutodiff, CpuBackend, DaCnn,
    Evaluation, Images, ModelCard, ModelStore, TrainConfig,
};

const BUILTIN: &str = include_str!("../../../experiments/domain-adaptation.toml");

/// Options of `wowflow experiment domain-adaptation`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DaArgs {
    /// Dataset flowed to the target: fmnist, kmnist or usps (mnist works too, as a check).
    #[cfg_attr(feature = "clap", arg(long))]
    pub source: String,
    /// Dataset the classifier is trained on and the flow goes to.
    #[cfg_attr(feature = "clap", arg(long, default_value = "mnist"))]
    pub target: String,
    /// `--config`, `--profile`, `--out`, `--data-dir`.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub common: CommonArgs,
    /// Where trained classifiers are kept and reused [default: ~/.cache/wowflow/models].
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub models: Option<PathBuf>,
    /// Train the classifier even if a saved one matches.
    #[cfg_attr(feature = "clap", arg(long))]
    pub retrain: bool,
    /// `--device` and `--tf32`: where the flow runs.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub gpu: crate::device::DeviceArgs,
}

/// A profile of `experiments/domain-adaptation.toml` (docs/math.md §9).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaSettings {
    /// One line saying what the profile is (kept in `summary.json`).
    pub description: String,
    /// The frozen MNIST classifier (the DA CNN of docs/math.md §10) and its training.
    pub classifier: ClassifierSettings,
    /// The flow of the source images to the classifier's MNIST images.
    pub flow: DaFlowSettings,
    /// How flowed classes get MNIST labels at each checkpoint.
    pub assign: AssignSettings,
    /// Image grids of the flowed classes.
    pub output: OutputSettings,
}

/// The `classifier` table: training of the frozen DA CNN (AdamW). A classifier trained with
/// the same settings is saved and reused (`--models`, `--retrain`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierSettings {
    /// Target images per class: the classifier's training set and the flow's target.
    pub per_class: usize,
    /// Training steps (mini-batches).
    pub steps: usize,
    /// Images per mini-batch.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
    /// Seed of the image draw, the initial weights and the batch order.
    pub seed: u64,
}

/// The `flow` table: the Riesz SW-MMD flow (K = −SW₂) of the source images to MNIST.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaFlowSettings {
    /// Source images per class that are flowed (a seeded draw of the source's train split,
    /// see [`sample_train`]).
    pub source_per_class: usize,
    /// Target images per class: the first this many of each class of the classifier's
    /// training images (a seeded random subset of them); at most `classifier.per_class`.
    pub target_per_class: usize,
    /// Slicing directions L, drawn afresh every step.
    pub projections: usize,
    /// How the directions are drawn: `gaussian` (the default), `orthogonal` or `structured`
    /// (docs/math.md §3; the GPU-resident flow draws Gaussian ones only).
    #[serde(default)]
    pub sampler: SamplerName,
    /// Step size τ.
    pub tau: f64,
    /// Heavy-ball momentum.
    pub momentum: f64,
    /// Flow steps.
    pub steps: usize,
    /// Steps between checkpoints (label assignment and classifier accuracy; also at step 0
    /// and at the last step).
    pub checkpoint_every: usize,
    /// Seed of the source draw and of the flow's directions.
    pub seed: u64,
}

/// The `output` table: image grids of the flowed classes (`grid_stepNNNNN.png`, one row per
/// class, rows ordered by the MNIST label assigned).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSettings {
    /// Flowed images per class in each grid.
    pub grid_per_class: usize,
    /// Draw a grid at the checkpoints whose step is a multiple of this (and at the last):
    /// grids are drawn at checkpoints only.
    pub grid_every: usize,
}

/// One row of `accuracy.csv`.
#[derive(Debug, Clone, Serialize)]
struct Checkpoint {
    step: usize,
    /// `F` at this step (before the step's update; `None` at step 0 before any evaluation).
    loss: Option<f64>,
    /// Frozen classifier's accuracy on the flowed images with assigned labels.
    accuracy: f64,
    /// The same with flowed class c labelled c (no assignment).
    accuracy_identity: f64,
    per_class: Vec<Option<f64>>,
    /// MNIST label given to each flowed class.
    labels: Vec<usize>,
    /// Seconds of flow so far (checkpoint evaluation excluded).
    flow_seconds: f64,
}

struct Monitor<'a> {
    model: &'a DaCnn<CpuBackend>,
    target: &'a LabeledCloud,
    settings: &'a DaSettings,
    out: &'a Path,
    rows: Vec<Checkpoint>,
    flow_seconds: f64,
    eval_seconds: f64,
    error: Option<anyhow::Error>,
}

impl Monitor<'_> {
    fn checkpoint(&mut self, state: &FlowState) -> Result<()> {
        let started = Instant::now();
        let flowed = &state.cloud;
        let assignment = self.settings.assign.assign(flowed, self.target)?;
        let device = Default::default();
        let images = Images::from_cloud(flowed, (1, 28, 28), Some(&assignment.labels), 10)?;
        let pred = predict(self.model, &images, 500, &device);
        let eval = Evaluation::new(&pred, images.labels(), 10)?;
        let identity: Vec<usize> = (0..flowed.n_classes()).collect();
        let id_images = Images::from_cloud(flowed, (1, 28, 28), Some(&identity), 10)?;
        let id_eval = Evaluation::new(&pred, id_images.labels(), 10)?;
        let step = state.step;
        let last = step == self.settings.flow.steps;
        if step.is_multiple_of(self.settings.output.grid_every.max(1)) || last {
            // Rows ordered by the MNIST class each flowed class was given.
            let mut order: Vec<usize> = (0..flowed.n_classes()).collect();
            order.sort_by_key(|&c| assignment.labels[c]);
            save_grid(
                flowed,
                &order,
                self.settings.output.grid_per_class,
                &self.out.join(format!("grid_step{step:05}.png")),
            )?;
        }
        self.rows.push(Checkpoint {
            step,
            loss: state.losses.last().copied(),
            accuracy: eval.accuracy,
            accuracy_identity: id_eval.accuracy,
            per_class: eval.per_class,
            labels: assignment.labels,
            flow_seconds: self.flow_seconds,
        });
        self.eval_seconds += started.elapsed().as_secs_f64();
        Ok(())
    }
}

impl Observer for Monitor<'_> {
    fn on_step(&mut self, info: &StepInfo, state: &FlowState) -> wowflow_core::Result<Control> {
        self.flow_seconds += info.seconds;
        if self.needs_state(state.step, info.total) {
            if let Err(e) = self.checkpoint(state) {
                self.error = Some(e);
                return Ok(Control::Stop);
            }
        }
        Ok(Control::Continue)
    }

    fn needs_state(&self, steps_done: usize, total: usize) -> bool {
        steps_done.is_multiple_of(self.settings.flow.checkpoint_every.max(1)) || steps_done == total
    }
}

fn validate(s: &DaSettings) -> Result<()> {
    crate::at_least_one(&[
        ("classifier.per_class", s.classifier.per_class),
        ("classifier.steps", s.classifier.steps),
        ("classifier.batch_size", s.classifier.batch_size),
        ("flow.source_per_class", s.flow.source_per_class),
        ("flow.target_per_class", s.flow.target_per_class),
        ("flow.projections", s.flow.projections),
        ("flow.checkpoint_every", s.flow.checkpoint_every),
        ("output.grid_per_class", s.output.grid_per_class),
        ("output.grid_every", s.output.grid_every),
    ])?;
    if s.flow.target_per_class > s.classifier.per_class {
        bail!(
            "setting `flow.target_per_class` ({}) exceeds `classifier.per_class` ({}): the \
             target is a subset of the classifier's training images",
            s.flow.target_per_class,
            s.classifier.per_class
        );
    }
    Ok(())
}

/// The classifier for these settings: loaded from `store` if a matching one was saved,
/// else trained (with a progress bar), scored on the full MNIST test split and saved.
pub(crate) fn classifier(
    settings: &ClassifierSettings,
    train_cloud: &LabeledCloud,
    dirs: &DataDirs,
    store: &ModelStore,
    retrain: bool,
) -> Result<(DaCnn<CpuBackend>, ModelCard, bool)> {
    let device = Default::default();
    let key = model_key(&[
        "da-cnn",
        "mnist-train",
        &format!("{}pc", settings.per_class),
        &format!("{}steps", settings.steps),
        &format!("bs{}", settings.batch_size),
        &format!("lr{}", settings.lr),
        &format!("wd{}", settings.weight_decay),
        &format!("seed{}", settings.seed),
    ]);
    if store.contains(&key) && !retrain {
        let fresh = DaCnn::<CpuBackend>::new(10, settings.seed, &device);
        let (model, card) = store
            .load(&key, fresh, &device)
            .with_context(|| format!("loading the saved classifier `{key}`"))?;
        eprintln!(
            "classifier: loaded {} (MNIST test accuracy {})",
            store.weights_path(&key).display(),
            card.test
                .as_ref()
                .map_or("not measured".into(), |t| format!(
                    "{:.2} %",
                    100.0 * t.accuracy
                ))
        );
        return Ok((model, card, true));
    }
    let data = Images::from_cloud(train_cloud, (1, 28, 28), None, 10)?;
    let config = TrainConfig {
        budget: Budget::Steps(settings.steps),
        batch_size: settings.batch_size,
        lr: settings.lr,
        weight_decay: settings.weight_decay,
        engine: Default::default(),
        seed: settings.seed,
    };
    eprintln!(
        "classifier: training the DA CNN on {} MNIST images ({} per class), {} steps of {}",
        data.len(),
        settings.per_class,
        settings.steps,
        settings.batch_size
    );
    let bar =
        ProgressBar::with_draw_target(Some(settings.steps as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len}  loss {msg}  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let model = DaCnn::<CpuAutodiff>::new(10, settings.seed, &device);
    let (model, report) = train(model, &data, &config, &device, &mut |p| {
        bar.set_position(p.step as u64);
        if p.step.is_multiple_of(10) {
            bar.set_message(format!("{:.4}", p.loss));
        }
    })?;
    bar.finish_and_clear();
    let test_set =
        load_split(dirs, "mnist", Split::Test).context("loading the MNIST test split")?;
    let all: Vec<Vec<usize>> = test_set.class_indices();
    let test_cloud = wowflow_data::to_cloud(&test_set, &all, &Transform::default())?;
    let test = Images::from_cloud(&test_cloud, (1, 28, 28), None, 10)?;
    let test_eval = evaluate(&model, &test, &device)?;
    let mut card = ModelCard::new(
        &key,
        Architecture::DaCnn,
        &format!(
            "mnist train, {} per class (seed {})",
            settings.per_class, settings.seed
        ),
        "domain-adaptation classifier",
        config,
        &report,
        "flex (CPU)",
    );
    card.test = Some(test_eval);
    let path = store
        .save(&model, &card)
        .with_context(|| format!("saving the classifier in {}", store.dir.display()))?;
    eprintln!(
        "classifier: {} steps in {:.1} s ({:.0} images/s), final loss {:.4}, MNIST test accuracy \
         {:.2} % ({} images); saved {}",
        report.steps,
        report.seconds,
        report.images_per_second,
        report.final_loss,
        100.0 * card.test.as_ref().map_or(0.0, |t| t.accuracy),
        test.len(),
        path.display()
    );
    Ok((model, card, false))
}

/// Runs `wowflow experiment domain-adaptation`: trains (or loads) the classifier, flows, and
/// writes `accuracy.csv`, `accuracy.png`, `summary.json` and the image grids to OUT.
pub fn run(args: DaArgs) -> Result<()> {
    let started = Instant::now();
    // Before minutes of classifier training, not after.
    args.gpu.check()?;
    let settings: DaSettings = load_profile(
        BUILTIN,
        "experiments/domain-adaptation.toml",
        args.common.config.as_deref(),
        &args.common.profile,
    )?;
    validate(&settings)?;
    args.gpu
        .check_sampler(settings.flow.sampler, "flow.sampler")?;
    let source_name = dataset_name(&args.source).to_string();
    let target_name = dataset_name(&args.target).to_string();
    if target_name != "mnist" {
        bail!(
            "--target {}: only mnist is supported (the DA classifier is 1×28×28, 10 classes)",
            args.target
        );
    }
    let out = args.common.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "runs/da-{}-{}",
            args.source.replace(['/', '\\'], "_"),
            args.common.profile
        ))
    });
    wowflow_data::prepare_output_dir(&out)?;
    crate::clear_old_grids(&out)?;
    let store = match &args.models {
        Some(d) => ModelStore::new(d),
        None => ModelStore::user_cache().unwrap_or_else(|| ModelStore::new(out.join("models"))),
    };
    let dirs = DataDirs::new(args.common.data_dir.as_deref());

    let c = &settings.classifier;
    let (train_images, _) = sample_train(&dirs, &target_name, c.per_class, c.seed)?;
    let (model, card, loaded) = classifier(c, &train_images, &dirs, &store, args.retrain)?;
    let keep: Vec<Vec<usize>> = (0..train_images.n_classes())
        .map(|_| (0..settings.flow.target_per_class).collect())
        .collect();
    let target = train_images.select(&keep)?;

    let (source, note) = sample_train(
        &dirs,
        &source_name,
        settings.flow.source_per_class,
        settings.flow.seed,
    )?;
    if let Some(note) = &note {
        eprintln!("note: {note}");
    }
    if source.n_classes() != 10 || source.dim() != 784 {
        bail!(
            "source {source_name}: expected 10 classes of 784 values, got {} classes of {}",
            source.n_classes(),
            source.dim()
        );
    }
    eprintln!(
        "flow: {} {} per class → MNIST {} per class, Riesz SW-MMD, L = {}, τ = {}, momentum {}, {} steps",
        source_name,
        settings.flow.source_per_class,
        settings.flow.target_per_class,
        settings.flow.projections,
        settings.flow.tau,
        settings.flow.momentum,
        settings.flow.steps
    );

    let optimizer = Optimizer::new(
        Method::Momentum {
            m: settings.flow.momentum,
        },
        settings.flow.tau,
    )?;
    let mut state = FlowState::new(source);
    let mut monitor = Monitor {
        model: &model,
        target: &target,
        settings: &settings,
        out: &out,
        rows: Vec::new(),
        flow_seconds: 0.0,
        eval_seconds: 0.0,
        error: None,
    };
    monitor.checkpoint(&state)?;
    eprintln!(
        "step 0: accuracy {:.2} % (assigned labels {:?})",
        100.0 * monitor.rows[0].accuracy,
        monitor.rows[0].labels
    );
    let interrupted = interrupt_flag();
    let mut progress = Progress::new(settings.flow.steps, 0, interrupted);
    let flow_settings = SwMmdFlowSettings {
        kernel: Kernel::RIESZ,
        projections: settings.flow.projections,
        sampler: settings.flow.sampler.into(),
        target_batch: None,
        optimizer,
        seed: settings.flow.seed,
        clip: None,
    };
    let outcome = crate::resident::run_sw_mmd(
        &flow_settings,
        args.gpu,
        &mut state,
        &target,
        settings.flow.steps,
        &mut [&mut progress, &mut monitor],
    );
    progress.finish();
    if let Some(e) = monitor.error.take() {
        return Err(e.context(format!("checkpoint at step {}", state.step)));
    }
    let outcome = outcome?;
    if outcome == Outcome::Stopped && state.step < settings.flow.steps {
        eprintln!(
            "interrupted at step {}: writing what was measured",
            state.step
        );
    }

    // Outputs.
    let rows = &monitor.rows;
    let mut csv = String::from("step,loss,accuracy,accuracy_identity,flow_seconds,labels\n");
    for r in rows {
        csv.push_str(&format!(
            "{},{},{:.6},{:.6},{:.3},{}\n",
            r.step,
            r.loss.map_or(String::new(), |l| format!("{l:.6e}")),
            r.accuracy,
            r.accuracy_identity,
            r.flow_seconds,
            r.labels
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    write_file(&out.join("accuracy.csv"), &csv)?;
    let x: Vec<f64> = rows.iter().map(|r| r.step as f64).collect();
    let y: Vec<f64> = rows.iter().map(|r| 100.0 * r.accuracy).collect();
    let title = format!(
        "{} → MNIST, frozen DA CNN ({} profile)",
        source_name, args.common.profile
    );
    let plot = wowflow_viz::line_plot(
        &wowflow_viz::LinePlot {
            title: &title,
            x_label: "flow step",
            y_label: "accuracy on flowed images (%)",
            log_y: false,
            series: &[wowflow_viz::Series {
                name: "accuracy (assigned labels)",
                x: &x,
                y: &y,
            }],
        },
        (640, 400),
    )
    .context("drawing accuracy.png")?;
    wowflow_viz::save_png(&plot, &out.join("accuracy.png")).context("writing accuracy.png")?;
    let total_seconds = started.elapsed().as_secs_f64();
    let summary = serde_json::json!({
        "experiment": "domain-adaptation",
        "source": source_name,
        "target": target_name,
        "profile": args.common.profile,
        "settings": settings,
        "source_note": note,
        "classifier": {
            "card": card,
            "loaded_from_store": loaded,
            "weights": store.weights_path(&card.key),
        },
        "checkpoints": rows,
        "steps_done": state.step,
        "flow_seconds": monitor.flow_seconds,
        "seconds_per_step": monitor.flow_seconds / state.step.max(1) as f64,
        "checkpoint_seconds": monitor.eval_seconds,
        "total_seconds": total_seconds,
        "machine": machine(),
        "device": format!("{:?}", args.gpu.device).to_lowercase(),
        "tf32": args.gpu.tf32,
    });
    write_file(
        &out.join("summary.json"),
        &serde_json::to_string_pretty(&summary)?,
    )?;
    let last = rows.last().map_or(0.0, |r| r.accuracy);
    println!(
        "{} → MNIST: accuracy {:.2} % before the flow, {:.2} % after {} steps \
         (flow {:.1} s, {:.3} s/step; total {:.1} s); results in {}",
        source_name,
        100.0 * rows[0].accuracy,
        100.0 * last,
        state.step,
        monitor.flow_seconds,
        monitor.flow_seconds / state.step.max(1) as f64,
        total_seconds,
        out.display()
    );
    Ok(())
}

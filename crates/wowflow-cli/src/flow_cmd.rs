//! `wowflow flow`: flow the user's labeled dataset towards a target.

use crate::checkpoint::{self, RunSettings};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Instant;
use wowflow_baselines::{
    DistributionMatching, EuclidMmd, JointOtdd, ProductMmdConfig, ProductMmdObjective,
};
use wowflow_core::cloud::rows_to_input_order;
use wowflow_core::{
    ClassWeighting, DirectionSampler, Directions, Flow, FlowConfig, FlowState, Kernel,
    LabeledCloud, Method, Objective, Optimizer, Outcome, SnapshotRecorder, SwMmd,
    SwMmdFlowSettings,
};
use wowflow_data::{
    load_cloud, prepare_output_file, read_npy, rescue_path, write_csv, write_npz, LoadedCloud,
    NpyArray,
};
use wowflow_experiments::otdd::{joint_labels, DynamicsName, OtddArgs};
use wowflow_experiments::progress::{interrupt_flag, Progress};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KernelName {
    Riesz,
    Gaussian,
    Imq,
    Laplace,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptimizerName {
    Gd,
    Momentum,
    Adam,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum SamplerName {
    /// i.i.d. uniform directions on the sphere.
    Gaussian,
    /// Blocks of d orthonormal directions (lower variance).
    Orthogonal,
}

/// Class weights `a_c` asked for on the command line (`--class-weights`).
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum ClassWeightsArg {
    /// a_c = 1/C: every class counts the same (Bonet et al.'s convention).
    Uniform,
    /// a_c = n_c/N: the empirical measure, every labeled point of mass 1/N (Alvarez-Melis & Fusi).
    Proportional,
}

impl From<ClassWeightsArg> for ClassWeighting {
    fn from(a: ClassWeightsArg) -> Self {
        match a {
            ClassWeightsArg::Uniform => ClassWeighting::Uniform,
            ClassWeightsArg::Proportional => ClassWeighting::Proportional,
        }
    }
}

/// The measure a user file stands for, the same way for `flow` and `distance`: the file's
/// own class weights, else `--class-weights`, else the method's convention `default`.
pub fn settle_class_weights(
    loaded: &mut LoadedCloud,
    choice: Option<ClassWeightsArg>,
    default: ClassWeighting,
) -> Result<()> {
    loaded.cloud = loaded.weighted(choice.map(Into::into), default)?;
    Ok(())
}

/// Which functional the flow minimises.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum FlowMethod {
    /// ½ MMD² with a sliced-Wasserstein kernel between classes (the WoW flow).
    SwMmd,
    /// OTDD² (Alvarez-Melis & Fusi 2021): feature-driven or joint-driven dynamics (--dynamics).
    Otdd,
    /// Product-space MMD (Hua et al. 2023) on (x, m, Σ) particles (`wowflow flow` only).
    ProductMmd,
    /// Euclidean MMD with the Riesz kernel −‖x − y‖ on features, labels ignored.
    EuclidMmd,
    /// Distribution matching: class means matched by class id (linear kernel).
    Dm,
}

impl FlowMethod {
    /// The name recorded in checkpoints and shown in titles.
    pub fn name(self) -> &'static str {
        match self {
            FlowMethod::SwMmd => "sw-mmd",
            FlowMethod::Otdd => "otdd",
            FlowMethod::ProductMmd => "product-mmd",
            FlowMethod::EuclidMmd => "euclid-mmd",
            FlowMethod::Dm => "dm",
        }
    }

    /// The class weights the method's paper uses when the user sets none: the empirical
    /// measure (every labeled point `1/N`) for the methods defined on labeled points (OTDD,
    /// product-space MMD, Euclidean MMD), one weight per class for those defined on classes
    /// (SW-MMD, DM).
    pub fn class_weighting(self) -> ClassWeighting {
        match self {
            FlowMethod::SwMmd | FlowMethod::Dm => ClassWeighting::Uniform,
            FlowMethod::Otdd | FlowMethod::ProductMmd | FlowMethod::EuclidMmd => {
                ClassWeighting::Proportional
            }
        }
    }
}

/// Settings of the objective and its optimiser, shared by `flow` and the demos.
#[derive(Args, Clone, Debug)]
pub struct FlowSettings {
    /// Functional to minimise.
    #[arg(long, value_enum, default_value = "sw-mmd")]
    pub method: FlowMethod,
    #[command(flatten)]
    pub otdd: OtddArgs,
    /// Kernel between class measures.
    #[arg(long, value_enum, default_value = "riesz")]
    pub kernel: KernelName,
    /// Bandwidth h of the Gaussian, IMQ and Laplace kernels [default: 0.1, 1, 0.5; the rings
    /// demo's Gaussian 0.05].
    #[arg(long)]
    pub h: Option<f64>,
    /// Exponent r of the Riesz kernel −SW₂^r, in (0, 2).
    #[arg(long, default_value_t = 1.0)]
    pub r: f64,
    /// Number of slicing directions L, redrawn every step.
    #[arg(long, short = 'L', default_value_t = 500)]
    pub projections: usize,
    /// How directions are drawn.
    #[arg(long, value_enum, default_value = "gaussian")]
    pub sampler: SamplerName,
    /// Fixed L × d unit directions (.npy) used at every step instead of random ones.
    #[arg(long, value_name = "D.npy")]
    pub directions: Option<PathBuf>,
    /// Number of steps K.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Step size τ.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Optimiser [default: momentum if --momentum is given, else gd].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerName>,
    /// Heavy-ball coefficient m (v ← g + m v; x ← x − τ v).
    #[arg(long)]
    pub momentum: Option<f64>,
    /// Compare with b random particles per target class each step.
    #[arg(long, value_name = "b")]
    pub target_batch: Option<usize>,
    /// Keep features inside [LO, HI] after every step, e.g. `--clip 0,1` for images.
    #[arg(long, value_name = "LO,HI", value_parser = parse_clip)]
    pub clip: Option<(f32, f32)>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Class weights a_c of both datasets when their files store none (an .npz may hold
    /// `class_weights`) [default: proportional for otdd, product-mmd and euclid-mmd (every
    /// labeled point 1/N, as their papers define them); uniform for sw-mmd and dm]. Equal
    /// class sizes make both the same.
    #[arg(long, value_enum, value_name = "uniform|proportional")]
    pub class_weights: Option<ClassWeightsArg>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run on the CPU or on the GPU (`cuda` needs a binary built with `--features cuda`).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: wowflow_experiments::device::Device,
    /// product-mmd and the joint OTDD dynamics: step size of the label covariances Σ (a
    /// Bures–Wasserstein step, which can overshoot at the features' τ).
    #[arg(long, default_value_t = 0.1)]
    pub lr_sigma: f64,
}

fn parse_clip(s: &str) -> Result<(f32, f32), String> {
    let (lo, hi) = s.split_once(',').ok_or("expected LO,HI (e.g. 0,1)")?;
    let lo: f32 = lo.trim().parse().map_err(|e| format!("LO: {e}"))?;
    let hi: f32 = hi.trim().parse().map_err(|e| format!("HI: {e}"))?;
    if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
        return Err(format!("need LO < HI, got {lo} and {hi}"));
    }
    Ok((lo, hi))
}

impl KernelName {
    /// The kernel with parameter `param` (`r` for Riesz, `h` otherwise), or its default
    /// from [`Kernel::by_name`], the one place defaults are written.
    pub fn kernel(self, param: Option<f64>) -> Result<Kernel> {
        let name = match self {
            KernelName::Riesz => "riesz",
            KernelName::Gaussian => "gaussian",
            KernelName::Imq => "imq",
            KernelName::Laplace => "laplace",
        };
        Ok(Kernel::by_name(name, param)?)
    }
}

impl FlowSettings {
    /// The kernel `--kernel` names with `--r` or `--h` (defaults: `Kernel::by_name`).
    pub fn kernel(&self) -> Result<Kernel> {
        let param = match self.kernel {
            KernelName::Riesz => Some(self.r),
            _ => self.h,
        };
        self.kernel.kernel(param)
    }

    pub fn optimizer(&self) -> Result<Optimizer> {
        let name = self.optimizer.unwrap_or(if self.momentum.is_some() {
            OptimizerName::Momentum
        } else {
            OptimizerName::Gd
        });
        let method = match name {
            OptimizerName::Gd => Method::Gd,
            OptimizerName::Momentum => Method::by_name("momentum", self.momentum.unwrap_or(0.9))?,
            OptimizerName::Adam => Method::by_name("adam", 0.0)?,
        };
        Ok(Optimizer::new(method, self.lr)?)
    }

    fn sampler(&self, dim: usize) -> Result<DirectionSampler> {
        if let Some(path) = &self.directions {
            let a = read_npy(path)?;
            if a.shape.len() != 2 || a.shape[1] != dim {
                bail!(
                    "{}: directions have shape {}, expected (L, {dim})",
                    path.display(),
                    a.shape_string()
                );
            }
            let dirs = Directions::from_rows(a.shape[0], dim, a.to_f32())
                .with_context(|| format!("{}", path.display()))?;
            return Ok(DirectionSampler::Fixed(dirs));
        }
        Ok(match self.sampler {
            SamplerName::Gaussian => DirectionSampler::Gaussian,
            SamplerName::Orthogonal => DirectionSampler::OrthogonalBlocks,
        })
    }

    /// The settings of a plain SW-MMD flow (Gaussian directions, the default engine), which
    /// [`SwMmdRunner`](wowflow_experiments::resident::SwMmdRunner) runs on the device `--device` names
    /// (GPU-resident on `cuda`); `None` for other methods and for fixed or orthogonal
    /// directions or `--threads`, which run as host objectives (on `--device cuda` through
    /// the CUDA engine, with both clouds crossing PCIe each step).
    pub fn plain_sw_mmd(&self) -> Result<Option<SwMmdFlowSettings>> {
        let plain = self.method == FlowMethod::SwMmd
            && self.directions.is_none()
            && self.sampler == SamplerName::Gaussian
            && self.threads.is_none();
        if !plain {
            return Ok(None);
        }
        Ok(Some(SwMmdFlowSettings {
            kernel: self.kernel()?,
            projections: self.projections,
            target_batch: self.target_batch,
            optimizer: self.optimizer()?,
            seed: self.seed,
            clip: self.clip,
        }))
    }

    /// The SW-MMD objective towards `target`.
    pub fn sw_mmd(&self, target: LabeledCloud) -> Result<SwMmd> {
        let dim = target.dim();
        let engine = wowflow_experiments::device::make_engine(self.device, self.threads)?;
        Ok(SwMmd::new(target, self.kernel()?, self.projections)?
            .with_directions(self.sampler(dim)?)?
            .with_target_batch(self.target_batch)?
            .with_engine(engine))
    }

    /// The joint-driven OTDD dynamics from `source` towards `target`, when `--method otdd
    /// --dynamics joint-*` asks for them (label means step by `--lr`, covariances by
    /// `--lr-sigma`).
    pub fn joint_otdd(
        &self,
        source: &LabeledCloud,
        target: &LabeledCloud,
    ) -> Result<Option<JointOtdd>> {
        if self.method != FlowMethod::Otdd {
            return Ok(None);
        }
        match self.otdd.joint_config(self.lr, self.lr_sigma)? {
            Some(config) => Ok(Some(JointOtdd::new(source, target.clone(), config)?)),
            None => Ok(None),
        }
    }

    /// The objective chosen by `--method` from `source` towards `target`.
    pub fn objective(
        &self,
        source: &LabeledCloud,
        target: LabeledCloud,
    ) -> Result<Box<dyn Objective>> {
        Ok(match self.method {
            FlowMethod::SwMmd => Box::new(self.sw_mmd(target)?),
            FlowMethod::Otdd => self
                .otdd
                .objective(source, target, self.lr, self.lr_sigma)?,
            FlowMethod::EuclidMmd => Box::new(EuclidMmd::new(target)?),
            FlowMethod::Dm => {
                Box::new(DistributionMatching::new(target)?.with_target_batch(self.target_batch)?)
            }
            FlowMethod::ProductMmd => bail!(
                "--method product-mmd moves (x, m, Σ) particles, not a labeled cloud: it runs \
                 through `wowflow flow` only (not the demos)"
            ),
        })
    }

    /// The product-space MMD settings: `--lr` moves the features and the label means, and
    /// `--lr-sigma` the label covariances; the label parts take the features' heavy ball
    /// (`--momentum`, 0 without it).
    pub fn product_mmd_config(&self) -> ProductMmdConfig {
        ProductMmdConfig {
            tau: self.lr,
            tau_m: None,
            tau_sigma: Some(self.lr_sigma),
            momentum: self.momentum.unwrap_or(0.0),
            steps: self.steps,
            ..ProductMmdConfig::default()
        }
    }

    /// What `RunSettings.objective` records: the method and the settings that change it.
    pub fn objective_name(&self) -> String {
        match self.method {
            FlowMethod::Otdd if self.otdd.dynamics != DynamicsName::Feature => {
                format!("{}:lr_sigma({})", self.otdd.name(), self.lr_sigma)
            }
            FlowMethod::Otdd => self.otdd.name(),
            FlowMethod::ProductMmd => format!("product-mmd:lr_sigma({})", self.lr_sigma),
            m => m.name().to_string(),
        }
    }

    pub fn config(&self) -> FlowConfig {
        FlowConfig {
            steps: self.steps,
            seed: self.seed,
            clip: self.clip,
            temperature: None,
        }
    }

    pub fn run_settings(
        &self,
        source: &LabeledCloud,
        target: &LabeledCloud,
    ) -> Result<RunSettings> {
        Ok(RunSettings {
            objective: self.objective_name(),
            kernel: serde_json::to_value(self.kernel()?)?,
            projections: self.projections,
            directions: match &self.directions {
                Some(p) => format!("fixed:{}", p.display()),
                None => format!("{:?}", self.sampler).to_lowercase(),
            },
            target_batch: self.target_batch,
            optimizer: serde_json::to_value(self.optimizer()?)?,
            seed: self.seed,
            clip: self.clip,
            source_shape: (source.n_points(), source.dim()),
            target_shape: (target.n_points(), target.dim()),
            class_weights: Some(format!(
                "source {:?}, target {:?}",
                source.class_weights(),
                target.class_weights()
            )),
        })
    }
}

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

/// Writes checkpoints every k steps from inside the flow.
struct Checkpointer<'a> {
    path: &'a Path,
    every: usize,
    settings: &'a RunSettings,
}

impl wowflow_core::Observer for Checkpointer<'_> {
    fn on_step(
        &mut self,
        _info: &wowflow_core::StepInfo,
        state: &FlowState,
    ) -> wowflow_core::Result<wowflow_core::Control> {
        if self.needs_state(state.step, 0) {
            checkpoint::save(self.path, state, self.settings).map_err(|e| {
                wowflow_core::CoreError::observer(
                    format!("writing checkpoint {}", self.path.display()),
                    e,
                )
            })?;
        }
        Ok(wowflow_core::Control::Continue)
    }

    fn needs_state(&self, steps_done: usize, _total: usize) -> bool {
        self.every > 0 && steps_done.is_multiple_of(self.every)
    }
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

/// The objective of a `flow` run, kept by type where labels are read off after the flow.
enum RunObjective {
    /// Objectives whose particles keep their class labels.
    Plain(Box<dyn Objective>),
    /// The joint-driven OTDD dynamics: labels from the particles' Gaussians.
    Joint(Box<JointOtdd>),
    /// Product-space MMD: each particle's Gaussian is matched with a target class.
    Product(Box<ProductMmdObjective>),
}

impl RunObjective {
    fn new(settings: &FlowSettings, source: &LabeledCloud, target: &LabeledCloud) -> Result<Self> {
        if settings.method == FlowMethod::ProductMmd {
            if matches!(settings.optimizer, Some(OptimizerName::Adam)) {
                bail!(
                    "--method product-mmd moves features and label Gaussians with one heavy \
                     ball: use --optimizer gd or momentum"
                );
            }
            return Ok(RunObjective::Product(Box::new(ProductMmdObjective::new(
                source,
                target,
                settings.product_mmd_config(),
            )?)));
        }
        Ok(match settings.joint_otdd(source, target)? {
            Some(j) => RunObjective::Joint(Box::new(j)),
            None => RunObjective::Plain(settings.objective(source, target.clone())?),
        })
    }

    fn as_objective(&mut self) -> &mut dyn Objective {
        match self {
            RunObjective::Plain(o) => o.as_mut(),
            RunObjective::Joint(j) => j.as_mut(),
            RunObjective::Product(p) => p.as_mut(),
        }
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
    let settings = args.run_settings_for(&source.cloud, &target.cloud)?;
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
    // Created before the loop so that a missing GPU is an error of its own, not a
    // "diverged, checkpoint saved" one.
    let gpu = wowflow_experiments::device::DeviceArgs {
        device: args.settings.device,
        tf32: false,
    };
    let mut sw_mmd = match args.settings.plain_sw_mmd()? {
        Some(s) => Some(wowflow_experiments::resident::SwMmdRunner::start(
            &s,
            gpu,
            &state,
            &target.cloud,
        )?),
        None => None,
    };
    let mut objective = match sw_mmd {
        Some(_) => None,
        None => Some(RunObjective::new(
            &args.settings,
            &source.cloud,
            &target.cloud,
        )?),
    };
    let observers: &mut [&mut dyn wowflow_core::Observer] =
        &mut [&mut progress, &mut snaps, &mut ckpt];
    let outcome = match (sw_mmd.as_mut(), objective.as_mut()) {
        (Some(flow), _) => flow.run(&mut state, args.settings.steps, observers),
        (None, Some(objective)) => Flow {
            objective: objective.as_objective(),
            optimizer: args.settings.optimizer()?,
            config: args.settings.config(),
        }
        .run(&mut state, observers)
        .map_err(anyhow::Error::from),
        (None, None) => unreachable!("an objective is built whenever no device flow is"),
    };
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
    let relabelled = match &objective {
        Some(RunObjective::Joint(j)) => Some(joint_labels(
            j,
            &args.settings.otdd,
            &state.cloud,
            &target.cloud,
            args.settings.seed,
        )?),
        _ => None,
    };
    let labels: Option<Vec<i64>> = match &objective {
        Some(RunObjective::Product(p)) => {
            let ids = target.cloud.class_ids();
            let classes = p.assign_labels(state.cloud.points())?;
            Some(classes.iter().map(|&k| ids[k]).collect())
        }
        _ => relabelled.as_ref().map(|r| r.y.clone()),
    };
    write_or_rescue(&args.out, |out| {
        write_outputs(
            out,
            &state,
            &source.order,
            &snaps,
            labels.as_deref(),
            relabelled.as_ref(),
        )
    })?;
    if let Some(r) = relabelled.as_ref().filter(|r| r.cluster.is_some()) {
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

impl FlowArgs {
    fn run_settings_for(
        &self,
        source: &LabeledCloud,
        target: &LabeledCloud,
    ) -> Result<RunSettings> {
        self.settings.run_settings(source, target)
    }
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

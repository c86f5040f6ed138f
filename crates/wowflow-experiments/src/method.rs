//! The flow methods by name — SW-MMD, OTDD (feature- and joint-driven), product-space MMD,
//! Euclidean MMD and distribution matching — with the settings that choose their objective
//! and optimiser ([`FlowSettings`]), and one runner ([`MethodFlow`]) that every front end
//! uses: `wowflow flow`, the demos and the Python package. Keeping the choice here means
//! the same settings and seed give the same bits from each of them.

use crate::otdd::{joint_labels, DynamicsName, JointLabels, LabelCostName, OtddArgs};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use wowflow_baselines::{
    DistributionMatching, EuclidMmd, JointOtdd, ProductMmdConfig, ProductMmdObjective,
};
use wowflow_core::{
    ClassWeighting, DirectionSampler, Directions, Flow, FlowConfig, FlowState, Kernel,
    LabeledCloud, Method, Objective, Observer, Optimizer, Outcome, SwMmd, SwMmdFlowSettings,
};
use wowflow_data::{read_npy, LoadedCloud};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
/// The kernel between class measures, as a function of s = SW₂² (docs/math.md §4).
pub enum KernelName {
    /// −s^{r/2} (Riesz, energy distance for r = 1).
    Riesz,
    /// exp(−s / 2h).
    Gaussian,
    /// (h + s)^{−1/2} (inverse multiquadric).
    Imq,
    /// exp(−SW₁ / h) (reads SW₁, not SW₂²).
    Laplace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
/// The optimiser that applies the step.
pub enum OptimizerName {
    /// Plain gradient descent x ← x − τ g (the explicit WoW scheme).
    Gd,
    /// Heavy ball: v ← g + m v; x ← x − τ v.
    Momentum,
    /// Adam.
    Adam,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
/// How the slicing directions are drawn each step.
pub enum SamplerName {
    /// i.i.d. uniform directions on the sphere.
    #[default]
    Gaussian,
    /// Blocks of d orthonormal directions (lower variance).
    Orthogonal,
    /// Structured Hadamard blocks H·D₃·H·D₂·H·D₁: nearly orthonormal, projected in
    /// O(d log d) per point without an L × d matrix.
    Structured,
}

impl SamplerName {
    /// The name configs and the command line use.
    pub fn name(self) -> &'static str {
        DirectionSampler::from(self).name()
    }
}

impl From<SamplerName> for DirectionSampler {
    fn from(name: SamplerName) -> Self {
        match name {
            SamplerName::Gaussian => DirectionSampler::Gaussian,
            SamplerName::Orthogonal => DirectionSampler::OrthogonalBlocks,
            SamplerName::Structured => DirectionSampler::Structured,
        }
    }
}

/// Class weights `a_c` asked for on the command line (`--class-weights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct FlowSettings {
    /// Functional to minimise.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "sw-mmd"))]
    pub method: FlowMethod,
    /// `--method otdd`: label cost, regularisation, dynamics and clustering.
    #[cfg_attr(feature = "clap", command(flatten))]
    pub otdd: OtddArgs,
    /// Kernel between class measures.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "riesz"))]
    pub kernel: KernelName,
    /// Bandwidth h of the Gaussian, IMQ and Laplace kernels [default: 0.1, 1, 0.5; the rings
    /// demo's Gaussian 0.05].
    #[cfg_attr(feature = "clap", arg(long))]
    pub h: Option<f64>,
    /// Exponent r of the Riesz kernel −SW₂^r, in (0, 2).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1.0))]
    pub r: f64,
    /// Number of slicing directions L, redrawn every step.
    #[cfg_attr(feature = "clap", arg(long, short = 'L', default_value_t = 500))]
    pub projections: usize,
    /// How directions are drawn.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "gaussian"))]
    pub sampler: SamplerName,
    /// Fixed L × d unit directions (.npy) used at every step instead of random ones.
    #[cfg_attr(feature = "clap", arg(long, value_name = "D.npy"))]
    pub directions: Option<PathBuf>,
    /// Fixed directions given in memory (the Python package's `projections=`); they win
    /// over `directions`.
    #[cfg_attr(feature = "clap", arg(skip))]
    pub fixed_directions: Option<Directions>,
    /// Number of steps K.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1000))]
    pub steps: usize,
    /// Step size τ.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.1))]
    pub lr: f64,
    /// Optimiser [default: momentum if --momentum is given, else gd].
    #[cfg_attr(feature = "clap", arg(long, value_enum))]
    pub optimizer: Option<OptimizerName>,
    /// Heavy-ball coefficient m (v ← g + m v; x ← x − τ v).
    #[cfg_attr(feature = "clap", arg(long))]
    pub momentum: Option<f64>,
    /// Compare with b random particles per target class each step.
    #[cfg_attr(feature = "clap", arg(long, value_name = "b"))]
    pub target_batch: Option<usize>,
    /// Keep features inside [LO, HI] after every step, e.g. `--clip 0,1` for images.
    #[cfg_attr(feature = "clap", arg(long, value_name = "LO,HI", value_parser = parse_clip))]
    pub clip: Option<(f32, f32)>,
    /// Seed of every random choice.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub seed: u64,
    /// Class weights a_c of both datasets when their files store none (an .npz may hold
    /// `class_weights`) [default: proportional for otdd, product-mmd and euclid-mmd (every
    /// labeled point 1/N, as their papers define them); uniform for sw-mmd and dm]. Equal
    /// class sizes make both the same.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_enum, value_name = "uniform|proportional")
    )]
    pub class_weights: Option<ClassWeightsArg>,
    /// Worker threads (default: all cores).
    #[cfg_attr(feature = "clap", arg(long))]
    pub threads: Option<usize>,
    /// Run on the CPU or on the GPU (`cuda` needs a binary built with `--features cuda`).
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "cpu"))]
    pub device: crate::device::Device,
    /// product-mmd and the joint OTDD dynamics: step size of the label covariances Σ (a
    /// Bures–Wasserstein step, which can overshoot at the features' τ).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0.1))]
    pub lr_sigma: f64,
}

impl Default for FlowSettings {
    /// The command line's defaults (a test parses an empty command line and compares).
    fn default() -> Self {
        Self {
            method: FlowMethod::SwMmd,
            otdd: OtddArgs::default(),
            kernel: KernelName::Riesz,
            h: None,
            r: 1.0,
            projections: 500,
            sampler: SamplerName::Gaussian,
            directions: None,
            fixed_directions: None,
            steps: 1000,
            lr: 0.1,
            optimizer: None,
            momentum: None,
            target_batch: None,
            clip: None,
            seed: 0,
            class_weights: None,
            threads: None,
            device: crate::device::Device::Cpu,
            lr_sigma: 0.1,
        }
    }
}

/// Parses `LO,HI` (`--clip`), refusing `LO >= HI` and NaN.
pub fn parse_clip(s: &str) -> Result<(f32, f32), String> {
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

    /// The optimiser `--optimizer`, `--lr` and `--momentum` choose.
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
        if let Some(dirs) = &self.fixed_directions {
            if dirs.dim() != dim {
                bail!(
                    "directions have shape ({}, {}), expected (L, {dim}): one row per direction \
                     in the datasets' d = {dim} dimensions",
                    dirs.count(),
                    dirs.dim()
                );
            }
            return Ok(DirectionSampler::Fixed(dirs.clone()));
        }
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
        Ok(self.sampler.into())
    }

    /// The settings of a plain SW-MMD flow (Gaussian directions, the default engine), which
    /// [`SwMmdRunner`](crate::resident::SwMmdRunner) runs on the device `--device` names
    /// (GPU-resident on `cuda`); `None` for other methods and for fixed, orthogonal or
    /// structured directions or `--threads`, which run as host objectives (on `--device cuda` through
    /// the CUDA engine, with both clouds crossing PCIe each step).
    pub fn plain_sw_mmd(&self) -> Result<Option<SwMmdFlowSettings>> {
        let plain = self.method == FlowMethod::SwMmd
            && self.directions.is_none()
            && self.fixed_directions.is_none()
            && self.sampler == SamplerName::Gaussian
            && self.threads.is_none();
        if !plain {
            return Ok(None);
        }
        Ok(Some(SwMmdFlowSettings {
            kernel: self.kernel()?,
            projections: self.projections,
            sampler: DirectionSampler::Gaussian,
            target_batch: self.target_batch,
            optimizer: self.optimizer()?,
            seed: self.seed,
            clip: self.clip,
        }))
    }

    /// The SW-MMD objective towards `target`.
    pub fn sw_mmd(&self, target: LabeledCloud) -> Result<SwMmd> {
        let dim = target.dim();
        let engine = crate::device::make_engine(self.device, self.threads)?;
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

    /// The loop's settings: steps, seed and clipping.
    pub fn config(&self) -> FlowConfig {
        FlowConfig {
            steps: self.steps,
            seed: self.seed,
            clip: self.clip,
            temperature: None,
        }
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

/// The labels a flow ends with when the method assigns new ones.
#[derive(Default)]
pub struct FinalLabels {
    /// Each particle's label (cloud row order) when the method relabels (joint OTDD,
    /// product-space MMD); `None` when particles keep their class ids.
    pub labels: Option<Vec<i64>>,
    /// What the joint-driven OTDD dynamics end with (label Gaussians, clusters).
    pub joint: Option<JointLabels>,
}

/// One flow of the method [`FlowSettings`] chooses, from a start state towards a target:
/// plain SW-MMD on the device `--device` names (GPU-resident on `cuda`), every other method
/// as a host objective through [`wowflow_core::Flow`]. Built before the loop, so that bad
/// settings and a missing GPU fail before any step.
pub struct MethodFlow {
    settings: FlowSettings,
    runner: Option<crate::resident::SwMmdRunner>,
    objective: Option<RunObjective>,
}

impl MethodFlow {
    /// Checks the settings against the datasets and builds the objective (or the device
    /// flow). `state` is where the flow starts (a fresh [`FlowState`] or a checkpoint).
    pub fn new(
        settings: &FlowSettings,
        state: &FlowState,
        source: &LabeledCloud,
        target: &LabeledCloud,
    ) -> Result<Self> {
        if source.dim() != target.dim() {
            bail!(
                "the source has d = {} features but the target has d = {}: both datasets must \
                 live in the same space",
                source.dim(),
                target.dim()
            );
        }
        if settings.method == FlowMethod::Dm {
            // DM pairs classes by id: a missing one is a bad input, found before any step.
            if let Some(id) = source
                .class_ids()
                .iter()
                .find(|id| !target.class_ids().contains(id))
            {
                return Err(wowflow_core::error::invalid(
                    "target",
                    format!(
                        "DM (method dm) matches classes by id, and the target has no class \
                         {id} (its classes: {:?})",
                        target.class_ids()
                    ),
                )
                .into());
            }
        }
        let gpu = crate::device::DeviceArgs {
            device: settings.device,
            tf32: false,
        };
        let runner = match settings.plain_sw_mmd()? {
            Some(s) => Some(crate::resident::SwMmdRunner::start(&s, gpu, state, target)?),
            None => None,
        };
        let objective = match runner {
            Some(_) => None,
            None => Some(RunObjective::new(settings, source, target)?),
        };
        // Fail on a bad optimiser now rather than after the objective ran.
        settings.optimizer()?;
        Ok(Self {
            settings: settings.clone(),
            runner,
            objective,
        })
    }

    /// Runs the flow from `state` until `settings.steps` steps are done in all (a resumed
    /// state continues), an observer stops it, or a step fails (`state` then holds the last
    /// good step).
    pub fn run(
        &mut self,
        state: &mut FlowState,
        observers: &mut [&mut dyn Observer],
    ) -> Result<Outcome> {
        match (self.runner.as_mut(), self.objective.as_mut()) {
            (Some(flow), _) => flow.run(state, self.settings.steps, observers),
            (None, Some(objective)) => Ok(Flow {
                objective: objective.as_objective(),
                optimizer: self.settings.optimizer()?,
                config: self.settings.config(),
            }
            .run(state, observers)?),
            (None, None) => bail!("no objective was built for this flow"),
        }
    }

    /// The labels the particles of `state` carry after the run: read off the label
    /// Gaussians (joint OTDD) or matched to target classes (product-space MMD); none for
    /// methods whose particles keep their classes.
    pub fn final_labels(&self, state: &FlowState, target: &LabeledCloud) -> Result<FinalLabels> {
        Ok(match &self.objective {
            Some(RunObjective::Joint(j)) => {
                let joint = joint_labels(
                    j,
                    &self.settings.otdd,
                    &state.cloud,
                    target,
                    self.settings.seed,
                )?;
                FinalLabels {
                    labels: Some(joint.y.clone()),
                    joint: Some(joint),
                }
            }
            Some(RunObjective::Product(p)) => {
                let ids = target.class_ids();
                let classes = p
                    .assign_labels(state.cloud.points())
                    .context("matching the particles' label Gaussians with target classes")?;
                FinalLabels {
                    labels: Some(classes.iter().map(|&k| ids[k]).collect()),
                    joint: None,
                }
            }
            _ => FinalLabels::default(),
        })
    }
}

/// An experiment config's `otdd` table: plain gradient descent on OTDD(ρ, β) (feature-driven dynamics).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtddRun {
    /// Step τ on the Wasserstein gradient `2 (x − T(x))` (τ = ½ jumps to the barycentric
    /// targets).
    pub tau: f64,
    /// Flow steps.
    pub steps: usize,
    /// `exact` (W₂ between class clouds) or `gaussian` (Bures–Wasserstein) label costs.
    pub label_cost: String,
    /// Entropic regularisation ε of the outer OT, in the units of the costs (0: exact).
    pub epsilon: f64,
}

/// An experiment config's `sw_mmd` table: heavy-ball steps on ½ MMD²_K with an SW kernel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwMmdRun {
    /// `riesz`, `gaussian`, `imq` or `laplace`.
    pub kernel: String,
    /// Riesz exponent r, or the bandwidth h of the others (absent: the default).
    pub kernel_param: Option<f64>,
    /// Slicing directions L, redrawn every step.
    pub projections: usize,
    /// Step size τ.
    pub tau: f64,
    /// Heavy-ball momentum.
    pub momentum: f64,
    /// Flow steps.
    pub steps: usize,
}

impl OtddRun {
    /// The flow as `wowflow flow --method otdd` takes it, with seed `seed`.
    pub fn flow_settings(&self, seed: u64) -> Result<FlowSettings> {
        let label_cost = match self.label_cost.as_str() {
            "exact" => LabelCostName::Exact,
            "gaussian" => LabelCostName::Gaussian,
            other => bail!("setting `label_cost`: `{other}` is not exact or gaussian"),
        };
        if !(self.epsilon >= 0.0 && self.epsilon.is_finite()) {
            bail!(
                "setting `epsilon` must be finite and ≥ 0, got {}",
                self.epsilon
            );
        }
        let settings = FlowSettings {
            method: FlowMethod::Otdd,
            otdd: OtddArgs {
                label_cost: Some(label_cost),
                epsilon: (self.epsilon > 0.0).then_some(self.epsilon),
                ..OtddArgs::default()
            },
            steps: self.steps,
            lr: self.tau,
            optimizer: Some(OptimizerName::Gd),
            seed,
            ..FlowSettings::default()
        };
        settings.optimizer().context("setting `tau`")?;
        Ok(settings)
    }
}

impl SwMmdRun {
    /// The flow as `wowflow flow --method sw-mmd` takes it, with seed `seed`.
    pub fn flow_settings(&self, seed: u64) -> Result<FlowSettings> {
        let kernel = match self.kernel.as_str() {
            "riesz" => KernelName::Riesz,
            "gaussian" => KernelName::Gaussian,
            "imq" => KernelName::Imq,
            "laplace" => KernelName::Laplace,
            other => bail!("setting `kernel`: `{other}` is not riesz, gaussian, imq or laplace"),
        };
        let mut settings = FlowSettings {
            method: FlowMethod::SwMmd,
            kernel,
            projections: self.projections,
            steps: self.steps,
            lr: self.tau,
            optimizer: Some(OptimizerName::Momentum),
            momentum: Some(self.momentum),
            seed,
            ..FlowSettings::default()
        };
        match (kernel, self.kernel_param) {
            (KernelName::Riesz, Some(r)) => settings.r = r,
            (_, h) => settings.h = h,
        }
        settings.kernel().context("setting `kernel`")?;
        settings.optimizer().context("settings `tau`, `momentum`")?;
        Ok(settings)
    }
}

#[cfg(all(test, feature = "clap"))]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: FlowSettings,
    }

    #[test]
    fn the_library_defaults_are_the_command_lines() {
        let parsed = Cli::try_parse_from(["wowflow"]).unwrap().settings;
        // Debug prints every field, nested OTDD options included.
        assert_eq!(
            format!("{parsed:?}"),
            format!("{:?}", FlowSettings::default())
        );
    }
}

//! The benchmark workloads of the paper's experiments, shared by `wowflow bench`, the
//! GPU-resident benchmark ([`crate::resident::bench`]) and the timing examples, so all time
//! exactly the same step.
//!
//! A step is one full `value_and_wow_grad` of SW-MMD with the Riesz kernel: fresh
//! directions, (optional) target mini-batch, projections, sorts, pairings and the
//! back-projection — everything but the optimiser's axpy.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::sync::Arc;
use std::time::Instant;
use wowflow_core::cloud::LabeledCloud;
use wowflow_core::directions::DirectionSampler;
use wowflow_core::engine::Engine;
use wowflow_core::error::{invalid, Result};
use wowflow_core::kernel::Kernel;
use wowflow_core::objective::{Objective, SwMmd};

/// One benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchConfig {
    /// The workload's name (`rings`, `da`, `tl`, `dd`, `da5k`).
    pub name: &'static str,
    /// Source classes (the target has as many).
    pub classes: usize,
    /// Source particles per class.
    pub per_class: usize,
    /// Target particles per class (before mini-batching).
    pub target_per_class: usize,
    /// Target mini-batch per class per step, if any.
    pub target_batch: Option<usize>,
    /// Dimension d of the particles (784 for 28×28 images).
    pub dim: usize,
    /// Slicing directions L drawn each step.
    pub projections: usize,
}

impl BenchConfig {
    /// The workloads of the paper (docs/design.md, issue 2): rings, domain adaptation, transfer
    /// learning (k = 5), dataset distillation (k = 50, batch 256), and domain adaptation at
    /// 5000 images per class (`da5k`, the size at which issue 7 quotes the authors' JAX
    /// code at 11 ms a step; about 10× the DA step).
    pub const ALL: [BenchConfig; 5] = [
        BenchConfig {
            name: "rings",
            classes: 3,
            per_class: 80,
            target_per_class: 80,
            target_batch: None,
            dim: 2,
            projections: 500,
        },
        BenchConfig {
            name: "da",
            classes: 10,
            per_class: 500,
            target_per_class: 500,
            target_batch: None,
            dim: 784,
            projections: 500,
        },
        BenchConfig {
            name: "tl",
            classes: 10,
            per_class: 200,
            target_per_class: 5,
            target_batch: None,
            dim: 784,
            projections: 500,
        },
        BenchConfig {
            name: "dd",
            classes: 10,
            per_class: 50,
            target_per_class: 5000,
            target_batch: Some(256),
            dim: 784,
            projections: 500,
        },
        BenchConfig {
            name: "da5k",
            classes: 10,
            per_class: 5000,
            target_per_class: 5000,
            target_batch: None,
            dim: 784,
            projections: 500,
        },
    ];

    /// Looks a workload up by name.
    pub fn by_name(name: &str) -> Result<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                invalid(
                    "config",
                    format!(
                        "unknown bench config `{name}` (expected rings, da, tl, dd, da5k or all)"
                    ),
                )
            })
    }

    /// Target particles per class actually compared each step.
    pub fn m(&self) -> usize {
        self.target_batch
            .map_or(self.target_per_class, |b| b.min(self.target_per_class))
    }

    /// Floating-point operations of the three GEMMs (projections of both clouds and the
    /// back-projection), the part of the step with a known operation count.
    pub fn gemm_flops(&self) -> f64 {
        let (n, m) = (
            (self.classes * self.per_class) as f64,
            (self.classes * self.m()) as f64,
        );
        2.0 * self.projections as f64 * self.dim as f64 * (2.0 * n + m)
    }
}

/// Timings of one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchResult {
    /// The workload timed.
    pub config: BenchConfig,
    /// Name of the engine that ran it (`Engine::name`, or `cuda-resident[-tf32]` for the
    /// device-resident flow).
    pub engine: String,
    /// The direction family (`gaussian`, `orthogonal`, `structured`, `fixed`).
    pub directions: &'static str,
    /// Wall time of each timed step, in milliseconds (warm-up steps excluded).
    pub times_ms: Vec<f64>,
}

impl BenchResult {
    /// The fastest step, in milliseconds (infinite when nothing was timed).
    pub fn min_ms(&self) -> f64 {
        self.times_ms.iter().copied().fold(f64::INFINITY, f64::min)
    }
    /// The median step, in milliseconds (NaN when nothing was timed).
    pub fn median_ms(&self) -> f64 {
        let mut t = self.times_ms.clone();
        t.sort_by(f64::total_cmp);
        let k = t.len();
        if k == 0 {
            f64::NAN
        } else if k % 2 == 1 {
            t[k / 2]
        } else {
            0.5 * (t[k / 2 - 1] + t[k / 2])
        }
    }
    /// GEMM GFLOP/s at the median time (a lower bound on the machine's achieved rate, since
    /// the step also sorts and pairs). For structured directions, which do no GEMM, the rate
    /// a dense step would need to be as fast.
    pub fn gflops(&self) -> f64 {
        self.config.gemm_flops() / (self.median_ms() * 1e6)
    }
}

fn gaussian_cloud(
    classes: usize,
    per_class: usize,
    dim: usize,
    shift: f32,
    seed: u64,
) -> Result<LabeledCloud> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pts = (0..classes * per_class * dim)
        .map(|_| <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng) + shift)
        .collect();
    LabeledCloud::uniform(classes, per_class, dim, pts)
}

/// The source and target clouds of a workload (fixed seeds, so every engine and every
/// path times the same data).
pub fn workload(config: &BenchConfig) -> Result<(LabeledCloud, LabeledCloud)> {
    Ok((
        gaussian_cloud(config.classes, config.per_class, config.dim, 0.0, 1)?,
        gaussian_cloud(config.classes, config.target_per_class, config.dim, 1.0, 2)?,
    ))
}

/// Times `reps` steps (after one warm-up step) of `config` on `engine`, with directions
/// drawn by `sampler` each step (drawing them is part of the step).
pub fn run(
    config: &BenchConfig,
    engine: Arc<dyn Engine>,
    sampler: &DirectionSampler,
    reps: usize,
) -> Result<BenchResult> {
    let (source, target) = workload(config)?;
    let mut objective = SwMmd::new(target, Kernel::RIESZ, config.projections)?
        .with_directions(sampler.clone())?
        .with_target_batch(config.target_batch)?
        .with_engine(engine.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut grad = vec![0.0f32; source.points().len()];
    objective.value_and_wow_grad(&source, &mut rng, &mut grad)?;
    let mut times_ms = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let start = Instant::now();
        objective.value_and_wow_grad(&source, &mut rng, &mut grad)?;
        times_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(BenchResult {
        config: *config,
        engine: engine.name().to_string(),
        directions: sampler.name(),
        times_ms,
    })
}

//! Dataset distances by name (docs/math.md §6): the one dispatch `wowflow distance` and the
//! Python package's `wowflow.distance` share, so the same datasets and seed give the same
//! number from both.

use anyhow::Result;
use wowflow_core::{ClassWeighting, Kernel, LabeledCloud};
use wowflow_ot::{otdd, sliced_wow_distance, sw_mmd_distance, wow_distance, LabelCost, OtddConfig};
use wowflow_ot::{OtSolver, SinkhornConfig, TransportPlan};

/// Which dataset distance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DistanceKind {
    /// Wasserstein over Wasserstein: exact W₂ between classes, exact OT between datasets.
    Wow,
    /// WoW with sliced W₂ between classes.
    SlicedWow,
    /// OTDD with exact label-to-label W₂.
    Otdd,
    /// OTDD with the Gaussian (Bures–Wasserstein) label distances.
    OtddGaussian,
    /// MMD with the sliced-Wasserstein Riesz kernel (−SW₂).
    SwMmd,
}

impl DistanceKind {
    /// The class weights of the distance's paper when the user sets none: OTDD is defined
    /// on the empirical measure (every labeled point `1/N`, Alvarez-Melis & Fusi 2020); WoW,
    /// sliced WoW and SW-MMD on `Σ_c a_c δ(μ_c)` with `a_c = 1/C` (Bonet et al. 2025).
    pub fn class_weighting(self) -> ClassWeighting {
        match self {
            DistanceKind::Otdd | DistanceKind::OtddGaussian => ClassWeighting::Proportional,
            DistanceKind::Wow | DistanceKind::SlicedWow | DistanceKind::SwMmd => {
                ClassWeighting::Uniform
            }
        }
    }
}

/// Options of the distances that need them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DistanceOptions {
    /// Slicing directions L (sliced WoW, SW-MMD).
    pub projections: usize,
    /// Seed of the slicing directions.
    pub seed: u64,
    /// Entropic regularisation ε of the outer OT (OTDD kinds); exact OT when `None`.
    pub epsilon: Option<f64>,
}

impl Default for DistanceOptions {
    fn default() -> Self {
        Self {
            projections: 500,
            seed: 0,
            epsilon: None,
        }
    }
}

/// A distance between two labeled datasets and what produced it.
#[derive(Clone, Debug)]
pub struct DistanceReport {
    /// The squared distance (WoW², OTDD², MMD², …).
    pub squared: f64,
    /// Class-to-class costs `C × K` row-major (W₂², SW₂² or label costs); `None` for SW-MMD.
    pub class_costs: Option<Vec<f64>>,
    /// The outer optimal plan (`C × K` for WoW kinds, `N × M` for OTDD); `None` for SW-MMD.
    pub plan: Option<TransportPlan>,
}

impl DistanceReport {
    /// The distance itself, `√squared` (a squared value rounded below 0 counts as 0).
    pub fn distance(&self) -> f64 {
        self.squared.max(0.0).sqrt()
    }
}

/// The distance `kind` between `a` and `b` on the measures they carry (class and particle
/// weights as given).
pub fn dataset_distance(
    kind: DistanceKind,
    a: &LabeledCloud,
    b: &LabeledCloud,
    options: &DistanceOptions,
) -> Result<DistanceReport> {
    let solver = match options.epsilon {
        Some(epsilon) => OtSolver::Sinkhorn(SinkhornConfig {
            epsilon,
            ..SinkhornConfig::default()
        }),
        None => OtSolver::Exact,
    };
    let full = |d: wowflow_ot::DatasetDistance| DistanceReport {
        squared: d.value,
        class_costs: Some(d.inner_costs),
        plan: Some(d.plan),
    };
    Ok(match kind {
        DistanceKind::Wow => full(wow_distance(a, b)?),
        DistanceKind::SlicedWow => full(sliced_wow_distance(
            a,
            b,
            options.projections,
            options.seed,
        )?),
        DistanceKind::Otdd | DistanceKind::OtddGaussian => {
            let cfg = OtddConfig {
                label_cost: if kind == DistanceKind::Otdd {
                    LabelCost::Exact
                } else {
                    LabelCost::Gaussian
                },
                solver,
                label_weight: 1.0,
            };
            full(otdd(a, b, &cfg)?)
        }
        DistanceKind::SwMmd => {
            let mmd = sw_mmd_distance(a, b, &Kernel::RIESZ, options.projections, options.seed)?;
            DistanceReport {
                squared: mmd * mmd,
                class_costs: None,
                plan: None,
            }
        }
    })
}

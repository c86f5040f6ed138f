//! `wowflow distance`: a distance between two labeled datasets (docs/math.md §6).

use crate::flow_cmd::{settle_class_weights, ClassWeightsArg};
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use wowflow_core::{ClassWeighting, Kernel};
use wowflow_data::load_cloud;
use wowflow_ot::{otdd, sliced_wow_distance, sw_mmd_distance, wow_distance, LabelCost, OtddConfig};
use wowflow_ot::{OtSolver, SinkhornConfig};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
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

#[derive(Args, Debug)]
pub struct DistanceArgs {
    /// Which distance.
    #[arg(long, value_enum, default_value = "wow")]
    pub kind: DistanceKind,
    /// First dataset: .npy (C, n, d), .npz with `x` (N, d) and `y` (N,), or CSV (label, features…).
    pub a: PathBuf,
    /// Second dataset, same formats.
    pub b: PathBuf,
    /// Slicing directions (sliced-wow, sw-mmd).
    #[arg(long, short = 'L', default_value_t = 500)]
    pub projections: usize,
    /// Entropic regularisation ε of the outer OT (otdd kinds); exact OT when absent.
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// Class weights a_c of both datasets when their files store none (an .npz may hold
    /// `class_weights`) [default: proportional for otdd and otdd-gaussian (the empirical
    /// measure, every labeled point 1/N); uniform (1/C) for wow, sliced-wow and sw-mmd].
    /// Equal class sizes make both the same.
    #[arg(long, value_enum, value_name = "uniform|proportional")]
    pub class_weights: Option<ClassWeightsArg>,
    /// Seed of the slicing directions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DistanceArgs) -> Result<()> {
    let (mut a, mut b) = (load_cloud(&args.a)?, load_cloud(&args.b)?);
    let weighting = args.kind.class_weighting();
    settle_class_weights(&mut a, args.class_weights, weighting)?;
    settle_class_weights(&mut b, args.class_weights, weighting)?;
    let measure = |c: &wowflow_core::LabeledCloud| c.class_weights().to_vec();
    let (a, b) = (a.cloud, b.cloud);
    if a.dim() != b.dim() {
        bail!(
            "{} has d = {} features but {} has d = {}: datasets must live in the same space",
            args.a.display(),
            a.dim(),
            args.b.display(),
            b.dim()
        );
    }
    let solver = match args.epsilon {
        Some(epsilon) => OtSolver::Sinkhorn(SinkhornConfig {
            epsilon,
            ..SinkhornConfig::default()
        }),
        None => OtSolver::Exact,
    };
    let started = Instant::now();
    // (squared distance, distance, class-to-class costs)
    let (squared, inner) = match args.kind {
        DistanceKind::Wow => {
            let d = wow_distance(&a, &b)?;
            (d.value, Some(d.inner_costs))
        }
        DistanceKind::SlicedWow => {
            let d = sliced_wow_distance(&a, &b, args.projections, args.seed)?;
            (d.value, Some(d.inner_costs))
        }
        DistanceKind::Otdd | DistanceKind::OtddGaussian => {
            let cfg = OtddConfig {
                label_cost: if args.kind == DistanceKind::Otdd {
                    LabelCost::Exact
                } else {
                    LabelCost::Gaussian
                },
                solver,
                label_weight: 1.0,
            };
            let d = otdd(&a, &b, &cfg)?;
            (d.value, Some(d.inner_costs))
        }
        DistanceKind::SwMmd => {
            let mmd = sw_mmd_distance(&a, &b, &Kernel::RIESZ, args.projections, args.seed)?;
            (mmd * mmd, None)
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let name = format!("{:?}", args.kind).to_lowercase();
    let distance = squared.max(0.0).sqrt();
    if args.json {
        let v = json!({
            "kind": args.kind.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or(name),
            "distance": distance,
            "squared": squared,
            "classes": [a.n_classes(), b.n_classes()],
            "class_weights": [measure(&a), measure(&b)],
            "class_costs": inner,
            "seconds": secs,
        });
        println!("{v}");
    } else {
        println!("{distance}");
        eprintln!(
            "{}: distance {distance:.6e} (squared {squared:.6e}) between {} classes and {} classes in {secs:.2} s",
            args.kind.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or(name),
            a.n_classes(),
            b.n_classes()
        );
    }
    Ok(())
}

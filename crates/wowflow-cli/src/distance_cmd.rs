//! `wowflow distance`: a distance between two labeled datasets (docs/math.md §6).

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use wowflow_core::ot::{OtSolver, SinkhornConfig};
use wowflow_core::{
    otdd, sliced_wow_distance, sw_mmd_distance, wow_distance, Kernel, LabelCost, OtddConfig,
};
use wowflow_data::load_cloud;

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
    /// Seed of the slicing directions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DistanceArgs) -> Result<()> {
    let a = load_cloud(&args.a)?.cloud;
    let b = load_cloud(&args.b)?.cloud;
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

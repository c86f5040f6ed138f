//! `wowflow distance`: a distance between two labeled datasets (docs/math.md §6).

use crate::flow_cmd::{settle_class_weights, ClassWeightsArg};
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use wowflow_data::load_cloud;
use wowflow_experiments::distance::{dataset_distance, DistanceKind, DistanceOptions};

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
    let options = DistanceOptions {
        projections: args.projections,
        seed: args.seed,
        epsilon: args.epsilon,
    };
    let started = Instant::now();
    let report = dataset_distance(args.kind, &a, &b, &options)?;
    let (squared, inner) = (report.squared, report.class_costs);
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

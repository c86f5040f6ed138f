//! `wowflow bench`: full gradient steps at the papers' workload sizes.

use anyhow::Result;
use clap::{Args, ValueEnum};
use wowflow_core::DirectionSampler;
use wowflow_experiments::bench::{run as run_bench, BenchConfig, BenchResult};
use wowflow_experiments::device::{make_engine, Device};
use wowflow_experiments::method::SamplerName;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum ConfigName {
    Rings,
    Da,
    Tl,
    Dd,
    Da5k,
    All,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Workload: rings (3×80, d=2), da (10×500 vs 10×500, d=784), tl (10×200 vs 10×5),
    /// dd (10×50 vs 10×5000, batch 256), da5k (10×5000 vs 10×5000), or all.
    #[arg(long, value_enum, default_value = "all")]
    pub config: ConfigName,
    /// Timed steps per workload (after one warm-up step).
    #[arg(long, default_value_t = 10)]
    pub reps: usize,
    /// Print one JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run on the CPU or on the GPU (`cuda` needs a binary built with `--features cuda`).
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: Device,
    /// With `--device cuda`: also time the resident flow with TF32 tensor-core GEMMs.
    #[arg(long)]
    pub tf32: bool,
    /// Direction families to time, one after the other on the same workload (e.g.
    /// `--sampler gaussian,structured`).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "gaussian")]
    pub sampler: Vec<SamplerName>,
}

/// One result line, text or JSON.
/// Structured directions do no GEMM: their rate is the one a dense step would need to be as
/// fast, and is labelled so.
fn gflops_label(r: &BenchResult) -> &'static str {
    if r.directions == "structured" {
        "dense_equivalent_gflops"
    } else {
        "gflops"
    }
}

fn report(json: bool, r: &BenchResult, note: &str) {
    let cfg = &r.config;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "config": cfg.name, "engine": r.engine, "C": cfg.classes, "n": cfg.per_class, "m": cfg.m(),
                "d": cfg.dim, "L": cfg.projections, "directions": r.directions, "min_ms": r.min_ms(), "median_ms": r.median_ms(),
                gflops_label(r): r.gflops(), "times_ms": r.times_ms, "note": note,
            })
        );
    } else {
        println!(
            "bench {}: C={} n={} m={} d={} L={} directions={} min_ms={:.3} median_ms={:.3} {}={:.1}{}",
            cfg.name,
            cfg.classes,
            cfg.per_class,
            cfg.m(),
            cfg.dim,
            cfg.projections,
            r.directions,
            r.min_ms(),
            r.median_ms(),
            gflops_label(r),
            r.gflops(),
            if note.is_empty() {
                String::new()
            } else {
                format!(" [{note}]")
            }
        );
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    let engine = make_engine(args.device, args.threads)?;
    let configs: Vec<BenchConfig> = match args.config {
        ConfigName::All => BenchConfig::ALL.to_vec(),
        one => vec![BenchConfig::by_name(&format!("{one:?}").to_lowercase())?],
    };
    for cfg in configs {
        for &name in &args.sampler {
            let sampler = DirectionSampler::from(name);
            let r = run_bench(&cfg, engine.clone(), &sampler, args.reps)?;
            let note = if args.device == Device::Cuda {
                "engine path: clouds uploaded and gradient downloaded every step"
            } else {
                ""
            };
            report(args.json, &r, note);
        }
        if args.device == Device::Cuda {
            for tf32 in [false, true] {
                if tf32 && !args.tf32 {
                    continue;
                }
                let (r, profile) = wowflow_experiments::resident::bench(&cfg, args.reps, tf32)?;
                let note = format!("{}: resident flow, optimiser update included", r.engine);
                report(args.json, &r, &note);
                if !args.json {
                    let stages: Vec<String> = profile
                        .iter()
                        .map(|(s, ms)| format!("{s} {ms:.3}"))
                        .collect();
                    println!("  stages (ms, drained after each): {}", stages.join(", "));
                }
            }
        }
    }
    Ok(())
}

//! Prints step times of the benchmark workloads: `cargo run --release -p wowflow-experiments --example step_time [da] [reps]`.
use std::sync::Arc;
use wowflow_core::{CpuEngine, DirectionSampler};
use wowflow_experiments::bench::{run, BenchConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map(String::as_str).unwrap_or("da");
    let reps = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(10);
    let r = run(
        &BenchConfig::by_name(name)?,
        Arc::new(CpuEngine::new()),
        &DirectionSampler::Gaussian,
        reps,
    )?;
    println!(
        "{name}: min {:.1} ms, median {:.1} ms, {:.1} GFLOP/s (GEMM part)",
        r.min_ms(),
        r.median_ms(),
        r.gflops()
    );
    Ok(())
}

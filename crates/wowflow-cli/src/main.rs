//! `wowflow`: flow labeled datasets with Wasserstein-over-Wasserstein gradient flows.
//!
//! A thin layer over the library crates: it parses arguments, reads and writes files,
//! shows progress and reports errors; the mathematics lives in `wowflow-core`.

mod bench_cmd;
mod data_cmd;
mod demo_cmd;
mod demo_shaping;
mod distance_cmd;
mod flow_cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "wowflow",
    version,
    about = "Move whole labeled datasets with optimal-transport gradient flows",
    long_about = "Move whole labeled datasets with optimal-transport gradient flows.\n\n\
        A labeled dataset is a distribution over class distributions; wowflow minimises\n\
        F(P) = ½ MMD²_K(P, Q) towards a target dataset Q with kernels built on the\n\
        sliced-Wasserstein distance between classes (Bonet, Vauthier & Korba, ICML 2025).\n\n\
        Start with `wowflow demo rings --out rings/` (no data needed)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Flow a labeled dataset towards a target (.npy (C,n,d), .npz with x/y, or CSV).
    Flow(Box<flow_cmd::FlowArgs>),
    /// A distance between two labeled datasets (WoW, sliced WoW, OTDD, SW-MMD).
    Distance(distance_cmd::DistanceArgs),
    /// Built-in demonstrations that need no data.
    Demo {
        #[command(subcommand)]
        demo: demo_cmd::Demo,
    },
    /// Time full gradient steps at the papers' workload sizes.
    Bench(bench_cmd::BenchArgs),
    /// Datasets: list what is found where, verify checksums, fetch, show.
    Data {
        #[command(subcommand)]
        cmd: data_cmd::DataCommand,
    },
    /// The papers' experiments from TOML configs (`experiments/`): domain adaptation,
    /// class-conditional generation, k-shot transfer learning, dataset distillation, and
    /// whole tables.
    Experiment {
        #[command(subcommand)]
        experiment: wowflow_experiments::Experiment,
    },
}

/// `wowflow experiment table --executor ray`: handed to the Python package, whose table
/// runner has the Ray executor (`$WOWFLOW_PYTHON -m wowflow table ...`, default `python3`).
fn ray_table(args: &wowflow_experiments::table::TableArgs) -> anyhow::Result<()> {
    let python = std::env::var_os("WOWFLOW_PYTHON").unwrap_or_else(|| "python3".into());
    let status = std::process::Command::new(&python)
        .args(["-m", "wowflow"])
        .args(wowflow_experiments::table::python_args(args)?)
        .status()
        .map_err(|e| {
            anyhow::anyhow!(
                "--executor ray runs `{} -m wowflow table`: {e}; set WOWFLOW_PYTHON to the \
                 Python with wowflow and Ray (scripts/setup-python.sh: .venv/bin/python)",
                python.to_string_lossy()
            )
        })?;
    if !status.success() {
        anyhow::bail!(
            "`{} -m wowflow table --executor ray` failed ({status}; its error is above); if it \
             says there is no module named wowflow, set WOWFLOW_PYTHON to the Python that has \
             the package (scripts/setup-python.sh: .venv/bin/python)",
            python.to_string_lossy()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Flow(args) => flow_cmd::run(*args),
        Command::Distance(args) => distance_cmd::run(args),
        Command::Demo { demo } => demo_cmd::run(demo),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Data { cmd } => data_cmd::run(cmd),
        Command::Experiment {
            experiment: wowflow_experiments::Experiment::Table(args),
        } if args.executor == wowflow_experiments::table::Executor::Ray => ray_table(&args),
        Command::Experiment { experiment } => wowflow_experiments::run(experiment),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

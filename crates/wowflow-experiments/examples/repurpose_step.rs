//! Seconds per step of the two re-purposing flows at the paper's size (Alvarez-Melis & Fusi
//! 2021, Table 1: 5 000 images flowed to 5 000 MNIST images, d = 784), side by side in one
//! process, with the `paper` profile of `experiments/repurpose.toml`:
//!
//! `cargo run --release -p wowflow-experiments --example repurpose_step [STEPS] [SOURCE]`
//!
//! (STEPS timed steps after a first one reported apart, default 3; SOURCE default usps;
//! datasets from `$WOWFLOW_DATA`, else `../shared/data`). The OTDD step is the feature-driven
//! flow with exact label costs and an exact 5 000 × 5 000 outer plan; the WoW step is SW-MMD
//! with L = 500 fresh directions.
use anyhow::Result;
use wowflow_core::{Control, FlowState, Observer, StepInfo};
use wowflow_data::DataDirs;
use wowflow_experiments::method::MethodFlow;
use wowflow_experiments::repurpose::{RepurposeMethod, RepurposeSettings};
use wowflow_experiments::sample_train;

/// The wall time of every step.
struct Times(Vec<f64>);

impl Observer for Times {
    fn on_step(&mut self, info: &StepInfo, _: &FlowState) -> wowflow_core::Result<Control> {
        self.0.push(info.seconds);
        Ok(Control::Continue)
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let steps: usize = args.get(1).map_or(Ok(3), |s| s.parse())?;
    let source_name = args.get(2).map_or("usps", String::as_str);
    let data = std::env::var("WOWFLOW_DATA").unwrap_or_else(|_| "../shared/data".into());
    let dirs = DataDirs::new(Some(std::path::Path::new(&data)));
    let settings = RepurposeSettings::load(None, "paper")?;
    let (target, _) = sample_train(&dirs, "mnist", settings.target_per_class, 0)?;
    let (source, _) = sample_train(&dirs, source_name, settings.source_per_class, 0)?;
    println!(
        "{source_name} {} images → MNIST {} images, d = {}; {} threads",
        source.n_points(),
        target.n_points(),
        source.dim(),
        rayon::current_num_threads()
    );
    for method in [RepurposeMethod::Otdd, RepurposeMethod::SwMmd] {
        let mut flow_settings = settings.flow_settings(method, 0)?;
        flow_settings.steps = steps + 1;
        let mut state = FlowState::new(source.clone());
        let mut flow = MethodFlow::new(&flow_settings, &state, &source, &target)?;
        let mut times = Times(Vec::new());
        flow.run(&mut state, &mut [&mut times])?;
        let mut rest = times.0[1..].to_vec();
        rest.sort_by(f64::total_cmp);
        println!(
            "{:>6}: first step {:.3} s; next {} steps median {:.3} s (min {:.3}, max {:.3})",
            method.name(),
            times.0[0],
            rest.len(),
            rest[rest.len() / 2],
            rest[0],
            rest[rest.len() - 1]
        );
    }
    Ok(())
}

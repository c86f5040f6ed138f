//! The quick domain-adaptation curves of `results/structured-directions/` (written by its
//! `run_da.sh`) as one figure: per source, the frozen classifier's accuracy along the flow
//! with Gaussian and with structured directions (issue 20).
//!
//! `cargo run --release -p wowflow-experiments --example structured_da_plot [-- DIR]`
//! (DIR defaults to `results/structured-directions`; writes `DIR/da-quick.png`).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use wowflow_viz::{line_plot, save_png, side_by_side, LinePlot, Series};

/// `(step, accuracy in %)` from an `accuracy.csv`.
fn curve(path: &Path) -> Result<(Vec<f64>, Vec<f64>)> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (Some(step), Some(acc)) = (f.first(), f.get(2)) else {
            continue;
        };
        x.push(step.parse::<f64>()?);
        y.push(100.0 * acc.parse::<f64>()?);
    }
    Ok((x, y))
}

fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| wowflow_testkit::repo_root().join("results/structured-directions"));
    let mut panels = Vec::new();
    for run in [
        "fashion-mnist",
        "fashion-mnist-seed1",
        "fashion-mnist-seed2",
        "kmnist",
        "usps",
    ] {
        let arms: Vec<_> = ["gaussian", "structured"]
            .iter()
            .map(|arm| curve(&dir.join(format!("da-quick-{arm}-{run}/accuracy.csv"))))
            .collect();
        let [Ok(g), Ok(s)] = arms.as_slice() else {
            eprintln!("{run}: a run is missing, skipped");
            continue;
        };
        let series = [
            Series {
                name: "Gaussian",
                x: &g.0,
                y: &g.1,
            },
            Series {
                name: "structured",
                x: &s.0,
                y: &s.1,
            },
        ];
        let img = line_plot(
            &LinePlot {
                title: "",
                x_label: "step",
                y_label: "accuracy (%)",
                log_y: false,
                series: &series,
            },
            (480, 340),
        )?;
        panels.push((format!("{run} → MNIST"), img));
    }
    let refs: Vec<(&str, &wowflow_viz::Rgb8Image)> =
        panels.iter().map(|(c, i)| (c.as_str(), i)).collect();
    let out = dir.join("da-quick.png");
    save_png(&side_by_side(&refs)?, &out)?;
    println!(
        "wrote {}",
        out.canonicalize().unwrap_or(out.clone()).display()
    );
    Ok(())
}

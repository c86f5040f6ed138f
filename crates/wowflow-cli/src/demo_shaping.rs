//! `wowflow demo shaping`: the bottom row of Alvarez-Melis & Fusi's Figure 1 — a labeled 3-D
//! dataset flows towards a swiss roll under the dataset objective alone and under the same
//! objective plus each shaping functional of their §5 (docs/math.md §7), so a person sees each
//! constraint act: a norm bound pulls the roll into a ball, a hyperplane margin pushes classes
//! to their sides, dimension collapse flattens it, class repulsion spreads the classes apart,
//! and entropy (Langevin noise) blurs it.
//!
//! Every panel starts from the same noise and uses the same seed; the view is an oblique
//! projection of `(x, y, z)` (horizontal `x + 0.35 y`, vertical `z + 0.2 y`) on shared axes,
//! with the swiss roll drawn faintly underneath.

use crate::flow_cmd::{FlowMethod, FlowSettings};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use wowflow_baselines::{ClassRepulsion, Potential, PotentialEnergy, Sum};
use wowflow_core::toy::{gaussian_noise, swiss_roll};
use wowflow_core::{Flow, FlowConfig, FlowState, LabeledCloud, Objective};
use wowflow_viz::{save_png, scatter, side_by_side, Bounds, ScatterFrame};

#[derive(Args, Debug)]
pub struct ShapingArgs {
    /// Output directory (created): shaping.png (all panels), one shaping_<name>.png each, and
    /// shaping.npz (each panel's final particles as `<name>` (N, 3), their classes as `y`, the
    /// swiss roll as `target`).
    #[arg(long, default_value = "shaping")]
    pub out: PathBuf,
    /// The dataset objective every panel shares: otdd (their figure) or sw-mmd (the WoW flow).
    #[arg(long, value_enum, default_value = "otdd")]
    pub method: FlowMethod,
    /// Particles per class (3 classes, and 3 pieces of the roll).
    #[arg(long, default_value_t = 100)]
    pub per_class: usize,
    /// Steps of every flow.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Step size τ (plain gradient descent).
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Multiplies every panel's weight λ (F + λ G; λ = 3 for the norm bound and the margin,
    /// 5 for the collapse, 30 for the repulsion, whose gradient is small at these distances).
    #[arg(long, default_value_t = 1.0)]
    pub weight: f64,
    /// Temperature T of the entropy panel (Euler–Maruyama noise √(2τT) per step).
    #[arg(long, default_value_t = 0.01)]
    pub temperature: f64,
    /// Seed of the data and the flows.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// One panel: a name, the shaping term (none for the plain objective) and a temperature.
struct Panel {
    name: &'static str,
    title: &'static str,
    /// The shaping term and its weight λ before `--weight`.
    term: Option<(f64, Box<dyn Objective>)>,
    temperature: Option<f64>,
}

fn panels(temperature: f64) -> Vec<Panel> {
    let potential = |weight, potential| -> Option<(f64, Box<dyn Objective>)> {
        Some((weight, Box::new(PotentialEnergy { potential })))
    };
    vec![
        Panel {
            name: "none",
            title: "dataset objective only",
            term: None,
            temperature: None,
        },
        Panel {
            name: "norm-bound",
            title: "+ norm bound ‖x‖ ≤ 0.5",
            term: potential(
                3.0,
                Potential::NormBound {
                    matrix: None,
                    offset: vec![0.0; 3],
                    radius: 0.5,
                },
            ),
            temperature: None,
        },
        Panel {
            name: "margin",
            title: "+ margin: class 0 at x ≤ 0, class 2 at x ≥ 0",
            term: potential(
                3.0,
                Potential::HyperplaneMargin {
                    normal: vec![1.0, 0.0, 0.0],
                    offset: 0.0,
                    class_signs: vec![1.0, 0.0, -1.0],
                },
            ),
            temperature: None,
        },
        Panel {
            name: "collapse",
            title: "+ dimension collapse (z → 0)",
            term: potential(5.0, Potential::DimensionCollapse { dims: vec![2] }),
            temperature: None,
        },
        Panel {
            name: "repulsion",
            title: "+ class repulsion",
            term: Some((30.0, Box::new(ClassRepulsion))),
            temperature: None,
        },
        Panel {
            name: "entropy",
            title: "+ entropy (Langevin noise)",
            term: None,
            temperature: Some(temperature),
        },
    ]
}

/// The oblique view of 3-D points.
fn view(points: &[f32]) -> Vec<[f32; 2]> {
    points
        .chunks_exact(3)
        .map(|p| [p[0] + 0.35 * p[1], p[2] + 0.2 * p[1]])
        .collect()
}

fn run_panel(
    args: &ShapingArgs,
    panel: Panel,
    source: &LabeledCloud,
    target: &LabeledCloud,
) -> Result<(FlowState, f64)> {
    let settings = FlowSettings {
        method: args.method,
        lr: args.lr,
        steps: args.steps,
        seed: args.seed,
        ..FlowSettings::default()
    };
    let base = settings.objective(source, target.clone())?;
    let mut terms = vec![(1.0, base)];
    if let Some((weight, term)) = panel.term {
        terms.push((weight * args.weight, term));
    }
    let mut objective = Sum { terms };
    let mut state = FlowState::new(source.clone());
    Flow {
        objective: &mut objective,
        optimizer: settings.optimizer()?,
        config: FlowConfig {
            steps: args.steps,
            seed: args.seed,
            clip: None,
            temperature: panel.temperature,
        },
    }
    .run(&mut state, &mut [])
    .with_context(|| format!("the `{}` flow", panel.name))?;
    let loss = state.losses.last().copied().unwrap_or(f64::NAN);
    Ok((state, loss))
}

pub fn shaping_demo(args: &ShapingArgs) -> Result<()> {
    if args.method == FlowMethod::ProductMmd {
        anyhow::bail!("--method: the shaping demo flows labeled clouds; use otdd or sw-mmd");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let target = swiss_roll(3, args.per_class, args.seed)?;
    let source = gaussian_noise(3, args.per_class, 3, 0.3, args.seed + 1)?;
    let mut finals = Vec::new();
    for panel in panels(args.temperature) {
        let (name, title) = (panel.name, panel.title);
        let (state, loss) = run_panel(args, panel, &source, &target)?;
        eprintln!("{name}: {} steps, F = {loss:.3e}", state.step);
        finals.push((name, title, state));
    }
    let target_xy = view(target.points());
    let views: Vec<Vec<[f32; 2]>> = finals
        .iter()
        .map(|(_, _, s)| view(s.cloud.points()))
        .collect();
    let mut sets: Vec<&[[f32; 2]]> = views.iter().map(Vec::as_slice).collect();
    sets.push(&target_xy);
    let bounds = Bounds::covering(&sets, 0.05);
    let target_labels = target.row_classes();
    let mut images = Vec::new();
    for ((name, title, state), xy) in finals.iter().zip(&views) {
        let frame = ScatterFrame {
            points: xy,
            labels: &state.cloud.row_classes(),
            target_points: &target_xy,
            target_labels: &target_labels,
            title: title.to_string(),
        };
        let img = scatter(&frame, &bounds, (420, 420))?;
        save_png(&img, &args.out.join(format!("shaping_{name}.png")))?;
        images.push((*name, img));
    }
    let n = source.n_points();
    let mut arrays: Vec<(String, wowflow_data::NpyArray)> = finals
        .iter()
        .map(|(name, _, s)| {
            let x = wowflow_data::NpyArray::f32(vec![n, 3], s.cloud.points().to_vec());
            (name.to_string(), x)
        })
        .collect();
    let y = source.row_classes().iter().map(|&c| c as i64).collect();
    arrays.push(("y".into(), wowflow_data::NpyArray::i64(vec![n], y)));
    let t = wowflow_data::NpyArray::f32(vec![target.n_points(), 3], target.points().to_vec());
    arrays.push(("target".into(), t));
    let named: Vec<(&str, &wowflow_data::NpyArray)> =
        arrays.iter().map(|(k, v)| (k.as_str(), v)).collect();
    wowflow_data::write_npz(&args.out.join("shaping.npz"), &named)?;
    let refs: Vec<(&str, &wowflow_viz::Rgb8Image)> = images.iter().map(|(n, i)| (*n, i)).collect();
    let path = args.out.join("shaping.png");
    save_png(&side_by_side(&refs)?, &path)?;
    println!("wrote {}", path.display());
    Ok(())
}

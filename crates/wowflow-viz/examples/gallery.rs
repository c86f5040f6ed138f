//! Renders one of each picture wowflow-viz makes into a directory, for looking at by eye.
//!
//!     cargo run -p wowflow-viz --example gallery -- /tmp/gallery
//!
//! The data are synthetic (a toy flow from Gaussian blobs to three rings, made-up loss curves,
//! procedural "digits") so the example runs anywhere without data files.

use std::f32::consts::TAU;
use std::path::PathBuf;

use wowflow_viz::{
    format_number, image_grid, line_plot, save_gif, save_png, scatter, side_by_side, Bounds,
    LinePlot, Rgb8Image, ScatterFrame, Series, VizError,
};

/// A tiny deterministic generator (SplitMix64) so the example needs no RNG crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.next().max(1e-7), self.next());
        (-2.0 * u.ln()).sqrt() * (TAU * v).cos()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "gallery".into()));
    std::fs::create_dir_all(&dir)?;
    let mut rng = Rng(7);

    // A toy 2-D flow: three Gaussian blobs move onto three concentric rings (one ring per class).
    let (classes, per_class) = (3usize, 150usize);
    let mut start = Vec::new();
    let mut target = Vec::new();
    let mut labels = Vec::new();
    for c in 0..classes {
        let radius = 1.0 + c as f32;
        let centre = [-3.0 + 3.0 * c as f32, 4.5];
        for _ in 0..per_class {
            start.push([
                centre[0] + 0.5 * rng.normal(),
                centre[1] + 0.5 * rng.normal(),
            ]);
            let a = TAU * rng.next();
            let r = radius + 0.08 * rng.normal();
            target.push([r * a.cos(), r * a.sin()]);
            labels.push(c);
        }
    }
    // Sorting each class's target by angle of its start point gives a smooth-looking transport.
    let steps = 30;
    let state = |t: f32| -> Vec<[f32; 2]> {
        let s = t * t * (3.0 - 2.0 * t); // ease in and out
        start
            .iter()
            .zip(&target)
            .map(|(a, b)| [a[0] + s * (b[0] - a[0]), a[1] + s * (b[1] - a[1])])
            .collect()
    };
    let all: Vec<Vec<[f32; 2]>> = (0..=steps)
        .map(|k| state(k as f32 / steps as f32))
        .collect();
    let mut sets: Vec<&[[f32; 2]]> = all.iter().map(|v| v.as_slice()).collect();
    sets.push(&target);
    let bounds = Bounds::covering(&sets, 0.05).square();

    let frame = |points: &[[f32; 2]], title: String, size| -> Result<Rgb8Image, VizError> {
        scatter(
            &ScatterFrame {
                points,
                labels: &labels,
                target_points: &target,
                target_labels: &labels,
                title,
            },
            &bounds,
            size,
        )
    };
    let loss = |k: usize| 2.0 * (-(k as f64) / 6.0).exp() + 1e-3;
    let mut frames = Vec::new();
    for (k, points) in all.iter().enumerate() {
        let title = format!("step {} — loss {}", 10 * k, format_number(loss(k)));
        frames.push(frame(points, title, (480, 480))?);
    }
    save_png(&frames[0], &dir.join("scatter_first.png"))?;
    save_png(&frames[steps / 2], &dir.join("scatter_middle.png"))?;
    save_png(&frames[steps], &dir.join("scatter_last.png"))?;
    save_gif(&frames, 80, &dir.join("flow.gif"))?;

    // Ten classes, to see the whole palette.
    let mut many = Vec::new();
    let mut many_labels = Vec::new();
    for c in 0..10 {
        let a = TAU * c as f32 / 10.0;
        for _ in 0..60 {
            many.push([
                3.0 * a.cos() + 0.4 * rng.normal(),
                3.0 * a.sin() + 0.4 * rng.normal(),
            ]);
            many_labels.push(c);
        }
    }
    let ten = scatter(
        &ScatterFrame {
            points: &many,
            labels: &many_labels,
            target_points: &[],
            target_labels: &[],
            title: "ten classes".into(),
        },
        &Bounds::covering(&[&many], 0.05).square(),
        (480, 480),
    )?;
    save_png(&ten, &dir.join("scatter_ten_classes.png"))?;

    // Loss curves on a log scale, accuracy on a linear one.
    let x: Vec<f64> = (0..=2000).map(|k| k as f64).collect();
    let noisy = |scale: f64, rate: f64, floor: f64, rng: &mut Rng| -> Vec<f64> {
        x.iter()
            .map(|&s| {
                (scale * (-s / rate).exp() + floor) * (1.0 + 0.15 * rng.normal() as f64).abs()
            })
            .collect()
    };
    let sw = noisy(3.0, 150.0, 2e-4, &mut rng);
    let eu = noisy(2.0, 400.0, 5e-3, &mut rng);
    let losses = line_plot(
        &LinePlot {
            title: "Training loss",
            x_label: "step",
            y_label: "loss",
            log_y: true,
            series: &[
                Series {
                    name: "SW-MMD (Riesz)",
                    x: &x,
                    y: &sw,
                },
                Series {
                    name: "Euclidean MMD",
                    x: &x,
                    y: &eu,
                },
            ],
        },
        (640, 400),
    )?;
    save_png(&losses, &dir.join("line_loss_log.png"))?;
    let acc_x: Vec<f64> = (0..=20).map(|k| 50.0 * k as f64).collect();
    let acc = |top: f64, rate: f64| -> Vec<f64> {
        acc_x
            .iter()
            .map(|&s| 0.1 + (top - 0.1) * (1.0 - (-s / rate).exp()))
            .collect()
    };
    let (a1, a2, a3) = (acc(0.97, 120.0), acc(0.91, 300.0), acc(0.85, 250.0));
    let accuracy = line_plot(
        &LinePlot {
            title: "Accuracy along the flow",
            x_label: "step",
            y_label: "test accuracy",
            log_y: false,
            series: &[
                Series {
                    name: "SW-MMD",
                    x: &acc_x,
                    y: &a1,
                },
                Series {
                    name: "OTDD",
                    x: &acc_x,
                    y: &a2,
                },
                Series {
                    name: "DM",
                    x: &acc_x,
                    y: &a3,
                },
            ],
        },
        (640, 400),
    )?;
    save_png(&accuracy, &dir.join("line_accuracy.png"))?;

    // Procedural 28×28 "digits": class c is an arc of c+1 tenths of a turn, 8 per class.
    let (h, w, per_row) = (28usize, 28usize, 8usize);
    let mut images = Vec::new();
    for c in 0..10 {
        for _ in 0..per_row {
            let mut img = vec![0f32; h * w];
            let span = TAU * (c as f32 + 1.0) / 10.0;
            let phase = TAU * rng.next();
            let r = 8.0 + 2.0 * rng.next();
            for k in 0..200 {
                let a = phase + span * k as f32 / 199.0;
                let (cx, cy) = (14.0 + r * a.cos(), 14.0 + r * a.sin());
                for y in 0..h {
                    for x in 0..w {
                        let d2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                        let v = &mut img[y * w + x];
                        *v = v.max((-d2 / 2.5).exp());
                    }
                }
            }
            images.extend(img);
        }
    }
    let grid = image_grid(&images, 10 * per_row, h, w, per_row, 2)?;
    save_png(&grid, &dir.join("grid_digits.png"))?;

    // Side-by-side comparison of three "objectives" (here: three stages of the toy flow).
    let panel = |k: usize, title: &str| frame(&all[k], title.to_string(), (320, 320));
    let (p1, p2, p3) = (
        panel(steps, "step 300")?,
        panel(2 * steps / 3, "step 300")?,
        panel(steps / 3, "step 300")?,
    );
    let panels = side_by_side(&[("SW-MMD", &p1), ("Euclidean MMD", &p2), ("OTDD", &p3)])?;
    save_png(&panels, &dir.join("side_by_side.png"))?;

    println!("wrote the gallery to {}", dir.display());
    Ok(())
}

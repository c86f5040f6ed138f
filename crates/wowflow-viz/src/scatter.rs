//! Scatter frames of a 2-D flow: particles coloured by class over a faint target.

use crate::axes::{Axes, AxisRange, Labels};
use crate::error::{check_finite, VizError};
use crate::image::Rgb8Image;
use crate::palette::{class_color, lighten};
use crate::raster::fill_disc;

/// One frame of a 2-D flow: the moving particles and the fixed target, each point with a class.
///
/// Colours come from [`class_color`] by class index, so the same class has the same colour in
/// every frame and in the target.
#[derive(Clone, Debug)]
pub struct ScatterFrame<'a> {
    /// Particle positions `(x, y)`, one per particle.
    pub points: &'a [[f32; 2]],
    /// Class index of each particle; same length as `points`.
    pub labels: &'a [usize],
    /// Target positions, drawn faintly underneath (may be empty).
    pub target_points: &'a [[f32; 2]],
    /// Class index of each target point; same length as `target_points`.
    pub target_labels: &'a [usize],
    /// Text above the plot, e.g. `"step 120 — loss 3.2e-2"` (may be empty).
    pub title: String,
}

/// The data rectangle shown by a scatter frame.
///
/// Pass the same `Bounds` to every frame of a flow: the axes then stay put and motion in the GIF
/// is the particles' motion, not the axes rescaling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// `(min, max)` of the horizontal axis.
    pub x: (f32, f32),
    /// `(min, max)` of the vertical axis.
    pub y: (f32, f32),
}

impl Bounds {
    /// The smallest rectangle holding every finite point of every set, widened on each side by
    /// `margin` × its span (0.05 leaves 5 % of air so markers at the edge are not cut).
    ///
    /// Compute it once from all frames and the target. Non-finite points are ignored; with no
    /// finite point at all the result is `[-1, 1]²`. A zero span (all points on a line) is
    /// widened to 1 so the axis stays usable. A negative or non-finite `margin` counts as 0.
    pub fn covering(sets: &[&[[f32; 2]]], margin: f32) -> Bounds {
        let mut lo = [f32::INFINITY; 2];
        let mut hi = [f32::NEG_INFINITY; 2];
        for p in sets.iter().flat_map(|s| s.iter()) {
            if p[0].is_finite() && p[1].is_finite() {
                for k in 0..2 {
                    lo[k] = lo[k].min(p[k]);
                    hi[k] = hi[k].max(p[k]);
                }
            }
        }
        if lo[0] > hi[0] {
            return Bounds {
                x: (-1.0, 1.0),
                y: (-1.0, 1.0),
            };
        }
        let margin = if margin.is_finite() {
            margin.max(0.0)
        } else {
            0.0
        };
        let widen = |lo: f32, hi: f32| {
            let (lo, hi) = if hi - lo > 0.0 {
                (lo, hi)
            } else {
                (lo - 0.5, hi + 0.5)
            };
            let pad = (hi - lo) * margin;
            (lo - pad, hi + pad)
        };
        Bounds {
            x: widen(lo[0], hi[0]),
            y: widen(lo[1], hi[1]),
        }
    }

    /// The same centre with the shorter side stretched to the longer one, so that on a square
    /// picture one unit is as long on both axes (rings stay round).
    pub fn square(self) -> Bounds {
        let (wx, wy) = (self.x.1 - self.x.0, self.y.1 - self.y.0);
        let side = wx.max(wy);
        let (cx, cy) = ((self.x.0 + self.x.1) / 2.0, (self.y.0 + self.y.1) / 2.0);
        Bounds {
            x: (cx - side / 2.0, cx + side / 2.0),
            y: (cy - side / 2.0, cy + side / 2.0),
        }
    }

    fn check(&self) -> Result<(), VizError> {
        for (name, (lo, hi)) in [("bounds.x", self.x), ("bounds.y", self.y)] {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(VizError::invalid(
                    name,
                    format!("expected finite (min, max) with min < max, got ({lo}, {hi})"),
                ));
            }
        }
        Ok(())
    }
}

/// How much of white is mixed into a class colour for target markers: light enough to read as
/// background, dark enough to show the target's shape.
const TARGET_LIGHTEN: f32 = 0.62;

/// Renders one scatter frame of `size` = (width, height) pixels (480×480 is a good default).
///
/// The target is drawn first in light tints of the class colours, then the particles in full
/// colour; points outside `bounds` are clipped. Axes carry tick labels; the title goes on top.
///
/// Errors if `labels`/`target_labels` lengths differ from their points, if a coordinate is not
/// finite, if `bounds` is empty or not finite, or if `size` is too small for axes.
pub fn scatter(
    frame: &ScatterFrame<'_>,
    bounds: &Bounds,
    size: (u32, u32),
) -> Result<Rgb8Image, VizError> {
    bounds.check()?;
    check_pairs("points", frame.points, "labels", frame.labels)?;
    check_pairs(
        "target_points",
        frame.target_points,
        "target_labels",
        frame.target_labels,
    )?;
    let labels = Labels {
        title: &frame.title,
        x_label: "",
        y_label: "",
    };
    let axes = Axes::layout(
        size,
        AxisRange {
            lo: bounds.x.0 as f64,
            hi: bounds.x.1 as f64,
            log: false,
        },
        AxisRange {
            lo: bounds.y.0 as f64,
            hi: bounds.y.1 as f64,
            log: false,
        },
        &labels,
    )?;
    let mut img = axes.background()?;
    let n = frame.points.len().max(frame.target_points.len()).max(1) as f32;
    // Smaller markers for crowded frames, so classes still show as shapes rather than blobs.
    let radius = 3.0 * axes.scale * (1000.0 / n).sqrt().clamp(0.6, 1.0);
    for (p, &c) in frame.target_points.iter().zip(frame.target_labels) {
        let color = lighten(class_color(c), TARGET_LIGHTEN);
        let (x, y) = (axes.px(p[0] as f64), axes.py(p[1] as f64));
        fill_disc(&mut img, x, y, radius, color, 1.0, axes.area);
    }
    for (p, &c) in frame.points.iter().zip(frame.labels) {
        let (x, y) = (axes.px(p[0] as f64), axes.py(p[1] as f64));
        fill_disc(&mut img, x, y, radius, class_color(c), 0.9, axes.area);
    }
    axes.furniture(&mut img, &labels);
    Ok(img)
}

fn check_pairs(
    points_name: &str,
    points: &[[f32; 2]],
    labels_name: &str,
    labels: &[usize],
) -> Result<(), VizError> {
    if points.len() != labels.len() {
        return Err(VizError::shape(
            labels_name,
            format!(
                "length {} (one class per entry of `{points_name}`)",
                points.len()
            ),
            format!("length {}", labels.len()),
        ));
    }
    for (i, p) in points.iter().enumerate() {
        check_finite(
            || format!("{points_name}[{i}]"),
            p.iter().map(|&v| v as f64),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame<'a>(points: &'a [[f32; 2]], labels: &'a [usize]) -> ScatterFrame<'a> {
        ScatterFrame {
            points,
            labels,
            target_points: &[],
            target_labels: &[],
            title: "t".into(),
        }
    }

    const B: Bounds = Bounds {
        x: (-1.0, 1.0),
        y: (-1.0, 1.0),
    };

    #[test]
    fn a_point_lands_where_the_axes_map_it_in_its_class_colour() {
        let labels = Labels {
            title: "t",
            x_label: "",
            y_label: "",
        };
        let range = |(lo, hi): (f32, f32)| AxisRange {
            lo: lo as f64,
            hi: hi as f64,
            log: false,
        };
        let axes = Axes::layout((480, 480), range(B.x), range(B.y), &labels).unwrap();
        for (p, class) in [([0.25f32, -0.5f32], 3usize), ([-0.8, 0.7], 0)] {
            let img = scatter(&frame(&[p], &[class]), &B, (480, 480)).unwrap();
            let (x, y) = (axes.px(p[0] as f64), axes.py(p[1] as f64));
            let got = img.pixel(x as u32, y as u32).unwrap();
            let want = class_color(class);
            // Opacity 0.9 over white: within 10 % of the class colour.
            for k in 0..3 {
                assert!(
                    (got[k] as i32 - want[k] as i32).abs() <= 26,
                    "{got:?} vs {want:?}"
                );
            }
            // And nothing of that colour far from it.
            let far = img.pixel((x + 20.0) as u32, (y + 20.0) as u32).unwrap();
            assert_ne!(far, got);
        }
        // The mapping itself: bounds corners are the plot-area corners.
        assert_eq!(axes.px(-1.0), axes.area.x0 as f32);
        assert_eq!(axes.py(-1.0), axes.area.y1 as f32);
        assert_eq!(axes.px(1.0), axes.area.x1 as f32);
    }

    #[test]
    fn target_is_lighter_than_particles_of_the_same_class() {
        let f = ScatterFrame {
            points: &[[-0.5, 0.0]],
            labels: &[2],
            target_points: &[[0.5, 0.0]],
            target_labels: &[2],
            title: String::new(),
        };
        let img = scatter(&f, &B, (300, 300)).unwrap();
        let axes = Axes::layout(
            (300, 300),
            AxisRange {
                lo: -1.0,
                hi: 1.0,
                log: false,
            },
            AxisRange {
                lo: -1.0,
                hi: 1.0,
                log: false,
            },
            &Labels {
                title: "",
                x_label: "",
                y_label: "",
            },
        )
        .unwrap();
        let at = |x: f64| img.pixel(axes.px(x) as u32, axes.py(0.0) as u32).unwrap();
        let lum = |c: [u8; 3]| c.iter().map(|&v| v as u32).sum::<u32>();
        let (particle, target) = (at(-0.5), at(0.5));
        assert!(
            lum(target) > lum(particle) + 100,
            "{target:?} vs {particle:?}"
        );
        assert!(
            lum(target) < 3 * 250,
            "target must still be visible: {target:?}"
        );
    }

    #[test]
    fn layout_is_the_same_for_every_title_and_data() {
        let a = scatter(&frame(&[[0.0, 0.0]], &[0]), &B, (480, 480)).unwrap();
        let mut f = frame(&[[0.9, 0.9]], &[1]);
        f.title = "step 99999 — loss 1.2e-12, a much longer title".into();
        let b = scatter(&f, &B, (480, 480)).unwrap();
        // The bottom rows (x tick labels) and the left columns (y tick labels) are identical.
        let rows = |img: &Rgb8Image, y0: u32| {
            (y0..480)
                .flat_map(|y| (0..480).map(move |x| (x, y)))
                .map(|(x, y)| img.pixel(x, y))
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(&a, 450), rows(&b, 450));
        let cols = |img: &Rgb8Image| {
            (40..440)
                .flat_map(|y| (0..30).map(move |x| (x, y)))
                .map(|(x, y)| img.pixel(x, y))
                .collect::<Vec<_>>()
        };
        assert_eq!(cols(&a), cols(&b));
    }

    #[test]
    fn bad_input_is_an_error_naming_the_argument() {
        let e = scatter(&frame(&[[0.0, 0.0]], &[0, 1]), &B, (480, 480)).unwrap_err();
        assert!(e.to_string().contains("labels"), "{e}");
        let e = scatter(&frame(&[[f32::NAN, 0.0]], &[0]), &B, (480, 480)).unwrap_err();
        assert!(e.to_string().contains("points[0]"), "{e}");
        let bad = Bounds {
            x: (1.0, 1.0),
            y: (0.0, 1.0),
        };
        let e = scatter(&frame(&[], &[]), &bad, (480, 480)).unwrap_err();
        assert!(e.to_string().contains("bounds.x"), "{e}");
        assert!(scatter(&frame(&[], &[]), &B, (20, 20)).is_err());
        let huge = Bounds {
            x: (-f32::MAX, f32::MAX),
            y: (-1.0, 1.0),
        };
        assert!(scatter(&frame(&[[f32::MAX, 0.0]], &[usize::MAX]), &huge, (200, 200)).is_ok());
        assert!(scatter(&frame(&[], &[]), &B, (0, 480)).is_err());
    }

    #[test]
    fn covering_bounds_hold_every_set_with_margin() {
        let a = [[0.0f32, 0.0], [1.0, 2.0]];
        let b = [[-1.0f32, 1.0], [f32::NAN, 100.0]];
        let bounds = Bounds::covering(&[&a, &b], 0.1);
        assert_eq!(bounds.x, (-1.2, 1.2));
        assert_eq!(bounds.y, (-0.2, 2.2));
        assert_eq!(Bounds::covering(&[], 0.1).x, (-1.0, 1.0));
        let flat = Bounds::covering(&[&[[3.0, 3.0]]], 0.0);
        assert_eq!(flat.x, (2.5, 3.5));
        let sq = bounds.square();
        assert!(((sq.x.1 - sq.x.0) - (sq.y.1 - sq.y.0)).abs() < 1e-6);
        assert!((sq.x.0 + sq.x.1).abs() < 1e-6);
    }
}

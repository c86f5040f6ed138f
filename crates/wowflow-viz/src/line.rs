//! Line plots: loss or accuracy along a flow, one line per named series, with a legend.

use crate::axes::{Axes, AxisRange, Labels};
use crate::error::{check_finite, VizError};
use crate::image::Rgb8Image;
use crate::palette::{class_color, TEXT, WHITE};
use crate::raster::{fill_rect, stroke_polyline, Rect};
use crate::text::{self, HAlign, VAlign};

/// One named line: `y[i]` against `x[i]`, drawn in the order given.
#[derive(Clone, Copy, Debug)]
pub struct Series<'a> {
    /// Legend entry.
    pub name: &'a str,
    /// Abscissae (e.g. step numbers).
    pub x: &'a [f64],
    /// Ordinates; same length as `x`.
    pub y: &'a [f64],
}

/// A line plot: title, axis labels, scale and the series to draw (colours by position).
#[derive(Clone, Copy, Debug)]
pub struct LinePlot<'a> {
    /// Text above the plot (may be empty).
    pub title: &'a str,
    /// Label under the horizontal axis (may be empty).
    pub x_label: &'a str,
    /// Label along the vertical axis (may be empty).
    pub y_label: &'a str,
    /// Base-10 logarithmic vertical axis, for losses spanning decades.
    /// Points with `y ≤ 0` cannot be shown on it and are skipped (the line breaks there).
    pub log_y: bool,
    /// The lines; series `i` gets colour [`class_color`]`(i)`.
    pub series: &'a [Series<'a>],
}

/// Renders `plot` at `size` = (width, height) pixels (640×400 is a good default).
///
/// The vertical range covers all drawn points with 5 % of air (in log space for `log_y`); the
/// horizontal range is the data's exact extent so the curve touches both sides. With one series
/// or more, a legend is placed in whichever corner of the plot the lines cross least.
///
/// Errors if there is no series, a series is empty or has `x` and `y` of different lengths,
/// any value is NaN or infinite, or (with `log_y`) no value at all is positive.
pub fn line_plot(plot: &LinePlot<'_>, size: (u32, u32)) -> Result<Rgb8Image, VizError> {
    if plot.series.is_empty() {
        return Err(VizError::empty(
            "series",
            "a line plot needs at least one series",
        ));
    }
    for s in plot.series {
        let arg = |field: &str| format!("series[\"{}\"].{field}", s.name);
        if s.x.is_empty() {
            return Err(VizError::empty(
                arg("x"),
                "each series needs at least one point",
            ));
        }
        if s.x.len() != s.y.len() {
            return Err(VizError::shape(
                arg("y"),
                format!("length {} (one value per x)", s.x.len()),
                format!("length {}", s.y.len()),
            ));
        }
        check_finite(|| arg("x"), s.x.iter().copied())?;
        check_finite(|| arg("y"), s.y.iter().copied())?;
    }
    let shown = |y: f64| !plot.log_y || y > 0.0;
    let (mut x_lo, mut x_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y_lo, mut y_hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in plot.series {
        for (&x, &y) in s.x.iter().zip(s.y) {
            if shown(y) {
                x_lo = x_lo.min(x);
                x_hi = x_hi.max(x);
                y_lo = y_lo.min(y);
                y_hi = y_hi.max(y);
            }
        }
    }
    if x_lo > x_hi {
        return Err(VizError::invalid(
            "series",
            "log_y is set but no y value is positive, so nothing can be drawn",
        ));
    }
    if x_hi - x_lo <= 0.0 {
        let pad = if x_lo == 0.0 { 1.0 } else { x_lo.abs() * 0.1 };
        x_lo -= pad;
        x_hi += pad;
    }
    let y_range = if plot.log_y {
        let (a, b) = (y_lo.log10(), y_hi.log10());
        let pad = if b > a { (b - a) * 0.05 } else { 0.5 };
        AxisRange {
            // Padding must not push the range out of f64 (to 0 or ∞) for extreme data.
            lo: 10f64.powf(a - pad).max(f64::MIN_POSITIVE.min(y_lo)),
            hi: 10f64.powf(b + pad).min(f64::MAX),
            log: true,
        }
    } else {
        let pad = if y_hi > y_lo {
            (y_hi - y_lo) * 0.05
        } else if y_lo == 0.0 {
            1.0
        } else {
            y_lo.abs() * 0.1
        };
        AxisRange {
            lo: (y_lo - pad).max(-f64::MAX),
            hi: (y_hi + pad).min(f64::MAX),
            log: false,
        }
    };
    let labels = Labels {
        title: plot.title,
        x_label: plot.x_label,
        y_label: plot.y_label,
    };
    let x_range = AxisRange {
        lo: x_lo,
        hi: x_hi,
        log: false,
    };
    let axes = Axes::layout(size, x_range, y_range, &labels)?;
    let mut img = axes.background()?;
    let width = 2.0 * axes.scale;
    // Pixel polylines, broken where a point cannot be shown (y ≤ 0 on a log axis).
    let mut runs: Vec<(usize, Vec<(f32, f32)>)> = Vec::new();
    for (i, s) in plot.series.iter().enumerate() {
        let mut run = Vec::new();
        for (&x, &y) in s.x.iter().zip(s.y) {
            if shown(y) {
                run.push((axes.px(x), axes.py(y)));
            } else if !run.is_empty() {
                runs.push((i, std::mem::take(&mut run)));
            }
        }
        if !run.is_empty() {
            runs.push((i, run));
        }
    }
    for (i, run) in &runs {
        stroke_polyline(&mut img, run, width, class_color(*i), axes.area);
    }
    draw_legend(&mut img, &axes, plot.series, &runs);
    axes.furniture(&mut img, &labels);
    Ok(img)
}

const LEGEND_PX: f32 = 12.0;

/// Draws the legend box in the plot corner that covers the fewest line points.
fn draw_legend(
    img: &mut Rgb8Image,
    axes: &Axes,
    series: &[Series<'_>],
    runs: &[(usize, Vec<(f32, f32)>)],
) {
    let s = axes.scale;
    let px = LEGEND_PX * s;
    let (_, text_h) = text::measure("Ag", px);
    let row_h = text_h + 3.0 * s;
    let sample_w = 22.0 * s;
    let pad = 6.0 * s;
    let names_w = series
        .iter()
        .map(|se| text::measure(se.name, px).0)
        .fold(0.0, f32::max);
    let box_w = (pad * 2.0 + sample_w + 6.0 * s + names_w).ceil() as i64;
    let box_h = (pad * 2.0 + row_h * series.len() as f32).ceil() as i64;
    let a = axes.area;
    let inset = (8.0 * s).round() as i64;
    if box_w + 2 * inset > a.width() || box_h + 2 * inset > a.height() {
        return; // No room: a legend over the whole plot would hide more than it explains.
    }
    let corners = [
        (a.x1 - inset - box_w, a.y0 + inset), // top right first: where matplotlib puts it
        (a.x0 + inset, a.y0 + inset),
        (a.x1 - inset - box_w, a.y1 - inset - box_h),
        (a.x0 + inset, a.y1 - inset - box_h),
    ];
    let crossings = |(x0, y0): (i64, i64)| {
        let (x1, y1) = ((x0 + box_w) as f32, (y0 + box_h) as f32);
        let (x0, y0) = (x0 as f32, y0 as f32);
        runs.iter()
            .flat_map(|(_, r)| r.windows(2))
            .filter(|w| {
                // Sample each segment at a few points so long straight segments count too.
                (0..=4).any(|k| {
                    let t = k as f32 / 4.0;
                    let (x, y) = (
                        w[0].0 + t * (w[1].0 - w[0].0),
                        w[0].1 + t * (w[1].1 - w[0].1),
                    );
                    x >= x0 && x <= x1 && y >= y0 && y <= y1
                })
            })
            .count()
    };
    let (bx, by) = corners
        .iter()
        .copied()
        .min_by_key(|&c| crossings(c))
        .unwrap_or(corners[0]);
    let rect = Rect {
        x0: bx,
        y0: by,
        x1: bx + box_w,
        y1: by + box_h,
    };
    fill_rect(img, rect, WHITE, 0.88);
    let edge = [200, 200, 200];
    fill_rect(
        img,
        Rect {
            y1: rect.y0 + 1,
            ..rect
        },
        edge,
        1.0,
    );
    fill_rect(
        img,
        Rect {
            y0: rect.y1 - 1,
            ..rect
        },
        edge,
        1.0,
    );
    fill_rect(
        img,
        Rect {
            x1: rect.x0 + 1,
            ..rect
        },
        edge,
        1.0,
    );
    fill_rect(
        img,
        Rect {
            x0: rect.x1 - 1,
            ..rect
        },
        edge,
        1.0,
    );
    for (i, se) in series.iter().enumerate() {
        let cy = by as f32 + pad + row_h * (i as f32 + 0.5);
        let x0 = bx as f32 + pad;
        stroke_polyline(
            img,
            &[(x0, cy), (x0 + sample_w, cy)],
            2.0 * s,
            class_color(i),
            rect,
        );
        let tx = x0 + sample_w + 6.0 * s;
        text::draw(
            img,
            se.name,
            px,
            (tx, cy),
            (HAlign::Left, VAlign::Middle),
            TEXT,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plot<'a>(series: &'a [Series<'a>], log_y: bool) -> LinePlot<'a> {
        LinePlot {
            title: "loss",
            x_label: "step",
            y_label: "SW-MMD",
            log_y,
            series,
        }
    }

    #[test]
    fn draws_series_in_their_colours() {
        let x: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let y1: Vec<f64> = x.iter().map(|v| 1.0 / (1.0 + v)).collect();
        let y2: Vec<f64> = x.iter().map(|v| 0.5 / (1.0 + v)).collect();
        let s = [
            Series {
                name: "a",
                x: &x,
                y: &y1,
            },
            Series {
                name: "b",
                x: &x,
                y: &y2,
            },
        ];
        let img = line_plot(&plot(&s, true), (640, 400)).unwrap();
        let count = |c: [u8; 3]| {
            (0..400)
                .flat_map(|y| (0..640).map(move |x| (x, y)))
                .filter(|&(x, y)| img.pixel(x, y) == Some(c))
                .count()
        };
        assert!(count(class_color(0)) > 200);
        assert!(count(class_color(1)) > 200);
    }

    #[test]
    fn log_scale_skips_non_positive_and_errors_when_nothing_is_left() {
        let x = [0.0, 1.0, 2.0];
        let ok = [Series {
            name: "a",
            x: &x,
            y: &[1.0, 0.0, 0.1],
        }];
        assert!(line_plot(&plot(&ok, true), (400, 300)).is_ok());
        let bad = [Series {
            name: "a",
            x: &x,
            y: &[0.0, -1.0, 0.0],
        }];
        assert!(line_plot(&plot(&bad, true), (400, 300)).is_err());
        assert!(line_plot(&plot(&bad, false), (400, 300)).is_ok());
    }

    #[test]
    fn bad_series_are_errors_naming_them() {
        let e = line_plot(&plot(&[], false), (400, 300)).unwrap_err();
        assert!(e.to_string().contains("series"), "{e}");
        let s = [Series {
            name: "acc",
            x: &[0.0, 1.0],
            y: &[0.5],
        }];
        let e = line_plot(&plot(&s, false), (400, 300)).unwrap_err();
        assert!(e.to_string().contains("series[\"acc\"].y"), "{e}");
        let s = [Series {
            name: "acc",
            x: &[0.0, 1.0],
            y: &[0.5, f64::NAN],
        }];
        let e = line_plot(&plot(&s, false), (400, 300)).unwrap_err();
        assert!(e.to_string().contains("index 1"), "{e}");
        let s = [Series {
            name: "acc",
            x: &[],
            y: &[],
        }];
        assert!(line_plot(&plot(&s, false), (400, 300)).is_err());
    }

    #[test]
    fn extreme_but_finite_values_do_not_panic() {
        let s = [Series {
            name: "a",
            x: &[0.0, 1e308],
            y: &[1e308, -1e308],
        }];
        assert!(line_plot(&plot(&s, false), (400, 300)).is_ok());
        let s = [Series {
            name: "a",
            x: &[0.0, 1.0],
            y: &[5e-324, 1e308],
        }];
        assert!(line_plot(&plot(&s, true), (400, 300)).is_ok());
    }

    #[test]
    fn a_single_point_or_constant_series_still_plots() {
        let s = [Series {
            name: "a",
            x: &[3.0],
            y: &[2.0],
        }];
        assert!(line_plot(&plot(&s, false), (400, 300)).is_ok());
        assert!(line_plot(&plot(&s, true), (400, 300)).is_ok());
        let s = [Series {
            name: "a",
            x: &[0.0, 1.0],
            y: &[0.0, 0.0],
        }];
        assert!(line_plot(&plot(&s, false), (400, 300)).is_ok());
    }
}

//! Grouped bar charts with error bars: a paper table's rows as groups, each method's number
//! (ours, and the paper's beside it in a lighter shade) as one bar per group.

use crate::axes::{Axes, AxisRange, Labels};
use crate::error::{check_finite, VizError};
use crate::image::{Rgb, Rgb8Image};
use crate::palette::{class_color, lighten, AXIS, TEXT, WHITE};
use crate::raster::{fill_rect, Rect};
use crate::text::{self, HAlign, VAlign};

/// One bar of every group: its legend entry and colour.
#[derive(Clone, Copy, Debug)]
pub struct BarSeries<'a> {
    /// Legend entry.
    pub name: &'a str,
    /// Colour index ([`class_color`]); two series may share it, e.g. ours and the paper's.
    pub color: usize,
    /// Drawn in a lighter shade of its colour (the paper's numbers beside ours).
    pub light: bool,
}

/// A grouped bar chart. `values[g · series.len() + s]` is the bar of series `s` in group `g`:
/// `(height, error)` with a whisker of ± `error`, or `None` for a bar not available (left
/// as a gap, so a missing number is never mistaken for zero).
#[derive(Clone, Copy, Debug)]
pub struct BarChart<'a> {
    /// Text above the plot (may be empty).
    pub title: &'a str,
    /// Label along the vertical axis (may be empty).
    pub y_label: &'a str,
    /// The bars of each group, left to right.
    pub series: &'a [BarSeries<'a>],
    /// Group labels under the axis, left to right.
    pub groups: &'a [&'a str],
    /// Heights and error half-widths, group-major.
    pub values: &'a [Option<(f64, f64)>],
}

/// Renders `chart` at `size` pixels. The vertical axis starts at 0 and covers the tallest
/// bar with its whisker plus 5 %; bars must be ≥ 0.
///
/// Errors if there is no series or group, `values` does not have one entry per bar, a value
/// is NaN, infinite or negative, or an error is negative.
pub fn bar_chart(chart: &BarChart<'_>, size: (u32, u32)) -> Result<Rgb8Image, VizError> {
    let (ns, ng) = (chart.series.len(), chart.groups.len());
    if ns == 0 || ng == 0 {
        return Err(VizError::empty(
            if ns == 0 { "series" } else { "groups" },
            "a bar chart needs at least one series and one group",
        ));
    }
    if chart.values.len() != ns * ng {
        return Err(VizError::shape(
            "values",
            format!("{} entries ({ng} groups × {ns} series)", ns * ng),
            format!("{} entries", chart.values.len()),
        ));
    }
    let present: Vec<(f64, f64)> = chart.values.iter().flatten().copied().collect();
    check_finite(
        || "values".to_string(),
        present.iter().flat_map(|&(v, e)| [v, e]),
    )?;
    if let Some((v, e)) = present.iter().find(|(v, e)| *v < 0.0 || *e < 0.0) {
        return Err(VizError::invalid(
            "values",
            format!("bars and errors must be ≥ 0, got {v} ± {e}"),
        ));
    }
    let top = present
        .iter()
        .map(|(v, e)| v + e)
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.05;
    let labels = Labels {
        title: chart.title,
        x_label: "",
        y_label: chart.y_label,
    };
    let x = AxisRange {
        lo: 0.0,
        hi: ng as f64,
        log: false,
    };
    let y = AxisRange {
        lo: 0.0,
        hi: top,
        log: false,
    };
    let mut axes = Axes::layout(size, x, y, &labels)?.without_x_ticks();
    // Headroom for the legend above the tallest bar, so no bar hides behind it.
    let legend_h = Legend::of(&axes, chart).height();
    let share = legend_h as f64 / axes.area.height().max(1) as f64;
    if share < 0.7 {
        let y = AxisRange {
            hi: top / (1.0 - share),
            ..y
        };
        axes = Axes::layout(size, x, y, &labels)?.without_x_ticks();
    }
    let mut img = axes.background()?;
    let s = axes.scale;
    let color = |series: &BarSeries<'_>| -> Rgb {
        let c = class_color(series.color);
        if series.light {
            lighten(c, 0.55)
        } else {
            c
        }
    };
    // Each group spans one unit; its bars fill the middle 80 %.
    let bar_w = 0.8 / ns as f64;
    let zero = axes.py(0.0).round() as i64;
    for g in 0..ng {
        for (i, series) in chart.series.iter().enumerate() {
            let Some((v, e)) = chart.values[g * ns + i] else {
                continue;
            };
            let left = g as f64 + 0.1 + i as f64 * bar_w;
            let (x0, x1) = (axes.px(left), axes.px(left + bar_w));
            let bar = Rect {
                x0: x0.round() as i64 + 1,
                x1: (x1.round() as i64 - 1).max(x0.round() as i64 + 2),
                y0: axes.py(v).round() as i64,
                y1: zero,
            };
            fill_rect(&mut img, bar, color(series), 1.0);
            if e > 0.0 {
                let mid = ((x0 + x1) / 2.0).round() as i64;
                let (hi, lo) = (
                    axes.py((v + e).min(top)).round() as i64,
                    axes.py((v - e).max(0.0)).round() as i64,
                );
                let half = ((x1 - x0) / 4.0).round().max(1.0) as i64;
                let w = s.round().max(1.0) as i64;
                fill_rect(
                    &mut img,
                    Rect {
                        x0: mid,
                        x1: mid + w,
                        y0: hi,
                        y1: lo,
                    },
                    AXIS,
                    1.0,
                );
                for row in [hi, lo] {
                    let r = Rect {
                        x0: mid - half,
                        x1: mid + half + w,
                        y0: row,
                        y1: row + w,
                    };
                    fill_rect(&mut img, r, AXIS, 1.0);
                }
            }
        }
        let label_y = (axes.area.y1 + 1) as f32 + 6.0 * s;
        text::draw(
            &mut img,
            chart.groups[g],
            12.0 * s,
            (axes.px(g as f64 + 0.5), label_y),
            (HAlign::Center, VAlign::Top),
            TEXT,
        );
    }
    draw_legend(&mut img, &axes, chart, &color);
    axes.furniture(&mut img, &labels);
    Ok(img)
}

/// The legend's measures, in pixels, at the axes' scale.
struct Legend {
    /// Text size.
    px: f32,
    /// Height of one entry.
    row_h: f32,
    /// Padding inside the box.
    pad: f32,
    /// Side of a colour swatch.
    swatch: f32,
    /// Gap between the box and the plot's frame.
    inset: i64,
    /// The box.
    box_w: i64,
    box_h: i64,
}

impl Legend {
    fn of(axes: &Axes, chart: &BarChart<'_>) -> Self {
        let s = axes.scale;
        let px = 12.0 * s;
        let (_, text_h) = text::measure("Ag", px);
        let row_h = text_h + 3.0 * s;
        let (pad, swatch) = (6.0 * s, 12.0 * s);
        let names_w = chart
            .series
            .iter()
            .map(|se| text::measure(se.name, px).0)
            .fold(0.0, f32::max);
        Self {
            px,
            row_h,
            pad,
            swatch,
            inset: (6.0 * s).round() as i64,
            box_w: (2.0 * pad + swatch + 6.0 * s + names_w).ceil() as i64,
            box_h: (2.0 * pad + row_h * chart.series.len() as f32).ceil() as i64,
        }
    }

    /// Height the legend takes from the top of the plot, inset included.
    fn height(&self) -> i64 {
        self.box_h + 2 * self.inset
    }
}

/// The legend, in the top corner above the lower bars.
fn draw_legend(
    img: &mut Rgb8Image,
    axes: &Axes,
    chart: &BarChart<'_>,
    color: &dyn Fn(&BarSeries<'_>) -> Rgb,
) {
    let s = axes.scale;
    let Legend {
        px,
        row_h,
        pad,
        swatch,
        inset,
        box_w,
        box_h,
    } = Legend::of(axes, chart);
    let a = axes.area;
    if box_w + 2 * inset > a.width() || box_h + 2 * inset > a.height() {
        return;
    }
    // The corner whose groups have the lower bars.
    let ns = chart.series.len();
    let tallest = |groups: std::ops::Range<usize>| {
        groups
            .flat_map(|g| chart.values[g * ns..(g + 1) * ns].iter().flatten())
            .map(|(v, e)| v + e)
            .fold(0.0, f64::max)
    };
    let ng = chart.groups.len();
    let half = ng.div_ceil(2);
    let x0 = if tallest(0..half) <= tallest(ng - half..ng) {
        a.x0 + inset
    } else {
        a.x1 - inset - box_w
    };
    let y0 = a.y0 + inset;
    let frame = Rect {
        x0,
        x1: x0 + box_w,
        y0,
        y1: y0 + box_h,
    };
    fill_rect(img, frame, WHITE, 0.9);
    for (i, series) in chart.series.iter().enumerate() {
        let row_top = y0 as f32 + pad + i as f32 * row_h;
        let sx = x0 as f32 + pad;
        let sy = row_top + (row_h - swatch) / 2.0;
        let sw = Rect {
            x0: sx.round() as i64,
            x1: (sx + swatch).round() as i64,
            y0: sy.round() as i64,
            y1: (sy + swatch).round() as i64,
        };
        fill_rect(img, sw, color(series), 1.0);
        text::draw(
            img,
            series.name,
            px,
            (sx + swatch + 6.0 * s, row_top + row_h / 2.0),
            (HAlign::Left, VAlign::Middle),
            TEXT,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart<'a>(values: &'a [Option<(f64, f64)>], series: &'a [BarSeries<'a>]) -> BarChart<'a> {
        BarChart {
            title: "Table",
            y_label: "accuracy (%)",
            series,
            groups: &["M→F k=1", "M→U k=5"],
            values,
        }
    }

    const SERIES: [BarSeries<'static>; 2] = [
        BarSeries {
            name: "ours",
            color: 0,
            light: false,
        },
        BarSeries {
            name: "paper",
            color: 0,
            light: true,
        },
    ];

    #[test]
    fn bars_are_drawn_in_their_colours_and_a_missing_bar_is_a_gap() {
        let values = [
            Some((40.0, 5.0)),
            Some((26.0, 0.0)),
            None,
            Some((73.0, 1.0)),
        ];
        let img = bar_chart(&chart(&values, &SERIES), (640, 400)).unwrap();
        let count = |c: Rgb| {
            (0..img.height())
                .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
                .filter(|&(x, y)| img.pixel(x, y) == Some(c))
                .count()
        };
        let dark = count(class_color(0));
        let light = count(lighten(class_color(0), 0.55));
        assert!(dark > 500, "one dark bar: {dark} px");
        // Two light bars (26 and 73) against one dark bar (40, minus its whisker).
        assert!(light > dark, "light {light} px, dark {dark} px");
    }

    #[test]
    fn bad_values_are_refused_naming_the_argument() {
        let short = [Some((1.0, 0.0))];
        let err = bar_chart(&chart(&short, &SERIES), (640, 400)).unwrap_err();
        assert!(err.to_string().contains("values"), "{err}");
        let negative = [Some((-1.0, 0.0)), None, None, None];
        assert!(bar_chart(&chart(&negative, &SERIES), (640, 400)).is_err());
        let nan = [Some((f64::NAN, 0.0)), None, None, None];
        assert!(bar_chart(&chart(&nan, &SERIES), (640, 400)).is_err());
    }
}

//! The furniture shared by scatter frames and line plots: layout of the plot area inside the
//! picture, the data → pixel map, grid, frame, ticks, tick labels, axis labels and title.
//!
//! The layout depends only on the picture size, the axis ranges and the label *texts* that do not
//! change between frames (ticks, axis labels) — never on the data or the title's length — so
//! successive frames of a flow have the plot area at exactly the same pixels and a GIF does not
//! jitter.

use crate::error::VizError;
use crate::image::Rgb8Image;
use crate::palette::{AXIS, GRID, MINOR_GRID, TEXT};
use crate::raster::{fill_rect, Rect};
use crate::text::{self, HAlign, VAlign};
use crate::ticks::{self, Tick};

/// A data range on one axis, linear or base-10 logarithmic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct AxisRange {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
}

impl AxisRange {
    /// Position of `v` along the axis as a fraction: 0 at `lo`, 1 at `hi`.
    fn fraction(&self, v: f64) -> f64 {
        if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn ticks(&self, target: usize) -> Vec<Tick> {
        if self.log {
            ticks::log10(self.lo, self.hi, target)
        } else {
            ticks::linear(self.lo, self.hi, target)
        }
    }
}

/// Texts around the plot area.
pub(crate) struct Labels<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
}

/// A laid-out pair of axes inside a picture of a given size.
pub(crate) struct Axes {
    /// The plot area in pixels; data outside it is clipped.
    pub area: Rect,
    pub x: AxisRange,
    pub y: AxisRange,
    x_ticks: Vec<Tick>,
    y_ticks: Vec<Tick>,
    /// Size factor relative to a 480-pixel picture, so fonts and strokes grow with the picture.
    pub scale: f32,
    width: u32,
    height: u32,
}

/// Font sizes in pixels at a 480-pixel picture.
const TITLE_PX: f32 = 16.0;
const TICK_PX: f32 = 12.0;
const LABEL_PX: f32 = 13.0;

impl Axes {
    /// Lays out axes for `x` × `y` in a `size` picture with the given labels.
    ///
    /// Errors if the picture is too small to leave a plot area after the margins.
    pub fn layout(
        size: (u32, u32),
        x: AxisRange,
        y: AxisRange,
        labels: &Labels<'_>,
    ) -> Result<Axes, VizError> {
        let (w, h) = size;
        crate::image::check_size("size", w, h)?;
        // Never below 1: smaller text than 12 px stops being legible, whatever the picture size.
        let s = (w.min(h) as f32 / 480.0).clamp(1.0, 3.0);
        let tick_len = 4.0 * s;
        let (_, tick_h) = text::measure("0", TICK_PX * s);
        let (_, label_h) = text::measure("Ag", LABEL_PX * s);
        let (_, title_h) = text::measure("Ag", TITLE_PX * s);

        let top = if labels.title.is_empty() {
            12.0 * s
        } else {
            8.0 * s + title_h + 6.0 * s
        };
        let mut bottom = tick_len + 2.0 * s + tick_h + 6.0 * s;
        if !labels.x_label.is_empty() {
            bottom += label_h + 2.0 * s;
        }
        let plot_h = h as f32 - top - bottom;
        let too_small = || {
            VizError::invalid(
                "size",
                format!("{w}×{h} leaves no room for a plot inside the axes; use at least 160×160"),
            )
        };
        if plot_h < 32.0 {
            return Err(too_small());
        }
        let y_target = ((plot_h / (50.0 * s)) as usize).clamp(2, 8);
        let y_ticks = y.ticks(y_target);
        let y_label_w = y_ticks
            .iter()
            .map(|t| text::measure(&t.label, TICK_PX * s).0)
            .fold(0.0, f32::max);
        let mut left = 8.0 * s + y_label_w + 3.0 * s + tick_len;
        if !labels.y_label.is_empty() {
            left += label_h + 6.0 * s;
        }
        // Room on the right for half of a label on the last x tick.
        let right = 18.0 * s;
        let plot_w = w as f32 - left - right;
        if plot_w < 32.0 {
            return Err(too_small());
        }
        // Start at about one x tick per 65 px and thin until the labels fit without touching.
        let mut x_target = ((plot_w / (65.0 * s)) as usize).clamp(2, 10);
        let x_ticks = loop {
            let t = x.ticks(x_target);
            let widest = t
                .iter()
                .map(|t| text::measure(&t.label, TICK_PX * s).0)
                .fold(0.0, f32::max);
            let labelled = t.iter().filter(|t| !t.label.is_empty()).count() as f32;
            if x_target <= 2 || (widest + 10.0 * s) * labelled <= plot_w {
                break t;
            }
            x_target -= 1;
        };
        let area = Rect {
            x0: left.round() as i64,
            y0: top.round() as i64,
            x1: (w as f32 - right).round() as i64,
            y1: (h as f32 - bottom).round() as i64,
        };
        Ok(Axes {
            area,
            x,
            y,
            x_ticks,
            y_ticks,
            scale: s,
            width: w,
            height: h,
        })
    }

    /// The same axes without ticks, grid or labels on the horizontal axis, for categories
    /// that the caller labels itself (bar groups). The room under the axis stays reserved.
    pub fn without_x_ticks(mut self) -> Self {
        self.x_ticks.clear();
        self
    }

    /// Pixel column (as a float; pixel i spans [i, i+1)) of data abscissa `v`.
    pub fn px(&self, v: f64) -> f32 {
        self.area.x0 as f32 + (self.x.fraction(v) * self.area.width() as f64) as f32
    }

    /// Pixel row (float, 0 at the top) of data ordinate `v`.
    pub fn py(&self, v: f64) -> f32 {
        self.area.y1 as f32 - (self.y.fraction(v) * self.area.height() as f64) as f32
    }

    /// A white picture of the laid-out size with the grid drawn: call before drawing data.
    pub fn background(&self) -> Result<Rgb8Image, VizError> {
        let mut img = Rgb8Image::filled(self.width, self.height, crate::palette::WHITE)?;
        for t in &self.x_ticks {
            let c = self.tick_column(t.value);
            let color = if t.major { GRID } else { MINOR_GRID };
            fill_rect(
                &mut img,
                Rect {
                    x0: c,
                    x1: c + 1,
                    ..self.area
                },
                color,
                1.0,
            );
        }
        for t in &self.y_ticks {
            let r = self.tick_row(t.value);
            let color = if t.major { GRID } else { MINOR_GRID };
            fill_rect(
                &mut img,
                Rect {
                    y0: r,
                    y1: r + 1,
                    ..self.area
                },
                color,
                1.0,
            );
        }
        Ok(img)
    }

    /// Frame, ticks, tick labels, axis labels and title: call after drawing data, so that data
    /// never hides them.
    pub fn furniture(&self, img: &mut Rgb8Image, labels: &Labels<'_>) {
        let s = self.scale;
        let a = self.area;
        let line = |img: &mut Rgb8Image, r: Rect| fill_rect(img, r, AXIS, 1.0);
        line(
            img,
            Rect {
                x0: a.x0 - 1,
                x1: a.x1 + 1,
                y0: a.y0 - 1,
                y1: a.y0,
            },
        );
        line(
            img,
            Rect {
                x0: a.x0 - 1,
                x1: a.x1 + 1,
                y0: a.y1,
                y1: a.y1 + 1,
            },
        );
        line(
            img,
            Rect {
                x0: a.x0 - 1,
                x1: a.x0,
                y0: a.y0 - 1,
                y1: a.y1 + 1,
            },
        );
        line(
            img,
            Rect {
                x0: a.x1,
                x1: a.x1 + 1,
                y0: a.y0 - 1,
                y1: a.y1 + 1,
            },
        );

        let major_len = (4.0 * s).round() as i64;
        let minor_len = (2.0 * s).round() as i64;
        let tick_px = TICK_PX * s;
        for t in &self.x_ticks {
            let c = self.tick_column(t.value);
            let len = if t.major { major_len } else { minor_len };
            line(
                img,
                Rect {
                    x0: c,
                    x1: c + 1,
                    y0: a.y1 + 1,
                    y1: a.y1 + 1 + len,
                },
            );
            if !t.label.is_empty() {
                let y = (a.y1 + 1 + major_len) as f32 + 2.0 * s;
                text::draw(
                    img,
                    &t.label,
                    tick_px,
                    (c as f32 + 0.5, y),
                    (HAlign::Center, VAlign::Top),
                    TEXT,
                );
            }
        }
        for t in &self.y_ticks {
            let r = self.tick_row(t.value);
            let len = if t.major { major_len } else { minor_len };
            line(
                img,
                Rect {
                    x0: a.x0 - 1 - len,
                    x1: a.x0 - 1,
                    y0: r,
                    y1: r + 1,
                },
            );
            if !t.label.is_empty() {
                let x = (a.x0 - 1 - major_len) as f32 - 3.0 * s;
                text::draw(
                    img,
                    &t.label,
                    tick_px,
                    (x, r as f32 + 0.5),
                    (HAlign::Right, VAlign::Middle),
                    TEXT,
                );
            }
        }
        let mid_x = (a.x0 + a.x1) as f32 / 2.0;
        if !labels.title.is_empty() {
            // Centred on the plot, so the room is twice the shorter side of its centre.
            let room = 2.0 * mid_x.min(self.width as f32 - mid_x) - 8.0 * s;
            text::draw(
                img,
                labels.title,
                fitted_px(labels.title, TITLE_PX * s, room),
                (mid_x, 8.0 * s),
                (HAlign::Center, VAlign::Top),
                TEXT,
            );
        }
        if !labels.x_label.is_empty() {
            let y = self.height as f32 - 4.0 * s;
            text::draw(
                img,
                labels.x_label,
                LABEL_PX * s,
                (mid_x, y),
                (HAlign::Center, VAlign::Bottom),
                TEXT,
            );
        }
        if !labels.y_label.is_empty() {
            let (_, label_h) = text::measure("Ag", LABEL_PX * s);
            let x = 6.0 * s + label_h / 2.0;
            text::draw_vertical(
                img,
                labels.y_label,
                LABEL_PX * s,
                x,
                (a.y0 + a.y1) as f32 / 2.0,
                TEXT,
            );
        }
    }

    /// The pixel column a vertical tick or grid line at `v` occupies, kept inside the area.
    fn tick_column(&self, v: f64) -> i64 {
        (self.px(v).floor() as i64).clamp(self.area.x0, self.area.x1 - 1)
    }

    fn tick_row(&self, v: f64) -> i64 {
        (self.py(v).floor() as i64).clamp(self.area.y0, self.area.y1 - 1)
    }
}

/// The font size at most `px` at which `title` is at most `room` pixels wide: a long title
/// (a paper table's) is drawn smaller, not cut at the picture's edge. Its band keeps the
/// height of the full size, so the layout never depends on the title.
fn fitted_px(title: &str, px: f32, room: f32) -> f32 {
    let (width, _) = text::measure(title, px);
    if width <= room || width <= 0.0 {
        px
    } else {
        // Text width scales with the size; 0.98 absorbs the rounding of glyph advances.
        px * 0.98 * room.max(0.0) / width
    }
}

#[cfg(test)]
mod title_tests {
    use super::*;

    #[test]
    fn a_long_title_is_drawn_small_enough_to_fit_and_a_short_one_as_it_is() {
        let long =
            "Alvarez-Melis & Fusi (2021), Table 1 — a frozen MNIST classifier's accuracy (%) \
                    on flowed datasets — profile paper";
        let room = 600.0;
        assert!(
            text::measure(long, TITLE_PX).0 > room,
            "the test needs a title too wide"
        );
        let px = fitted_px(long, TITLE_PX, room);
        assert!(px < TITLE_PX);
        assert!(text::measure(long, px).0 <= room);
        assert_eq!(fitted_px("step 10", TITLE_PX, room), TITLE_PX);
    }
}

//! Anti-aliased drawing on an [`Rgb8Image`]: rectangles, discs and thick polylines.
//!
//! Coverage is computed analytically from the distance of each pixel centre to the shape
//! (a one-pixel linear ramp), which is enough for markers and lines at plot sizes and keeps
//! this crate free of a vector-graphics dependency.

use crate::image::{Rgb, Rgb8Image};

/// A pixel rectangle `[x0, x1) × [y0, y1)`, used for clipping to the plot area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rect {
    pub x0: i64,
    pub y0: i64,
    pub x1: i64,
    pub y1: i64,
}

impl Rect {
    pub fn width(&self) -> i64 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> i64 {
        self.y1 - self.y0
    }
}

/// Fills `rect` with `color` at opacity `alpha`.
pub(crate) fn fill_rect(img: &mut Rgb8Image, rect: Rect, color: Rgb, alpha: f32) {
    for y in rect.y0..rect.y1 {
        for x in rect.x0..rect.x1 {
            img.blend(x, y, color, alpha);
        }
    }
}

/// Draws a disc of radius `r` centred at (`cx`, `cy`) in pixel coordinates (pixel (i, j) spans
/// [i, i+1) × [j, j+1)), clipped to `clip`.
pub(crate) fn fill_disc(
    img: &mut Rgb8Image,
    cx: f32,
    cy: f32,
    r: f32,
    color: Rgb,
    alpha: f32,
    clip: Rect,
) {
    let x_lo = ((cx - r - 1.0).floor() as i64).max(clip.x0);
    let x_hi = ((cx + r + 1.0).ceil() as i64).min(clip.x1);
    let y_lo = ((cy - r - 1.0).floor() as i64).max(clip.y0);
    let y_hi = ((cy + r + 1.0).ceil() as i64).min(clip.y1);
    for y in y_lo..y_hi {
        for x in x_lo..x_hi {
            let dx = x as f32 + 0.5 - cx;
            let dy = y as f32 + 0.5 - cy;
            let d = (dx * dx + dy * dy).sqrt();
            let coverage = (r + 0.5 - d).clamp(0.0, 1.0);
            if coverage > 0.0 {
                img.blend(x, y, color, alpha * coverage);
            }
        }
    }
}

/// Strokes a polyline of the given `width`, clipped to `clip`.
///
/// Coverage is first accumulated as the maximum over segments in a mask and composited once, so
/// joints between segments are not painted twice (which would show as dark beads on the line).
pub(crate) fn stroke_polyline(
    img: &mut Rgb8Image,
    points: &[(f32, f32)],
    width: f32,
    color: Rgb,
    clip: Rect,
) {
    if clip.width() <= 0 || clip.height() <= 0 || points.is_empty() {
        return;
    }
    let mw = clip.width() as usize;
    let mut mask = vec![0f32; mw * clip.height() as usize];
    let half = width / 2.0;
    let segments: Vec<((f32, f32), (f32, f32))> = if points.len() == 1 {
        vec![(points[0], points[0])]
    } else {
        points.windows(2).map(|w| (w[0], w[1])).collect()
    };
    for (a, b) in segments {
        let x_lo = ((a.0.min(b.0) - half - 1.0).floor() as i64).max(clip.x0);
        let x_hi = ((a.0.max(b.0) + half + 1.0).ceil() as i64).min(clip.x1);
        let y_lo = ((a.1.min(b.1) - half - 1.0).floor() as i64).max(clip.y0);
        let y_hi = ((a.1.max(b.1) + half + 1.0).ceil() as i64).min(clip.y1);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let len2 = dx * dx + dy * dy;
        for y in y_lo..y_hi {
            for x in x_lo..x_hi {
                let px = x as f32 + 0.5;
                let py = y as f32 + 0.5;
                let t = if len2 > 0.0 {
                    (((px - a.0) * dx + (py - a.1) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let ex = px - (a.0 + t * dx);
                let ey = py - (a.1 + t * dy);
                let coverage = (half + 0.5 - (ex * ex + ey * ey).sqrt()).clamp(0.0, 1.0);
                let m = &mut mask[(y - clip.y0) as usize * mw + (x - clip.x0) as usize];
                if coverage > *m {
                    *m = coverage;
                }
            }
        }
    }
    for (i, &m) in mask.iter().enumerate() {
        if m > 0.0 {
            let x = clip.x0 + (i % mw) as i64;
            let y = clip.y0 + (i / mw) as i64;
            img.blend(x, y, color, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(img: &Rgb8Image) -> Rect {
        Rect {
            x0: 0,
            y0: 0,
            x1: img.width() as i64,
            y1: img.height() as i64,
        }
    }

    #[test]
    fn disc_covers_its_centre_pixel_and_not_far_pixels() {
        let mut img = Rgb8Image::filled(20, 20, [255; 3]).unwrap();
        let clip = full(&img);
        fill_disc(&mut img, 10.5, 10.5, 3.0, [255, 0, 0], 1.0, clip);
        assert_eq!(img.pixel(10, 10), Some([255, 0, 0]));
        assert_eq!(img.pixel(10, 15), Some([255; 3]));
    }

    #[test]
    fn horizontal_line_is_solid_in_the_middle() {
        let mut img = Rgb8Image::filled(30, 10, [255; 3]).unwrap();
        let clip = full(&img);
        stroke_polyline(
            &mut img,
            &[(2.0, 5.0), (15.0, 5.0), (28.0, 5.0)],
            2.0,
            [0; 3],
            clip,
        );
        assert_eq!(img.pixel(15, 4), Some([0; 3]));
        assert_eq!(img.pixel(15, 5), Some([0; 3]));
        assert_eq!(img.pixel(15, 8), Some([255; 3]));
    }

    #[test]
    fn drawing_is_clipped() {
        let mut img = Rgb8Image::filled(10, 10, [255; 3]).unwrap();
        let clip = Rect {
            x0: 0,
            y0: 0,
            x1: 5,
            y1: 10,
        };
        fill_disc(&mut img, 5.0, 5.0, 4.0, [0; 3], 1.0, clip);
        assert_eq!(img.pixel(6, 5), Some([255; 3]));
        assert_eq!(img.pixel(4, 5), Some([0; 3]));
    }
}

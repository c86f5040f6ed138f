//! Text: Noto Sans Regular, embedded in the binary and rasterised with `ab_glyph`.
//!
//! Embedding the font (from the `notosans` crate) rather than asking the system means pictures
//! look the same on every machine and nothing like fontconfig or freetype is needed to build or
//! run. Noto Sans covers the characters titles use here (—, ×, ², superscript minus, Greek).

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, Glyph, GlyphId, PxScale, ScaleFont};

use crate::image::{Rgb, Rgb8Image};

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| {
        // The bytes are a compile-time constant checked by a test below, so this cannot fail
        // on user data.
        FontRef::try_from_slice(notosans::REGULAR_TTF).expect("embedded Noto Sans parses")
    })
}

/// Horizontal placement of a text box relative to the anchor point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HAlign {
    Left,
    Center,
    Right,
}

/// Vertical placement of a text box (ascent to descent) relative to the anchor point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VAlign {
    Top,
    Middle,
    Bottom,
}

/// Marks the start of a superscript in a label: text after it is drawn smaller and raised
/// (tick labels such as 10⁻³; the font has no superscript minus, so exponents are typeset).
/// A control character, so it cannot clash with anything a caller writes in a title.
pub(crate) const SUP: char = '\u{1}';

/// Relative size and rise (in units of `px`) of superscript text.
const SUP_SIZE: f32 = 0.72;
const SUP_RISE: f32 = 0.38;

/// Positions the glyphs of `text` at size `px` with the baseline at `ascent` below y = 0 and
/// the pen starting at x = 0; returns them and the advance width.
fn layout(text: &str, px: f32) -> (Vec<Glyph>, f32) {
    let f = font();
    let ascent = f.as_scaled(PxScale::from(px)).ascent();
    let mut glyphs = Vec::new();
    let mut x = 0.0;
    for (part, segment) in text.split(SUP).enumerate() {
        let (size, rise) = if part == 0 {
            (px, 0.0)
        } else {
            (px * SUP_SIZE, px * SUP_RISE)
        };
        let scale = PxScale::from(size);
        let sf = f.as_scaled(scale);
        let mut prev: Option<GlyphId> = None;
        for c in segment.chars() {
            let id = sf.glyph_id(c);
            if let Some(p) = prev {
                x += sf.kern(p, id);
            }
            glyphs.push(id.with_scale_and_position(scale, point(x, ascent - rise)));
            x += sf.h_advance(id);
            prev = Some(id);
        }
    }
    (glyphs, x)
}

/// Width and height in pixels of `text` at size `px` (height = ascent − descent).
pub(crate) fn measure(text: &str, px: f32) -> (f32, f32) {
    let sf = font().as_scaled(PxScale::from(px));
    (layout(text, px).1, sf.ascent() - sf.descent())
}

/// Rasterises `text` into a coverage mask (`width × height`, row-major, values in [0, 1]),
/// with one pixel of border so anti-aliased edges are kept.
fn coverage(text: &str, px: f32) -> (usize, usize, Vec<f32>) {
    let f = font();
    let (w, h) = measure(text, px);
    let (mw, mh) = (w.ceil() as usize + 2, h.ceil() as usize + 2);
    let mut mask = vec![0f32; mw * mh];
    for glyph in layout(text, px).0 {
        if let Some(outline) = f.outline_glyph(glyph) {
            let b = outline.px_bounds();
            outline.draw(|gx, gy, c| {
                let tx = 1 + b.min.x as i64 + gx as i64;
                let ty = 1 + b.min.y as i64 + gy as i64;
                if tx >= 0 && ty >= 0 && (tx as usize) < mw && (ty as usize) < mh {
                    let m = &mut mask[ty as usize * mw + tx as usize];
                    *m = (*m + c).min(1.0);
                }
            });
        }
    }
    (mw, mh, mask)
}

/// Draws `text` at size `px` so that its box sits at (`x`, `y`) according to the alignments.
/// Returns the drawn box as (left, top, width, height).
pub(crate) fn draw(
    img: &mut Rgb8Image,
    text: &str,
    px: f32,
    (x, y): (f32, f32),
    (halign, valign): (HAlign, VAlign),
    color: Rgb,
) -> (f32, f32, f32, f32) {
    let (mw, mh, mask) = coverage(text, px);
    let (w, h) = (mw as f32 - 2.0, mh as f32 - 2.0);
    let left = match halign {
        HAlign::Left => x,
        HAlign::Center => x - w / 2.0,
        HAlign::Right => x - w,
    };
    let top = match valign {
        VAlign::Top => y,
        VAlign::Middle => y - h / 2.0,
        VAlign::Bottom => y - h,
    };
    // Snap to whole pixels: glyph stems then stay sharp instead of smeared over two columns.
    let (ox, oy) = (left.round() as i64 - 1, top.round() as i64 - 1);
    for (i, &c) in mask.iter().enumerate() {
        if c > 0.0 {
            img.blend(ox + (i % mw) as i64, oy + (i / mw) as i64, color, c);
        }
    }
    (left, top, w, h)
}

/// Draws `text` rotated a quarter turn anticlockwise (reading bottom to top, as a y-axis label),
/// centred on (`cx`, `cy`).
pub(crate) fn draw_vertical(
    img: &mut Rgb8Image,
    text: &str,
    px: f32,
    cx: f32,
    cy: f32,
    color: Rgb,
) {
    let (mw, mh, mask) = coverage(text, px);
    // Mask pixel (i, j) goes to (j, mw − 1 − i) in the rotated box of size mh × mw.
    let ox = (cx - mh as f32 / 2.0).round() as i64;
    let oy = (cy - mw as f32 / 2.0).round() as i64;
    for j in 0..mh {
        for i in 0..mw {
            let c = mask[j * mw + i];
            if c > 0.0 {
                img.blend(ox + j as i64, oy + (mw - 1 - i) as i64, color, c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_font_has_the_characters_titles_use() {
        let f = font();
        for c in "0123456789.-+eE — ×−σκτ abcxyzABC()".chars() {
            if c != ' ' {
                assert_ne!(f.glyph_id(c).0, 0, "missing glyph for {c:?}");
            }
        }
    }

    #[test]
    fn wider_text_measures_wider_and_bigger_text_taller() {
        let (w1, h1) = measure("loss", 12.0);
        let (w2, _) = measure("loss loss", 12.0);
        let (_, h3) = measure("loss", 24.0);
        assert!(w2 > w1 && w1 > 0.0);
        assert!(h3 > 1.9 * h1);
    }

    #[test]
    fn drawn_text_leaves_ink_inside_its_box_only() {
        let mut img = Rgb8Image::filled(100, 40, [255; 3]).unwrap();
        let (l, t, w, h) = draw(
            &mut img,
            "Hg 12",
            16.0,
            (50.0, 20.0),
            (HAlign::Center, VAlign::Middle),
            [0; 3],
        );
        let mut ink = 0;
        for y in 0..40 {
            for x in 0..100 {
                if img.pixel(x, y) != Some([255; 3]) {
                    ink += 1;
                    assert!(x as f32 >= l - 2.0 && x as f32 <= l + w + 2.0, "x {x}");
                    assert!(y as f32 >= t - 2.0 && y as f32 <= t + h + 2.0, "y {y}");
                }
            }
        }
        assert!(ink > 30);
    }
}

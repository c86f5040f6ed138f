//! Pictures made of pictures: grids of grayscale images and captioned side-by-side panels.

use crate::error::{check_finite, VizError};
use crate::image::{check_size, Rgb8Image};
use crate::palette::{TEXT, WHITE};
use crate::text::{self, HAlign, VAlign};

/// Colour of the one-pixel lines between grid cells (and of empty cells): a mid grey that shows
/// against both the black background and the white strokes of digit images.
pub const SEPARATOR: [u8; 3] = [128, 128, 128];

/// Tiles `count` grayscale images of `h × w` into a grid with `cols` columns and
/// `ceil(count / cols)` rows, each pixel upscaled to a `scale × scale` block, with a one-pixel
/// [`SEPARATOR`] line between cells and around the grid.
///
/// `images` is `count × h × w` values, image-major then row-major (the layout of an MNIST batch),
/// with 0 = black and 1 = white; values outside [0, 1] are clamped, because flowed images are
/// not constrained to the data range and should still be viewable. To show one row per class,
/// order images by class and set `cols` to the number per class. Cells past `count` in the last
/// row are filled with the separator colour.
///
/// The result is `cols·(w·scale + 1) + 1` wide and `rows·(h·scale + 1) + 1` tall.
///
/// Errors if `images.len() ≠ count·h·w`, a value is not finite, `count`, `h`, `w`, `cols` or
/// `scale` is 0, or the grid would be too large.
pub fn image_grid(
    images: &[f32],
    count: usize,
    h: usize,
    w: usize,
    cols: usize,
    scale: u32,
) -> Result<Rgb8Image, VizError> {
    for (name, v) in [("count", count), ("h", h), ("w", w), ("cols", cols)] {
        if v == 0 {
            return Err(VizError::invalid(name, "must be at least 1"));
        }
    }
    if scale == 0 {
        return Err(VizError::invalid("scale", "must be at least 1"));
    }
    let expected = count.checked_mul(h).and_then(|v| v.checked_mul(w));
    if expected != Some(images.len()) {
        return Err(VizError::shape(
            "images",
            format!("length count·h·w = {count}·{h}·{w}"),
            format!("length {}", images.len()),
        ));
    }
    check_finite(|| "images".to_string(), images.iter().map(|&v| v as f64))?;
    let cols = cols.min(count);
    let rows = count.div_ceil(cols);
    let scale = scale as usize;
    let too_big = || VizError::invalid("scale", "the grid would exceed the picture size limit");
    let cell_w = w.checked_mul(scale).ok_or_else(too_big)?;
    let cell_h = h.checked_mul(scale).ok_or_else(too_big)?;
    let width = cols.checked_mul(cell_w + 1).and_then(|v| v.checked_add(1));
    let height = rows.checked_mul(cell_h + 1).and_then(|v| v.checked_add(1));
    let (width, height) = match (width, height) {
        (Some(a), Some(b)) if a <= u32::MAX as usize && b <= u32::MAX as usize => (a, b),
        _ => return Err(too_big()),
    };
    let mut img = Rgb8Image::filled(width as u32, height as u32, SEPARATOR)?;
    for (k, image) in images.chunks_exact(h * w).enumerate() {
        let (r, c) = (k / cols, k % cols);
        let (ox, oy) = (1 + c * (cell_w + 1), 1 + r * (cell_h + 1));
        for (i, row) in image.chunks_exact(w).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (x, y) = (ox + j * scale + dx, oy + i * scale + dy);
                        img.set_pixel(x as i64, y as i64, [g, g, g]);
                    }
                }
            }
        }
    }
    Ok(img)
}

/// Captions are larger than plot titles (16 px) so they read as the panels' headings.
const CAPTION_PX: f32 = 19.0;
const GAP: u32 = 12;

/// Places `panels` left to right on white, each with its caption centred above it, e.g. the
/// same flow under three objectives. Panels of different heights are top-aligned under a common
/// caption row.
///
/// Errors if `panels` is empty or the result would be too large.
pub fn side_by_side(panels: &[(&str, &Rgb8Image)]) -> Result<Rgb8Image, VizError> {
    if panels.is_empty() {
        return Err(VizError::empty(
            "panels",
            "need at least one picture to compose",
        ));
    }
    let (_, caption_h) = text::measure("Ag", CAPTION_PX);
    let has_captions = panels.iter().any(|(c, _)| !c.is_empty());
    let caption_row = if has_captions {
        (caption_h + 10.0).ceil() as u64
    } else {
        0
    };
    let mut width = GAP as u64;
    let mut tallest = 0u64;
    for (caption, p) in panels {
        // A caption wider than its panel widens the slot so it is not cut or overlapping.
        let slot = (p.width() as u64).max(text::measure(caption, CAPTION_PX).0.ceil() as u64);
        width += slot + GAP as u64;
        tallest = tallest.max(p.height() as u64);
    }
    let height = GAP as u64 / 2 + caption_row + tallest + GAP as u64 / 2;
    if width > u32::MAX as u64 || height > u32::MAX as u64 {
        return Err(VizError::invalid(
            "panels",
            "the composed picture would be too large",
        ));
    }
    check_size("panels", width as u32, height as u32)?;
    let mut img = Rgb8Image::filled(width as u32, height as u32, WHITE)?;
    let mut x = GAP as u64;
    let top = GAP as u64 / 2;
    for (caption, p) in panels {
        let slot = (p.width() as u64).max(text::measure(caption, CAPTION_PX).0.ceil() as u64);
        let centre = x as f32 + slot as f32 / 2.0;
        if !caption.is_empty() {
            let at = (centre, top as f32 + 4.0);
            text::draw(
                &mut img,
                caption,
                CAPTION_PX,
                at,
                (HAlign::Center, VAlign::Top),
                TEXT,
            );
        }
        let px = x + (slot - p.width() as u64) / 2;
        img.blit(p, px as i64, (top + caption_row) as i64);
        x += slot + GAP as u64;
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_has_the_documented_size_and_pixels() {
        // Three 2×3 images; image k has value k/2 everywhere except its top-left pixel, 1.
        let (h, w, count) = (2, 3, 3);
        let mut images = Vec::new();
        for k in 0..count {
            for i in 0..h * w {
                images.push(if i == 0 { 1.0 } else { k as f32 / 2.0 });
            }
        }
        let img = image_grid(&images, count, h, w, 2, 2).unwrap();
        assert_eq!(img.width(), 2 * (3 * 2 + 1) + 1);
        assert_eq!(img.height(), 2 * (2 * 2 + 1) + 1);
        assert_eq!(img.pixel(0, 0), Some(SEPARATOR));
        // Image 0's top-left pixel is a 2×2 white block at (1, 1).
        assert_eq!(img.pixel(1, 1), Some([255; 3]));
        assert_eq!(img.pixel(2, 2), Some([255; 3]));
        assert_eq!(img.pixel(3, 1), Some([0; 3]));
        // Image 1 is in column 1: starts at x = 1 + 7; its body is 0.5 → 128.
        assert_eq!(img.pixel(8 + 2, 1), Some([128; 3]));
        assert_eq!(img.pixel(7, 1), Some(SEPARATOR));
        // Image 2 starts row 1 at y = 1 + 5; the empty cell after it is separator-coloured.
        assert_eq!(img.pixel(1 + 2, 6 + 1), Some([255; 3]));
        assert_eq!(img.pixel(8 + 2, 6 + 1), Some(SEPARATOR));
    }

    #[test]
    fn grid_clamps_and_rejects_bad_shapes() {
        let img = image_grid(&[-3.0, 7.0], 1, 1, 2, 1, 1).unwrap();
        assert_eq!(img.pixel(1, 1), Some([0; 3]));
        assert_eq!(img.pixel(2, 1), Some([255; 3]));
        let e = image_grid(&[0.0; 5], 2, 1, 2, 1, 1).unwrap_err();
        assert!(e.to_string().contains("images"), "{e}");
        assert!(image_grid(&[0.0, f32::NAN], 1, 1, 2, 1, 1).is_err());
        assert!(image_grid(&[0.0; 4], 1, 2, 2, 0, 1).is_err());
        assert!(image_grid(&[0.0; 4], 1, 2, 2, 1, 0).is_err());
        assert!(image_grid(&[0.0; 4], 1, 2, 2, 1, u32::MAX).is_err());
    }

    #[test]
    fn panels_are_placed_left_to_right_with_captions() {
        let red = Rgb8Image::filled(40, 30, [255, 0, 0]).unwrap();
        let blue = Rgb8Image::filled(50, 20, [0, 0, 255]).unwrap();
        let img = side_by_side(&[("SW-MMD", &red), ("OTDD", &blue)]).unwrap();
        assert!(img.width() >= 40 + 50 + 3 * GAP);
        let row = img.height() - GAP / 2 - 30 + 5;
        let xs: Vec<u32> = (0..img.width())
            .filter(|&x| img.pixel(x, row) == Some([255, 0, 0]))
            .collect();
        let bs: Vec<u32> = (0..img.width())
            .filter(|&x| img.pixel(x, row) == Some([0, 0, 255]))
            .collect();
        assert_eq!(xs.len(), 40);
        assert_eq!(bs.len(), 50);
        assert!(xs[39] < bs[0]);
        // Some dark caption ink above the panels.
        let ink = (0..GAP / 2 + 20)
            .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| img.pixel(x, y).unwrap()[0] < 100)
            .count();
        assert!(ink > 20);
        assert!(side_by_side(&[]).is_err());
    }
}

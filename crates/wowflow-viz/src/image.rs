//! The picture type every function here returns: 8-bit RGB, row-major, no alpha.
//!
//! Kept as a small owned type (rather than re-exporting `image::RgbImage`) so that this crate
//! needs no image-processing dependency and its invariant — `pixels.len() == 3·width·height` —
//! holds by construction: fields are private and every constructor checks it.

use crate::error::VizError;

/// An sRGB colour, one byte per channel.
pub type Rgb = [u8; 3];

/// Largest picture this crate will allocate (pixels). Guards against a typo in a size turning into
/// a multi-gigabyte allocation and an abort, which would be a panic on user data.
pub const MAX_PIXELS: u64 = 1 << 26;

/// An 8-bit RGB picture, row-major from the top-left corner, 3 bytes per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8Image {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Rgb8Image {
    /// A `width × height` picture filled with `color`.
    ///
    /// Errors if a side is 0 or the picture would exceed [`MAX_PIXELS`].
    pub fn filled(width: u32, height: u32, color: Rgb) -> Result<Self, VizError> {
        check_size("size", width, height)?;
        let n = width as usize * height as usize;
        let mut pixels = Vec::with_capacity(3 * n);
        for _ in 0..n {
            pixels.extend_from_slice(&color);
        }
        Ok(Rgb8Image {
            width,
            height,
            pixels,
        })
    }

    /// Wraps raw row-major RGB bytes; errors unless `pixels.len() == 3·width·height`.
    pub fn from_raw(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self, VizError> {
        check_size("size", width, height)?;
        let expected = 3 * width as usize * height as usize;
        if pixels.len() != expected {
            return Err(VizError::shape(
                "pixels",
                format!("length {expected} (3 × {width} × {height})"),
                format!("length {}", pixels.len()),
            ));
        }
        Ok(Rgb8Image {
            width,
            height,
            pixels,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Row-major RGB bytes, `3·width·height` of them.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Consumes the picture, returning its RGB bytes.
    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }

    /// The colour at column `x`, row `y` (0 at the top), or `None` outside the picture.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = 3 * (y as usize * self.width as usize + x as usize);
        Some([self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]])
    }

    /// Sets one pixel; coordinates outside the picture are ignored (drawing code clips this way).
    pub fn set_pixel(&mut self, x: i64, y: i64, color: Rgb) {
        self.blend(x, y, color, 1.0);
    }

    /// Mixes `color` into one pixel with opacity `alpha` in [0, 1] (source-over, in sRGB bytes:
    /// plain and fast, and what every plotting library does). Outside the picture: ignored.
    pub(crate) fn blend(&mut self, x: i64, y: i64, color: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 || alpha <= 0.0 {
            return;
        }
        let i = 3 * (y as usize * self.width as usize + x as usize);
        let a = alpha.min(1.0);
        for (dst, &src) in self.pixels[i..i + 3].iter_mut().zip(&color) {
            let old = *dst as f32;
            *dst = (old + (src as f32 - old) * a).round() as u8;
        }
    }

    /// Copies `src` with its top-left corner at (`x`, `y`), clipping what falls outside.
    pub(crate) fn blit(&mut self, src: &Rgb8Image, x: i64, y: i64) {
        for sy in 0..src.height as i64 {
            let ty = y + sy;
            if ty < 0 || ty >= self.height as i64 {
                continue;
            }
            for sx in 0..src.width as i64 {
                let tx = x + sx;
                if tx < 0 || tx >= self.width as i64 {
                    continue;
                }
                let s = 3 * (sy as usize * src.width as usize + sx as usize);
                let t = 3 * (ty as usize * self.width as usize + tx as usize);
                self.pixels[t..t + 3].copy_from_slice(&src.pixels[s..s + 3]);
            }
        }
    }
}

/// Checks that a picture size is usable: both sides positive and at most [`MAX_PIXELS`] pixels.
pub(crate) fn check_size(argument: &str, width: u32, height: u32) -> Result<(), VizError> {
    if width == 0 || height == 0 {
        return Err(VizError::invalid(
            argument,
            format!("sides must be positive, got {width}×{height}"),
        ));
    }
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(VizError::invalid(
            argument,
            format!("{width}×{height} exceeds the limit of {MAX_PIXELS} pixels"),
        ));
    }
    Ok(())
}

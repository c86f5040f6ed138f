//! Encoding pictures as PNG and animated GIF, and writing them atomically.
//!
//! Files are written to a temporary name in the destination directory and renamed into place,
//! so a reader (a browser refreshing a frame, a later resumed run) never sees half a file, and an
//! interrupted run leaves the previous picture intact.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::VizError;
use crate::image::Rgb8Image;

/// The picture as PNG bytes (8-bit RGB).
pub fn encode_png(img: &Rgb8Image) -> Result<Vec<u8>, VizError> {
    let err = |e: png::EncodingError| VizError::Encode {
        format: "PNG",
        message: e.to_string(),
    };
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, img.width(), img.height());
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(err)?;
    writer.write_image_data(img.pixels()).map_err(err)?;
    writer.finish().map_err(err)?;
    Ok(out)
}

/// Writes `img` as a PNG file at `path`, atomically (temporary file + rename).
pub fn save_png(img: &Rgb8Image, path: &Path) -> Result<(), VizError> {
    write_atomic(path, &encode_png(img)?)
}

/// Palette index reserved for "same as the previous frame" in delta frames.
const TRANSPARENT: u8 = 255;

/// The frames as an animated GIF that loops forever, `delay_ms` between frames.
///
/// GIF delays are in hundredths of a second, so `delay_ms` is rounded to the nearest 10 ms, and
/// raised to 20 ms because browsers show shorter delays as 100 ms. All frames share one
/// 255-colour palette of the most frequent colours (plots are mostly flat colours, so this keeps
/// them exact, and one palette means no colour flicker between frames); other colours map to the
/// nearest palette entry. Frames after the first store only the rectangle that changed, with
/// unchanged pixels transparent, which keeps a flow's GIF small.
///
/// Errors if `frames` is empty, the frames differ in size, or a side exceeds 65535 pixels.
pub fn encode_gif(frames: &[Rgb8Image], delay_ms: u16) -> Result<Vec<u8>, VizError> {
    let first = frames
        .first()
        .ok_or_else(|| VizError::empty("frames", "a GIF needs at least one frame"))?;
    let (w, h) = (first.width(), first.height());
    for (i, f) in frames.iter().enumerate() {
        if (f.width(), f.height()) != (w, h) {
            return Err(VizError::shape(
                format!("frames[{i}]"),
                format!("size {w}×{h} (the size of frames[0])"),
                format!("size {}×{}", f.width(), f.height()),
            ));
        }
    }
    if w > u16::MAX as u32 || h > u16::MAX as u32 {
        return Err(VizError::invalid(
            "frames",
            format!("GIF sides are at most 65535 pixels, got {w}×{h}"),
        ));
    }
    let palette = popular_colors(frames, TRANSPARENT as usize);
    let mut flat = Vec::with_capacity(256 * 3);
    for c in &palette {
        flat.extend_from_slice(c);
    }
    flat.resize(256 * 3, 0);
    let mut cache: HashMap<[u8; 3], u8> = palette
        .iter()
        .enumerate()
        .map(|(i, &c)| (c, i as u8))
        .collect();
    let mut index_of =
        |c: [u8; 3]| -> u8 { *cache.entry(c).or_insert_with(|| nearest(&palette, c)) };

    let err = |e: gif::EncodingError| VizError::Encode {
        format: "GIF",
        message: e.to_string(),
    };
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, w as u16, h as u16, &flat).map_err(err)?;
        enc.set_repeat(gif::Repeat::Infinite).map_err(err)?;
        let delay = ((delay_ms as u32 + 5) / 10).max(2) as u16;
        let mut previous: Option<&Rgb8Image> = None;
        for f in frames {
            let (x0, y0, x1, y1) = match previous {
                None => (0, 0, w, h),
                // Nothing changed: still emit a 1×1 frame so the frame count and timing hold.
                Some(p) => changed_rect(p, f).unwrap_or((0, 0, 1, 1)),
            };
            let mut buffer = Vec::with_capacity(((x1 - x0) * (y1 - y0)) as usize);
            for y in y0..y1 {
                for x in x0..x1 {
                    let i = 3 * (y as usize * w as usize + x as usize);
                    let c = [f.pixels()[i], f.pixels()[i + 1], f.pixels()[i + 2]];
                    let same = previous.is_some_and(|p| p.pixels()[i..i + 3] == c);
                    buffer.push(if same { TRANSPARENT } else { index_of(c) });
                }
            }
            let frame = gif::Frame {
                delay,
                dispose: gif::DisposalMethod::Keep,
                transparent: previous.map(|_| TRANSPARENT),
                left: x0 as u16,
                top: y0 as u16,
                width: (x1 - x0) as u16,
                height: (y1 - y0) as u16,
                buffer: buffer.into(),
                ..gif::Frame::default()
            };
            enc.write_frame(&frame).map_err(err)?;
            previous = Some(f);
        }
    }
    Ok(out)
}

/// Writes `frames` as an animated GIF at `path` (see [`encode_gif`]), atomically.
pub fn save_gif(frames: &[Rgb8Image], delay_ms: u16, path: &Path) -> Result<(), VizError> {
    write_atomic(path, &encode_gif(frames, delay_ms)?)
}

/// Up to `max` colours, most frequent first, counted over every frame (on a pixel subsample for
/// long sequences: popularity needs only approximate counts).
fn popular_colors(frames: &[Rgb8Image], max: usize) -> Vec<[u8; 3]> {
    let total: usize = frames.iter().map(|f| f.pixels().len() / 3).sum();
    let stride = (total / 4_000_000).max(1);
    let mut counts: HashMap<[u8; 3], u64> = HashMap::new();
    for f in frames {
        for px in f.pixels().chunks_exact(3).step_by(stride) {
            *counts.entry([px[0], px[1], px[2]]).or_insert(0) += 1;
        }
    }
    let mut by_count: Vec<([u8; 3], u64)> = counts.into_iter().collect();
    // Ties broken by colour so the palette (and the file) is deterministic.
    by_count.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    by_count.into_iter().take(max).map(|(c, _)| c).collect()
}

fn nearest(palette: &[[u8; 3]], c: [u8; 3]) -> u8 {
    let d = |p: &[u8; 3]| -> i32 {
        // Weighted towards green as the eye is: close enough to perceptual for edge pixels.
        let (dr, dg, db) = (
            p[0] as i32 - c[0] as i32,
            p[1] as i32 - c[1] as i32,
            p[2] as i32 - c[2] as i32,
        );
        2 * dr * dr + 4 * dg * dg + 3 * db * db
    };
    palette
        .iter()
        .enumerate()
        .min_by_key(|(_, p)| d(p))
        .map_or(0, |(i, _)| i as u8)
}

/// The smallest rectangle `(x0, y0, x1, y1)` holding every pixel that differs, if any.
fn changed_rect(a: &Rgb8Image, b: &Rgb8Image) -> Option<(u32, u32, u32, u32)> {
    let w = a.width() as usize;
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, (pa, pb)) in a
        .pixels()
        .chunks_exact(3)
        .zip(b.pixels().chunks_exact(3))
        .enumerate()
    {
        if pa != pb {
            let (x, y) = (i % w, i / w);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x + 1);
            y1 = y1.max(y + 1);
        }
    }
    (x0 != usize::MAX).then_some((x0 as u32, y0 as u32, x1 as u32, y1 as u32))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), VizError> {
    let io_err = |source| VizError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        io_err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        ))
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp: PathBuf = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(e));
    }
    Ok(())
}

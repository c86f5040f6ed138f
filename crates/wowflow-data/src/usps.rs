//! USPS handwritten digits (16×16 grayscale) in its two common releases.
//!
//! - `usps.h5` (the Kaggle/ESL release): HDF5 groups `train` and `test`, each with `data`
//!   `(N, 256)` float32 in `[0, 1]` and `target` `(N,)` integer digits. Read with the
//!   pure-Rust [`rust_hdf5`] crate (it handles the gzip-chunked datasets of this file and
//!   needs no libhdf5). HDF5 is a large format and that crate was not written for hostile
//!   input, so calls into it are wrapped in `catch_unwind`: a malformed file becomes a
//!   [`DataError`], never a crash of the caller.
//! - torchvision's LIBSVM files `usps.bz2` / `usps.t.bz2`: bzip2 text, one image per line,
//!   `label 1:v1 … 256:v256` with label = digit + 1 and `v` in `[-1, 1]`. Values are mapped to
//!   `(v + 1) / 2` in `[0, 1]` and kept as `f32` (torchvision rounds them to u8; we keep the
//!   precision and let a caller quantise if it wants torchvision-identical tensors).

use crate::compress::read_decompressed;
use crate::error::{name, DataError, Result};
use crate::images::{check_labels, ImageSet, Pixels};
use std::path::Path;

/// USPS images are 16×16.
pub const USPS_SIDE: usize = 16;
const PIXELS: usize = USPS_SIDE * USPS_SIDE;

/// Parses LIBSVM text (already decompressed) into a USPS split.
pub fn parse_usps_libsvm(bytes: &[u8], file: &str) -> Result<ImageSet> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DataError::format(file, format!("not UTF-8 text at byte {}", e.valid_up_to()))
    })?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        let line_no = ln + 1;
        let mut parts = line.split_ascii_whitespace();
        let Some(label) = parts.next() else { continue };
        let l: f64 = label.parse().map_err(|_| {
            DataError::format(
                file,
                format!("line {line_no}: label `{label}` is not a number"),
            )
        })?;
        if !(l.fract() == 0.0 && (1.0..=10.0).contains(&l)) {
            return Err(DataError::LabelOutOfRange {
                file: file.to_string(),
                index: labels.len(),
                label: l as i64,
                expected: "1..=10 (digit + 1)".to_string(),
            });
        }
        labels.push(l as u8 - 1);
        // LIBSVM is sparse: a missing index means the value 0, i.e. mid-grey 0.5 here.
        let start = pixels.len();
        pixels.resize(start + PIXELS, 0.5f32);
        for item in parts {
            let (k, v) = item.split_once(':').ok_or_else(|| {
                DataError::format(file, format!("line {line_no}: `{item}` is not index:value"))
            })?;
            let k: usize = k
                .parse()
                .ok()
                .filter(|k| (1..=PIXELS).contains(k))
                .ok_or_else(|| {
                    DataError::format(
                        file,
                        format!("line {line_no}: feature index `{k}` is not in 1..=256"),
                    )
                })?;
            let v: f32 = v.parse().map_err(|_| {
                DataError::format(file, format!("line {line_no}: value `{v}` is not a number"))
            })?;
            if !v.is_finite() {
                return Err(DataError::NonFinite {
                    file: file.to_string(),
                    location: format!("line {line_no}, feature {k}"),
                    value: v as f64,
                });
            }
            pixels[start + k - 1] = ((v + 1.0) / 2.0).clamp(0.0, 1.0);
        }
    }
    if labels.is_empty() {
        return Err(DataError::shape(
            file,
            "no samples (expected lines of `label 1:v1 ... 256:v256`)",
        ));
    }
    ImageSet::new(
        (1, USPS_SIDE, USPS_SIDE),
        Pixels::F32(pixels),
        labels,
        10,
        file,
    )
}

/// Reads a LIBSVM USPS file (`usps.t.bz2`, `usps.bz2`, or the decompressed text).
pub fn read_usps_libsvm(path: &Path) -> Result<ImageSet> {
    parse_usps_libsvm(&read_decompressed(path)?, &name(path))
}

/// Reads one split (`"train"` or `"test"`) of `usps.h5`.
pub fn read_usps_h5(path: &Path, split: &str) -> Result<ImageSet> {
    let file = name(path);
    if std::fs::metadata(path).is_err() {
        // Report a missing file as I/O, like every other reader.
        return Err(DataError::io(
            path,
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let f = file.clone();
    let split = split.to_string();
    let path = path.to_path_buf();
    let result = std::panic::catch_unwind(move || read_h5_inner(&path, &split, &f));
    match result {
        Ok(r) => r,
        Err(_) => Err(DataError::format(
            file,
            "the HDF5 reader failed on this file (malformed HDF5?)",
        )),
    }
}

fn read_h5_inner(path: &Path, split: &str, file: &str) -> Result<ImageSet> {
    let h5 = |e: rust_hdf5::Hdf5Error| DataError::format(file, format!("HDF5: {e}"));
    let f = rust_hdf5::H5File::open(path).map_err(|e| {
        if std::fs::read(path)
            .map(|b| b.starts_with(b"\x89HDF\r\n\x1a\n"))
            .unwrap_or(false)
        {
            h5(e)
        } else {
            DataError::BadMagic {
                file: file.to_string(),
                expected: "\\x89HDF\\r\\n\\x1a\\n (an HDF5 file)".to_string(),
                found: "something else".to_string(),
            }
        }
    })?;
    let data = f
        .dataset(&format!("{split}/data"))
        .map_err(|e| DataError::format(file, format!("no dataset `{split}/data` ({e})")))?;
    let target = f
        .dataset(&format!("{split}/target"))
        .map_err(|e| DataError::format(file, format!("no dataset `{split}/target` ({e})")))?;
    let (ds, ts) = (data.shape(), target.shape());
    if ds.len() != 2 || ds[1] != PIXELS {
        return Err(DataError::shape(
            file,
            format!("dataset `{split}/data` has shape {ds:?}, expected (N, 256)"),
        ));
    }
    if ts.as_slice() != [ds[0]] {
        return Err(DataError::shape(
            file,
            format!(
                "dataset `{split}/target` has shape {ts:?}, expected ({},) to match `{split}/data`",
                ds[0]
            ),
        ));
    }
    // The HDF5 reader allocates what the file's layout declares before decoding, and an
    // allocation failure aborts the process (catch_unwind cannot stop it). So bound the
    // declared sizes first: deflate expands at most ~1032:1, so nothing honest exceeds
    // about 1100 × the file size.
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let limit = file_len.saturating_mul(1100).clamp(1 << 20, 4 << 30);
    plausible(&data, &format!("{split}/data"), file, limit)?;
    plausible(&target, &format!("{split}/target"), file, limit)?;
    let pixels: Vec<f32> = match data.read_numeric_as::<f32>() {
        Ok(v) => v,
        Err(_) => data
            .read_numeric_as::<f64>()
            .map_err(h5)?
            .into_iter()
            .map(|x| x as f32)
            .collect(),
    };
    if pixels.len() != ds[0] * PIXELS {
        return Err(DataError::shape(
            file,
            format!(
                "dataset `{split}/data` holds {} values, expected {}",
                pixels.len(),
                ds[0] * PIXELS
            ),
        ));
    }
    if let Some(i) = pixels
        .iter()
        .position(|v| !(v.is_finite() && (0.0..=1.0).contains(v)))
    {
        return Err(DataError::format(
            file,
            format!(
                "dataset `{split}/data` image {}, pixel {} is {}, expected a value in [0, 1]",
                i / PIXELS,
                i % PIXELS,
                pixels[i]
            ),
        ));
    }
    let targets = target.read_numeric_as::<i64>().map_err(h5)?;
    let labels = targets
        .iter()
        .enumerate()
        .map(|(index, &t)| {
            u8::try_from(t)
                .ok()
                .filter(|&l| l < 10)
                .ok_or_else(|| DataError::LabelOutOfRange {
                    file: file.to_string(),
                    index,
                    label: t,
                    expected: "0..=9".to_string(),
                })
        })
        .collect::<Result<Vec<u8>>>()?;
    check_labels(&labels, 10, file)?;
    ImageSet::new(
        (1, USPS_SIDE, USPS_SIDE),
        Pixels::F32(pixels),
        labels,
        10,
        file,
    )
}

/// Rejects a dataset whose declared size, or chunk size, exceeds `limit` bytes.
fn plausible(ds: &rust_hdf5::H5Dataset, what: &str, file: &str, limit: u64) -> Result<()> {
    let elem = ds.element_size() as u64;
    let bytes = |dims: &[usize]| dims.iter().try_fold(elem, |a, &d| a.checked_mul(d as u64));
    let total = bytes(&ds.shape());
    let chunk = match ds.chunk_dims() {
        Some(c) => bytes(&c),
        None => Some(0),
    };
    match (total, chunk) {
        (Some(t), Some(c)) if t <= limit && c <= limit => Ok(()),
        _ => Err(DataError::shape(
            file,
            format!(
                "dataset `{what}` declares shape {:?} (chunks {:?}) of {elem}-byte elements: \
                 more than this file could hold ({limit} bytes at most)",
                ds.shape(),
                ds.chunk_dims()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(label: u8, fill: f32) -> String {
        let mut s = label.to_string();
        for k in 1..=256 {
            s.push_str(&format!(" {k}:{fill:.6}"));
        }
        s.push('\n');
        s
    }

    #[test]
    fn libsvm_lines_decode() {
        let text = line(1, -1.0) + &line(10, 1.0) + "3 5:0.5\n";
        let set = parse_usps_libsvm(text.as_bytes(), "u").unwrap();
        assert_eq!(set.labels, vec![0, 9, 2]);
        assert_eq!(set.image(0)[17], 0.0);
        assert_eq!(set.image(1)[255], 1.0);
        assert_eq!(set.image(2)[4], 0.75);
        assert_eq!(set.image(2)[0], 0.5);
    }

    #[test]
    fn libsvm_errors() {
        let e = parse_usps_libsvm(b"11 1:0.0\n", "u.t").unwrap_err();
        assert!(
            matches!(e, DataError::LabelOutOfRange { label: 11, .. }),
            "{e}"
        );
        let e = parse_usps_libsvm(b"1 257:0.0\n", "u.t").unwrap_err();
        assert!(e.to_string().contains("line 1: feature index `257`"), "{e}");
        let e = parse_usps_libsvm(b"1 3-0.0\n", "u.t").unwrap_err();
        assert!(e.to_string().contains("not index:value"), "{e}");
        let e = parse_usps_libsvm(b"1 3:nan\n", "u.t").unwrap_err();
        assert!(matches!(e, DataError::NonFinite { .. }), "{e}");
        assert!(parse_usps_libsvm(b"\n\n", "u.t").is_err());
    }
}

//! LeCun's idx format (MNIST, Fashion-MNIST, KMNIST), gzip-compressed or raw.
//!
//! Layout: a big-endian magic `0x0000TTDD` (`TT` the element type, `0x08` = u8; `DD` the
//! number of dimensions), then `DD` big-endian u32 sizes, then the values. Images are
//! `0x00000803` (count, rows, cols), labels `0x00000801` (count). Only u8 data occurs in
//! these datasets, so other element types are reported as unsupported.

use crate::compress::read_decompressed;
use crate::error::{name, DataError, Result};
use crate::images::{check_labels, ImageSet, Pixels};
use std::path::Path;

/// A decoded idx array of u8 values.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// The sizes from the header, outermost first: `[count]` for labels,
    /// `[count, rows, cols]` for images.
    pub dims: Vec<usize>,
    /// The values, row-major over `dims` (for images: image by image, each row by row);
    /// `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Parses decompressed idx bytes; `expected_dims` (1 for labels, 3 for images) is checked.
/// Takes the buffer by value so the 47 MB of MNIST pixels are moved, not copied.
pub fn parse_idx(mut bytes: Vec<u8>, expected_dims: usize, file: &str) -> Result<IdxArray> {
    let expected_magic = format!(
        "0x00000{:x}{:02x} (idx u8, {expected_dims}-D)",
        8, expected_dims
    );
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[3] as usize != expected_dims {
        return Err(DataError::BadMagic {
            file: file.to_string(),
            expected: expected_magic,
            found: format!("{:02x?}", &bytes[..bytes.len().min(4)]),
        });
    }
    if bytes[2] != 0x08 {
        return Err(DataError::Unsupported {
            file: file.to_string(),
            what: format!(
                "idx element type 0x{:02x} (only 0x08 = unsigned byte is read)",
                bytes[2]
            ),
        });
    }
    let header = 4 + 4 * expected_dims;
    if bytes.len() < header {
        return Err(DataError::truncated(
            file,
            "idx header",
            header as u64,
            bytes.len() as u64,
        ));
    }
    let dims: Vec<usize> = (0..expected_dims)
        .map(|k| {
            u32::from_be_bytes([
                bytes[4 + 4 * k],
                bytes[5 + 4 * k],
                bytes[6 + 4 * k],
                bytes[7 + 4 * k],
            ]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| DataError::shape(file, format!("idx dimensions {dims:?} overflow")))?;
    let body = bytes.len() - header;
    if body < count {
        return Err(DataError::truncated(
            file,
            format!("idx data for dimensions {dims:?}"),
            count as u64,
            body as u64,
        ));
    }
    if body > count {
        return Err(DataError::shape(
            file,
            format!(
                "{} bytes after the idx data for dimensions {dims:?}",
                body - count
            ),
        ));
    }
    bytes.drain(..header);
    Ok(IdxArray { dims, data: bytes })
}

/// Reads an idx image file (`count × rows × cols`).
pub fn read_idx_images(path: &Path) -> Result<IdxArray> {
    parse_idx(read_decompressed(path)?, 3, &name(path))
}

/// Reads an idx label file (`count`).
pub fn read_idx_labels(path: &Path) -> Result<IdxArray> {
    parse_idx(read_decompressed(path)?, 1, &name(path))
}

/// Combines decoded images and labels into a split, checking counts and label range.
pub fn idx_image_set(
    images: IdxArray,
    labels: IdxArray,
    n_classes: usize,
    images_file: &str,
    labels_file: &str,
) -> Result<ImageSet> {
    let (n, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
    if labels.dims[0] != n {
        return Err(DataError::shape(
            labels_file,
            format!(
                "{} labels, but {images_file} holds {n} images",
                labels.dims[0]
            ),
        ));
    }
    check_labels(&labels.data, n_classes, labels_file)?;
    ImageSet::new(
        (1, rows, cols),
        Pixels::U8(images.data),
        labels.data,
        n_classes,
        images_file,
    )
}

/// Reads an images file and a labels file into a split.
pub fn read_idx_pair(images: &Path, labels: &Path, n_classes: usize) -> Result<ImageSet> {
    // Decode both files in parallel: gunzip of the 10 MB image file dominates the time.
    let (img, lab) = std::thread::scope(|s| {
        let h = s.spawn(|| read_idx_images(images));
        let lab = read_idx_labels(labels);
        (
            h.join().unwrap_or_else(|_| {
                Err(DataError::format(name(images), "decoder thread panicked"))
            }),
            lab,
        )
    });
    idx_image_set(img?, lab?, n_classes, &name(images), &name(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parses_images_and_labels() {
        let img = parse_idx(
            idx_bytes(&[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]),
            3,
            "i",
        )
        .unwrap();
        assert_eq!(img.dims, vec![2, 2, 3]);
        let lab = parse_idx(idx_bytes(&[2], &[9, 0]), 1, "l").unwrap();
        let set = idx_image_set(img, lab, 10, "i", "l").unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.image(1)[5], 1.0);
        assert_eq!(set.label_counts()[9], 1);
    }

    #[test]
    fn bad_files_are_named_errors() {
        let e = parse_idx(idx_bytes(&[2], &[1, 2]), 3, "img.gz").unwrap_err();
        assert!(matches!(e, DataError::BadMagic { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("img.gz: bad magic number: expected 0x00000803"),
            "{e}"
        );
        let e = parse_idx(idx_bytes(&[2, 2, 2], &[0; 7]), 3, "t").unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Truncated {
                    expected: 8,
                    found: 7,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_idx(idx_bytes(&[2, 2, 2], &[0; 9]), 3, "t").unwrap_err();
        assert!(e.to_string().contains("1 bytes after"), "{e}");
        let e = parse_idx(vec![0, 0, 8, 3, 0, 0], 3, "h").unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }), "{e}");
        let mut v = idx_bytes(&[1], &[0]);
        v[2] = 0x0d;
        assert!(matches!(
            parse_idx(v, 1, "f").unwrap_err(),
            DataError::Unsupported { .. }
        ));
        let e = parse_idx(idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]), 3, "o").unwrap_err();
        assert!(
            matches!(e, DataError::Shape { .. } | DataError::Truncated { .. }),
            "{e}"
        );

        let img = parse_idx(idx_bytes(&[2, 1, 1], &[0, 0]), 3, "i").unwrap();
        let lab = parse_idx(idx_bytes(&[3], &[0, 0, 0]), 1, "l").unwrap();
        let e = idx_image_set(img.clone(), lab, 10, "i", "l").unwrap_err();
        assert_eq!(e.to_string(), "l: 3 labels, but i holds 2 images");
        let lab = parse_idx(idx_bytes(&[2], &[0, 10]), 1, "l").unwrap();
        let e = idx_image_set(img, lab, 10, "i", "l").unwrap_err();
        assert!(
            matches!(
                e,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 10,
                    ..
                }
            ),
            "{e}"
        );
    }
}

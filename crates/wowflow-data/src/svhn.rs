//! SVHN "cropped digits" (`train_32x32.mat`, `test_32x32.mat`, `extra_32x32.mat`).
//!
//! Each file holds `X`, uint8 of MATLAB shape `(32, 32, 3, N)` (row, column, channel, image;
//! column-major, so the row index varies fastest), and `y`, shape `(N, 1)`, digits 1–10
//! where 10 stands for the digit 0 (mapped to label 0 here, as torchvision does).
//! Images are transposed to channel-major `3 × 32 × 32`.

use crate::error::{name, DataError, Result};
use crate::images::{ImageSet, Pixels};
use crate::mat::{parse_mat, MatData};
use std::path::Path;

/// Reads an SVHN `.mat` split.
pub fn read_svhn_mat(path: &Path) -> Result<ImageSet> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_svhn_mat(&bytes, &name(path))
}

/// Parses SVHN `.mat` bytes.
pub fn parse_svhn_mat(bytes: &[u8], file: &str) -> Result<ImageSet> {
    let vars = parse_mat(bytes, file)?;
    let get = |k: &str| {
        vars.get(k).ok_or_else(|| {
            DataError::shape(
                file,
                format!(
                    "no variable `{k}` (found: {}); expected SVHN's `X` (32, 32, 3, N) and `y` (N, 1)",
                    vars.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    };
    let (x, y) = (get("X")?, get("y")?);
    let MatData::U8(xv) = &x.data else {
        return Err(DataError::Unsupported {
            file: file.to_string(),
            what: "`X` stored as a type other than uint8".to_string(),
        });
    };
    let n = match x.dims.as_slice() {
        [32, 32, 3, n] => *n,
        [32, 32, 3] => 1,
        d => {
            return Err(DataError::shape(
                file,
                format!("`X` has dimensions {d:?}, expected [32, 32, 3, N]"),
            ))
        }
    };
    if y.len() != n
        || !(y.dims.as_slice() == [n, 1] || y.dims.as_slice() == [1, n] || y.dims.as_slice() == [n])
    {
        return Err(DataError::shape(
            file,
            format!(
                "`y` has dimensions {:?}, expected [{n}, 1] to match `X` [32, 32, 3, {n}]",
                y.dims
            ),
        ));
    }
    let labels = (0..n)
        .map(|i| {
            let v = y.get(i);
            if v.fract() == 0.0 && (1.0..=10.0).contains(&v) {
                Ok((v as u8) % 10)
            } else {
                Err(DataError::LabelOutOfRange {
                    file: file.to_string(),
                    index: i,
                    label: v as i64,
                    expected: "1..=10 (10 = digit 0)".to_string(),
                })
            }
        })
        .collect::<Result<Vec<u8>>>()?;
    const S: usize = 32;
    let mut pixels = vec![0u8; n * 3 * S * S];
    for img in 0..n {
        for c in 0..3 {
            for w in 0..S {
                // MATLAB index (h, w, c, img) → h + 32 (w + 32 (c + 3 img)): a column of
                // 32 rows is contiguous.
                let src = S * (w + S * (c + 3 * img));
                let dst = ((img * 3 + c) * S) * S + w;
                for h in 0..S {
                    pixels[dst + h * S] = xv[src + h];
                }
            }
        }
    }
    ImageSet::new((3, S, S), Pixels::U8(pixels), labels, 10, file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mat::{encode_mat, MatArray};

    /// A two-image file in SVHN's real layout; pixel (h, w, c) of image i = h + 2w + 64c + i.
    pub(crate) fn svhn_bytes(labels: &[f64]) -> Vec<u8> {
        let n = labels.len();
        let mut x = vec![0u8; 32 * 32 * 3 * n];
        for i in 0..n {
            for c in 0..3 {
                for w in 0..32 {
                    for h in 0..32 {
                        x[h + 32 * (w + 32 * (c + 3 * i))] = (h + 2 * w + 64 * c + i) as u8;
                    }
                }
            }
        }
        let xa = MatArray {
            dims: vec![32, 32, 3, n],
            data: MatData::U8(x),
        };
        let ya = MatArray {
            dims: vec![n, 1],
            data: MatData::F64(labels.to_vec()),
        };
        encode_mat(&[("X", &xa), ("y", &ya)], true)
    }

    #[test]
    fn decodes_layout_and_labels() {
        let set = parse_svhn_mat(&svhn_bytes(&[10.0, 3.0]), "s.mat").unwrap();
        assert_eq!(set.labels, vec![0, 3]);
        assert_eq!((set.channels, set.height, set.width), (3, 32, 32));
        let img = set.image(1);
        // Channel 2, row 5, column 7 of image 1: 5 + 14 + 128 + 1.
        assert_eq!(img[2 * 1024 + 5 * 32 + 7], 148.0 / 255.0);
    }

    #[test]
    fn bad_labels_and_shapes() {
        let e = parse_svhn_mat(&svhn_bytes(&[0.0]), "s.mat").unwrap_err();
        assert!(matches!(e, DataError::LabelOutOfRange { .. }), "{e}");
        let y = MatArray {
            dims: vec![1, 1],
            data: MatData::F64(vec![1.0]),
        };
        let b = encode_mat(&[("y", &y)], false);
        let e = parse_svhn_mat(&b, "s.mat").unwrap_err();
        assert!(e.to_string().contains("no variable `X` (found: y)"), "{e}");
    }
}

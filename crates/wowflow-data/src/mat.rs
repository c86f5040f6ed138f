//! MATLAB Level 5 MAT-files (the `-v5`/`-v7` format that `scipy.io.loadmat` reads), as far
//! as SVHN needs: numeric, real, full arrays, stored plainly or zlib-compressed.
//!
//! Layout: a 128-byte header (text, subsystem offset, version `0x0100`, endian mark `IM` for
//! little-endian), then data elements `[type u32][nbytes u32][data, padded to 8]`; a "small"
//! element packs `nbytes` into the upper half of the type word and its ≤ 4 bytes of data
//! into the tag's second word. `miCOMPRESSED` (15) holds a zlib stream with one more
//! element; `miMATRIX` (14) holds sub-elements: array flags, dimensions, name, real part.
//! Big-endian files and v7.3 (HDF5) files are rejected with a message saying so; cells,
//! structs, sparse and char arrays are skipped.

use crate::error::{DataError, Result};
use std::collections::BTreeMap;
use std::io::Read;

/// The values of a MAT array in MATLAB's column-major order.
#[derive(Debug, Clone, PartialEq)]
pub enum MatData {
    /// `uint8` storage, kept as bytes (SVHN's images).
    U8(Vec<u8>),
    /// Any other numeric storage, widened to `f64`.
    F64(Vec<f64>),
}

/// A numeric array: `dims` as MATLAB reports them (first index fastest).
#[derive(Debug, Clone, PartialEq)]
pub struct MatArray {
    /// The dimensions as stored, e.g. `[32, 32, 3, N]` for SVHN's `X`.
    pub dims: Vec<usize>,
    /// The `dims.iter().product()` values, column-major (first index fastest).
    pub data: MatData,
}

impl MatArray {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            MatData::U8(v) => v.len(),
            MatData::F64(v) => v.len(),
        }
    }
    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Element `i` as `f64`.
    pub fn get(&self, i: usize) -> f64 {
        match &self.data {
            MatData::U8(v) => v[i] as f64,
            MatData::F64(v) => v[i],
        }
    }
}

const MI_MATRIX: u32 = 14;
const MI_COMPRESSED: u32 = 15;

/// Parses a MAT v5 file's bytes into its numeric variables, by name.
pub fn parse_mat(bytes: &[u8], file: &str) -> Result<BTreeMap<String, MatArray>> {
    if bytes.len() < 128 {
        return Err(DataError::truncated(
            file,
            "MAT-file header",
            128,
            bytes.len() as u64,
        ));
    }
    let text = String::from_utf8_lossy(&bytes[..116]);
    if !text.starts_with("MATLAB") {
        return Err(DataError::BadMagic {
            file: file.to_string(),
            expected: "`MATLAB 5.0 MAT-file` header text".to_string(),
            found: format!("{:?}", text.chars().take(20).collect::<String>()),
        });
    }
    if text.starts_with("MATLAB 7.3") || bytes.starts_with(b"\x89HDF") {
        return Err(DataError::Unsupported {
            file: file.to_string(),
            what: "MAT v7.3 (HDF5-based) file; save with -v7 or read it as HDF5".to_string(),
        });
    }
    match &bytes[126..128] {
        b"IM" => {}
        b"MI" => {
            return Err(DataError::Unsupported {
                file: file.to_string(),
                what: "big-endian MAT-file".to_string(),
            })
        }
        other => {
            return Err(DataError::BadMagic {
                file: file.to_string(),
                expected: "endian indicator `IM`".to_string(),
                found: format!("{other:02x?}"),
            })
        }
    }
    let mut out = BTreeMap::new();
    let mut pos = 128;
    while pos < bytes.len() {
        let (ty, data, next) = element(bytes, pos, file)?;
        match ty {
            MI_COMPRESSED => {
                let mut inner = Vec::new();
                flate2::read::ZlibDecoder::new(data)
                    .read_to_end(&mut inner)
                    .map_err(|e| DataError::Decompress {
                        file: file.to_string(),
                        format: "zlib (miCOMPRESSED)",
                        reason: e.to_string(),
                    })?;
                let (ty, data, _) = element(&inner, 0, file)?;
                if ty == MI_MATRIX {
                    if let Some((k, v)) = matrix(data, file)? {
                        out.insert(k, v);
                    }
                }
            }
            MI_MATRIX => {
                if let Some((k, v)) = matrix(data, file)? {
                    out.insert(k, v);
                }
            }
            _ => {}
        }
        // Compressed elements are not padded; everything else is padded to 8 bytes.
        pos = if ty == MI_COMPRESSED {
            pos + 8 + data.len()
        } else {
            next
        };
    }
    Ok(out)
}

/// One data element at `pos`: (type, data, position of the next element).
fn element<'a>(bytes: &'a [u8], pos: usize, file: &str) -> Result<(u32, &'a [u8], usize)> {
    let tag = bytes.get(pos..pos + 8).ok_or_else(|| {
        DataError::truncated(
            file,
            format!("MAT element tag at byte {pos}"),
            8,
            (bytes.len() - pos.min(bytes.len())) as u64,
        )
    })?;
    let w0 = u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]]);
    let w1 = u32::from_le_bytes([tag[4], tag[5], tag[6], tag[7]]);
    if w0 >> 16 != 0 {
        // Small data element format.
        let n = (w0 >> 16) as usize;
        if n > 4 {
            return Err(DataError::format(
                file,
                format!("MAT small element at byte {pos} claims {n} bytes (max 4)"),
            ));
        }
        return Ok((w0 & 0xffff, &tag[4..4 + n], pos + 8));
    }
    let n = w1 as usize;
    let start = pos + 8;
    let data = bytes.get(start..start.saturating_add(n)).ok_or_else(|| {
        DataError::truncated(
            file,
            format!("MAT element of type {w0} at byte {pos}"),
            n as u64,
            (bytes.len() - start) as u64,
        )
    })?;
    Ok((w0, data, start + n.div_ceil(8) * 8))
}

/// Decodes a miMATRIX body; `None` for array kinds we skip (cell, struct, char, sparse, complex).
fn matrix(body: &[u8], file: &str) -> Result<Option<(String, MatArray)>> {
    if body.is_empty() {
        return Ok(None);
    }
    let (ty, flags, p) = element(body, 0, file)?;
    if ty != 6 || flags.len() < 8 {
        return Err(DataError::format(
            file,
            "MAT array without its array-flags sub-element",
        ));
    }
    let class = flags[0];
    let complex = flags[1] & 0x08 != 0;
    let (ty, dims_raw, p) = element(body, p, file)?;
    if ty != 5 || !dims_raw.len().is_multiple_of(4) {
        return Err(DataError::format(
            file,
            "MAT array without an int32 dimensions sub-element",
        ));
    }
    let dims: Vec<usize> = dims_raw
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .map(|d| {
            usize::try_from(d).map_err(|_| {
                DataError::format(file, format!("MAT array with negative dimension {d}"))
            })
        })
        .collect::<Result<_>>()?;
    let (_, name_raw, p) = element(body, p, file)?;
    let name = String::from_utf8_lossy(name_raw).into_owned();
    // Numeric classes are 6 (double) to 15 (uint64).
    if !(6..=15).contains(&class) || complex {
        return Ok(None);
    }
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| {
            DataError::shape(
                file,
                format!("MAT array `{name}` dimensions {dims:?} overflow"),
            )
        })?;
    let (ty, real, _) = element(body, p, file)?;
    let size = match ty {
        1 | 2 => 1,
        3 | 4 => 2,
        5..=7 => 4,
        9 | 12 | 13 => 8,
        other => {
            return Err(DataError::Unsupported {
                file: file.to_string(),
                what: format!("MAT storage type {other} in array `{name}`"),
            })
        }
    };
    if real.len() != count.saturating_mul(size) {
        return Err(DataError::shape(
            file,
            format!(
                "MAT array `{name}` of dimensions {dims:?} has {} data bytes, expected {}",
                real.len(),
                count.saturating_mul(size)
            ),
        ));
    }
    let data = if ty == 2 {
        MatData::U8(real.to_vec())
    } else {
        let w = |c: &[u8]| -> f64 {
            match ty {
                1 => c[0] as i8 as f64,
                3 => i16::from_le_bytes([c[0], c[1]]) as f64,
                4 => u16::from_le_bytes([c[0], c[1]]) as f64,
                5 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
                6 => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
                7 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64,
                9 => f64::from_le_bytes(c.try_into().unwrap_or([0; 8])),
                12 => i64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64,
                _ => u64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f64,
            }
        };
        MatData::F64(real.chunks_exact(size).map(w).collect())
    };
    Ok(Some((name, MatArray { dims, data })))
}

/// Test and fuzz support: encodes numeric arrays as a MAT v5 file, `compress` choosing
/// miCOMPRESSED elements (as MATLAB's default `-v7` does) or plain miMATRIX ones.
pub fn encode_mat(vars: &[(&str, &MatArray)], compress: bool) -> Vec<u8> {
    fn el(ty: u32, data: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(8) * 8, 0);
    }
    let mut header =
        b"MATLAB 5.0 MAT-file, Platform: wowflow, Created by wowflow-data tests".to_vec();
    header.resize(116, b' ');
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&0x0100u16.to_le_bytes());
    header.extend_from_slice(b"IM");
    let mut out = header;
    for (name, a) in vars {
        let mut body = Vec::new();
        let class: u32 = if matches!(a.data, MatData::U8(_)) {
            9
        } else {
            6
        };
        el(
            6,
            &[class.to_le_bytes(), 0u32.to_le_bytes()].concat(),
            &mut body,
        );
        let dims: Vec<u8> = a
            .dims
            .iter()
            .flat_map(|&d| (d as i32).to_le_bytes())
            .collect();
        el(5, &dims, &mut body);
        el(1, name.as_bytes(), &mut body);
        match &a.data {
            MatData::U8(v) => el(2, v, &mut body),
            MatData::F64(v) => el(
                9,
                &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
                &mut body,
            ),
        }
        let mut m = Vec::new();
        el(MI_MATRIX, &body, &mut m);
        if compress {
            use std::io::Write;
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            let _ = z.write_all(&m);
            let zd = z.finish().unwrap_or_default();
            out.extend_from_slice(&MI_COMPRESSED.to_le_bytes());
            out.extend_from_slice(&(zd.len() as u32).to_le_bytes());
            out.extend_from_slice(&zd);
        } else {
            out.extend_from_slice(&m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_plain_and_compressed() {
        let x = MatArray {
            dims: vec![2, 3],
            data: MatData::U8(vec![1, 2, 3, 4, 5, 6]),
        };
        let y = MatArray {
            dims: vec![3, 1],
            data: MatData::F64(vec![10.0, 1.0, 2.5]),
        };
        for compress in [false, true] {
            let bytes = encode_mat(&[("X", &x), ("y", &y)], compress);
            let vars = parse_mat(&bytes, "m.mat").unwrap();
            assert_eq!(vars["X"], x);
            assert_eq!(vars["y"], y);
        }
    }

    #[test]
    fn bad_files_are_named_errors() {
        let e = parse_mat(b"short", "a.mat").unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }), "{e}");
        let mut b = encode_mat(&[], false);
        b[0] = b'X';
        assert!(matches!(
            parse_mat(&b, "a.mat").unwrap_err(),
            DataError::BadMagic { .. }
        ));
        let mut b = encode_mat(&[], false);
        b[126..128].copy_from_slice(b"MI");
        assert!(matches!(
            parse_mat(&b, "a.mat").unwrap_err(),
            DataError::Unsupported { .. }
        ));
        let x = MatArray {
            dims: vec![4],
            data: MatData::U8(vec![1; 4]),
        };
        let b = encode_mat(&[("X", &x)], true);
        let e = parse_mat(&b[..b.len() - 5], "c.mat").unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Truncated { .. } | DataError::Decompress { .. }
            ),
            "{e}"
        );
        let mut b = encode_mat(&[("X", &x)], false);
        // Claim 5 elements while storing 4.
        let dims_at = 128 + 8 + 16 + 8;
        b[dims_at..dims_at + 4].copy_from_slice(&5i32.to_le_bytes());
        let e = parse_mat(&b, "d.mat").unwrap_err();
        assert!(
            e.to_string().contains("has 4 data bytes, expected 5"),
            "{e}"
        );
    }
}

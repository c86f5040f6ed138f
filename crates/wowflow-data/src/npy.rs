//! The numpy `.npy` format (versions 1.0, 2.0 and 3.0), read and written without numpy.
//!
//! Layout: the magic `\x93NUMPY`, a major and minor version byte, the header length
//! (little-endian u16 for 1.0, u32 for 2.0/3.0), then a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` and the raw data.
//!
//! Reading accepts little- and big-endian data (big-endian is byte-swapped) and Fortran
//! order (transposed to C order), so a file written by any numpy on any machine loads. Types:
//! `f4`, `f8`, `i1`, `i2`, `i4`, `i8`, `u1`, `u2`, `u4`, `u8`, `b1`; they are widened to the
//! five [`ArrayData`] variants. Object arrays, strings, complex and half floats are rejected
//! with a message naming the dtype. Writing always produces version 1.0 (2.0 only for
//! headers over 64 KiB), little-endian, C order, with the header padded to 64 bytes as numpy
//! does.

use crate::atomic::write_atomic;
use crate::error::{name, DataError, Result};
use std::io::Write;
use std::path::Path;

/// The values of an array, in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    /// `float32` (`f4`).
    F32(Vec<f32>),
    /// `float64` (`f8`).
    F64(Vec<f64>),
    /// `int64` (`i8`); reading also widens `uint32` to it, and `uint64` when every value fits.
    I64(Vec<i64>),
    /// `int32` (`i4`); reading also widens `int8`, `int16` and `uint16` to it.
    I32(Vec<i32>),
    /// `uint8` (`u1`); reading also stores `bool` (`b1`) here, as 0 or 1.
    U8(Vec<u8>),
}

impl ArrayData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::I64(v) => v.len(),
            ArrayData::I32(v) => v.len(),
            ArrayData::U8(v) => v.len(),
        }
    }
    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The numpy name of the element type (`float32`, …), for messages.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            ArrayData::F32(_) => "float32",
            ArrayData::F64(_) => "float64",
            ArrayData::I64(_) => "int64",
            ArrayData::I32(_) => "int32",
            ArrayData::U8(_) => "uint8",
        }
    }
    /// True for `F32` and `F64`.
    pub fn is_float(&self) -> bool {
        matches!(self, ArrayData::F32(_) | ArrayData::F64(_))
    }
    fn descr(&self) -> &'static str {
        match self {
            ArrayData::F32(_) => "<f4",
            ArrayData::F64(_) => "<f8",
            ArrayData::I64(_) => "<i8",
            ArrayData::I32(_) => "<i4",
            ArrayData::U8(_) => "|u1",
        }
    }
}

/// An n-dimensional array: `shape` and its values in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The dimensions, outermost first (`[]` for a 0-d array). For an array read from a file
    /// their product is `data.len()`; for one built in code it is checked when written.
    pub shape: Vec<usize>,
    /// The values in C order (the last index varies fastest).
    pub data: ArrayData,
}

impl NpyArray {
    /// A float32 array. The shape is checked when the array is written.
    pub fn f32(shape: impl Into<Vec<usize>>, data: Vec<f32>) -> Self {
        Self {
            shape: shape.into(),
            data: ArrayData::F32(data),
        }
    }
    /// A float64 array. The shape is checked when the array is written.
    pub fn f64(shape: impl Into<Vec<usize>>, data: Vec<f64>) -> Self {
        Self {
            shape: shape.into(),
            data: ArrayData::F64(data),
        }
    }
    /// An int64 array (labels). The shape is checked when the array is written.
    pub fn i64(shape: impl Into<Vec<usize>>, data: Vec<i64>) -> Self {
        Self {
            shape: shape.into(),
            data: ArrayData::I64(data),
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// The shape written as numpy prints it: `(100, 784)`, `(99,)`, `()`.
    pub fn shape_string(&self) -> String {
        shape_string(&self.shape)
    }

    /// All values as `f32` (float64 is rounded, integers converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            ArrayData::F32(v) => v.clone(),
            ArrayData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            ArrayData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            ArrayData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            ArrayData::U8(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// All values as `i64`. Float arrays are accepted when every value is integral (labels
    /// saved as floats are common); anything else is an error naming the first bad element.
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        fn from_float(v: impl Iterator<Item = f64>) -> Result<Vec<i64>> {
            v.enumerate()
                .map(|(i, x)| {
                    // 2^63 is exactly representable; values at or above it do not fit.
                    const LIMIT: f64 = 9.223_372_036_854_776e18;
                    if x.fract() == 0.0 && (-LIMIT..LIMIT).contains(&x) {
                        Ok(x as i64)
                    } else {
                        Err(DataError::Invalid {
                            what: format!("element {i}"),
                            problem: format!("value {x} is not an integer"),
                        })
                    }
                })
                .collect()
        }
        Ok(match &self.data {
            ArrayData::F32(v) => from_float(v.iter().map(|&x| x as f64))?,
            ArrayData::F64(v) => from_float(v.iter().copied())?,
            ArrayData::I64(v) => v.clone(),
            ArrayData::I32(v) => v.iter().map(|&x| x as i64).collect(),
            ArrayData::U8(v) => v.iter().map(|&x| x as i64).collect(),
        })
    }
}

/// `(a, b)`, `(a,)`, `()` as numpy prints shapes (error messages of every front end).
pub fn shape_string(shape: &[usize]) -> String {
    match shape {
        [] => "()".to_string(),
        [a] => format!("({a},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_npy(&bytes, &name(path))
}

/// Parses `.npy` bytes; `file` names the source in error messages.
pub fn parse_npy(bytes: &[u8], file: &str) -> Result<NpyArray> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        let found = &bytes[..bytes.len().min(6)];
        return Err(DataError::BadMagic {
            file: file.to_string(),
            expected: "\\x93NUMPY (a numpy .npy file)".to_string(),
            found: format!("{found:02x?}"),
        });
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(DataError::truncated(
                    file,
                    "npy header length",
                    12,
                    bytes.len() as u64,
                ));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => {
            return Err(DataError::Unsupported {
                file: file.to_string(),
                what: format!("npy format version {v}.{} (known: 1.0, 2.0, 3.0)", bytes[7]),
            })
        }
    };
    let end = start + header_len;
    if bytes.len() < end {
        return Err(DataError::truncated(
            file,
            "npy header",
            end as u64,
            bytes.len() as u64,
        ));
    }
    // Version 3.0 allows UTF-8 in the header; 1.0/2.0 are latin-1 but only ASCII appears in
    // the fields we read, so a lossy decode is harmless.
    let header_text = String::from_utf8_lossy(&bytes[start..end]);
    let header = parse_header(&header_text)
        .map_err(|p| DataError::format(file, format!("npy header: {p}")))?;
    let dtype = Dtype::parse(&header.descr).ok_or_else(|| DataError::Unsupported {
        file: file.to_string(),
        what: format!(
            "npy dtype '{}' (readable: float32/64, int8-64, uint8-64, bool)",
            header.descr
        ),
    })?;
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .ok_or_else(|| {
            DataError::shape(
                file,
                format!("npy shape {} overflows", shape_string(&header.shape)),
            )
        })?;
    let nbytes = count.checked_mul(dtype.size).ok_or_else(|| {
        DataError::shape(
            file,
            format!("npy shape {} overflows", shape_string(&header.shape)),
        )
    })?;
    let body = &bytes[end..];
    if body.len() < nbytes {
        return Err(DataError::truncated(
            file,
            format!(
                "npy data for shape {} of '{}'",
                shape_string(&header.shape),
                header.descr
            ),
            nbytes as u64,
            body.len() as u64,
        ));
    }
    if body.len() > nbytes {
        return Err(DataError::format(
            file,
            format!(
                "{} bytes after the data of shape {} ('{}'); the file is not a single npy array",
                body.len() - nbytes,
                shape_string(&header.shape),
                header.descr
            ),
        ));
    }
    let mut data = dtype
        .decode(body, count)
        .map_err(|p| DataError::format(file, p))?;
    if header.fortran_order && header.shape.len() > 1 {
        data = fortran_to_c(&data, &header.shape);
    }
    Ok(NpyArray {
        shape: header.shape,
        data,
    })
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A tiny parser for the subset of Python literals npy headers use: a dict of string keys
/// to strings, booleans and tuples of integers.
fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let mut p = Lit {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_str() {
            "descr" => {
                descr = Some(
                    p.string()
                        .map_err(|e| format!("'descr' must be a type string ({e})"))?,
                )
            }
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(format!("unexpected key '{other}'")),
        }
        p.ws();
        if !p.eat(b',') {
            p.ws();
            p.expect(b'}')?;
            break;
        }
    }
    Ok(Header {
        descr: descr.ok_or("missing key 'descr'")?,
        fortran_order: fortran.ok_or("missing key 'fortran_order'")?,
        shape: shape.ok_or("missing key 'shape'")?,
    })
}

struct Lit<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lit<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        let q = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            self.i += 1;
        }
        if self.i >= self.s.len() {
            return Err("unterminated string".to_string());
        }
        let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(out)
    }
    fn boolean(&mut self) -> std::result::Result<bool, String> {
        if self.s[self.i..].starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if self.s[self.i..].starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err(format!("expected True or False at byte {}", self.i))
        }
    }
    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(out);
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            let v: usize = digits.parse().map_err(|_| {
                format!("expected a non-negative integer in the shape at byte {start}")
            })?;
            out.push(v);
            self.eat(b'L'); // Python 2 long suffix
            self.ws();
            if !self.eat(b',') {
                self.ws();
                self.expect(b')')?;
                return Ok(out);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Float,
    Int,
    Uint,
    Bool,
}

struct Dtype {
    kind: Kind,
    size: usize,
    big_endian: bool,
}

impl Dtype {
    fn parse(descr: &str) -> Option<Self> {
        let b = descr.as_bytes();
        let (order, rest) = match b.first()? {
            c @ (b'<' | b'>' | b'|' | b'=') => (*c, &b[1..]),
            _ => (b'=', b),
        };
        let kind = match rest.first()? {
            b'f' => Kind::Float,
            b'i' => Kind::Int,
            b'u' => Kind::Uint,
            b'b' => Kind::Bool,
            _ => return None,
        };
        let size: usize = std::str::from_utf8(&rest[1..]).ok()?.parse().ok()?;
        let ok = match kind {
            Kind::Float => matches!(size, 4 | 8),
            Kind::Int | Kind::Uint => matches!(size, 1 | 2 | 4 | 8),
            Kind::Bool => size == 1,
        };
        // '=' (native) is little-endian on every platform numpy wheels exist for that we run on.
        ok.then_some(Dtype {
            kind,
            size,
            big_endian: order == b'>',
        })
    }

    fn decode(&self, body: &[u8], count: usize) -> std::result::Result<ArrayData, String> {
        let big = self.big_endian;
        macro_rules! words {
            ($n:literal, $from:ident) => {
                body.chunks_exact($n).map(|c| {
                    let mut w = [0u8; $n];
                    w.copy_from_slice(c);
                    if big {
                        w.reverse();
                    }
                    w
                })
            };
        }
        Ok(match (self.kind, self.size) {
            (Kind::Float, 4) => ArrayData::F32(words!(4, x).map(f32::from_le_bytes).collect()),
            (Kind::Float, 8) => ArrayData::F64(words!(8, x).map(f64::from_le_bytes).collect()),
            (Kind::Int, 8) => ArrayData::I64(words!(8, x).map(i64::from_le_bytes).collect()),
            (Kind::Int, 4) => ArrayData::I32(words!(4, x).map(i32::from_le_bytes).collect()),
            (Kind::Int, 2) => {
                ArrayData::I32(words!(2, x).map(|w| i16::from_le_bytes(w) as i32).collect())
            }
            (Kind::Int, 1) => ArrayData::I32(body.iter().map(|&v| v as i8 as i32).collect()),
            (Kind::Uint, 1) | (Kind::Bool, 1) => ArrayData::U8(body[..count].to_vec()),
            (Kind::Uint, 2) => {
                ArrayData::I32(words!(2, x).map(|w| u16::from_le_bytes(w) as i32).collect())
            }
            (Kind::Uint, 4) => {
                ArrayData::I64(words!(4, x).map(|w| u32::from_le_bytes(w) as i64).collect())
            }
            (Kind::Uint, 8) => {
                let mut out = Vec::with_capacity(count);
                for (i, w) in words!(8, x).enumerate() {
                    let v = u64::from_le_bytes(w);
                    out.push(
                        i64::try_from(v).map_err(|_| {
                            format!("uint64 element {i} = {v} does not fit in int64")
                        })?,
                    );
                }
                ArrayData::I64(out)
            }
            _ => return Err("unsupported dtype".to_string()),
        })
    }
}

/// Reorders column-major values into row-major order.
fn fortran_to_c(data: &ArrayData, shape: &[usize]) -> ArrayData {
    let n: usize = shape.iter().product();
    // Fortran strides: the first axis varies fastest.
    let mut fstride = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        fstride[k] = fstride[k - 1] * shape[k - 1];
    }
    let mut index = vec![0usize; shape.len()];
    let mut src = Vec::with_capacity(n);
    for _ in 0..n {
        src.push(
            index
                .iter()
                .zip(&fstride)
                .map(|(i, s)| i * s)
                .sum::<usize>(),
        );
        // Advance the C-order multi-index (last axis fastest).
        for k in (0..shape.len()).rev() {
            index[k] += 1;
            if index[k] < shape[k] {
                break;
            }
            index[k] = 0;
        }
    }
    fn gather<T: Copy>(v: &[T], src: &[usize]) -> Vec<T> {
        src.iter().map(|&i| v[i]).collect()
    }
    match data {
        ArrayData::F32(v) => ArrayData::F32(gather(v, &src)),
        ArrayData::F64(v) => ArrayData::F64(gather(v, &src)),
        ArrayData::I64(v) => ArrayData::I64(gather(v, &src)),
        ArrayData::I32(v) => ArrayData::I32(gather(v, &src)),
        ArrayData::U8(v) => ArrayData::U8(gather(v, &src)),
    }
}

/// Serialises an array as `.npy` bytes into `w`. `file` names the destination in errors.
pub(crate) fn encode_npy<W: Write>(w: &mut W, a: &NpyArray, file: &str) -> Result<()> {
    let expected = a
        .shape
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s));
    if expected != Some(a.len()) {
        return Err(DataError::shape(
            file,
            format!(
                "array of shape {} needs {:?} values, has {}",
                a.shape_string(),
                expected,
                a.len()
            ),
        ));
    }
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        a.data.descr(),
        a.shape_string()
    );
    // numpy pads the header with spaces and a final newline so the data starts on a
    // multiple of 64 bytes (aligned for memory mapping).
    let (prefix, version) = if header.len() + 11 <= 65535 {
        (10, 1u8)
    } else {
        (12, 2u8)
    };
    let total = (prefix + header.len() + 1).div_ceil(64) * 64;
    header.extend(std::iter::repeat_n(' ', total - prefix - header.len() - 1));
    header.push('\n');
    let io = |e| DataError::Io {
        file: file.to_string(),
        source: e,
    };
    w.write_all(MAGIC).map_err(io)?;
    w.write_all(&[version, 0]).map_err(io)?;
    if version == 1 {
        w.write_all(&(header.len() as u16).to_le_bytes())
            .map_err(io)?;
    } else {
        w.write_all(&(header.len() as u32).to_le_bytes())
            .map_err(io)?;
    }
    w.write_all(header.as_bytes()).map_err(io)?;
    let mut buf = Vec::with_capacity(1 << 16);
    macro_rules! put {
        ($v:expr) => {
            for chunk in $v.chunks(8192) {
                buf.clear();
                for x in chunk {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                w.write_all(&buf).map_err(io)?;
            }
        };
    }
    match &a.data {
        ArrayData::F32(v) => put!(v),
        ArrayData::F64(v) => put!(v),
        ArrayData::I64(v) => put!(v),
        ArrayData::I32(v) => put!(v),
        ArrayData::U8(v) => w.write_all(v).map_err(io)?,
    }
    Ok(())
}

/// Writes a `.npy` file atomically (temporary file in the same directory, then rename).
pub fn write_npy(path: &Path, a: &NpyArray) -> Result<()> {
    let file = name(path);
    write_atomic(path, |w| encode_npy(w, a, &file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(a: &NpyArray) -> Vec<u8> {
        let mut v = Vec::new();
        encode_npy(&mut v, a, "mem").unwrap();
        v
    }

    #[test]
    fn round_trip_all_types_and_alignment() {
        let arrays = [
            NpyArray::f32(vec![2, 3], vec![1.0, -2.5, 3.0, 4.0, 5.0, f32::MAX]),
            NpyArray {
                shape: vec![2],
                data: ArrayData::F64(vec![0.1, -1e300]),
            },
            NpyArray::i64(vec![3], vec![-1, 0, i64::MAX]),
            NpyArray {
                shape: vec![1, 2, 1],
                data: ArrayData::I32(vec![-7, 9]),
            },
            NpyArray {
                shape: vec![],
                data: ArrayData::U8(vec![255]),
            },
            NpyArray::f32(vec![0, 5], vec![]),
        ];
        for a in arrays {
            let b = bytes(&a);
            let header_len = u16::from_le_bytes([b[8], b[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0, "header not 64-aligned");
            assert_eq!(parse_npy(&b, "mem").unwrap(), a);
        }
    }

    #[test]
    fn shape_strings_match_numpy() {
        assert_eq!(shape_string(&[]), "()");
        assert_eq!(shape_string(&[99]), "(99,)");
        assert_eq!(shape_string(&[100, 784]), "(100, 784)");
    }

    fn raw(descr: &str, fortran: bool, shape: &str, body: &[u8]) -> Vec<u8> {
        let header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}\n",
            if fortran { "True" } else { "False" }
        );
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(header.len() as u16).to_le_bytes());
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn big_endian_and_fortran_order_are_converted() {
        let body: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        let a = parse_npy(&raw(">f4", false, "(2,)", &body), "be.npy").unwrap();
        assert_eq!(a.data, ArrayData::F32(vec![1.5, -2.0]));
        // Fortran (2, 3): columns stored one after the other.
        let vals: [i32; 6] = [1, 4, 2, 5, 3, 6];
        let body: Vec<u8> = vals.iter().flat_map(|x| x.to_le_bytes()).collect();
        let a = parse_npy(&raw("<i4", true, "(2, 3)", &body), "f.npy").unwrap();
        assert_eq!(a.data, ArrayData::I32(vec![1, 2, 3, 4, 5, 6]));
        let body: Vec<u8> = [1u16, 65535].iter().flat_map(|x| x.to_le_bytes()).collect();
        let a = parse_npy(&raw("<u2", false, "(2,)", &body), "u.npy").unwrap();
        assert_eq!(a.to_i64().unwrap(), vec![1, 65535]);
    }

    #[test]
    fn bad_inputs_are_named_errors() {
        let e = parse_npy(b"PK\x03\x04 not npy", "x.npy").unwrap_err();
        assert!(matches!(e, DataError::BadMagic { .. }), "{e}");
        assert!(e.to_string().starts_with("x.npy: bad magic"), "{e}");

        let good = bytes(&NpyArray::f32(vec![4], vec![1.0; 4]));
        let e = parse_npy(&good[..good.len() - 3], "t.npy").unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Truncated {
                    expected: 16,
                    found: 13,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_npy(&good[..20], "t.npy").unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }), "{e}");

        let e = parse_npy(&raw("<c8", false, "(1,)", &[0; 8]), "c.npy").unwrap_err();
        assert!(e.to_string().contains("dtype '<c8'"), "{e}");
        let e = parse_npy(&raw("O", false, "(1,)", &[0; 8]), "o.npy").unwrap_err();
        assert!(matches!(e, DataError::Unsupported { .. }), "{e}");
        let e = parse_npy(&raw("<f4", false, "(1, -2)", &[]), "s.npy").unwrap_err();
        assert!(matches!(e, DataError::Format { .. }), "{e}");
        let e =
            parse_npy(&raw("<f4", false, "(4611686018427387904, 4)", &[]), "o.npy").unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
        let e = parse_npy(&raw("<f4", false, "(1,)", &[0; 8]), "l.npy").unwrap_err();
        assert!(e.to_string().contains("4 bytes after"), "{e}");
        let mut v = good.clone();
        v[6] = 9;
        assert!(matches!(
            parse_npy(&v, "v.npy").unwrap_err(),
            DataError::Unsupported { .. }
        ));
    }

    #[test]
    fn to_i64_accepts_integral_floats_only() {
        assert_eq!(
            NpyArray::f32(vec![2], vec![3.0, -1.0]).to_i64().unwrap(),
            vec![3, -1]
        );
        let e = NpyArray::f32(vec![2], vec![3.0, 0.5]).to_i64().unwrap_err();
        assert!(e.to_string().contains("element 1"), "{e}");
        assert!(NpyArray::f32(vec![1], vec![f32::NAN]).to_i64().is_err());
        assert!(NpyArray::f32(vec![1], vec![1e30]).to_i64().is_err());
    }
}

//! numpy `.npz` archives: a zip file whose members are `.npy` arrays (`np.savez` stores them,
//! `np.savez_compressed` deflates them; both are read). Written archives use stored members,
//! like `np.savez`, which numpy and every zip tool read; members over 4 GiB get zip64 records.

use crate::atomic::write_atomic;
use crate::error::{name, DataError, Result};
use crate::npy::{encode_npy, parse_npy, NpyArray};
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// Reads every array of an `.npz` file, keyed by member name without the `.npy` suffix
/// (`x.npy` → `x`), as `np.load(...)[key]` names them.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, NpyArray>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    parse_npz(std::io::BufReader::new(file), &name(path))
}

/// Reads an `.npz` archive from any seekable reader; `file` names it in errors.
pub fn parse_npz<R: Read + Seek>(reader: R, file: &str) -> Result<BTreeMap<String, NpyArray>> {
    let mut archive = ZipArchive::new(reader).map_err(|e| match e {
        zip::result::ZipError::Io(io) => DataError::Io {
            file: file.to_string(),
            source: io,
        },
        other => DataError::format(file, format!("not a valid npz (zip) archive: {other}")),
    })?;
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).map_err(|e| match e {
            zip::result::ZipError::UnsupportedArchive(what) => DataError::Unsupported {
                file: file.to_string(),
                what: format!("zip member {i}: {what}"),
            },
            other => DataError::format(file, format!("zip member {i}: {other}")),
        })?;
        if member.is_dir() {
            continue;
        }
        let member_name = member.name().to_string();
        let key = member_name
            .strip_suffix(".npy")
            .unwrap_or(&member_name)
            .to_string();
        // Never trust the declared size for the allocation; grow as data actually arrives.
        let mut bytes = Vec::with_capacity((member.size() as usize).min(1 << 26));
        member
            .read_to_end(&mut bytes)
            .map_err(|e| DataError::Decompress {
                file: format!("{file}: member `{member_name}`"),
                format: "zip",
                reason: e.to_string(),
            })?;
        let array = parse_npy(&bytes, &format!("{file}: array `{key}`"))?;
        out.insert(key, array);
    }
    Ok(out)
}

/// Writes arrays to an `.npz` file atomically; `np.load(path)[name]` returns each array.
pub fn write_npz(path: &Path, arrays: &[(&str, &NpyArray)]) -> Result<()> {
    let file = name(path);
    write_atomic(path, |w| encode_npz(w, arrays, &file))
}

pub(crate) fn encode_npz<W: Write + Seek>(
    w: W,
    arrays: &[(&str, &NpyArray)],
    file: &str,
) -> Result<()> {
    let zip_err = |e: zip::result::ZipError| DataError::format(file, format!("writing zip: {e}"));
    let mut zip = ZipWriter::new(w);
    let mut seen = std::collections::BTreeSet::new();
    for (key, array) in arrays {
        if !seen.insert(*key) {
            return Err(DataError::Invalid {
                what: format!("{file}: array `{key}`"),
                problem: "given twice".to_string(),
            });
        }
        let mut bytes = Vec::new();
        encode_npy(&mut bytes, array, &format!("{file}: array `{key}`"))?;
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Stored)
            .large_file(bytes.len() as u64 >= u32::MAX as u64);
        zip.start_file(format!("{key}.npy"), options)
            .map_err(zip_err)?;
        zip.write_all(&bytes).map_err(|e| DataError::Io {
            file: file.to_string(),
            source: e,
        })?;
    }
    zip.finish().map_err(zip_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npy::ArrayData;
    use std::io::Cursor;

    #[test]
    fn round_trip_in_memory() {
        let x = NpyArray::f32(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let y = NpyArray::i64(vec![2], vec![0, 1]);
        let mut buf = Cursor::new(Vec::new());
        encode_npz(&mut buf, &[("x", &x), ("y", &y)], "mem.npz").unwrap();
        let back = parse_npz(Cursor::new(buf.into_inner()), "mem.npz").unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back["x"], x);
        assert_eq!(back["y"].data, ArrayData::I64(vec![0, 1]));
    }

    #[test]
    fn deflated_members_are_read() {
        // An archive as np.savez_compressed writes it: deflated members.
        let x = NpyArray::f32(vec![3], vec![0.5; 3]);
        let mut npy = Vec::new();
        encode_npy(&mut npy, &x, "mem").unwrap();
        let mut buf = Cursor::new(Vec::new());
        {
            let mut zip = ZipWriter::new(&mut buf);
            let opts = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
            zip.start_file("x.npy", opts).unwrap();
            zip.write_all(&npy).unwrap();
            zip.finish().unwrap();
        }
        let back = parse_npz(Cursor::new(buf.into_inner()), "c.npz").unwrap();
        assert_eq!(back["x"], x);
    }

    #[test]
    fn corrupt_archives_are_named_errors() {
        let e = parse_npz(Cursor::new(b"not a zip at all".to_vec()), "bad.npz").unwrap_err();
        assert!(e.to_string().starts_with("bad.npz: not a valid npz"), "{e}");
        let x = NpyArray::f32(vec![64], vec![0.25; 64]);
        let mut buf = Cursor::new(Vec::new());
        encode_npz(&mut buf, &[("x", &x)], "m").unwrap();
        let mut bytes = buf.into_inner();
        // Flip a data byte: the CRC check must catch it.
        bytes[100] ^= 0xff;
        let e = parse_npz(Cursor::new(bytes), "crc.npz").unwrap_err();
        assert!(e.to_string().contains("crc.npz"), "{e}");
        let e = encode_npz(Cursor::new(Vec::new()), &[("x", &x), ("x", &x)], "d.npz").unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
    }
}

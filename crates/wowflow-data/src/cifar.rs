//! CIFAR-10, "binary version" (`cifar-10-binary.tar.gz`).
//!
//! Each batch file (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`) is a sequence
//! of 3073-byte records: one label byte (0–9), then 1024 red, 1024 green and 1024 blue bytes
//! of a 32×32 image, row-major. Batches are read from the unpacked directory
//! `cifar-10-batches-bin/` or straight from the downloaded tarball (a minimal ustar reader
//! below, so users need not unpack 170 MB by hand).

use crate::compress::decompress;
use crate::error::{name, DataError, Result};
use crate::images::{ImageSet, Pixels};
use std::path::Path;

const SIDE: usize = 32;
const RECORD: usize = 1 + 3 * SIDE * SIDE;

/// The batch files of a split.
pub fn cifar10_batch_names(split: &str) -> &'static [&'static str] {
    match split {
        "train" => &[
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
        ],
        _ => &["test_batch.bin"],
    }
}

/// Appends the records of one batch file's bytes to `pixels` and `labels`.
pub fn parse_cifar10_batch(
    bytes: &[u8],
    file: &str,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u8>,
) -> Result<()> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        let whole = bytes.len() / RECORD;
        return Err(DataError::truncated(
            file,
            format!("CIFAR-10 batch ({whole} whole records of {RECORD} bytes, then a partial one)"),
            ((whole + 1) * RECORD) as u64,
            bytes.len() as u64,
        ));
    }
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            return Err(DataError::LabelOutOfRange {
                file: file.to_string(),
                index: i,
                label: rec[0] as i64,
                expected: "0..=9".to_string(),
            });
        }
        labels.push(rec[0]);
        pixels.extend_from_slice(&rec[1..]);
    }
    Ok(())
}

/// Reads a split from a directory holding the `.bin` batch files.
pub fn read_cifar10_dir(dir: &Path, split: &str) -> Result<ImageSet> {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for f in cifar10_batch_names(split) {
        let p = dir.join(f);
        let bytes = std::fs::read(&p).map_err(|e| DataError::io(&p, e))?;
        parse_cifar10_batch(&bytes, &name(&p), &mut pixels, &mut labels)?;
    }
    ImageSet::new((3, SIDE, SIDE), Pixels::U8(pixels), labels, 10, &name(dir))
}

/// Reads a split straight from `cifar-10-binary.tar.gz` (or an uncompressed `.tar`).
pub fn read_cifar10_tar(path: &Path, split: &str) -> Result<ImageSet> {
    let file = name(path);
    let tar = decompress(
        std::fs::read(path).map_err(|e| DataError::io(path, e))?,
        &file,
    )?;
    parse_cifar10_tar(&tar, split, &file)
}

/// Extracts a split's batches from tar bytes.
pub fn parse_cifar10_tar(tar: &[u8], split: &str, file: &str) -> Result<ImageSet> {
    let members = tar_members(tar, file)?;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for want in cifar10_batch_names(split) {
        let (_, data) = members
            .iter()
            .find(|(n, _)| n.rsplit('/').next() == Some(want))
            .ok_or_else(|| {
                DataError::format(file, format!("the archive has no member `{want}`"))
            })?;
        parse_cifar10_batch(data, &format!("{file}: {want}"), &mut pixels, &mut labels)?;
    }
    ImageSet::new((3, SIDE, SIDE), Pixels::U8(pixels), labels, 10, file)
}

/// Regular-file members of a ustar/GNU tar archive: (path, contents).
fn tar_members<'a>(tar: &'a [u8], file: &str) -> Result<Vec<(String, &'a [u8])>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 512 <= tar.len() {
        let h = &tar[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            break; // end-of-archive marker
        }
        let field = |a: usize, b: usize| {
            let f = &h[a..b];
            let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        let size_text = field(124, 136);
        let size = u64::from_str_radix(size_text.trim(), 8).map_err(|_| {
            DataError::format(
                file,
                format!("tar header at byte {pos}: bad size field `{size_text}`"),
            )
        })?;
        let size =
            usize::try_from(size).map_err(|_| DataError::format(file, "tar member too large"))?;
        let mut path = field(0, 100);
        if &h[257..262] == b"ustar" {
            let prefix = field(345, 500);
            if !prefix.is_empty() {
                path = format!("{prefix}/{path}");
            }
        }
        let start = pos + 512;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= tar.len())
            .ok_or_else(|| {
                DataError::truncated(
                    file,
                    format!("tar member `{path}`"),
                    size as u64,
                    (tar.len() - start) as u64,
                )
            })?;
        if matches!(h[156], b'0' | 0) {
            out.push((path, &tar[start..end]));
        }
        pos = start + size.div_ceil(512) * 512;
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A batch in the real record layout: label byte then R, G, B planes.
    pub(crate) fn batch(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for (i, &l) in labels.iter().enumerate() {
            v.push(l);
            v.extend((0..3 * 1024).map(|k| ((k / 1024) * 100 + i) as u8));
        }
        v
    }

    /// A ustar archive with the given members.
    pub(crate) fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, data) in members {
            let mut h = [0u8; 512];
            h[..path.len()].copy_from_slice(path.as_bytes());
            h[100..107].copy_from_slice(b"0000644");
            let size = format!("{:011o}", data.len());
            h[124..135].copy_from_slice(size.as_bytes());
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| b as u32).sum();
            h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn batches_decode_from_dir_and_tar() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("test_batch.bin"), batch(&[3, 9])).unwrap();
        let set = read_cifar10_dir(dir.path(), "test").unwrap();
        assert_eq!((set.len(), set.channels, set.height), (2, 3, 32));
        assert_eq!(set.labels, vec![3, 9]);
        // Green plane of image 1 starts at 1024 and holds 100 + 1.
        assert_eq!(set.image(1)[1024], 101.0 / 255.0);
        let t = tar(&[
            ("cifar-10-batches-bin/batches.meta.txt", b"airplane\n"),
            ("cifar-10-batches-bin/test_batch.bin", &batch(&[1])),
        ]);
        let set = parse_cifar10_tar(&t, "test", "c.tar").unwrap();
        assert_eq!(set.labels, vec![1]);
        let e = parse_cifar10_tar(&t, "train", "c.tar").unwrap_err();
        assert!(
            e.to_string().contains("no member `data_batch_1.bin`"),
            "{e}"
        );
    }

    #[test]
    fn bad_batches_are_named_errors() {
        let (mut p, mut l) = (Vec::new(), Vec::new());
        let b = batch(&[1, 2]);
        let e = parse_cifar10_batch(&b[..b.len() - 1], "b.bin", &mut p, &mut l).unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }), "{e}");
        let e = parse_cifar10_batch(&batch(&[1, 12]), "b.bin", &mut p, &mut l).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 12,
                    ..
                }
            ),
            "{e}"
        );
        let t = tar(&[("x/test_batch.bin", &batch(&[1]))]);
        let e = parse_cifar10_tar(&t[..1000], "test", "t.tar").unwrap_err();
        assert!(matches!(e, DataError::Truncated { .. }), "{e}");
    }
}

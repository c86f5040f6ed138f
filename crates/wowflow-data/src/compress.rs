//! Transparent decompression: dataset files come gzip- or bzip2-compressed or raw, and the
//! parsers should not care. The format is detected from the first bytes (gzip `1f 8b`,
//! bzip2 `BZh`), not from the extension, because renamed or re-compressed copies are common
//! (Debian re-gzips Fashion-MNIST; people keep unpacked idx files).
//!
//! Both decoders are pure Rust (flate2 with zlib-rs, bzip2 with libbz2-rs-sys), so nothing
//! needs a system library.

use crate::error::{name, DataError, Result};
use std::io::Read;
use std::path::Path;

/// The compression a byte stream starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No known compression signature: the bytes are used as they are.
    None,
    /// gzip (starts with `1f 8b`); concatenated members are all decoded.
    Gzip,
    /// bzip2 (starts with `BZh` and a block-size digit `1`–`9`); concatenated streams are
    /// all decoded.
    Bzip2,
}

/// Detects gzip or bzip2 from the magic bytes.
pub fn detect(bytes: &[u8]) -> Compression {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if bytes.len() >= 4 && bytes.starts_with(b"BZh") && (b'1'..=b'9').contains(&bytes[3]) {
        Compression::Bzip2
    } else {
        Compression::None
    }
}

/// Reads a file and decompresses it if it is gzip or bzip2.
pub fn read_decompressed(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decompress(bytes, &name(path))
}

/// Decompresses `bytes` if they are gzip or bzip2, else returns them unchanged.
pub fn decompress(bytes: Vec<u8>, file: &str) -> Result<Vec<u8>> {
    match detect(&bytes) {
        Compression::None => Ok(bytes),
        Compression::Gzip => {
            // The gzip trailer holds the uncompressed size mod 2^32: a good capacity hint,
            // capped so a forged trailer cannot trigger a huge allocation.
            let hint = bytes
                .get(bytes.len().saturating_sub(4)..)
                .and_then(|t| t.try_into().ok())
                .map(|t: [u8; 4]| u32::from_le_bytes(t) as usize)
                .unwrap_or(0)
                .min(bytes.len().saturating_mul(64))
                .min(1 << 30);
            let mut out = Vec::with_capacity(hint);
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .map_err(|e| DataError::Decompress {
                    file: file.to_string(),
                    format: "gzip",
                    reason: e.to_string(),
                })?;
            Ok(out)
        }
        Compression::Bzip2 => {
            let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(1 << 30));
            bzip2::read::MultiBzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .map_err(|e| DataError::Decompress {
                    file: file.to_string(),
                    format: "bzip2",
                    reason: e.to_string(),
                })?;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_and_bzip2_round_trip_and_corruption_is_named() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(&data).unwrap();
        let bz = bz.finish().unwrap();
        assert_eq!(detect(&gz), Compression::Gzip);
        assert_eq!(detect(&bz), Compression::Bzip2);
        assert_eq!(decompress(gz.clone(), "a.gz").unwrap(), data);
        assert_eq!(decompress(bz.clone(), "a.bz2").unwrap(), data);
        assert_eq!(decompress(data.clone(), "raw").unwrap(), data);

        let e = decompress(gz[..gz.len() / 2].to_vec(), "half.gz").unwrap_err();
        assert!(
            matches!(e, DataError::Decompress { format: "gzip", .. }),
            "{e}"
        );
        assert!(
            e.to_string().starts_with("half.gz: broken gzip stream"),
            "{e}"
        );
        let e = decompress(bz[..bz.len() / 2].to_vec(), "half.bz2").unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Decompress {
                    format: "bzip2",
                    ..
                }
            ),
            "{e}"
        );
        let mut bad = bz.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        assert!(decompress(bad, "flip.bz2").is_err());
        let mut bad = gz.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        assert!(decompress(bad, "flip.gz").is_err());
    }
}

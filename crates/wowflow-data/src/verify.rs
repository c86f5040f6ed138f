//! Checksums and the reports behind `wowflow data list` and `wowflow data verify`.
//!
//! `list` only stats files (size check, instant); `verify` reads every byte and compares md5
//! and sha256 with the registry (about 0.1 s for all of MNIST).

use crate::error::{name, DataError, Result};
use crate::registry::{dataset, DataDirs, DatasetSpec, FileSpec, Origin, DATASETS};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Size and digests of a file, hex-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// File size in bytes.
    pub bytes: u64,
    /// md5 of the file's bytes, lowercase hex (32 characters).
    pub md5: String,
    /// sha256 of the file's bytes, lowercase hex (64 characters).
    pub sha256: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a file once and computes its md5 and sha256.
pub fn digest_file(path: &Path) -> Result<Digests> {
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let (mut m, mut s) = (Md5::new(), Sha256::new());
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        m.update(&buf[..n]);
        s.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(Digests {
        bytes,
        md5: hex(&m.finalize()),
        sha256: hex(&s.finalize()),
    })
}

/// The outcome of checking one file against the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Size, md5 and (where known) sha256 match the reference copy.
    Verified,
    /// Not byte-identical to the reference, but a registered copy with identical content
    /// (e.g. Debian's re-gzipped Fashion-MNIST).
    KnownCopy,
    /// Only the size was checked, and it matches (`data list`).
    SizeOk,
    /// The file differs from every registered copy.
    Mismatch(String),
}

impl Check {
    /// True unless the file is known to be wrong.
    pub fn is_ok(&self) -> bool {
        !matches!(self, Check::Mismatch(_))
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Verified => f.write_str("verified (size, md5, sha256)"),
            Check::KnownCopy => {
                f.write_str("verified (registered re-compressed copy, same content)")
            }
            Check::SizeOk => f.write_str("size ok (not checksummed; run `data verify`)"),
            Check::Mismatch(why) => write!(f, "MISMATCH: {why}"),
        }
    }
}

/// Compares a file's digests with its registry entry.
pub fn check_digests(spec: &FileSpec, d: &Digests) -> Check {
    if d.md5 == spec.md5 {
        if d.bytes != spec.bytes {
            return Check::Mismatch(format!("size {} bytes, expected {}", d.bytes, spec.bytes));
        }
        match spec.sha256 {
            Some(s) if s != d.sha256 => {
                Check::Mismatch(format!("sha256 {}, expected {s}", d.sha256))
            }
            _ => Check::Verified,
        }
    } else if spec.alt_md5.contains(&d.md5.as_str()) {
        Check::KnownCopy
    } else {
        Check::Mismatch(format!("md5 {}, expected {}", d.md5, spec.md5))
    }
}

/// Checks a file fully (digests) and turns a mismatch into a [`DataError::Checksum`].
pub fn verify_file(spec: &FileSpec, path: &Path) -> Result<Check> {
    let d = digest_file(path)?;
    match check_digests(spec, &d) {
        Check::Mismatch(_) if d.md5 != spec.md5 && !spec.alt_md5.contains(&d.md5.as_str()) => {
            Err(DataError::Checksum {
                file: name(path),
                algorithm: "md5",
                expected: spec.md5.to_string(),
                found: d.md5,
            })
        }
        Check::Mismatch(why) => Err(DataError::format(name(path), why)),
        ok => Ok(ok),
    }
}

/// One file's line in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct FileStatus {
    /// The file's registry entry.
    pub spec: &'static FileSpec,
    /// Where it was found, if anywhere.
    pub found: Option<(PathBuf, Origin)>,
    /// The check done (`None` when the file was not found).
    pub check: Option<Check>,
}

/// One dataset's files.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetStatus {
    /// The dataset's registry entry.
    pub spec: &'static DatasetSpec,
    /// One status per file of `spec.files`, in registry order.
    pub files: Vec<FileStatus>,
}

impl DatasetStatus {
    /// True when every required file was found and none is known to be wrong.
    pub fn complete(&self) -> bool {
        self.files
            .iter()
            .all(|f| !f.spec.required || f.check.as_ref().is_some_and(Check::is_ok))
    }
}

fn status(ds: &'static DatasetSpec, dirs: &DataDirs, full: bool) -> DatasetStatus {
    let files = ds
        .files
        .iter()
        .map(|spec| {
            let found = dirs.find(ds, spec.name);
            let check = found.as_ref().map(|(p, _)| {
                if full {
                    match digest_file(p) {
                        Ok(d) => check_digests(spec, &d),
                        Err(e) => Check::Mismatch(e.to_string()),
                    }
                } else {
                    match std::fs::metadata(p) {
                        Ok(m) if m.len() == spec.bytes => Check::SizeOk,
                        // A registered alternative copy has another size; only checksums tell.
                        Ok(_) if !spec.alt_md5.is_empty() => Check::SizeOk,
                        Ok(m) => Check::Mismatch(format!(
                            "size {} bytes, expected {}",
                            m.len(),
                            spec.bytes
                        )),
                        Err(e) => Check::Mismatch(e.to_string()),
                    }
                }
            });
            FileStatus { spec, found, check }
        })
        .collect();
    DatasetStatus { spec: ds, files }
}

/// `data list`: every dataset, where each file was found, sizes checked.
pub fn list(dirs: &DataDirs) -> Vec<DatasetStatus> {
    DATASETS.iter().map(|ds| status(ds, dirs, false)).collect()
}

/// `data verify [NAME]`: full checksums of one dataset, or of all datasets.
pub fn verify(dirs: &DataDirs, name: Option<&str>) -> Result<Vec<DatasetStatus>> {
    Ok(match name {
        Some(n) => vec![status(dataset(n)?, dirs, true)],
        None => DATASETS.iter().map(|ds| status(ds, dirs, true)).collect(),
    })
}

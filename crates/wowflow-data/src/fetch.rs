//! `wowflow data fetch`: verified downloads with resume.
//!
//! Each file goes to `<to_dir>/<dataset dir>/<file>.part` first. An interrupted transfer
//! leaves the `.part` file, and the next fetch asks the server for the rest with an HTTP
//! `Range` request (a server that ignores it answers 200 and the file restarts). Only after
//! size, md5 and sha256 match the registry is the file renamed to its final name, so a file
//! under its final name is always complete and verified. A checksum mismatch deletes the
//! `.part` file (its bytes are wrong, resuming would keep them) and is an error.
//!
//! HTTP goes through `ureq` with rustls (no system TLS library). Mirrors are tried in
//! registry order; `base_url_override` replaces them with `<base>/<file name>` (private
//! mirrors, and the tests' local server).

use crate::error::{name, DataError, Result};
use crate::registry::{dataset, FileSpec};
use crate::verify::{check_digests, digest_file, Check};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// A verified copy was already there; nothing was downloaded.
    AlreadyPresent,
    /// Downloaded (`resumed_from` > 0 when an earlier partial transfer was continued).
    Downloaded {
        /// The file's full size in bytes, verified against the registry (not only the bytes
        /// transferred by this call).
        bytes: u64,
        /// Bytes already on disk from an earlier partial transfer, where this one started;
        /// 0 for a fresh download.
        resumed_from: u64,
    },
    /// The registry has no public address for this file (e.g. Kaggle's `usps.h5`).
    NoPublicUrl,
}

/// The result of fetching one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// The file's name in the registry ([`FileSpec::name`]).
    pub file: &'static str,
    /// Where the file is (or would be): `<to_dir>/<dataset dir>/<file>`.
    pub path: PathBuf,
    /// What happened to it.
    pub outcome: FetchOutcome,
}

/// Progress callback: (file name, bytes present so far, expected total).
pub type Progress<'a> = &'a mut dyn FnMut(&str, u64, u64);

/// Fetches every file of dataset `name` that has a public address into
/// `<to_dir>/<dataset dir>/`, skipping files already present and verified.
pub fn fetch(
    name: &str,
    to_dir: &Path,
    base_url_override: Option<&str>,
) -> Result<Vec<FetchReport>> {
    fetch_with_progress(name, to_dir, base_url_override, &mut |_, _, _| {})
}

/// [`fetch`] with a progress callback (for a progress bar).
pub fn fetch_with_progress(
    name: &str,
    to_dir: &Path,
    base_url_override: Option<&str>,
    progress: Progress,
) -> Result<Vec<FetchReport>> {
    let ds = dataset(name)?;
    let dir = to_dir.join(ds.dir);
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    let mut out = Vec::new();
    for spec in ds.files {
        let dest = dir.join(spec.name);
        let urls: Vec<String> = match base_url_override {
            Some(base) => vec![format!("{}/{}", base.trim_end_matches('/'), spec.name)],
            None => spec.urls.iter().map(|u| u.to_string()).collect(),
        };
        let outcome = if urls.is_empty() {
            if dest.is_file() {
                FetchOutcome::AlreadyPresent
            } else {
                FetchOutcome::NoPublicUrl
            }
        } else {
            fetch_file(spec, &urls, &dest, progress)?
        };
        out.push(FetchReport {
            file: spec.name,
            path: dest,
            outcome,
        });
    }
    Ok(out)
}

fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.split(['/', ':']).next().unwrap_or("");
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

fn agent(url: &str) -> ureq::Agent {
    let mut cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        // Per read, not for the whole body: a slow but live transfer is fine.
        .timeout_per_read(Some(Duration::from_secs(60)))
        .user_agent(concat!("wowflow-data/", env!("CARGO_PKG_VERSION")));
    if is_loopback(url) {
        // A proxy from the environment must never see local traffic.
        cfg = cfg.proxy(None);
    }
    cfg.build().into()
}

/// Downloads one file to `dest` (resuming `dest.part`), verifying it against `spec`.
/// `urls` are tried in order until one succeeds; the last error is returned otherwise.
pub fn fetch_file(
    spec: &FileSpec,
    urls: &[String],
    dest: &Path,
    progress: Progress,
) -> Result<FetchOutcome> {
    if dest.is_file() {
        if let Ok(d) = digest_file(dest) {
            if matches!(check_digests(spec, &d), Check::Verified | Check::KnownCopy) {
                return Ok(FetchOutcome::AlreadyPresent);
            }
        }
    }
    let part = PathBuf::from(format!("{}.part", dest.display()));
    let mut last_err = None;
    for url in urls {
        match download(spec, url, &part, progress) {
            Ok(resumed_from) => {
                finish(spec, &part, dest)?;
                return Ok(FetchOutcome::Downloaded {
                    bytes: spec.bytes,
                    resumed_from,
                });
            }
            // Wrong bytes are not a mirror problem worth hiding behind the next mirror's
            // error, but the next mirror may have the right ones: keep trying, report this.
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| DataError::Http {
        url: spec.name.to_string(),
        problem: "no download address".to_string(),
    }))
}

/// Streams `url` into `part`, continuing an existing partial file. Returns the offset the
/// transfer resumed from.
fn download(spec: &FileSpec, url: &str, part: &Path, progress: Progress) -> Result<u64> {
    let http = |problem: String| DataError::Http {
        url: url.to_string(),
        problem,
    };
    let mut offset = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if offset >= spec.bytes {
        // Complete (or over-long) leftovers: let verification decide, from scratch if wrong.
        if offset == spec.bytes && finish_check(spec, part) {
            return Ok(offset);
        }
        std::fs::remove_file(part).map_err(|e| DataError::io(part, e))?;
        offset = 0;
    }
    let agent = agent(url);
    let mut req = agent.get(url);
    if offset > 0 {
        req = req.header("Range", &format!("bytes={offset}-"));
    }
    let mut resp = req.call().map_err(|e| http(e.to_string()))?;
    let status = resp.status().as_u16();
    let resumed_from = match status {
        206 => {
            // Content-Range: bytes START-END/TOTAL must start where our file ends.
            let start = resp
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if start != Some(offset) {
                return Err(http(format!(
                    "server resumed at {start:?}, expected byte {offset}"
                )));
            }
            offset
        }
        200 => 0,
        416 => {
            let _ = std::fs::remove_file(part);
            return Err(http(
                "HTTP 416 (range not satisfiable): partial file discarded, fetch again".to_string(),
            ));
        }
        s => {
            let reason = resp.status().canonical_reason().unwrap_or("");
            return Err(http(format!("HTTP {s} {reason}")));
        }
    };
    let mut file = if resumed_from > 0 {
        OpenOptions::new().append(true).open(part)
    } else {
        File::create(part)
    }
    .map_err(|e| DataError::io(part, e))?;
    let mut reader = resp
        .body_mut()
        .with_config()
        .limit(spec.bytes.saturating_mul(2).max(1 << 20))
        .reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut have = resumed_from;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                let _ = file.flush();
                return Err(http(format!(
                    "transfer interrupted after {have} of {} bytes ({e}); run fetch again to resume",
                    spec.bytes
                )));
            }
        };
        file.write_all(&buf[..n])
            .map_err(|e| DataError::io(part, e))?;
        have += n as u64;
        progress(spec.name, have, spec.bytes);
    }
    file.sync_all().map_err(|e| DataError::io(part, e))?;
    if have < spec.bytes {
        return Err(http(format!(
            "transfer ended after {have} of {} bytes; run fetch again to resume",
            spec.bytes
        )));
    }
    Ok(resumed_from)
}

fn finish_check(spec: &FileSpec, part: &Path) -> bool {
    digest_file(part)
        .map(|d| check_digests(spec, &d) == Check::Verified)
        .unwrap_or(false)
}

/// Verifies the complete `.part` file and renames it into place; wrong bytes are deleted.
fn finish(spec: &FileSpec, part: &Path, dest: &Path) -> Result<()> {
    let d = digest_file(part)?;
    match check_digests(spec, &d) {
        Check::Verified => std::fs::rename(part, dest).map_err(|e| DataError::io(dest, e)),
        _ => {
            let _ = std::fs::remove_file(part);
            let (algorithm, expected, found) = if d.md5 != spec.md5 {
                ("md5", spec.md5.to_string(), d.md5)
            } else if d.bytes != spec.bytes {
                ("size", spec.bytes.to_string(), d.bytes.to_string())
            } else {
                ("sha256", spec.sha256.unwrap_or("").to_string(), d.sha256)
            };
            Err(DataError::Checksum {
                file: name(dest),
                algorithm,
                expected,
                found,
            })
        }
    }
}

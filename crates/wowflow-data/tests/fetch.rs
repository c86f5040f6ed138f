//! Downloads against a tiny HTTP server on 127.0.0.1 that each test starts itself. No test
//! contacts any other address.

use md5::{Digest, Md5};
use sha2::Sha256;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use wowflow_data::fetch::{fetch, fetch_file, FetchOutcome};
use wowflow_data::{DataError, FileSpec};

/// How the server answers request number `i` (0-based) for a file.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 200 with the whole body, or 206 for a Range request.
    Normal,
    /// Announce the full length, send only half, close.
    TruncateFirst,
    /// Always 404.
    NotFound,
}

/// Every request the server saw: (path, Range header).
type RequestLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Serves `files` (name → bytes) on 127.0.0.1; returns the base URL and the log of
/// (path, Range header) of every request.
fn serve(files: Vec<(String, Vec<u8>)>, behaviour: Behaviour) -> (String, RequestLog) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for (count, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_string();
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if k.eq_ignore_ascii_case("range") {
                        range = Some(v.trim().to_string());
                    }
                }
            }
            log2.lock().unwrap().push((path.clone(), range.clone()));
            let body = files
                .iter()
                .find(|(n, _)| path == format!("/{n}"))
                .map(|(_, b)| b.clone());
            let (Some(body), false) = (body, matches!(behaviour, Behaviour::NotFound)) else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            };
            let start = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
            let response = match start {
                Some(s) if s < body.len() => {
                    let mut h = format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {s}-{}/{}\r\nConnection: close\r\n\r\n",
                        body.len() - s,
                        body.len() - 1,
                        body.len()
                    )
                    .into_bytes();
                    h.extend_from_slice(&body[s..]);
                    h
                }
                _ => {
                    let mut h = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    if matches!(behaviour, Behaviour::TruncateFirst) && count == 0 {
                        h.extend_from_slice(&body[..body.len() / 2]);
                    } else {
                        h.extend_from_slice(&body);
                    }
                    h
                }
            };
            let _ = stream.write_all(&response);
            let _ = stream.flush();
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    });
    (base, log)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A registry entry for `bytes` (strings leaked: `FileSpec` holds `'static` data).
fn spec_for(name: &'static str, bytes: &[u8]) -> FileSpec {
    let md5: &'static str = Box::leak(hex(&Md5::digest(bytes)).into_boxed_str());
    let sha: &'static str = Box::leak(hex(&Sha256::digest(bytes)).into_boxed_str());
    FileSpec {
        name,
        role: "test payload",
        bytes: bytes.len() as u64,
        md5,
        sha256: Some(sha),
        alt_md5: &[],
        urls: &[],
        required: true,
    }
}

fn payload() -> Vec<u8> {
    (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect()
}

#[test]
fn success_then_already_present() {
    let data = payload();
    let spec = spec_for("blob.bin", &data);
    let (base, log) = serve(vec![("blob.bin".into(), data.clone())], Behaviour::Normal);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob.bin");
    let mut calls = 0;
    let out = fetch_file(
        &spec,
        &[format!("{base}/blob.bin")],
        &dest,
        &mut |_, _, _| calls += 1,
    )
    .unwrap();
    assert_eq!(
        out,
        FetchOutcome::Downloaded {
            bytes: 300_000,
            resumed_from: 0
        }
    );
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(calls > 0);
    assert!(!Path::new(&format!("{}.part", dest.display())).exists());
    let again = fetch_file(
        &spec,
        &[format!("{base}/blob.bin")],
        &dest,
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!(again, FetchOutcome::AlreadyPresent);
    assert_eq!(
        log.lock().unwrap().len(),
        1,
        "a verified file must not be downloaded again"
    );
}

#[test]
fn truncated_transfer_then_resume() {
    let data = payload();
    let spec = spec_for("blob.bin", &data);
    let (base, log) = serve(
        vec![("blob.bin".into(), data.clone())],
        Behaviour::TruncateFirst,
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob.bin");
    let url = [format!("{base}/blob.bin")];
    let e = fetch_file(&spec, &url, &dest, &mut |_, _, _| {}).unwrap_err();
    assert!(matches!(e, DataError::Http { .. }), "{e}");
    assert!(e.to_string().contains("run fetch again to resume"), "{e}");
    assert!(
        !dest.exists(),
        "an incomplete file must not appear under the final name"
    );
    let part = dir.path().join("blob.bin.part");
    let have = std::fs::metadata(&part).unwrap().len();
    assert_eq!(have, 150_000);
    let out = fetch_file(&spec, &url, &dest, &mut |_, _, _| {}).unwrap();
    assert_eq!(
        out,
        FetchOutcome::Downloaded {
            bytes: 300_000,
            resumed_from: 150_000
        }
    );
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let log = log.lock().unwrap();
    assert_eq!(log[1].1.as_deref(), Some("bytes=150000-"), "{log:?}");
}

#[test]
fn wrong_checksum_is_rejected_and_discarded() {
    let data = payload();
    let mut wrong = data.clone();
    wrong[1234] ^= 1;
    let spec = spec_for("blob.bin", &data);
    let (base, _) = serve(vec![("blob.bin".into(), wrong)], Behaviour::Normal);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob.bin");
    let e = fetch_file(
        &spec,
        &[format!("{base}/blob.bin")],
        &dest,
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Checksum {
                algorithm: "md5",
                ..
            }
        ),
        "{e}"
    );
    assert!(!dest.exists() && !dir.path().join("blob.bin.part").exists());
}

#[test]
fn http_error_is_reported_with_url_and_next_mirror_is_tried() {
    let data = payload();
    let spec = spec_for("blob.bin", &data);
    let (bad, _) = serve(vec![], Behaviour::NotFound);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob.bin");
    let e = fetch_file(
        &spec,
        &[format!("{bad}/blob.bin")],
        &dest,
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("HTTP 404"), "{e}");
    assert!(e.to_string().starts_with(&format!("{bad}/blob.bin")), "{e}");
    let (good, _) = serve(vec![("blob.bin".into(), data)], Behaviour::Normal);
    let urls = [format!("{bad}/blob.bin"), format!("{good}/blob.bin")];
    assert!(matches!(
        fetch_file(&spec, &urls, &dest, &mut |_, _, _| {}).unwrap(),
        FetchOutcome::Downloaded { .. }
    ));
}

/// End to end through the registry: serve the real MNIST files from shared/data and fetch
/// the dataset by name with a base-URL override.
#[test]
fn fetch_registered_dataset_from_local_mirror() {
    let Some(shared) =
        wowflow_testkit::shared_data("fetch_registered_dataset_from_local_mirror", &["mnist"])
    else {
        return;
    };
    let mnist = shared.join("mnist");
    let files: Vec<(String, Vec<u8>)> = [
        "t10k-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read(mnist.join(f)).unwrap()))
    .collect();
    let (base, _) = serve(files, Behaviour::Normal);
    let dir = tempfile::tempdir().unwrap();
    let reports = fetch("mnist", dir.path(), Some(&base)).unwrap();
    assert_eq!(reports.len(), 4);
    assert!(reports
        .iter()
        .all(|r| matches!(r.outcome, FetchOutcome::Downloaded { .. })));
    let dirs = wowflow_data::DataDirs::only(vec![wowflow_data::Root {
        path: dir.path().into(),
        origin: wowflow_data::Origin::Cache,
    }]);
    let test = wowflow_data::load_split(&dirs, "mnist", wowflow_data::Split::Test).unwrap();
    assert_eq!(test.len(), 10000);
}

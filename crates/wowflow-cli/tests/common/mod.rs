//! What the `wowflow` binary's tests share: running it, and the small labeled datasets they
//! write. (Each test file uses part of it.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use wowflow_data::{write_npz, NpyArray};

/// Runs the binary built for these tests.
pub fn wowflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wowflow"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs it, asserts success and returns standard output followed by standard error (the
/// log: progress, summaries).
pub fn ok(args: &[&str]) -> String {
    let out = wowflow(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "wowflow {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned() + &stderr
}

/// Runs it, asserts success and returns standard output alone (e.g. one JSON object).
pub fn stdout_of(args: &[&str]) -> String {
    let out = wowflow(args);
    assert!(
        out.status.success(),
        "wowflow {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs it, asserts failure and returns standard error (the message a person reads).
pub fn fails(args: &[&str]) -> String {
    let out = wowflow(args);
    assert!(!out.status.success(), "wowflow {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A labeled dataset with interleaved labels 2, 0, 1, 0, 2, … (unequal class sizes, 2 : 2 :
/// 1), class `y` shifted by `shift · y`, as `(x, y)`; a seeded LCG, so every platform draws
/// the same values.
pub fn dataset(n: usize, d: usize, shift: f32, seed: u32) -> (Vec<f32>, Vec<i64>) {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let y: Vec<i64> = (0..n).map(|i| [2, 0, 1, 0, 2][i % 5]).collect();
    let x = (0..n * d)
        .map(|k| next() + shift * y[k / d] as f32)
        .collect();
    (x, y)
}

/// Writes `x` `(N, d)` and `y` `(N,)` to an `.npz`, with extra arrays.
pub fn write_dataset(path: &Path, x: Vec<f32>, y: Vec<i64>, d: usize, extra: &[(&str, NpyArray)]) {
    let n = y.len();
    let (x, y) = (NpyArray::f32(vec![n, d], x), NpyArray::i64(vec![n], y));
    let mut arrays: Vec<(&str, &NpyArray)> = vec![("x", &x), ("y", &y)];
    arrays.extend(extra.iter().map(|(k, a)| (*k, a)));
    write_npz(path, &arrays).unwrap();
}

/// `wowflow distance --kind KIND A B --json -L 64 EXTRA…`, its one JSON object.
pub fn distance_json(kind: &str, a: &Path, b: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "distance",
        "--kind",
        kind,
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--json",
        "-L",
        "64",
    ];
    args.extend_from_slice(extra);
    serde_json::from_str(stdout_of(&args).trim()).expect("one JSON object")
}

/// The directory of this crate's golden files.
/// The repository's root (its `experiments/` configs).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

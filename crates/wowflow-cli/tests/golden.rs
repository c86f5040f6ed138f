//! Results that a redesign must not change, bit for bit: the rings demo, a `flow` run of
//! every method (and every OTDD dynamics) on a small input, and `distance` of every kind.
//!
//! Each run's numbers are reduced to a fingerprint (FNV-1a over the exact bits of the
//! particles, labels and losses) and compared with `tests/golden/<name>.txt`. The files were
//! recorded before the "library first" redesign (issue 14) with the same seeds; a change of
//! even one bit in one particle fails the test. After a change that is *meant* to move
//! results, re-record with `WOWFLOW_BLESS=1 cargo test -p wowflow-cli --test golden` and say
//! why in the commit.
//!
//! The tiny table cells are kept the same way by `tests/tables.rs`.

mod common;

use common::{golden_dir, stdout_of as ok};
use std::path::Path;
use wowflow_data::{read_npz, ArrayData, NpyArray};
use wowflow_testkit::Fnv;

/// Compares `lines` with `tests/golden/<name>.txt` (or records them under `WOWFLOW_BLESS=1`).
fn check(name: &str, lines: &[String]) {
    wowflow_testkit::golden(&golden_dir(), name, lines);
}

fn fnv_array(a: &NpyArray) -> String {
    let shape: Vec<i64> = a.shape.iter().map(|&s| s as i64).collect();
    let h = Fnv::default().i64s(&shape);
    match &a.data {
        ArrayData::F32(v) => h.f32s(v),
        ArrayData::F64(v) => h.f64s(v),
        ArrayData::I64(v) => h.i64s(v),
        ArrayData::I32(v) => h.i64s(&v.iter().map(|&x| x as i64).collect::<Vec<_>>()),
        ArrayData::U8(v) => h.bytes(v),
    }
    .hex()
}

/// Interleaved labels, unequal classes (2 : 2 : 1), the layout the CLI tests use.
fn dataset(path: &Path, n: usize, d: usize, shift: f32, seed: u32) {
    let (x, y) = common::dataset(n, d, shift, seed);
    common::write_dataset(path, x, y, d, &[]);
}

fn fingerprint(path: &Path) -> String {
    let arrays = read_npz(path).unwrap();
    arrays
        .iter()
        .map(|(k, a)| format!("{k}:{}", fnv_array(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn flows_of_every_method_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (src, tgt) = (dir.path().join("s.npz"), dir.path().join("t.npz"));
    dataset(&src, 45, 3, 2.0, 3);
    dataset(&tgt, 40, 3, -1.5, 4);
    let runs: &[(&str, &[&str])] = &[
        ("sw-mmd", &["--method", "sw-mmd", "--momentum", "0.9"]),
        (
            "sw-mmd-gaussian-adam",
            &[
                "--kernel",
                "gaussian",
                "--h",
                "0.5",
                "--optimizer",
                "adam",
                "--target-batch",
                "4",
            ],
        ),
        (
            "sw-mmd-orthogonal",
            &["--sampler", "orthogonal", "--kernel", "imq"],
        ),
        ("otdd-feature", &["--method", "otdd"]),
        (
            "otdd-joint-fixed",
            &[
                "--method",
                "otdd",
                "--dynamics",
                "joint-fixed",
                "--lr-sigma",
                "0.2",
            ],
        ),
        (
            "otdd-joint-variable",
            &[
                "--method",
                "otdd",
                "--dynamics",
                "joint-variable",
                "--lr-sigma",
                "0.2",
                "--clustering",
                "kmeans",
                "--clusters",
                "3",
            ],
        ),
        ("euclid-mmd", &["--method", "euclid-mmd"]),
        ("dm", &["--method", "dm"]),
        (
            "product-mmd",
            &[
                "--method",
                "product-mmd",
                "--lr-sigma",
                "0.05",
                "--momentum",
                "0.5",
            ],
        ),
        (
            "otdd-uniform-class-weights",
            &["--class-weights", "uniform", "--method", "otdd"],
        ),
    ];
    let mut lines = Vec::new();
    for (name, extra) in runs {
        let out = dir.path().join(format!("{name}.npz"));
        let mut args = vec![
            "flow",
            "--source",
            src.to_str().unwrap(),
            "--target",
            tgt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "25",
            "--lr",
            "0.2",
            "-L",
            "40",
            "--seed",
            "7",
            "--save-every",
            "10",
        ];
        if *name == "product-mmd" {
            args.truncate(args.len() - 2); // no snapshots for product-mmd
        }
        args.extend_from_slice(extra);
        ok(&args);
        lines.push(format!("{name} {}", fingerprint(&out)));
    }
    check("flows", &lines);
}

#[test]
fn distances_of_every_kind_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.npz"), dir.path().join("b.npz"));
    dataset(&a, 45, 3, 2.0, 5);
    dataset(&b, 40, 3, -1.5, 6);
    let mut lines = Vec::new();
    for kind in ["wow", "sliced-wow", "otdd", "otdd-gaussian", "sw-mmd"] {
        for weights in ["", "uniform", "proportional"] {
            let mut extra = vec!["--seed", "3"];
            if !weights.is_empty() {
                extra.extend(["--class-weights", weights]);
            }
            let v = common::distance_json(kind, &a, &b, &extra);
            let squared = v["squared"].as_f64().unwrap();
            let costs: Vec<f64> =
                serde_json::from_value(v["class_costs"].clone()).unwrap_or_default();
            let costs_hash = Fnv::default().f64s(&costs).hex();
            lines.push(format!(
                "{kind} {weights:12} squared {:016x} ({squared:e}) class_costs {costs_hash}",
                squared.to_bits()
            ));
        }
    }
    // An entropic outer OT as well.
    let v = common::distance_json("otdd", &a, &b, &["--epsilon", "0.05"]);
    let s = v["squared"].as_f64().unwrap();
    lines.push(format!(
        "otdd-sinkhorn squared {:016x} ({s:e})",
        s.to_bits()
    ));
    check("distances", &lines);
}

#[test]
fn rings_demo_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for (name, extra) in [
        ("sw-mmd", &[][..]),
        (
            "otdd-joint-variable",
            &[
                "--method",
                "otdd",
                "--dynamics",
                "joint-variable",
                "--lr",
                "0.25",
            ][..],
        ),
    ] {
        let out = dir.path().join(name);
        let mut args = vec![
            "demo",
            "rings",
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "60",
            "--projections",
            "50",
            "--frame-every",
            "30",
        ];
        args.extend_from_slice(extra);
        ok(&args);
        let loss = std::fs::read(out.join("loss.csv")).unwrap();
        let png = std::fs::read(out.join("final.png")).unwrap();
        lines.push(format!(
            "{name} loss.csv {} final.png {}",
            Fnv::default().bytes(&loss).hex(),
            Fnv::default().bytes(&png).hex()
        ));
    }
    check("rings", &lines);
}

//! Which measure a user file stands for (`--class-weights`, the `.npz` keys `class_weights`
//! and `weights`), outputs checked before any work, and the modes of written files.
//!
//! The values themselves are checked against an independent exact OT solver in
//! `wowflow-core/tests/unbalanced.rs`; here the command line must route the choice to the
//! library and say what it did.

mod common;

use common::{fails, stdout_of as ok};
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use wowflow_data::NpyArray;

/// Classes of the given sizes in R², class `c` shifted by `c` along both axes, labels
/// interleaved in the file so that row order and class order differ.
fn write_classes(path: &Path, sizes: &[usize], seed: u32, extra: &[(&str, NpyArray)]) {
    let mut s = seed;
    let mut next = || {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let mut left = sizes.to_vec();
    let mut y = Vec::new();
    while left.iter().any(|&l| l > 0) {
        for (c, l) in left.iter_mut().enumerate() {
            if *l > 0 {
                y.push(c as i64);
                *l -= 1;
            }
        }
    }
    let x: Vec<f32> = y
        .iter()
        .flat_map(|&c| [next() + c as f32, next() - 0.5 * c as f32])
        .collect();
    common::write_dataset(path, x, y, 2, extra);
}

fn json_field(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

fn distance(kind: &str, a: &Path, b: &Path, extra: &[&str]) -> serde_json::Value {
    common::distance_json(kind, a, b, extra)
}

#[test]
fn each_distance_uses_its_papers_class_weights_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.npz"), dir.path().join("b.npz"));
    write_classes(&a, &[17, 23, 11], 1, &[]);
    write_classes(&b, &[19, 14], 2, &[]);
    for (kind, default) in [
        ("otdd", "proportional"),
        ("otdd-gaussian", "proportional"),
        ("wow", "uniform"),
        ("sliced-wow", "uniform"),
        ("sw-mmd", "uniform"),
    ] {
        let other = if default == "uniform" {
            "proportional"
        } else {
            "uniform"
        };
        let plain = distance(kind, &a, &b, &[]);
        let same = distance(kind, &a, &b, &["--class-weights", default]);
        let swapped = distance(kind, &a, &b, &["--class-weights", other]);
        assert_eq!(
            json_field(&plain, "squared"),
            json_field(&same, "squared"),
            "{kind}: the default must be {default}"
        );
        let (x, y) = (
            json_field(&plain, "squared"),
            json_field(&swapped, "squared"),
        );
        assert!((x - y).abs() > 1e-6 * x.abs(), "{kind}: {x} vs {y}");
        // The weights used are reported.
        let wa: Vec<f64> = serde_json::from_value(plain["class_weights"][0].clone()).unwrap();
        let expected = match default {
            "uniform" => vec![1.0 / 3.0; 3],
            _ => vec![17.0 / 51.0, 23.0 / 51.0, 11.0 / 51.0],
        };
        assert_eq!(wa, expected, "{kind}");
    }
}

#[test]
fn class_and_particle_weights_stored_in_the_file_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, aw) = (
        dir.path().join("a.npz"),
        dir.path().join("b.npz"),
        dir.path().join("a_weighted.npz"),
    );
    write_classes(&a, &[17, 23, 11], 1, &[]);
    write_classes(&b, &[19, 14], 2, &[]);
    // Class weights stored in both files, equal to the proportional ones: the same measure
    // as `--class-weights proportional` on the plain files (17/51 is 17/51 either way).
    let bw = dir.path().join("b_weighted.npz");
    let (wa, wb) = (
        NpyArray::f64(vec![3], vec![17.0, 23.0, 11.0]),
        NpyArray::f64(vec![2], vec![19.0, 14.0]),
    );
    write_classes(&aw, &[17, 23, 11], 1, &[("class_weights", wa)]);
    write_classes(&bw, &[19, 14], 2, &[("class_weights", wb)]);
    for kind in ["wow", "otdd", "sw-mmd"] {
        let flag = json_field(
            &distance(kind, &a, &b, &["--class-weights", "proportional"]),
            "squared",
        );
        let files = json_field(&distance(kind, &aw, &bw, &[]), "squared");
        assert_eq!(flag, files, "{kind}");
        let uniform = json_field(
            &distance(kind, &a, &b, &["--class-weights", "uniform"]),
            "squared",
        );
        assert_ne!(uniform, files, "{kind}");
    }
    // Weights in the file and a flag at once: refused, naming the file.
    let e = fails(&[
        "distance",
        "--kind",
        "wow",
        aw.to_str().unwrap(),
        b.to_str().unwrap(),
        "--class-weights",
        "uniform",
    ]);
    assert!(
        e.contains("a_weighted.npz") && e.contains("class_weights"),
        "{e}"
    );
    // Particle weights change the value; uniform ones given explicitly do not.
    let n = 51;
    let ones = NpyArray::f64(vec![n], vec![2.5; n]);
    let ramp = NpyArray::f64(vec![n], (0..n).map(|i| 1.0 + i as f64).collect());
    let (a1, a2) = (dir.path().join("a_ones.npz"), dir.path().join("a_ramp.npz"));
    write_classes(&a1, &[17, 23, 11], 1, &[("weights", ones)]);
    write_classes(&a2, &[17, 23, 11], 1, &[("weights", ramp)]);
    for kind in ["wow", "otdd", "otdd-gaussian", "sw-mmd", "sliced-wow"] {
        let plain = json_field(&distance(kind, &a, &b, &[]), "squared");
        let ones = json_field(&distance(kind, &a1, &b, &[]), "squared");
        let ramp = json_field(&distance(kind, &a2, &b, &[]), "squared");
        assert!(
            (plain - ones).abs() <= 1e-6 * plain,
            "{kind}: {plain} vs {ones}"
        );
        assert!(
            (plain - ramp).abs() > 1e-4 * plain,
            "{kind}: {plain} vs {ramp}"
        );
    }
    // Bad weight arrays are named with the expected shape.
    let bad = dir.path().join("bad.npz");
    write_classes(
        &bad,
        &[17, 23, 11],
        1,
        &[("class_weights", NpyArray::f64(vec![2], vec![1.0, 1.0]))],
    );
    let e = fails(&["distance", bad.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(
        e.contains("bad.npz") && e.contains("(3,)") && e.contains("labels 0, 1, 2"),
        "{e}"
    );
    write_classes(
        &bad,
        &[17, 23, 11],
        1,
        &[("weights", NpyArray::f64(vec![n], vec![-1.0; n]))],
    );
    let e = fails(&["distance", bad.to_str().unwrap(), b.to_str().unwrap()]);
    assert!(
        e.contains("bad.npz") && e.contains("weights") && e.contains("> 0"),
        "{e}"
    );
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn flow_refuses_an_output_it_cannot_write_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.npz"), dir.path().join("b.npz"));
    write_classes(&a, &[17, 23, 11], 1, &[]);
    write_classes(&b, &[19, 14], 2, &[]);
    // A regular file where the output directory should be: no user can create under it.
    let blocker = dir.path().join("not_a_dir");
    std::fs::write(&blocker, b"x").unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let flow = |out: &str, steps: &str| {
        [
            "flow", "--source", a, "--target", b, "--out", out, "--steps", steps, "-L", "16",
        ]
        .map(String::from)
    };
    let out = blocker.join("o.npz");
    let started = Instant::now();
    let e = fails(&strs(&flow(out.to_str().unwrap(), "10000000")));
    // Ten million steps would take hours: the refusal came first.
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    assert!(e.contains("cannot write") && e.contains("not_a_dir"), "{e}");
    // An output that is a directory.
    let e = fails(&strs(&flow(dir.path().to_str().unwrap(), "10000000")));
    assert!(e.contains("is a directory"), "{e}");
    // A missing directory is created.
    let nested = dir.path().join("runs/new/o.npz");
    ok(&strs(&flow(nested.to_str().unwrap(), "3")));
    assert!(nested.exists() && dir.path().join("runs/new/o_loss.csv").exists());
    // Experiments and the demo check their output directories the same way.
    let e = fails(&[
        "demo",
        "rings",
        "--out",
        blocker.join("rings").to_str().unwrap(),
    ]);
    assert!(e.contains("cannot write") && e.contains("not_a_dir"), "{e}");
}

#[cfg(unix)]
#[test]
fn written_files_follow_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.npz"), dir.path().join("b.npz"));
    write_classes(&a, &[17, 23, 11], 1, &[]);
    write_classes(&b, &[19, 14], 2, &[]);
    let out = dir.path().join("o.npz");
    let rings = dir.path().join("rings");
    let bin = env!("CARGO_BIN_EXE_wowflow");
    for (umask, expected) in [("022", 0o644), ("027", 0o640)] {
        let script = format!(
            "umask {umask} && \"$0\" flow --source {} --target {} --out {} --steps 4 -L 16 \
             --checkpoint-every 2 && \"$0\" demo rings --out {} --steps 2 --projections 8 \
             --frame-every 1",
            a.display(),
            b.display(),
            out.display(),
            rings.display()
        );
        // Each file is new under its umask.
        let _ = std::fs::remove_dir_all(&rings);
        for f in ["o.npz", "o_loss.csv", "o.ckpt.npz"] {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
        let status = Command::new("sh")
            .args(["-c", &script, bin])
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        for f in [
            out.clone(),
            dir.path().join("o_loss.csv"),
            dir.path().join("o.ckpt.npz"),
            rings.join("final.png"),
            rings.join("loss.csv"),
            rings.join("flow.gif"),
        ] {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(
                mode,
                expected,
                "{} under umask {umask}: {mode:o}",
                f.display()
            );
        }
    }
}

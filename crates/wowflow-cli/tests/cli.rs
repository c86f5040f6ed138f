//! The `wowflow` binary end to end, on files the tests write.

mod common;

use common::{dataset, fails, ok};
use std::path::Path;
use std::process::Command;
use wowflow_data::{read_npz, write_npz, NpyArray};

fn write_dataset(path: &Path, x: Vec<f32>, y: Vec<i64>, d: usize) {
    common::write_dataset(path, x, y, d, &[]);
}

#[test]
fn flow_keeps_input_row_order_and_lowers_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (src, tgt, out) = (
        dir.path().join("s.npz"),
        dir.path().join("t.npz"),
        dir.path().join("o.npz"),
    );
    let (x, y) = dataset(50, 3, 1.0, 1);
    write_dataset(&src, x, y.clone(), 3);
    let (xt, yt) = dataset(40, 3, -1.0, 2);
    write_dataset(&tgt, xt, yt, 3);
    let p = |p: &Path| p.to_str().unwrap().to_string();
    ok(&[
        "flow",
        "--source",
        &p(&src),
        "--target",
        &p(&tgt),
        "--out",
        &p(&out),
        "--steps",
        "60",
        "-L",
        "50",
        "--lr",
        "0.1",
        "--momentum",
        "0.9",
        "--save-every",
        "20",
    ]);
    let res = read_npz(&out).unwrap();
    assert_eq!(res["x"].shape, vec![50, 3]);
    assert_eq!(
        res["y"].to_i64().unwrap(),
        y,
        "labels must come back in the input's row order"
    );
    assert_eq!(res["snapshots"].shape, vec![4, 50, 3]); // steps 0, 20, 40, 60
    assert_eq!(res["snapshot_steps"].to_i64().unwrap(), vec![0, 20, 40, 60]);
    let loss = res["loss"].to_f32();
    assert_eq!(loss.len(), 60);
    assert!(loss[59] < loss[0] / 5.0, "loss {} → {}", loss[0], loss[59]);
    // The first snapshot is the input itself, in input order.
    let (x0, _) = dataset(50, 3, 1.0, 1);
    assert_eq!(&res["snapshots"].to_f32()[..150], &x0[..]);
    assert!(dir.path().join("o_loss.csv").exists());
}

#[test]
fn resume_from_a_checkpoint_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (x, y) = dataset(30, 2, 1.0, 3);
    write_dataset(Path::new(&p("s.npz")), x, y, 2);
    let (xt, yt) = dataset(30, 2, -1.0, 4);
    write_dataset(Path::new(&p("t.npz")), xt, yt, 2);
    let common = [
        "--source",
        &p("s.npz"),
        "--target",
        &p("t.npz"),
        "-L",
        "40",
        "--momentum",
        "0.9",
        "--seed",
        "7",
    ];
    let (whole_out, part_out, resumed_out, x_out) =
        (p("whole.npz"), p("part.npz"), p("resumed.npz"), p("x.npz"));
    let mut whole = vec!["flow", "--out", &whole_out, "--steps", "25"];
    whole.extend(common);
    ok(&whole);
    let mut part = vec![
        "flow",
        "--out",
        &part_out,
        "--steps",
        "10",
        "--checkpoint-every",
        "10",
    ];
    part.extend(common);
    ok(&part);
    let ckpt = p("part.ckpt.npz");
    let mut resumed = vec![
        "flow",
        "--out",
        &resumed_out,
        "--steps",
        "25",
        "--resume",
        &ckpt,
    ];
    resumed.extend(common);
    ok(&resumed);
    let a = read_npz(Path::new(&p("whole.npz"))).unwrap();
    let b = read_npz(Path::new(&p("resumed.npz"))).unwrap();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    assert_eq!(bits(a["x"].to_f32()), bits(b["x"].to_f32()));
    assert_eq!(a["loss"].to_f32(), b["loss"].to_f32());

    // Other settings: refused, naming what differs.
    let mut wrong = vec![
        "flow", "--out", &x_out, "--steps", "25", "--resume", &ckpt, "--lr", "0.2",
    ];
    wrong.extend(common);
    let err = fails(&wrong);
    assert!(err.contains("optimizer") && err.contains("0.2"), "{err}");
}

#[test]
fn bad_inputs_get_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (x, y) = dataset(10, 3, 1.0, 5);
    write_dataset(Path::new(&p("d3.npz")), x, y, 3);
    let (x, y) = dataset(10, 2, 1.0, 6);
    write_dataset(Path::new(&p("d2.npz")), x, y, 2);
    let err = fails(&[
        "flow",
        "--source",
        &p("d3.npz"),
        "--target",
        &p("d2.npz"),
        "--out",
        &p("o.npz"),
    ]);
    assert!(
        err.contains("d3.npz") && err.contains("d = 3") && err.contains("d = 2"),
        "{err}"
    );
    let err = fails(&[
        "flow",
        "--source",
        &p("missing.npz"),
        "--target",
        &p("d2.npz"),
        "--out",
        &p("o.npz"),
    ]);
    assert!(err.contains("missing.npz"), "{err}");
    write_npz(
        Path::new(&p("bad.npz")),
        &[
            ("x", &NpyArray::f32(vec![4, 2], vec![0.0; 8])),
            ("y", &NpyArray::i64(vec![3], vec![0, 1, 1])),
        ],
    )
    .unwrap();
    let err = fails(&[
        "flow",
        "--source",
        &p("bad.npz"),
        "--target",
        &p("d2.npz"),
        "--out",
        &p("o.npz"),
    ]);
    assert!(err.contains("bad.npz") && err.contains('y'), "{err}");
    let err = fails(&[
        "flow",
        "--source",
        &p("d2.npz"),
        "--target",
        &p("d2.npz"),
        "--out",
        &p("o.npz"),
        "--kernel",
        "gaussian",
        "--h=-1",
    ]);
    assert!(err.contains("bandwidth"), "{err}");
    assert!(
        !Path::new(&p("o.npz")).exists(),
        "no output is written on error"
    );
}

#[test]
fn rings_demo_writes_its_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rings");
    let log = ok(&[
        "demo",
        "rings",
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "40",
        "--projections",
        "50",
        "--frame-every",
        "10",
    ]);
    assert!(log.contains("a factor"), "{log}");
    for f in [
        "flow.gif",
        "final.png",
        "loss.png",
        "loss.csv",
        "frames/step_00000.png",
        "frames/step_00040.png",
    ] {
        assert!(out.join(f).exists(), "missing {f}");
    }
}

/// Each shaping functional of Alvarez-Melis & Fusi's Figure 1 acts as its definition says,
/// measured against the unconstrained flow from the same noise: the norm bound shrinks the
/// particles' norms, the margin moves class 0 to x ≤ 0, the collapse flattens z, the
/// repulsion moves classes apart and the entropy leaves the particles further from the roll.
#[test]
fn shaping_demo_shows_each_constraint_acting() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("shaping");
    ok(&[
        "demo",
        "shaping",
        "--out",
        out.to_str().unwrap(),
        "--per-class",
        "30",
        "--steps",
        "120",
    ]);
    assert!(out.join("shaping.png").is_file() && out.join("shaping_margin.png").is_file());
    let npz = wowflow_data::read_npz(&out.join("shaping.npz")).unwrap();
    let pts = |k: &str| -> Vec<[f32; 3]> {
        assert_eq!(npz[k].shape, vec![90, 3], "{k}");
        npz[k]
            .to_f32()
            .chunks(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect()
    };
    let y = npz["y"].to_i64().unwrap();
    let mean = |v: Vec<f32>| v.iter().sum::<f32>() / v.len() as f32;
    let norm = |k: &str| {
        mean(
            pts(k)
                .iter()
                .map(|p| p.iter().map(|v| v * v).sum::<f32>().sqrt())
                .collect(),
        )
    };
    let abs_z = |k: &str| mean(pts(k).iter().map(|p| p[2].abs()).collect());
    let class0_x = |k: &str| {
        mean(
            pts(k)
                .iter()
                .zip(&y)
                .filter(|(_, &c)| c == 0)
                .map(|(p, _)| p[0])
                .collect(),
        )
    };
    let (none, bound) = (norm("none"), norm("norm-bound"));
    assert!(bound < 0.8 * none, "norm {none} → {bound}");
    assert!(abs_z("collapse") < 0.6 * abs_z("none"));
    assert!(class0_x("margin") < class0_x("none") - 0.2);
    // Repulsion: the mean distance between points of different classes grows.
    let between = |k: &str| {
        let p = pts(k);
        let mut s = (0.0, 0);
        for i in 0..p.len() {
            for j in 0..p.len() {
                if y[i] != y[j] {
                    s.0 += (0..3)
                        .map(|d| (p[i][d] - p[j][d]).powi(2))
                        .sum::<f32>()
                        .sqrt();
                    s.1 += 1;
                }
            }
        }
        s.0 / s.1 as f32
    };
    assert!(between("repulsion") > between("none"));
    // Entropy: further from the roll than the noiseless flow (nearest target point).
    let target: Vec<[f32; 3]> = npz["target"]
        .to_f32()
        .chunks(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let gap = |k: &str| {
        mean(
            pts(k)
                .iter()
                .map(|p| {
                    target
                        .iter()
                        .map(|t| (0..3).map(|d| (p[d] - t[d]).powi(2)).sum::<f32>())
                        .fold(f32::MAX, f32::min)
                        .sqrt()
                })
                .collect(),
        )
    };
    assert!(
        gap("entropy") > 1.5 * gap("none"),
        "{} vs {}",
        gap("entropy"),
        gap("none")
    );
}

#[test]
fn bench_prints_one_line_per_config() {
    let out = ok(&["bench", "--config", "rings", "--reps", "2"]);
    let line = out
        .lines()
        .find(|l| l.starts_with("bench rings:"))
        .expect("a bench line");
    for key in [
        "C=3",
        "n=80",
        "m=80",
        "d=2",
        "L=500",
        "min_ms=",
        "median_ms=",
        "gflops=",
    ] {
        assert!(line.contains(key), "{line}");
    }
}

/// `--device cuda` on a binary built without the `cuda` feature (the test build) is a named
/// error telling how to rebuild, from every command that takes it, before any work starts.
#[test]
fn device_cuda_without_the_feature_says_how_to_rebuild() {
    if cfg!(feature = "cuda") {
        return; // a CUDA build would try the GPU instead
    }
    let dir = tempfile::tempdir().unwrap();
    let (x, y) = dataset(30, 3, 0.0, 1);
    let src = dir.path().join("s.npz");
    write_dataset(&src, x, y, 3);
    let src = src.to_str().unwrap();
    let out = dir.path().join("o.npz");
    for args in [
        vec!["bench", "--config", "rings", "--device", "cuda"],
        vec![
            "flow",
            "--source",
            src,
            "--target",
            src,
            "--out",
            out.to_str().unwrap(),
            "--device",
            "cuda",
            "--steps",
            "2",
        ],
        vec![
            "experiment",
            "domain-adaptation",
            "--source",
            "fmnist",
            "--device",
            "cuda",
            "--data-dir",
            "/nonexistent",
        ],
        vec![
            "experiment",
            "transfer",
            "--target",
            "usps",
            "--k",
            "5",
            "--device",
            "cuda",
            "--data-dir",
            "/nonexistent",
        ],
        vec![
            "experiment",
            "table",
            "--config",
            "/nonexistent.toml",
            "--device",
            "cuda",
        ],
    ] {
        let err = fails(&args);
        assert!(
            err.contains("built without CUDA support") && err.contains("--features cuda"),
            "{args:?}: {err}"
        );
    }
    assert!(!out.exists(), "a failed run left an output behind");
}

/// wowflow against an independent numpy implementation (scripts/crosscheck_numpy.py), at a
/// paper-like dimension, for the kernels the script covers. Skipped, visibly, without numpy.
#[test]
fn gradient_agrees_with_an_independent_numpy_implementation() {
    let numpy = Command::new("python3")
        .args(["-c", "import numpy"])
        .output();
    if !numpy.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("SKIPPED gradient_agrees_with_an_independent_numpy_implementation: python3 with numpy not found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (c, n, d, l) = (4, 30, 64, 48);
    let (x, _) = dataset(c * n, d, 0.0, 11);
    let (y, _) = dataset(c * n, d, 0.0, 12);
    let shift = |v: Vec<f32>, s: f32| -> Vec<f32> {
        v.iter()
            .enumerate()
            .map(|(i, x)| x + s * (i / (n * d)) as f32)
            .collect()
    };
    wowflow_data::write_npy(
        Path::new(&p("s.npy")),
        &NpyArray::f32(vec![c, n, d], shift(x, 0.3)),
    )
    .unwrap();
    wowflow_data::write_npy(
        Path::new(&p("t.npy")),
        &NpyArray::f32(vec![c, n, d], shift(y, -0.2)),
    )
    .unwrap();
    let (dirs, _) = dataset(l, d, 0.0, 13);
    let norm: Vec<f32> = dirs
        .chunks(d)
        .flat_map(|r| {
            let s = r.iter().map(|v| v * v).sum::<f32>().sqrt();
            r.iter().map(move |v| v / s)
        })
        .collect();
    wowflow_data::write_npy(Path::new(&p("dirs.npy")), &NpyArray::f32(vec![l, d], norm)).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/crosscheck_numpy.py"
    );
    let (src, tgt, dirs) = (p("s.npy"), p("t.npy"), p("dirs.npy"));
    for (kernel, param) in [
        ("riesz", None),
        ("gaussian", Some("2.0")),
        ("imq", Some("1.0")),
    ] {
        let out = p(&format!("{kernel}.npz"));
        let mut args = vec!["flow", "--source", &src, "--target", &tgt, "--out", &out];
        args.extend([
            "--steps",
            "1",
            "--lr",
            "1",
            "--optimizer",
            "gd",
            "--directions",
            &dirs,
            "--kernel",
            kernel,
        ]);
        if let Some(h) = param {
            args.extend(["--h", h]);
        }
        ok(&args);
        let mut check = vec![
            script.to_string(),
            p("s.npy"),
            p("t.npy"),
            p("dirs.npy"),
            out.clone(),
            kernel.to_string(),
        ];
        check.extend(param.map(String::from));
        let res = Command::new("python3").args(&check).output().unwrap();
        let text = String::from_utf8_lossy(&res.stdout).into_owned()
            + &String::from_utf8_lossy(&res.stderr);
        assert!(res.status.success(), "{kernel}: numpy disagrees:\n{text}");
        eprintln!("{kernel}: {text}");
    }
}

/// `--method product-mmd` (Hua et al.): the flow runs, lowers F, and every particle gets a
/// label that is one of the target's class ids, written in the input's row order; the
/// options it does not support are refused by name.
#[test]
fn product_mmd_flow_writes_per_particle_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (src, tgt, out) = (
        dir.path().join("s.npz"),
        dir.path().join("t.npz"),
        dir.path().join("o.npz"),
    );
    let (x, y) = dataset(45, 4, 2.0, 3);
    write_dataset(&src, x, y, 4);
    // Target ids 5, 7, 9: the labels written must be these, not class indices.
    let (xt, yt) = dataset(30, 4, -2.0, 4);
    let yt: Vec<i64> = yt.iter().map(|v| 5 + 2 * v).collect();
    write_dataset(&tgt, xt, yt, 4);
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let base = [
        "flow",
        "--method",
        "product-mmd",
        "--source",
        &p(&src),
        "--target",
        &p(&tgt),
        "--out",
        &p(&out),
        "--steps",
        "150",
        "--lr",
        "0.5",
        "--momentum",
        "0.5",
        "--lr-sigma",
        "0.01",
    ];
    ok(&base);
    let res = read_npz(&out).unwrap();
    assert_eq!(res["x"].shape, vec![45, 4]);
    let labels = res["y"].to_i64().unwrap();
    assert_eq!(labels.len(), 45);
    assert!(labels.iter().all(|l| [5, 7, 9].contains(l)), "{labels:?}");
    let loss = res["loss"].to_f32();
    assert_eq!(loss.len(), 150);
    assert!(
        loss[149] < loss[0] / 2.0,
        "loss {} → {}",
        loss[0],
        loss[149]
    );
    // Through the one flow loop it checkpoints and resumes like every method: 60 steps
    // with a checkpoint, resumed to 150, give the uninterrupted run bit for bit (the label
    // Gaussians travel in the checkpoint).
    let (part, resumed) = (dir.path().join("part.npz"), dir.path().join("resumed.npz"));
    let (part, resumed) = (p(&part), p(&resumed));
    let with = |out: &str, steps: &str, extra: &[&str]| {
        let mut args = base.to_vec();
        (args[8], args[10]) = (out, steps); // --out, --steps
        args.extend_from_slice(extra);
        ok(&args);
    };
    with(&part, "60", &["--checkpoint-every", "60"]);
    let ckpt = p(&dir.path().join("part.ckpt.npz"));
    with(&resumed, "150", &["--resume", &ckpt]);
    let (a, b) = (
        read_npz(&out).unwrap(),
        read_npz(Path::new(&resumed)).unwrap(),
    );
    for key in ["x", "y", "loss"] {
        assert_eq!(a[key], b[key], "{key}");
    }
    // A checkpoint of another method is refused by name.
    let mut other = base.to_vec();
    other[2] = "sw-mmd";
    other.extend(["--resume", &ckpt]);
    assert!(fails(&other).contains("objective"));
}

/// `--method otdd --dynamics joint-*`: labels and label Gaussians in the output, the
/// Gaussians carried by checkpoints (bit-identical resume), and a named refusal of a label
/// cost that does not apply.
#[test]
fn otdd_joint_dynamics_write_labels_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let [f_s, f_t, f_v, f_whole, f_part, f_resumed, f_x, f_e] =
        ["s", "t", "v", "whole", "part", "resumed", "x", "e"].map(|n| p(&format!("{n}.npz")));
    let (x, y) = dataset(45, 2, 3.0, 8);
    write_dataset(Path::new(&f_s), x, y, 2);
    let (xt, yt) = dataset(45, 2, -3.0, 9);
    write_dataset(Path::new(&f_t), xt, yt.clone(), 2);
    let common = [
        "flow",
        "--source",
        &f_s,
        "--target",
        &f_t,
        "--method",
        "otdd",
        "--lr",
        "0.25",
        "--lr-sigma",
        "0.25",
    ];
    let run = |extra: &[&str]| {
        let mut args = common.to_vec();
        args.extend(extra);
        ok(&args)
    };

    let log = run(&[
        "--dynamics",
        "joint-variable",
        "--steps",
        "30",
        "--out",
        &f_v,
    ]);
    assert!(log.contains("clusters"), "{log}");
    let v = read_npz(Path::new(&f_v)).unwrap();
    assert_eq!(v["label_means"].shape, vec![45, 2]);
    assert_eq!(v["label_covs"].shape, vec![45, 2, 2]);
    let (labels, clusters) = (v["y"].to_i64().unwrap(), v["cluster"].to_i64().unwrap());
    // Every particle reached its target: the label clusters are the target's classes.
    assert!(labels.iter().all(|l| yt.contains(l)), "{labels:?}");
    assert_eq!(clusters.iter().max(), Some(&2), "{clusters:?}");

    let fixed = ["--dynamics", "joint-fixed", "--label-dim", "2"];
    let mut whole = fixed.to_vec();
    whole.extend(["--steps", "20", "--out", &f_whole]);
    run(&whole);
    let mut part = fixed.to_vec();
    part.extend([
        "--steps",
        "10",
        "--checkpoint-every",
        "10",
        "--out",
        &f_part,
    ]);
    run(&part);
    let ckpt = p("part.ckpt.npz");
    let mut resumed = fixed.to_vec();
    resumed.extend(["--steps", "20", "--resume", &ckpt, "--out", &f_resumed]);
    run(&resumed);
    let (a, b) = (
        read_npz(Path::new(&f_whole)).unwrap(),
        read_npz(Path::new(&f_resumed)).unwrap(),
    );
    for key in ["x", "label_means", "label_covs"] {
        assert_eq!(a[key].to_f32(), b[key].to_f32(), "{key}");
    }
    assert_eq!(a["label_means"].shape, vec![3, 2]);
    assert!(!a.contains_key("cluster"));
    // A checkpoint of another dynamics is refused.
    let mut other = common.to_vec();
    other.extend(["--steps", "20", "--resume", &ckpt, "--out", &f_x]);
    assert!(fails(&other).contains("objective"));

    let mut exact = common.to_vec();
    exact.extend([
        "--dynamics",
        "joint-fixed",
        "--label-cost",
        "exact",
        "--out",
        &f_e,
    ]);
    assert!(fails(&exact).contains("--label-cost exact"));
}

//! The paper's table experiments end to end at the `tiny` profile of their configs, on the
//! real datasets (found through `$WOWFLOW_DATA`, else `<repo>/../shared/data`; without them
//! the tests print SKIPPED and pass, except under CI).
//!
//! Each test checks the direction the paper reports, with fixed seeds: flowed MNIST images
//! help a 5-shot USPS LeNet-5, and 10 flowed images per class train a better ConvNet than
//! 10 random real ones. Budget: about 2 min in the test profile on two cores.

mod common;

use common::ok as wowflow;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn data_dir() -> Option<PathBuf> {
    wowflow_testkit::shared_data("the table tests", &["mnist", "usps", "fashion-mnist"])
}

fn accuracy(result: &Path) -> f64 {
    let text = std::fs::read_to_string(result).expect("result.json written");
    let v: Value = serde_json::from_str(&text).expect("valid JSON");
    v["accuracy"]["mean"].as_f64().expect("accuracy.mean")
}

/// The cell's accuracies as one golden line: the mean's exact bits and every trial's.
fn accuracy_line(name: &str, result: &Path) -> String {
    let text = std::fs::read_to_string(result).expect("result.json written");
    let v: Value = serde_json::from_str(&text).expect("valid JSON");
    format!("{name} accuracy {}", v["accuracy"])
}

/// These tiny cells' accuracies must not change (same seeds, same bits), see
/// `tests/golden.rs`; recorded per instruction set (`NAME.avx512.txt`, `NAME.avx2.txt`),
/// because the networks' float sums follow the SIMD width of the `gemm` kernels
/// ([`wowflow_testkit::isa_tag`]). An instruction set with no recording yet says so and
/// compares nothing (record it there with `WOWFLOW_BLESS=1`); the accuracy checks beside
/// each call still run.
fn check_golden(name: &str, lines: &[String]) {
    let tagged = format!("{name}.{}", wowflow_testkit::isa_tag());
    let dir = common::golden_dir();
    if std::env::var_os("WOWFLOW_BLESS").is_none() && !dir.join(format!("{tagged}.txt")).is_file() {
        eprintln!(
            "{tagged}: no golden recorded for this instruction set, not compared (record it with \
             WOWFLOW_BLESS=1 on such a machine)"
        );
        return;
    }
    wowflow_testkit::golden(&dir, &tagged, lines);
}

/// Runs `wowflow experiment table --config experiments/TABLE --profile tiny --data-dir DATA
/// --out OUT EXTRA…` and returns its log.
fn tiny_table(table: &str, data: &str, out: &Path, extra: &[&str]) -> String {
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../experiments")
        .join(table);
    let (config, out) = (config.to_string_lossy(), out.to_string_lossy());
    let mut args = vec![
        "experiment",
        "table",
        "--config",
        &config,
        "--profile",
        "tiny",
        "--data-dir",
        data,
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    wowflow(&args)
}

/// `wowflow experiment table --config ROOT/t.toml --data-dir DATA --out ROOT/OUT EXTRA…` for a
/// table a test writes into its temporary directory ROOT; OUT names one of several output
/// directories under ROOT, so a test can compare two ways of computing the same table.
struct Table {
    root: PathBuf,
    config: String,
    data: String,
}

impl Table {
    fn new(root: &Path, toml: &str, data: &str) -> Self {
        let config = root.join("t.toml");
        std::fs::write(&config, toml).unwrap();
        Table {
            root: root.to_path_buf(),
            config: config.to_string_lossy().into_owned(),
            data: data.to_string(),
        }
    }

    fn args(&self, out: &str, extra: &[&str]) -> Vec<String> {
        let out = self.root.join(out).to_string_lossy().into_owned();
        let fixed = ["experiment", "table", "--config", &self.config];
        let fixed = fixed
            .into_iter()
            .chain(["--data-dir", &self.data, "--out", &out]);
        fixed
            .chain(extra.iter().copied())
            .map(str::to_string)
            .collect()
    }

    fn run(&self, out: &str, extra: &[&str]) -> String {
        let a = self.args(out, extra);
        wowflow(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn fails(&self, out: &str, extra: &[&str]) -> String {
        let a = self.args(out, extra);
        common::fails(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The `--plan` of the table in OUT.
    fn plan(&self, out: &str) -> Value {
        let a = self.args(out, &["--plan"]);
        let stdout = common::stdout_of(&a.iter().map(String::as_str).collect::<Vec<_>>());
        serde_json::from_str(&stdout).unwrap()
    }

    /// OUT/cells/KEY.json.
    fn cell(&self, out: &str, key: &str) -> Value {
        let path = self.root.join(format!("{out}/cells/{key}.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn md(&self, out: &str) -> String {
        std::fs::read_to_string(self.root.join(out).join("table.md")).unwrap()
    }
}

/// Runs `wowflow experiment <cell…> --profile tiny --data-dir DATA --out OUT`.
fn tiny_cell(cell: &[&str], data: &str, out: &Path) {
    let out = out.to_string_lossy().into_owned();
    let mut args = vec!["experiment"];
    args.extend_from_slice(cell);
    args.extend_from_slice(&["--profile", "tiny", "--data-dir", data, "--out", &out]);
    wowflow(&args);
}

#[test]
fn flowed_mnist_helps_a_five_shot_usps_classifier() {
    let Some(data) = data_dir() else { return };
    let data = data.to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let mut acc = Vec::new();
    let mut golden = Vec::new();
    for method in ["target-only", "sw-mmd"] {
        let out = tmp.path().join(method);
        tiny_cell(
            &[
                "transfer", "--target", "usps", "--k", "5", "--method", method,
            ],
            &data,
            &out,
        );
        acc.push(accuracy(&out.join("result.json")));
        golden.push(accuracy_line(method, &out.join("result.json")));
    }
    check_golden("table2-tiny-usps-k5", &golden);
    // Measured at the tiny profile: 49.4 % alone, 68.3 % with the flowed images.
    assert!(
        acc[1] > acc[0] + 8.0,
        "target only {:.1} %, with flowed MNIST {:.1} %",
        acc[0],
        acc[1]
    );
}

#[test]
fn distilled_images_beat_random_real_ones_at_equal_budget() {
    let Some(data) = data_dir() else { return };
    let data = data.to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let mut acc = Vec::new();
    let mut golden = Vec::new();
    for method in ["random-real", "sw-mmd"] {
        let out = tmp.path().join(method);
        tiny_cell(
            &[
                "distill",
                "--dataset",
                "mnist",
                "--k",
                "10",
                "--method",
                method,
            ],
            &data,
            &out,
        );
        acc.push(accuracy(&out.join("result.json")));
        golden.push(accuracy_line(method, &out.join("result.json")));
        assert!(out.join("synthetic.png").is_file());
        let npz = wowflow_data::read_npz(&out.join("synthetic.npz")).unwrap();
        assert_eq!(npz["images"].shape, vec![100, 28, 28]);
        assert_eq!(npz["y"].shape, vec![100]);
    }
    check_golden("table1-tiny-mnist-k10", &golden);
    assert!(
        acc[1] > acc[0],
        "random real {:.1} %, distilled {:.1} %",
        acc[0],
        acc[1]
    );
}

/// A one-row Table 2 at the `tiny` profile: target only, the OTDD flow and the control.
const TINY_TRANSFER_TABLE: &str = r#"
name = "t"
title = "tiny transfer table"
experiment = "transfer"
profile = "tiny"
note = "three cells"
[[columns]]
id = "target-only"
title = "target only"
method = "target-only"
[[columns]]
id = "otdd"
title = "OTDD flow"
method = "otdd"
[[columns]]
id = "target-repeated"
title = "control"
method = "target-repeated"
[[rows]]
label = "M→U"
dataset = "usps"
k = 1
paper = { target-only = "32.4 ± 7.9", otdd = "39.5" }
"#;

/// The table runner fills the paper's layout with the paper's number beside ours, and a
/// second run keeps the finished cells instead of recomputing them.
#[test]
fn table_runner_fills_cells_and_resumes() {
    let Some(data) = data_dir() else { return };
    let data = data.to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let table = Table::new(tmp.path(), TINY_TRANSFER_TABLE, &data);
    let out = tmp.path().join("out");
    let run = |extra: &[&str]| table.run("out", extra);
    // Only the target-only cell first: the table shows it and marks the other as pending.
    run(&["--only", "target-only"]);
    let md = std::fs::read_to_string(out.join("table.md")).unwrap();
    // The control is not in the paper: no brackets, not even "[–]".
    assert!(
        md.contains("[32.4 ± 7.9]") && md.contains("… [39.5] | … |"),
        "{md}"
    );
    let cell = out.join("cells/transfer-mnist-usps-k1-target-only.json");
    let first = std::fs::read_to_string(&cell).unwrap();
    // The rest; the finished cell is kept as it was.
    let log = run(&[]);
    assert!(log.contains("3 cells, 1 done, 2 to compute"), "{log}");
    assert_eq!(std::fs::read_to_string(&cell).unwrap(), first);
    let md = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(!md.contains("… ["), "{md}");
    let row = md.lines().find(|l| l.starts_with("| M→U")).unwrap();
    assert!(!row.ends_with("] |"), "{row}");
    let csv = std::fs::read_to_string(out.join("table.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    // The figure: ours beside the paper's where the paper has a number.
    let png = std::fs::read(out.join("table.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let log = run(&["--dry-run"]);
    assert!(log.contains("3 cells, 3 done, 0 to compute"), "{log}");
    let golden: Vec<String> = ["target-only", "otdd"]
        .iter()
        .map(|m| {
            let cell = out.join(format!("cells/transfer-mnist-usps-k1-{m}.json"));
            accuracy_line(m, &cell)
        })
        .collect();
    check_golden("table-runner-tiny-usps-k1", &golden);
}

/// A table computed piece by piece (`--plan`, then `--cell KEY --piece P` for each piece,
/// in another order than the runner's, on one thread) stores the same files as the runner
/// computing it whole on two; the runner then only assembles the cells. What the Ray
/// executor of the Python package relies on. A network before its flow, an unknown piece or
/// cell are refused with what to do.
#[test]
fn a_table_computed_piece_by_piece_equals_the_whole_run() {
    let Some(data) = data_dir() else { return };
    let data = data.to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let table = Table::new(tmp.path(), TINY_TRANSFER_TABLE, &data);
    table.run("whole", &[]);
    let plan = table.plan("pieces");
    let cells = plan["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 3, "{plan}");
    assert_eq!(plan["done_cells"], 0);
    let key = cells[1]["key"].as_str().unwrap().to_string();
    assert_eq!(key, "transfer-mnist-usps-k1-otdd");
    let pieces: Vec<&str> = cells[1]["pieces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["piece"].as_str().unwrap())
        .collect();
    assert_eq!(pieces, ["flow:0", "net:0:0"]);
    assert_eq!(cells[1]["pieces"][1]["after"], "flow:0");
    // Pieces write only under their cell's directory, on the CPU here.
    assert_eq!(
        cells[1]["pieces"][0]["outputs"],
        serde_json::json!([format!("cells/{key}/")])
    );
    assert_eq!(cells[1]["pieces"][0]["gpu"], false);
    // A network before its flow: refused, saying which piece comes first.
    let err = table.fails("pieces", &["--cell", &key, "--piece", "net:0:0"]);
    assert!(err.contains("compute piece flow:0 first"), "{err}");
    let err = table.fails("pieces", &["--cell", &key, "--piece", "net:0:7"]);
    assert!(err.contains("has no piece net:0:7"), "{err}");
    let err = table.fails("pieces", &["--cell", "no-such-cell", "--piece", "flow:0"]);
    assert!(err.contains("no such cell"), "{err}");
    let err = table.fails("pieces", &["--cell", &key, "--piece", "flow"]);
    assert!(err.contains("expected `flow:T`"), "{err}");
    // The cells' pieces on one thread, the last cell first.
    let mut reversed = cells.clone();
    reversed.reverse();
    run_pieces_on_one_thread(&reversed, |extra| table.args("pieces", extra));
    let plan = table.plan("pieces");
    for cell in plan["cells"].as_array().unwrap() {
        for piece in cell["pieces"].as_array().unwrap() {
            assert_eq!(piece["done"], true, "{plan}");
        }
    }
    // The network's inputs are its trial's record, training set and the store's settings.
    let inputs = &plan["cells"][1]["pieces"][1]["inputs"];
    assert_eq!(
        inputs,
        &serde_json::json!([
            format!("cells/{key}/trials/settings.json"),
            format!("cells/{key}/trials/t0.json"),
            format!("cells/{key}/trials/t0.npz"),
        ]),
        "{plan}"
    );
    // No cell file yet: the pieces write only their own files.
    assert!(!tmp.path().join(format!("pieces/cells/{key}.json")).exists());
    table.run("pieces", &[]);
    for cell in [
        "transfer-mnist-usps-k1-target-only",
        "transfer-mnist-usps-k1-otdd",
    ] {
        let (whole, pieces) = (table.cell("whole", cell), table.cell("pieces", cell));
        assert_eq!(whole["accuracy"], pieces["accuracy"], "{cell}");
        assert_eq!(
            whole["trials"][0]["loss_last"],
            pieces["trials"][0]["loss_last"]
        );
        let npz = |out: &str| {
            std::fs::read(tmp.path().join(format!("{out}/cells/{cell}/trials/t0.npz"))).unwrap()
        };
        assert!(
            npz("whole") == npz("pieces"),
            "{cell}: training sets differ"
        );
    }
    assert_eq!(table.md("whole"), table.md("pieces"));
}

/// Runs every piece of the planned `cells` (a `--plan`'s `cells`), one process each on one
/// thread, with the table options `args(extra)`.
fn run_pieces_on_one_thread(cells: &[Value], args: impl Fn(&[&str]) -> Vec<String>) {
    for cell in cells {
        let key = cell["key"].as_str().unwrap();
        for piece in cell["pieces"].as_array().unwrap() {
            let a = args(&["--cell", key, "--piece", piece["piece"].as_str().unwrap()]);
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_wowflow"))
                .args(&a)
                .env("RAYON_NUM_THREADS", "1")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The distillation table piece by piece equals its whole run too — with the full-data
/// column, whose networks train on the dataset itself (no synthetic set stored, so its
/// pieces are its networks alone).
#[test]
fn a_distillation_table_computed_piece_by_piece_equals_the_whole_run() {
    let Some(data) = data_dir() else { return };
    let data = data.to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let table = Table::new(
        tmp.path(),
        r#"
name = "t1"
title = "tiny distillation table"
experiment = "distill"
profile = "tiny"
note = "two cells"
[[columns]]
id = "random-real"
title = "random real"
method = "random-real"
[[columns]]
id = "full-data"
title = "full data"
method = "full-data"
[[rows]]
label = "MNIST"
dataset = "mnist"
k = 1
"#,
        &data,
    );
    let plan = table.plan("pieces");
    let cells = plan["cells"].as_array().unwrap();
    let names = |cell: &Value| -> Vec<String> {
        cell["pieces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["piece"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(&cells[0]), ["flow:0", "net:0:0"]);
    assert_eq!(names(&cells[1]), ["net:0:0"], "full data: networks only");
    assert_eq!(cells[1]["pieces"][0]["after"], Value::Null);
    run_pieces_on_one_thread(cells, |extra| table.args("pieces", extra));
    table.run("pieces", &[]);
    table.run("whole", &[]);
    for cell in ["distill-mnist-k1-random-real", "distill-mnist-full-data"] {
        assert_eq!(
            table.cell("whole", cell)["accuracy"],
            table.cell("pieces", cell)["accuracy"],
            "{cell}"
        );
    }
    assert_eq!(table.md("whole"), table.md("pieces"));
}

/// The plan of Alvarez-Melis & Fusi's trajectory table (its cells share one flow per row and
/// flow kind): each cell is one piece; of the cells sharing a flow, the first computes it and
/// the others wait for that cell, and may write the shared flow's directory. Planning
/// computes nothing.
#[test]
fn a_trajectory_table_is_planned_with_each_shared_flow_computed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let plan: Value = serde_json::from_str(&common::stdout_of(&[
        "experiment",
        "table",
        "--config",
        &common::repo_root()
            .join("experiments/amf-fig3.toml")
            .to_string_lossy(),
        "--profile",
        "tiny",
        "--only",
        "usps-k5",
        "--out",
        &out.to_string_lossy(),
        "--plan",
    ]))
    .unwrap();
    let cells = plan["cells"].as_array().unwrap();
    let find = |key: &str| {
        cells
            .iter()
            .find(|c| c["key"] == key)
            .unwrap_or_else(|| panic!("{key} not in {plan}"))
    };
    let owner = find("traj-usps-k5-sw-mmd-initial");
    let piece = &owner["pieces"][0];
    assert_eq!(piece["piece"], "cell");
    assert_eq!(piece["after"], Value::Null);
    assert_eq!(
        piece["outputs"],
        serde_json::json!([
            "cells/traj-usps-k5-sw-mmd-initial/",
            "cells/traj-usps-k5-sw-mmd-initial.json",
            "cells/flows/traj-usps-k5-sw-mmd/"
        ])
    );
    for data in ["final", "trajectory", "mapped"] {
        let piece = &find(&format!("traj-usps-k5-sw-mmd-{data}"))["pieces"][0];
        assert_eq!(piece["after"], "cell", "{data}");
        assert_eq!(piece["after_cell"], "traj-usps-k5-sw-mmd-initial", "{data}");
    }
    // No flow, no wait.
    assert_eq!(
        find("traj-usps-k5-target-only")["pieces"][0]["after"],
        Value::Null
    );
    assert!(
        !out.join("cells/flows").exists(),
        "planning computed something"
    );
}

/// A cell stopped after its flow and one network resumes there: the rerun trains only the
/// missing network, keeps every finished piece untouched and gives the same numbers as the
/// uninterrupted run; other settings are refused before any work.
#[test]
fn a_cell_resumes_at_the_level_of_one_network() {
    let Some(data) = data_dir() else { return };
    let data = data.to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cell");
    let out_s = out.to_string_lossy().into_owned();
    let cell = [
        "experiment",
        "transfer",
        "--target",
        "usps",
        "--k",
        "1",
        "--method",
        "sw-mmd",
        "--profile",
        "tiny",
        "--evals",
        "2",
        "--data-dir",
        &data,
        "--out",
        &out_s,
    ];
    wowflow(&cell);
    let whole = std::fs::read_to_string(out.join("result.json")).unwrap();
    let trials = out.join("trials");
    let kept = ["settings.json", "t0.json", "t0.npz", "t0-e0.json"];
    let modified = |name: &str| {
        std::fs::metadata(trials.join(name))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before: Vec<_> = kept.iter().map(|n| modified(n)).collect();
    let score = |name: &str| -> Value {
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(trials.join(name)).unwrap()).unwrap();
        v["train_seconds"] = Value::Null; // the one field that is not a result
        v
    };
    let second = score("t0-e1.json");
    // Stopped while training network 1: its score and the cell's result were never written.
    std::fs::remove_file(trials.join("t0-e1.json")).unwrap();
    std::fs::remove_file(out.join("result.json")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    wowflow(&cell);
    let after: Vec<_> = kept.iter().map(|n| modified(n)).collect();
    assert_eq!(before, after, "finished pieces were rewritten");
    assert_eq!(
        score("t0-e1.json"),
        second,
        "the retrained network scores the same"
    );
    let resumed: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    let whole: Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(resumed["accuracy"], whole["accuracy"]);
    assert_eq!(
        resumed["trials"][0]["scores"][1]["accuracy"],
        whole["trials"][0]["scores"][1]["accuracy"]
    );
    assert_eq!(
        resumed["trials"][0]["loss_last"],
        whole["trials"][0]["loss_last"]
    );
    // The same directory under another profile: refused, naming what to remove.
    let mut other = cell.to_vec();
    other[9] = "quick";
    let err = common::fails(&other);
    assert!(
        err.contains("other settings") && err.contains("trials"),
        "{err}"
    );
}

/// Alvarez-Melis & Fusi's Table 1 at the tiny profile, Fashion-MNIST row: every flow —
/// OTDD and SW-MMD, supervised and with k-means pseudo-labels — raises the frozen MNIST
/// classifier's accuracy well above what it scores on the raw images (their direction:
/// 8.22 % → 99.1 % supervised, 54.9 % unsupervised), and each cell keeps the correspondence
/// layer it used (rows of `M` sum to 1) and its flowed images.
#[test]
fn flows_re_purpose_a_frozen_mnist_classifier() {
    let Some(data) = data_dir() else { return };
    let data = data.to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("amf");
    tiny_table("amf-table1.toml", &data, &out, &["--only", "fashion"]);
    let cell = |key: &str| out.join(format!("cells/repurpose-fashion-mnist-{key}.json"));
    let before = accuracy(&cell("before"));
    // Measured: 6.5 % before; OTDD 61.5 / 25.5 %, SW-MMD 25.5 / 25.0 % (supervised /
    // unsupervised) with 20 images per class and short flows.
    assert!(before < 15.0, "before the flow {before:.1} %");
    let mut golden = vec![accuracy_line("before", &cell("before"))];
    for key in [
        "otdd-supervised",
        "sw-mmd-supervised",
        "otdd-unsupervised",
        "sw-mmd-unsupervised",
    ] {
        let after = accuracy(&cell(key));
        assert!(
            after > before + 10.0,
            "{key}: {after:.1} % after the flow, {before:.1} % before"
        );
        golden.push(accuracy_line(key, &cell(key)));
        let trial: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!(
                "cells/repurpose-fashion-mnist-{key}/trials/t0.json"
            )))
            .unwrap(),
        )
        .unwrap();
        let layer = &trial["correspondence"];
        let c = layer["sources"].as_u64().unwrap() as usize;
        let m: Vec<f64> = layer["matrix"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        for row in m.chunks(c) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{m:?}");
        }
        if key.ends_with("unsupervised") {
            let clustering = trial["clustering_accuracy"].as_f64().unwrap();
            assert!(clustering > 0.3, "k-means agreement {clustering}");
        }
        let npz = wowflow_data::read_npz(
            &out.join(format!("cells/repurpose-fashion-mnist-{key}/trials/t0.npz")),
        )
        .unwrap();
        assert_eq!(npz["x"].shape, vec![200, 784]);
        assert!(out
            .join(format!("cells/repurpose-fashion-mnist-{key}/flowed.png"))
            .is_file());
    }
    check_golden("amf-table1-tiny-fmnist", &golden);
    let md = std::fs::read_to_string(out.join("table.md")).unwrap();
    assert!(md.contains("[8.22]") && md.contains("| FMNIST |"), "{md}");
}

/// Alvarez-Melis & Fusi's Figure 3e at the tiny profile, MNIST → USPS with 5 shots: for both
/// flows, the trajectories help at least as much as the final particles, and those more than
/// the target set alone (their direction); fine-tuning a source-trained LeNet-5 beats training
/// on the target alone; the push-forward lands closer to the true flowed particles than not
/// moving, on particles it was not fitted on; the shared flows are computed once.
#[test]
fn trajectories_and_a_push_forward_as_training_data() {
    let Some(data) = data_dir() else { return };
    let data = data.to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fig3");
    let log = tiny_table("amf-fig3.toml", &data, &out, &["--only", "usps-k5"]);
    let cell = |key: &str| out.join(format!("cells/traj-usps-k5-{key}.json"));
    let acc = |key: &str| accuracy(&cell(key));
    let target_only = acc("target-only");
    // Measured: target only 55.0, fine-tune 63.8; OTDD initial / final / trajectory / mapped
    // 67.5 / 73.9 / 76.4 / 25.6; SW-MMD 69.3 / 68.0 / 72.1 / 61.9.
    assert!(
        acc("fine-tune") > target_only,
        "fine-tune {}",
        acc("fine-tune")
    );
    let mut golden = vec![
        accuracy_line("target-only", &cell("target-only")),
        accuracy_line("fine-tune", &cell("fine-tune")),
    ];
    for flow in ["otdd", "sw-mmd"] {
        let (fin, traj) = (
            acc(&format!("{flow}-final")),
            acc(&format!("{flow}-trajectory")),
        );
        assert!(
            fin > target_only + 5.0,
            "{flow}: final {fin}, target only {target_only}"
        );
        assert!(traj >= fin, "{flow}: trajectory {traj}, final {fin}");
        for data in ["initial", "final", "trajectory", "mapped"] {
            let key = format!("{flow}-{data}");
            golden.push(accuracy_line(&key, &cell(&key)));
        }
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(
                out.join(format!("cells/flows/traj-usps-k5-{flow}/trials/t0.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let (h, none) = (
            record["heldout_mse"].as_f64().unwrap(),
            record["heldout_mse_identity"].as_f64().unwrap(),
        );
        assert!(
            h < none,
            "{flow}: push-forward error {h}, not moving {none}"
        );
        let npz = wowflow_data::read_npz(
            &out.join(format!("cells/flows/traj-usps-k5-{flow}/trials/t0.npz")),
        )
        .unwrap();
        assert_eq!(npz["traj"].shape, vec![5, 300, 784]);
        assert_eq!(npz["mapped"].shape, vec![200, 784]);
    }
    // Two flows stored, each reused by its four columns.
    assert_eq!(log.matches("flow stored").count(), 2, "{log}");
    check_golden("amf-fig3-tiny-usps-k5", &golden);
}

/// The correspondence layer with C ≠ K through the whole re-purposing pipeline: 14 k-means
/// clusters of Fashion-MNIST flowed to the 10 MNIST classes; the layer is 10 × 14 with rows
/// summing to 1, the matching leaves 4 clusters without a label, and the frozen classifier
/// still beats its raw-image accuracy.
#[test]
fn fourteen_clusters_map_onto_ten_classes() {
    let Some(data) = data_dir() else { return };
    let data = data.to_string_lossy().into_owned();
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("experiments/repurpose.toml")).unwrap();
    let from = "[profile.tiny.pseudo_labels]\nclusters = 10";
    assert!(text.contains(from));
    let settings = tmp.path().join("repurpose.toml");
    std::fs::write(
        &settings,
        text.replace(from, "[profile.tiny.pseudo_labels]\nclusters = 14"),
    )
    .unwrap();
    let out = tmp.path().join("amf");
    let settings = settings.to_string_lossy();
    tiny_table(
        "amf-table1.toml",
        &data,
        &out,
        &[
            "--experiment-config",
            &settings,
            "--only",
            "fashion",
            "--only",
            "sw-mmd-unsupervised",
        ],
    );
    let key = "repurpose-fashion-mnist-sw-mmd-unsupervised";
    let trial: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join(format!("cells/{key}/trials/t0.json"))).unwrap(),
    )
    .unwrap();
    let layer = &trial["correspondence"];
    assert_eq!(
        (layer["sources"].as_u64(), layer["targets"].as_u64()),
        (Some(14), Some(10))
    );
    let m: Vec<f64> = layer["matrix"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(m.len(), 140);
    for row in m.chunks(14) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{row:?}");
    }
    let labels = trial["cluster_labels"].as_array().unwrap();
    assert_eq!(labels.len(), 14);
    assert_eq!(labels.iter().filter(|l| l.is_null()).count(), 4);
    let (acc, before) = (
        trial["accuracy"].as_f64().unwrap(),
        trial["accuracy_before"].as_f64().unwrap(),
    );
    assert!(acc > before + 0.05, "after {acc}, before {before}");
}

//! `wowflow experiment table`: fills one of the papers' tables (`experiments/table1.toml`,
//! `experiments/table2.toml` of Bonet et al.; `experiments/amf-table1.toml`, Alvarez-Melis &
//! Fusi's re-purposing table) cell by cell, with the paper's number beside ours.
//!
//! Every finished cell is written to `OUT/cells/<key>.json` at once; a later run with the
//! same profile keeps those and computes only the missing ones, so an interrupted table
//! resumes where it stopped; inside a cell, finished flows, flow segments and networks are
//! kept too ([`crate::trials`]). `table.md`, `table.csv` and `table.png` (ours beside the
//! paper's number, per row) are rewritten after every cell.

use super::{dataset_name, write_file};
use crate::distill::{self, DistillCell, DistillMethod, DistillSettings};
use crate::evaluate::Stats;
use crate::repurpose::{self, Modality, RepurposeCell, RepurposeMethod, RepurposeSettings};
use crate::trajectories::{self, FlowKind, TrainingData, TrajectoryCell, TrajectorySettings};
use crate::transfer::{self, TransferCell, TransferMethod, TransferSettings};
use crate::trials::Piece;
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use wowflow_data::DataDirs;

/// Options of `wowflow experiment table`.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TableArgs {
    /// The table to fill (`experiments/table1.toml` or `experiments/table2.toml`).
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub config: PathBuf,
    /// Profile of the experiment's own config (`quick` or `paper`) [default: the table's].
    #[cfg_attr(feature = "clap", arg(long))]
    pub profile: Option<String>,
    /// The experiment's config with the profiles [default: the built-in one].
    #[cfg_attr(feature = "clap", arg(long, value_name = "FILE"))]
    pub experiment_config: Option<PathBuf>,
    /// Output directory [default: runs/TABLE-PROFILE, e.g. runs/table2-quick].
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub out: Option<PathBuf>,
    /// Only cells whose key contains this text (e.g. `usps`, `k5`, `sw-mmd`); repeatable,
    /// a cell must match every one.
    #[cfg_attr(feature = "clap", arg(long = "only", value_name = "TEXT"))]
    pub only: Vec<String>,
    /// Leave out cells whose key contains this text; repeatable.
    #[cfg_attr(feature = "clap", arg(long = "skip", value_name = "TEXT"))]
    pub skip: Vec<String>,
    /// Stop after computing this many new cells.
    #[cfg_attr(feature = "clap", arg(long))]
    pub max_cells: Option<usize>,
    /// List the cells and which are done, compute nothing.
    #[cfg_attr(feature = "clap", arg(long))]
    pub dry_run: bool,
    /// Print the work left as JSON and compute nothing (only OUT/cells is created): each
    /// selected cell not done, its pieces (`flow:T`, `net:T:E` or `cell`), which are done,
    /// which piece each waits for, the files under OUT it reads, where it may write and
    /// whether it needs the GPU. What a scheduler hands out (the Python package's Ray
    /// executor does).
    #[cfg_attr(feature = "clap", arg(long, conflicts_with = "dry_run"))]
    pub plan: bool,
    /// With `--piece`: compute one piece of this cell into OUT and nothing else (no table
    /// files): the unit of work of a distributed run.
    #[cfg_attr(
        feature = "clap",
        arg(long, value_name = "KEY", requires = "piece", conflicts_with_all = ["plan", "dry_run"])
    )]
    pub cell: Option<String>,
    /// With `--cell`: which piece (`flow:T`, `net:T:E` or `cell`).
    #[cfg_attr(feature = "clap", arg(long, value_name = "PIECE", requires = "cell"))]
    pub piece: Option<String>,
    /// Where the pieces are computed: `local` (this process), or `ray` (each flow and
    /// network a task on a Ray cluster; the `wowflow` command hands the run to the Python
    /// package, `$WOWFLOW_PYTHON -m wowflow table`, default `python3`).
    #[cfg_attr(
        feature = "clap",
        arg(long, value_enum, default_value = "local", conflicts_with_all = ["plan", "dry_run", "cell", "max_cells"])
    )]
    pub executor: Executor,
    /// With `--executor ray`: the cluster's `HOST:PORT` [default: a new local cluster].
    #[cfg_attr(feature = "clap", arg(long, value_name = "HOST:PORT"))]
    pub address: Option<String>,
    /// Where datasets are looked for first.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub data_dir: Option<PathBuf>,
    /// `--device cuda`: Table 2's SW-MMD flows on the GPU (Table 1 runs on the CPU).
    #[cfg_attr(feature = "clap", command(flatten))]
    pub gpu: crate::device::DeviceArgs,
}

/// Where a table's pieces are computed (`--executor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Executor {
    /// In this process, one cell after the other.
    #[default]
    Local,
    /// As Ray tasks, by the Python package (`python -m wowflow table --executor ray`).
    Ray,
}

/// A table config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableConfig {
    name: String,
    title: String,
    experiment: ExperimentKind,
    profile: String,
    /// Explains the layout and what "paper" numbers are.
    note: String,
    columns: Vec<Column>,
    rows: Vec<Row>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ExperimentKind {
    Transfer,
    Distill,
    Repurpose,
    Trajectories,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Column {
    id: String,
    title: String,
    method: String,
    #[serde(default)]
    augment: bool,
    #[serde(default)]
    embed: bool,
    /// Re-purposing: `supervised` or `unsupervised` (default supervised).
    #[serde(default)]
    modality: Option<String>,
    /// Trajectories: what a flow adds (`initial`, `final`, `trajectory`, `mapped`).
    #[serde(default)]
    data: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    label: String,
    /// Transfer: the flowed dataset (default mnist).
    source: Option<String>,
    /// Transfer: the k-shot dataset; distillation: the distilled one.
    dataset: String,
    /// Transfer and distillation: k images per class (re-purposing has none).
    #[serde(default)]
    k: Option<usize>,
    /// The paper's number per column id ("–" where the paper has none).
    #[serde(default)]
    paper: BTreeMap<String, String>,
}

/// A cell to compute: one experiment run.
#[derive(Debug, Clone)]
enum Cell {
    Transfer(TransferCell),
    Distill(DistillCell),
    Repurpose(RepurposeCell),
    Trajectories(TrajectoryCell),
}

impl Cell {
    fn key(&self) -> String {
        match self {
            Cell::Transfer(c) => c.key(),
            Cell::Distill(c) => c.key(),
            Cell::Repurpose(c) => c.key(),
            Cell::Trajectories(c) => c.key(),
        }
    }
}

/// What a finished cell file holds that the table needs.
#[derive(Debug, Clone, Deserialize)]
struct Done {
    profile: String,
    accuracy: Stats,
    seconds: f64,
    machine: String,
}

/// The method of a table column by its name among `all` (`name` gives each one's name).
fn parse_method<T: Copy>(
    s: &str,
    column: &str,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<T> {
    all.iter().copied().find(|&m| name(m) == s).ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|&m| name(m)).collect();
        anyhow!(
            "column `{column}`: method `{s}` is not one of {}",
            names.join(", ")
        )
    })
}

impl TableConfig {
    fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading table config {}", path.display()))?;
        let t: Self =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if t.columns.is_empty() || t.rows.is_empty() {
            bail!("{}: a table needs columns and rows", path.display());
        }
        for row in &t.rows {
            for id in row.paper.keys() {
                if !t.columns.iter().any(|c| &c.id == id) {
                    bail!(
                        "{}: row `{}` gives a paper number for `{id}`, which is no column",
                        path.display(),
                        row.label
                    );
                }
            }
        }
        Ok(t)
    }

    fn cell(&self, row: &Row, col: &Column) -> Result<Cell> {
        let k = || {
            row.k
                .ok_or_else(|| anyhow!("row `{}`: needs `k` (images per class)", row.label))
        };
        Ok(match self.experiment {
            ExperimentKind::Transfer => Cell::Transfer(TransferCell {
                source: dataset_name(row.source.as_deref().unwrap_or("mnist")).to_string(),
                target: dataset_name(&row.dataset).to_string(),
                k: k()?,
                method: parse_method(
                    &col.method,
                    &col.id,
                    &TransferMethod::ALL,
                    TransferMethod::name,
                )?,
            }),
            ExperimentKind::Distill => Cell::Distill(DistillCell {
                dataset: dataset_name(&row.dataset).to_string(),
                k: k()?,
                method: parse_method(
                    &col.method,
                    &col.id,
                    &DistillMethod::ALL,
                    DistillMethod::name,
                )?,
                augment: col.augment,
                embed: col.embed,
            }),
            ExperimentKind::Repurpose => Cell::Repurpose(RepurposeCell {
                source: dataset_name(&row.dataset).to_string(),
                method: parse_method(
                    &col.method,
                    &col.id,
                    &RepurposeMethod::ALL,
                    RepurposeMethod::name,
                )?,
                modality: parse_method(
                    col.modality.as_deref().unwrap_or("supervised"),
                    &col.id,
                    &Modality::ALL,
                    Modality::name,
                )?,
            }),
            ExperimentKind::Trajectories => {
                let target = dataset_name(&row.dataset).to_string();
                let (data, flow) = match col.method.as_str() {
                    "target-only" | "fine-tune" => (
                        parse_method(&col.method, &col.id, &TrainingData::ALL, TrainingData::name)?,
                        None,
                    ),
                    m => {
                        let flow = parse_method(m, &col.id, &FlowKind::ALL, FlowKind::name)?;
                        let data = col.data.as_deref().ok_or_else(|| {
                            anyhow!("column `{}`: a flow column needs `data`", col.id)
                        })?;
                        let data =
                            parse_method(data, &col.id, &TrainingData::ALL, TrainingData::name)?;
                        if !data.needs_flow() {
                            bail!(
                                "column `{}`: `{}` uses no flow; give it as the column's \
                                 `method`, without `data`",
                                col.id,
                                data.name()
                            );
                        }
                        (data, Some(flow))
                    }
                };
                Cell::Trajectories(TrajectoryCell {
                    target,
                    k: k()?,
                    data,
                    flow,
                })
            }
        })
    }

    /// `"M→F k=5"`, or the row's label alone where rows have no k.
    fn group(row: &Row) -> String {
        match row.k {
            Some(k) => format!("{} k={k}", row.label),
            None => row.label.clone(),
        }
    }
}

/// The experiment settings of a table, loaded once.
enum Settings {
    Transfer(TransferSettings),
    Distill(DistillSettings),
    Repurpose(RepurposeSettings),
    Trajectories(TrajectorySettings),
}

fn compute(
    cell: &Cell,
    settings: &Settings,
    profile: &str,
    dirs: &DataDirs,
    cell_dir: &Path,
    gpu: crate::device::DeviceArgs,
) -> Result<String> {
    // Each cell's pictures (flowed or synthetic images) go to a directory of its own.
    let out = cell_dir.join(cell.key());
    wowflow_data::prepare_output_dir(&out)?;
    Ok(match (cell, settings) {
        (Cell::Transfer(c), Settings::Transfer(s)) => serde_json::to_string_pretty(
            &transfer::run_cell(c, s, profile, dirs, Some(&out), gpu)?,
        )?,
        (Cell::Distill(c), Settings::Distill(s)) => {
            serde_json::to_string_pretty(&distill::run_cell(c, s, profile, dirs, Some(&out))?)?
        }
        (Cell::Repurpose(c), Settings::Repurpose(s)) => {
            serde_json::to_string_pretty(&repurpose::run_cell(c, s, profile, dirs, Some(&out))?)?
        }
        (Cell::Trajectories(c), Settings::Trajectories(s)) => {
            serde_json::to_string_pretty(&trajectories::run_cell(c, s, profile, dirs, &out)?)?
        }
        _ => bail!(
            "cell {} does not belong to this table's experiment",
            cell.key()
        ),
    })
}

/// The pieces a cell is computed in: flows and networks for the transfer and distillation
/// cells; the whole cell for re-purposing (its trials share a classifier trained on first
/// use) and trajectories (their flows are shared between the cells of a row).
fn pieces(cell: &Cell, settings: &Settings) -> Vec<Piece> {
    match (cell, settings) {
        (Cell::Transfer(_), Settings::Transfer(s)) => transfer::pieces(s),
        (Cell::Distill(c), Settings::Distill(s)) => distill::pieces(c, s),
        _ => vec![Piece::Cell],
    }
}

/// Computes one piece of `cell` into `cell_dir` (a whole cell also writes `KEY.json`).
fn compute_piece(
    cell: &Cell,
    settings: &Settings,
    profile: &str,
    dirs: &DataDirs,
    cell_dir: &Path,
    gpu: crate::device::DeviceArgs,
    piece: Piece,
) -> Result<()> {
    let key = cell.key();
    if !pieces(cell, settings).contains(&piece) {
        bail!(
            "cell {key} has no piece {piece}; its pieces: {}",
            pieces(cell, settings)
                .iter()
                .map(Piece::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let out = cell_dir.join(&key);
    match (piece, cell, settings) {
        (Piece::Cell, _, _) => {
            let json = compute(cell, settings, profile, dirs, cell_dir, gpu)?;
            write_file(&cell_dir.join(format!("{key}.json")), &json)
        }
        (_, Cell::Transfer(c), Settings::Transfer(s)) => {
            wowflow_data::prepare_output_dir(&out)?;
            transfer::run_piece(c, s, profile, dirs, &out, gpu, piece)
        }
        (_, Cell::Distill(c), Settings::Distill(s)) => {
            wowflow_data::prepare_output_dir(&out)?;
            distill::run_piece(c, s, profile, dirs, &out, piece)
        }
        _ => bail!("cell {key}: piece {piece} is computed with the whole cell"),
    }
}

/// The files under the table's output directory (relative paths, `/`-separated) that piece
/// `piece` of `cell` reads, as they are now: the cell's store settings and its trial's
/// files (a flow resumes from its stored segment), or for a whole cell everything under its
/// directory and the flows it shares.
fn piece_inputs(cell: &Cell, piece: Piece, out: &Path) -> Result<Vec<String>> {
    let key = cell.key();
    let mut dirs = vec![format!("cells/{key}")];
    if let (Piece::Cell, Cell::Trajectories(c)) = (piece, cell) {
        dirs.extend(c.shared_flow_dir().map(|d| format!("cells/{d}")));
    }
    let mut files = Vec::new();
    for dir in dirs {
        let mut stack = vec![dir];
        while let Some(rel) = stack.pop() {
            let path = out.join(&rel);
            let entries = match std::fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("listing {}", path.display())),
            };
            for entry in entries {
                let entry = entry.with_context(|| format!("listing {}", path.display()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = format!("{rel}/{name}");
                if entry.file_type()?.is_dir() {
                    stack.push(child);
                } else if wanted(piece, &rel, &name) {
                    files.push(child);
                }
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Whether file `name` in directory `rel` is an input of `piece` (see [`piece_inputs`]).
fn wanted(piece: Piece, rel: &str, name: &str) -> bool {
    let Some(t) = piece.trial() else {
        return true;
    };
    rel.ends_with("/trials")
        && (name == "settings.json"
            || match piece {
                Piece::Flow(_) => name == format!("t{t}.flow.npz"),
                _ => name == format!("t{t}.json") || name == format!("t{t}.npz"),
            })
}

/// Whether `piece` of the cell stored in `dir` (`cells/KEY`) is finished.
fn piece_done(piece: Piece, dir: &Path) -> bool {
    let trials = dir.join("trials");
    match piece {
        Piece::Flow(t) => {
            trials.join(format!("t{t}.json")).is_file()
                && trials.join(format!("t{t}.npz")).is_file()
        }
        Piece::Network(t, e) => trials.join(format!("t{t}-e{e}.json")).is_file(),
        Piece::Cell => false,
    }
}

fn read_done(path: &Path, profile: &str) -> Option<Done> {
    let text = std::fs::read_to_string(path).ok()?;
    let done: Done = serde_json::from_str(&text).ok()?;
    (done.profile == profile).then_some(done)
}

/// Markdown and CSV of the table as far as it is computed.
fn render(
    t: &TableConfig,
    profile: &str,
    done: &BTreeMap<String, Done>,
    keys: &[Vec<String>],
) -> (String, String) {
    let mut md = format!("# {}\n\n{}\n\nProfile `{profile}`. ", t.title, t.note);
    md.push_str(
        "Each cell: ours as mean ± std (percent) over the networks trained (re-purposing: over \
         the flows), then the paper's \
         number in brackets; `…` = not computed yet.\n\n",
    );
    // Re-purposing rows have no k: the column is left out.
    let with_k = t.rows.iter().any(|r| r.k.is_some());
    md.push_str(if with_k { "| row | k |" } else { "| row |" });
    for c in &t.columns {
        md.push_str(&format!(" {} |", c.title));
    }
    md.push_str(if with_k {
        "\n| --- | --- |"
    } else {
        "\n| --- |"
    });
    md.push_str(&" --- |".repeat(t.columns.len()));
    md.push('\n');
    let mut csv = String::from("row,k,column,mean,std,n,paper,seconds,machine\n");
    let mut machines = std::collections::BTreeSet::new();
    // A column the paper does not have (a control) gets no brackets.
    let in_paper: Vec<bool> = t
        .columns
        .iter()
        .map(|c| t.rows.iter().any(|r| r.paper.contains_key(&c.id)))
        .collect();
    for (row, row_keys) in t.rows.iter().zip(keys) {
        let k = row.k.map_or(String::new(), |k| k.to_string());
        if with_k {
            md.push_str(&format!("| {} | {k} |", row.label));
        } else {
            md.push_str(&format!("| {} |", row.label));
        }
        for ((col, key), &cited) in t.columns.iter().zip(row_keys).zip(&in_paper) {
            let paper = row.paper.get(&col.id).map_or("–", String::as_str);
            let bracket = if cited {
                format!(" [{paper}]")
            } else {
                String::new()
            };
            match done.get(key) {
                Some(d) => {
                    md.push_str(&format!(" {}{bracket} |", d.accuracy));
                    csv.push_str(&format!(
                        "{},{},{},{:.2},{:.2},{},{},{:.1},\"{}\"\n",
                        row.label,
                        k,
                        col.id,
                        d.accuracy.mean,
                        d.accuracy.std,
                        d.accuracy.n,
                        paper,
                        d.seconds,
                        d.machine
                    ));
                    machines.insert(d.machine.clone());
                }
                None => md.push_str(&format!(" …{bracket} |")),
            }
        }
        md.push('\n');
    }
    if !machines.is_empty() {
        md.push_str("\nComputed on: ");
        md.push_str(&machines.into_iter().collect::<Vec<_>>().join("; "));
        md.push_str(". Wall time per cell in `table.csv`.\n");
    }
    (md, csv)
}

/// `table.png`: one group of bars per row, ours (mean ± std) beside the paper's (mean ± std)
/// in a lighter shade of the same colour, for every column with a computed cell. Nothing is
/// drawn before the first cell is done.
fn figure(
    t: &TableConfig,
    profile: &str,
    done: &BTreeMap<String, Done>,
    keys: &[Vec<String>],
    path: &Path,
) -> Result<()> {
    let shown: Vec<usize> = (0..t.columns.len())
        .filter(|&c| keys.iter().any(|row| done.contains_key(&row[c])))
        .collect();
    if shown.is_empty() {
        return Ok(());
    }
    // The paper's bar only for the columns where the paper gives a number in some row.
    let paper_of =
        |row: &Row, c: usize| row.paper.get(&t.columns[c].id).and_then(|p| parse_paper(p));
    let with_paper: Vec<bool> = shown
        .iter()
        .map(|&c| t.rows.iter().any(|r| paper_of(r, c).is_some()))
        .collect();
    let names: Vec<(String, String)> = shown
        .iter()
        .map(|&c| {
            let title = &t.columns[c].title;
            (format!("{title} (ours)"), format!("{title} (paper)"))
        })
        .collect();
    let series: Vec<wowflow_viz::BarSeries<'_>> = shown
        .iter()
        .zip(&names)
        .zip(&with_paper)
        .flat_map(|((&c, (ours, paper)), &has_paper)| {
            let ours = wowflow_viz::BarSeries {
                name: ours,
                color: c,
                light: false,
            };
            let paper = wowflow_viz::BarSeries {
                name: paper,
                color: c,
                light: true,
            };
            if has_paper {
                vec![ours, paper]
            } else {
                vec![ours]
            }
        })
        .collect();
    let groups: Vec<String> = t.rows.iter().map(TableConfig::group).collect();
    let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    let mut values = Vec::with_capacity(groups.len() * series.len());
    for (row, row_keys) in t.rows.iter().zip(keys) {
        for (&c, &has_paper) in shown.iter().zip(&with_paper) {
            values.push(
                done.get(&row_keys[c])
                    .map(|d| (d.accuracy.mean, d.accuracy.std)),
            );
            // The paper's number, where it gives one ("–" and absent entries: no bar).
            if has_paper {
                values.push(paper_of(row, c));
            }
        }
    }
    let title = format!("{} — profile {profile}", t.title);
    let chart = wowflow_viz::BarChart {
        title: &title,
        y_label: "test accuracy (%)",
        series: &series,
        groups: &group_refs,
        values: &values,
    };
    // Room for every bar of a group: about 14 pixels each, and a gap between groups.
    let width = (160 + groups.len() * (14 * series.len() + 40)).clamp(640, 2400) as u32;
    let img = wowflow_viz::bar_chart(&chart, (width, 480))?;
    wowflow_viz::save_png(&img, path).with_context(|| format!("writing {}", path.display()))
}

/// A paper cell `"65.4 ± 1.5"` (or `"65.4"`) as `(mean, std)`; `None` for `"–"`.
fn parse_paper(text: &str) -> Option<(f64, f64)> {
    let mut parts = text.split('±');
    let mean = parts.next()?.trim().parse::<f64>().ok()?;
    let std = match parts.next() {
        Some(s) => s.trim().parse::<f64>().ok()?,
        None => 0.0,
    };
    Some((mean, std))
}

/// A table read from its config: its settings, cells and the cells already done.
struct Loaded {
    t: TableConfig,
    profile: String,
    settings: Settings,
    out: PathBuf,
    cell_dir: PathBuf,
    dirs: DataDirs,
    /// Each row's cell keys, column by column.
    keys: Vec<Vec<String>>,
    /// Every cell of the table once.
    cells: Vec<Cell>,
    done: BTreeMap<String, Done>,
    /// Whether SW-MMD flows run on the GPU (`--device cuda`).
    gpu_flows: bool,
}

impl Loaded {
    fn load(args: &TableArgs) -> Result<Self> {
        args.gpu.check()?;
        let t = TableConfig::load(&args.config)?;
        let profile = args.profile.clone().unwrap_or_else(|| t.profile.clone());
        let config = args.experiment_config.as_deref();
        let settings = match t.experiment {
            ExperimentKind::Transfer => {
                Settings::Transfer(TransferSettings::load(config, &profile)?)
            }
            ExperimentKind::Distill => Settings::Distill(DistillSettings::load(config, &profile)?),
            ExperimentKind::Repurpose => {
                Settings::Repurpose(RepurposeSettings::load(config, &profile)?)
            }
            ExperimentKind::Trajectories => {
                Settings::Trajectories(TrajectorySettings::load(config, &profile)?)
            }
        };
        if let Settings::Transfer(s) = &settings {
            args.gpu.check_sampler(s.sw_mmd.sampler, "sw_mmd.sampler")?;
        }
        if args.gpu.is_cuda() && !matches!(settings, Settings::Transfer(_)) {
            bail!(
                "--device cuda: only the transfer cells (Table 2) run flows on the GPU; the \
                 distillation, re-purposing and trajectory cells run on the CPU: drop it"
            );
        }
        let out = args
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("runs/{}-{profile}", t.name)));
        let cell_dir = out.join("cells");
        wowflow_data::prepare_output_dir(&cell_dir)?;
        let dirs = DataDirs::new(args.data_dir.as_deref());
        let mut keys = Vec::with_capacity(t.rows.len());
        let mut cells: Vec<Cell> = Vec::new();
        for row in &t.rows {
            let mut row_keys = Vec::with_capacity(t.columns.len());
            for col in &t.columns {
                let cell = t.cell(row, col)?;
                let key = cell.key();
                if !cells.iter().any(|c| c.key() == key) {
                    cells.push(cell);
                }
                row_keys.push(key);
            }
            keys.push(row_keys);
        }
        let mut done: BTreeMap<String, Done> = BTreeMap::new();
        for cell in &cells {
            let key = cell.key();
            if let Some(d) = read_done(&cell_dir.join(format!("{key}.json")), &profile) {
                done.insert(key, d);
            }
        }
        Ok(Self {
            t,
            profile,
            settings,
            out,
            cell_dir,
            dirs,
            keys,
            cells,
            done,
            gpu_flows: args.gpu.is_cuda(),
        })
    }

    /// The cells selected by `--only` / `--skip` and not done yet.
    fn pending(&self, args: &TableArgs) -> Vec<&Cell> {
        self.cells
            .iter()
            .filter(|c| !self.done.contains_key(&c.key()) && selected(args, &c.key()))
            .collect()
    }
}

fn selected(args: &TableArgs, key: &str) -> bool {
    args.only.iter().all(|s| key.contains(s.as_str()))
        && !args.skip.iter().any(|s| key.contains(s.as_str()))
}

/// The work left in a table (`--plan`), as JSON.
#[derive(Debug, Serialize)]
struct Plan {
    table: String,
    profile: String,
    out: PathBuf,
    /// Selected cells already finished.
    done_cells: usize,
    /// The selected cells not finished, with their pieces.
    cells: Vec<PlannedCell>,
}

#[derive(Debug, Serialize)]
struct PlannedCell {
    key: String,
    pieces: Vec<PlannedPiece>,
}

#[derive(Debug, Serialize)]
struct PlannedPiece {
    piece: String,
    done: bool,
    /// The piece that must be finished first (a network waits for its trial's flow; a
    /// trajectory cell for the cell that computes the flows of its row)…
    after: Option<String>,
    /// … and its cell, where it is another one.
    after_cell: Option<String>,
    /// Files under OUT the piece reads, as they are now (relative, `/`-separated).
    inputs: Vec<String>,
    /// Where under OUT the piece may write: its cell's directory (a whole cell also its
    /// `cells/KEY.json`, a trajectory cell the flows it shares). A scheduler refuses
    /// anything else coming back from a worker.
    outputs: Vec<String>,
    /// Whether the piece runs on the GPU (`--device cuda`: the SW-MMD flows of Table 2;
    /// networks and other flows run on the CPU).
    gpu: bool,
}

fn plan(loaded: &Loaded, args: &TableArgs) -> Result<Plan> {
    let mut cells = Vec::new();
    // The first pending trajectory cell of each shared flow computes it; the others of its
    // row wait for that cell (they would compute the same flow again, side by side).
    let mut flow_owner: BTreeMap<String, String> = BTreeMap::new();
    for cell in loaded.pending(args) {
        let key = cell.key();
        let all = pieces(cell, &loaded.settings);
        let dir = loaded.cell_dir.join(&key);
        let shared = match cell {
            Cell::Trajectories(c) => c.shared_flow_dir(),
            _ => None,
        };
        let owner = shared.as_ref().and_then(|d| flow_owner.get(d).cloned());
        if let (Some(d), None) = (&shared, &owner) {
            flow_owner.insert(d.clone(), key.clone());
        }
        let gpu = loaded.gpu_flows
            && matches!(cell, Cell::Transfer(c) if c.method == TransferMethod::SwMmd);
        let planned = all
            .iter()
            .map(|&piece| {
                let (after, after_cell) = match piece {
                    Piece::Network(t, _) if all.contains(&Piece::Flow(t)) => {
                        (Some(Piece::Flow(t).to_string()), None)
                    }
                    Piece::Cell => match &owner {
                        Some(o) => (Some(Piece::Cell.to_string()), Some(o.clone())),
                        None => (None, None),
                    },
                    _ => (None, None),
                };
                let mut outputs = vec![format!("cells/{key}/")];
                if piece == Piece::Cell {
                    outputs.push(format!("cells/{key}.json"));
                    outputs.extend(shared.iter().map(|d| format!("cells/{d}/")));
                }
                Ok(PlannedPiece {
                    piece: piece.to_string(),
                    done: piece_done(piece, &dir),
                    after,
                    after_cell,
                    inputs: piece_inputs(cell, piece, &loaded.out)?,
                    outputs,
                    gpu: gpu && matches!(piece, Piece::Flow(_)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        cells.push(PlannedCell {
            key,
            pieces: planned,
        });
    }
    Ok(Plan {
        table: loaded.t.name.clone(),
        profile: loaded.profile.clone(),
        out: loaded.out.clone(),
        done_cells: loaded.done.keys().filter(|key| selected(args, key)).count(),
        cells,
    })
}

/// The options of `python -m wowflow table` (the Python package's table runner, which has
/// the Ray executor) that run what `args` asks; refuses what it does not have.
pub fn python_args(args: &TableArgs) -> Result<Vec<String>> {
    if args.dry_run || args.plan || args.cell.is_some() || args.max_cells.is_some() {
        bail!("--executor ray: --dry-run, --plan, --cell and --max-cells are local options");
    }
    if args.gpu.tf32 {
        bail!("--executor ray: --tf32 is not passed to the Ray tasks; drop it");
    }
    let mut out = vec!["table".to_string(), "--config".into()];
    out.push(args.config.to_string_lossy().into_owned());
    let mut push = |flag: &str, value: Option<String>| {
        if let Some(v) = value {
            out.push(flag.to_string());
            out.push(v);
        }
    };
    push("--profile", args.profile.clone());
    push(
        "--experiment-config",
        args.experiment_config
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
    );
    push(
        "--out",
        args.out.as_ref().map(|p| p.to_string_lossy().into_owned()),
    );
    push(
        "--data-dir",
        args.data_dir
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
    );
    for text in &args.only {
        push("--only", Some(text.clone()));
    }
    for text in &args.skip {
        push("--skip", Some(text.clone()));
    }
    if args.gpu.is_cuda() {
        push("--device", Some("cuda".into()));
    }
    push("--executor", Some("ray".into()));
    push("--address", args.address.clone());
    Ok(out)
}

/// The work left in the table `args` selects, as the JSON `--plan` prints.
pub fn plan_json(args: &TableArgs) -> Result<String> {
    let loaded = Loaded::load(args)?;
    Ok(serde_json::to_string_pretty(&plan(&loaded, args)?)?)
}

/// Runs `wowflow experiment table`: computes the selected cells not yet done, writing each
/// to `OUT/cells/<key>.json` and rewriting `OUT/table.md` and `OUT/table.csv` after each.
/// With `--plan`, prints the work left instead; with `--cell KEY --piece P`, computes that
/// one piece.
pub fn run(args: TableArgs) -> Result<()> {
    if args.executor == Executor::Ray {
        bail!(
            "--executor ray: the Ray executor is the Python package's; run `python -m \
             wowflow table` with the same options (the `wowflow` command does so itself)"
        );
    }
    if args.address.is_some() {
        bail!("--address is an option of --executor ray");
    }
    let loaded = Loaded::load(&args)?;
    if args.plan {
        println!("{}", serde_json::to_string_pretty(&plan(&loaded, &args)?)?);
        return Ok(());
    }
    if let (Some(key), Some(piece)) = (&args.cell, &args.piece) {
        let piece: Piece = piece.parse()?;
        let cell = loaded
            .cells
            .iter()
            .find(|c| &c.key() == key)
            .ok_or_else(|| {
                anyhow!(
                    "--cell {key}: table {} has no such cell (see --dry-run for its cells)",
                    loaded.t.name
                )
            })?;
        let started = Instant::now();
        compute_piece(
            cell,
            &loaded.settings,
            &loaded.profile,
            &loaded.dirs,
            &loaded.cell_dir,
            args.gpu,
            piece,
        )
        .with_context(|| format!("cell {key}, piece {piece}"))?;
        eprintln!(
            "{key} piece {piece}: done ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let Loaded {
        t,
        profile,
        settings,
        out,
        cell_dir,
        dirs,
        keys,
        ..
    } = &loaded;
    let mut done = loaded.done.clone();
    let pending = loaded.pending(&args);
    eprintln!(
        "{}: {} cells, {} done, {} to compute{}",
        t.name,
        loaded.cells.len(),
        done.len(),
        pending.len(),
        if args.only.is_empty() && args.skip.is_empty() {
            String::new()
        } else {
            format!(
                " (selected by --only [{}] --skip [{}])",
                args.only.join(" "),
                args.skip.join(" ")
            )
        }
    );
    if args.dry_run {
        for cell in &loaded.cells {
            let key = cell.key();
            let state = if done.contains_key(&key) {
                "done"
            } else if selected(&args, &key) {
                "to compute"
            } else {
                "skipped"
            };
            println!("{key}\t{state}");
        }
        return Ok(());
    }
    let write_table = |done: &BTreeMap<String, Done>| -> Result<()> {
        let (md, csv) = render(t, profile, done, keys);
        write_file(&out.join("table.md"), &md)?;
        write_file(&out.join("table.csv"), &csv)?;
        figure(t, profile, done, keys, &out.join("table.png"))
    };
    write_table(&done)?;
    let limit = args.max_cells.unwrap_or(usize::MAX);
    for (i, cell) in pending.iter().take(limit).enumerate() {
        let key = cell.key();
        eprintln!("[{}/{}] {key}", i + 1, pending.len().min(limit));
        let started = Instant::now();
        let json = compute(cell, settings, profile, dirs, cell_dir, args.gpu)
            .with_context(|| format!("cell {key}"))?;
        let path = cell_dir.join(format!("{key}.json"));
        write_file(&path, &json)?;
        let d = read_done(&path, profile)
            .ok_or_else(|| anyhow!("{}: just written but unreadable", path.display()))?;
        eprintln!(
            "{key}: {} % ({:.0} s)",
            d.accuracy,
            started.elapsed().as_secs_f64()
        );
        done.insert(key, d);
        write_table(&done)?;
    }
    println!("{}", out.join("table.md").display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_paper;

    #[test]
    fn paper_cells_read_as_mean_and_std() {
        assert_eq!(parse_paper("65.4 ± 1.5"), Some((65.4, 1.5)));
        assert_eq!(parse_paper("99.4"), Some((99.4, 0.0)));
        assert_eq!(parse_paper("–"), None);
        assert_eq!(parse_paper("60.3 ± x"), None);
    }
}

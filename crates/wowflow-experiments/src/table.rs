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
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
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
    /// Where datasets are looked for first.
    #[cfg_attr(feature = "clap", arg(long, value_name = "DIR"))]
    pub data_dir: Option<PathBuf>,
    /// `--device cuda`: Table 2's SW-MMD flows on the GPU (Table 1 runs on the CPU).
    #[cfg_attr(feature = "clap", command(flatten))]
    pub gpu: crate::device::DeviceArgs,
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

/// Runs `wowflow experiment table`: computes the selected cells not yet done, writing each
/// to `OUT/cells/<key>.json` and rewriting `OUT/table.md` and `OUT/table.csv` after each.
pub fn run(args: TableArgs) -> Result<()> {
    args.gpu.check()?;
    let t = TableConfig::load(&args.config)?;
    let profile = args.profile.clone().unwrap_or_else(|| t.profile.clone());
    let settings = match t.experiment {
        ExperimentKind::Transfer => Settings::Transfer(TransferSettings::load(
            args.experiment_config.as_deref(),
            &profile,
        )?),
        ExperimentKind::Distill => Settings::Distill(DistillSettings::load(
            args.experiment_config.as_deref(),
            &profile,
        )?),
        ExperimentKind::Repurpose => Settings::Repurpose(RepurposeSettings::load(
            args.experiment_config.as_deref(),
            &profile,
        )?),
        ExperimentKind::Trajectories => Settings::Trajectories(TrajectorySettings::load(
            args.experiment_config.as_deref(),
            &profile,
        )?),
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
    let mut todo: Vec<Cell> = Vec::new();
    for row in &t.rows {
        let mut row_keys = Vec::with_capacity(t.columns.len());
        for col in &t.columns {
            let cell = t.cell(row, col)?;
            let key = cell.key();
            if !todo.iter().any(|c| c.key() == key) {
                todo.push(cell);
            }
            row_keys.push(key);
        }
        keys.push(row_keys);
    }
    let mut done: BTreeMap<String, Done> = BTreeMap::new();
    for cell in &todo {
        let key = cell.key();
        if let Some(d) = read_done(&cell_dir.join(format!("{key}.json")), &profile) {
            done.insert(key, d);
        }
    }
    let selected = |key: &str| {
        args.only.iter().all(|s| key.contains(s.as_str()))
            && !args.skip.iter().any(|s| key.contains(s.as_str()))
    };
    let pending: Vec<&Cell> = todo
        .iter()
        .filter(|c| !done.contains_key(&c.key()) && selected(&c.key()))
        .collect();
    eprintln!(
        "{}: {} cells, {} done, {} to compute{}",
        t.name,
        todo.len(),
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
        for cell in &todo {
            let key = cell.key();
            let state = if done.contains_key(&key) {
                "done"
            } else if selected(&key) {
                "to compute"
            } else {
                "skipped"
            };
            println!("{key}\t{state}");
        }
        return Ok(());
    }
    let write_table = |done: &BTreeMap<String, Done>| -> Result<()> {
        let (md, csv) = render(&t, &profile, done, &keys);
        write_file(&out.join("table.md"), &md)?;
        write_file(&out.join("table.csv"), &csv)?;
        figure(&t, &profile, done, &keys, &out.join("table.png"))
    };
    write_table(&done)?;
    let limit = args.max_cells.unwrap_or(usize::MAX);
    for (i, cell) in pending.iter().take(limit).enumerate() {
        let key = cell.key();
        eprintln!("[{}/{}] {key}", i + 1, pending.len().min(limit));
        let started = Instant::now();
        let json = compute(cell, &settings, &profile, &dirs, &cell_dir, args.gpu)
            .with_context(|| format!("cell {key}"))?;
        let path = cell_dir.join(format!("{key}.json"));
        write_file(&path, &json)?;
        let d = read_done(&path, &profile)
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

//! Per-trial results of a cell on disk, so an interrupted cell resumes at the level of one
//! flow and one network training.
//!
//! A cell is `trials` flows × `evals` networks. Under the cell's directory, `trials/` holds
//! `settings.json` (what the pieces were computed with), and for each trial `t`:
//! `tT.json` (the trial's record without its scores), `tT.npz` (the training set the flow
//! produced: `x` `[n, c·h·w]` f32, `y` `[n]` int64, exactly what the networks are trained on)
//! and `tT-eE.json` (the score of network `e`); while trial `t`'s flow runs, `tT.flow.npz`
//! holds its state every [`SEGMENT_STEPS`] steps or [`SEGMENT_SECONDS`] seconds, and when
//! the flow is interrupted (Ctrl-C, SIGTERM). Each file is written atomically as soon as
//! its piece is done; a rerun loads what exists and computes the rest, so stopping at any
//! moment loses at most a flow segment or the network in progress. Everything is exact (`f32`
//! bits, `float_roundtrip` JSON), so a resumed cell equals an uninterrupted one.

use crate::checkpoint::FlowSegments;
use crate::evaluate::Score;
use crate::write_file;
use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wowflow_data::{read_npz, write_npz, NpyArray};
use wowflow_nn::Images;

/// Steps between two saved states of a cell's flow: 500 steps are 15–25 s of a
/// paper-protocol flow on two cores, and saving a state costs a few milliseconds.
pub const SEGMENT_STEPS: usize = 500;

/// A cell's flow also saves its state at the first step after this many seconds since the
/// last save: 500 steps of a slow flow (the OTDD flow at Alvarez-Melis & Fusi's sizes, seconds
/// per step) would otherwise be up to an hour of work at risk.
pub const SEGMENT_SECONDS: u64 = 300;

/// The finished pieces of one cell.
#[derive(Debug, Clone)]
pub struct TrialStore {
    dir: PathBuf,
}

impl TrialStore {
    /// The store in `cell_dir/trials` for a cell computed with `settings` (any serialisable
    /// description of the cell and everything that determines its numbers). Pieces written
    /// under other settings are refused with the file to remove, never mixed in.
    pub fn open(cell_dir: &Path, settings: &impl Serialize) -> Result<Self> {
        let dir = cell_dir.join("trials");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("settings.json");
        let mine = serde_json::to_value(settings)?;
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let theirs: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?;
                if theirs != mine {
                    bail!(
                        "{} holds trials computed with other settings; remove the directory \
                         {} to recompute them, or write this run elsewhere (--out)",
                        path.display(),
                        dir.display()
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_file(&path, &serde_json::to_string_pretty(&mine)?)?;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        Ok(Self { dir })
    }

    fn flow_paths(&self, trial: usize) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("t{trial}.json")),
            self.dir.join(format!("t{trial}.npz")),
        )
    }

    /// Trial `trial`'s record and training set, if its flow finished before.
    pub fn load_flow<T: DeserializeOwned>(
        &self,
        trial: usize,
        shape: (usize, usize, usize),
        classes: usize,
    ) -> Result<Option<(T, Images)>> {
        let Some((record, arrays)) = self.load_arrays(trial)? else {
            return Ok(None);
        };
        let npz = self.flow_paths(trial).1;
        let images = images_of(&arrays, "x", "y", shape, classes)
            .with_context(|| format!("{}: training set", npz.display()))?;
        Ok(Some((record, images)))
    }

    /// Records trial `trial`'s flow: its record and the training set it produced.
    pub fn save_flow<T: Serialize>(&self, trial: usize, record: &T, train: &Images) -> Result<()> {
        let (x, y) = arrays_of(train);
        self.save_arrays(trial, record, &[("x", &x), ("y", &y)])
    }

    /// Trial `trial`'s record and arrays (`tT.json`, `tT.npz`), if both were written: the
    /// general form of [`TrialStore::load_flow`] for flows that keep more than a training
    /// set (initial particles, trajectories, a push-forward's images).
    pub fn load_arrays<T: DeserializeOwned>(
        &self,
        trial: usize,
    ) -> Result<Option<(T, BTreeMap<String, NpyArray>)>> {
        let (json, npz) = self.flow_paths(trial);
        // The record is written last: without it the arrays may be from a run that stopped
        // between the two files, and are recomputed.
        if !json.is_file() || !npz.is_file() {
            return Ok(None);
        }
        Ok(Some((read_json(&json)?, read_npz(&npz)?)))
    }

    /// Records trial `trial`: its arrays first, then its record (see
    /// [`TrialStore::load_arrays`]).
    pub fn save_arrays<T: Serialize>(
        &self,
        trial: usize,
        record: &T,
        arrays: &[(&str, &NpyArray)],
    ) -> Result<()> {
        let (json, npz) = self.flow_paths(trial);
        write_npz(&npz, arrays)?;
        write_file(&json, &serde_json::to_string_pretty(record)?)
    }

    /// Where trial `trial`'s flow keeps its state every [`SEGMENT_STEPS`] steps (or
    /// [`SEGMENT_SECONDS`] seconds) until the flow is stored ([`FlowSegments::finish`] then removes it).
    pub fn flow_segments(&self, trial: usize) -> FlowSegments {
        FlowSegments {
            path: self.dir.join(format!("t{trial}.flow.npz")),
            every: SEGMENT_STEPS,
            every_seconds: Some(SEGMENT_SECONDS),
            name: format!("trial {trial} of {}", self.dir.display()),
        }
    }

    fn score_path(&self, trial: usize, eval: usize) -> PathBuf {
        self.dir.join(format!("t{trial}-e{eval}.json"))
    }

    /// The score of network `eval` of trial `trial`, if it was trained before.
    pub fn load_score(&self, trial: usize, eval: usize) -> Result<Option<Score>> {
        let path = self.score_path(trial, eval);
        if !path.is_file() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    /// Records the score of network `eval` of trial `trial`.
    pub fn save_score(&self, trial: usize, eval: usize, score: &Score) -> Result<()> {
        write_file(
            &self.score_path(trial, eval),
            &serde_json::to_string_pretty(score)?,
        )
    }
}

/// Images from arrays `x` (`[n, c·h·w]` f32) and `y` (`[n]` labels) of an npz.
pub fn images_of(
    arrays: &BTreeMap<String, NpyArray>,
    x: &str,
    y: &str,
    shape: (usize, usize, usize),
    classes: usize,
) -> Result<Images> {
    let (Some(xa), Some(ya)) = (arrays.get(x), arrays.get(y)) else {
        bail!("expected arrays `{x}` and `{y}`");
    };
    let labels = ya
        .to_i64()?
        .into_iter()
        .map(|l| usize::try_from(l).context("negative label"))
        .collect::<Result<Vec<usize>>>()
        .with_context(|| format!("array `{y}`"))?;
    Ok(Images::new(xa.to_f32(), labels, shape, classes)?)
}

/// The arrays `x` (`[n, c·h·w]` f32) and `y` (`[n]` int64) of images.
pub fn arrays_of(images: &Images) -> (NpyArray, NpyArray) {
    let x = NpyArray::f32(
        vec![images.len(), images.image_len()],
        images.values().to_vec(),
    );
    let y = NpyArray::i64(
        vec![images.len()],
        images.labels().iter().map(|&l| l as i64).collect(),
    );
    (x, y)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The scores of networks `0..evals` of trial `trial` of cell `key`: each loaded from `store`
/// where it was stored before, else trained by `train(e)` and stored at once. Logs each.
pub fn scores(
    store: Option<&TrialStore>,
    key: &str,
    trial: usize,
    evals: usize,
    mut train: impl FnMut(usize) -> Result<Score>,
) -> Result<Vec<Score>> {
    (0..evals)
        .map(|e| score(store, key, trial, e, &mut train))
        .collect()
}

/// The score of network `eval` of trial `trial` of cell `key`: loaded from `store` where it
/// was stored before, else trained by `train(eval)` and stored at once. Logs it.
pub fn score(
    store: Option<&TrialStore>,
    key: &str,
    trial: usize,
    eval: usize,
    train: &mut impl FnMut(usize) -> Result<Score>,
) -> Result<Score> {
    let saved = match store {
        Some(store) => store.load_score(trial, eval)?,
        None => None,
    };
    let score = match saved {
        Some(score) => score,
        None => {
            let score = train(eval)?;
            if let Some(store) = store {
                store.save_score(trial, eval, &score)?;
            }
            score
        }
    };
    eprintln!(
        "{key} trial {trial} eval {eval}: test accuracy {:.2} % ({} training images, {:.1} s)",
        100.0 * score.accuracy,
        score.train_images,
        score.train_seconds
    );
    Ok(score)
}

/// One unit of work of a table cell, the grain at which a scheduler (Ray, through the Python
/// package) hands a cell out: a trial's flow, one network trained on a stored flow's
/// training set, or — for the experiments whose pieces are not independent — the whole cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// Trial `t`'s flow (or the draw of its images, for columns without a flow), stored as
    /// `tT.json` + `tT.npz`.
    Flow(usize),
    /// Network `e` of trial `t`, trained on the stored `tT.npz`, scored into `tT-eE.json`.
    Network(usize, usize),
    /// The whole cell, written as `cells/KEY.json`.
    Cell,
}

impl Piece {
    /// The trial whose files the piece reads and writes (`None` for a whole cell).
    pub fn trial(self) -> Option<usize> {
        match self {
            Piece::Flow(t) | Piece::Network(t, _) => Some(t),
            Piece::Cell => None,
        }
    }
}

impl std::fmt::Display for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Piece::Flow(t) => write!(f, "flow:{t}"),
            Piece::Network(t, e) => write!(f, "net:{t}:{e}"),
            Piece::Cell => f.write_str("cell"),
        }
    }
}

impl std::str::FromStr for Piece {
    type Err = anyhow::Error;

    /// `flow:T`, `net:T:E` or `cell`.
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |p: &str| {
            p.parse::<usize>()
                .map_err(|_| anyhow::anyhow!("piece `{s}`: `{p}` is not a trial or network index"))
        };
        match parts.as_slice() {
            ["cell"] => Ok(Piece::Cell),
            ["flow", t] => Ok(Piece::Flow(num(t)?)),
            ["net", t, e] => Ok(Piece::Network(num(t)?, num(e)?)),
            _ => bail!("piece `{s}`: expected `flow:T`, `net:T:E` or `cell`"),
        }
    }
}

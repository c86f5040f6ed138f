//! Checkpoints: a [`FlowState`] (with the objective's own moving parameters, e.g. the
//! label Gaussians of the joint OTDD dynamics, in `objective_state`) plus the run's settings
//! in one `.npz`, written atomically.
//!
//! numpy can open a checkpoint (`np.load("run.ckpt.npz")["x"]`), and everything in it is
//! exact (`f32`/`f64` bits), so resuming is bit-identical. The settings are stored as a
//! JSON string in the `meta` array; resuming under other settings is refused with the list
//! of what differs, because it would silently produce a run nobody asked for.

use crate::method::FlowSettings;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use wowflow_core::{FlowState, LabeledCloud, OptimizerState};
use wowflow_data::{read_npz, write_npz, ArrayData, NpyArray};

/// What must be equal between the run that wrote a checkpoint and the run resuming it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The method and the settings that change its objective
    /// ([`FlowSettings::objective_name`]).
    pub objective: String,
    /// The kernel, as JSON.
    pub kernel: serde_json::Value,
    /// Slicing directions per step.
    pub projections: usize,
    /// How directions are drawn (`gaussian`, `orthogonal`, `fixed:FILE`).
    pub directions: String,
    /// Target particles per class per step.
    pub target_batch: Option<usize>,
    /// The optimiser, as JSON.
    pub optimizer: serde_json::Value,
    /// Seed of every random choice.
    pub seed: u64,
    /// The clipping box.
    pub clip: Option<(f32, f32)>,
    /// `(N, d)` of the source.
    pub source_shape: (usize, usize),
    /// `(M, d)` of the target.
    pub target_shape: (usize, usize),
    /// The class weights of both datasets; absent in checkpoints written before they were
    /// recorded (those are then not compared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_weights: Option<String>,
}

impl RunSettings {
    /// What a checkpoint of a flow with `settings` from `source` towards `target` records.
    pub fn of(
        settings: &FlowSettings,
        source: &LabeledCloud,
        target: &LabeledCloud,
    ) -> Result<Self> {
        Ok(Self {
            objective: settings.objective_name(),
            kernel: serde_json::to_value(settings.kernel()?)?,
            projections: settings.projections,
            directions: match (&settings.fixed_directions, &settings.directions) {
                (Some(d), _) => format!("fixed:in-memory({} x {})", d.count(), d.dim()),
                (None, Some(p)) => format!("fixed:{}", p.display()),
                (None, None) => format!("{:?}", settings.sampler).to_lowercase(),
            },
            target_batch: settings.target_batch,
            optimizer: serde_json::to_value(settings.optimizer()?)?,
            seed: settings.seed,
            clip: settings.clip,
            source_shape: (source.n_points(), source.dim()),
            target_shape: (target.n_points(), target.dim()),
            class_weights: Some(format!(
                "source {:?}, target {:?}",
                source.class_weights(),
                target.class_weights()
            )),
        })
    }
}

/// An observer that writes a checkpoint every `every` steps from inside the flow (`0`:
/// never).
pub struct Checkpointer<'a> {
    /// Where the checkpoint goes (overwritten atomically each time).
    pub path: &'a Path,
    /// Steps between checkpoints.
    pub every: usize,
    /// The run's settings, stored with the state.
    pub settings: &'a RunSettings,
}

impl wowflow_core::Observer for Checkpointer<'_> {
    fn on_step(
        &mut self,
        _info: &wowflow_core::StepInfo,
        state: &FlowState,
    ) -> wowflow_core::Result<wowflow_core::Control> {
        save_if(
            self.path,
            due(self.every, state.step),
            state,
            "checkpoint",
            || Ok(serde_json::to_vec(self.settings)?),
        )?;
        Ok(wowflow_core::Control::Continue)
    }

    fn needs_state(&self, steps_done: usize, _total: usize) -> bool {
        due(self.every, steps_done)
    }
}

/// Whether a state is saved after `steps_done` steps when saving every `every` (0: never).
fn due(every: usize, steps_done: usize) -> bool {
    every > 0 && steps_done.is_multiple_of(every)
}

/// The observers' common step: writes `state` with `meta()` to `path` when `when` holds,
/// naming `what` (a checkpoint, a flow segment) and the file if the write fails; whether it
/// wrote.
fn save_if(
    path: &Path,
    when: bool,
    state: &FlowState,
    what: &str,
    meta: impl FnOnce() -> Result<Vec<u8>>,
) -> wowflow_core::Result<bool> {
    if when {
        meta()
            .and_then(|m| save_with_meta(path, state, m))
            .map_err(|e| {
                wowflow_core::CoreError::observer(format!("writing {what} {}", path.display()), e)
            })?;
    }
    Ok(when)
}

fn f64_array(data: &[f64]) -> NpyArray {
    NpyArray::f64(vec![data.len()], data.to_vec())
}

fn i64_array(data: Vec<i64>) -> NpyArray {
    NpyArray::i64(vec![data.len()], data)
}

/// Writes `state` and `settings` to `path` (atomically: a crash never leaves half a file).
pub fn save(path: &Path, state: &FlowState, settings: &RunSettings) -> Result<()> {
    save_with_meta(path, state, serde_json::to_vec(settings)?)
}

/// Writes `state` with `meta` (JSON bytes describing the run) to `path`.
fn save_with_meta(path: &Path, state: &FlowState, meta: Vec<u8>) -> Result<()> {
    let cloud = &state.cloud;
    let mut arrays: Vec<(&str, NpyArray)> = vec![
        (
            "x",
            NpyArray::f32(vec![cloud.n_points(), cloud.dim()], cloud.points().to_vec()),
        ),
        (
            "offsets",
            i64_array(cloud.offsets().iter().map(|&o| o as i64).collect()),
        ),
        ("class_ids", i64_array(cloud.class_ids().to_vec())),
        ("class_weights", f64_array(cloud.class_weights())),
        ("step", i64_array(vec![state.step as i64])),
        (
            "opt_first",
            NpyArray::f32(
                vec![state.optimizer.first.len()],
                state.optimizer.first.clone(),
            ),
        ),
        (
            "opt_second",
            NpyArray::f32(
                vec![state.optimizer.second.len()],
                state.optimizer.second.clone(),
            ),
        ),
        ("opt_t", i64_array(vec![state.optimizer.t as i64])),
        ("losses", f64_array(&state.losses)),
        ("grad_norms", f64_array(&state.grad_norms)),
        (
            "meta",
            NpyArray {
                shape: vec![meta.len()],
                data: ArrayData::U8(meta),
            },
        ),
    ];
    if let Some(w) = cloud.particle_weights() {
        arrays.push(("particle_weights", f64_array(w)));
    }
    if let Some(o) = &state.objective_state {
        arrays.push(("objective_state", f64_array(o)));
    }
    let refs: Vec<(&str, &NpyArray)> = arrays.iter().map(|(n, a)| (*n, a)).collect();
    write_npz(path, &refs).with_context(|| format!("writing checkpoint {}", path.display()))
}

fn get<'a>(
    arrays: &'a BTreeMap<String, NpyArray>,
    name: &str,
    path: &Path,
) -> Result<&'a NpyArray> {
    arrays.get(name).with_context(|| {
        format!(
            "{}: not a wowflow checkpoint (no array `{name}`)",
            path.display()
        )
    })
}

fn f64_of(a: &NpyArray, name: &str, path: &Path) -> Result<Vec<f64>> {
    match &a.data {
        ArrayData::F64(v) => Ok(v.clone()),
        _ => bail!("{}: array `{name}` must be float64", path.display()),
    }
}

/// Reads a checkpoint and checks that it was written under `settings`.
pub fn load(path: &Path, settings: &RunSettings) -> Result<FlowState> {
    let (meta, state) = load_with_meta(path)?;
    let saved: RunSettings = serde_json::from_slice(&meta)
        .with_context(|| format!("{}: unreadable settings", path.display()))?;
    let differences = differences(&saved, settings);
    if !differences.is_empty() {
        bail!(
            "{} was written by a run with other settings; resuming would mix two runs:\n  {}",
            path.display(),
            differences.join("\n  ")
        );
    }
    Ok(state)
}

/// The `meta` bytes and the state of a checkpoint.
fn load_with_meta(path: &Path) -> Result<(Vec<u8>, FlowState)> {
    let arrays =
        read_npz(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    let meta = match &get(&arrays, "meta", path)?.data {
        ArrayData::U8(bytes) => bytes.clone(),
        _ => bail!("{}: array `meta` must be uint8", path.display()),
    };
    let x = get(&arrays, "x", path)?;
    if x.shape.len() != 2 {
        bail!(
            "{}: array `x` has shape {}, expected (N, d)",
            path.display(),
            x.shape_string()
        );
    }
    let offsets: Vec<usize> = get(&arrays, "offsets", path)?
        .to_i64()?
        .into_iter()
        .map(|o| o.max(0) as usize)
        .collect();
    let class_ids = get(&arrays, "class_ids", path)?.to_i64()?;
    let class_weights = f64_of(get(&arrays, "class_weights", path)?, "class_weights", path)?;
    let mut cloud = LabeledCloud::from_parts(x.to_f32(), x.shape[1], offsets, class_ids)
        .and_then(|c| c.with_class_weights(class_weights))
        .with_context(|| format!("{}: inconsistent cloud", path.display()))?;
    if let Some(w) = arrays.get("particle_weights") {
        cloud = cloud.with_particle_weights(f64_of(w, "particle_weights", path)?)?;
    }
    let scalar = |name: &str| -> Result<i64> {
        get(&arrays, name, path)?
            .to_i64()?
            .first()
            .copied()
            .with_context(|| format!("{}: array `{name}` is empty", path.display()))
    };
    let state = FlowState {
        cloud,
        step: scalar("step")?.max(0) as usize,
        optimizer: OptimizerState {
            first: get(&arrays, "opt_first", path)?.to_f32(),
            second: get(&arrays, "opt_second", path)?.to_f32(),
            t: scalar("opt_t")?.max(0) as u64,
        },
        losses: f64_of(get(&arrays, "losses", path)?, "losses", path)?,
        grad_norms: f64_of(get(&arrays, "grad_norms", path)?, "grad_norms", path)?,
        objective_state: arrays
            .get("objective_state")
            .map(|a| f64_of(a, "objective_state", path))
            .transpose()?,
    };
    Ok((meta, state))
}

/// Where a flow inside an experiment cell keeps its state between segments, so a stopped
/// cell resumes its flow at the last segment boundary (bit-identically: the flow's
/// randomness is keyed by `(seed, step)` and the state holds the optimiser's moments and the
/// objective's own moving parameters, so any step is a valid boundary). The caller
/// guarantees the settings (the cell's [`crate::trials::TrialStore`] refuses pieces of other
/// settings), so the file records only `meta` text naming the flow.
#[derive(Debug, Clone)]
pub struct FlowSegments {
    /// The state file, overwritten atomically at each segment boundary.
    pub path: std::path::PathBuf,
    /// Steps per segment.
    pub every: usize,
    /// Also end a segment once this many seconds have passed since the last one began
    /// (`None`: by steps only). Why: a step of a slow flow takes seconds (an OTDD step at
    /// Alvarez-Melis & Fusi's sizes, 5 000 × 5 000 with k-means classes, ≈ 7 s), so `every`
    /// steps alone could put an hour of work at risk.
    pub every_seconds: Option<u64>,
    /// What the state belongs to (stored as `meta`; a mismatch is refused).
    pub name: String,
}

impl FlowSegments {
    /// The state to start from: the last saved segment of this flow, or `start`.
    pub fn resume(&self, start: LabeledCloud) -> Result<FlowState> {
        if !self.path.is_file() {
            return Ok(FlowState::new(start));
        }
        let (meta, state) = load_with_meta(&self.path)?;
        if meta != self.name.as_bytes() {
            bail!(
                "{} holds the state of another flow ({}), not of {}",
                self.path.display(),
                String::from_utf8_lossy(&meta),
                self.name
            );
        }
        if state.cloud.n_points() != start.n_points() || state.cloud.dim() != start.dim() {
            bail!(
                "{}: saved flow has {} × {} particles, this one {} × {}",
                self.path.display(),
                state.cloud.n_points(),
                state.cloud.dim(),
                start.n_points(),
                start.dim()
            );
        }
        eprintln!(
            "{}: resuming the flow at step {}",
            self.path.display(),
            state.step
        );
        Ok(state)
    }

    /// [`FlowSegments::resume`] when there are segments, else a fresh state from `start`.
    pub fn resume_or_start(segments: Option<&Self>, start: LabeledCloud) -> Result<FlowState> {
        match segments {
            Some(s) => s.resume(start),
            None => Ok(FlowState::new(start)),
        }
    }

    /// Writes `state` as this flow's last segment (atomically).
    pub fn save(&self, state: &FlowState) -> Result<()> {
        save_with_meta(&self.path, state, self.name.clone().into_bytes())
    }

    /// The observer that saves the segments while the flow runs.
    pub fn saver(&self) -> SegmentSaver<'_> {
        SegmentSaver {
            segments: self,
            since: std::time::Instant::now(),
            save_next: false,
        }
    }

    /// Removes the saved state once the flow's result is stored elsewhere.
    pub fn finish(&self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", self.path.display()))
            }
            _ => Ok(()),
        }
    }
}

/// Saves a flow's state every [`FlowSegments::every`] steps and, with
/// [`FlowSegments::every_seconds`], at the first step after that much time: the time rule is
/// decided one step ahead, so [`wowflow_core::Observer::needs_state`] has announced the save
/// (a GPU flow copies its particles to the host only when asked).
#[derive(Debug)]
pub struct SegmentSaver<'a> {
    segments: &'a FlowSegments,
    since: std::time::Instant,
    save_next: bool,
}

impl wowflow_core::Observer for SegmentSaver<'_> {
    fn on_step(
        &mut self,
        _info: &wowflow_core::StepInfo,
        state: &FlowState,
    ) -> wowflow_core::Result<wowflow_core::Control> {
        let when = due(self.segments.every, state.step) || self.save_next;
        if save_if(&self.segments.path, when, state, "flow segment", || {
            Ok(self.segments.name.clone().into_bytes())
        })? {
            self.since = std::time::Instant::now();
        }
        self.save_next = self
            .segments
            .every_seconds
            .is_some_and(|s| self.since.elapsed().as_secs() >= s);
        Ok(wowflow_core::Control::Continue)
    }

    fn needs_state(&self, steps_done: usize, _total: usize) -> bool {
        due(self.segments.every, steps_done) || self.save_next
    }
}

fn differences(saved: &RunSettings, now: &RunSettings) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(saved).unwrap_or_default(),
        serde_json::to_value(now).unwrap_or_default(),
    );
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec!["settings are not comparable".into()];
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "{k}: checkpoint has {v}, this run has {}",
                b.get(k).cloned().unwrap_or_default()
            )
        })
        .collect()
}

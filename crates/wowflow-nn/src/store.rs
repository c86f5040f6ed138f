//! Saved classifiers: weights through burn's recorder plus a JSON model card, so a
//! classifier is trained once and reused.
//!
//! A [`ModelStore`] is a directory; a model is saved under a *key* naming what it is
//! (architecture, dataset, protocol, seed — [`model_key`] builds one) as `KEY.mpk` (burn's
//! named MessagePack recorder, full `f32` precision, so a reload is bit-exact) and
//! `KEY.json` (the [`ModelCard`]: how it was trained and how well it does). Both are
//! written to a temporary name and renamed, so an interrupted save never leaves a truncated
//! model that a later run would load.

use crate::error::{NnError, Result};
use crate::eval::Evaluation;
use crate::models::Architecture;
use crate::train::{TrainConfig, TrainReport};
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a saved model is and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The name the model is stored under (`KEY.mpk`, `KEY.json`); see [`model_key`].
    pub key: String,
    /// Which network the weights belong to; [`ModelStore::load`] needs a fresh model of
    /// this architecture (and the same shape) to load them into.
    pub architecture: Architecture,
    /// Training data, e.g. `mnist train, 500 per class (seed 0)`.
    pub dataset: String,
    /// Free text or a protocol name (`da-paper`, …).
    pub protocol: String,
    /// The training settings used.
    pub train: TrainConfig,
    /// Steps, time, throughput and final loss (per-step losses are not kept).
    ///
    /// This field: optimiser steps taken ([`TrainReport::steps`]).
    pub steps: usize,
    /// Wall-clock training time in seconds ([`TrainReport::seconds`]).
    pub seconds: f64,
    /// Training throughput ([`TrainReport::images_per_second`]).
    pub images_per_second: f64,
    /// Mean batch loss over the last steps ([`TrainReport::final_loss`]).
    pub final_loss: f32,
    /// Score on held-out data, if measured.
    pub test: Option<Evaluation>,
    /// What produced the file (`wowflow-nn x.y.z, burn 0.21.0, backend`).
    pub produced_by: String,
}

impl ModelCard {
    /// A card from a training run.
    pub fn new(
        key: &str,
        architecture: Architecture,
        dataset: &str,
        protocol: &str,
        train: TrainConfig,
        report: &TrainReport,
        backend: &str,
    ) -> Self {
        Self {
            key: key.to_string(),
            architecture,
            dataset: dataset.to_string(),
            protocol: protocol.to_string(),
            train,
            steps: report.steps,
            seconds: report.seconds,
            images_per_second: report.images_per_second,
            final_loss: report.final_loss,
            test: None,
            produced_by: format!(
                "wowflow-nn {}, burn 0.21.0, {backend}",
                env!("CARGO_PKG_VERSION")
            ),
        }
    }
}

/// A key from its parts, reduced to `[a-z0-9._-]` so it is a safe file name:
/// `model_key(&["da-cnn", "mnist", "500pc", "5000steps", "seed0"])` →
/// `da-cnn_mnist_500pc_5000steps_seed0`.
pub fn model_key(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|ch| match ch.to_ascii_lowercase() {
                    c @ ('a'..='z' | '0'..='9' | '.' | '-') => c,
                    _ => '-',
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// A directory of saved models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelStore {
    /// The directory holding the `KEY.mpk` / `KEY.json` pairs (created on the first save).
    pub dir: PathBuf,
}

type Recorder = NamedMpkFileRecorder<FullPrecisionSettings>;

impl ModelStore {
    /// The store in `dir` (created on the first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `~/.cache/wowflow/models` (the platform's cache directory), if there is one.
    pub fn user_cache() -> Option<Self> {
        dirs::cache_dir().map(|d| Self::new(d.join("wowflow").join("models")))
    }

    /// Path of the weights of `key`.
    pub fn weights_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.mpk"))
    }
    /// Path of the model card of `key`.
    pub fn card_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// True when both files of `key` exist.
    pub fn contains(&self, key: &str) -> bool {
        self.weights_path(key).is_file() && self.card_path(key).is_file()
    }

    /// Saves `model` and `card` under `card.key`; returns the weights' path.
    pub fn save<B: Backend, M: Module<B>>(&self, model: &M, card: &ModelCard) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir).map_err(|source| NnError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let key = &card.key;
        let final_weights = self.weights_path(key);
        // The recorder appends `.mpk` to the name it is given.
        let tmp_stem = self.dir.join(format!(".{key}.tmp-{}", std::process::id()));
        let tmp_weights = tmp_stem.with_extension("mpk");
        model
            .clone()
            .save_file(tmp_stem.clone(), &Recorder::new())
            .map_err(|e| NnError::Record {
                path: tmp_weights.clone(),
                message: e.to_string(),
            })?;
        rename(&tmp_weights, &final_weights)?;
        let json = serde_json::to_string_pretty(card).map_err(|e| NnError::Card {
            path: self.card_path(key),
            message: e.to_string(),
        })?;
        let tmp_card = tmp_stem.with_extension("json");
        std::fs::write(&tmp_card, json).map_err(|source| NnError::Io {
            path: tmp_card.clone(),
            source,
        })?;
        rename(&tmp_card, &self.card_path(key))?;
        Ok(final_weights)
    }

    /// Reads the card of `key`.
    pub fn card(&self, key: &str) -> Result<ModelCard> {
        let path = self.card_path(key);
        let text = std::fs::read_to_string(&path).map_err(|source| NnError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| NnError::Card {
            path,
            message: e.to_string(),
        })
    }

    /// Loads the weights of `key` into `fresh` (a model of the same architecture and
    /// shape, e.g. newly initialised) and returns it with its card.
    pub fn load<B: Backend, M: Module<B>>(
        &self,
        key: &str,
        fresh: M,
        device: &B::Device,
    ) -> Result<(M, ModelCard)> {
        let card = self.card(key)?;
        let path = self.weights_path(key);
        if !path.is_file() {
            return Err(NnError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let model = fresh
            .load_file(path.clone(), &Recorder::new(), device)
            .map_err(|e| NnError::Record {
                path,
                message: e.to_string(),
            })?;
        Ok((model, card))
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|source| NnError::Io {
        path: to.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_safe_file_names() {
        assert_eq!(
            model_key(&["da-cnn", "MNIST", "500/class", "seed 0"]),
            "da-cnn_mnist_500-class_seed-0"
        );
    }
}

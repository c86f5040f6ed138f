//! Supervised training with AdamW and cross-entropy.
//!
//! Mini-batches are drawn epoch by epoch: each epoch shuffles all images with a ChaCha8
//! stream keyed by `(seed, epoch)` and cuts consecutive batches (the last one may be
//! smaller, as PyTorch's `DataLoader(shuffle=True)` does). AdamW uses PyTorch's defaults
//! (β = (0.9, 0.999), ε = 1e-8, weight decay 0.01) unless the config says otherwise, so the
//! papers' "AdamW 3e-4" means the same thing here.

use crate::data::Images;
use crate::error::{invalid, NnError, Result};
use crate::models::Network;
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// How long to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    /// This many optimiser steps (mini-batches).
    Steps(usize),
    /// This many passes over the data.
    Epochs(usize),
}

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// How long to train: a number of optimiser steps or of epochs.
    pub budget: Budget,
    /// Images per mini-batch, at least 1; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
    /// Seed of the batch order (weights are seeded when the model is built).
    pub seed: u64,
}

impl TrainConfig {
    /// AdamW with `lr`, PyTorch's weight decay 0.01, batches of `batch_size`.
    pub fn new(budget: Budget, batch_size: usize, lr: f64, seed: u64) -> Self {
        Self {
            budget,
            batch_size,
            lr,
            weight_decay: 0.01,
            seed,
        }
    }

    /// Optimiser steps this budget takes on `n` images.
    pub fn total_steps(&self, n: usize) -> usize {
        match self.budget {
            Budget::Steps(s) => s,
            Budget::Epochs(e) => e * n.div_ceil(self.batch_size.max(1)),
        }
    }

    fn validate(&self, n: usize) -> Result<()> {
        if self.batch_size == 0 {
            return Err(invalid("batch_size", "must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid("lr", format!("{} must be finite and > 0", self.lr)));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid(
                "weight_decay",
                format!("{} must be finite and ≥ 0", self.weight_decay),
            ));
        }
        if n == 0 {
            return Err(invalid("training data", "has no image"));
        }
        Ok(())
    }
}

/// What a progress callback sees after each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainProgress {
    /// Steps done (1-based).
    pub step: usize,
    /// Steps the whole run takes ([`TrainConfig::total_steps`]).
    pub total: usize,
    /// Cross-entropy of this step's batch.
    pub loss: f32,
    /// Seconds since training started.
    pub seconds: f64,
}

/// Summary of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Optimiser steps taken ([`TrainConfig::total_steps`] of the data).
    pub steps: usize,
    /// Images processed, summed over all batches (an image counts once per epoch).
    pub images_seen: usize,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
    /// Training throughput, images per second (forward + backward + update).
    pub images_per_second: f64,
    /// Mean batch loss over the last `min(50, steps)` steps.
    pub final_loss: f32,
    /// Batch loss of every step.
    pub losses: Vec<f32>,
}

/// Trains `model` on `data` and returns the trained network without autodiff (ready for
/// inference on `B::InnerBackend`) and a report. `progress` is called after every step.
pub fn train<B, M>(
    model: M,
    data: &Images,
    config: &TrainConfig,
    device: &B::Device,
    progress: &mut dyn FnMut(&TrainProgress),
) -> Result<(M::InnerModule, TrainReport)>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Network<B>,
{
    let n = data.len();
    config.validate(n)?;
    let total = config.total_steps(n);
    let mut optim = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(config.weight_decay)
        .init::<B, M>();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut model = model;
    let mut losses = Vec::with_capacity(total);
    let started = Instant::now();
    let mut order: Vec<usize> = (0..n).collect();
    let mut epoch = 0u64;
    let mut images_seen = 0;
    'outer: while losses.len() < total {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(epoch);
        order.sort_unstable();
        order.shuffle(&mut rng);
        for batch in order.chunks(config.batch_size) {
            if losses.len() == total {
                break 'outer;
            }
            let x = data.batch_images::<B>(batch, device);
            let y = data.batch_labels::<B>(batch, device);
            let loss = loss_fn.forward(model.forward(x), y);
            let value = loss.clone().into_scalar().elem::<f32>();
            if !value.is_finite() {
                return Err(NnError::Diverged {
                    step: losses.len(),
                    loss: value,
                });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(config.lr, model, grads);
            losses.push(value);
            images_seen += batch.len();
            progress(&TrainProgress {
                step: losses.len(),
                total,
                loss: value,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        epoch += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let tail = &losses[losses.len().saturating_sub(50)..];
    let final_loss = tail.iter().sum::<f32>() / tail.len().max(1) as f32;
    let report = TrainReport {
        steps: losses.len(),
        images_seen,
        seconds,
        images_per_second: images_seen as f64 / seconds.max(1e-9),
        final_loss,
        losses,
    };
    Ok((model.valid(), report))
}

use burn::tensor::ElementConversion;

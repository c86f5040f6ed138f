//! Supervised training with AdamW and cross-entropy.
//!
//! Mini-batches are drawn epoch by epoch: each epoch shuffles all images with a ChaCha8
//! stream keyed by `(seed, epoch)` and cuts consecutive batches (the last one may be
//! smaller, as PyTorch's `DataLoader(shuffle=True)` does). AdamW uses PyTorch's defaults
//! (β = (0.9, 0.999), ε = 1e-8, weight decay 0.01) unless the config says otherwise, so the
//! papers' "AdamW 3e-4" means the same thing here.
//!
//! Two engines run the steps ([`Engine`]): wowflow's native CPU engine ([`crate::native`],
//! the default for the networks it knows) and burn's autodiff on the model's own backend
//! (any network, and the GPU). Both draw the same batches and start from the same weights.

use crate::data::Images;
use crate::error::{invalid, NnError, Result};
use crate::models::Network;
use crate::native::{self, NetSpec};
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

/// Which code runs the training steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// wowflow's native CPU engine for the networks that describe themselves to it
    /// ([`Network::native_spec`]: the DA CNN, LeNet-5, the ConvNet); other networks fall
    /// back to [`Engine::Burn`]. The weights are copied from and back into the burn model, so
    /// what is returned is the same burn module either way. It runs on the host CPU whatever
    /// the model's backend is: train a GPU model with [`Engine::Burn`].
    #[default]
    Native,
    /// burn's autodiff on the model's backend (`B`): the GPU path.
    Burn,
}

impl Engine {
    /// What model cards written before the native engine existed were trained with.
    fn before_native() -> Self {
        Self::Burn
    }
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
    /// Which code runs the steps (default [`Engine::Native`]; cards saved without the
    /// field were trained by [`Engine::Burn`]).
    #[serde(default = "Engine::before_native")]
    pub engine: Engine,
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
            engine: Engine::Native,
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
    config.validate(data.len())?;
    if config.engine == Engine::Native {
        if let Some(spec) = model.native_spec(data.shape()) {
            return train_native(model, spec, data, config, progress);
        }
    }
    let mut optim = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(config.weight_decay)
        .init::<B, M>();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut model = Some(model);
    let report = run_batches(data.len(), config, progress, |batch| {
        let current = model
            .take()
            .expect("the model is put back after every step");
        let x = data.batch_images::<B>(batch, device);
        let y = data.batch_labels::<B>(batch, device);
        let loss = loss_fn.forward(current.forward(x), y);
        let value = loss.clone().into_scalar().elem::<f32>();
        let grads = GradientsParams::from_grads(loss.backward(), &current);
        model = Some(optim.step(config.lr, current, grads));
        value
    })?;
    let model = model.expect("the model is put back after every step");
    Ok((model.valid(), report))
}

/// The native engine's training loop: weights out of the burn model, steps on host vectors,
/// weights back into the model's inference version.
fn train_native<B, M>(
    model: M,
    spec: NetSpec,
    data: &Images,
    config: &TrainConfig,
    progress: &mut dyn FnMut(&TrainProgress),
) -> Result<(M::InnerModule, TrainReport)>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Network<B>,
{
    let inner = model.valid();
    let read = native::read_params::<B::InnerBackend, _>(&inner)?;
    let expected = spec.tensor_shapes();
    for (i, ((shape, _), want)) in read.iter().zip(&expected).enumerate() {
        if shape != want {
            let (c, h, w) = data.shape();
            return Err(invalid(
                "training data",
                format!(
                    "images of {c}×{h}×{w} do not fit this network: its parameter {i} has shape \
                     {shape:?}, the images need {want:?}"
                ),
            ));
        }
    }
    let mut net = native::NativeNet::new(spec, read.into_iter().map(|(_, v)| v).collect())?;
    let mut optim = native::AdamW::new(&net.params, config.weight_decay);
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let report = run_batches(data.len(), config, progress, |batch| {
        native::gather(data, batch, &mut images, &mut labels);
        let loss = net.loss_and_gradients(&images, &labels);
        optim.step(config.lr, &mut net.params, &net.grads);
        loss
    })?;
    Ok((native::write_params(inner, net.params), report))
}

/// Draws the batches of `config` over `n` images (one seeded shuffle per epoch, consecutive
/// cuts), runs `step` on each (it returns the batch loss), stops on a non-finite loss and
/// reports.
pub(crate) fn run_batches(
    n: usize,
    config: &TrainConfig,
    progress: &mut dyn FnMut(&TrainProgress),
    mut step: impl FnMut(&[usize]) -> f32,
) -> Result<TrainReport> {
    let total = config.total_steps(n);
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
            let value = step(batch);
            if !value.is_finite() {
                return Err(NnError::Diverged {
                    step: losses.len(),
                    loss: value,
                });
            }
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
    Ok(TrainReport {
        steps: losses.len(),
        images_seen,
        seconds,
        images_per_second: images_seen as f64 / seconds.max(1e-9),
        final_loss,
        losses,
    })
}

use burn::tensor::ElementConversion;

//! Scoring a dataset by the network trained on it: the evaluation step that transfer
//! learning and dataset distillation share (docs/math.md §9–10), and the mean ± std the tables
//! report.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use wowflow_nn::{
    evaluate_with, train, Budget, ConvNet, ConvNetConfig, CpuAutodiff, Images, LeNet5, TrainConfig,
};

/// The network a dataset is scored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "name", deny_unknown_fields)]
pub enum EvalNet {
    /// LeNet-5 (transfer learning).
    Lenet5,
    /// The distillation ConvNet; the paper's is depth 3, width 128.
    Convnet {
        /// Convolution blocks (1–3 for 28×28 images).
        depth: usize,
        /// Channels of each convolution.
        width: usize,
    },
}

/// How the scoring network is trained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// The network: `{ name = "lenet5" }` or `{ name = "convnet", depth, width }`.
    pub net: EvalNet,
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per mini-batch.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW decoupled weight decay (default 0.01).
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f32,
}

fn default_weight_decay() -> f32 {
    0.01
}

impl TrainSettings {
    /// Checks the settings; errors name the key under `prefix` (e.g. `train.epochs`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        for (name, v) in [("epochs", self.epochs), ("batch_size", self.batch_size)] {
            if v == 0 {
                bail!("setting `{prefix}.{name}` must be at least 1");
            }
        }
        if let EvalNet::Convnet { depth, width } = self.net {
            if !(1..=3).contains(&depth) || width == 0 {
                bail!(
                    "setting `{prefix}.net`: ConvNet depth must be 1–3 (28×28 inputs) and width ≥ 1, \
                     got depth {depth}, width {width}"
                );
            }
        }
        Ok(())
    }
}

/// What one training + test produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Score {
    /// Test accuracy in `[0, 1]`.
    pub accuracy: f64,
    /// Images in the training set.
    pub train_images: usize,
    /// Wall time of the training, in seconds.
    pub train_seconds: f64,
    /// Mean training batch loss over the last (up to 50) steps.
    pub final_loss: f32,
}

/// Trains a fresh network (weights and batch order from `seed`) on `train_set` and returns
/// its accuracy on `test_set`.
pub fn train_and_test(
    settings: &TrainSettings,
    train_set: &Images,
    test_set: &Images,
    seed: u64,
) -> Result<Score> {
    let device = Default::default();
    let config = TrainConfig {
        budget: Budget::Epochs(settings.epochs),
        batch_size: settings.batch_size,
        lr: settings.lr,
        weight_decay: settings.weight_decay,
        engine: Default::default(),
        seed,
    };
    let classes = train_set.n_classes();
    let (accuracy, report) = match settings.net {
        EvalNet::Lenet5 => {
            let model = LeNet5::<CpuAutodiff>::new(classes, seed, &device);
            let (model, report) = train(model, train_set, &config, &device, &mut |_| {})?;
            (
                evaluate_with(&model, test_set, &device, config.engine)?.accuracy,
                report,
            )
        }
        EvalNet::Convnet { depth, width } => {
            let (c, h, _) = train_set.shape();
            let net = ConvNetConfig {
                depth,
                width,
                ..ConvNetConfig::standard(c, h, classes)
            };
            let model = ConvNet::<CpuAutodiff>::new(net, seed, &device);
            let (model, report) = train(model, train_set, &config, &device, &mut |_| {})?;
            (
                evaluate_with(&model, test_set, &device, config.engine)?.accuracy,
                report,
            )
        }
    };
    Ok(Score {
        accuracy,
        train_images: train_set.len(),
        train_seconds: report.seconds,
        final_loss: report.final_loss,
    })
}

/// What a trial of an experiment records of its flow. Trials flatten it into their JSON, so
/// the fields keep these names there (and cells written before it existed still load).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    /// Seconds the flow took (0 when the method does not flow).
    pub flow_seconds: f64,
    /// Steps the flow took (0 when the method does not flow).
    pub flow_steps: usize,
    /// `F` before the first step (where the method has one).
    pub loss_first: Option<f64>,
    /// `F` before the last step: a flow records `F` at the start of each step, so the value
    /// after the last update is not measured.
    pub loss_last: Option<f64>,
}

impl FlowRecord {
    /// The record of a flow of `steps` steps with these losses, timed from `started`.
    pub fn new(started: std::time::Instant, steps: usize, losses: &[f64]) -> Self {
        Self {
            flow_seconds: started.elapsed().as_secs_f64(),
            flow_steps: steps,
            loss_first: losses.first().copied(),
            loss_last: losses.last().copied(),
        }
    }
}

/// Mean and sample standard deviation of accuracies, in percent, as the papers report them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Mean accuracy, in percent.
    pub mean: f64,
    /// Sample standard deviation (0 for a single value), in percent.
    pub std: f64,
    /// Number of accuracies (networks trained).
    pub n: usize,
}

impl Stats {
    /// Of accuracies in `[0, 1]`; reported in percent.
    pub fn of_accuracies(acc: &[f64]) -> Self {
        let n = acc.len();
        let pct: Vec<f64> = acc.iter().map(|a| 100.0 * a).collect();
        let mean = pct.iter().sum::<f64>() / n.max(1) as f64;
        let var = if n > 1 {
            pct.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Self {
            mean,
            std: var.sqrt(),
            n,
        }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1} ± {:.1}", self.mean, self.std)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_percent_mean_and_sample_std() {
        let s = Stats::of_accuracies(&[0.5, 0.7]);
        assert!((s.mean - 60.0).abs() < 1e-12);
        assert!((s.std - 200f64.sqrt()).abs() < 1e-9);
        assert_eq!(Stats::of_accuracies(&[0.3]).std, 0.0);
        assert_eq!(s.to_string(), "60.0 ± 14.1");
    }
}

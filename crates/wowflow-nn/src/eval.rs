//! Predictions and their scores: accuracy, per-class accuracy, confusion matrix.

use crate::data::Images;
use crate::error::{invalid, shape, Result};
use crate::models::Network;
use crate::native::{read_params, NativeNet};
use crate::train::Engine;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// The predicted class (argmax of the logits) of every image, in batches of `batch`.
pub fn predict<B: Backend, M: Network<B>>(
    model: &M,
    images: &Images,
    batch: usize,
    device: &B::Device,
) -> Vec<usize> {
    let mut out = Vec::with_capacity(images.len());
    for_each_batch(model, images, batch, device, |logits, rows| {
        let pred = logits.argmax(1).into_data();
        // The integer element type depends on the backend; convert through i64.
        let values = pred
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap_or_else(|_| vec![0; rows]);
        out.extend(values.into_iter().map(|v| v.max(0) as usize));
    });
    out
}

/// The class probabilities `softmax(logits)` of every image: row-major `n × K`, each row
/// summing to 1 (computed in `f64` from the logits, with the maximum subtracted). What a
/// final layer on the classifier's output, such as a class correspondence, takes.
pub fn predict_proba<B: Backend, M: Network<B>>(
    model: &M,
    images: &Images,
    batch: usize,
    device: &B::Device,
) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    let mut failure = None;
    for_each_batch(model, images, batch, device, |logits, rows| {
        let k = logits.dims()[1];
        match logits.into_data().convert::<f32>().to_vec::<f32>() {
            Ok(values) if values.iter().any(|v| !v.is_finite()) => {
                failure.get_or_insert(invalid(
                    "logits",
                    "the network returned a non-finite value (NaN or ±∞)",
                ));
            }
            Ok(values) if values.len() == rows * k => {
                for row in values.chunks_exact(k) {
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
                    let e: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    out.extend(e.iter().map(|v| v / z));
                }
            }
            Ok(values) => {
                failure.get_or_insert(shape("logits", format!("{rows} × {k}"), values.len()));
            }
            Err(e) => {
                failure.get_or_insert(shape("logits", "f32 values", format!("{e:?}")));
            }
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Runs the network on `images` in batches of `batch`, in order, handing each batch's logits
/// `[rows, K]` to `f`.
fn for_each_batch<B: Backend, M: Network<B>>(
    model: &M,
    images: &Images,
    batch: usize,
    device: &B::Device,
    mut f: impl FnMut(burn::tensor::Tensor<B, 2>, usize),
) {
    let idx: Vec<usize> = (0..images.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        f(
            model.forward(images.batch_images::<B>(chunk, device)),
            chunk.len(),
        );
    }
}

/// Scores of predictions against true labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Number of classes `K`; labels and predictions lie in `0..K`.
    pub n_classes: usize,
    /// Number of images scored.
    pub total: usize,
    /// Images whose predicted class is the true one (the trace of `confusion`).
    pub correct: usize,
    /// `correct / total`, in `[0, 1]`.
    pub accuracy: f64,
    /// Accuracy on the images of each true class (`None` for a class without images).
    pub per_class: Vec<Option<f64>>,
    /// Row-major `K × K` counts: row = true class, column = predicted class.
    pub confusion: Vec<usize>,
}

impl Evaluation {
    /// Scores `predicted` against `truth` (both in `0..n_classes`).
    pub fn new(predicted: &[usize], truth: &[usize], n_classes: usize) -> Result<Self> {
        if predicted.len() != truth.len() {
            return Err(shape("predictions", truth.len(), predicted.len()));
        }
        if let Some(&bad) = predicted.iter().chain(truth).find(|&&l| l >= n_classes) {
            return Err(shape(
                "class label",
                format!("a value below {n_classes}"),
                bad,
            ));
        }
        let mut confusion = vec![0; n_classes * n_classes];
        for (&p, &t) in predicted.iter().zip(truth) {
            confusion[t * n_classes + p] += 1;
        }
        let correct = (0..n_classes).map(|k| confusion[k * n_classes + k]).sum();
        let per_class = (0..n_classes)
            .map(|k| {
                let row: usize = confusion[k * n_classes..(k + 1) * n_classes].iter().sum();
                (row > 0).then(|| confusion[k * n_classes + k] as f64 / row as f64)
            })
            .collect();
        let total = truth.len();
        Ok(Self {
            n_classes,
            total,
            correct,
            accuracy: correct as f64 / total.max(1) as f64,
            per_class,
            confusion,
        })
    }
}

/// Predicts every image of `images` and scores against its labels (burn's forward, on the
/// model's own backend and device).
pub fn evaluate<B: Backend, M: Network<B>>(
    model: &M,
    images: &Images,
    device: &B::Device,
) -> Result<Evaluation> {
    let pred = predict(model, images, 500, device);
    Evaluation::new(&pred, images.labels(), images.n_classes())
}

/// [`evaluate`] with the forward pass run by `engine`: [`Engine::Native`] runs the networks
/// that describe themselves to wowflow's CPU engine ([`Network::native_spec`]) through it —
/// the same code that trained them, several times faster than burn's CPU forward on the
/// ConvNet (whose test pass used to cost more than its 1 000 training epochs at k = 1) — and
/// everything else through burn. A model on a GPU is scored with [`Engine::Burn`].
pub fn evaluate_with<B: Backend, M: Network<B>>(
    model: &M,
    images: &Images,
    device: &B::Device,
    engine: Engine,
) -> Result<Evaluation> {
    let spec = match engine {
        Engine::Native => model.native_spec(images.shape()),
        Engine::Burn => None,
    };
    let Some(spec) = spec else {
        return evaluate(model, images, device);
    };
    let params = read_params::<B, M>(model)?
        .into_iter()
        .map(|(_, values)| values)
        .collect();
    let classes = spec.classes();
    let mut net = NativeNet::new(spec, params)?;
    let p = images.image_len();
    let mut pred = Vec::with_capacity(images.len());
    // 64 images at a time bound the activations (ConvNet-128: 64 × 128 × 32 × 32 values).
    for chunk in images.values().chunks(64 * p) {
        for row in net.forward(chunk).chunks_exact(classes) {
            if row.iter().any(|v| !v.is_finite()) {
                return Err(invalid(
                    "logits",
                    "the network returned a non-finite value (NaN or ±∞)",
                ));
            }
            // The first maximum, as burn's argmax.
            let best = (0..classes).fold(0, |b, k| if row[k] > row[b] { k } else { b });
            pred.push(best);
        }
    }
    Evaluation::new(&pred, images.labels(), images.n_classes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_and_per_class_accuracy() {
        let e = Evaluation::new(&[0, 1, 1, 2, 0], &[0, 1, 2, 2, 1], 4).unwrap();
        assert_eq!((e.total, e.correct), (5, 3));
        assert!((e.accuracy - 0.6).abs() < 1e-12);
        assert_eq!(e.per_class, vec![Some(1.0), Some(0.5), Some(0.5), None]);
        assert_eq!(e.confusion[2 * 4 + 1], 1); // one true 2 predicted as 1
        assert!(Evaluation::new(&[0], &[0, 1], 2).is_err());
        let err = Evaluation::new(&[5], &[0], 2).unwrap_err();
        assert!(err.to_string().contains("below 2"), "{err}");
    }

    #[test]
    fn probabilities_are_the_softmax_of_the_logits_and_agree_with_predict() {
        use crate::{CpuBackend, DaCnn};
        let device = Default::default();
        let model = DaCnn::<CpuBackend>::new(10, 3, &device);
        let n = 7;
        let values: Vec<f32> = (0..n * 784)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let images = Images::new(values, vec![0; n], (1, 28, 28), 10).unwrap();
        let p = predict_proba(&model, &images, 3, &device).unwrap();
        assert_eq!(p.len(), n * 10);
        for row in p.chunks(10) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(row.iter().all(|v| *v > 0.0));
        }
        let argmax: Vec<usize> = p
            .chunks(10)
            .map(|r| (0..10).max_by(|&i, &j| r[i].total_cmp(&r[j])).unwrap())
            .collect();
        assert_eq!(argmax, predict(&model, &images, 4, &device));
        // The batching does not change the result: one batch against batches of 3.
        let whole = predict_proba(&model, &images, n, &device).unwrap();
        for (a, b) in p.iter().zip(&whole) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        // Against the softmax of the logits, computed by hand.
        let logits = model
            .forward(images.batch_images::<CpuBackend>(&[0], &device))
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let z: f64 = logits.iter().map(|&v| (v as f64).exp()).sum();
        for (k, &l) in logits.iter().enumerate() {
            assert!(((l as f64).exp() / z - p[k]).abs() < 1e-6);
        }
    }
}

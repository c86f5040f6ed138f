//! A freshly initialised ConvNet as the random feature map ψ of dataset distillation
//! (docs/math.md §9; DM, Zhao & Bilen 2023): each flow step draws new weights, both datasets are
//! embedded with them, the WoW gradient is computed in the embedding by `wowflow-core`'s
//! engines, and burn back-propagates it to the images (`∂/∂x Σ ψ(x) ⊙ G`, G held fixed).

use crate::error::NnError;
use crate::models::{ConvNet, ConvNetConfig};
use crate::{CpuAutodiff, CpuBackend};
use burn::module::AutodiffModule;
use burn::tensor::{Tensor, TensorData};
use rand::RngCore;
use wowflow_core::CoreError;
use wowflow_distill::FeatureMap;

/// Images embedded per forward pass of the target (bounds the activation memory).
const CHUNK: usize = 256;

/// ψ: a ConvNet with fresh random weights at every [`FeatureMap::resample`].
#[derive(Debug)]
pub struct RandomEmbedding {
    config: ConvNetConfig,
    shape: (usize, usize, usize),
    model: Option<ConvNet<CpuAutodiff>>,
    inference: Option<ConvNet<CpuBackend>>,
    /// Input (tracked) and output of the last `forward(.., keep = true, ..)`.
    kept: Option<(Tensor<CpuAutodiff, 4>, Tensor<CpuAutodiff, 2>)>,
}

fn core_error(e: NnError) -> CoreError {
    CoreError::InvalidParameter {
        name: "random ConvNet embedding".into(),
        reason: e.to_string(),
    }
}

impl RandomEmbedding {
    /// ψ for images of `shape = (channels, height, width)` (square, matching `config`).
    pub fn new(config: ConvNetConfig, shape: (usize, usize, usize)) -> wowflow_core::Result<Self> {
        let (c, h, w) = shape;
        if c != config.channels || h != config.image_size || w != config.image_size {
            return Err(core_error(crate::error::shape(
                "images for the ConvNet embedding",
                format!(
                    "{}×{}×{}",
                    config.channels, config.image_size, config.image_size
                ),
                format!("{c}×{h}×{w}"),
            )));
        }
        Ok(Self {
            config,
            shape,
            model: None,
            inference: None,
            kept: None,
        })
    }

    fn image_len(&self) -> usize {
        let (c, h, w) = self.shape;
        c * h * w
    }

    fn rows_to_tensor<B: burn::tensor::backend::Backend>(
        &self,
        rows: &[f32],
        device: &B::Device,
    ) -> Tensor<B, 4> {
        let (c, h, w) = self.shape;
        let n = rows.len() / self.image_len();
        Tensor::from_data(TensorData::new(rows.to_vec(), [n, c, h, w]), device)
    }

    fn check_rows(&self, rows: &[f32], in_dim: usize) -> wowflow_core::Result<()> {
        if in_dim != self.image_len() || !rows.len().is_multiple_of(in_dim.max(1)) {
            return Err(CoreError::Shape {
                what: "rows for the ConvNet embedding".into(),
                expected: format!("a multiple of {} values", self.image_len()),
                got: format!("{} values of rows of {in_dim}", rows.len()),
            });
        }
        Ok(())
    }
}

fn to_vec<B: burn::tensor::backend::Backend, const D: usize>(
    t: Tensor<B, D>,
) -> wowflow_core::Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| CoreError::InvalidParameter {
            name: "random ConvNet embedding".into(),
            reason: format!("reading a tensor back: {e:?}"),
        })
}

fn not_sampled() -> CoreError {
    CoreError::InvalidParameter {
        name: "random ConvNet embedding".into(),
        reason: "`forward` before `resample`: no network drawn yet".into(),
    }
}

impl FeatureMap for RandomEmbedding {
    fn name(&self) -> String {
        format!(
            "convnet(depth {}, width {})",
            self.config.depth, self.config.width
        )
    }

    fn out_dim(&self, in_dim: usize) -> wowflow_core::Result<usize> {
        if in_dim != self.image_len() {
            return Err(CoreError::DimensionMismatch {
                what: "images for the ConvNet embedding".into(),
                expected: self.image_len(),
                got: in_dim,
            });
        }
        Ok(self.config.embedding_dim())
    }

    fn resample(&mut self, rng: &mut dyn RngCore) -> wowflow_core::Result<()> {
        let device = Default::default();
        let model = ConvNet::<CpuAutodiff>::new(self.config, rng.next_u64(), &device);
        self.inference = Some(model.valid());
        self.model = Some(model);
        self.kept = None;
        Ok(())
    }

    fn forward(
        &mut self,
        rows: &[f32],
        in_dim: usize,
        keep: bool,
        _rng: &mut dyn RngCore,
    ) -> wowflow_core::Result<Vec<f32>> {
        self.check_rows(rows, in_dim)?;
        let device = Default::default();
        if keep {
            let model = self.model.as_ref().ok_or_else(not_sampled)?;
            let x = self
                .rows_to_tensor::<CpuAutodiff>(rows, &device)
                .require_grad();
            let y = model.embed(x.clone());
            let out = to_vec(y.clone().detach())?;
            self.kept = Some((x, y));
            return Ok(out);
        }
        let model = self.inference.as_ref().ok_or_else(not_sampled)?;
        let mut out = Vec::with_capacity(rows.len() / in_dim * self.config.embedding_dim());
        for chunk in rows.chunks(CHUNK * in_dim) {
            let y = model.embed(self.rows_to_tensor::<CpuBackend>(chunk, &device));
            out.extend(to_vec(y)?);
        }
        Ok(out)
    }

    fn pullback(&mut self, grad_out: &[f32]) -> wowflow_core::Result<Vec<f32>> {
        let (x, y) = self
            .kept
            .take()
            .ok_or_else(|| CoreError::InvalidParameter {
                name: "random ConvNet embedding".into(),
                reason: "`pullback` without a `forward(.., keep = true, ..)` before it".into(),
            })?;
        let [n, e] = y.dims();
        if grad_out.len() != n * e {
            return Err(CoreError::Shape {
                what: "gradient in the embedding".into(),
                expected: (n * e).to_string(),
                got: grad_out.len().to_string(),
            });
        }
        let device = Default::default();
        let g = Tensor::<CpuAutodiff, 2>::from_data(
            TensorData::new(grad_out.to_vec(), [n, e]),
            &device,
        );
        let grads = (y * g).sum().backward();
        let gx = x.grad(&grads).ok_or_else(|| CoreError::InvalidParameter {
            name: "random ConvNet embedding".into(),
            reason: "burn returned no gradient for the images".into(),
        })?;
        to_vec(gx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn small() -> ConvNetConfig {
        ConvNetConfig {
            depth: 2,
            width: 4,
            ..ConvNetConfig::standard(1, 28, 10)
        }
    }

    /// `⟨G, ψ(x + εv) − ψ(x − εv)⟩ / 2ε` against `⟨pullback(G), v⟩`: the back-propagated
    /// gradient is the vector–Jacobian product of the embedding.
    #[test]
    fn pullback_matches_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut psi = RandomEmbedding::new(small(), (1, 28, 28)).unwrap();
        psi.resample(&mut rng).unwrap();
        let n = 3;
        let x: Vec<f32> = (0..n * 784)
            .map(|i| ((i * 37) % 101) as f32 / 101.0)
            .collect();
        let e = psi.out_dim(784).unwrap();
        assert_eq!(e, 4 * 8 * 8);
        let y = psi.forward(&x, 784, true, &mut rng).unwrap();
        assert_eq!(y.len(), n * e);
        let g: Vec<f32> = (0..n * e).map(|i| ((i * 13) % 7) as f32 - 3.0).collect();
        let gx = psi.pullback(&g).unwrap();
        let v: Vec<f32> = (0..n * 784)
            .map(|i| ((i * 29) % 11) as f32 / 11.0 - 0.5)
            .collect();
        let eps = 1e-3f32;
        let shifted = |s: f32| -> Vec<f32> { x.iter().zip(&v).map(|(a, b)| a + s * b).collect() };
        let mut psi2 = RandomEmbedding::new(small(), (1, 28, 28)).unwrap();
        psi2.model = psi.model.clone();
        psi2.inference = psi.inference.clone();
        let yp = psi2.forward(&shifted(eps), 784, false, &mut rng).unwrap();
        let ym = psi2.forward(&shifted(-eps), 784, false, &mut rng).unwrap();
        let fd: f64 = g
            .iter()
            .zip(yp.iter().zip(&ym))
            .map(|(g, (p, m))| *g as f64 * (p - m) as f64)
            .sum::<f64>()
            / (2.0 * eps as f64);
        let an: f64 = gx.iter().zip(&v).map(|(a, b)| *a as f64 * *b as f64).sum();
        // f32 central differences through ReLU and instance norm: ε = 1e-2 crosses kinks
        // (measured 0.37 vs −0.47), ε = 1e-3 is within 7 %; 10 % still catches a wrong sign,
        // a transposed map or a missing term.
        assert!(
            (fd - an).abs() <= 0.1 * an.abs().max(0.1),
            "finite difference {fd} vs back-propagated {an}"
        );
    }

    #[test]
    fn inference_and_tracked_paths_agree_and_resampling_changes_psi() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut psi = RandomEmbedding::new(small(), (1, 28, 28)).unwrap();
        let x: Vec<f32> = (0..2 * 784).map(|i| (i % 17) as f32 / 17.0).collect();
        assert!(psi.forward(&x, 784, false, &mut rng).is_err());
        psi.resample(&mut rng).unwrap();
        let a = psi.forward(&x, 784, false, &mut rng).unwrap();
        let b = psi.forward(&x, 784, true, &mut rng).unwrap();
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() < 1e-5);
        }
        psi.resample(&mut rng).unwrap();
        let c = psi.forward(&x, 784, false, &mut rng).unwrap();
        assert!(a.iter().zip(&c).any(|(p, q)| (p - q).abs() > 1e-4));
        assert!(psi.forward(&x[..100], 784, false, &mut rng).is_err());
        assert!(RandomEmbedding::new(small(), (1, 32, 32)).is_err());
    }
}

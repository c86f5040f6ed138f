//! # wowflow-nn
//!
//! The networks the papers evaluate flows with (docs/math.md §10), on
//! [burn](https://burn.dev) 0.21: the domain-adaptation CNN ([`DaCnn`]), LeNet-5
//! ([`LeNet5`]) and the ConvNet of dataset distillation ([`ConvNet`], with
//! [`ConvNet::embed`] giving the 2048 features before its head); AdamW training
//! ([`train()`]), evaluation ([`evaluate`], [`Evaluation`]: accuracy, per-class accuracy,
//! confusion matrix) and saved weights ([`ModelStore`]) so a classifier is trained once.
//!
//! Backends: [`CpuBackend`] (burn's `flex` backend, multithreaded with rayon, SIMD) is the
//! default; the `cuda` feature adds `CudaBackend` (burn's CUDA backend; build with
//! `CUDARC_CUDA_VERSION=13000` for the GPU machine's driver). All burn code of wowflow lives
//! in this crate, so a burn upgrade touches one crate. The sliced-Wasserstein mathematics
//! never runs in burn (its GPU sort goes through the host): when a flow needs a network,
//! it embeds with burn and computes the WoW gradient with `wowflow-core`'s engines.
//!
//! ```no_run
//! use wowflow_nn::{train, Budget, CpuAutodiff, DaCnn, Images, TrainConfig};
//! # fn main() -> wowflow_nn::Result<()> {
//! let device = Default::default();
//! let data = Images::new(vec![0.0; 2 * 784], vec![0, 1], (1, 28, 28), 10)?;
//! let model = DaCnn::<CpuAutodiff>::new(10, 0, &device);
//! let config = TrainConfig::new(Budget::Steps(10), 64, 3e-4, 0);
//! let (trained, report) = train(model, &data, &config, &device, &mut |_| {})?;
//! println!("{:.0} images/s", report.images_per_second);
//! # let _ = trained;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod data;
pub mod embed;
pub mod error;
pub mod eval;
pub mod models;
pub mod native;
pub mod pushforward;
pub mod store;
pub mod train;

pub use burn;
pub use data::Images;
pub use embed::RandomEmbedding;
pub use error::{NnError, Result};
pub use eval::{evaluate, evaluate_with, predict, predict_proba, Evaluation};
pub use models::{seeded_init, Architecture, ConvNet, ConvNetConfig, DaCnn, LeNet5, Network};
pub use pushforward::{fit_push_forward, PushForward, PushForwardConfig, PushForwardReport};
pub use store::{model_key, ModelCard, ModelStore};
pub use train::{train, Budget, Engine, TrainConfig, TrainProgress, TrainReport};

/// The default CPU backend: burn's `flex` (pure Rust; rayon threads and SIMD).
pub type CpuBackend = burn::backend::Flex;
/// [`CpuBackend`] with automatic differentiation, for training.
pub type CpuAutodiff = burn::backend::Autodiff<CpuBackend>;

/// burn's CUDA backend (feature `cuda`).
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda;
/// [`CudaBackend`] with automatic differentiation, for training.
#[cfg(feature = "cuda")]
pub type CudaAutodiff = burn::backend::Autodiff<CudaBackend>;

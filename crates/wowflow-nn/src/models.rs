//! The three networks of the papers' evaluations (docs/math.md §10), on any burn backend.
//!
//! Inputs are `[batch, channels, height, width]` tensors of pixel values; outputs are
//! logits `[batch, classes]`. Weights start as PyTorch's defaults do (Kaiming-uniform with
//! bound `1/√fan_in` for weights and biases, burn's default initialiser), drawn from the
//! backend's generator seeded by [`seeded_init`].

use crate::native::NetSpec;
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{InstanceNorm, InstanceNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::backend::Backend;
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// A classifier of images: logits from a batch of images.
pub trait Network<B: Backend>: Module<B> {
    /// `[batch, channels, height, width]` → logits `[batch, classes]`.
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2>;

    /// The same network as wowflow's native CPU engine runs it ([`crate::native`]) on
    /// `input = (channels, height, width)` images, so [`crate::train()`] can train it at the
    /// CPU's speed; `None` (the default, and for layer settings the engine does not have)
    /// trains with burn's autodiff.
    fn native_spec(&self, input: (usize, usize, usize)) -> Option<NetSpec> {
        let _ = input;
        None
    }
}

/// Which network (names used in configs, cache keys and reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// The domain-adaptation CNN.
    DaCnn,
    /// LeNet-5 (transfer learning).
    Lenet5,
    /// ConvNet of depth 3 and width 128 (distillation, random embeddings).
    Convnet,
}

impl Architecture {
    /// `da-cnn`, `lenet5`, `convnet`.
    pub fn name(self) -> &'static str {
        match self {
            Self::DaCnn => "da-cnn",
            Self::Lenet5 => "lenet5",
            Self::Convnet => "convnet",
        }
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// burn backends draw initial weights from one generator per backend (a process-wide
/// state for the CPU backend); this lock makes "seed, then initialise" atomic so models
/// built concurrently (e.g. by parallel tests) still get the weights their seed names.
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Seeds `B`'s generator with `seed`, builds the module with `init` and draws all its
/// parameters, while no other seeded initialisation can interleave. (burn initialises
/// parameters lazily, on first use; drawing them here, in a fixed order, is what makes the
/// weights a function of the seed alone.)
pub fn seeded_init<B: Backend, M: Module<B>>(
    device: &B::Device,
    seed: u64,
    init: impl FnOnce() -> M,
) -> M {
    struct Materialize;
    impl<B: Backend> ModuleVisitor<B> for Materialize {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    B::seed(device, seed);
    let module = init();
    module.visit(&mut Materialize);
    module
}

/// The padding of a convolution the native engine can run (stride 1, no dilation, one
/// group, a bias, the same zero padding on all sides, a square kernel); `None` otherwise.
fn plain_conv_padding<B: Backend>(conv: &Conv2d<B>) -> Option<usize> {
    let plain = conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && conv.bias.is_some()
        && conv.kernel_size[0] == conv.kernel_size[1];
    match conv.padding {
        _ if !plain => None,
        PaddingConfig2d::Valid => Some(0),
        PaddingConfig2d::Explicit(a, b, c, d) if a == b && b == c && c == d => Some(a),
        _ => None,
    }
}

fn flatten<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    x.flatten(1, 3)
}

/// The domain-adaptation classifier (docs/math.md §10) for `1 × 28 × 28` images:
/// conv 1→3 (4×4) · max-pool 2×2 stride 1 · ReLU · linear 1728→512 · sigmoid ·
/// linear 512→64 · ReLU · linear 64→10.
#[derive(Module, Debug)]
pub struct DaCnn<B: Backend> {
    conv: Conv2d<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
    fc3: Linear<B>,
}

impl<B: Backend> DaCnn<B> {
    /// Fresh weights for `classes` outputs, seeded.
    pub fn new(classes: usize, seed: u64, device: &B::Device) -> Self {
        seeded_init::<B, _>(device, seed, || Self {
            conv: Conv2dConfig::new([1, 3], [4, 4]).init(device),
            fc1: LinearConfig::new(3 * 24 * 24, 512).init(device),
            fc2: LinearConfig::new(512, 64).init(device),
            fc3: LinearConfig::new(64, classes).init(device),
        })
    }
}

impl<B: Backend> Network<B> for DaCnn<B> {
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.conv.forward(images); // 3 × 25 × 25
        let x = relu(max_pool2d(x, [2, 2], [1, 1], [0, 0], [1, 1], false)); // 3 × 24 × 24
        let x = sigmoid(self.fc1.forward(flatten(x)));
        let x = relu(self.fc2.forward(x));
        self.fc3.forward(x)
    }

    fn native_spec(&self, input: (usize, usize, usize)) -> Option<NetSpec> {
        let classes = self.fc3.weight.dims()[1];
        Some(
            NetSpec::new(input, 8)
                .conv(3, 4, plain_conv_padding(&self.conv)?, 0, 1)
                .max_pool2_stride1()
                .relu()
                .linear(512, 2, 3)
                .sigmoid()
                .linear(64, 4, 5)
                .relu()
                .linear(classes, 6, 7),
        )
    }
}

/// LeNet-5 (docs/math.md §10) for `1 × 28 × 28` images: conv 1→6 (1×1) · ReLU · avg-pool 2 ·
/// conv 6→16 (5×5) · ReLU · avg-pool 2 · conv 16→120 (5×5) · ReLU · linear 120→84 · ReLU ·
/// linear 84→10.
#[derive(Module, Debug)]
pub struct LeNet5<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    conv3: Conv2d<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
}

impl<B: Backend> LeNet5<B> {
    /// Fresh weights for `classes` outputs, seeded.
    pub fn new(classes: usize, seed: u64, device: &B::Device) -> Self {
        seeded_init::<B, _>(device, seed, || Self {
            conv1: Conv2dConfig::new([1, 6], [1, 1]).init(device),
            conv2: Conv2dConfig::new([6, 16], [5, 5]).init(device),
            conv3: Conv2dConfig::new([16, 120], [5, 5]).init(device),
            fc1: LinearConfig::new(120, 84).init(device),
            fc2: LinearConfig::new(84, classes).init(device),
        })
    }
}

fn avg2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    avg_pool2d(x, [2, 2], [2, 2], [0, 0], true, false)
}

impl<B: Backend> Network<B> for LeNet5<B> {
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = avg2(relu(self.conv1.forward(images))); // 6 × 14 × 14
        let x = avg2(relu(self.conv2.forward(x))); // 16 × 5 × 5
        let x = relu(self.conv3.forward(x)); // 120 × 1 × 1
        let x = relu(self.fc1.forward(flatten(x)));
        self.fc2.forward(x)
    }

    fn native_spec(&self, input: (usize, usize, usize)) -> Option<NetSpec> {
        let classes = self.fc2.weight.dims()[1];
        Some(
            NetSpec::new(input, 10)
                .conv(6, 1, plain_conv_padding(&self.conv1)?, 0, 1)
                .relu()
                .avg_pool2()
                .conv(16, 5, plain_conv_padding(&self.conv2)?, 2, 3)
                .relu()
                .avg_pool2()
                .conv(120, 5, plain_conv_padding(&self.conv3)?, 4, 5)
                .relu()
                .linear(84, 6, 7)
                .relu()
                .linear(classes, 8, 9),
        )
    }
}

/// The ConvNet of dataset distillation (docs/math.md §10): `depth` blocks of
/// [conv 3×3 → `width` channels, instance norm (affine), ReLU, 2×2 average pooling], then a
/// linear head. A 28×28 input is padded to 32×32 by the first convolution (padding 3
/// instead of 1), so three blocks leave `width × 4 × 4` = 2048 features for width 128:
/// [`ConvNet::embed`] returns them.
#[derive(Module, Debug)]
pub struct ConvNet<B: Backend> {
    convs: Vec<Conv2d<B>>,
    norms: Vec<InstanceNorm<B>>,
    head: Linear<B>,
}

/// Shape settings of a [`ConvNet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvNetConfig {
    /// Input channels: 1 for grayscale, 3 for RGB.
    pub channels: usize,
    /// Input side (square images): 28 (padded to 32 in the first layer) or 32.
    pub image_size: usize,
    /// Number of conv blocks; each halves the side of the feature maps (3 in the papers).
    pub depth: usize,
    /// Output channels of every convolution (128 in the papers).
    pub width: usize,
    /// Number of logits the linear head outputs.
    pub classes: usize,
}

impl ConvNetConfig {
    /// The papers' ConvNet for `channels × size × size` images: depth 3, width 128.
    pub fn standard(channels: usize, image_size: usize, classes: usize) -> Self {
        Self {
            channels,
            image_size,
            depth: 3,
            width: 128,
            classes,
        }
    }

    /// Side of the feature maps after the first convolution.
    fn padded_size(&self) -> usize {
        if self.image_size == 28 {
            32
        } else {
            self.image_size
        }
    }

    /// Number of features [`ConvNet::embed`] returns: `width · (s / 2^depth)²`.
    pub fn embedding_dim(&self) -> usize {
        let side = self.padded_size() >> self.depth;
        self.width * side * side
    }
}

impl<B: Backend> ConvNet<B> {
    /// Fresh weights, seeded.
    pub fn new(config: ConvNetConfig, seed: u64, device: &B::Device) -> Self {
        seeded_init::<B, _>(device, seed, || {
            let first_pad = 1 + (config.padded_size() - config.image_size) / 2;
            let convs = (0..config.depth)
                .map(|i| {
                    let (cin, pad) = if i == 0 {
                        (config.channels, first_pad)
                    } else {
                        (config.width, 1)
                    };
                    Conv2dConfig::new([cin, config.width], [3, 3])
                        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                        .init(device)
                })
                .collect();
            let norms = (0..config.depth)
                .map(|_| InstanceNormConfig::new(config.width).init(device))
                .collect();
            Self {
                convs,
                norms,
                head: LinearConfig::new(config.embedding_dim(), config.classes).init(device),
            }
        })
    }

    /// The features before the linear head, `[batch, width · 4 · 4]` (2048 for the standard
    /// network).
    pub fn embed(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = images;
        for (conv, norm) in self.convs.iter().zip(&self.norms) {
            x = avg2(relu(norm.forward(conv.forward(x))));
        }
        flatten(x)
    }
}

impl<B: Backend> Network<B> for ConvNet<B> {
    fn forward(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        self.head.forward(self.embed(images))
    }

    fn native_spec(&self, input: (usize, usize, usize)) -> Option<NetSpec> {
        let depth = self.convs.len();
        let classes = self.head.weight.dims()[1];
        let mut spec = NetSpec::new(input, 4 * depth + 2);
        for (i, (conv, norm)) in self.convs.iter().zip(&self.norms).enumerate() {
            let width = conv.weight.dims()[0];
            if norm.gamma.is_none() || norm.beta.is_none() {
                return None;
            }
            spec = spec
                .conv(width, 3, plain_conv_padding(conv)?, 2 * i, 2 * i + 1)
                .instance_norm(norm.epsilon, 2 * depth + 2 * i, 2 * depth + 2 * i + 1)
                .relu()
                .avg_pool2();
        }
        Some(spec.linear(classes, 4 * depth, 4 * depth + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;

    #[test]
    fn output_shapes_and_parameter_counts() {
        let device = Default::default();
        let x = Tensor::<CpuBackend, 4>::zeros([2, 1, 28, 28], &device);
        let da = DaCnn::<CpuBackend>::new(10, 0, &device);
        assert_eq!(da.forward(x.clone()).dims(), [2, 10]);
        // conv 3·16+3, fc 1728·512+512, 512·64+64, 64·10+10
        assert_eq!(da.num_params(), 51 + 885_248 + 32_832 + 650);
        let le = LeNet5::<CpuBackend>::new(10, 0, &device);
        assert_eq!(le.forward(x.clone()).dims(), [2, 10]);
        let config = ConvNetConfig::standard(1, 28, 10);
        assert_eq!(config.embedding_dim(), 2048);
        let cn = ConvNet::<CpuBackend>::new(config, 0, &device);
        assert_eq!(cn.embed(x.clone()).dims(), [2, 2048]);
        assert_eq!(cn.forward(x).dims(), [2, 10]);
        let x32 = Tensor::<CpuBackend, 4>::zeros([1, 3, 32, 32], &device);
        let cifar = ConvNet::<CpuBackend>::new(ConvNetConfig::standard(3, 32, 10), 0, &device);
        assert_eq!(cifar.embed(x32).dims(), [1, 2048]);
    }

    #[test]
    fn same_seed_same_weights() {
        let device = Default::default();
        let x = Tensor::<CpuBackend, 4>::ones([1, 1, 28, 28], &device);
        let a = DaCnn::<CpuBackend>::new(10, 5, &device).forward(x.clone());
        let b = DaCnn::<CpuBackend>::new(10, 5, &device).forward(x.clone());
        let c = DaCnn::<CpuBackend>::new(10, 6, &device).forward(x);
        let (a, b, c) = (
            a.into_data().to_vec::<f32>().unwrap(),
            b.into_data().to_vec::<f32>().unwrap(),
            c.into_data().to_vec::<f32>().unwrap(),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}

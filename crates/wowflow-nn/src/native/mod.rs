//! wowflow's own CPU training engine for the three networks: the same forward pass, loss,
//! gradients and AdamW update as burn's autodiff, organised for two CPU cores.
//!
//! Why it exists: the evaluation protocols train thousands of small networks (15 LeNet-5
//! per transfer cell, ConvNets for 1 000 epochs per distilled set), and burn's CPU backends
//! trained them 3–5× below what the cores allow (BENCHMARKS.md, "Training the evaluation
//! networks"). The networks are fixed stacks of six kinds of layers, so a dedicated engine
//! is small: [`NetSpec`] describes a network as layers over the parameter tensors of its
//! burn module (in the order burn visits them), [`read_params`] and [`write_params`] copy
//! weights between the two, [`NativeNet`] runs the forward and backward passes and
//! [`AdamW`] the updates, on host vectors ([`crate::train()`] drives them). burn stays the
//! definition of the networks, their initialisation, inference, saved weights and the GPU
//! path (`Engine::Native` always runs on the host CPU, whatever the model's backend; train a
//! GPU model with `Engine::Burn`); `tests/native.rs` checks loss, every gradient and the AdamW update against burn's
//! autodiff on all three networks.

mod bridge;
mod layers;

pub use bridge::{read_params, write_params};

use crate::data::Images;
use crate::error::{invalid, Result};
use layers::{Conv, InstanceNorm, Linear, Pool};

/// One layer of a [`NetSpec`]; parameter fields are indices into the network's tensors.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Conv {
        conv: Conv,
        weight: usize,
        bias: usize,
    },
    MaxPool2Stride1(Pool),
    AvgPool2(Pool),
    Relu,
    Sigmoid,
    InstanceNorm {
        norm: InstanceNorm,
        gamma: usize,
        beta: usize,
    },
    Linear {
        linear: Linear,
        weight: usize,
        bias: usize,
    },
}

/// A network as the native engine runs it: its layers in forward order and the shapes of
/// its parameter tensors in the order burn's module visitor yields them.
#[derive(Debug, Clone, PartialEq)]
pub struct NetSpec {
    input: (usize, usize, usize),
    /// Current feature shape while building: `(channels, height, width)`; after a linear
    /// layer, `(features, 1, 1)`.
    shape: (usize, usize, usize),
    ops: Vec<Op>,
    tensors: Vec<Option<Vec<usize>>>,
}

impl NetSpec {
    /// A network reading `channels × height × width` images with `tensors` parameter tensors.
    pub(crate) fn new(input: (usize, usize, usize), tensors: usize) -> Self {
        Self {
            input,
            shape: input,
            ops: Vec::new(),
            tensors: vec![None; tensors],
        }
    }

    fn declare(&mut self, index: usize, shape: Vec<usize>) {
        assert!(
            self.tensors[index].replace(shape).is_none(),
            "tensor {index} declared twice"
        );
    }

    /// Convolution to `cout` channels, kernel `k`, stride 1, padding `pad`; weight
    /// `[cout, cin, k, k]` and bias `[cout]` are tensors `weight` and `bias`.
    pub(crate) fn conv(
        mut self,
        cout: usize,
        k: usize,
        pad: usize,
        weight: usize,
        bias: usize,
    ) -> Self {
        let (cin, h, w) = self.shape;
        let conv = Conv {
            cin,
            cout,
            k,
            pad,
            h,
            w,
        };
        self.declare(weight, vec![cout, cin, k, k]);
        self.declare(bias, vec![cout]);
        let (ho, wo) = conv.out_hw();
        self.shape = (cout, ho, wo);
        self.ops.push(Op::Conv { conv, weight, bias });
        self
    }

    /// 2×2 max pooling at stride 1.
    pub(crate) fn max_pool2_stride1(mut self) -> Self {
        let (c, h, w) = self.shape;
        self.ops.push(Op::MaxPool2Stride1(Pool { c, h, w }));
        self.shape = (c, h - 1, w - 1);
        self
    }

    /// 2×2 average pooling at stride 2.
    pub(crate) fn avg_pool2(mut self) -> Self {
        let (c, h, w) = self.shape;
        self.ops.push(Op::AvgPool2(Pool { c, h, w }));
        self.shape = (c, h / 2, w / 2);
        self
    }

    pub(crate) fn relu(mut self) -> Self {
        self.ops.push(Op::Relu);
        self
    }

    pub(crate) fn sigmoid(mut self) -> Self {
        self.ops.push(Op::Sigmoid);
        self
    }

    /// Instance norm with affine `γ`, `β` (tensors `gamma`, `beta`, each `[channels]`).
    pub(crate) fn instance_norm(mut self, eps: f64, gamma: usize, beta: usize) -> Self {
        let (c, h, w) = self.shape;
        self.declare(gamma, vec![c]);
        self.declare(beta, vec![c]);
        self.ops.push(Op::InstanceNorm {
            norm: InstanceNorm {
                c,
                hw: h * w,
                eps: eps as f32,
            },
            gamma,
            beta,
        });
        self
    }

    /// Linear layer on the flattened features; weight `[in, out]`, bias `[out]`.
    pub(crate) fn linear(mut self, out: usize, weight: usize, bias: usize) -> Self {
        let (c, h, w) = self.shape;
        let inp = c * h * w;
        self.declare(weight, vec![inp, out]);
        self.declare(bias, vec![out]);
        self.ops.push(Op::Linear {
            linear: Linear { inp, out },
            weight,
            bias,
        });
        self.shape = (out, 1, 1);
        self
    }

    /// Values per input image.
    fn input_len(&self) -> usize {
        self.input.0 * self.input.1 * self.input.2
    }

    /// Number of logits.
    pub fn classes(&self) -> usize {
        self.shape.0 * self.shape.1 * self.shape.2
    }

    /// Shapes of the parameter tensors, in burn's visiting order.
    pub fn tensor_shapes(&self) -> Vec<Vec<usize>> {
        self.tensors
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.clone()
                    .unwrap_or_else(|| panic!("tensor {i} is used by no layer"))
            })
            .collect()
    }

    /// Values per image after each layer.
    fn layer_lens(&self) -> Vec<usize> {
        let mut lens = Vec::with_capacity(self.ops.len() + 1);
        let mut len = self.input_len();
        lens.push(len);
        for op in &self.ops {
            len = match op {
                Op::Conv { conv, .. } => conv.out_len(),
                Op::MaxPool2Stride1(p) => p.max_out_len(),
                Op::AvgPool2(p) => p.avg_out_len(),
                Op::Relu | Op::Sigmoid | Op::InstanceNorm { .. } => len,
                Op::Linear { linear, .. } => linear.out,
            };
            lens.push(len);
        }
        lens
    }
}

/// Activations and scratch space of one batch, kept between steps so a training run
/// allocates once.
#[derive(Debug, Default)]
struct Workspace {
    /// `acts[0]` is the input batch, `acts[i + 1]` the output of layer `i`.
    acts: Vec<Vec<f32>>,
    /// Instance-norm statistics per layer (empty for other layers).
    stats: Vec<Vec<f32>>,
    /// Gradient flowing backwards (two buffers, swapped layer by layer).
    grad: Vec<f32>,
    grad_next: Vec<f32>,
}

/// Forward and backward passes of a [`NetSpec`] with its parameters.
#[derive(Debug)]
pub struct NativeNet {
    spec: NetSpec,
    lens: Vec<usize>,
    /// Parameter tensors, flattened row-major, in burn's visiting order.
    pub params: Vec<Vec<f32>>,
    /// Gradients of the last [`NativeNet::loss_and_gradients`], same layout as `params`.
    pub grads: Vec<Vec<f32>>,
    work: Workspace,
}

impl NativeNet {
    /// The network `spec` with parameter values `params` (checked against the spec's shapes).
    pub fn new(spec: NetSpec, params: Vec<Vec<f32>>) -> Result<Self> {
        let shapes = spec.tensor_shapes();
        if params.len() != shapes.len() {
            return Err(invalid(
                "parameters",
                format!(
                    "the network has {} parameter tensors, got {}",
                    shapes.len(),
                    params.len()
                ),
            ));
        }
        for (i, (p, s)) in params.iter().zip(&shapes).enumerate() {
            if p.len() != s.iter().product::<usize>() {
                return Err(invalid(
                    "parameters",
                    format!("tensor {i} must have shape {s:?}, got {} values", p.len()),
                ));
            }
        }
        let grads = params.iter().map(|p| vec![0.0; p.len()]).collect();
        let lens = spec.layer_lens();
        Ok(Self {
            spec,
            lens,
            params,
            grads,
            work: Workspace::default(),
        })
    }

    /// Logits of a batch of `n` images (`n × input_len` values), `n × classes`.
    pub fn forward(&mut self, images: &[f32]) -> Vec<f32> {
        let n = images.len() / self.lens[0];
        self.run_forward(images, n);
        self.work.acts[self.spec.ops.len()].clone()
    }

    fn run_forward(&mut self, images: &[f32], n: usize) {
        let layers = self.spec.ops.len();
        let work = &mut self.work;
        work.acts.resize_with(layers + 1, Vec::new);
        work.stats.resize_with(layers, Vec::new);
        for (act, len) in work.acts.iter_mut().zip(&self.lens) {
            act.resize(n * len, 0.0);
        }
        work.acts[0].copy_from_slice(images);
        for (i, op) in self.spec.ops.iter().enumerate() {
            let (before, after) = work.acts.split_at_mut(i + 1);
            let (x, y) = (&before[i], &mut after[0]);
            let p = &self.params;
            match op {
                Op::Conv { conv, weight, bias } => conv.forward(&p[*weight], &p[*bias], x, y),
                Op::MaxPool2Stride1(pool) => pool.max_forward(x, y),
                Op::AvgPool2(pool) => pool.avg_forward(x, y),
                Op::Relu => layers::relu_forward(x, y),
                Op::Sigmoid => layers::sigmoid_forward(x, y),
                Op::InstanceNorm { norm, gamma, beta } => {
                    norm.forward(&p[*gamma], &p[*beta], x, y, &mut work.stats[i])
                }
                Op::Linear {
                    linear,
                    weight,
                    bias,
                } => linear.forward(&p[*weight], &p[*bias], x, y),
            }
        }
    }

    /// Mean cross-entropy of the batch (`images`: `n × input_len`, `labels`: `n`), with the
    /// gradients of every parameter left in [`NativeNet::grads`].
    pub fn loss_and_gradients(&mut self, images: &[f32], labels: &[usize]) -> f32 {
        let n = labels.len();
        self.run_forward(images, n);
        let layers = self.spec.ops.len();
        let classes = self.spec.classes();
        let work = &mut self.work;
        work.grad.resize(n * classes, 0.0);
        let total = layers::cross_entropy(&work.acts[layers], labels, classes, n, &mut work.grad);
        for i in (0..layers).rev() {
            let x = &work.acts[i];
            let y = &work.acts[i + 1];
            let need_dx = i > 0;
            work.grad_next.resize(n * self.lens[i], 0.0);
            let dy = &work.grad;
            let dx = &mut work.grad_next;
            let p = &self.params;
            let g = &mut self.grads;
            match &self.spec.ops[i] {
                Op::Conv { conv, weight, bias } => {
                    let (dw, db) = two_mut(g, *weight, *bias);
                    conv.backward(&p[*weight], x, dy, need_dx.then_some(&mut dx[..]), dw, db);
                }
                Op::MaxPool2Stride1(pool) => pool.max_backward(x, dy, dx),
                Op::AvgPool2(pool) => pool.avg_backward(dy, dx),
                Op::Relu => layers::relu_backward(y, dy, dx),
                Op::Sigmoid => layers::sigmoid_backward(y, dy, dx),
                Op::InstanceNorm { norm, gamma, beta } => {
                    let (dg, dbeta) = two_mut(g, *gamma, *beta);
                    norm.backward(&p[*gamma], (x, &work.stats[i]), dy, dx, (dg, dbeta));
                }
                Op::Linear {
                    linear,
                    weight,
                    bias,
                } => {
                    let (dw, db) = two_mut(g, *weight, *bias);
                    linear.backward(&p[*weight], x, dy, need_dx.then_some(&mut dx[..]), dw, db);
                }
            }
            std::mem::swap(&mut work.grad, &mut work.grad_next);
        }
        (total / n as f64) as f32
    }
}

/// Two distinct tensors of `v`, mutably.
fn two_mut(v: &mut [Vec<f32>], a: usize, b: usize) -> (&mut [f32], &mut [f32]) {
    assert_ne!(a, b);
    if a < b {
        let (lo, hi) = v.split_at_mut(b);
        (&mut lo[a], &mut hi[0])
    } else {
        let (lo, hi) = v.split_at_mut(a);
        (&mut hi[0], &mut lo[b])
    }
}

/// AdamW exactly as burn's (and PyTorch's): `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `θ ← θ(1 − lr·λ) − lr · m̂ / (√v̂ + ε)` with bias-corrected `m̂`, `v̂`.
#[derive(Debug, Clone)]
pub struct AdamW {
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    step: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl AdamW {
    /// PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8) with `weight_decay`, for `params`.
    pub fn new(params: &[Vec<f32>], weight_decay: f32) -> Self {
        let zeros = || params.iter().map(|p| vec![0.0; p.len()]).collect();
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            step: 0,
            m: zeros(),
            v: zeros(),
        }
    }

    /// One update of `params` by `grads` with learning rate `lr`.
    pub fn step(&mut self, lr: f64, params: &mut [Vec<f32>], grads: &[Vec<f32>]) {
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.step);
        let c2 = 1.0 - b2.powi(self.step);
        let decay = (1.0 - lr * f64::from(self.weight_decay)) as f32;
        let lr = lr as f32;
        for (((p, g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                let delta = (*m / c1) / ((*v / c2).sqrt() + self.eps);
                *p = *p * decay - lr * delta;
            }
        }
    }
}

/// Gathers the images and labels of `indices` into `images` / `labels` (reused buffers).
pub(crate) fn gather(
    data: &Images,
    indices: &[usize],
    images: &mut Vec<f32>,
    labels: &mut Vec<usize>,
) {
    let p = data.image_len();
    images.clear();
    labels.clear();
    for &i in indices {
        images.extend_from_slice(&data.values()[i * p..(i + 1) * p]);
        labels.push(data.labels()[i]);
    }
}

//! The layers of the three networks, forward and backward, on a batch of images stored
//! `[n, channels, height, width]` row-major (burn's layout, so flattening before a linear
//! layer is free).
//!
//! Every layer computes exactly what its burn counterpart computes (the same formulas,
//! checked against burn's autodiff in `tests/native.rs`); only the arithmetic is organised
//! for two CPU cores: convolutions are one `gemm` product per image on its `im2col`
//! matrix, run in parallel over images; linear layers are one product over the whole batch.
//! Gradients of weights shared by all images are summed per fixed group of images and the
//! groups added in order, so the result does not depend on the number of threads.

use rayon::prelude::*;
use std::cell::RefCell;
use wowflow_core::linalg::{sgemm, MatRef};

/// Fixed number of image groups whose weight gradients are summed separately (then added
/// in order): enough to keep two to eight threads busy, independent of how many there are.
const GROUPS: usize = 8;

/// Element-wise work is split into chunks of this many values for rayon.
const CHUNK: usize = 1 << 14;

thread_local! {
    /// Per-thread `im2col` buffer, reused across images and steps.
    static COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Per-thread buffer for the gradient of the `im2col` matrix.
    static DCOL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A 2-D convolution, stride 1, square kernel `k`, zero padding `pad` on every side:
/// `y[o, i, j] = b[o] + Σ_{c, u, v} w[o, c, u, v] · x[c, i + u − pad, j + v − pad]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conv {
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub pad: usize,
    /// Input height and width.
    pub h: usize,
    pub w: usize,
}

impl Conv {
    pub fn out_hw(&self) -> (usize, usize) {
        (
            self.h + 2 * self.pad + 1 - self.k,
            self.w + 2 * self.pad + 1 - self.k,
        )
    }

    pub fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }

    pub fn out_len(&self) -> usize {
        let (ho, wo) = self.out_hw();
        self.cout * ho * wo
    }

    /// Rows of the `im2col` matrix: `cin · k · k`, ordered as the weight's last three axes.
    fn taps(&self) -> usize {
        self.cin * self.k * self.k
    }

    /// A 1×1 convolution without padding reads the image itself as its `im2col` matrix.
    fn is_pointwise(&self) -> bool {
        self.k == 1 && self.pad == 0
    }

    /// Calls `f(col, img, len)` for every run of the `im2col` matrix that reads inside the
    /// image: `len` values from offset `col` of the matrix correspond to `len` consecutive
    /// pixels from offset `img` of the image (everything else in the matrix is padding, 0).
    /// The one place the window arithmetic lives, for `im2col` and its adjoint `col2im`.
    fn for_each_run(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (ho, wo) = self.out_hw();
        let (h, w, k, pad) = (self.h, self.w, self.k, self.pad);
        for c in 0..self.cin {
            for u in 0..k {
                for v in 0..k {
                    let row = ((c * k + u) * k + v) * ho * wo;
                    // Output columns j whose input column j + v − pad is inside the image.
                    let j0 = pad.saturating_sub(v);
                    let j1 = (w + pad).saturating_sub(v).min(wo);
                    if j0 >= j1 {
                        continue;
                    }
                    for i in 0..ho {
                        let r = i + u;
                        if r < pad || r - pad >= h {
                            continue;
                        }
                        let img = (c * h + r - pad) * w + j0 + v - pad;
                        f(row + i * wo + j0, img, j1 - j0);
                    }
                }
            }
        }
    }

    /// `col[(c, u, v), (i, j)] = x[c, i + u − pad, j + v − pad]` (0 outside the image).
    fn im2col(&self, x: &[f32], col: &mut Vec<f32>) {
        let (ho, wo) = self.out_hw();
        col.clear();
        col.resize(self.taps() * ho * wo, 0.0);
        self.for_each_run(|at, img, len| {
            col[at..at + len].copy_from_slice(&x[img..img + len]);
        });
    }

    /// Adds the `im2col` gradient back onto the image it was read from (`dx` starts at 0).
    fn col2im(&self, dcol: &[f32], dx: &mut [f32]) {
        dx.fill(0.0);
        self.for_each_run(|at, img, len| {
            for (d, s) in dx[img..img + len].iter_mut().zip(&dcol[at..at + len]) {
                *d += s;
            }
        });
    }

    pub fn forward(&self, weight: &[f32], bias: &[f32], x: &[f32], y: &mut [f32]) {
        let (ho, wo) = self.out_hw();
        let hw = ho * wo;
        let taps = self.taps();
        let wmat = MatRef::row_major(weight, self.cout, taps);
        y.par_chunks_mut(self.out_len())
            .zip(x.par_chunks(self.in_len()))
            .for_each(|(yb, xb)| {
                for (o, plane) in yb.chunks_mut(hw).enumerate() {
                    plane.fill(bias[o]);
                }
                if self.is_pointwise() {
                    sgemm(yb, wmat, MatRef::row_major(xb, taps, hw), true, 1);
                    return;
                }
                COL.with(|col| {
                    let mut col = col.borrow_mut();
                    self.im2col(xb, &mut col);
                    sgemm(yb, wmat, MatRef::row_major(&col, taps, hw), true, 1);
                });
            });
    }

    /// Gradients of the weight and bias (written, not added), and of the input when `dx`
    /// is given (the first layer needs none).
    pub fn backward(
        &self,
        weight: &[f32],
        x: &[f32],
        dy: &[f32],
        dx: Option<&mut [f32]>,
        dweight: &mut [f32],
        dbias: &mut [f32],
    ) {
        let (ho, wo) = self.out_hw();
        let hw = ho * wo;
        let taps = self.taps();
        let n = dy.len() / self.out_len();
        let per = n.div_ceil(GROUPS).max(1);
        let groups = n.div_ceil(per);
        let dx_groups: Vec<Option<&mut [f32]>> = match dx {
            Some(d) => d.chunks_mut(per * self.in_len()).map(Some).collect(),
            None => (0..groups).map(|_| None).collect(),
        };
        let partial: Vec<(Vec<f32>, Vec<f32>)> = dx_groups
            .into_par_iter()
            .enumerate()
            .map(|(g, mut dxg)| {
                let mut dw = vec![0.0f32; self.cout * taps];
                let mut db = vec![0.0f32; self.cout];
                let images = g * per..((g + 1) * per).min(n);
                for (local, b) in images.enumerate() {
                    let xb = &x[b * self.in_len()..(b + 1) * self.in_len()];
                    let dyb = &dy[b * self.out_len()..(b + 1) * self.out_len()];
                    for (o, plane) in dyb.chunks(hw).enumerate() {
                        db[o] += plane.iter().sum::<f32>();
                    }
                    let dyb_mat = MatRef::row_major(dyb, self.cout, hw);
                    let pointwise_dx = |dxb: &mut [f32]| {
                        // dx = Wᵀ dy, straight into the image (its own im2col matrix).
                        sgemm(
                            dxb,
                            MatRef::transposed(weight, taps, self.cout),
                            dyb_mat,
                            false,
                            1,
                        );
                    };
                    if self.is_pointwise() {
                        sgemm(&mut dw, dyb_mat, MatRef::transposed(xb, hw, taps), true, 1);
                        if let Some(dxg) = dxg.as_deref_mut() {
                            pointwise_dx(
                                &mut dxg[local * self.in_len()..(local + 1) * self.in_len()],
                            );
                        }
                        continue;
                    }
                    COL.with(|col| {
                        let mut col = col.borrow_mut();
                        self.im2col(xb, &mut col);
                        sgemm(
                            &mut dw,
                            dyb_mat,
                            MatRef::transposed(&col, hw, taps),
                            true,
                            1,
                        );
                    });
                    if let Some(dxg) = dxg.as_deref_mut() {
                        DCOL.with(|dcol| {
                            let mut dcol = dcol.borrow_mut();
                            dcol.clear();
                            dcol.resize(taps * hw, 0.0);
                            sgemm(
                                &mut dcol,
                                MatRef::transposed(weight, taps, self.cout),
                                dyb_mat,
                                false,
                                1,
                            );
                            self.col2im(
                                &dcol,
                                &mut dxg[local * self.in_len()..(local + 1) * self.in_len()],
                            );
                        });
                    }
                }
                (dw, db)
            })
            .collect();
        sum_in_order(partial.iter().map(|(w, _)| w.as_slice()), dweight);
        sum_in_order(partial.iter().map(|(_, b)| b.as_slice()), dbias);
    }
}

/// `out = Σ parts`, added in the order given (so the rounding is fixed).
fn sum_in_order<'a>(parts: impl Iterator<Item = &'a [f32]>, out: &mut [f32]) {
    out.fill(0.0);
    for part in parts {
        for (o, p) in out.iter_mut().zip(part) {
            *o += p;
        }
    }
}

/// 2×2 pooling windows over `c` planes of `h × w`, by stride 2 (average, as burn's
/// `avg_pool2d` with `ceil_mode = false`: a last odd row or column is dropped) or by
/// stride 1 (maximum, the DA CNN's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pool {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Pool {
    pub fn avg_out_len(&self) -> usize {
        self.c * (self.h / 2) * (self.w / 2)
    }

    pub fn max_out_len(&self) -> usize {
        self.c * (self.h - 1) * (self.w - 1)
    }

    /// Average of each 2×2 block (stride 2).
    pub fn avg_forward(&self, x: &[f32], y: &mut [f32]) {
        let (h, w) = (self.h, self.w);
        let (ho, wo) = (h / 2, w / 2);
        y.par_chunks_mut(ho * wo)
            .zip(x.par_chunks(h * w))
            .for_each(|(yp, xp)| {
                for i in 0..ho {
                    let (r0, r1) = (&xp[2 * i * w..], &xp[(2 * i + 1) * w..]);
                    for j in 0..wo {
                        yp[i * wo + j] =
                            0.25 * (r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1]);
                    }
                }
            });
    }

    pub fn avg_backward(&self, dy: &[f32], dx: &mut [f32]) {
        let (h, w) = (self.h, self.w);
        let (ho, wo) = (h / 2, w / 2);
        dx.par_chunks_mut(h * w)
            .zip(dy.par_chunks(ho * wo))
            .for_each(|(dxp, dyp)| {
                dxp.fill(0.0);
                for i in 0..ho {
                    for j in 0..wo {
                        let g = 0.25 * dyp[i * wo + j];
                        for r in [2 * i, 2 * i + 1] {
                            dxp[r * w + 2 * j] = g;
                            dxp[r * w + 2 * j + 1] = g;
                        }
                    }
                }
            });
    }

    /// Row-major index (0–3) of the first maximum of the 2×2 window at `(i, j)`.
    fn argmax(xp: &[f32], w: usize, i: usize, j: usize) -> usize {
        let window = [
            xp[i * w + j],
            xp[i * w + j + 1],
            xp[(i + 1) * w + j],
            xp[(i + 1) * w + j + 1],
        ];
        let mut best = 0;
        for t in 1..4 {
            if window[t] > window[best] {
                best = t;
            }
        }
        best
    }

    /// Maximum of each 2×2 window at stride 1 (`h × w` → `(h − 1) × (w − 1)`).
    pub fn max_forward(&self, x: &[f32], y: &mut [f32]) {
        let (h, w) = (self.h, self.w);
        let (ho, wo) = (h - 1, w - 1);
        y.par_chunks_mut(ho * wo)
            .zip(x.par_chunks(h * w))
            .for_each(|(yp, xp)| {
                for i in 0..ho {
                    for j in 0..wo {
                        let t = Self::argmax(xp, w, i, j);
                        yp[i * wo + j] = xp[(i + t / 2) * w + j + t % 2];
                    }
                }
            });
    }

    /// Routes each output's gradient to its window's (first) maximum.
    pub fn max_backward(&self, x: &[f32], dy: &[f32], dx: &mut [f32]) {
        let (h, w) = (self.h, self.w);
        let (ho, wo) = (h - 1, w - 1);
        dx.par_chunks_mut(h * w)
            .zip(x.par_chunks(h * w).zip(dy.par_chunks(ho * wo)))
            .for_each(|(dxp, (xp, dyp))| {
                dxp.fill(0.0);
                for i in 0..ho {
                    for j in 0..wo {
                        let t = Self::argmax(xp, w, i, j);
                        dxp[(i + t / 2) * w + j + t % 2] += dyp[i * wo + j];
                    }
                }
            });
    }
}

/// `y[i] = f(x[i])`, in parallel chunks.
fn map_into(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| {
            for (y, x) in y.iter_mut().zip(x) {
                *y = f(*x);
            }
        });
}

/// `dx[i] = g(y[i], dy[i])` for an activation whose derivative is a function of its output.
fn backward_from_output(y: &[f32], dy: &[f32], dx: &mut [f32], g: impl Fn(f32, f32) -> f32 + Sync) {
    dx.par_chunks_mut(CHUNK)
        .zip(y.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
        .for_each(|(dx, (y, dy))| {
            for ((dx, y), dy) in dx.iter_mut().zip(y).zip(dy) {
                *dx = g(*y, *dy);
            }
        });
}

/// `y = max(x, 0)`; its gradient passes where `x > 0`.
pub(crate) fn relu_forward(x: &[f32], y: &mut [f32]) {
    map_into(x, y, |x| x.max(0.0));
}

pub(crate) fn relu_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    backward_from_output(y, dy, dx, |y, dy| if y > 0.0 { dy } else { 0.0 });
}

/// `y = 1 / (1 + e^{−x})`; `dx = dy · y (1 − y)`.
pub(crate) fn sigmoid_forward(x: &[f32], y: &mut [f32]) {
    map_into(x, y, |x| 1.0 / (1.0 + (-x).exp()));
}

pub(crate) fn sigmoid_backward(y: &[f32], dy: &[f32], dx: &mut [f32]) {
    backward_from_output(y, dy, dx, |y, dy| dy * y * (1.0 - y));
}

/// Instance normalisation with a per-channel affine map, burn's `InstanceNorm`: each
/// `(image, channel)` plane of `hw` values is shifted by its mean and divided by
/// `√(var + ε)` (biased variance), then `y = γ_c x̂ + β_c`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct InstanceNorm {
    pub c: usize,
    pub hw: usize,
    pub eps: f32,
}

impl InstanceNorm {
    /// Normalises and keeps `(mean, 1/σ)` of every plane in `stats` for the backward pass.
    pub fn forward(
        &self,
        gamma: &[f32],
        beta: &[f32],
        x: &[f32],
        y: &mut [f32],
        stats: &mut Vec<f32>,
    ) {
        let hw = self.hw;
        let planes = x.len() / hw;
        stats.clear();
        stats.resize(2 * planes, 0.0);
        y.par_chunks_mut(hw)
            .zip(x.par_chunks(hw))
            .zip(stats.par_chunks_mut(2))
            .enumerate()
            .for_each(|(p, ((yp, xp), st))| {
                let c = p % self.c;
                let mean = xp.iter().sum::<f32>() / hw as f32;
                let var = xp.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / hw as f32;
                let inv = 1.0 / (var + self.eps).sqrt();
                st[0] = mean;
                st[1] = inv;
                let (g, b) = (gamma[c], beta[c]);
                for (yv, xv) in yp.iter_mut().zip(xp) {
                    *yv = (xv - mean) * inv * g + b;
                }
            });
    }

    /// `dγ_c = Σ dy x̂`, `dβ_c = Σ dy` over all planes of channel c (written), and
    /// `dx = (1/σ)(g − mean(g) − x̂ · mean(g x̂))` with `g = γ dy`, per plane.
    pub fn backward(
        &self,
        gamma: &[f32],
        (x, stats): (&[f32], &[f32]),
        dy: &[f32],
        dx: &mut [f32],
        (dgamma, dbeta): (&mut [f32], &mut [f32]),
    ) {
        let hw = self.hw;
        let planes = x.len() / hw;
        // Per-plane sums (Σ dy x̂, Σ dy), reduced over images in order afterwards.
        let mut sums = vec![0.0f32; 2 * planes];
        dx.par_chunks_mut(hw)
            .zip(x.par_chunks(hw).zip(dy.par_chunks(hw)))
            .zip(stats.par_chunks(2).zip(sums.par_chunks_mut(2)))
            .enumerate()
            .for_each(|(p, ((dxp, (xp, dyp)), (st, sum)))| {
                let (mean, inv) = (st[0], st[1]);
                let g = gamma[p % self.c];
                let mut s_dy = 0.0f32;
                let mut s_dy_xhat = 0.0f32;
                for (xv, dv) in xp.iter().zip(dyp) {
                    s_dy += dv;
                    s_dy_xhat += dv * (xv - mean) * inv;
                }
                sum[0] = s_dy_xhat;
                sum[1] = s_dy;
                let m_g = g * s_dy / hw as f32;
                let m_gx = g * s_dy_xhat / hw as f32;
                for ((dxv, xv), dv) in dxp.iter_mut().zip(xp).zip(dyp) {
                    let xhat = (xv - mean) * inv;
                    *dxv = inv * (g * dv - m_g - xhat * m_gx);
                }
            });
        dgamma.fill(0.0);
        dbeta.fill(0.0);
        for (p, s) in sums.chunks(2).enumerate() {
            dgamma[p % self.c] += s[0];
            dbeta[p % self.c] += s[1];
        }
    }
}

/// A linear layer with burn's weight layout `[in, out]`: `y = x W + b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Linear {
    pub inp: usize,
    pub out: usize,
}

impl Linear {
    pub fn forward(&self, weight: &[f32], bias: &[f32], x: &[f32], y: &mut [f32]) {
        let n = x.len() / self.inp;
        for row in y.chunks_mut(self.out) {
            row.copy_from_slice(bias);
        }
        sgemm(
            y,
            MatRef::row_major(x, n, self.inp),
            MatRef::row_major(weight, self.inp, self.out),
            true,
            rayon::current_num_threads(),
        );
    }

    /// `dW = xᵀ dy`, `db = Σ_rows dy` (written), `dx = dy Wᵀ` when asked.
    pub fn backward(
        &self,
        weight: &[f32],
        x: &[f32],
        dy: &[f32],
        dx: Option<&mut [f32]>,
        dweight: &mut [f32],
        dbias: &mut [f32],
    ) {
        let n = x.len() / self.inp;
        let threads = rayon::current_num_threads();
        sgemm(
            dweight,
            MatRef::transposed(x, self.inp, n),
            MatRef::row_major(dy, n, self.out),
            false,
            threads,
        );
        dbias.fill(0.0);
        for row in dy.chunks(self.out) {
            for (b, d) in dbias.iter_mut().zip(row) {
                *b += d;
            }
        }
        if let Some(dx) = dx {
            sgemm(
                dx,
                MatRef::row_major(dy, n, self.out),
                MatRef::transposed(weight, self.out, self.inp),
                false,
                threads,
            );
        }
    }
}

/// Mean softmax cross-entropy of `logits` (`n × classes`) against `labels`, over a batch of
/// `batch` images (the chunk may be part of it); returns the summed loss of these rows and
/// writes `d loss / d logits = (softmax − onehot) / batch`.
pub(crate) fn cross_entropy(
    logits: &[f32],
    labels: &[usize],
    classes: usize,
    batch: usize,
    dlogits: &mut [f32],
) -> f64 {
    let mut total = 0.0f64;
    for ((row, drow), &label) in logits
        .chunks(classes)
        .zip(dlogits.chunks_mut(classes))
        .zip(labels)
    {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let log_z = max + sum.ln();
        total += f64::from(log_z - row[label]);
        for (j, (d, v)) in drow.iter_mut().zip(row).enumerate() {
            let p = (v - log_z).exp();
            *d = (p - if j == label { 1.0 } else { 0.0 }) / batch as f32;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct loops over the definition, for the im2col path and its adjoint.
    fn conv_direct(conv: &Conv, w: &[f32], b: &[f32], x: &[f32]) -> Vec<f32> {
        let (ho, wo) = conv.out_hw();
        let mut y = vec![0.0f32; conv.out_len()];
        for o in 0..conv.cout {
            for i in 0..ho {
                for j in 0..wo {
                    let mut s = b[o];
                    for c in 0..conv.cin {
                        for u in 0..conv.k {
                            for v in 0..conv.k {
                                let (r, q) = (i + u, j + v);
                                if r < conv.pad
                                    || q < conv.pad
                                    || r - conv.pad >= conv.h
                                    || q - conv.pad >= conv.w
                                {
                                    continue;
                                }
                                s += w[((o * conv.cin + c) * conv.k + u) * conv.k + v]
                                    * x[(c * conv.h + r - conv.pad) * conv.w + q - conv.pad];
                            }
                        }
                    }
                    y[(o * ho + i) * wo + j] = s;
                }
            }
        }
        y
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn convolution_matches_its_definition_and_col2im_is_the_adjoint_of_im2col() {
        for conv in [
            Conv {
                cin: 2,
                cout: 3,
                k: 3,
                pad: 1,
                h: 5,
                w: 4,
            },
            Conv {
                cin: 1,
                cout: 4,
                k: 3,
                pad: 3,
                h: 4,
                w: 4,
            },
            Conv {
                cin: 3,
                cout: 2,
                k: 5,
                pad: 0,
                h: 7,
                w: 6,
            },
            Conv {
                cin: 1,
                cout: 2,
                k: 1,
                pad: 0,
                h: 3,
                w: 3,
            },
        ] {
            let w = values(conv.cout * conv.taps(), 1);
            let b = values(conv.cout, 2);
            let x = values(conv.in_len(), 3);
            let mut y = vec![0.0; conv.out_len()];
            conv.forward(&w, &b, &x, &mut y);
            let direct = conv_direct(&conv, &w, &b, &x);
            for (a, e) in y.iter().zip(&direct) {
                assert!((a - e).abs() < 1e-5, "{conv:?}: {a} vs {e}");
            }
            // <im2col(x), c> = <x, col2im(c)> for any c.
            let mut col = Vec::new();
            conv.im2col(&x, &mut col);
            let c = values(col.len(), 4);
            let mut back = vec![0.0; conv.in_len()];
            conv.col2im(&c, &mut back);
            let lhs: f64 = col.iter().zip(&c).map(|(a, b)| f64::from(a * b)).sum();
            let rhs: f64 = x.iter().zip(&back).map(|(a, b)| f64::from(a * b)).sum();
            assert!((lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()), "{conv:?}");
        }
    }

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_classes() {
        let logits = vec![0.5f32; 2 * 4];
        let mut d = vec![0.0; 8];
        let total = cross_entropy(&logits, &[1, 3], 4, 2, &mut d);
        assert!((total / 2.0 - 4f64.ln()).abs() < 1e-6);
        assert!((d[1] - (0.25 - 1.0) / 2.0).abs() < 1e-7);
        assert!((d[0] - 0.25 / 2.0).abs() < 1e-7);
    }
}

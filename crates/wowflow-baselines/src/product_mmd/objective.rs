//! `F = ½ MMD_k²(μ, ν)` with the product kernel and its WoW gradient (see the parent
//! module for the formulas).
//!
//! The kernel matrix has one row per source particle and one column per particle of the
//! *column set* `[source; target]`, each column carrying a signed mass (`+p_j` source,
//! `−q_j` target). One pass over it turns squared feature distances into signed weights
//! `w_ij = ±mass_j k(z_i, z_j)`; then, with `s_i = Σ_j w_ij`,
//!
//! ```text
//! g_x_i = −(2/h_x) Σ_j w_ij (x_i − x_j) = −(2/h_x) (s_i x_i − (W Z)_i)
//! g_m_i = −(2/h_m) Σ_j w_ij (m_i − m_j)
//! g_Σ_i = −(2/h_Σ) Σ_j w_ij (Σ_i − Σ_j)
//! ```
//!
//! For `d > 32` the whole kernel is evaluated by two `f32` GEMMs over the column set, on
//! scaled coordinates that turn the product kernel into a single Gaussian kernel (see
//! [`gemm_pass`]); that is all but a small fraction of a step's work. For small `d` every
//! part is computed directly in `f64` ([`direct_pass`]).

use super::ProductParticles;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use wowflow_core::error::{invalid, CoreError, Result};
use wowflow_core::linalg::symmetrise;
use wowflow_core::linalg::{matmul_ab_f32, matmul_abt_f32, pairwise_sq_dists};

/// Up to this feature dimension the feature distances and gradient are computed directly in
/// `f64`; above it by `f32` GEMMs (the same switch as [`pairwise_sq_dists`]).
const DIRECT_MAX_DIM: usize = 32;

/// Bandwidth of one part of the product kernel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Bandwidth {
    /// A given `h > 0`.
    Fixed {
        /// The bandwidth, in the squared units of that part (it divides `‖·‖²` directly).
        h: f64,
    },
    /// `factor ×` the median of that part's squared source–target distances at the start.
    Median {
        /// Multiplier of the median, finite and `> 0` (`1` for the plain heuristic).
        factor: f64,
    },
}

/// Bandwidth choice for the three parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BandwidthSpec {
    /// Rule for `h_x`, on the features (`‖x − x'‖²`).
    pub x: Bandwidth,
    /// Rule for `h_m`, on the embedded means (`‖m − m'‖²`).
    pub m: Bandwidth,
    /// Rule for `h_Σ`, on the embedded covariances (`‖Σ − Σ'‖_F²`).
    pub sigma: Bandwidth,
}

impl Default for BandwidthSpec {
    /// The median heuristic on every part.
    fn default() -> Self {
        let median = Bandwidth::Median { factor: 1.0 };
        Self {
            x: median,
            m: median,
            sigma: median,
        }
    }
}

/// Resolved bandwidths `h_x`, `h_m`, `h_Σ` (all `> 0`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bandwidths {
    /// `h_x`, dividing `‖x − x'‖²`.
    pub x: f64,
    /// `h_m`, dividing `‖m − m'‖²`.
    pub m: f64,
    /// `h_Σ`, dividing `‖Σ − Σ'‖_F²`.
    pub sigma: f64,
}

impl Bandwidths {
    /// Checks that all three are finite and positive.
    pub fn validate(&self) -> Result<()> {
        for (name, h) in [
            ("bandwidth h_x", self.x),
            ("bandwidth h_m", self.m),
            ("bandwidth h_sigma", self.sigma),
        ] {
            if !(h.is_finite() && h > 0.0) {
                return Err(invalid(name, format!("must be finite and > 0, got {h}")));
            }
        }
        Ok(())
    }

    /// Resolves `spec` against the source and target particles (median heuristics are
    /// computed here, once: the median over all `N × M` source–target pairs).
    pub fn resolve(
        spec: &BandwidthSpec,
        source: &ProductParticles,
        target: &ProductParticles,
    ) -> Result<Self> {
        check_compatible(source, target)?;
        let (n, t) = (source.len(), target.len());
        let x = resolve_one("bandwidth h_x", spec.x, || {
            pairwise_sq_dists(&source.x, n, &target.x, t, source.feature_dim)
        })?;
        let label_dists = |a: &[f64], b: &[f64], width: usize| -> Vec<f64> {
            a.chunks_exact(width)
                .flat_map(|u| b.chunks_exact(width).map(move |v| sq_dist(u, v)))
                .collect()
        };
        let p = source.label_dim;
        let m = resolve_one("bandwidth h_m", spec.m, || {
            label_dists(&source.m, &target.m, p)
        })?;
        let sigma = resolve_one("bandwidth h_sigma", spec.sigma, || {
            label_dists(&source.sigma, &target.sigma, p * p)
        })?;
        let out = Self { x, m, sigma };
        out.validate()?;
        Ok(out)
    }
}

fn resolve_one(name: &str, rule: Bandwidth, dists: impl FnOnce() -> Vec<f64>) -> Result<f64> {
    match rule {
        Bandwidth::Fixed { h } => Ok(h),
        Bandwidth::Median { factor } => {
            if !(factor.is_finite() && factor > 0.0) {
                return Err(invalid(
                    name,
                    format!("median factor must be finite and > 0, got {factor}"),
                ));
            }
            let mut d = dists();
            let mid = d.len() / 2;
            let median = *d.select_nth_unstable_by(mid, f64::total_cmp).1;
            // A median of 0 (most pairs identical in that part) falls back to the mean.
            let base = if median > 0.0 {
                median
            } else {
                d.iter().sum::<f64>() / d.len() as f64
            };
            if base > 0.0 {
                Ok(factor * base)
            } else {
                Err(invalid(
                    name,
                    "median heuristic: every source–target squared distance of this part is 0; \
                     give an explicit bandwidth",
                ))
            }
        }
    }
}

fn check_compatible(source: &ProductParticles, target: &ProductParticles) -> Result<()> {
    source.check_shapes()?;
    target.check_shapes()?;
    for (what, got, expected) in [
        ("target features", target.feature_dim, source.feature_dim),
        ("target label embedding", target.label_dim, source.label_dim),
    ] {
        if got != expected {
            return Err(CoreError::DimensionMismatch {
                what: what.into(),
                expected,
                got,
            });
        }
    }
    Ok(())
}

pub(super) fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The WoW gradient of [`ProductMmd`] (shapes as [`ProductParticles`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ProductGrad {
    /// `∂F/∂x_i / p_i`, `N × d`.
    pub x: Vec<f32>,
    /// `∂F/∂m_i / p_i`, `N × p`.
    pub m: Vec<f64>,
    /// Symmetric `∂F/∂Σ_i / p_i`, `N × p × p`.
    pub sigma: Vec<f64>,
}

impl ProductGrad {
    /// The first non-finite entry, as `(part, index, value)`.
    pub(super) fn first_non_finite(&self) -> Option<(&'static str, usize, f64)> {
        let find = |v: &mut dyn Iterator<Item = f64>| v.enumerate().find(|(_, v)| !v.is_finite());
        find(&mut self.x.iter().map(|&v| v as f64))
            .map(|(i, v)| ("x", i, v))
            .or_else(|| find(&mut self.m.iter().copied()).map(|(i, v)| ("m", i, v)))
            .or_else(|| find(&mut self.sigma.iter().copied()).map(|(i, v)| ("Σ", i, v)))
    }
}

/// How the feature part of the kernel is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FeaturePath {
    /// `f64` differences, `O(N (N + M) d)` scalar work: exact, for small `d`.
    Direct,
    /// `f32` GEMMs for distances and gradient.
    Gemm,
}

impl FeaturePath {
    fn for_dim(d: usize) -> Self {
        if d <= DIRECT_MAX_DIM {
            Self::Direct
        } else {
            Self::Gemm
        }
    }
}

/// The columns of the kernel matrix: the blocks `[source; target]` (or the target alone)
/// concatenated, each particle with a signed mass (`+p_j` source, `−q_j` target). The first
/// `leading` columns are the row particles themselves, so column `i` of row `i` is the
/// diagonal.
struct Columns<'a> {
    blocks: Vec<&'a ProductParticles>,
    signed_mass: Vec<f64>,
    leading: usize,
}

impl<'a> Columns<'a> {
    fn new(blocks: &[(&'a ProductParticles, f64)]) -> Self {
        Self {
            blocks: blocks.iter().map(|(b, _)| *b).collect(),
            signed_mass: blocks
                .iter()
                .flat_map(|(b, sign)| b.masses.iter().map(move |&q| sign * q))
                .collect(),
            leading: blocks.first().map_or(0, |(b, _)| b.len()),
        }
    }

    fn rows(&self) -> &'a ProductParticles {
        self.blocks[0]
    }

    fn len(&self) -> usize {
        self.signed_mass.len()
    }

    /// One part of every particle, concatenated in column order.
    fn concat<T: Copy>(&self, part: impl Fn(&ProductParticles) -> &[T]) -> Vec<T> {
        self.blocks
            .iter()
            .flat_map(|b| part(b).iter().copied())
            .collect()
    }
}

/// `F = ½ MMD_k²(μ, ν)` with the product kernel, towards fixed target particles.
#[derive(Debug, Clone)]
pub struct ProductMmd {
    target: ProductParticles,
    bandwidths: Bandwidths,
    /// `½ Σ q_i q_j k(w_i, w_j)`, constant in the source.
    target_term: f64,
}

impl ProductMmd {
    /// Towards `target` with the given bandwidths.
    pub fn new(target: ProductParticles, bandwidths: Bandwidths) -> Result<Self> {
        bandwidths.validate()?;
        target.check_shapes()?;
        let path = FeaturePath::for_dim(target.feature_dim);
        let pass = kernel_pass(&Columns::new(&[(&target, 1.0)]), &bandwidths, path);
        Ok(Self {
            target_term: 0.5 * pass.leading_sum,
            target,
            bandwidths,
        })
    }

    /// Towards `target`, bandwidths resolved from `spec` against `source` (the median
    /// heuristic is evaluated once, here).
    pub fn with_spec(
        target: ProductParticles,
        spec: &BandwidthSpec,
        source: &ProductParticles,
    ) -> Result<Self> {
        let bandwidths = Bandwidths::resolve(spec, source, &target)?;
        Self::new(target, bandwidths)
    }

    /// The bandwidths in use.
    pub fn bandwidths(&self) -> Bandwidths {
        self.bandwidths
    }
    /// The target particles.
    pub fn target(&self) -> &ProductParticles {
        &self.target
    }

    /// `F` at `source` and its WoW gradient. The source must be finite (the flow's steps
    /// guarantee it; [`ProductParticles::from_parts`] checks it).
    pub fn value_and_grad(&self, source: &ProductParticles) -> Result<(f64, ProductGrad)> {
        self.value_and_grad_with(source, FeaturePath::for_dim(source.feature_dim))
    }

    pub(super) fn value_and_grad_with(
        &self,
        source: &ProductParticles,
        path: FeaturePath,
    ) -> Result<(f64, ProductGrad)> {
        check_compatible(source, &self.target)?;
        let columns = Columns::new(&[(source, 1.0), (&self.target, -1.0)]);
        let pass = kernel_pass(&columns, &self.bandwidths, path);
        let value = 0.5 * pass.leading_sum - pass.trailing_sum + self.target_term;
        Ok((value, pass.grad))
    }
}

/// What a pass over the kernel matrix yields.
struct Pass {
    /// `Σ_i p_i Σ_{j leading} mass_j k_ij` (the source–source sum).
    leading_sum: f64,
    /// `Σ_i p_i Σ_{j trailing} mass_j k_ij` (the source–target sum).
    trailing_sum: f64,
    grad: ProductGrad,
}

/// Per row: `[Σ_{j leading} mass_j k_ij, Σ_{j trailing} mass_j k_ij, s_i = Σ_j w_ij]`.
type RowSums = [f64; 3];

fn kernel_pass(columns: &Columns, h: &Bandwidths, path: FeaturePath) -> Pass {
    let (sums, grad) = match path {
        FeaturePath::Direct => direct_pass(columns, h),
        FeaturePath::Gemm => gemm_pass(columns, h),
    };
    let masses = &columns.rows().masses;
    // Sequential sums in row order: the result does not depend on the thread count.
    Pass {
        leading_sum: sums.iter().zip(masses).map(|(s, p)| p * s[0]).sum(),
        trailing_sum: sums.iter().zip(masses).map(|(s, p)| p * s[1]).sum(),
        grad,
    }
}

/// Everything in `f64`, with per-entry label differences: exact, `O(N (N + M) (d + p²))`
/// scalar work, for small `d` (and as the reference the GEMM path is tested against).
fn direct_pass(columns: &Columns, h: &Bandwidths) -> (Vec<RowSums>, ProductGrad) {
    let rows = columns.rows();
    let (n, d, p, nc) = (rows.len(), rows.feature_dim, rows.label_dim, columns.len());
    let pp = p * p;
    let (z, m, sigma) = (
        columns.concat(|b| &b.x),
        columns.concat(|b| &b.m),
        columns.concat(|b| &b.sigma),
    );
    let (inv_x, inv_m, inv_s) = (1.0 / h.x, 1.0 / h.m, 1.0 / h.sigma);
    let mut grad = ProductGrad {
        x: vec![0.0; n * d],
        m: vec![0.0; n * p],
        sigma: vec![0.0; n * pp],
    };
    let sums = grad
        .x
        .par_chunks_mut(d)
        .zip(grad.m.par_chunks_mut(p))
        .zip(grad.sigma.par_chunks_mut(pp))
        .enumerate()
        .map(|(i, ((gx, gm), gs))| {
            let (xi, mi, si) = (&z[i * d..(i + 1) * d], rows.mean(i), rows.covariance(i));
            let mut acc = [0.0f64; 3];
            let mut ax = vec![0.0f64; d];
            for j in 0..nc {
                let (xj, mj) = (&z[j * d..(j + 1) * d], &m[j * p..(j + 1) * p]);
                let sj = &sigma[j * pp..(j + 1) * pp];
                let dx: f64 = xi
                    .iter()
                    .zip(xj)
                    .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                    .sum();
                let exponent = dx * inv_x + sq_dist(mi, mj) * inv_m + sq_dist(si, sj) * inv_s;
                let kernel = (-exponent).exp();
                let w = columns.signed_mass[j] * kernel;
                acc[usize::from(j >= columns.leading)] += columns.signed_mass[j].abs() * kernel;
                acc[2] += w;
                let add = |g: &mut [f64], a: &[f64], b: &[f64]| {
                    g.iter_mut()
                        .zip(a.iter().zip(b))
                        .for_each(|(g, (a, b))| *g += w * (a - b))
                };
                add(gm, mi, mj);
                add(gs, si, sj);
                for ((g, &a), &b) in ax.iter_mut().zip(xi).zip(xj) {
                    *g += w * (a as f64 - b as f64);
                }
            }
            gx.iter_mut()
                .zip(&ax)
                .for_each(|(g, &a)| *g = (-2.0 * inv_x * a) as f32);
            gm.iter_mut().for_each(|g| *g *= -2.0 * inv_m);
            gs.iter_mut().for_each(|g| *g *= -2.0 * inv_s);
            acc
        })
        .collect();
    (sums, grad)
}

/// The product kernel is one Gaussian kernel `exp(−‖u − u'‖²)` on the scaled, concatenated
/// coordinates `u = [x / √h_x, m / √h_m, vec(Σ) / √h_Σ]` (width `d + p + p²`; the full
/// `vec(Σ)` counts off-diagonal entries twice, as the Frobenius norm does). So in `f32`:
/// `D = U_rows U_colsᵀ` (one GEMM), the weights overwrite `D` in place, and `W U` (a second
/// GEMM) gives every part of the gradient at once:
/// `g_i = −2 a (s_i u_i − (W U)_i)` with `a = 1/√h` of the part. The label parts thereby
/// get `f32` precision, which a flow whose features are `f32` does not notice.
fn gemm_pass(columns: &Columns, h: &Bandwidths) -> (Vec<RowSums>, ProductGrad) {
    let rows = columns.rows();
    let (n, d, p, nc) = (rows.len(), rows.feature_dim, rows.label_dim, columns.len());
    let pp = p * p;
    let width = d + p + pp;
    let scales = [h.x, h.m, h.sigma].map(|h| 1.0 / h.sqrt());
    let mut u = vec![0.0f32; nc * width];
    let mut at = 0;
    for b in &columns.blocks {
        for i in 0..b.len() {
            let row = &mut u[(at + i) * width..(at + i + 1) * width];
            let (ux, rest) = row.split_at_mut(d);
            let (um, us) = rest.split_at_mut(p);
            let xi = &b.x[i * d..(i + 1) * d];
            ux.iter_mut()
                .zip(xi)
                .for_each(|(u, &x)| *u = (x as f64 * scales[0]) as f32);
            um.iter_mut()
                .zip(b.mean(i))
                .for_each(|(u, &m)| *u = (m * scales[1]) as f32);
            us.iter_mut()
                .zip(b.covariance(i))
                .for_each(|(u, &s)| *u = (s * scales[2]) as f32);
        }
        at += b.len();
    }
    let norms: Vec<f64> = u
        .par_chunks(width)
        .map(|r| r.iter().map(|&v| v as f64 * v as f64).sum())
        .collect();
    let mut w = vec![0.0f32; n * nc];
    matmul_abt_f32(&u[..n * width], n, &u, nc, width, &mut w);
    let masses: Vec<f32> = columns.signed_mass.iter().map(|&q| q as f32).collect();
    let sums: Vec<RowSums> = w
        .par_chunks_mut(nc)
        .enumerate()
        .map(|(i, row)| {
            // Kernel weights in f32 (they feed an f32 GEMM): `f32::exp` is twice as fast as
            // the f64 one and this loop is the only non-GEMM work of size N × (N + M).
            let ni = norms[i];
            for ((entry, &nj), &mass) in row.iter_mut().zip(&norms).zip(&masses) {
                let d2 = (ni + nj - 2.0 * *entry as f64).max(0.0);
                *entry = mass * (-(d2 as f32)).exp();
            }
            // The diagonal is exactly k = 1; the GEMM form only gives d² = 0 to rounding.
            row[i] = masses[i];
            let total = |s: &[f32]| s.iter().map(|&v| v as f64).sum::<f64>();
            let (own, other) = row.split_at(columns.leading);
            let (own, other) = (total(own), total(other));
            // Leading masses are positive, trailing ones negative.
            [own, -other, own + other]
        })
        .collect();
    let wu = matmul_ab_f32(&w, n, nc, &u, width);
    drop(w);
    let mut grad = ProductGrad {
        x: vec![0.0; n * d],
        m: vec![0.0; n * p],
        sigma: vec![0.0; n * pp],
    };
    grad.x
        .par_chunks_mut(d)
        .zip(grad.m.par_chunks_mut(p))
        .zip(grad.sigma.par_chunks_mut(pp))
        .enumerate()
        .for_each(|(i, ((gx, gm), gs))| {
            let s = sums[i][2];
            let (ui, wui) = (
                &u[i * width..(i + 1) * width],
                &wu[i * width..(i + 1) * width],
            );
            let part = |c: usize, scale: f64| -2.0 * scale * (s * ui[c] as f64 - wui[c] as f64);
            gx.iter_mut()
                .enumerate()
                .for_each(|(c, g)| *g = part(c, scales[0]) as f32);
            gm.iter_mut()
                .enumerate()
                .for_each(|(c, g)| *g = part(d + c, scales[1]));
            gs.iter_mut()
                .enumerate()
                .for_each(|(c, g)| *g = part(d + p + c, scales[2]));
            symmetrise(gs, p);
        });
    (sums, grad)
}

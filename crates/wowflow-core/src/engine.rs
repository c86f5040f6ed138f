//! Engines: the hot kernels behind the sliced objectives (project, sort, pair,
//! back-project), behind one trait so a GPU engine can replace the CPU one.
//!
//! The SW-MMD step (docs/math.md §5) in four stages:
//! 1. project both clouds on the step's directions and sort each (direction, class) row
//!    ([`SlicedCloud`]);
//! 2. for every class pair and direction, the exact 1-D cost, averaged over directions into
//!    the sliced costs `s` (per-direction values are summed in a fixed order so results do
//!    not depend on thread scheduling);
//! 3. the kernel turns costs into coefficients `κ'(s)`; per direction, every particle gets
//!    `D_l,i = Σ_j coef_j ∂W/∂u_i / (a_c w_ci)` — the WoW gradient's 1-D part;
//! 4. one GEMM sends `D` back to `R^d`: `G = (1/L) Dᵀ Θ`.

use crate::cloud::LabeledCloud;
use crate::directions::Directions;
use crate::error::{shape, CoreError, Result};
use crate::kernel::Kernel;
use crate::ot1d::{interval_means, sign, wasserstein_sorted, CostPower, SortedMeasure};
use crate::sliced::SlicedCloud;
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

/// Result of one SW-MMD evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct SwMmdOutput {
    /// `F = ½ MMD_K²(P, Q)` with this step's directions.
    pub value: f64,
    /// Sliced costs between source classes, `C × C` row-major (diagonal 0).
    pub source_costs: Vec<f64>,
    /// Sliced costs source class × target class, `C × K`.
    pub cross_costs: Vec<f64>,
    /// Sliced costs between target classes, `K × K`.
    pub target_costs: Vec<f64>,
}

/// `F = ½ [Σ_cc' a_c a_c' κ(s_cc') − 2 Σ_ck a_c b_k κ(s_ck) + Σ_kk' b_k b_k' κ(s_kk')]`
/// (docs/math.md §5) from the three sliced-cost matrices (row-major `C × C`, `C × K`, `K × K`,
/// zero diagonals). Shared by every engine so they cannot disagree on the formula.
pub fn mmd_value(
    kernel: &Kernel,
    a: &[f64],
    b: &[f64],
    source_costs: &[f64],
    cross_costs: &[f64],
    target_costs: &[f64],
) -> f64 {
    let (c_n, k_n) = (a.len(), b.len());
    let mut value = 0.0;
    for c in 0..c_n {
        for c2 in 0..c_n {
            value += 0.5 * a[c] * a[c2] * kernel.value(source_costs[c * c_n + c2]);
        }
        for k in 0..k_n {
            value -= a[c] * b[k] * kernel.value(cross_costs[c * k_n + k]);
        }
    }
    for k in 0..k_n {
        for k2 in 0..k_n {
            value += 0.5 * b[k] * b[k2] * kernel.value(target_costs[k * k_n + k2]);
        }
    }
    value
}

/// The hot kernels of the sliced objectives. Implementations must agree to `f32` tolerance.
pub trait Engine: Send + Sync + std::fmt::Debug {
    /// A short name (`cpu`, `cuda`).
    fn name(&self) -> &'static str;

    /// `F = ½ MMD_K²(source, target)` and, written into `grad` (`N × d`, the source's row
    /// order), the WoW gradient `∂F/∂x_ci / (a_c w_ci)`.
    fn sw_mmd(
        &self,
        source: &LabeledCloud,
        target: &LabeledCloud,
        directions: &Directions,
        kernel: &Kernel,
        grad: &mut [f32],
    ) -> Result<SwMmdOutput>;

    /// Sliced costs (`SW_2²` or `SW_1`) between every class of `a` and every class of `b`,
    /// row-major `C_a × C_b`.
    fn sliced_costs(
        &self,
        a: &LabeledCloud,
        b: &LabeledCloud,
        directions: &Directions,
        power: CostPower,
    ) -> Result<Vec<f64>>;
}

/// The CPU engine: `gemm` for projections, rayon over directions for sorting and pairing.
///
/// Buffers are kept between calls (a flow evaluates the same shapes every step); clones
/// share them behind a mutex, so concurrent calls on clones are serialised, not wrong.
#[derive(Debug, Clone, Default)]
pub struct CpuEngine {
    pool: Option<Arc<rayon::ThreadPool>>,
    workspace: Arc<Mutex<Workspace>>,
}

/// Reusable buffers of one SW-MMD evaluation.
#[derive(Debug, Default)]
struct Workspace {
    source: SlicedCloud,
    target: SlicedCloud,
    derivs: Vec<f32>,
}

impl CpuEngine {
    /// Uses rayon's global pool (all cores unless `RAYON_NUM_THREADS` says otherwise).
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses a private pool of exactly `threads` threads (results do not depend on it).
    pub fn with_threads(threads: usize) -> Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| crate::error::invalid("threads", e.to_string()))?;
        Ok(Self {
            pool: Some(Arc::new(pool)),
            workspace: Arc::default(),
        })
    }

    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }
}

fn check_dims(what: &str, cloud: &LabeledCloud, dirs: &Directions) -> Result<()> {
    if cloud.dim() != dirs.dim() {
        return Err(CoreError::DimensionMismatch {
            what: what.into(),
            expected: dirs.dim(),
            got: cloud.dim(),
        });
    }
    Ok(())
}

impl Engine for CpuEngine {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn sw_mmd(
        &self,
        source: &LabeledCloud,
        target: &LabeledCloud,
        directions: &Directions,
        kernel: &Kernel,
        grad: &mut [f32],
    ) -> Result<SwMmdOutput> {
        check_dims("source", source, directions)?;
        check_dims("target", target, directions)?;
        if grad.len() != source.points().len() {
            return Err(shape("gradient buffer", source.points().len(), grad.len()));
        }
        let mut ws = self
            .workspace
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let ws: &mut Workspace = &mut ws;
        self.run(|| sw_mmd_cpu(ws, source, target, directions, kernel, grad))
    }

    fn sliced_costs(
        &self,
        a: &LabeledCloud,
        b: &LabeledCloud,
        directions: &Directions,
        power: CostPower,
    ) -> Result<Vec<f64>> {
        check_dims("first cloud", a, directions)?;
        check_dims("second cloud", b, directions)?;
        self.run(|| {
            let sa = SlicedCloud::new(a, directions, false)?;
            let sb = SlicedCloud::new(b, directions, false)?;
            let pairs: Vec<(Side, usize, Side, usize)> = (0..sa.n_classes())
                .flat_map(|c| (0..sb.n_classes()).map(move |k| (Side::A, c, Side::B, k)))
                .collect();
            Ok(mean_pair_costs(&sa, &sb, &pairs, power))
        })
    }
}

#[derive(Clone, Copy)]
enum Side {
    A,
    B,
}

fn measure<'a>(s: &'a SlicedCloud, l: usize, c: usize) -> SortedMeasure<'a, f32> {
    SortedMeasure {
        values: s.segment(l, c),
        weights: s.segment_weights(l, c),
    }
}

/// Exact 1-D cost between two sorted segments, with a branch-free fast path for the common
/// equal-size, uniform-weight case (`(1/n) Σ_k cost(u_(k) − v_(k))`).
#[inline]
fn pair_cost(a: SortedMeasure<f32>, b: SortedMeasure<f32>, power: CostPower) -> f64 {
    if a.weights.is_none() && b.weights.is_none() && a.values.len() == b.values.len() {
        let n = a.values.len() as f64;
        match power {
            CostPower::Two => lane_sum(a.values, b.values, |d| d * d) / n,
            CostPower::One => lane_sum(a.values, b.values, f32::abs) / n,
        }
    } else {
        wasserstein_sorted(a, b, power)
    }
}

/// `Σ_k f(u_k − v_k)` in 16 independent `f32` lanes (so the loop vectorises), finished in
/// `f64`. Each lane adds about n/16 terms, so the relative rounding error stays near
/// `(n/16)·6e-8` — below 2e-6 for the paper's n = 500, far under the Monte-Carlo error of
/// slicing.
#[inline]
fn lane_sum(u: &[f32], v: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    const LANES: usize = 16;
    let mut acc = [0.0f32; LANES];
    let (cu, cv) = (u.chunks_exact(LANES), v.chunks_exact(LANES));
    let (ru, rv) = (cu.remainder(), cv.remainder());
    for (x, y) in cu.zip(cv) {
        for k in 0..LANES {
            acc[k] += f(x[k] - y[k]);
        }
    }
    let tail: f64 = ru.iter().zip(rv).map(|(&x, &y)| f(x - y) as f64).sum();
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail
}

/// Direction-averaged costs of the listed pairs, summed over directions in a fixed order.
fn mean_pair_costs(
    sa: &SlicedCloud,
    sb: &SlicedCloud,
    pairs: &[(Side, usize, Side, usize)],
    power: CostPower,
) -> Vec<f64> {
    let (l, p) = (sa.n_dirs(), pairs.len());
    if p == 0 {
        return Vec::new();
    }
    let mut per_dir = vec![0.0f64; l * p];
    per_dir.par_chunks_mut(p).enumerate().for_each(|(li, row)| {
        for (out, &(s1, c1, s2, c2)) in row.iter_mut().zip(pairs) {
            let pick = |s: Side| if matches!(s, Side::A) { sa } else { sb };
            *out = pair_cost(measure(pick(s1), li, c1), measure(pick(s2), li, c2), power);
        }
    });
    let mut total = vec![0.0f64; p];
    for row in per_dir.chunks_exact(p) {
        total.iter_mut().zip(row).for_each(|(t, r)| *t += r);
    }
    total.iter_mut().for_each(|t| *t /= l as f64);
    total
}

fn sw_mmd_cpu(
    ws: &mut Workspace,
    source: &LabeledCloud,
    target: &LabeledCloud,
    directions: &Directions,
    kernel: &Kernel,
    grad: &mut [f32],
) -> Result<SwMmdOutput> {
    let power = kernel.cost();
    let (c_n, k_n, l_n, n) = (
        source.n_classes(),
        target.n_classes(),
        directions.count(),
        source.n_points(),
    );
    // One after the other: each GEMM and each sort already uses every thread, and running
    // the target's GEMM beside the source's sort was measured slower once the sort became
    // the short AVX2 network (BENCHMARKS.md).
    let Workspace {
        source: src_slices,
        target: tgt_slices,
        derivs,
    } = ws;
    src_slices.rebuild(source, directions, true)?;
    tgt_slices.rebuild(target, directions, false)?;
    let (sx, sy) = (&*src_slices, &*tgt_slices);

    // Stage 2: sliced costs for all pairs the value needs (each unordered pair once).
    let mut pairs = Vec::new();
    for c in 0..c_n {
        for c2 in c + 1..c_n {
            pairs.push((Side::A, c, Side::A, c2));
        }
        for k in 0..k_n {
            pairs.push((Side::A, c, Side::B, k));
        }
    }
    for k in 0..k_n {
        for k2 in k + 1..k_n {
            pairs.push((Side::B, k, Side::B, k2));
        }
    }
    let costs = mean_pair_costs(sx, sy, &pairs, power);
    let mut source_costs = vec![0.0; c_n * c_n];
    let mut cross_costs = vec![0.0; c_n * k_n];
    let mut target_costs = vec![0.0; k_n * k_n];
    for (&(s1, i, s2, j), &s) in pairs.iter().zip(&costs) {
        match (s1, s2) {
            (Side::A, Side::A) => {
                source_costs[i * c_n + j] = s;
                source_costs[j * c_n + i] = s;
            }
            (Side::A, Side::B) => cross_costs[i * k_n + j] = s,
            _ => {
                target_costs[i * k_n + j] = s;
                target_costs[j * k_n + i] = s;
            }
        }
    }

    // Stage 3a: the value.
    let (a, b) = (source.class_weights(), target.class_weights());
    let value = mmd_value(kernel, a, b, &source_costs, &cross_costs, &target_costs);

    // Stage 3b: coefficients a_c'κ'(s) (source partners) and −b_kκ'(s) (target partners);
    // the a_c factor of ∂F/∂x_ci cancels against the WoW rescaling 1/(a_c w_ci). Pairs at
    // zero cost contribute nothing; a NaN cost (overflowing projections) is kept so the
    // gradient is NaN and the flow reports the divergence instead of ignoring the pair.
    let coef = |c: usize| -> Vec<(Side, usize, f32)> {
        let mut out = Vec::with_capacity(c_n + k_n);
        for c2 in (0..c_n).filter(|&c2| c2 != c) {
            let s = source_costs[c * c_n + c2];
            if s > 0.0 || s.is_nan() {
                out.push((Side::A, c2, (a[c2] * kernel.derivative(s)) as f32));
            }
        }
        for k in 0..k_n {
            let s = cross_costs[c * k_n + k];
            if s > 0.0 || s.is_nan() {
                out.push((Side::B, k, (-b[k] * kernel.derivative(s)) as f32));
            }
        }
        out
    };
    let coefs: Vec<_> = (0..c_n).map(coef).collect();

    // Stage 3c: per-direction derivatives D (L × N), in the source's particle order.
    derivs.resize(l_n * n, 0.0);
    derivs.par_chunks_mut(n).enumerate().for_each_init(
        || (Vec::<f32>::new(), Vec::<f64>::new()),
        |(acc, tmp), (l, drow)| {
            for (c, partners) in coefs.iter().enumerate() {
                let u = measure(sx, l, c);
                let perm = sx
                    .segment_perm(l, c)
                    .expect("source is sliced with its permutation");
                let off = source.offsets()[c];
                acc.clear();
                acc.resize(u.values.len(), 0.0);
                let mut total = 0.0f32;
                for &(side, j, w) in partners {
                    let v = match side {
                        Side::A => measure(sx, l, j),
                        Side::B => measure(sy, l, j),
                    };
                    total += w;
                    accumulate_partner(u, v, power, w, acc, tmp);
                }
                for (k, &p) in perm.iter().enumerate() {
                    drow[off + p as usize] = match power {
                        CostPower::Two => 2.0 * (total * u.values[k] - acc[k]),
                        CostPower::One => acc[k],
                    };
                }
            }
        },
    );

    // Stage 4: G = (1/L) Dᵀ Θ.
    directions.back_project(derivs, n, 1.0 / l_n as f32, grad);
    Ok(SwMmdOutput {
        value,
        source_costs,
        cross_costs,
        target_costs,
    })
}

/// `acc_k += w · m_k` where `m_k` is the mean over atom `k`'s quantile interval of `G⁻¹`
/// (power Two) or of `sign(u_k − G⁻¹)` (power One).
#[inline]
fn accumulate_partner(
    u: SortedMeasure<f32>,
    v: SortedMeasure<f32>,
    power: CostPower,
    w: f32,
    acc: &mut [f32],
    tmp: &mut Vec<f64>,
) {
    if u.weights.is_none() && v.weights.is_none() && u.values.len() == v.values.len() {
        match power {
            CostPower::Two => acc.iter_mut().zip(v.values).for_each(|(a, &y)| *a += w * y),
            CostPower::One => acc
                .iter_mut()
                .zip(u.values.iter().zip(v.values))
                .for_each(|(a, (&x, &y))| *a += w * sign((x - y) as f64) as f32),
        }
    } else {
        tmp.clear();
        tmp.resize(u.values.len(), 0.0);
        interval_means(u, v, power, tmp);
        acc.iter_mut()
            .zip(tmp.iter())
            .for_each(|(a, &m)| *a += w * m as f32);
    }
}

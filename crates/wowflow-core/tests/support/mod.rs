//! A slow, obviously-correct `f64` implementation of the SW-MMD value and WoW gradient.
//!
//! It shares nothing with the fast engine but the 1-D transport routine (itself checked
//! against brute force): every class pair is handled separately, projections are computed
//! one dot product at a time in `f64`, and the gradient is assembled from docs/math.md §5 term by
//! term. Tests use it twice: its gradient against finite differences of its own value
//! (tight, `f64`), and the fast `f32` engine against it. Users can use it to cross-check
//! another implementation on small inputs.
//!
//! It lives with the tests (not in the library's API) because only checks need it.

use wowflow_core::cloud::LabeledCloud;
use wowflow_core::directions::Directions;
use wowflow_core::kernel::Kernel;
use wowflow_core::ot1d::wasserstein_1d_grad;

/// A cloud's structure with its particles in `f64`.
#[derive(Clone, Copy)]
struct Points<'a> {
    cloud: &'a LabeledCloud,
    values: &'a [f64],
}

impl Points<'_> {
    /// Projections of class `c` on direction `theta`, in `f64`.
    fn project(&self, c: usize, theta: &[f32]) -> Vec<f64> {
        let d = self.cloud.dim();
        self.cloud
            .class_range(c)
            .map(|i| {
                (0..d)
                    .map(|k| self.values[i * d + k] * theta[k] as f64)
                    .sum()
            })
            .collect()
    }

    fn class_weights(&self, c: usize) -> Option<Vec<f64>> {
        self.cloud
            .particle_weights()
            .map(|w| w[self.cloud.class_range(c)].to_vec())
    }
}

/// Sliced cost between class `c` of `x` and class `k` of `y` and its gradient with respect
/// to the particles of class `c` (row-major `n_c × d`).
fn sliced_pair(
    x: Points,
    c: usize,
    y: Points,
    k: usize,
    dirs: &Directions,
    kernel: &Kernel,
) -> (f64, Vec<f64>) {
    let d = x.cloud.dim();
    let (wx, wy) = (x.class_weights(c), y.class_weights(k));
    let mut value = 0.0;
    let mut grad = vec![0.0; x.cloud.class_len(c) * d];
    for l in 0..dirs.count() {
        let theta = dirs.row(l);
        let (u, v) = (x.project(c, theta), y.project(k, theta));
        let (w, g) = wasserstein_1d_grad(&u, wx.as_deref(), &v, wy.as_deref(), kernel.cost());
        value += w;
        for (i, gi) in g.iter().enumerate() {
            for j in 0..d {
                grad[i * d + j] += gi * theta[j] as f64;
            }
        }
    }
    let l = dirs.count() as f64;
    grad.iter_mut().for_each(|g| *g /= l);
    (value / l, grad)
}

/// `F = ½ MMD_K²(P, Q)` and the WoW gradient, with the given directions, entirely in `f64`.
///
/// Written as index loops over classes on purpose: it mirrors the double sums of docs/math.md §5
/// term by term, which is the point of a reference.
/// `source_points` overrides the source's particles (so finite differences can perturb them
/// in `f64`).
#[allow(clippy::needless_range_loop)]
pub fn sw_mmd_reference(
    source: &LabeledCloud,
    source_points: &[f64],
    target: &LabeledCloud,
    directions: &Directions,
    kernel: &Kernel,
) -> (f64, Vec<f64>) {
    let d = source.dim();
    let tp: Vec<f64> = target.points().iter().map(|&v| v as f64).collect();
    let sp = Points {
        cloud: source,
        values: source_points,
    };
    let tq = Points {
        cloud: target,
        values: &tp,
    };
    let (a, b) = (source.class_weights(), target.class_weights());
    let mut value = 0.0;
    let mut grad = vec![0.0; source.n_points() * d];
    for c in 0..source.n_classes() {
        let rows = source.class_range(c);
        for c2 in 0..source.n_classes() {
            let (s, g) = sliced_pair(sp, c, sp, c2, directions, kernel);
            value += 0.5 * a[c] * a[c2] * kernel.value(s);
            if c2 != c && s > 0.0 {
                // ½ Σ_{c,c'} appears twice with μ_c as an argument; K is symmetric.
                let coef = a[c] * a[c2] * kernel.derivative(s);
                for (i, gi) in g.iter().enumerate() {
                    grad[rows.start * d + i] += coef * gi;
                }
            }
        }
        for k in 0..target.n_classes() {
            let (s, g) = sliced_pair(sp, c, tq, k, directions, kernel);
            value -= a[c] * b[k] * kernel.value(s);
            if s > 0.0 {
                let coef = -a[c] * b[k] * kernel.derivative(s);
                for (i, gi) in g.iter().enumerate() {
                    grad[rows.start * d + i] += coef * gi;
                }
            }
        }
    }
    for k in 0..target.n_classes() {
        for k2 in 0..target.n_classes() {
            let (s, _) = sliced_pair(tq, k, tq, k2, directions, kernel);
            value += 0.5 * b[k] * b[k2] * kernel.value(s);
        }
    }
    // WoW rescaling: divide each particle's Euclidean gradient by its total mass a_c w_ci.
    for c in 0..source.n_classes() {
        for i in source.class_range(c) {
            let mass = a[c] * source.particle_weight(c, i);
            grad[i * d..(i + 1) * d].iter_mut().for_each(|g| *g /= mass);
        }
    }
    (value, grad)
}

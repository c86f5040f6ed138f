//! The label embedding of Hua et al. (2023): a `p`-dimensional PCA of the features of both
//! datasets, and one Gaussian `N(m_c, Σ_c)` per class in those `p` coordinates.
//!
//! The PCA is fitted once, on the union of the source and target rows (unweighted,
//! centred), so both datasets' class Gaussians live in the same coordinates and can be
//! compared by a kernel or by the Bures–Wasserstein distance.
//!
//! Only the top `p` principal axes are needed (`p = 2` in the paper), so for feature
//! dimensions above [`FULL_EIGEN_MAX_DIM`] the axes come from block subspace iteration with
//! Rayleigh–Ritz on the `d × d` covariance (one `f64` GEMM of `d × d × r` per iteration,
//! `r = p + 8`) instead of a full `O(d³)` eigendecomposition: at `d = 784` and 3000 rows the
//! covariance GEMM dominates and the fit takes a fraction of a second.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use wowflow_core::cloud::LabeledCloud;
use wowflow_core::error::{invalid, shape, CoreError, Result};
use wowflow_core::linalg::{matmul, matmul_tn, symmetrise, SymmetricEigen};

/// Up to this feature dimension the covariance is decomposed in full (exact and cheap);
/// above it, subspace iteration finds the top axes.
pub const FULL_EIGEN_MAX_DIM: usize = 128;

/// Extra columns carried by subspace iteration beyond the `p` wanted: the error shrinks by
/// `λ_{p+9} / λ_p` per iteration instead of `λ_{p+1} / λ_p`.
const OVERSAMPLING: usize = 8;

/// Iteration cap of subspace iteration. Slow convergence only happens when the spectrum is
/// nearly flat around `λ_p`, where the principal axes are ill-defined anyway; the best
/// estimate is returned then.
const MAX_ITERATIONS: usize = 1000;

/// Residual tolerance `‖C u − θ u‖ ≤ tol · θ_1` of the Ritz pairs.
const TOLERANCE: f64 = 1e-9;

/// Fixed seed of the start block: the fit is deterministic.
const START_SEED: u64 = 0x05ee_d9ca;

/// How labels are embedded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingConfig {
    /// Embedding dimension `p` (the paper uses 2).
    pub dim: usize,
    /// Ridge added to every class covariance, relative to the mean variance of the top `p`
    /// principal components (the embedding's scale). It keeps `Σ_c` SPD for classes with
    /// fewer than `p + 1` distinct points, e.g. one image per class in k-shot targets.
    pub ridge: f64,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        Self {
            dim: 2,
            ridge: 1e-3,
        }
    }
}

/// One Gaussian per class in the embedding: means `K × p`, covariances `K × p × p`
/// (row-major).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassGaussians {
    dim: usize,
    means: Vec<f64>,
    covariances: Vec<f64>,
}

impl ClassGaussians {
    /// From `K` means (`K × p`) and covariances (`K × p × p`); checks shapes, finiteness and
    /// symmetry (covariances are used as given, so pass SPD ones).
    pub fn from_parts(dim: usize, means: Vec<f64>, covariances: Vec<f64>) -> Result<Self> {
        if dim == 0 {
            return Err(invalid("embedding dimension", "p must be at least 1"));
        }
        if means.is_empty() || !means.len().is_multiple_of(dim) {
            return Err(shape(
                "class means",
                format!("K × {dim} values with K ≥ 1"),
                means.len(),
            ));
        }
        let k = means.len() / dim;
        if covariances.len() != k * dim * dim {
            return Err(shape(
                "class covariances",
                format!("{k} × {dim} × {dim} values"),
                covariances.len(),
            ));
        }
        check_finite("class Gaussians", means.iter().chain(&covariances).copied())?;
        for (c, s) in covariances.chunks_exact(dim * dim).enumerate() {
            if !is_symmetric(s, dim) {
                return Err(invalid(
                    "class covariances",
                    format!("covariance of class {c} is not symmetric"),
                ));
            }
        }
        Ok(Self {
            dim,
            means,
            covariances,
        })
    }

    /// Number of classes `K`.
    pub fn len(&self) -> usize {
        self.means.len() / self.dim
    }
    /// Always false (a constructor requires `K ≥ 1`).
    pub fn is_empty(&self) -> bool {
        self.means.is_empty()
    }
    /// Embedding dimension `p`.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Mean of class `k` (length `p`).
    pub fn mean(&self, k: usize) -> &[f64] {
        &self.means[k * self.dim..(k + 1) * self.dim]
    }
    /// Covariance of class `k` (`p × p`, row-major).
    pub fn covariance(&self, k: usize) -> &[f64] {
        let pp = self.dim * self.dim;
        &self.covariances[k * pp..(k + 1) * pp]
    }
    /// All means, `K × p` row-major.
    pub fn means(&self) -> &[f64] {
        &self.means
    }
    /// All covariances, `K × p × p` row-major.
    pub fn covariances(&self) -> &[f64] {
        &self.covariances
    }
}

/// A fitted PCA embedding `x ↦ Vᵀ (x − c)` of the features into `R^p`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelEmbedding {
    feature_dim: usize,
    dim: usize,
    center: Vec<f64>,
    /// Principal axes as the columns of a row-major `d × p` matrix.
    axes: Vec<f64>,
    /// Variances along the axes, descending.
    variances: Vec<f64>,
    /// Absolute ridge added to class covariances.
    ridge: f64,
}

impl LabelEmbedding {
    /// Fits the PCA on the union of the rows of `source` and `target` (which must share the
    /// feature dimension).
    pub fn fit(
        source: &LabeledCloud,
        target: &LabeledCloud,
        config: &EmbeddingConfig,
    ) -> Result<Self> {
        if source.dim() != target.dim() {
            return Err(CoreError::DimensionMismatch {
                what: "target dataset".into(),
                expected: source.dim(),
                got: target.dim(),
            });
        }
        Self::fit_rows(&[source.points(), target.points()], source.dim(), config)
    }

    /// Fits the PCA on the rows of several row-major `· × d` blocks taken together.
    pub fn fit_rows(blocks: &[&[f32]], d: usize, config: &EmbeddingConfig) -> Result<Self> {
        let p = config.dim;
        if d == 0 {
            return Err(CoreError::ZeroDimension);
        }
        if p == 0 || p > d {
            return Err(invalid(
                "embedding.dim",
                format!("need 1 ≤ p ≤ d = {d}, got p = {p}"),
            ));
        }
        if !(config.ridge.is_finite() && config.ridge >= 0.0) {
            return Err(invalid(
                "embedding.ridge",
                format!("must be finite and ≥ 0, got {}", config.ridge),
            ));
        }
        if let Some(b) = blocks.iter().position(|b| !b.len().is_multiple_of(d)) {
            return Err(shape(
                "feature rows",
                format!("a multiple of d = {d} values"),
                format!("{} values in block {b}", blocks[b].len()),
            ));
        }
        let n: usize = blocks.iter().map(|b| b.len() / d).sum();
        if n == 0 {
            return Err(invalid("feature rows", "PCA needs at least one row"));
        }
        check_finite(
            "feature rows",
            blocks.iter().flat_map(|b| b.iter()).map(|&v| v as f64),
        )?;
        let (center, covariance) = covariance(blocks, n, d);
        let (variances, axes) = top_eigenpairs(&covariance, d, p)?;
        let scale = variances.iter().sum::<f64>() / p as f64;
        if scale <= 0.0 {
            return Err(invalid(
                "feature rows",
                "all rows are identical: the principal axes (and the ridge's scale) are undefined",
            ));
        }
        Ok(Self {
            feature_dim: d,
            dim: p,
            center,
            axes,
            variances,
            ridge: config.ridge * scale,
        })
    }

    /// Embedding dimension `p`.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Feature dimension `d`.
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }
    /// Mean of the rows the PCA was fitted on (length `d`).
    pub fn center(&self) -> &[f64] {
        &self.center
    }
    /// Principal axes, the columns of a row-major `d × p` matrix (orthonormal; each
    /// column's largest-magnitude entry is positive, which fixes the sign).
    pub fn axes(&self) -> &[f64] {
        &self.axes
    }
    /// Variances along the axes (descending).
    pub fn variances(&self) -> &[f64] {
        &self.variances
    }
    /// The absolute ridge added to class covariances (`ridge × mean variance`).
    pub fn ridge(&self) -> f64 {
        self.ridge
    }

    /// Coordinates `Vᵀ (x − c)` of the rows of `points` (`n × d` in, `n × p` out).
    pub fn project(&self, points: &[f32]) -> Result<Vec<f64>> {
        let (d, p) = (self.feature_dim, self.dim);
        if !points.len().is_multiple_of(d) {
            return Err(shape(
                "points to embed",
                format!("a multiple of d = {d} values"),
                points.len(),
            ));
        }
        let n = points.len() / d;
        let mut out = vec![0.0; n * p];
        for (row, o) in points.chunks_exact(d).zip(out.chunks_exact_mut(p)) {
            for (k, (&x, &c)) in row.iter().zip(&self.center).enumerate() {
                let v = x as f64 - c;
                let axes_k = &self.axes[k * p..(k + 1) * p];
                o.iter_mut().zip(axes_k).for_each(|(o, &a)| *o += v * a);
            }
        }
        Ok(out)
    }

    /// The Gaussian of every class of `cloud` in the embedding: weighted (by the cloud's
    /// particle weights) mean and maximum-likelihood covariance, plus `ridge · I`.
    pub fn class_gaussians(&self, cloud: &LabeledCloud) -> Result<ClassGaussians> {
        if cloud.dim() != self.feature_dim {
            return Err(CoreError::DimensionMismatch {
                what: "dataset to embed".into(),
                expected: self.feature_dim,
                got: cloud.dim(),
            });
        }
        let p = self.dim;
        let coords = self.project(cloud.points())?;
        let (k, pp) = (cloud.n_classes(), p * p);
        let mut means = vec![0.0; k * p];
        let mut covariances = vec![0.0; k * pp];
        for c in 0..k {
            let mean = &mut means[c * p..(c + 1) * p];
            let cov = &mut covariances[c * pp..(c + 1) * pp];
            let rows = cloud.class_range(c);
            let total: f64 = rows.clone().map(|i| cloud.particle_weight(c, i)).sum();
            for i in rows.clone() {
                let w = cloud.particle_weight(c, i) / total;
                let z = &coords[i * p..(i + 1) * p];
                mean.iter_mut().zip(z).for_each(|(m, &z)| *m += w * z);
            }
            for i in rows {
                let w = cloud.particle_weight(c, i) / total;
                let z = &coords[i * p..(i + 1) * p];
                for a in 0..p {
                    for b in 0..p {
                        cov[a * p + b] += w * (z[a] - mean[a]) * (z[b] - mean[b]);
                    }
                }
            }
            for a in 0..p {
                cov[a * p + a] += self.ridge;
            }
        }
        ClassGaussians::from_parts(p, means, covariances)
    }
}

/// The first non-finite value of `values`, as a named error.
pub(crate) fn check_finite(what: &str, values: impl IntoIterator<Item = f64>) -> Result<()> {
    for (index, v) in values.into_iter().enumerate() {
        if !v.is_finite() {
            return Err(CoreError::NonFinite {
                what: what.into(),
                index,
                value: v,
            });
        }
    }
    Ok(())
}

pub(crate) fn is_symmetric(s: &[f64], p: usize) -> bool {
    (0..p).all(|a| {
        (0..a).all(|b| {
            let (x, y) = (s[a * p + b], s[b * p + a]);
            (x - y).abs() <= 1e-12 * (1.0 + x.abs().max(y.abs()))
        })
    })
}

/// Mean and covariance (normalised by `n`) of all rows of `blocks`, the covariance by one
/// `f64` GEMM `X_cᵀ X_c` of the centred rows.
fn covariance(blocks: &[&[f32]], n: usize, d: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = || blocks.iter().flat_map(|b| b.chunks_exact(d));
    let mut center = vec![0.0; d];
    for row in rows() {
        center
            .iter_mut()
            .zip(row)
            .for_each(|(c, &x)| *c += x as f64);
    }
    center.iter_mut().for_each(|c| *c /= n as f64);
    let mut centred = Vec::with_capacity(n * d);
    for row in rows() {
        centred.extend(row.iter().zip(&center).map(|(&x, &c)| x as f64 - c));
    }
    let mut cov = matmul_tn(&centred, &centred, n, d, d);
    cov.iter_mut().for_each(|v| *v /= n as f64);
    symmetrise(&mut cov, d);
    (center, cov)
}

/// The `p` largest eigenvalues (descending) of the symmetric PSD `d × d` matrix `c` and
/// their eigenvectors (columns of a row-major `d × p` matrix, sign-normalised).
pub(crate) fn top_eigenpairs(c: &[f64], d: usize, p: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let (values, mut vectors) = if d <= FULL_EIGEN_MAX_DIM {
        full_top_eigenpairs(c, d, p)?
    } else {
        subspace_iteration(c, d, p)?
    };
    normalise_signs(&mut vectors, d, p);
    Ok((values, vectors))
}

fn full_top_eigenpairs(c: &[f64], d: usize, p: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let eig = SymmetricEigen::new(c, d)?;
    Ok(descending_columns(&eig, d, p))
}

/// The last `p` eigenpairs of an ascending decomposition of order `r`, largest first.
fn descending_columns(eig: &SymmetricEigen, r: usize, p: usize) -> (Vec<f64>, Vec<f64>) {
    let values = (0..p).map(|k| eig.values[r - 1 - k]).collect();
    let mut vectors = vec![0.0; r * p];
    for row in 0..r {
        for k in 0..p {
            vectors[row * p + k] = eig.vectors[row * r + (r - 1 - k)];
        }
    }
    (values, vectors)
}

/// Block subspace iteration with Rayleigh–Ritz (Saad, *Numerical Methods for Large
/// Eigenvalue Problems*, §5.2): `Q ← orth(C Q)`, Ritz pairs from `Qᵀ C Q`, stopped when the
/// top `p` residuals fall below [`TOLERANCE`] times the largest Ritz value.
pub(crate) fn subspace_iteration(c: &[f64], d: usize, p: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let r = (p + OVERSAMPLING).min(d);
    let mut rng = ChaCha8Rng::seed_from_u64(START_SEED);
    let mut q: Vec<f64> = (0..d * r).map(|_| rng.sample(StandardNormal)).collect();
    orthonormalise(&mut q, d, r, &mut rng);
    let mut best = (Vec::new(), Vec::new());
    for _ in 0..MAX_ITERATIONS {
        let z = matmul_tn(c, &q, d, d, r); // Cᵀ Q = C Q (C symmetric)
        let mut small = matmul_tn(&q, &z, d, r, r); // Qᵀ C Q
        symmetrise(&mut small, r);
        let eig = SymmetricEigen::new(&small, r)?;
        let (theta, w) = descending_columns(&eig, r, r);
        let ritz = matmul(&q, &w, d, r, r);
        let c_ritz = matmul(&z, &w, d, r, r);
        let residual = (0..p)
            .map(|k| {
                (0..d)
                    .map(|i| (c_ritz[i * r + k] - theta[k] * ritz[i * r + k]).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .fold(0.0, f64::max);
        best = (theta[..p].to_vec(), take_columns(&ritz, d, r, p));
        if residual <= TOLERANCE * theta[0].abs() {
            break;
        }
        q = c_ritz;
        orthonormalise(&mut q, d, r, &mut rng);
    }
    Ok(best)
}

fn take_columns(a: &[f64], rows: usize, cols: usize, keep: usize) -> Vec<f64> {
    (0..rows)
        .flat_map(|i| a[i * cols..i * cols + keep].iter().copied())
        .collect()
}

/// Modified Gram–Schmidt, applied twice ("twice is enough", Giraud et al. 2005), on the
/// columns of a row-major `d × r` matrix. A column that vanishes (the block lost rank: a
/// covariance of rank below `r`) is replaced by a fresh random one.
fn orthonormalise(q: &mut [f64], d: usize, r: usize, rng: &mut ChaCha8Rng) {
    for j in 0..r {
        for attempt in 0.. {
            let before = column_norm(q, d, r, j);
            for _ in 0..2 {
                for k in 0..j {
                    let dot: f64 = (0..d).map(|i| q[i * r + k] * q[i * r + j]).sum();
                    (0..d).for_each(|i| q[i * r + j] -= dot * q[i * r + k]);
                }
            }
            let after = column_norm(q, d, r, j);
            if after > 1e-10 * before && after > 0.0 || attempt >= 8 {
                (0..d).for_each(|i| q[i * r + j] /= after.max(f64::MIN_POSITIVE));
                break;
            }
            (0..d).for_each(|i| q[i * r + j] = rng.sample(StandardNormal));
        }
    }
}

fn column_norm(q: &[f64], d: usize, r: usize, j: usize) -> f64 {
    (0..d).map(|i| q[i * r + j].powi(2)).sum::<f64>().sqrt()
}

/// Flips each column so that its largest-magnitude entry is positive: eigenvectors are
/// only defined up to sign, and a fixed sign makes the embedding reproducible.
fn normalise_signs(v: &mut [f64], d: usize, p: usize) {
    for k in 0..p {
        let pivot = (0..d)
            .map(|i| v[i * p + k])
            .max_by(|a, b| a.abs().total_cmp(&b.abs()))
            .unwrap_or(0.0);
        if pivot < 0.0 {
            (0..d).for_each(|i| v[i * p + k] = -v[i * p + k]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::Distribution;

    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
    }

    /// Orthonormal `u`, `v` in `R^d` from a seeded generator.
    fn plane(d: usize, rng: &mut ChaCha8Rng) -> (Vec<f64>, Vec<f64>) {
        let mut q: Vec<f64> = (0..d * 2).map(|_| normal(rng)).collect();
        orthonormalise(&mut q, d, 2, rng);
        (
            (0..d).map(|i| q[i * 2]).collect(),
            (0..d).map(|i| q[i * 2 + 1]).collect(),
        )
    }

    #[test]
    fn pca_recovers_a_planted_plane() {
        let (d, n) = (10, 400);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (u, v) = plane(d, &mut rng);
        let offset: Vec<f64> = (0..d).map(|_| normal(&mut rng)).collect();
        let mut rows = Vec::with_capacity(n * d);
        for _ in 0..n {
            let (a, b) = (2.0 * normal(&mut rng), normal(&mut rng));
            for k in 0..d {
                let noise = 1e-3 * normal(&mut rng);
                rows.push((offset[k] + a * u[k] + b * v[k] + noise) as f32);
            }
        }
        let (first, second) = rows.split_at(300 * d);
        let emb =
            LabelEmbedding::fit_rows(&[first, second], d, &EmbeddingConfig::default()).unwrap();
        // The fitted axes span the planted plane: the projector onto it keeps them.
        let axes = emb.axes();
        for k in 0..2 {
            let col: Vec<f64> = (0..d).map(|i| axes[i * 2 + k]).collect();
            let dot = |w: &[f64]| col.iter().zip(w).map(|(x, y)| x * y).sum::<f64>();
            let in_plane = dot(&u).powi(2) + dot(&v).powi(2);
            assert!((in_plane - 1.0).abs() < 1e-5, "axis {k}: {in_plane}");
        }
        // Variances close to the planted 4 and 1 (sampling error at n = 400 ≈ 15 %).
        let var = emb.variances();
        assert!(
            (var[0] - 4.0).abs() < 0.8 && (var[1] - 1.0).abs() < 0.25,
            "{var:?}"
        );
        assert!((emb.ridge() - 1e-3 * (var[0] + var[1]) / 2.0).abs() < 1e-15);
        // Projection of a row reproduces its in-plane coordinates.
        let z = emb.project(&rows[..d]).unwrap();
        let x0: Vec<f64> = (0..d).map(|k| rows[k] as f64 - emb.center()[k]).collect();
        let back: Vec<f64> = (0..d)
            .map(|k| z[0] * axes[k * 2] + z[1] * axes[k * 2 + 1])
            .collect();
        let err = x0
            .iter()
            .zip(&back)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-2, "reconstruction error {err}");
    }

    #[test]
    fn subspace_iteration_matches_the_full_eigensolver() {
        // A covariance with a decaying spectrum, and a rank-deficient one (4 rows < r).
        let d = 160;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for rows in [400usize, 4] {
            let x: Vec<f64> = (0..rows * d)
                .map(|i| normal(&mut rng) / (1.0 + (i % d) as f64 * 0.2))
                .collect();
            let mut c = matmul_tn(&x, &x, rows, d, d);
            symmetrise(&mut c, d);
            for p in [1usize, 2, 3] {
                let (full_val, mut full_vec) = full_top_eigenpairs(&c, d, p).unwrap();
                let (it_val, mut it_vec) = subspace_iteration(&c, d, p).unwrap();
                normalise_signs(&mut full_vec, d, p);
                normalise_signs(&mut it_vec, d, p);
                for k in 0..p {
                    let rel = (full_val[k] - it_val[k]).abs() / full_val[0];
                    assert!(rel < 1e-9, "rows {rows}, p {p}, λ_{k}: {rel}");
                    let err = (0..d)
                        .map(|i| (full_vec[i * p + k] - it_vec[i * p + k]).abs())
                        .fold(0.0, f64::max);
                    assert!(err < 1e-6, "rows {rows}, p {p}, axis {k}: {err}");
                }
            }
        }
    }

    #[test]
    fn single_row_classes_get_an_spd_covariance() {
        let src =
            LabeledCloud::uniform(2, 3, 3, (0..18).map(|v| v as f32 * 0.1).collect()).unwrap();
        let tgt = LabeledCloud::uniform(2, 1, 3, vec![0.0, 1.0, 0.0, 2.0, -1.0, 0.5]).unwrap();
        let emb = LabelEmbedding::fit(&src, &tgt, &EmbeddingConfig::default()).unwrap();
        let g = emb.class_gaussians(&tgt).unwrap();
        for k in 0..2 {
            let eig = SymmetricEigen::new(g.covariance(k), 2).unwrap();
            assert!(eig.values[0] > 0.0, "class {k}: {:?}", eig.values);
            assert!((eig.values[0] - emb.ridge()).abs() < 1e-12);
        }
        let same = LabeledCloud::uniform(1, 2, 3, vec![1.0; 6]).unwrap();
        assert!(LabelEmbedding::fit(&same, &same, &EmbeddingConfig::default()).is_err());
        let bad = EmbeddingConfig {
            dim: 4,
            ridge: 1e-3,
        };
        assert!(LabelEmbedding::fit(&src, &tgt, &bad).is_err());
    }
}

//! Small dense linear algebra in `f64` for the Gaussian (Bures–Wasserstein) parts of the
//! distances and flows (docs/math.md §6–7), and pairwise squared distances for OT cost matrices.
//!
//! The symmetric eigendecomposition is the classic Householder tridiagonalisation followed by
//! the implicit QL algorithm (`tred2`/`tql2` of EISPACK, as in JAMA): O(p³), backward stable,
//! no dependency. Matrix functions of SPD matrices (square roots, inverse square roots) are
//! taken through it, with tiny negative eigenvalues — rounding noise of a PSD matrix — clamped
//! to zero, so a rank-deficient sample covariance (fewer samples than dimensions) is handled.

use crate::error::{shape, Result};
use rayon::prelude::*;

/// Eigenvalues (ascending) and orthonormal eigenvectors of a symmetric matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct SymmetricEigen {
    /// Order `p`.
    pub dim: usize,
    /// Eigenvalues, ascending.
    pub values: Vec<f64>,
    /// Eigenvectors as the columns of a row-major `p × p` matrix: `A = V diag(λ) Vᵀ`.
    pub vectors: Vec<f64>,
}

impl SymmetricEigen {
    /// Decomposes the symmetric `p × p` row-major matrix `a` (only symmetric input is
    /// meaningful; the lower triangle is read).
    pub fn new(a: &[f64], p: usize) -> Result<Self> {
        if a.len() != p * p {
            return Err(shape(
                "symmetric matrix",
                format!("{p}×{p} values"),
                a.len(),
            ));
        }
        if p == 0 {
            return Ok(Self {
                dim: 0,
                values: Vec::new(),
                vectors: Vec::new(),
            });
        }
        let mut v = a.to_vec();
        let mut d = vec![0.0; p];
        let mut e = vec![0.0; p];
        tred2(&mut v, &mut d, &mut e, p);
        tql2(&mut v, &mut d, &mut e, p);
        // Sort ascending with vectors.
        let mut idx: Vec<usize> = (0..p).collect();
        idx.sort_by(|&i, &j| d[i].total_cmp(&d[j]));
        let values = idx.iter().map(|&i| d[i]).collect();
        let mut vectors = vec![0.0; p * p];
        for (newc, &oldc) in idx.iter().enumerate() {
            for r in 0..p {
                vectors[r * p + newc] = v[r * p + oldc];
            }
        }
        Ok(Self {
            dim: p,
            values,
            vectors,
        })
    }

    /// `V diag(f(λ)) Vᵀ`.
    pub fn apply(&self, f: impl Fn(f64) -> f64) -> Vec<f64> {
        let p = self.dim;
        let fl: Vec<f64> = self.values.iter().map(|&l| f(l)).collect();
        let mut out = vec![0.0; p * p];
        for i in 0..p {
            for j in i..p {
                let mut s = 0.0;
                for (k, &fk) in fl.iter().enumerate() {
                    s += self.vectors[i * p + k] * fk * self.vectors[j * p + k];
                }
                out[i * p + j] = s;
                out[j * p + i] = s;
            }
        }
        out
    }
}

/// Eigenvalues (ascending) of a symmetric `p × p` row-major matrix, without eigenvectors
/// (about 3× cheaper than [`SymmetricEigen::new`]).
pub fn symmetric_eigenvalues(a: &[f64], p: usize) -> Result<Vec<f64>> {
    if a.len() != p * p {
        return Err(shape(
            "symmetric matrix",
            format!("{p}×{p} values"),
            a.len(),
        ));
    }
    if p == 0 {
        return Ok(Vec::new());
    }
    let mut v = a.to_vec();
    let mut d = vec![0.0; p];
    let mut e = vec![0.0; p];
    tred2_reduce(&mut v, &mut d, &mut e, p);
    for j in 0..p {
        d[j] = v[j * p + j];
    }
    e[0] = 0.0;
    tql2_impl(&mut v, &mut d, &mut e, p, false);
    d.sort_by(f64::total_cmp);
    Ok(d)
}

/// Principal square root of a symmetric PSD matrix; eigenvalues below zero (rounding noise)
/// are clamped to zero.
pub fn sqrtm_psd(a: &[f64], p: usize) -> Result<Vec<f64>> {
    Ok(SymmetricEigen::new(a, p)?.apply(|l| l.max(0.0).sqrt()))
}

/// Replaces the square `p × p` row-major `s` by `(s + sᵀ) / 2`: matrix products of
/// symmetric factors are symmetric only up to rounding, and eigensolvers read one triangle.
pub fn symmetrise(s: &mut [f64], p: usize) {
    for a in 0..p {
        for b in 0..a {
            let v = 0.5 * (s[a * p + b] + s[b * p + a]);
            s[a * p + b] = v;
            s[b * p + a] = v;
        }
    }
}

/// How the `gemm` crate should use rayon's threads (none when only one).
pub(crate) fn gemm_parallelism() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        t => gemm::Parallelism::Rayon(t),
    }
}

/// A read-only strided view of an `f32` matrix: element `(i, j)` is
/// `data[i·row_stride + j·col_stride]`. Transposes are views with the strides swapped, so
/// every product of the networks' backward passes (`Aᵀ B`, `A Bᵀ`) is one [`sgemm`] call
/// without copies.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows × cols` matrix (`data.len() == rows · cols`).
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// The transpose of a row-major `cols × rows` matrix, read as `rows × cols`.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, 1, rows)
    }

    /// A view with explicit strides.
    ///
    /// # Panics
    /// If the last element `(rows − 1, cols − 1)` lies outside `data`: a view that could
    /// read out of bounds is a bug of the caller, never of user input.
    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
            assert!(
                last < data.len(),
                "{rows} × {cols} view with strides ({row_stride}, {col_stride}) reads past {} values",
                data.len()
            );
        }
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The view's rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The view's columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// `out (m × n, row-major, contiguous) = A B`, or `out += A B` with `accumulate`, for strided
/// views `A` (`m × k`) and `B` (`k × n`), on `threads` rayon threads (1: on the caller's
/// thread, which is what code already parallel over images wants): the one place wowflow
/// calls the `gemm` crate's `f32` kernel. The `gemm` crate splits the output, never the
/// inner dimension, so the result does not depend on `threads`.
///
/// # Panics
/// If the shapes do not chain or `out` is not `m × n`.
pub fn sgemm(out: &mut [f32], a: MatRef<'_>, b: MatRef<'_>, accumulate: bool, threads: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "A is {m} × {k} but B has {} rows", b.rows);
    assert_eq!(out.len(), m * n, "out must be {m} × {n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `out` is m × n with row stride n and column stride 1 (length asserted above);
    // the views' constructors checked that every element they address lies inside their
    // slices; `out` is a unique borrow, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `out (m × n) = A B` for row-major `A` (`m × k`, contiguous) and `B` (`k × n`) read with
/// the given strides (`(n, 1)`: row-major `B`; `(1, k)`: `B` given as its transpose), in
/// `f32`, on all of rayon's threads.
fn gemm_f32(
    a: &[f32],
    m: usize,
    k: usize,
    b: &[f32],
    n: usize,
    b_strides: (usize, usize),
    out: &mut [f32],
) {
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), n * k);
    let (b_row, b_col) = b_strides;
    assert!(
        (b_row, b_col) == (n, 1) || (b_row, b_col) == (1, k),
        "B must be read row-major or transposed"
    );
    sgemm(
        out,
        MatRef::row_major(a, m, k),
        MatRef::strided(b, k, n, b_row, b_col),
        false,
        rayon::current_num_threads(),
    );
}

/// `out (m × n) = A Bᵀ` for row-major `A` (`m × k`) and `B` (`n × k`), in `f32`:
/// the shape of every projection in wowflow (directions against points, points against
/// points).
pub fn matmul_abt_f32(a: &[f32], m: usize, b: &[f32], n: usize, k: usize, out: &mut [f32]) {
    gemm_f32(a, m, k, b, n, (1, k), out);
}

/// `A B` for row-major `A` (`m × k`) and `B` (`k × n`), in `f32`.
pub fn matmul_ab_f32(a: &[f32], m: usize, k: usize, b: &[f32], n: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; m * n];
    gemm_f32(a, m, k, b, n, (n, 1), &mut out);
    out
}

/// `Aᵀ B` for row-major `A` (`k × n`) and `B` (`k × m`), in `f64` with the `gemm` crate:
/// the Gram-type products of the Bures–Wasserstein factors.
pub fn matmul_tn(a: &[f64], b: &[f64], k: usize, n: usize, m: usize) -> Vec<f64> {
    assert_eq!(a.len(), k * n);
    assert_eq!(b.len(), k * m);
    let mut out = vec![0.0f64; n * m];
    if n == 0 || m == 0 || k == 0 {
        return out;
    }
    let par = gemm_parallelism();
    // SAFETY: out is n × m (row stride m); Aᵀ is read from the k × n buffer with row stride 1
    // and column stride n; B is k × m (row stride m); lengths asserted above, no aliasing.
    unsafe {
        gemm::gemm(
            n,
            m,
            k,
            out.as_mut_ptr(),
            1,
            m as isize,
            false,
            a.as_ptr(),
            n as isize,
            1,
            b.as_ptr(),
            1,
            m as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
    out
}

/// Row-major `n × k` times `k × m` product (small matrices; the hot paths use `gemm`).
pub fn matmul(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        for t in 0..k {
            let av = a[i * k + t];
            if av == 0.0 {
                continue;
            }
            let row = &b[t * m..(t + 1) * m];
            for (o, &bv) in out[i * m..(i + 1) * m].iter_mut().zip(row) {
                *o += av * bv;
            }
        }
    }
    out
}

/// Mean (length `d`) and covariance (`d × d`, normalised by `n`, the maximum-likelihood
/// estimate used by OTDD) of `n` rows of `points`.
pub fn mean_cov(points: &[f32], n: usize, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![0.0; d];
    for row in points.chunks_exact(d).take(n) {
        mean.iter_mut().zip(row).for_each(|(m, &x)| *m += x as f64);
    }
    mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
    let mut cov = vec![0.0; d * d];
    let mut c = vec![0.0; d];
    for row in points.chunks_exact(d).take(n) {
        c.iter_mut()
            .zip(row.iter().zip(&mean))
            .for_each(|(c, (&x, &m))| *c = x as f64 - m);
        for i in 0..d {
            let ci = c[i];
            for j in 0..=i {
                cov[i * d + j] += ci * c[j];
            }
        }
    }
    for i in 0..d {
        for j in 0..=i {
            let v = cov[i * d + j] / n.max(1) as f64;
            cov[i * d + j] = v;
            cov[j * d + i] = v;
        }
    }
    (mean, cov)
}

/// `x` with its subnormal entries (`0 < |x| < 1.2e-38`) set to zero; `x` itself (no copy)
/// when it has none.
///
/// A flow whose particles converge onto their targets drives every pixel that is zero in the
/// target through the subnormal range (an OTDD step of τ = 0.1 shrinks the gap by 0.8), and
/// x86 cores run f32 arithmetic on subnormal operands through a microcode assist: an OTDD step
/// at 5 000 × 5 000 went from 0.84 s to 12 s once the flow had converged (80 % subnormal
/// entries: 10× slower, BENCHMARKS.md). Their products are below `1.2e-38` and vanish in a
/// dot product of non-negligible vectors, so flushing them changes no distance between
/// images.
fn flush_subnormals(x: &[f32]) -> std::borrow::Cow<'_, [f32]> {
    if x.iter().any(|v| v.is_subnormal()) {
        std::borrow::Cow::Owned(
            x.iter()
                .map(|&v| if v.is_subnormal() { 0.0 } else { v })
                .collect(),
        )
    } else {
        std::borrow::Cow::Borrowed(x)
    }
}

/// Pairwise squared Euclidean distances `‖a_i − b_j‖²` (row-major `na × nb`), by one GEMM
/// (`‖a‖² + ‖b‖² − 2⟨a, b⟩`, clamped at 0). The GEMM runs in `f32` (inputs are `f32`); the
/// norms and the sum in `f64`. For OT cost matrices the cancellation of this form (relative
/// error ~1e-7 of the norms) is far below what changes an optimal plan's cost noticeably.
/// Subnormal entries enter the GEMM as zeros (see `flush_subnormals`); the norms use them as
/// they are.
pub fn pairwise_sq_dists(a: &[f32], na: usize, b: &[f32], nb: usize, d: usize) -> Vec<f64> {
    assert_eq!(a.len(), na * d);
    assert_eq!(b.len(), nb * d);
    if d <= 32 {
        // Low dimension: direct differences are exact to f32 rounding of the inputs and cheap.
        let mut out = vec![0.0f64; na * nb];
        out.par_chunks_mut(nb.max(1))
            .enumerate()
            .for_each(|(i, row)| {
                let x = &a[i * d..(i + 1) * d];
                for (j, o) in row.iter_mut().enumerate() {
                    let y = &b[j * d..(j + 1) * d];
                    *o = x
                        .iter()
                        .zip(y)
                        .map(|(&u, &v)| (u as f64 - v as f64).powi(2))
                        .sum();
                }
            });
        return out;
    }
    let mut dots = vec![0.0f32; na * nb];
    matmul_abt_f32(
        &flush_subnormals(a),
        na,
        &flush_subnormals(b),
        nb,
        d,
        &mut dots,
    );
    let norms = |x: &[f32]| -> Vec<f64> {
        x.chunks_exact(d.max(1))
            .map(|r| r.iter().map(|&v| v as f64 * v as f64).sum())
            .collect()
    };
    let (na2, nb2) = (norms(a), norms(b));
    let mut out = vec![0.0f64; na * nb];
    for i in 0..na {
        for j in 0..nb {
            out[i * nb + j] = (na2[i] + nb2[j] - 2.0 * dots[i * nb + j] as f64).max(0.0);
        }
    }
    out
}

// Householder reduction to tridiagonal form (EISPACK tred2, via JAMA). `v` is the row-major
// matrix on input and the accumulated orthogonal transform on output; `d` the diagonal and
// `e` the sub-diagonal (e[0] = 0).
fn tred2(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    tred2_reduce(v, d, e, n);
    tred2_accumulate(v, d, e, n);
}

fn tred2_reduce(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    let at = |i: usize, j: usize| i * n + j;
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
    }
    for i in (1..n).rev() {
        let mut scale = 0.0;
        let mut h = 0.0;
        for dk in d.iter().take(i) {
            scale += dk.abs();
        }
        if scale == 0.0 {
            e[i] = d[i - 1];
            for j in 0..i {
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
                v[at(j, i)] = 0.0;
            }
        } else {
            for dk in d.iter_mut().take(i) {
                *dk /= scale;
                h += *dk * *dk;
            }
            let mut f = d[i - 1];
            let mut g = h.sqrt();
            if f > 0.0 {
                g = -g;
            }
            e[i] = scale * g;
            h -= f * g;
            d[i - 1] = f - g;
            for ej in e.iter_mut().take(i) {
                *ej = 0.0;
            }
            for j in 0..i {
                f = d[j];
                v[at(j, i)] = f;
                g = e[j] + v[at(j, j)] * f;
                for k in j + 1..i {
                    g += v[at(k, j)] * d[k];
                    e[k] += v[at(k, j)] * f;
                }
                e[j] = g;
            }
            f = 0.0;
            for j in 0..i {
                e[j] /= h;
                f += e[j] * d[j];
            }
            let hh = f / (h + h);
            for j in 0..i {
                e[j] -= hh * d[j];
            }
            for j in 0..i {
                f = d[j];
                g = e[j];
                for k in j..i {
                    v[at(k, j)] -= f * e[k] + g * d[k];
                }
                d[j] = v[at(i - 1, j)];
                v[at(i, j)] = 0.0;
            }
        }
        d[i] = h;
    }
}

fn tred2_accumulate(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    let at = |i: usize, j: usize| i * n + j;
    for i in 0..n - 1 {
        v[at(n - 1, i)] = v[at(i, i)];
        v[at(i, i)] = 1.0;
        let h = d[i + 1];
        if h != 0.0 {
            for k in 0..=i {
                d[k] = v[at(k, i + 1)] / h;
            }
            for j in 0..=i {
                let mut g = 0.0;
                for k in 0..=i {
                    g += v[at(k, i + 1)] * v[at(k, j)];
                }
                for k in 0..=i {
                    v[at(k, j)] -= g * d[k];
                }
            }
        }
        for k in 0..=i {
            v[at(k, i + 1)] = 0.0;
        }
    }
    for j in 0..n {
        d[j] = v[at(n - 1, j)];
        v[at(n - 1, j)] = 0.0;
    }
    v[at(n - 1, n - 1)] = 1.0;
    e[0] = 0.0;
}

// Symmetric tridiagonal QL with implicit shifts (EISPACK tql2, via JAMA).
fn tql2(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize) {
    tql2_impl(v, d, e, n, true);
}

fn tql2_impl(v: &mut [f64], d: &mut [f64], e: &mut [f64], n: usize, vectors: bool) {
    let at = |i: usize, j: usize| i * n + j;
    for i in 1..n {
        e[i - 1] = e[i];
    }
    e[n - 1] = 0.0;
    let mut f = 0.0;
    let mut tst1: f64 = 0.0;
    let eps = f64::EPSILON;
    for l in 0..n {
        tst1 = tst1.max(d[l].abs() + e[l].abs());
        let mut m = l;
        while m < n - 1 && e[m].abs() > eps * tst1 {
            m += 1;
        }
        if m > l {
            // 60 sweeps per eigenvalue is far beyond what QL needs (typically 2–3); the cap
            // only guards against NaN input looping forever.
            for _ in 0..60 {
                let mut g = d[l];
                let mut p = (d[l + 1] - g) / (2.0 * e[l]);
                let mut r = p.hypot(1.0);
                if p < 0.0 {
                    r = -r;
                }
                d[l] = e[l] / (p + r);
                d[l + 1] = e[l] * (p + r);
                let dl1 = d[l + 1];
                let mut h = g - d[l];
                for di in d.iter_mut().skip(l + 2) {
                    *di -= h;
                }
                f += h;
                p = d[m];
                let mut c = 1.0;
                let mut c2 = c;
                let mut c3 = c;
                let el1 = e[l + 1];
                let mut s = 0.0;
                let mut s2 = 0.0;
                for i in (l..m).rev() {
                    c3 = c2;
                    c2 = c;
                    s2 = s;
                    g = c * e[i];
                    h = c * p;
                    r = p.hypot(e[i]);
                    e[i + 1] = s * r;
                    s = e[i] / r;
                    c = p / r;
                    p = c * d[i] - s * g;
                    d[i + 1] = h + s * (c * g + s * d[i]);
                    for k in 0..if vectors { n } else { 0 } {
                        h = v[at(k, i + 1)];
                        v[at(k, i + 1)] = s * v[at(k, i)] + c * h;
                        v[at(k, i)] = c * v[at(k, i)] - s * h;
                    }
                }
                p = -s * s2 * c3 * el1 * e[l] / dl1;
                e[l] = s * p;
                d[l] = c * p;
                if e[l].abs() <= eps * tst1 || !e[l].is_finite() {
                    break;
                }
            }
        }
        d[l] += f;
        e[l] = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_sym(p: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut a = vec![0.0; p * p];
        for i in 0..p {
            for j in 0..=i {
                let v: f64 = rng.random_range(-1.0..1.0);
                a[i * p + j] = v;
                a[j * p + i] = v;
            }
        }
        a
    }

    #[test]
    fn eigen_reconstructs_and_is_orthonormal() {
        for &p in &[1usize, 2, 3, 7, 40] {
            let a = random_sym(p, p as u64);
            let eig = SymmetricEigen::new(&a, p).unwrap();
            let back = eig.apply(|l| l);
            let err = a
                .iter()
                .zip(&back)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-12, "p = {p}: reconstruction error {err}");
            let v = &eig.vectors;
            for i in 0..p {
                for j in 0..p {
                    let dot: f64 = (0..p).map(|k| v[k * p + i] * v[k * p + j]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-12);
                }
            }
            assert!(eig.values.windows(2).all(|w| w[0] <= w[1]));
            let only = symmetric_eigenvalues(&a, p).unwrap();
            for (x, y) in only.iter().zip(&eig.values) {
                assert!((x - y).abs() < 1e-12, "eigenvalues-only path: {x} vs {y}");
            }
        }
    }

    #[test]
    fn sqrtm_squares_back_and_clamps_rank_deficiency() {
        // Rank-2 PSD matrix in R^4: its square root must square back to it.
        let b = [1.0, 2.0, 0.0, -1.0, 0.5, 0.0, 1.0, 1.0];
        let a = matmul(
            &[b[0], b[4], b[1], b[5], b[2], b[6], b[3], b[7]],
            &b,
            4,
            2,
            4,
        );
        let s = sqrtm_psd(&a, 4).unwrap();
        let s2 = matmul(&s, &s, 4, 4, 4);
        for (x, y) in a.iter().zip(&s2) {
            assert!((x - y).abs() < 1e-10, "{x} vs {y}");
        }
    }

    #[test]
    fn pairwise_distances_match_direct() {
        let a: Vec<f32> = (0..15).map(|v| (v as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..10).map(|v| (v as f32 * 0.91).cos()).collect();
        let dd = pairwise_sq_dists(&a, 3, &b, 2, 5);
        for i in 0..3 {
            for j in 0..2 {
                let direct: f64 = (0..5)
                    .map(|k| ((a[i * 5 + k] - b[j * 5 + k]) as f64).powi(2))
                    .sum();
                assert!((dd[i * 2 + j] - direct).abs() < 1e-5);
            }
        }
    }

    /// Subnormal entries (a converged flow's zero pixels on their way down) enter the GEMM as
    /// zeros: the distances are those of the flushed inputs bit for bit, within f32 rounding
    /// of the direct sum, and nothing is copied when there are none.
    #[test]
    fn subnormal_entries_do_not_change_the_distances() {
        let d = 64; // the GEMM route (d > 32)
        let (na, nb) = (7, 5);
        let mut a: Vec<f32> = (0..na * d)
            .map(|v| (v as f32 * 0.37).sin().max(0.0))
            .collect();
        let b: Vec<f32> = (0..nb * d)
            .map(|v| (v as f32 * 0.91).cos().max(0.0))
            .collect();
        let flushed = a.clone();
        for (k, v) in a.iter_mut().enumerate() {
            if *v == 0.0 {
                *v = f32::from_bits(1 + k as u32 % 1000); // subnormal, > 0
            }
        }
        assert!(a.iter().filter(|v| v.is_subnormal()).count() > na * d / 4);
        let with = pairwise_sq_dists(&a, na, &b, nb, d);
        let without = pairwise_sq_dists(&flushed, na, &b, nb, d);
        assert_eq!(with, without);
        for i in 0..na {
            for j in 0..nb {
                let direct: f64 = (0..d)
                    .map(|k| (a[i * d + k] as f64 - b[j * d + k] as f64).powi(2))
                    .sum();
                assert!((with[i * nb + j] - direct).abs() < 1e-4 * direct.max(1.0));
            }
        }
        assert!(matches!(
            flush_subnormals(&b),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(flush_subnormals(&a).iter().all(|v| !v.is_subnormal()));
    }
}

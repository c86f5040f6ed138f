//! Unbalanced classes (issue 16): every dataset distance and one step of every flow method,
//! on datasets whose classes differ in size, under both class weightings
//! ([`ClassWeighting::Uniform`], `a_c = 1/C`, and [`ClassWeighting::Proportional`],
//! `a_c = n_c/N`), checked against an independent computation written here from the
//! definitions of docs/math.md §1, §2, §5, §6, §7.
//!
//! The independent side uses none of wowflow's OT code. Its exact solver reduces OT between
//! histograms with *rational* masses to an assignment problem: with masses `s_i / S` and
//! `t_j / T`, every atom is replicated so that both sides become `L = lcm(S, T)` atoms of mass
//! `1/L`, and the `L × L` assignment is solved by the Hungarian algorithm (Kuhn–Munkres with
//! potentials, O(L³), in `f64`); the plan is the replica assignment summed back and divided by
//! `L`. The masses fed to it are the exact rationals of the definitions (`1/(C n_c)` per point
//! for uniform class weights, `1/N` for proportional ones), never the `f64` weights of the
//! clouds. The solver itself is checked against enumeration of all permutations first.
//!
//! What is checked, and how:
//! - the solver: Hungarian against brute force (`L ≤ 7`), the rational reduction against brute
//!   force on the replicated problem, and a 1-D case worked out by hand;
//! - WoW, OTDD (exact and Gaussian label costs), sliced WoW and SW-MMD values (and their
//!   inner cost matrices and OTDD plans) against the independent computation, with both
//!   weightings; OTDD with proportional weights is the definition with mass `1/N` per point
//!   and differs from the class-balanced value;
//! - on balanced classes both weightings give bit-identical class weights, distances, values,
//!   gradients and steps;
//! - one evaluation (value and WoW gradient `∂F/∂x_i / p_i`) of `OtddFlow`, `SwMmd`,
//!   `EuclidMmd`, `DistributionMatching`, `JointOtdd` and `ProductMmdFlow` against the
//!   independent value and gradient (closed forms, envelope-theorem gradients from the
//!   independent plans, or central finite differences of the independent value).

// Index loops read like the sums of the definitions they transcribe.
#![allow(clippy::needless_range_loop)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use wowflow_baselines::{
    Bandwidth, BandwidthSpec, DistributionMatching, EmbeddingConfig, EuclidMmd, JointOtdd,
    JointOtddConfig, LabelDynamics, OtddFlow, ProductMmdConfig, ProductMmdFlow,
};
use wowflow_core::{
    ClassWeighting, DirectionSampler, Directions, Kernel, LabeledCloud, Objective, SwMmd,
};
use wowflow_ot::OtSolver;
use wowflow_ot::{otdd, sliced_wow_distance, sw_mmd_distance, wow_distance, LabelCost, OtddConfig};

const WEIGHTINGS: [ClassWeighting; 2] = [ClassWeighting::Uniform, ClassWeighting::Proportional];

// ---------------------------------------------------------------------------------------
// The independent exact OT solver
// ---------------------------------------------------------------------------------------

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

/// The largest replicated problem the tests solve (O(L³) each).
const MAX_ATOMS: u64 = 600;

/// Kuhn–Munkres with potentials (shortest augmenting paths), O(n³), on a dense row-major
/// `n × n` cost. Returns `assign[row] = column` of a minimum-cost perfect matching.
fn hungarian(n: usize, cost: &[f64]) -> Vec<usize> {
    let (mut u, mut v) = (vec![0.0f64; n + 1], vec![0.0f64; n + 1]);
    // `p[j]`: the row (1-based) matched to column `j`; column 0 is the virtual start.
    let (mut p, mut way) = (vec![0usize; n + 1], vec![0usize; n + 1]);
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let (mut delta, mut j1) = (f64::INFINITY, 0);
            for j in 1..=n {
                if !used[j] {
                    let cur = cost[(i0 - 1) * n + j - 1] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        // Augment along the alternating path back to the virtual column.
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut assign = vec![0; n];
    for j in 1..=n {
        assign[p[j] - 1] = j - 1;
    }
    assign
}

/// A mass `num / den`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Q(u64, u64);

impl Q {
    fn f64(self) -> f64 {
        self.0 as f64 / self.1 as f64
    }
}

/// An exact OT solution: cost and `n × m` plan (row-major).
struct Ot {
    cost: f64,
    plan: Vec<f64>,
}

/// Integer counts over the common denominator (which they must sum to: masses sum to 1).
fn integer_counts(h: &[Q]) -> (Vec<u64>, u64) {
    let den = h.iter().fold(1, |l, q| lcm(l, q.1));
    let counts: Vec<u64> = h.iter().map(|q| q.0 * (den / q.1)).collect();
    assert_eq!(counts.iter().sum::<u64>(), den, "masses must sum to 1");
    (counts, den)
}

/// Exact OT between rational histograms `a` (`n`) and `b` (`m`) with cost `n × m`, by
/// replication to `L` uniform atoms per side and the Hungarian algorithm.
fn exact_ot_q(a: &[Q], b: &[Q], cost: &[f64]) -> Ot {
    let (n, m) = (a.len(), b.len());
    assert_eq!(cost.len(), n * m);
    let (sa, da) = integer_counts(a);
    let (sb, db) = integer_counts(b);
    let l = lcm(da, db);
    assert!(l <= MAX_ATOMS, "replicated problem too large: L = {l}");
    let replicas = |counts: &[u64], den: u64| -> Vec<usize> {
        counts
            .iter()
            .enumerate()
            .flat_map(|(i, &s)| std::iter::repeat_n(i, (s * (l / den)) as usize))
            .collect()
    };
    let (rows, cols) = (replicas(&sa, da), replicas(&sb, db));
    let l = l as usize;
    assert_eq!((rows.len(), cols.len()), (l, l));
    let c: Vec<f64> = rows
        .iter()
        .flat_map(|&i| cols.iter().map(move |&j| cost[i * m + j]))
        .collect();
    let assign = hungarian(l, &c);
    let mut plan = vec![0.0; n * m];
    let mut total = 0.0;
    for (r, &k) in assign.iter().enumerate() {
        let (i, j) = (rows[r], cols[k]);
        plan[i * m + j] += 1.0;
        total += cost[i * m + j];
    }
    plan.iter_mut().for_each(|v| *v /= l as f64);
    Ot {
        cost: total / l as f64,
        plan,
    }
}

/// Minimum over all permutations of `Σ_r cost[r, σ(r)]` (brute force, small `n`).
fn brute_force_assignment(n: usize, cost: &[f64]) -> f64 {
    fn go(row: usize, n: usize, cost: &[f64], used: &mut [bool], acc: f64, best: &mut f64) {
        if row == n {
            *best = best.min(acc);
            return;
        }
        for j in 0..n {
            if !used[j] {
                used[j] = true;
                go(row + 1, n, cost, used, acc + cost[row * n + j], best);
                used[j] = false;
            }
        }
    }
    let mut best = f64::INFINITY;
    go(0, n, cost, &mut vec![false; n], 0.0, &mut best);
    best
}

// ---------------------------------------------------------------------------------------
// Data and the measures of the definitions
// ---------------------------------------------------------------------------------------

/// Gaussian blobs, one per class, with a class-dependent shift and linear mix (so class
/// covariances differ and are not diagonal); ids `0..C`, uniform class weights.
fn blobs(rng: &mut ChaCha8Rng, sizes: &[usize], d: usize) -> LabeledCloud {
    let mut points = Vec::new();
    let mut offsets = vec![0];
    for (c, &n) in sizes.iter().enumerate() {
        let shift: Vec<f32> = (0..d).map(|_| rng.random_range(-2.0..2.0)).collect();
        let mix: Vec<f32> = (0..d * d)
            .map(|k| rng.random_range(-0.5..0.5) + if k % (d + 1) == 0 { 0.7 } else { 0.0 })
            .collect();
        for _ in 0..n {
            let z: Vec<f32> = (0..d).map(|_| rng.sample(StandardNormal)).collect();
            for a in 0..d {
                points.push(shift[a] + (0..d).map(|b| mix[a * d + b] * z[b]).sum::<f32>());
            }
        }
        offsets.push(offsets[c] + n);
    }
    LabeledCloud::from_parts(points, d, offsets, (0..sizes.len() as i64).collect()).unwrap()
}

/// The points of a cloud in `f64`, by class (the independent side reads nothing else).
#[derive(Debug, Clone)]
struct Set {
    d: usize,
    classes: Vec<Vec<f64>>,
}

impl Set {
    fn of(cloud: &LabeledCloud) -> Self {
        Self {
            d: cloud.dim(),
            classes: (0..cloud.n_classes())
                .map(|c| cloud.class_points(c).iter().map(|&v| v as f64).collect())
                .collect(),
        }
    }
    fn len(&self, c: usize) -> usize {
        self.classes[c].len() / self.d
    }
    fn sizes(&self) -> Vec<usize> {
        (0..self.classes.len()).map(|c| self.len(c)).collect()
    }
    fn n_points(&self) -> usize {
        self.sizes().iter().sum()
    }
    fn point(&self, c: usize, i: usize) -> &[f64] {
        &self.classes[c][i * self.d..(i + 1) * self.d]
    }
    /// `(class, index in class)` of every row, in row order.
    fn rows(&self) -> Vec<(usize, usize)> {
        (0..self.classes.len())
            .flat_map(|c| (0..self.len(c)).map(move |i| (c, i)))
            .collect()
    }
    /// All points, row-major, row order.
    fn flat(&self) -> Vec<f64> {
        self.classes.concat()
    }
}

/// `a_c` as exact rationals.
fn class_weights_q(sizes: &[usize], w: ClassWeighting) -> Vec<Q> {
    let (c, n) = (sizes.len() as u64, sizes.iter().sum::<usize>() as u64);
    sizes
        .iter()
        .map(|&nc| match w {
            ClassWeighting::Uniform => Q(1, c),
            ClassWeighting::Proportional => Q(nc as u64, n),
        })
        .collect()
}

/// The mass `a_c / n_c` of every point (uniform particle weights), row order, exact.
fn point_masses_q(sizes: &[usize], w: ClassWeighting) -> Vec<Q> {
    let (c, n) = (sizes.len() as u64, sizes.iter().sum::<usize>() as u64);
    sizes
        .iter()
        .flat_map(|&nc| {
            let q = match w {
                ClassWeighting::Uniform => Q(1, c * nc as u64),
                ClassWeighting::Proportional => Q(1, n),
            };
            std::iter::repeat_n(q, nc)
        })
        .collect()
}

fn to_f64(q: &[Q]) -> Vec<f64> {
    q.iter().map(|q| q.f64()).collect()
}

fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Exact `W_2²` between class `c` of `p` and class `k` of `q` (uniform particle masses).
fn class_w2(p: &Set, c: usize, q: &Set, k: usize) -> Ot {
    let (n, m) = (p.len(c), q.len(k));
    let cost: Vec<f64> = (0..n * m)
        .map(|ij| sq_dist(p.point(c, ij / m), q.point(k, ij % m)))
        .collect();
    exact_ot_q(&vec![Q(1, n as u64); n], &vec![Q(1, m as u64); m], &cost)
}

/// `W_2²` for every class pair (`C × K`) with the inner plans.
fn class_w2_all(p: &Set, q: &Set) -> (Vec<f64>, Vec<Vec<f64>>) {
    let (cn, kn) = (p.classes.len(), q.classes.len());
    let solved: Vec<Ot> = (0..cn * kn)
        .map(|ck| class_w2(p, ck / kn, q, ck % kn))
        .collect();
    (
        solved.iter().map(|s| s.cost).collect(),
        solved.into_iter().map(|s| s.plan).collect(),
    )
}

/// OTDD² by the definition: ground cost `‖x − x'‖² + λ L[y, y']` between labeled points with
/// masses `a_c/n_c` and `b_k/m_k`; returns the `N × M` plan.
fn otdd_indep(p: &Set, wp: ClassWeighting, q: &Set, wq: ClassWeighting, labels: &[f64]) -> Ot {
    exact_ot_q(
        &point_masses_q(&p.sizes(), wp),
        &point_masses_q(&q.sizes(), wq),
        &otdd_ground(p, q, labels),
    )
}

/// The `N × M` OTDD ground cost `‖x_i − y_j‖² + L[c(i), k(j)]`.
fn otdd_ground(p: &Set, q: &Set, labels: &[f64]) -> Vec<f64> {
    let kn = q.classes.len();
    let rq = q.rows();
    let mut cost = Vec::new();
    for (c, i) in p.rows() {
        for &(k, j) in &rq {
            cost.push(sq_dist(p.point(c, i), q.point(k, j)) + labels[c * kn + k]);
        }
    }
    cost
}

// 2 × 2 matrices, row-major.
type M2 = [f64; 4];
const I2: M2 = [1.0, 0.0, 0.0, 1.0];

fn mul(a: &M2, b: &M2) -> M2 {
    [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
    ]
}
fn tr(a: &M2) -> f64 {
    a[0] + a[3]
}
fn det(a: &M2) -> f64 {
    a[0] * a[3] - a[1] * a[2]
}
fn inv(a: &M2) -> M2 {
    let d = det(a);
    [a[3] / d, -a[1] / d, -a[2] / d, a[0] / d]
}
fn lin(x: f64, a: &M2, y: f64, b: &M2) -> M2 {
    [0, 1, 2, 3].map(|k| x * a[k] + y * b[k])
}
/// `M^{1/2}` of a 2 × 2 SPD matrix: `(M + √det M · I) / √(tr M + 2 √det M)`.
fn sqrt_spd(m: &M2) -> M2 {
    let s = det(m).sqrt();
    let t = (tr(m) + 2.0 * s).sqrt();
    lin(1.0 / t, m, s / t, &I2)
}
/// `Vᵀ A V` for the `2 × 2` matrix `V` (row-major).
fn conj(v: &M2, a: &M2) -> M2 {
    let vt = [v[0], v[2], v[1], v[3]];
    mul(&vt, &mul(a, v))
}
fn vt_x(v: &M2, x: &[f64]) -> [f64; 2] {
    [v[0] * x[0] + v[2] * x[1], v[1] * x[0] + v[3] * x[1]]
}

/// Maximum-likelihood mean and covariance of class `c` (normalised by `n_c`), `d = 2`,
/// plus `ridge · I`.
fn gaussian2(s: &Set, c: usize, ridge: f64) -> ([f64; 2], M2) {
    assert_eq!(s.d, 2);
    let n = s.len(c) as f64;
    let mut m = [0.0; 2];
    for i in 0..s.len(c) {
        let x = s.point(c, i);
        m[0] += x[0] / n;
        m[1] += x[1] / n;
    }
    let mut cov = [0.0; 4];
    for i in 0..s.len(c) {
        let x = s.point(c, i);
        let z = [x[0] - m[0], x[1] - m[1]];
        for a in 0..2 {
            for b in 0..2 {
                cov[a * 2 + b] += z[a] * z[b] / n;
            }
        }
    }
    cov[0] += ridge;
    cov[3] += ridge;
    (m, cov)
}

/// Bures–Wasserstein `W_2²` between 2-D Gaussians, closed form:
/// `tr (A^{1/2} B A^{1/2})^{1/2} = √(tr AB + 2 √det AB)`.
fn bw2(ma: &[f64; 2], a: &M2, mb: &[f64; 2], b: &M2) -> f64 {
    let ab = mul(a, b);
    let cross = (tr(&ab) + 2.0 * (det(a) * det(b)).sqrt()).sqrt();
    sq_dist(ma, mb) + tr(a) + tr(b) - 2.0 * cross
}

/// Monge map `T = A^{-1/2} (A^{1/2} B A^{1/2})^{1/2} A^{-1/2}` from `N(0, A)` to `N(0, B)`.
fn monge2(a: &M2, b: &M2) -> M2 {
    let ra = sqrt_spd(a);
    let ria = inv(&ra);
    let mid = sqrt_spd(&mul(&ra, &mul(b, &ra)));
    mul(&ria, &mul(&mid, &ria))
}

/// `C × K` Bures–Wasserstein label costs between the classes' Gaussians (`d = 2`).
fn gaussian_label_costs(p: &Set, q: &Set, ridge: f64) -> Vec<f64> {
    let (cn, kn) = (p.classes.len(), q.classes.len());
    (0..cn * kn)
        .map(|ck| {
            let (ma, a) = gaussian2(p, ck / kn, ridge);
            let (mb, b) = gaussian2(q, ck % kn, ridge);
            bw2(&ma, &a, &mb, &b)
        })
        .collect()
}

/// Projections `⟨θ_l, x⟩` of every class on every direction: `[l][c]` → values.
fn project(s: &Set, dirs: &[f64], count: usize) -> Vec<Vec<Vec<f64>>> {
    (0..count)
        .map(|l| {
            let th = &dirs[l * s.d..(l + 1) * s.d];
            (0..s.classes.len())
                .map(|c| {
                    (0..s.len(c))
                        .map(|i| th.iter().zip(s.point(c, i)).map(|(t, x)| t * x).sum())
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Exact 1-D `W_2²` between uniform measures on `u` and `v` (sizes may differ), by the
/// independent solver.
fn w2_1d(u: &[f64], v: &[f64]) -> f64 {
    let (n, m) = (u.len(), v.len());
    let cost: Vec<f64> = (0..n * m)
        .map(|ij| (u[ij / m] - v[ij % m]).powi(2))
        .collect();
    exact_ot_q(&vec![Q(1, n as u64); n], &vec![Q(1, m as u64); m], &cost).cost
}

/// `SW_2²` between every class of `p` and every class of `q` (`C × K`), averaged over the
/// given directions.
fn sliced_costs(pp: &[Vec<Vec<f64>>], qp: &[Vec<Vec<f64>>]) -> Vec<f64> {
    let (cn, kn, l) = (pp[0].len(), qp[0].len(), pp.len());
    (0..cn * kn)
        .map(|ck| {
            (0..l)
                .map(|t| w2_1d(&pp[t][ck / kn], &qp[t][ck % kn]))
                .sum::<f64>()
                / l as f64
        })
        .collect()
}

/// `F = ½ MMD²` with the Riesz kernel `K = −SW_2` (docs/math.md §5).
fn sw_mmd_half_sq(p: &Set, a: &[f64], q: &Set, b: &[f64], dirs: &[f64], count: usize) -> f64 {
    let (pp, qp) = (project(p, dirs, count), project(q, dirs, count));
    let k = |s: &[f64]| -> Vec<f64> { s.iter().map(|&s| -s.max(0.0).sqrt()).collect() };
    let (kpp, kpq, kqq) = (
        k(&sliced_costs(&pp, &pp)),
        k(&sliced_costs(&pp, &qp)),
        k(&sliced_costs(&qp, &qp)),
    );
    let (cn, kn) = (a.len(), b.len());
    let mut mmd2 = 0.0;
    for c in 0..cn {
        for c2 in 0..cn {
            mmd2 += a[c] * a[c2] * kpp[c * cn + c2];
        }
        for t in 0..kn {
            mmd2 -= 2.0 * a[c] * b[t] * kpq[c * kn + t];
        }
    }
    for t in 0..kn {
        for t2 in 0..kn {
            mmd2 += b[t] * b[t2] * kqq[t * kn + t2];
        }
    }
    0.5 * mmd2
}

// ---------------------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------------------

fn assert_rel(what: &str, got: f64, want: f64, rel: f64) {
    assert!(
        (got - want).abs() <= rel * want.abs().max(1e-300),
        "{what}: wowflow {got:.15e} vs independent {want:.15e} (rel. diff {:.3e})",
        (got - want).abs() / want.abs()
    );
}

/// `max |got − want| ≤ rel · max |want|`.
fn assert_vec<T: Copy + Into<f64>>(what: &str, got: &[T], want: &[f64], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let (mut worst, mut at) = (0.0f64, 0);
    for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
        let e = (g.into() - w).abs();
        if e > worst {
            worst = e;
            at = k;
        }
    }
    assert!(
        worst <= rel * scale.max(1e-300),
        "{what}: entry {at}: wowflow {} vs independent {} (max error {worst:.3e}, scale {scale:.3e})",
        got[at].into(),
        want[at]
    );
}

fn differ(what: &str, x: f64, y: f64) {
    assert!(
        (x - y).abs() > 1e-3 * x.abs().max(y.abs()),
        "{what}: uniform and proportional weights should differ on unbalanced classes, got {x} and {y}"
    );
}

fn weighted(cloud: &LabeledCloud, w: ClassWeighting) -> LabeledCloud {
    cloud.clone().with_class_weighting(w)
}

fn eval(obj: &mut dyn Objective, cloud: &LabeledCloud) -> (f64, Vec<f32>) {
    let mut grad = vec![0.0f32; cloud.points().len()];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let v = obj.value_and_wow_grad(cloud, &mut rng, &mut grad).unwrap();
    (v, grad)
}

/// Source 17/23/11 and target 19/14 (proportional OTDD: `L = lcm(51, 33) = 561`).
const BIG: ([usize; 3], [usize; 2]) = ([17, 23, 11], [19, 14]);
/// Source 6/4/3 and target 5/3 (uniform OTDD: `L = lcm(36, 30) = 180`).
const SMALL: ([usize; 3], [usize; 2]) = ([6, 4, 3], [5, 3]);
/// For the sliced tests, where one OT is solved per class pair and direction.
const SLICED: ([usize; 3], [usize; 2]) = ([7, 5, 3], [6, 4]);

fn pair(sizes: ([usize; 3], [usize; 2]), d: usize, seed: u64) -> (LabeledCloud, LabeledCloud) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (blobs(&mut rng, &sizes.0, d), blobs(&mut rng, &sizes.1, d))
}

// ---------------------------------------------------------------------------------------
// 1. The solver
// ---------------------------------------------------------------------------------------

#[test]
fn independent_solver_matches_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // Hungarian against all permutations.
    for n in 1..=7 {
        for _ in 0..20 {
            let cost: Vec<f64> = (0..n * n).map(|_| rng.random_range(0.0..10.0)).collect();
            let assign = hungarian(n, &cost);
            let mut seen = assign.clone();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "not a permutation");
            let got: f64 = assign
                .iter()
                .enumerate()
                .map(|(i, &j)| cost[i * n + j])
                .sum();
            let want = brute_force_assignment(n, &cost);
            assert!((got - want).abs() < 1e-12, "n = {n}: {got} vs {want}");
        }
    }
    // The rational reduction: replicated problems of L ≤ 7, against brute force on the
    // replicated cost; the plan has the exact marginals.
    let cases: [(&[Q], &[Q]); 4] = [
        (&[Q(1, 3), Q(2, 3)], &[Q(1, 2), Q(1, 2)]),
        (&[Q(1, 6), Q(1, 3), Q(1, 2)], &[Q(1, 2), Q(1, 3), Q(1, 6)]),
        (&[Q(2, 7), Q(3, 7), Q(2, 7)], &[Q(4, 7), Q(3, 7)]),
        (&[Q(1, 5), Q(1, 5), Q(3, 5)], &[Q(1, 1)]),
    ];
    for (a, b) in cases {
        for _ in 0..10 {
            let (n, m) = (a.len(), b.len());
            let cost: Vec<f64> = (0..n * m).map(|_| rng.random_range(0.0..10.0)).collect();
            let ot = exact_ot_q(a, b, &cost);
            let (sa, da) = integer_counts(a);
            let (sb, db) = integer_counts(b);
            let l = lcm(da, db) as usize;
            let rows: Vec<usize> = (0..n)
                .flat_map(|i| std::iter::repeat_n(i, sa[i] as usize * l / da as usize))
                .collect();
            let cols: Vec<usize> = (0..m)
                .flat_map(|j| std::iter::repeat_n(j, sb[j] as usize * l / db as usize))
                .collect();
            let c = &cost;
            let rep: Vec<f64> = rows
                .iter()
                .flat_map(|&i| cols.iter().map(move |&j| c[i * m + j]))
                .collect();
            let want = brute_force_assignment(l, &rep) / l as f64;
            assert!(
                (ot.cost - want).abs() < 1e-12,
                "{a:?} {b:?}: {} vs {want}",
                ot.cost
            );
            let planned: f64 = ot.plan.iter().zip(&cost).map(|(p, c)| p * c).sum();
            assert!((planned - ot.cost).abs() < 1e-12);
            for i in 0..n {
                let row: f64 = ot.plan[i * m..(i + 1) * m].iter().sum();
                assert!((row - a[i].f64()).abs() < 1e-15);
            }
            for j in 0..m {
                let col: f64 = (0..n).map(|i| ot.plan[i * m + j]).sum();
                assert!((col - b[j].f64()).abs() < 1e-15);
            }
        }
    }
    // A 1-D case by hand (quantile functions): uniform on {0, 1, 2} against uniform on
    // {0, 3}: pieces [0, ⅓) 0↔0, [⅓, ½) 1↔0, [½, ⅔) 1↔3, [⅔, 1) 2↔3, so
    // W_2² = ⅙·1 + ⅙·4 + ⅓·1 = 7/6.
    assert!((w2_1d(&[2.0, 0.0, 1.0], &[3.0, 0.0]) - 7.0 / 6.0).abs() < 1e-15);
}

// ---------------------------------------------------------------------------------------
// 2. Distances
// ---------------------------------------------------------------------------------------

/// WoW distance: inner `W_2²` between classes (uniform masses `1/n_c`, `1/m_k`) and the
/// outer OT between class weights, both by the independent solver.
#[test]
fn wow_distance_matches_independent_solver() {
    let (p0, q0) = pair(BIG, 3, 10);
    let (ps, qs) = (Set::of(&p0), Set::of(&q0));
    let (inner, _) = class_w2_all(&ps, &qs);
    let mut values = Vec::new();
    for w in WEIGHTINGS {
        let (p, q) = (weighted(&p0, w), weighted(&q0, w));
        let got = wow_distance(&p, &q).unwrap();
        assert_vec(
            &format!("{w}: WoW inner W_2²"),
            &got.inner_costs,
            &inner,
            1e-9,
        );
        let outer = exact_ot_q(
            &class_weights_q(&ps.sizes(), w),
            &class_weights_q(&qs.sizes(), w),
            &inner,
        );
        assert_rel(&format!("{w}: W_W2²"), got.value, outer.cost, 1e-9);
        assert_vec(
            &format!("{w}: WoW plan"),
            &got.plan.to_dense(),
            &outer.plan,
            1e-9,
        );
        values.push(got.value);
    }
    differ("WoW", values[0], values[1]);
}

/// OTDD with exact label costs: label costs `W_2²` between classes, then the `N × M` OT with
/// ground cost `‖x − x'‖² + W_2²(label, label')` and masses `a_c/n_c`, by the independent
/// solver. With proportional class weights every point has mass `1/N`: the definition of
/// Alvarez-Melis & Fusi; with unequal classes the class-balanced value differs.
#[test]
fn otdd_exact_matches_independent_solver() {
    let config = OtddConfig {
        label_cost: LabelCost::Exact,
        solver: OtSolver::Exact,
        label_weight: 1.0,
    };
    // 17/23/11 vs 19/14: proportional only (uniform would need L = lcm(3·17·23·11, 2·19·14)).
    let (p0, q0) = pair(BIG, 3, 20);
    let (ps, qs) = (Set::of(&p0), Set::of(&q0));
    let (labels, _) = class_w2_all(&ps, &qs);
    let prop = ClassWeighting::Proportional;
    let (p, q) = (weighted(&p0, prop), weighted(&q0, prop));
    let got = otdd(&p, &q, &config).unwrap();
    assert_vec(
        "17/23/11: OTDD label costs",
        &got.inner_costs,
        &labels,
        1e-9,
    );
    // The definition: mass 1/N on every labeled point.
    let (n, m) = (ps.n_points() as u64, qs.n_points() as u64);
    let want = exact_ot_q(
        &vec![Q(1, n); n as usize],
        &vec![Q(1, m); m as usize],
        &otdd_ground(&ps, &qs, &labels),
    );
    assert_rel("17/23/11 proportional: OTDD²", got.value, want.cost, 1e-9);
    assert_vec(
        "17/23/11 proportional: OTDD plan",
        &got.plan.to_dense(),
        &want.plan,
        1e-9,
    );
    let uniform = otdd(&p0, &q0, &config).unwrap().value;
    differ("OTDD² 17/23/11", got.value, uniform);

    // 6/4/3 vs 5/3: both weightings.
    let (p0, q0) = pair(SMALL, 3, 21);
    let (ps, qs) = (Set::of(&p0), Set::of(&q0));
    let (labels, _) = class_w2_all(&ps, &qs);
    let mut values = Vec::new();
    for w in WEIGHTINGS {
        let (p, q) = (weighted(&p0, w), weighted(&q0, w));
        let got = otdd(&p, &q, &config).unwrap();
        let want = otdd_indep(&ps, w, &qs, w, &labels);
        assert_vec(
            &format!("6/4/3 {w}: label costs"),
            &got.inner_costs,
            &labels,
            1e-9,
        );
        assert_rel(&format!("6/4/3 {w}: OTDD²"), got.value, want.cost, 1e-9);
        assert_vec(
            &format!("6/4/3 {w}: OTDD plan"),
            &got.plan.to_dense(),
            &want.plan,
            1e-9,
        );
        values.push((got.value, want.cost));
    }
    differ("OTDD² 6/4/3 (wowflow)", values[0].0, values[1].0);
    differ("OTDD² 6/4/3 (independent)", values[0].1, values[1].1);
}

/// OTDD with Gaussian label costs: Bures–Wasserstein between the class Gaussians (mean and
/// covariance normalised by `n_c`) by the 2-D closed form, then the outer OT by the
/// independent solver.
#[test]
fn otdd_gaussian_matches_bures_closed_form() {
    let config = OtddConfig {
        label_cost: LabelCost::Gaussian,
        solver: OtSolver::Exact,
        label_weight: 1.0,
    };
    for (sizes, seed, weightings) in [
        (BIG, 30, &[ClassWeighting::Proportional][..]),
        (SMALL, 31, &WEIGHTINGS[..]),
    ] {
        let (p0, q0) = pair(sizes, 2, seed);
        let (ps, qs) = (Set::of(&p0), Set::of(&q0));
        let labels = gaussian_label_costs(&ps, &qs, 0.0);
        let mut values = Vec::new();
        for &w in weightings {
            let (p, q) = (weighted(&p0, w), weighted(&q0, w));
            let got = otdd(&p, &q, &config).unwrap();
            let what = format!("{:?} {w}", sizes.0);
            assert_vec(
                &format!("{what}: BW label costs"),
                &got.inner_costs,
                &labels,
                1e-9,
            );
            let want = otdd_indep(&ps, w, &qs, w, &labels);
            assert_rel(
                &format!("{what}: OTDD² (Gaussian)"),
                got.value,
                want.cost,
                1e-9,
            );
            assert_vec(
                &format!("{what}: plan"),
                &got.plan.to_dense(),
                &want.plan,
                1e-9,
            );
            values.push(got.value);
        }
        let other = otdd(&p0, &q0, &config).unwrap().value; // uniform
        let prop = otdd(
            &weighted(&p0, ClassWeighting::Proportional),
            &weighted(&q0, ClassWeighting::Proportional),
            &config,
        )
        .unwrap()
        .value;
        differ("OTDD² (Gaussian)", other, prop);
    }
}

/// Sliced WoW and SW-MMD with the directions the functions draw (`DirectionSampler::Gaussian`
/// from `ChaCha8Rng::seed_from_u64(seed)`): the 1-D `W_2²` between projected classes
/// (uniform masses, unequal sizes) by the independent solver, averaged over directions;
/// sliced WoW is the outer OT of those costs, SW-MMD the MMD with `K = −SW_2`.
#[test]
fn sliced_wow_and_sw_mmd_match_independent_slicing() {
    let (count, seed, d) = (12, 77, 3);
    let (p0, q0) = pair(SLICED, d, 40);
    let (ps, qs) = (Set::of(&p0), Set::of(&q0));
    let dirs = DirectionSampler::Gaussian
        .sample(count, d, &mut ChaCha8Rng::seed_from_u64(seed))
        .unwrap();
    let th: Vec<f64> = dirs.as_slice().iter().map(|&v| v as f64).collect();
    let (pp, qp) = (project(&ps, &th, count), project(&qs, &th, count));
    let inner = sliced_costs(&pp, &qp);
    let (mut sw_values, mut mmd_values) = (Vec::new(), Vec::new());
    for w in WEIGHTINGS {
        let (p, q) = (weighted(&p0, w), weighted(&q0, w));
        let (aq, bq) = (
            class_weights_q(&ps.sizes(), w),
            class_weights_q(&qs.sizes(), w),
        );
        let got = sliced_wow_distance(&p, &q, count, seed).unwrap();
        assert_vec(
            &format!("{w}: SW_2² between classes"),
            &got.inner_costs,
            &inner,
            1e-5,
        );
        let outer = exact_ot_q(&aq, &bq, &inner);
        assert_rel(&format!("{w}: sliced WoW"), got.value, outer.cost, 1e-5);
        let mmd = sw_mmd_distance(&p, &q, &Kernel::RIESZ, count, seed).unwrap();
        let f = sw_mmd_half_sq(&ps, &to_f64(&aq), &qs, &to_f64(&bq), &th, count);
        assert_rel(&format!("{w}: SW-MMD"), mmd, (2.0 * f).sqrt(), 1e-5);
        sw_values.push(got.value);
        mmd_values.push(mmd);
    }
    differ("sliced WoW", sw_values[0], sw_values[1]);
    differ("SW-MMD", mmd_values[0], mmd_values[1]);
}

// ---------------------------------------------------------------------------------------
// 3. Balanced classes: both weightings are the same measure, bit for bit
// ---------------------------------------------------------------------------------------

/// Everything the flows and distances compute, for one weighting (values and gradients as
/// raw bits).
fn everything(p: &LabeledCloud, q: &LabeledCloud, q_same_ids: &LabeledCloud) -> Vec<u64> {
    let mut out: Vec<u64> = p.class_weights().iter().map(|v| v.to_bits()).collect();
    out.extend(q.class_weights().iter().map(|v| v.to_bits()));
    out.push(wow_distance(p, q).unwrap().value.to_bits());
    out.push(sliced_wow_distance(p, q, 20, 3).unwrap().value.to_bits());
    for label_cost in [LabelCost::Exact, LabelCost::Gaussian] {
        let config = OtddConfig {
            label_cost,
            solver: OtSolver::Exact,
            label_weight: 1.0,
        };
        out.push(otdd(p, q, &config).unwrap().value.to_bits());
    }
    out.push(
        sw_mmd_distance(p, q, &Kernel::RIESZ, 20, 3)
            .unwrap()
            .to_bits(),
    );
    let mut objectives: Vec<Box<dyn Objective>> = vec![
        Box::new(SwMmd::new(q.clone(), Kernel::RIESZ, 16).unwrap()),
        Box::new(OtddFlow::new(q.clone(), OtddConfig::default()).unwrap()),
        Box::new(EuclidMmd::new(q.clone()).unwrap()),
        Box::new(DistributionMatching::new(q_same_ids.clone()).unwrap()),
        Box::new(JointOtdd::new(p, q.clone(), joint_config()).unwrap()),
    ];
    for obj in objectives.iter_mut() {
        let (v, g) = eval(obj.as_mut(), p);
        out.push(v.to_bits());
        out.extend(g.iter().map(|g| g.to_bits() as u64));
        obj.accept_step().unwrap();
        if let Some(state) = obj.state() {
            out.extend(state.iter().map(|v| v.to_bits()));
        }
    }
    let (flow, mut state) = ProductMmdFlow::new(p, q, product_config()).unwrap();
    out.push(flow.step(&mut state).unwrap().to_bits());
    out.extend(state.particles.masses().iter().map(|v| v.to_bits()));
    out.extend(state.particles.x.iter().map(|v| v.to_bits() as u64));
    out.extend(state.particles.m.iter().map(|v| v.to_bits()));
    out.extend(state.particles.sigma.iter().map(|v| v.to_bits()));
    out
}

/// With equal class sizes `n/(C n)` and `1/C` are the same `f64`, so every distance, value,
/// gradient and step is bit-identical under both weightings (the balanced results of before
/// issue 16 did not move). On unbalanced classes the same list differs.
#[test]
fn balanced_classes_are_bit_identical_under_both_weightings() {
    for (sizes, balanced) in [
        (([8, 8, 8], [10, 10]), true),
        (([8, 6, 10], [9, 11]), false),
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(50);
        let p0 = blobs(&mut rng, &sizes.0, 2);
        let q0 = blobs(&mut rng, &sizes.1, 2);
        let q3 = blobs(&mut rng, if balanced { &[9, 9, 9] } else { &[9, 11, 7] }, 2);
        let [u, p] =
            WEIGHTINGS.map(|w| everything(&weighted(&p0, w), &weighted(&q0, w), &weighted(&q3, w)));
        assert_eq!(u.len(), p.len());
        if balanced {
            let first = u.iter().zip(&p).position(|(a, b)| a != b);
            assert_eq!(
                first, None,
                "balanced classes: uniform and proportional differ"
            );
        } else {
            let same = u.iter().zip(&p).filter(|(a, b)| a == b).count();
            assert!(
                same < u.len() / 2,
                "unbalanced classes: {same} of {} equal",
                u.len()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 4. One step of every flow method
// ---------------------------------------------------------------------------------------

/// The feature-driven OTDD flow: `F = OTDD²` by the independent solver, and the WoW gradient
/// from the independent plans (envelope theorem, docs/math.md §7):
/// `g_i = [2 Σ_j π_ij (x_i − y_j) + λ Σ_k Γ_ck 2 Σ_l γ^{ck}_il (x_i − y_l)] / p_i` with exact
/// label costs (the label term differentiated through), the first term alone with Gaussian
/// ones, `p_i = a_c/n_c`. The gradient formula itself is checked against central differences
/// of the independent value on the small case.
#[test]
fn otdd_flow_step_matches_independent_plans() {
    for (sizes, seed, weightings) in [
        (BIG, 60, &[ClassWeighting::Proportional][..]),
        (SMALL, 61, &WEIGHTINGS[..]),
    ] {
        for label_cost in [LabelCost::Exact, LabelCost::Gaussian] {
            let d = 2;
            let (p0, q0) = pair(sizes, d, seed);
            let (ps, qs) = (Set::of(&p0), Set::of(&q0));
            let kn = qs.classes.len();
            let (labels, inner_plans) = match label_cost {
                LabelCost::Exact => class_w2_all(&ps, &qs),
                LabelCost::Gaussian => (gaussian_label_costs(&ps, &qs, 0.0), Vec::new()),
            };
            let mut values = Vec::new();
            for &w in weightings {
                let (p, q) = (weighted(&p0, w), weighted(&q0, w));
                let config = OtddConfig {
                    label_cost,
                    solver: OtSolver::Exact,
                    label_weight: 1.0,
                };
                let mut obj = OtddFlow::new(q, config).unwrap();
                let (value, grad) = eval(&mut obj, &p);
                let want = otdd_indep(&ps, w, &qs, w, &labels);
                let what = format!("{:?} {w} {label_cost:?}", sizes.0);
                assert_rel(&format!("{what}: F"), value, want.cost, 1e-9);
                // The gradient from the independent plans.
                let masses = to_f64(&point_masses_q(&ps.sizes(), w));
                let (rp, rq) = (ps.rows(), qs.rows());
                let m = rq.len();
                let mut gamma = vec![0.0; ps.classes.len() * kn];
                for (i, &(c, _)) in rp.iter().enumerate() {
                    for (j, &(k, _)) in rq.iter().enumerate() {
                        gamma[c * kn + k] += want.plan[i * m + j];
                    }
                }
                let mut g = vec![0.0; rp.len() * d];
                for (i, &(c, ic)) in rp.iter().enumerate() {
                    let x = ps.point(c, ic);
                    for (j, &(k, jk)) in rq.iter().enumerate() {
                        let y = qs.point(k, jk);
                        for t in 0..d {
                            g[i * d + t] += 2.0 * want.plan[i * m + j] * (x[t] - y[t]);
                        }
                    }
                    if label_cost == LabelCost::Exact {
                        for k in 0..kn {
                            let gam = &inner_plans[c * kn + k];
                            let mk = qs.len(k);
                            for l in 0..mk {
                                let y = qs.point(k, l);
                                for t in 0..d {
                                    g[i * d + t] +=
                                        gamma[c * kn + k] * 2.0 * gam[ic * mk + l] * (x[t] - y[t]);
                                }
                            }
                        }
                    }
                    for t in 0..d {
                        g[i * d + t] /= masses[i];
                    }
                }
                assert_vec(&format!("{what}: WoW gradient"), &grad, &g, 1e-5);
                if sizes == SMALL && label_cost == LabelCost::Exact {
                    // Central differences of the independent value (labels recomputed).
                    // (Exact label costs only: Gaussian ones are deliberately not
                    // differentiated, the feature-driven dynamics.)
                    let value_at =
                        |s: &Set| -> f64 { otdd_indep(s, w, &qs, w, &class_w2_all(s, &qs).0).cost };
                    let h = 1e-6;
                    for (i, &(c, ic)) in rp.iter().enumerate() {
                        for t in 0..d {
                            let mut s = ps.clone();
                            s.classes[c][ic * d + t] += h;
                            let fp = value_at(&s);
                            s.classes[c][ic * d + t] -= 2.0 * h;
                            let fm = value_at(&s);
                            let fd = (fp - fm) / (2.0 * h) / masses[i];
                            assert!(
                                (fd - g[i * d + t]).abs() < 1e-5 * (1.0 + fd.abs()),
                                "{what}: particle {i} coord {t}: fd {fd} vs envelope {}",
                                g[i * d + t]
                            );
                        }
                    }
                }
                values.push(value);
            }
            if values.len() == 2 {
                differ("OtddFlow F", values[0], values[1]);
            }
        }
    }
}

/// SW-MMD (Riesz kernel, fixed directions): `F = ½ MMD²` recomputed with the independent
/// 1-D solver, and the WoW gradient against central differences of that value, divided by
/// the mass `a_c/n_c` (docs/math.md §5).
#[test]
fn sw_mmd_step_matches_independent_value_and_finite_differences() {
    let (count, d) = (10, 3);
    let (p0, q0) = pair(SLICED, d, 70);
    let (ps, qs) = (Set::of(&p0), Set::of(&q0));
    let dirs = DirectionSampler::Gaussian
        .sample(count, d, &mut ChaCha8Rng::seed_from_u64(71))
        .unwrap();
    let th: Vec<f64> = dirs.as_slice().iter().map(|&v| v as f64).collect();
    let mut values = Vec::new();
    for w in WEIGHTINGS {
        let (p, q) = (weighted(&p0, w), weighted(&q0, w));
        let mut obj = SwMmd::new(q, Kernel::RIESZ, 1)
            .unwrap()
            .with_directions(DirectionSampler::Fixed(
                Directions::from_rows(count, d, dirs.as_slice().to_vec()).unwrap(),
            ))
            .unwrap();
        let (value, grad) = eval(&mut obj, &p);
        let a = to_f64(&class_weights_q(&ps.sizes(), w));
        let b = to_f64(&class_weights_q(&qs.sizes(), w));
        let f = |s: &Set| sw_mmd_half_sq(s, &a, &qs, &b, &th, count);
        assert_rel(&format!("{w}: SW-MMD F"), value, f(&ps), 1e-5);
        let masses = to_f64(&point_masses_q(&ps.sizes(), w));
        let h = 1e-5;
        let mut fd = vec![0.0; ps.n_points() * d];
        for (i, &(c, ic)) in ps.rows().iter().enumerate() {
            for t in 0..d {
                let mut s = ps.clone();
                s.classes[c][ic * d + t] += h;
                let fp = f(&s);
                s.classes[c][ic * d + t] -= 2.0 * h;
                let fm = f(&s);
                fd[i * d + t] = (fp - fm) / (2.0 * h) / masses[i];
            }
        }
        assert_vec(
            &format!("{w}: SW-MMD WoW gradient vs differences"),
            &grad,
            &fd,
            1e-4,
        );
        values.push(value);
    }
    differ("SwMmd F", values[0], values[1]);
}

/// Euclidean MMD (Riesz `−‖x − y‖`, labels ignored) with masses `p_i = a_c/n_c`,
/// `q_j = b_k/m_k`: `F = ½ MMD²` and `g_i = Σ_j q_j u(x_i − y_j) − Σ_j p_j u(x_i − x_j)`
/// (docs/math.md §7), in closed form. DM: `F = Σ_c a_c ‖m_c − m'_c‖²` and
/// `g = 2 (m_c − m'_c)` for every particle of class `c`, with class means normalised by `n_c`.
#[test]
fn euclid_mmd_and_dm_steps_match_closed_forms() {
    let d = 3;
    let mut rng = ChaCha8Rng::seed_from_u64(80);
    let p0 = blobs(&mut rng, &BIG.0, d);
    let q0 = blobs(&mut rng, &BIG.1, d);
    let q_ids = blobs(&mut rng, &[19, 14, 9], d); // DM matches classes by id
    let (ps, qs, qi) = (Set::of(&p0), Set::of(&q0), Set::of(&q_ids));
    let (xs, ys) = (ps.flat(), qs.flat());
    let (n, m) = (ps.n_points(), qs.n_points());
    let norm = |a: &[f64], b: &[f64]| sq_dist(a, b).sqrt();
    let (mut mmd_values, mut dm_values) = (Vec::new(), Vec::new());
    for w in WEIGHTINGS {
        // Euclidean MMD.
        let pm = to_f64(&point_masses_q(&ps.sizes(), w));
        let qm = to_f64(&point_masses_q(&qs.sizes(), w));
        let (x, y) = (
            |i: usize| &xs[i * d..(i + 1) * d],
            |j: usize| &ys[j * d..(j + 1) * d],
        );
        let mut f = 0.0;
        for i in 0..n {
            for i2 in 0..n {
                f -= 0.5 * pm[i] * pm[i2] * norm(x(i), x(i2));
            }
            for j in 0..m {
                f += pm[i] * qm[j] * norm(x(i), y(j));
            }
        }
        for j in 0..m {
            for j2 in 0..m {
                f -= 0.5 * qm[j] * qm[j2] * norm(y(j), y(j2));
            }
        }
        let mut g = vec![0.0; n * d];
        for i in 0..n {
            let mut add = |z: &[f64], wgt: f64| {
                let r = norm(x(i), z);
                if r > 0.0 {
                    for t in 0..d {
                        g[i * d + t] += wgt * (x(i)[t] - z[t]) / r;
                    }
                }
            };
            (0..m).for_each(|j| add(y(j), qm[j]));
            (0..n).for_each(|i2| add(x(i2), -pm[i2]));
        }
        let (p, q) = (weighted(&p0, w), weighted(&q0, w));
        let mut obj = EuclidMmd::new(q).unwrap();
        let (value, grad) = eval(&mut obj, &p);
        assert_rel(&format!("{w}: Euclidean MMD F"), value, f, 1e-9);
        assert_vec(&format!("{w}: Euclidean MMD gradient"), &grad, &g, 1e-6);
        mmd_values.push(value);

        // Distribution matching.
        let a = to_f64(&class_weights_q(&ps.sizes(), w));
        let mean = |s: &Set, c: usize| -> Vec<f64> {
            (0..d)
                .map(|t| (0..s.len(c)).map(|i| s.point(c, i)[t]).sum::<f64>() / s.len(c) as f64)
                .collect()
        };
        let mut f = 0.0;
        let mut g = vec![0.0; n * d];
        for (i, &(c, _)) in ps.rows().iter().enumerate() {
            let diff: Vec<f64> = mean(&ps, c)
                .iter()
                .zip(mean(&qi, c))
                .map(|(u, v)| u - v)
                .collect();
            for t in 0..d {
                g[i * d + t] = 2.0 * diff[t];
            }
        }
        for c in 0..3 {
            f += a[c] * sq_dist(&mean(&ps, c), &mean(&qi, c));
        }
        let mut obj = DistributionMatching::new(weighted(&q_ids, w)).unwrap();
        let (value, grad) = eval(&mut obj, &p);
        assert_rel(&format!("{w}: DM F"), value, f, 1e-9);
        assert_vec(&format!("{w}: DM gradient"), &grad, &g, 1e-6);
        dm_values.push(value);
    }
    differ("EuclidMmd F", mmd_values[0], mmd_values[1]);
    differ("DM F", dm_values[0], dm_values[1]);
}

fn joint_config() -> JointOtddConfig {
    JointOtddConfig {
        labels: LabelDynamics::Fixed,
        solver: OtSolver::Exact,
        label_weight: 1.0,
        embedding: EmbeddingConfig {
            dim: 2,
            ridge: 1e-2,
        },
        tau_mean: 0.1,
        tau_sigma: 0.1,
    }
}

fn product_config() -> ProductMmdConfig {
    ProductMmdConfig {
        tau: 0.1,
        tau_m: None,
        tau_sigma: Some(0.01),
        momentum: 0.9,
        steps: 1,
        bandwidths: BandwidthSpec {
            x: Bandwidth::Fixed { h: 4.0 },
            m: Bandwidth::Fixed { h: 2.0 },
            sigma: Bandwidth::Fixed { h: 1.0 },
        },
        embedding: EmbeddingConfig {
            dim: 2,
            ridge: 1e-2,
        },
    }
}

/// The absolute ridge of the label embedding with `p = d`: `ridge × tr(Cov) / p`, `Cov` the
/// covariance (normalised by the row count) of the union of both datasets' rows.
fn union_ridge(p: &Set, q: &Set, ridge: f64) -> f64 {
    let rows: Vec<f64> = [p.flat(), q.flat()].concat();
    let d = p.d;
    let n = rows.len() / d;
    let mean: Vec<f64> = (0..d)
        .map(|t| (0..n).map(|i| rows[i * d + t]).sum::<f64>() / n as f64)
        .collect();
    let trace: f64 = (0..n)
        .map(|i| sq_dist(&rows[i * d..(i + 1) * d], &mean))
        .sum::<f64>()
        / n as f64;
    ridge * trace / d as f64
}

/// The embedding's axes as a 2 × 2 matrix `V` (columns = axes), checked orthogonal: with
/// `p = d` the PCA is `x ↦ Vᵀ (x − c)`, an isometry, so Bures–Wasserstein costs, squared
/// distances between means and Frobenius distances between covariances are the same in the
/// embedding and in the original coordinates.
fn axes2(axes: &[f64]) -> M2 {
    let v: M2 = [axes[0], axes[1], axes[2], axes[3]];
    let vtv = conj(&v, &I2);
    assert_vec("VᵀV", &vtv[..], &I2, 1e-12);
    v
}

/// Joint-driven OTDD, fixed labels, `p = d = 2`. What is checked, computed in the original
/// coordinates from the definition and mapped into the embedding with the fitted axes `V`
/// and centre `c` (only those two are taken from wowflow):
/// - the label Gaussians at step 0 are the classes' ML Gaussians (normalised by `n_c`, for
///   either weighting) plus the ridge `ridge · tr(Cov_union)/p`;
/// - `F = min_π Σ π_ij [‖x_i − y_j‖² + λ BW²(v_c, β_k)]` with masses `a_c/n_c`, `b_k/m_k`, by
///   the independent solver;
/// - the particle gradient `(2/p_i) Σ_j π_ij (x_i − y_j)` from the independent plan;
/// - the label step committed by `accept_step`: `μ_g ← μ_g − τ_μ 2λ Σ_k (Γ_gk/Γ_g)(μ_g − m'_k)`
///   and `Σ_g ← (I + S) Σ_g (I + S)`, `S = −2τ_Σ λ Σ_k (Γ_gk/Γ_g)(I − T_gk)` with `T_gk` the
///   Monge map, from the independent `Γ`.
#[test]
fn joint_otdd_step_matches_independent_computation() {
    let cfg = joint_config();
    for (sizes, seed, weightings) in [
        (BIG, 90, &[ClassWeighting::Proportional][..]),
        (SMALL, 91, &WEIGHTINGS[..]),
    ] {
        let d = 2;
        let (p0, q0) = pair(sizes, d, seed);
        let (ps, qs) = (Set::of(&p0), Set::of(&q0));
        let (cn, kn) = (ps.classes.len(), qs.classes.len());
        let r = union_ridge(&ps, &qs, cfg.embedding.ridge);
        let src_g: Vec<([f64; 2], M2)> = (0..cn).map(|c| gaussian2(&ps, c, r)).collect();
        let tgt_g: Vec<([f64; 2], M2)> = (0..kn).map(|k| gaussian2(&qs, k, r)).collect();
        let labels: Vec<f64> = (0..cn * kn)
            .map(|ck| {
                let ((ma, a), (mb, b)) = (&src_g[ck / kn], &tgt_g[ck % kn]);
                bw2(ma, a, mb, b)
            })
            .collect();
        let mut values = Vec::new();
        for &w in weightings {
            let what = format!("{:?} {w}", sizes.0);
            let (p, q) = (weighted(&p0, w), weighted(&q0, w));
            let mut obj = JointOtdd::new(&p, q, cfg).unwrap();
            let emb = obj.embedding();
            assert_rel(&format!("{what}: ridge"), emb.ridge(), r, 1e-9);
            let v = axes2(emb.axes());
            let center = emb.center().to_vec();
            let embed_mean = |m: &[f64; 2]| vt_x(&v, &[m[0] - center[0], m[1] - center[1]]);
            // The label Gaussians at step 0.
            let lg = obj.label_gaussians().unwrap();
            for (c, (m, s)) in src_g.iter().enumerate() {
                assert_vec(&format!("{what}: μ_{c}"), lg.mean(c), &embed_mean(m), 1e-9);
                assert_vec(
                    &format!("{what}: Σ_{c}"),
                    lg.covariance(c),
                    &conj(&v, s),
                    1e-9,
                );
            }
            let (value, grad) = eval(&mut obj, &p);
            let want = otdd_indep(&ps, w, &qs, w, &labels);
            assert_rel(&format!("{what}: F"), value, want.cost, 1e-9);
            let masses = to_f64(&point_masses_q(&ps.sizes(), w));
            let (rp, rq) = (ps.rows(), qs.rows());
            let mut g = vec![0.0; rp.len() * d];
            let mut gamma = vec![0.0; cn * kn];
            for (i, &(c, ic)) in rp.iter().enumerate() {
                for (j, &(k, jk)) in rq.iter().enumerate() {
                    let pi = want.plan[i * rq.len() + j];
                    gamma[c * kn + k] += pi;
                    for t in 0..d {
                        g[i * d + t] +=
                            2.0 * pi * (ps.point(c, ic)[t] - qs.point(k, jk)[t]) / masses[i];
                    }
                }
            }
            assert_vec(&format!("{what}: particle gradient"), &grad, &g, 1e-5);
            // The label step.
            obj.accept_step().unwrap();
            let state = obj.state().unwrap();
            let (means, covs) = state.split_at(cn * 2);
            let lambda = cfg.label_weight;
            for c in 0..cn {
                let (mu, sigma) = &src_g[c];
                let row = &gamma[c * kn..(c + 1) * kn];
                let mass: f64 = row.iter().sum();
                let (mut gm, mut gs) = ([0.0; 2], [0.0; 4]);
                for k in 0..kn {
                    let wk = lambda * row[k] / mass;
                    let (mk, sk) = &tgt_g[k];
                    for t in 0..2 {
                        gm[t] += 2.0 * wk * (mu[t] - mk[t]);
                    }
                    gs = lin(1.0, &gs, wk, &lin(1.0, &I2, -1.0, &monge2(sigma, sk)));
                }
                let new_mu = [mu[0] - cfg.tau_mean * gm[0], mu[1] - cfg.tau_mean * gm[1]];
                let step = lin(1.0, &I2, -2.0 * cfg.tau_sigma, &gs);
                let new_sigma = mul(&step, &mul(sigma, &step));
                assert_vec(
                    &format!("{what}: μ_{c} after the step"),
                    &means[c * 2..c * 2 + 2],
                    &embed_mean(&new_mu),
                    1e-9,
                );
                assert_vec(
                    &format!("{what}: Σ_{c} after the step"),
                    &covs[c * 4..c * 4 + 4],
                    &conj(&v, &new_sigma),
                    1e-9,
                );
            }
            values.push(value);
        }
        if values.len() == 2 {
            differ("JointOtdd F", values[0], values[1]);
        }
    }
}

/// Product-space MMD flow (Hua et al.), `p = d = 2`, fixed bandwidths. What is checked:
/// - the particle masses are `a_c/n_c` (source) for either weighting;
/// - the particles' Gaussians are the classes' ML Gaussians plus the ridge, mapped by `V`;
/// - `F = ½ Σ p p' k − Σ p q k + ½ Σ q q' k` with
///   `k = exp(−‖x − x'‖²/h_x − ‖m − m'‖²/h_m − ‖Σ − Σ'‖_F²/h_Σ)`, computed in the original
///   coordinates (the embedding is an isometry), and its WoW gradients `∂F/∂z_i / p_i` for
///   `x`, `m`, `Σ` (the latter two mapped by `V`), by the closed form of the first variation;
/// - one heavy-ball step from rest: `x ← x − τ g_x`, `m ← m − τ_m g_m`,
///   `Σ ← (I + S) Σ (I + S)` with `S = −2τ_Σ g_Σ`.
#[test]
fn product_mmd_step_matches_independent_computation() {
    let cfg = product_config();
    let (hx, hm, hs) = (4.0, 2.0, 1.0);
    let d = 2;
    let (p0, q0) = pair(BIG, d, 100);
    let (ps, qs) = (Set::of(&p0), Set::of(&q0));
    let r = union_ridge(&ps, &qs, cfg.embedding.ridge);
    let mut values = Vec::new();
    for w in WEIGHTINGS {
        let (p, q) = (weighted(&p0, w), weighted(&q0, w));
        let (flow, mut state) = ProductMmdFlow::new(&p, &q, cfg).unwrap();
        let emb = flow.embedding();
        assert_rel("ridge", emb.ridge(), r, 1e-9);
        let v = axes2(emb.axes());
        let center = emb.center().to_vec();
        let embed_mean = |m: &[f64; 2]| vt_x(&v, &[m[0] - center[0], m[1] - center[1]]);
        // Particles (x, m, Σ) in the original coordinates, with their masses: the source
        // then the target, signed mass +p_i / −q_j.
        let mut parts: Vec<(Vec<f64>, [f64; 2], M2, f64)> = Vec::new();
        for (s, wt, sign) in [(&ps, w, 1.0), (&qs, w, -1.0)] {
            let masses = to_f64(&point_masses_q(&s.sizes(), wt));
            for (i, &(c, ic)) in s.rows().iter().enumerate() {
                let (m, sg) = gaussian2(s, c, r);
                parts.push((s.point(c, ic).to_vec(), m, sg, sign * masses[i]));
            }
        }
        let n = ps.n_points();
        assert_vec(
            &format!("{w}: particle masses"),
            state.particles.masses(),
            &parts[..n].iter().map(|z| z.3).collect::<Vec<_>>(),
            1e-14,
        );
        for i in 0..n {
            assert_vec(
                &format!("{w}: m_{i}"),
                state.particles.mean(i),
                &embed_mean(&parts[i].1),
                1e-9,
            );
            assert_vec(
                &format!("{w}: Σ_{i}"),
                state.particles.covariance(i),
                &conj(&v, &parts[i].2),
                1e-9,
            );
        }
        let kern = |a: &(Vec<f64>, [f64; 2], M2, f64), b: &(Vec<f64>, [f64; 2], M2, f64)| {
            (-sq_dist(&a.0, &b.0) / hx - sq_dist(&a.1, &b.1) / hm - sq_dist(&a.2, &b.2) / hs).exp()
        };
        let mut f = 0.0;
        for a in &parts {
            for b in &parts {
                f += 0.5 * a.3 * b.3 * kern(a, b);
            }
        }
        let (mut gx, mut gm, mut gs) = (vec![0.0; n * d], vec![0.0; n * 2], vec![0.0; n * 4]);
        for i in 0..n {
            let zi = &parts[i];
            let (mut ax, mut am, mut asg) = ([0.0; 2], [0.0; 2], [0.0; 4]);
            for zj in &parts {
                let wij = zj.3 * kern(zi, zj);
                for t in 0..2 {
                    ax[t] += wij * (zi.0[t] - zj.0[t]);
                    am[t] += wij * (zi.1[t] - zj.1[t]);
                }
                asg = lin(1.0, &asg, wij, &lin(1.0, &zi.2, -1.0, &zj.2));
            }
            for t in 0..2 {
                gx[i * 2 + t] = -2.0 / hx * ax[t];
            }
            let gm_i = vt_x(&v, &[-2.0 / hm * am[0], -2.0 / hm * am[1]]);
            gm[i * 2..i * 2 + 2].copy_from_slice(&gm_i);
            gs[i * 4..i * 4 + 4].copy_from_slice(&conj(&v, &lin(-2.0 / hs, &asg, 0.0, &I2)));
        }
        let (value, grad) = flow.objective().value_and_grad(&state.particles).unwrap();
        assert_rel(&format!("{w}: product MMD F"), value, f, 1e-9);
        assert_vec(&format!("{w}: g_x"), &grad.x, &gx, 1e-6);
        assert_vec(&format!("{w}: g_m"), &grad.m, &gm, 1e-9);
        assert_vec(&format!("{w}: g_Σ"), &grad.sigma, &gs, 1e-9);
        // One step from rest.
        let before = state.particles.clone();
        let reported = flow.step(&mut state).unwrap();
        assert_rel(&format!("{w}: F reported by the step"), reported, f, 1e-9);
        let x_want: Vec<f64> = before
            .x
            .iter()
            .zip(&gx)
            .map(|(&x, g)| x as f64 - cfg.tau * g)
            .collect();
        assert_vec(
            &format!("{w}: x after the step"),
            &state.particles.x,
            &x_want,
            1e-6,
        );
        for i in 0..n {
            let m_want: Vec<f64> = (0..2)
                .map(|t| before.mean(i)[t] - cfg.tau * gm[i * 2 + t])
                .collect();
            assert_vec(
                &format!("{w}: m_{i} after the step"),
                state.particles.mean(i),
                &m_want,
                1e-9,
            );
            let sigma: M2 = before.covariance(i).try_into().unwrap();
            let g_i: M2 = gs[i * 4..i * 4 + 4].try_into().unwrap();
            let s = lin(1.0, &I2, -2.0 * cfg.tau_sigma.unwrap(), &g_i);
            assert_vec(
                &format!("{w}: Σ_{i} after the step"),
                state.particles.covariance(i),
                &mul(&s, &mul(&sigma, &s)),
                1e-9,
            );
        }
        values.push(value);
    }
    differ("ProductMmd F", values[0], values[1]);
}

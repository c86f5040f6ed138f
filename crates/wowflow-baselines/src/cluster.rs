//! Clustering of points in `R^D`: k-means (fixed number of clusters) and DBSCAN (the number
//! of clusters is found), the two ways the joint-driven variable-label OTDD dynamics turn
//! per-particle label Gaussians back into discrete labels (Alvarez-Melis & Fusi 2021, §6.1
//! and Appendix C; docs/math.md §7).
//!
//! Both are deterministic: k-means draws its k-means++ starts from an explicit seed, DBSCAN
//! visits points in index order. Cluster ids are canonical — numbered by their smallest
//! member index — so the same partition always gets the same ids.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use wowflow_core::error::{invalid, shape, Result};
use wowflow_core::linalg::pairwise_sq_dists;

/// How to cluster.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Clustering {
    /// Lloyd's k-means with k-means++ starts; the best of `restarts` runs (lowest inertia).
    KMeans {
        /// Number of clusters, `1 ≤ k ≤ n`.
        k: usize,
        /// Seed of the ChaCha8 stream all restarts draw their k-means++ starts from.
        seed: u64,
        /// Independent runs (`0` is read as `1`); each runs at most 300 Lloyd iterations.
        restarts: usize,
    },
    /// DBSCAN: points with at least `min_points` points (themselves included) within `eps`
    /// are cores; clusters are the connected components of cores plus the points they reach;
    /// the rest is noise.
    Dbscan {
        /// Neighbourhood radius (Euclidean distance, in the units of the points), finite and
        /// `> 0`.
        eps: f64,
        /// Neighbours (the point itself included) that make a point a core, `≥ 1`.
        min_points: usize,
    },
}

/// A partition: `labels[i]` is the cluster of point `i` (`None`: DBSCAN noise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clusters {
    /// One entry per point, in row order: its cluster id in `0..count`, or `None` for noise
    /// (k-means labels every point).
    pub labels: Vec<Option<usize>>,
    /// Number of clusters (ids are `0..count`).
    pub count: usize,
}

impl Clusters {
    /// Points labelled as noise.
    pub fn noise(&self) -> usize {
        self.labels.iter().filter(|l| l.is_none()).count()
    }

    /// Renumbers clusters by their smallest member index.
    fn canonical(labels: Vec<Option<usize>>) -> Self {
        let mut map: Vec<Option<usize>> = Vec::new();
        let mut count = 0;
        let labels = labels
            .into_iter()
            .map(|l| {
                l.map(|c| {
                    if c >= map.len() {
                        map.resize(c + 1, None);
                    }
                    *map[c].get_or_insert_with(|| {
                        count += 1;
                        count - 1
                    })
                })
            })
            .collect();
        Self { labels, count }
    }
}

impl Clustering {
    /// Clusters the `n` rows of `points` (row-major `n × dim`).
    pub fn run(&self, points: &[f64], dim: usize) -> Result<Clusters> {
        if dim == 0 || !points.len().is_multiple_of(dim) {
            return Err(shape(
                "points to cluster",
                format!("a multiple of dim = {dim} values"),
                points.len(),
            ));
        }
        if let Some(i) = points.iter().position(|v| !v.is_finite()) {
            return Err(invalid(
                "points to cluster",
                format!("value {} at index {i} is not finite", points[i]),
            ));
        }
        match *self {
            Clustering::KMeans { k, seed, restarts } => kmeans(points, dim, k, seed, restarts),
            Clustering::Dbscan { eps, min_points } => dbscan(points, dim, eps, min_points),
        }
    }
}

/// `‖a − b‖²`.
pub(crate) fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Nearest centre of every point and the total squared distance (inertia).
fn assign(points: &[f64], dim: usize, centres: &[f64]) -> (Vec<usize>, Vec<f64>) {
    points
        .par_chunks_exact(dim)
        .map(|x| {
            centres
                .chunks_exact(dim)
                .enumerate()
                .map(|(c, m)| (c, sq_dist(x, m)))
                .fold(
                    (0, f64::INFINITY),
                    |best, (c, d)| {
                        if d < best.1 {
                            (c, d)
                        } else {
                            best
                        }
                    },
                )
        })
        .unzip()
}

/// k-means++ starts: the first centre uniformly, the next ones with probability
/// proportional to the squared distance to the closest centre so far.
fn plus_plus(points: &[f64], dim: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    let n = points.len() / dim;
    let row = |i: usize| &points[i * dim..(i + 1) * dim];
    let mut centres = row(rng.random_range(0..n)).to_vec();
    let mut closest: Vec<f64> = (0..n).map(|i| sq_dist(row(i), &centres)).collect();
    while centres.len() < k * dim {
        let total: f64 = closest.iter().sum();
        let pick = if total > 0.0 {
            let mut u = rng.random::<f64>() * total;
            closest
                .iter()
                .position(|&d| {
                    u -= d;
                    u < 0.0
                })
                .unwrap_or(n - 1)
        } else {
            // Fewer distinct points than k: any point (duplicate centres stay empty).
            rng.random_range(0..n)
        };
        let c = row(pick).to_vec();
        for (i, d) in closest.iter_mut().enumerate() {
            *d = d.min(sq_dist(row(i), &c));
        }
        centres.extend(c);
    }
    centres
}

const KMEANS_MAX_ITERATIONS: usize = 300;

fn kmeans(points: &[f64], dim: usize, k: usize, seed: u64, restarts: usize) -> Result<Clusters> {
    let n = points.len() / dim;
    if k == 0 || k > n {
        return Err(invalid(
            "k-means k",
            format!("need 1 ≤ k ≤ number of points = {n}, got {k}"),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut best: Option<(f64, Vec<usize>)> = None;
    for _ in 0..restarts.max(1) {
        let mut centres = plus_plus(points, dim, k, &mut rng);
        let (mut labels, mut dists) = assign(points, dim, &centres);
        for _ in 0..KMEANS_MAX_ITERATIONS {
            let mut sums = vec![0.0; k * dim];
            let mut counts = vec![0usize; k];
            for (x, &c) in points.chunks_exact(dim).zip(&labels) {
                counts[c] += 1;
                sums[c * dim..(c + 1) * dim]
                    .iter_mut()
                    .zip(x)
                    .for_each(|(s, v)| *s += v);
            }
            for c in 0..k {
                if counts[c] > 0 {
                    for t in 0..dim {
                        centres[c * dim + t] = sums[c * dim + t] / counts[c] as f64;
                    }
                } else {
                    // An empty cluster restarts at the point worst served by its centre.
                    let far = (0..n)
                        .max_by(|&a, &b| dists[a].total_cmp(&dists[b]).then(b.cmp(&a)))
                        .unwrap_or(0);
                    centres[c * dim..(c + 1) * dim]
                        .copy_from_slice(&points[far * dim..(far + 1) * dim]);
                    dists[far] = 0.0;
                }
            }
            let (next, next_dists) = assign(points, dim, &centres);
            let settled = next == labels;
            labels = next;
            dists = next_dists;
            if settled {
                break;
            }
        }
        let inertia: f64 = dists.iter().sum();
        if best.as_ref().is_none_or(|(b, _)| inertia < *b) {
            best = Some((inertia, labels));
        }
    }
    let labels = best.map(|(_, l)| l).unwrap_or_default();
    Ok(Clusters::canonical(labels.into_iter().map(Some).collect()))
}

/// Row block of the neighbour search: bounds the distance matrix held at once.
const DBSCAN_BLOCK: usize = 1024;

fn dbscan(points: &[f64], dim: usize, eps: f64, min_points: usize) -> Result<Clusters> {
    if !(eps.is_finite() && eps > 0.0) {
        return Err(invalid(
            "DBSCAN eps",
            format!("must be finite and > 0, got {eps}"),
        ));
    }
    if min_points == 0 {
        return Err(invalid("DBSCAN min_points", "must be at least 1"));
    }
    let n = points.len() / dim;
    // Neighbour lists (self included) by blocks of f32 squared distances through one GEMM
    // each; distances are recomputed in f64 near the threshold so rounding cannot flip
    // membership.
    let x32: Vec<f32> = points.iter().map(|&v| v as f32).collect();
    let eps2 = eps * eps;
    let mut neighbours: Vec<Vec<usize>> = Vec::with_capacity(n);
    for start in (0..n).step_by(DBSCAN_BLOCK) {
        let rows = DBSCAN_BLOCK.min(n - start);
        let block = &x32[start * dim..(start + rows) * dim];
        let d2 = pairwise_sq_dists(block, rows, &x32, n, dim);
        let lists: Vec<Vec<usize>> = d2
            .par_chunks_exact(n)
            .enumerate()
            .map(|(r, row)| {
                let i = start + r;
                let xi = &points[i * dim..(i + 1) * dim];
                (0..n)
                    .filter(|&j| {
                        let approx = row[j];
                        if (approx - eps2).abs() > 1e-4 * eps2.max(approx) {
                            approx <= eps2
                        } else {
                            sq_dist(xi, &points[j * dim..(j + 1) * dim]) <= eps2
                        }
                    })
                    .collect()
            })
            .collect();
        neighbours.extend(lists);
    }
    let core: Vec<bool> = neighbours.iter().map(|l| l.len() >= min_points).collect();
    let mut labels: Vec<Option<usize>> = vec![None; n];
    let mut count = 0;
    let mut queue = Vec::new();
    for seed in 0..n {
        if !core[seed] || labels[seed].is_some() {
            continue;
        }
        labels[seed] = Some(count);
        queue.push(seed);
        while let Some(i) = queue.pop() {
            for &j in &neighbours[i] {
                if labels[j].is_none() {
                    labels[j] = Some(count);
                    if core[j] {
                        queue.push(j);
                    }
                }
            }
        }
        count += 1;
    }
    Ok(Clusters::canonical(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, StandardNormal};

    /// `per` points around each of `centres` (in R^2), spread `sd`, shuffled.
    fn blobs(centres: &[[f64; 2]], per: usize, sd: f64, seed: u64) -> (Vec<f64>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rows: Vec<(usize, [f64; 2])> = Vec::new();
        for (c, m) in centres.iter().enumerate() {
            for _ in 0..per {
                let z: [f64; 2] = [
                    StandardNormal.sample(&mut rng),
                    StandardNormal.sample(&mut rng),
                ];
                rows.push((c, [m[0] + sd * z[0], m[1] + sd * z[1]]));
            }
        }
        // Fisher–Yates with the same generator: the truth is not in index order.
        for i in (1..rows.len()).rev() {
            rows.swap(i, rng.random_range(0..=i));
        }
        let truth = rows.iter().map(|r| r.0).collect();
        (rows.iter().flat_map(|r| r.1).collect(), truth)
    }

    /// Same partition up to renaming.
    fn same_partition(a: &[Option<usize>], truth: &[usize]) -> bool {
        let mut map = std::collections::HashMap::new();
        let mut back = std::collections::HashMap::new();
        a.iter().zip(truth).all(|(l, &t)| {
            let Some(l) = l else { return false };
            *map.entry(*l).or_insert(t) == t && *back.entry(t).or_insert(*l) == *l
        })
    }

    const CENTRES: [[f64; 2]; 4] = [[0.0, 0.0], [5.0, 0.0], [0.0, 5.0], [5.0, 5.0]];

    #[test]
    fn kmeans_recovers_separated_blobs_and_is_seeded() {
        let (x, truth) = blobs(&CENTRES, 30, 0.3, 1);
        let k = Clustering::KMeans {
            k: 4,
            seed: 3,
            restarts: 4,
        };
        let c = k.run(&x, 2).unwrap();
        assert_eq!(c.count, 4);
        assert!(same_partition(&c.labels, &truth));
        assert_eq!(c, k.run(&x, 2).unwrap());
        // Ids are canonical: point 0 is in cluster 0.
        assert_eq!(c.labels[0], Some(0));
    }

    #[test]
    fn dbscan_finds_the_number_of_clusters_and_the_noise() {
        let (mut x, mut truth) = blobs(&CENTRES[..3], 25, 0.2, 2);
        let c = Clustering::Dbscan {
            eps: 1.0,
            min_points: 4,
        }
        .run(&x, 2)
        .unwrap();
        assert_eq!((c.count, c.noise()), (3, 0));
        assert!(same_partition(&c.labels, &truth));
        // An isolated point is noise; a fourth blob is a fourth cluster.
        x.extend([20.0, -20.0]);
        let (b, _) = blobs(&CENTRES[3..], 25, 0.2, 3);
        x.extend(&b);
        truth.push(99);
        let c = Clustering::Dbscan {
            eps: 1.0,
            min_points: 4,
        }
        .run(&x, 2)
        .unwrap();
        assert_eq!((c.count, c.noise()), (4, 1));
        assert_eq!(c.labels[75], None);
    }

    #[test]
    fn dbscan_partition_does_not_depend_on_the_point_order() {
        let (x, _) = blobs(&CENTRES, 20, 0.4, 5);
        let n = x.len() / 2;
        let rule = Clustering::Dbscan {
            eps: 0.8,
            min_points: 3,
        };
        let a = rule.run(&x, 2).unwrap();
        let perm: Vec<usize> = (0..n).rev().collect();
        let y: Vec<f64> = perm
            .iter()
            .flat_map(|&i| [x[2 * i], x[2 * i + 1]])
            .collect();
        let b = rule.run(&y, 2).unwrap();
        assert_eq!(a.count, b.count);
        assert_eq!((a.noise(), b.noise()), (0, 0));
        let truth: Vec<usize> = perm
            .iter()
            .map(|&i| a.labels[i].unwrap_or(usize::MAX))
            .collect();
        assert!(same_partition(&b.labels, &truth));
    }

    #[test]
    fn bad_input_is_refused() {
        let k = |k| Clustering::KMeans {
            k,
            seed: 0,
            restarts: 1,
        };
        assert!(k(0).run(&[0.0, 1.0], 1).is_err());
        assert!(k(3).run(&[0.0, 1.0], 1).is_err());
        assert!(k(1).run(&[0.0, f64::NAN], 1).is_err());
        assert!(k(1).run(&[0.0, 1.0, 2.0], 2).is_err());
        let db = |eps| Clustering::Dbscan { eps, min_points: 2 };
        assert!(db(0.0).run(&[0.0], 1).is_err());
        assert!(db(f64::NAN).run(&[0.0], 1).is_err());
    }
}

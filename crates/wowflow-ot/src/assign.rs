//! Turning flowed classes back into labels (docs/math.md §8).
//!
//! A flow moves class `c` of the source somewhere near the target, but not necessarily onto
//! target class `c`: the SW-MMD objective is invariant under relabelling the target's
//! classes. Before a frozen classifier can be scored on flowed data, each flowed class needs
//! the label of the target class it landed on. Two ways, both returning the `C × K` matrix
//! they decided from so it can be inspected:
//!
//! - [`assign_by_ot`]: exact OT (network simplex, [`crate::exact_ot`]) between the class
//!   histograms `a` and `b` with cost `W_2²(μ_c, ν_k)` (exact OT between the clouds) or
//!   `SW_2²(μ_c, ν_k)`; flowed class `c` gets `argmax_k Γ_ck`. With `C = K` uniform classes
//!   the optimal plan is a permutation (a vertex of the Birkhoff polytope), so the labels
//!   are a bijection; with other counts the plan is the soft correspondence docs/math.md
//!   §8 describes and the label is its largest entry.
//! - [`assign_by_nearest_neighbor`]: every flowed particle votes for the class of its
//!   nearest target particle (squared Euclidean distance); flowed class `c` gets the
//!   majority vote. The matrix returned is the vote share, its "cost" `1 − share`.

use crate::distance::class_w2_costs;
use crate::exact_ot;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use wowflow_core::cloud::LabeledCloud;
use wowflow_core::directions::DirectionSampler;
use wowflow_core::engine::{CpuEngine, Engine};
use wowflow_core::error::{shape, CoreError, Result};
use wowflow_core::linalg::pairwise_sq_dists;
use wowflow_core::ot1d::CostPower;

/// The cost between a flowed class and a target class used by [`assign_by_ot`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ClassCost {
    /// Exact `W_2²` between the class clouds (a network simplex per class pair:
    /// about 0.1 s per pair of 500-particle classes on one core).
    Wasserstein,
    /// `SW_2²` with `projections` Gaussian directions drawn from `seed` (cheap: two GEMMs and
    /// sorts).
    Sliced {
        /// Number `L` of directions.
        projections: usize,
        /// Seed of the ChaCha8 stream the directions are drawn from.
        seed: u64,
    },
}

/// How a [`LabelAssignment`] was decided.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum AssignmentMethod {
    /// Exact OT between class histograms with the given class cost.
    Ot {
        /// The class cost the `C × K` matrix was computed with.
        cost: ClassCost,
    },
    /// Exact OT on a cost matrix supplied by the caller (e.g. the flow's own sliced costs).
    OtOnCosts,
    /// 1-NN majority vote against the target particles.
    NearestNeighbor,
}

/// Labels for the classes of a flowed dataset, with the matrix they were read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelAssignment {
    /// How the labels were decided (and so what `costs` and `plan` hold).
    pub method: AssignmentMethod,
    /// `labels[c]` = index `k` (in `0..K`) of the target class given to flowed class `c`.
    /// The target's class id is `target.class_ids()[k]` (see [`LabelAssignment::target_ids`]).
    pub labels: Vec<usize>,
    /// Row-major `C × K` costs: `W_2²`, `SW_2²`, the supplied costs, or `1 − vote share`.
    pub costs: Vec<f64>,
    /// Row-major `C × K`: the optimal plan `Γ` (OT; rows sum to `a_c`) or the vote shares
    /// (1-NN; rows sum to 1).
    pub plan: Vec<f64>,
    /// `C`, the number of flowed classes.
    pub sources: usize,
    /// `K`, the number of target classes.
    pub targets: usize,
    /// `Σ Γ_ck cost_ck` for OT (the outer WoW-type cost), the mean `1 − share` for 1-NN.
    pub total_cost: f64,
}

impl LabelAssignment {
    /// The target class ids given to each flowed class.
    pub fn target_ids(&self, target: &LabeledCloud) -> Vec<i64> {
        self.labels.iter().map(|&k| target.class_ids()[k]).collect()
    }

    /// True when no two flowed classes received the same label and every target class is
    /// used (`C = K`).
    pub fn is_permutation(&self) -> bool {
        let mut seen = vec![false; self.targets];
        self.sources == self.targets
            && self
                .labels
                .iter()
                .all(|&k| k < self.targets && !std::mem::replace(&mut seen[k], true))
    }

    /// The label of every particle of `flowed` (its class's label), in row order.
    pub fn row_labels(&self, flowed: &LabeledCloud) -> Vec<usize> {
        (0..flowed.n_classes())
            .flat_map(|c| std::iter::repeat_n(self.labels[c], flowed.class_len(c)))
            .collect()
    }
}

fn check_pair(flowed: &LabeledCloud, target: &LabeledCloud) -> Result<()> {
    if flowed.dim() != target.dim() {
        return Err(CoreError::DimensionMismatch {
            what: "target dataset".into(),
            expected: flowed.dim(),
            got: target.dim(),
        });
    }
    Ok(())
}

/// Exact OT assignment on a given `C × K` cost matrix between class histograms `a` (`C`)
/// and `b` (`K`): flowed class `c` gets `argmax_k Γ_ck` (ties: the cheaper class).
pub fn assign_from_costs(a: &[f64], b: &[f64], costs: &[f64]) -> Result<LabelAssignment> {
    let (cn, kn) = (a.len(), b.len());
    if costs.len() != cn * kn {
        return Err(shape(
            "class cost matrix",
            format!("{cn} × {kn} = {} entries", cn * kn),
            costs.len(),
        ));
    }
    let ot = exact_ot(a, b, costs)?;
    let plan = ot.plan.to_dense();
    let labels = (0..cn)
        .map(|c| {
            let row = &plan[c * kn..(c + 1) * kn];
            (0..kn)
                .max_by(|&i, &j| {
                    row[i]
                        .total_cmp(&row[j])
                        .then(costs[c * kn + j].total_cmp(&costs[c * kn + i]))
                })
                .unwrap_or(0)
        })
        .collect();
    Ok(LabelAssignment {
        method: AssignmentMethod::OtOnCosts,
        labels,
        costs: costs.to_vec(),
        plan,
        sources: cn,
        targets: kn,
        total_cost: ot.cost,
    })
}

/// The `C × K` class costs of `cost` between `flowed` and `target`.
pub fn class_costs(
    flowed: &LabeledCloud,
    target: &LabeledCloud,
    cost: ClassCost,
) -> Result<Vec<f64>> {
    check_pair(flowed, target)?;
    match cost {
        ClassCost::Wasserstein => class_w2_costs(flowed, target),
        ClassCost::Sliced { projections, seed } => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let dirs = DirectionSampler::Gaussian.sample(projections, flowed.dim(), &mut rng)?;
            CpuEngine::new().sliced_costs(flowed, target, &dirs, CostPower::Two)
        }
    }
}

/// Assigns labels by exact OT between the class histograms of `flowed` and `target` with
/// class cost `cost` (`W_2²` or `SW_2²`).
pub fn assign_by_ot(
    flowed: &LabeledCloud,
    target: &LabeledCloud,
    cost: ClassCost,
) -> Result<LabelAssignment> {
    let costs = class_costs(flowed, target, cost)?;
    let mut out = assign_from_costs(flowed.class_weights(), target.class_weights(), &costs)?;
    out.method = AssignmentMethod::Ot { cost };
    Ok(out)
}

/// For every particle of `flowed`, the index (in `0..K`) of the target class of its nearest
/// target particle (squared Euclidean distance; ties: the lower row).
pub fn nearest_target_class(flowed: &LabeledCloud, target: &LabeledCloud) -> Result<Vec<usize>> {
    check_pair(flowed, target)?;
    let d = flowed.dim();
    let m = target.n_points();
    let target_class: Vec<usize> = (0..target.n_classes())
        .flat_map(|k| std::iter::repeat_n(k, target.class_len(k)))
        .collect();
    // Blocks of flowed rows keep the distance matrix small (block × M doubles).
    const BLOCK: usize = 256;
    let n = flowed.n_points();
    let blocks: Vec<Vec<usize>> = (0..n.div_ceil(BLOCK))
        .into_par_iter()
        .map(|b| {
            let lo = b * BLOCK;
            let hi = (lo + BLOCK).min(n);
            let dists = pairwise_sq_dists(
                &flowed.points()[lo * d..hi * d],
                hi - lo,
                target.points(),
                m,
                d,
            );
            dists
                .chunks(m.max(1))
                .map(|row| {
                    let j = (0..m)
                        .min_by(|&i, &j| row[i].total_cmp(&row[j]).then(i.cmp(&j)))
                        .unwrap_or(0);
                    target_class[j]
                })
                .collect()
        })
        .collect();
    Ok(blocks.concat())
}

/// Assigns labels by a 1-NN majority vote: flowed class `c` gets the target class most of
/// its particles' nearest target neighbours belong to (ties: the lower class index).
pub fn assign_by_nearest_neighbor(
    flowed: &LabeledCloud,
    target: &LabeledCloud,
) -> Result<LabelAssignment> {
    let nearest = nearest_target_class(flowed, target)?;
    let (cn, kn) = (flowed.n_classes(), target.n_classes());
    let mut plan = vec![0.0; cn * kn];
    for c in 0..cn {
        let range = flowed.class_range(c);
        let len = range.len() as f64;
        for &k in &nearest[range] {
            plan[c * kn + k] += 1.0 / len;
        }
    }
    let labels: Vec<usize> = (0..cn)
        .map(|c| {
            let row = &plan[c * kn..(c + 1) * kn];
            (0..kn)
                .max_by(|&i, &j| row[i].total_cmp(&row[j]).then(j.cmp(&i)))
                .unwrap_or(0)
        })
        .collect();
    let costs: Vec<f64> = plan.iter().map(|s| 1.0 - s).collect();
    let total_cost = labels
        .iter()
        .enumerate()
        .map(|(c, &k)| costs[c * kn + k])
        .sum::<f64>()
        / cn.max(1) as f64;
    Ok(LabelAssignment {
        method: AssignmentMethod::NearestNeighbor,
        labels,
        costs,
        plan,
        sources: cn,
        targets: kn,
        total_cost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_distr::{Distribution, Normal};

    /// `classes` Gaussian blobs in `d` dimensions, class `c` centred at `4·e_{c}` (well
    /// separated), `n` particles each.
    fn blobs(classes: usize, n: usize, d: usize, order: &[usize], seed: u64) -> LabeledCloud {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0f32, 0.5).unwrap();
        let mut points = Vec::new();
        for &c in order.iter().take(classes) {
            for _ in 0..n {
                for j in 0..d {
                    let centre = if j == c { 4.0 } else { 0.0 };
                    points.push(centre + noise.sample(&mut rng));
                }
            }
        }
        LabeledCloud::uniform(classes, n, d, points).unwrap()
    }

    fn permutation(k: usize, seed: u64) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut p: Vec<usize> = (0..k).collect();
        for i in (1..k).rev() {
            p.swap(i, rng.random_range(0..=i));
        }
        p
    }

    #[test]
    fn every_method_recovers_a_known_permutation() {
        let (k, n, d) = (6, 30, 8);
        let target = blobs(k, n, d, &(0..k).collect::<Vec<_>>(), 1);
        let perm = permutation(k, 7);
        assert_ne!(perm, (0..k).collect::<Vec<_>>());
        // Flowed class c sits on target class perm[c].
        let flowed = blobs(k, n, d, &perm, 2);
        for a in [
            assign_by_ot(&flowed, &target, ClassCost::Wasserstein).unwrap(),
            assign_by_ot(
                &flowed,
                &target,
                ClassCost::Sliced {
                    projections: 200,
                    seed: 3,
                },
            )
            .unwrap(),
            assign_by_nearest_neighbor(&flowed, &target).unwrap(),
        ] {
            assert_eq!(a.labels, perm, "{:?}", a.method);
            assert!(a.is_permutation());
            assert_eq!((a.sources, a.targets, a.costs.len()), (k, k, k * k));
            // The chosen entry is the cheapest of its row for these separated blobs.
            for (row, &expected) in a.costs.chunks(k).zip(&perm) {
                let best = (0..k).min_by(|&i, &j| row[i].total_cmp(&row[j])).unwrap();
                assert_eq!(best, expected);
            }
        }
    }

    #[test]
    fn ot_plan_is_a_scaled_permutation_and_ids_follow_the_target() {
        let costs = vec![
            5.0, 1.0, 9.0, //
            1.0, 5.0, 9.0, //
            9.0, 9.0, 0.5,
        ];
        let a = assign_from_costs(&[1.0; 3], &[1.0; 3], &costs).unwrap();
        assert_eq!(a.labels, vec![1, 0, 2]);
        assert!((a.total_cost - 2.5 / 3.0).abs() < 1e-12);
        for c in 0..3 {
            assert!((a.plan[c * 3 + a.labels[c]] - 1.0 / 3.0).abs() < 1e-12);
        }
        let target =
            LabeledCloud::from_parts(vec![0.0; 3], 1, vec![0, 1, 2, 3], vec![7, 8, 9]).unwrap();
        assert_eq!(a.target_ids(&target), vec![8, 7, 9]);
        let err = assign_from_costs(&[1.0; 2], &[1.0; 3], &costs).unwrap_err();
        assert!(err.to_string().contains("2 × 3 = 6 entries"), "{err}");
    }

    #[test]
    fn more_flowed_classes_than_targets_share_labels() {
        // Four flowed classes, two target classes: classes 0, 2 near target 1; 1, 3 near 0.
        let target = blobs(2, 20, 4, &[0, 1], 5);
        let flowed = blobs(4, 20, 4, &[1, 0, 1, 0], 6);
        let a = assign_by_ot(&flowed, &target, ClassCost::Wasserstein).unwrap();
        assert_eq!(a.labels, vec![1, 0, 1, 0]);
        assert!(!a.is_permutation());
        let v = assign_by_nearest_neighbor(&flowed, &target).unwrap();
        assert_eq!(v.labels, vec![1, 0, 1, 0]);
        assert_eq!(v.row_labels(&flowed).len(), 80);
        assert!(v
            .plan
            .chunks(2)
            .all(|r| (r.iter().sum::<f64>() - 1.0).abs() < 1e-12));
    }
}

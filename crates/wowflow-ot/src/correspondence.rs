//! Class correspondence between two label sets (Alvarez-Melis & Fusi 2021, §6.4; docs/math.md
//! §8), and the matching of cluster ids with true labels that scoring unsupervised flows
//! needs (their Appendix C).
//!
//! A classifier trained on `K` classes can classify data of another dataset with `C` classes
//! once that data has been flowed into its domain — if the `K` outputs are mapped back to the
//! `C` classes. The map comes from the optimal coupling `Γ` (`C × K`) between the two class
//! histograms `a` and `b` with the label-to-label costs (`W₂²` or `SW₂²` between class
//! measures): `P(c | k) = Γ_ck / b_k`, the share of target class `k`'s mass that came from
//! class `c`. Appended to the classifier as a final linear layer on its class probabilities,
//!
//! ```text
//! q_c(x) = Σ_k P(c | k) p_k(x),      q = Mᵀ p,  M ∈ R^{K × C},  rows of M sum to 1,
//! ```
//!
//! it turns the `K`-way prediction `p(x)` into a `C`-way one, and `q` is again a probability
//! vector. With `C = K` uniform classes `Γ` is a permutation over `K` and the layer only
//! relabels; with `C ≠ K` (26 letters against 10 digits) it splits and merges mass.

use crate::assign::{AssignmentMethod, LabelAssignment};
use crate::assignment::linear_assignment;
use crate::exact_ot;
use serde::{Deserialize, Serialize};
use wowflow_core::error::{invalid, shape, Result};

/// The linear layer `q = Mᵀ p` from a target-class prediction `p` (`K` entries) to the
/// source classes (`C` entries), read off an optimal class coupling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassCorrespondence {
    /// `C`: classes of the flowed (source) dataset, the layer's outputs.
    pub sources: usize,
    /// `K`: classes the classifier predicts, the layer's inputs.
    pub targets: usize,
    /// Row-major `K × C`: `M_kc = P(c | k) = Γ_ck / b_k`. A target class that received no
    /// mass (`b_k = 0`) spreads as the source histogram `a` does, so every row sums to 1.
    pub matrix: Vec<f64>,
    /// Row-major `C × K`: the coupling `Γ` the layer was read from (rows sum to `a`, columns
    /// to `b`, total mass 1).
    pub plan: Vec<f64>,
}

impl ClassCorrespondence {
    /// The layer of a coupling `plan` (row-major `C × K`, non-negative, finite, positive
    /// total mass; normalised to mass 1 here).
    pub fn from_plan(plan: &[f64], sources: usize, targets: usize) -> Result<Self> {
        if sources == 0 || targets == 0 {
            return Err(invalid(
                "class coupling",
                format!("needs at least one class on each side, got {sources} × {targets}"),
            ));
        }
        if plan.len() != sources * targets {
            return Err(shape(
                "class coupling",
                format!("C × K = {sources} × {targets} entries"),
                plan.len(),
            ));
        }
        if let Some(i) = plan.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(invalid(
                "class coupling",
                format!(
                    "entry ({}, {}) is {}: a coupling is finite and non-negative",
                    i / targets,
                    i % targets,
                    plan[i]
                ),
            ));
        }
        let total: f64 = plan.iter().sum();
        if total <= 0.0 {
            return Err(invalid("class coupling", "has no mass"));
        }
        let plan: Vec<f64> = plan.iter().map(|v| v / total).collect();
        let a: Vec<f64> = plan.chunks_exact(targets).map(|r| r.iter().sum()).collect();
        let mut matrix = vec![0.0; targets * sources];
        for k in 0..targets {
            let b_k: f64 = (0..sources).map(|c| plan[c * targets + k]).sum();
            for c in 0..sources {
                matrix[k * sources + c] = if b_k > 0.0 {
                    plan[c * targets + k] / b_k
                } else {
                    a[c]
                };
            }
        }
        Ok(Self {
            sources,
            targets,
            matrix,
            plan,
        })
    }

    /// The layer of the exact optimal coupling between class histograms `a` (`C`) and `b`
    /// (`K`) under the row-major `C × K` label-to-label `costs`.
    pub fn from_costs(a: &[f64], b: &[f64], costs: &[f64]) -> Result<Self> {
        if costs.len() != a.len() * b.len() {
            return Err(shape(
                "label-to-label costs",
                format!("C × K = {} × {} entries", a.len(), b.len()),
                costs.len(),
            ));
        }
        let ot = exact_ot(a, b, costs)?;
        Self::from_plan(&ot.plan.to_dense(), a.len(), b.len())
    }

    /// The layer of the coupling a label assignment by OT decided from
    /// ([`crate::assign_by_ot`], [`crate::assign_from_costs`]); a 1-NN assignment holds vote
    /// shares, not a coupling, and is refused.
    pub fn from_assignment(assignment: &LabelAssignment) -> Result<Self> {
        if assignment.method == AssignmentMethod::NearestNeighbor {
            return Err(invalid(
                "label assignment",
                "a 1-NN vote has no coupling to read a correspondence from: assign by OT",
            ));
        }
        Self::from_plan(&assignment.plan, assignment.sources, assignment.targets)
    }

    /// `q = Mᵀ p` for each of the `n` rows of `probs` (row-major `n × K` class probabilities
    /// of the classifier): row-major `n × C` probabilities of the source classes.
    pub fn apply(&self, probs: &[f64], n: usize) -> Result<Vec<f64>> {
        if probs.len() != n * self.targets {
            return Err(shape(
                "classifier probabilities",
                format!("n × K = {n} × {}", self.targets),
                probs.len(),
            ));
        }
        let (k_n, c_n) = (self.targets, self.sources);
        let mut out = vec![0.0; n * c_n];
        for (p, q) in probs.chunks_exact(k_n).zip(out.chunks_exact_mut(c_n)) {
            for (k, &pk) in p.iter().enumerate() {
                if pk == 0.0 {
                    continue;
                }
                for (qc, &m) in q.iter_mut().zip(&self.matrix[k * c_n..(k + 1) * c_n]) {
                    *qc += m * pk;
                }
            }
        }
        Ok(out)
    }

    /// The most probable source class of each row of `probs` after the layer (ties: the
    /// smaller class index).
    pub fn predict(&self, probs: &[f64], n: usize) -> Result<Vec<usize>> {
        let q = self.apply(probs, n)?;
        Ok(q.chunks_exact(self.sources).map(argmax).collect())
    }
}

/// Index of the largest entry (the first of equal ones); NaN never wins over a number.
pub fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] || row[best].is_nan() {
            best = i;
        }
    }
    best
}

/// A one-to-one matching of `C` predicted ids (cluster ids, pseudo-labels) with `K` true
/// labels that maximises the number of points whose matched id is their true label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMatching {
    /// `label_of[j]`: the true label matched with id `j` (`None` when `C > K` left `j`
    /// without one).
    pub label_of: Vec<Option<usize>>,
    /// Points whose id is matched with their true label.
    pub agreeing: usize,
    /// Points scored.
    pub total: usize,
}

impl LabelMatching {
    /// The best matching of ids `ids` (in `0..c`) with labels `truth` (in `0..k`), one per
    /// point: a linear assignment on the `C × K` contingency table (padded square), so no
    /// two ids share a label.
    pub fn best(ids: &[usize], truth: &[usize], c: usize, k: usize) -> Result<Self> {
        if ids.len() != truth.len() {
            return Err(shape("true labels", "one per id", truth.len()));
        }
        if let Some(i) = ids.iter().position(|&j| j >= c) {
            return Err(invalid(
                "ids",
                format!("point {i} has id {} outside 0..{c}", ids[i]),
            ));
        }
        if let Some(i) = truth.iter().position(|&l| l >= k) {
            return Err(invalid(
                "true labels",
                format!("point {i} has label {} outside 0..{k}", truth[i]),
            ));
        }
        let n = c.max(k).max(1);
        let mut counts = vec![0.0; n * n];
        for (&j, &l) in ids.iter().zip(truth) {
            counts[j * n + l] += 1.0;
        }
        let cost: Vec<f64> = counts.iter().map(|v| -v).collect();
        let assignment = linear_assignment(&cost, n)?;
        let label_of: Vec<Option<usize>> = (0..c)
            .map(|j| Some(assignment.col_of_row[j]).filter(|&l| l < k))
            .collect();
        let agreeing = (0..c)
            .filter_map(|j| label_of[j].map(|l| counts[j * n + l] as usize))
            .sum();
        Ok(Self {
            label_of,
            agreeing,
            total: ids.len(),
        })
    }

    /// `agreeing / total` (0 for no points).
    pub fn accuracy(&self) -> f64 {
        self.agreeing as f64 / self.total.max(1) as f64
    }

    /// The fraction of points whose id `predicted[i]`, mapped through this matching, equals
    /// `truth[i]` (ids without a label count as wrong).
    pub fn accuracy_of(&self, predicted: &[usize], truth: &[usize]) -> Result<f64> {
        if predicted.len() != truth.len() {
            return Err(shape("true labels", "one per prediction", truth.len()));
        }
        let right = predicted
            .iter()
            .zip(truth)
            .filter(|(&j, &l)| self.label_of.get(j).copied().flatten() == Some(l))
            .count();
        Ok(right as f64 / predicted.len().max(1) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permutation_coupling_only_relabels() {
        // Γ sends source class c to target class (c + 1) mod 3.
        let mut plan = vec![0.0; 9];
        for c in 0..3 {
            plan[c * 3 + (c + 1) % 3] = 1.0 / 3.0;
        }
        let layer = ClassCorrespondence::from_plan(&plan, 3, 3).unwrap();
        let probs = [0.1, 0.7, 0.2, 0.6, 0.3, 0.1];
        let q = layer.apply(&probs, 2).unwrap();
        // q_c = p_{(c+1) mod 3}.
        for (got, want) in q.iter().zip([0.7, 0.2, 0.1, 0.3, 0.1, 0.6]) {
            assert!((got - want).abs() < 1e-15, "{q:?}");
        }
        assert_eq!(layer.predict(&probs, 2).unwrap(), vec![0, 2]);
    }

    #[test]
    fn more_source_classes_than_outputs_split_each_output() {
        // C = 3 source classes with masses (0.5, 0.25, 0.25) onto K = 2 targets (0.5, 0.5):
        // class 0 → target 0; classes 1 and 2 → target 1 (costs make this the optimum).
        let a = [0.5, 0.25, 0.25];
        let b = [0.5, 0.5];
        let costs = [0.0, 4.0, 3.0, 1.0, 5.0, 0.5];
        let layer = ClassCorrespondence::from_costs(&a, &b, &costs).unwrap();
        let m = &layer.matrix;
        let want = [1.0, 0.0, 0.0, 0.0, 0.5, 0.5];
        for (got, want) in m.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{m:?}");
        }
        // Rows of M sum to 1, so the layer maps probabilities to probabilities.
        let q = layer.apply(&[0.2, 0.8], 1).unwrap();
        assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((q[0] - 0.2).abs() < 1e-12 && (q[1] - 0.4).abs() < 1e-12);
    }

    #[test]
    fn fewer_source_classes_than_outputs_merge_outputs() {
        // C = 2 sources, K = 3 targets: target 0 and 1 both come from source 0.
        let a = [2.0 / 3.0, 1.0 / 3.0];
        let b = [1.0 / 3.0; 3];
        let costs = [0.0, 0.0, 9.0, 9.0, 9.0, 0.0];
        let layer = ClassCorrespondence::from_costs(&a, &b, &costs).unwrap();
        assert_eq!(
            layer.predict(&[0.4, 0.4, 0.2, 0.1, 0.1, 0.8], 2).unwrap(),
            vec![0, 1]
        );
        // The coupling's marginals are the histograms.
        let rows: Vec<f64> = layer.plan.chunks(3).map(|r| r.iter().sum()).collect();
        assert!((rows[0] - a[0]).abs() < 1e-12 && (rows[1] - a[1]).abs() < 1e-12);
    }

    #[test]
    fn a_target_class_without_mass_spreads_like_the_sources() {
        let plan = [0.75, 0.0, 0.25, 0.0];
        let layer = ClassCorrespondence::from_plan(&plan, 2, 2).unwrap();
        assert_eq!(layer.matrix, vec![0.75, 0.25, 0.75, 0.25]);
    }

    #[test]
    fn bad_layers_and_inputs_are_refused() {
        assert!(ClassCorrespondence::from_plan(&[0.5, 0.5], 2, 2).is_err());
        assert!(ClassCorrespondence::from_plan(&[0.5, f64::NAN], 1, 2).is_err());
        assert!(ClassCorrespondence::from_plan(&[0.5, -0.1], 1, 2).is_err());
        assert!(ClassCorrespondence::from_plan(&[0.0, 0.0], 1, 2).is_err());
        let layer = ClassCorrespondence::from_plan(&[0.5, 0.5], 1, 2).unwrap();
        let e = layer.apply(&[0.3, 0.3, 0.4], 1).unwrap_err().to_string();
        assert!(e.contains("classifier probabilities"), "{e}");
    }

    #[test]
    fn the_best_matching_is_the_permutation_with_most_agreement() {
        // Clusters 0,1,2 are labels 2,0,1 with one mistake.
        let ids = [0, 0, 0, 1, 1, 2, 2, 2];
        let truth = [2, 2, 1, 0, 0, 1, 1, 1];
        let m = LabelMatching::best(&ids, &truth, 3, 3).unwrap();
        assert_eq!(m.label_of, vec![Some(2), Some(0), Some(1)]);
        assert_eq!((m.agreeing, m.total), (7, 8));
        assert_eq!(m.accuracy_of(&[1, 2, 0], &[0, 1, 1]).unwrap(), 2.0 / 3.0);
        // Brute force over the 6 permutations agrees.
        let perms = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let best = perms
            .iter()
            .map(|p| ids.iter().zip(&truth).filter(|(&j, &l)| p[j] == l).count())
            .max()
            .unwrap();
        assert_eq!(best, m.agreeing);
    }

    #[test]
    fn unequal_counts_leave_ids_or_labels_unmatched() {
        // 4 clusters, 2 labels: two clusters get no label and count as wrong.
        let ids = [0, 1, 2, 3, 3];
        let truth = [0, 1, 1, 0, 0];
        let m = LabelMatching::best(&ids, &truth, 4, 2).unwrap();
        assert_eq!(m.label_of.iter().filter(|l| l.is_some()).count(), 2);
        assert_eq!(m.label_of[3], Some(0));
        assert_eq!(m.agreeing, 3);
        assert!(LabelMatching::best(&[0, 5], &[0, 1], 4, 2).is_err());
        assert!(LabelMatching::best(&[0, 1], &[0, 2], 4, 2).is_err());
    }
}

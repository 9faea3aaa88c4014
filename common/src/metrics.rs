//! Binary classification metrics: accuracy, precision, recall, F1 (positive class 1) and ROC AUC.

use serde::{Deserialize, Serialize};

/// The five metrics the original reported, for one model on one split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryMetrics {
    /// Share of correct decisions.
    pub accuracy: f64,
    /// Of the rows called fire, the share that were fire (0 when none was called fire).
    pub precision: f64,
    /// Of the fire rows, the share called fire (0 when there were none).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Area under the ROC curve of the probabilities; `None` when the split holds one class.
    pub auc: Option<f64>,
}

impl BinaryMetrics {
    /// Metrics of probabilities `p` against 0/1 `labels`, deciding fire when `p > threshold`.
    pub fn compute(labels: &[f32], p: &[f32], threshold: f64) -> Self {
        assert_eq!(labels.len(), p.len(), "one probability per label");
        let (mut tp, mut fp, mut tn, mut fn_) = (0usize, 0usize, 0usize, 0usize);
        for (&y, &q) in labels.iter().zip(p) {
            match (y == 1.0, f64::from(q) > threshold) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (false, false) => tn += 1,
                (true, false) => fn_ += 1,
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Self {
            accuracy: ratio(tp + tn, labels.len()),
            precision,
            recall,
            f1,
            auc: roc_auc(labels, p),
        }
    }

    /// `(name, value)` pairs in reporting order; AUC only when defined.
    pub fn named(&self) -> Vec<(&'static str, f64)> {
        let mut out = vec![
            ("accuracy", self.accuracy),
            ("precision", self.precision),
            ("recall", self.recall),
            ("f1", self.f1),
        ];
        if let Some(auc) = self.auc {
            out.push(("auc", auc));
        }
        out
    }
}

/// ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted as half; `None` for one class.
pub fn roc_auc(labels: &[f32], p: &[f32]) -> Option<f64> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_unstable_by(|&a, &b| p[a].total_cmp(&p[b]));
    let positives = labels.iter().filter(|&&y| y == 1.0).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Sum of the (tie-averaged, 1-based) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && p[order[j + 1]] == p[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mean_rank * order[i..=j].iter().filter(|&&k| labels[k] == 1.0).count() as f64;
        i = j + 1;
    }
    let (np, nn) = (positives as f64, negatives as f64);
    Some((rank_sum - np * (np + 1.0) / 2.0) / (np * nn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_counts() {
        let y = [1.0, 1.0, 0.0, 0.0, 1.0];
        let p = [0.9, 0.4, 0.6, 0.1, 0.5];
        let m = BinaryMetrics::compute(&y, &p, 0.5);
        // decisions: 1, 0, 1, 0, 0 (0.5 is not > 0.5)
        assert_eq!(m.accuracy, 0.4);
        assert_eq!(m.precision, 0.5);
        assert!((m.recall - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.f1 - 0.4).abs() < 1e-12);
    }

    #[test]
    fn auc_matches_pair_counting_with_ties() {
        let y = [0.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let p = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4];
        // pairs (pos, neg): count pos > neg as 1, ties 0.5
        let mut s = 0.0;
        let mut n = 0.0;
        for (i, &yi) in y.iter().enumerate() {
            for (j, &yj) in y.iter().enumerate() {
                if yi == 1.0 && yj == 0.0 {
                    n += 1.0;
                    s += if p[i] > p[j] {
                        1.0
                    } else if p[i] == p[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((roc_auc(&y, &p).unwrap() - s / n).abs() < 1e-12);
        assert_eq!(roc_auc(&[1.0, 1.0], &[0.2, 0.3]), None);
    }
}

//! Evaluation metrics: binary (accuracy, precision, recall, F1, ROC AUC), multi-class (accuracy,
//! per-class precision / recall / F1, confusion matrix, log loss) and regression (RMSE, MAE, R2).

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

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// Of the rows predicted as the class, the share that were (0 when none was).
    pub precision: f64,
    /// Of the rows of the class, the share predicted as it (0 when there were none).
    pub recall: f64,
    /// Harmonic mean of the two (0 when both are 0).
    pub f1: f64,
    /// Rows of the class.
    pub support: usize,
}

/// The index of the largest probability (the lowest index on ties; 0 for an empty row).
pub fn most_probable(p: ndarray::ArrayView1<f32>) -> usize {
    (1..p.len()).fold(0, |best, k| if p[k] > p[best] { k } else { best })
}

/// Multi-class metrics of one model on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiClassMetrics {
    /// Share of rows whose most probable class is the label.
    pub accuracy: f64,
    /// Mean negative log probability of the label (probabilities clipped at 1e-15).
    pub log_loss: f64,
    /// Per class, in class order.
    pub classes: Vec<ClassScores>,
    /// `confusion[label][predicted]` row counts.
    pub confusion: Vec<Vec<usize>>,
}

impl MultiClassMetrics {
    /// Metrics of `probabilities` (one row per label, one column per class) against class
    /// indices `labels`; the prediction is the most probable class (lowest index on ties).
    pub fn compute(labels: &[f32], probabilities: ndarray::ArrayView2<f32>) -> Self {
        let k = probabilities.ncols();
        assert_eq!(labels.len(), probabilities.nrows(), "one row per label");
        let mut confusion = vec![vec![0usize; k]; k];
        let mut log_loss = 0.0;
        for (&y, p) in labels.iter().zip(probabilities.rows()) {
            confusion[y as usize][most_probable(p)] += 1;
            log_loss -= f64::from(p[y as usize]).clamp(1e-15, 1.0).ln();
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let classes = (0..k)
            .map(|c| {
                let hit = confusion[c][c];
                let predicted: usize = confusion.iter().map(|row| row[c]).sum();
                let support: usize = confusion[c].iter().sum();
                let (precision, recall) = (ratio(hit, predicted), ratio(hit, support));
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassScores {
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
        Self {
            accuracy: ratio(correct, labels.len()),
            log_loss: log_loss / labels.len().max(1) as f64,
            classes,
            confusion,
        }
    }
}

/// Regression metrics of one model on one split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionMetrics {
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination, 1 - SSE / SST (0 when the labels are constant).
    pub r2: f64,
}

impl RegressionMetrics {
    /// Metrics of predictions `p` against `labels`.
    pub fn compute(labels: &[f32], p: &[f32]) -> Self {
        assert_eq!(labels.len(), p.len(), "one prediction per label");
        let n = labels.len().max(1) as f64;
        let mean = labels.iter().map(|&y| f64::from(y)).sum::<f64>() / n;
        let (mut sse, mut sae, mut sst) = (0.0, 0.0, 0.0);
        for (&y, &q) in labels.iter().zip(p) {
            let e = f64::from(y) - f64::from(q);
            sse += e * e;
            sae += e.abs();
            sst += (f64::from(y) - mean).powi(2);
        }
        Self {
            rmse: (sse / n).sqrt(),
            mae: sae / n,
            r2: if sst == 0.0 { 0.0 } else { 1.0 - sse / sst },
        }
    }
}

/// Metrics of predicted class labels, as scikit-learn defines them (the names SageMaker's
/// built-in XGBoost computes itself): `accuracy`, `balanced_accuracy` (mean recall over the
/// classes in `labels`), `precision`, `recall`, `f1_binary` (of class 1), `f1` and the `_macro`
/// averages (over the classes in `labels` or `predicted`; 0 where undefined), and the `_micro`
/// averages (equal to accuracy for one label per row). `None` for another name.
pub fn label_metric(name: &str, labels: &[f32], predicted: &[f32]) -> Option<f64> {
    use std::collections::BTreeMap;
    // Per class: (true positives, predicted count, actual count).
    let mut classes: BTreeMap<i64, (usize, usize, usize)> = BTreeMap::new();
    let mut correct = 0;
    for (&y, &p) in labels.iter().zip(predicted) {
        let (y, p) = (y as i64, p as i64);
        classes.entry(p).or_default().1 += 1;
        let c = classes.entry(y).or_default();
        c.2 += 1;
        if y == p {
            c.0 += 1;
            correct += 1;
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = |c: &(usize, usize, usize)| ratio(c.0, c.1);
    let recall = |c: &(usize, usize, usize)| ratio(c.0, c.2);
    let f1 = |c: &(usize, usize, usize)| ratio(2 * c.0, c.1 + c.2);
    let macro_of = |f: &dyn Fn(&(usize, usize, usize)) -> f64| {
        classes.values().map(f).sum::<f64>() / classes.len().max(1) as f64
    };
    let positive = classes.get(&1).copied().unwrap_or_default();
    Some(match name {
        "accuracy" | "precision_micro" | "recall_micro" => ratio(correct, labels.len()),
        "balanced_accuracy" => {
            let present: Vec<f64> = classes.values().filter(|c| c.2 > 0).map(recall).collect();
            present.iter().sum::<f64>() / present.len().max(1) as f64
        }
        "precision" => precision(&positive),
        "recall" => recall(&positive),
        "f1_binary" => f1(&positive),
        "f1" | "f1_macro" => macro_of(&f1),
        "precision_macro" => macro_of(&precision),
        "recall_macro" => macro_of(&recall),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiclass_confusion_and_per_class_scores() {
        let y = [0.0, 1.0, 2.0, 2.0];
        let p = ndarray::arr2(&[
            [0.8f32, 0.1, 0.1],
            [0.6, 0.3, 0.1],
            [0.1, 0.1, 0.8],
            [0.2, 0.5, 0.3],
        ]);
        let m = MultiClassMetrics::compute(&y, p.view());
        assert_eq!(
            m.confusion,
            vec![vec![1, 0, 0], vec![1, 0, 0], vec![0, 1, 1]]
        );
        assert_eq!(m.accuracy, 0.5);
        assert_eq!(m.classes[0].precision, 0.5);
        assert_eq!(m.classes[0].recall, 1.0);
        assert_eq!(m.classes[1].f1, 0.0);
        assert_eq!(m.classes[2].support, 2);
        let want = -(0.8f64.ln() + 0.3f64.ln() + 0.8f64.ln() + 0.3f64.ln()) / 4.0;
        assert!((m.log_loss - want).abs() < 1e-6);
    }

    #[test]
    fn regression_errors() {
        let m = RegressionMetrics::compute(&[1.0, 2.0, 3.0], &[1.0, 2.0, 6.0]);
        assert!((m.rmse - 3.0f64.sqrt()).abs() < 1e-12);
        assert_eq!(m.mae, 1.0);
        assert!((m.r2 - (1.0 - 9.0 / 2.0)).abs() < 1e-12);
    }

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

    #[test]
    fn label_metrics_match_scikit_learn() {
        // sklearn on y=[0,1,2,2,1,0], p=[0,2,2,2,1,1]: accuracy 4/6, balanced 0.6667,
        // f1_macro 0.6556, precision_macro 0.7222, recall_macro 0.6667, binary class-1 f1 0.5.
        let y = [0.0, 1.0, 2.0, 2.0, 1.0, 0.0];
        let p = [0.0, 2.0, 2.0, 2.0, 1.0, 1.0];
        let m = |n| label_metric(n, &y, &p).unwrap();
        assert!((m("accuracy") - 4.0 / 6.0).abs() < 1e-12);
        assert!((m("balanced_accuracy") - 2.0 / 3.0).abs() < 1e-12);
        assert!((m("f1_macro") - (2.0 / 3.0 + 0.5 + 0.8) / 3.0).abs() < 1e-12);
        assert!((m("precision_macro") - (1.0 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((m("recall_macro") - (0.5 + 0.5 + 1.0) / 3.0).abs() < 1e-12);
        assert!((m("f1_binary") - 0.5).abs() < 1e-12);
        assert_eq!(label_metric("rmse", &y, &p), None);
    }
}

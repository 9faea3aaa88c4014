//! Evaluation results: `evaluation.json` and the metric log lines hyperparameter tuning reads.
//!
//! Log format, one metric per line on stdout: `metric: <split>:<name>=<value>` for the ensemble
//! and `metric: <split>:<member>:<name>=<value>` for each member, e.g.
//! `metric: validation:auc=0.752801` or `metric: test:random_forest:f1=0.646213`.

use common::metrics::BinaryMetrics;
use common::models::ensemble::Member;
use serde::Serialize;
use std::collections::BTreeMap;

/// Metrics of every member and the ensemble on one split.
#[derive(Debug, Clone, Serialize)]
pub struct SplitMetrics {
    /// Per member, by name.
    pub members: BTreeMap<&'static str, BinaryMetrics>,
    /// The weighted ensemble.
    pub ensemble: BinaryMetrics,
}

/// The document written to `evaluation.json` and into the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The split the headline metrics are on: `test`, or `validation` when there is no test split.
    pub evaluated_on: &'static str,
    /// Rows per split.
    pub rows: BTreeMap<&'static str, usize>,
    /// Member weights, by name.
    pub weights: BTreeMap<&'static str, f64>,
    /// How the weights were chosen.
    pub weighting: &'static str,
    /// Decision threshold.
    pub threshold: f64,
    /// Metrics on the validation split.
    pub validation: SplitMetrics,
    /// Metrics on the test split, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<SplitMetrics>,
    /// Seconds spent fitting each member.
    pub fit_seconds: BTreeMap<&'static str, f64>,
}

/// The metric log lines of one split.
pub fn metric_lines(split: &str, m: &SplitMetrics) -> Vec<String> {
    let mut out: Vec<String> = m
        .ensemble
        .named()
        .into_iter()
        .map(|(k, v)| format!("metric: {split}:{k}={v:.6}"))
        .collect();
    for (member, metrics) in &m.members {
        out.extend(
            metrics
                .named()
                .into_iter()
                .map(|(k, v)| format!("metric: {split}:{member}:{k}={v:.6}")),
        );
    }
    out
}

/// Keys a member map by member name.
pub fn by_name<T: Clone>(map: &BTreeMap<Member, T>) -> BTreeMap<&'static str, T> {
    map.iter().map(|(m, v)| (m.name(), v.clone())).collect()
}

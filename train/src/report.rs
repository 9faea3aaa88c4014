//! Evaluation results: `evaluation.json` and the metric log lines hyperparameter tuning reads.
//!
//! Log format, one metric per line on stdout: `metric: <split>:<name>=<value>` for the ensemble
//! and `metric: <split>:<member>:<name>=<value>` for each member, e.g.
//! `metric: validation:auc=0.752801` or `metric: test:random_forest:f1=0.646213`. The IOPS
//! models log `metric: <split>:classifier:<name>=...` and `metric: <split>:regressor:<name>=...`
//! besides XGBoost's own per-round lines.

use common::artifact::{self, Manifest, Payload};
use common::kinds::ModelKind;
use common::metrics::BinaryMetrics;
use common::models::ensemble::Member;
use common::models::xgboost;
use common::opt_ml::OptMl;
use common::{Error, Result};
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
    /// Whether the fit was ended by SIGTERM (`save_model_on_termination`); the manifest's
    /// `partial` says what the model holds.
    pub partial: bool,
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

/// Writes `evaluation.json` into `/opt/ml/output/data` (atomically).
pub fn write_evaluation(opt_ml: &OptMl, evaluation: &impl Serialize) -> Result<()> {
    write_output_json(opt_ml, "evaluation.json", evaluation)
}

/// Writes `doc` as pretty JSON to `/opt/ml/output/data/<file_name>` (atomically).
pub fn write_output_json(opt_ml: &OptMl, file_name: &str, doc: &impl Serialize) -> Result<()> {
    let json = serde_json::to_vec_pretty(doc).map_err(|e| Error::Fit(e.to_string()))?;
    let out = opt_ml.output_data_dir();
    common::access::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    artifact::write_atomic(&out.join(file_name), &json)
}

/// Keys a member map by member name.
pub fn by_name<T: Clone>(map: &BTreeMap<Member, T>) -> BTreeMap<&'static str, T> {
    map.iter().map(|(m, v)| (m.name(), v.clone())).collect()
}

/// A manifest with the fields every model kind fills alike (no threshold, no weighting, payloads
/// filled in by [`common::artifact::save`]); the library versions are XGBoost's and this build's.
pub fn manifest(
    model_kind: ModelKind,
    feature_names: Vec<String>,
    metrics: &impl Serialize,
    rows: &BTreeMap<&'static str, usize>,
    hyperparameters: &BTreeMap<String, String>,
    training_ranges: BTreeMap<String, [f32; 2]>,
) -> Result<Manifest> {
    Ok(Manifest {
        metrics: serde_json::to_value(metrics).map_err(|e| Error::Fit(e.to_string()))?,
        hyperparameters: hyperparameters.clone(),
        library_versions: BTreeMap::from([
            ("xgboost".to_owned(), xgboost::library_version()),
            ("train".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        ]),
        rows: rows.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        training_ranges,
        ..Manifest::new(model_kind, feature_names)
    })
}

/// Writes the model directory (payloads, then the manifest, atomically) and logs where.
pub fn write_model(opt_ml: &OptMl, manifest: Manifest, payloads: Vec<Payload>) -> Result<()> {
    let dir = opt_ml.model_dir();
    artifact::save(&dir, manifest, payloads)?;
    tracing::info!(dir = %dir.display(), "model written");
    Ok(())
}

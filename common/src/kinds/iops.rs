//! The storage IOPS risk models (`model_kind=iops`): their contract (25 features in model
//! order, the derived five, labels), their artifact both ways and their answers. The models are
//! a risk-level classifier (4 class probabilities) and a performance-score regressor, either or
//! both, each XGBoost trees compiled for prediction.
//!
//! The original pipeline defined the five derived features three incompatible ways
//! (reference-systems.md 2.3). They are defined once, here, from a single row of the 20 raw
//! fields, and both `train` and `serve` compute them through [`schema`]:
//!
//! | feature | definition |
//! |---|---|
//! | `iops_per_latency` | `total_iops / max(avg_latency, 0.01)` (IOPS per millisecond of latency) |
//! | `anomaly_score` | `2 * error_rate + (3 if avg_latency > 10 else 0)` (the original inference rule) |
//! | `trend_score` | `error_trend + latency_spike_count / 10` (how fast errors and spikes grow) |
//! | `capacity_utilization` | `min(total_iops / 15000, 1)` (15,000 IOPS of device capacity) |
//! | `efficiency_ratio` | `bandwidth_mbps / max(total_iops, 1)` (MB/s per IO: the mean transfer size) |

use super::{first_non_finite, Deferred, Model, Predictions, XgboostFiles};
use crate::artifact::{Manifest, Payload, PayloadFile, PayloadFormat};
use crate::data::number::push_f32;
use crate::data::{Derived, Schema, Target, TargetKind};
use crate::error::{Error, Result};
use crate::models::trees::{Link, TreeModel};
use ndarray::{Array2, ArrayView2};
use std::fmt::Write;
use std::sync::Arc;

/// The 25 features in model order: the generator's 20 raw fields, then the derived five.
pub const FEATURE_NAMES: [&str; 25] = [
    "read_iops",
    "write_iops",
    "total_iops",
    "iops_variance",
    "avg_latency",
    "p95_latency",
    "p99_latency",
    "latency_spike_count",
    "bandwidth_mbps",
    "throughput_variance",
    "error_rate",
    "error_trend",
    "hour_of_day",
    "day_of_week",
    "time_since_last_alert",
    "sequential_access_ratio",
    "random_access_ratio",
    "queue_depth",
    "io_size_avg",
    "io_size_variance",
    "iops_per_latency",
    "anomaly_score",
    "trend_score",
    "capacity_utilization",
    "efficiency_ratio",
];

/// Number of raw fields an input must give; the rest are derived.
pub const RAW_FEATURES: usize = 20;

/// Risk levels by class index (the encoding the original's inference code assumed).
pub const RISK_LEVELS: [&str; 4] = ["low", "medium", "high", "critical"];

/// Name of the classifier's label.
pub const RISK_LABEL: &str = "risk_level";
/// Name of the regressor's label.
pub const SCORE_LABEL: &str = "performance_score";

/// IOPS a device is taken to sustain, for `capacity_utilization`.
pub const DEVICE_CAPACITY_IOPS: f64 = 15_000.0;

fn raw(row: &[f32], name: &str) -> f64 {
    let i = FEATURE_NAMES
        .iter()
        .position(|n| *n == name)
        .expect("a raw feature name");
    f64::from(row[i])
}

/// Computes derived feature `i` (20..25) from the raw fields of `row`.
pub fn derive(row: &[f32], i: usize) -> f32 {
    let total = raw(row, "total_iops");
    let latency = raw(row, "avg_latency");
    let value = match FEATURE_NAMES[i] {
        "iops_per_latency" => total / latency.max(0.01),
        "anomaly_score" => 2.0 * raw(row, "error_rate") + if latency > 10.0 { 3.0 } else { 0.0 },
        "trend_score" => raw(row, "error_trend") + raw(row, "latency_spike_count") / 10.0,
        "capacity_utilization" => (total / DEVICE_CAPACITY_IOPS).min(1.0),
        "efficiency_ratio" => raw(row, "bandwidth_mbps") / total.max(1.0),
        other => unreachable!("{other} is not a derived feature"),
    };
    value as f32
}

/// Which of the two models a job trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Models {
    /// The risk-level classifier.
    pub classifier: bool,
    /// The performance-score regressor.
    pub regressor: bool,
}

/// The target of the risk-level classifier: a level name (any case) or its index.
pub fn risk_target() -> Target {
    Target {
        names: vec![RISK_LABEL.into(), "riskLevel".into(), "label".into()],
        kind: TargetKind::Classes(RISK_LEVELS.iter().map(|s| s.to_string()).collect()),
    }
}

/// The target of the regressor: a score in [0, 100].
pub fn score_target() -> Target {
    Target {
        names: vec![
            SCORE_LABEL.into(),
            "performanceScore".into(),
            "score".into(),
        ],
        kind: TargetKind::Bounded {
            min: 0.0,
            max: 100.0,
        },
    }
}

/// The IOPS schema; its targets are the labels of the models trained, classifier first.
pub fn schema(models: Models) -> Schema {
    let mut targets = Vec::new();
    if models.classifier {
        targets.push(risk_target());
    }
    if models.regressor {
        targets.push(score_target());
    }
    Schema {
        feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        derived: Some(Derived {
            first: RAW_FEATURES,
            compute: derive,
        }),
        targets,
        allow_missing: false,
        categories: Vec::new(),
    }
}

/// Payload name of the classifier.
pub const CLASSIFIER: &str = "risk_classifier";
/// Payload name of the regressor.
pub const REGRESSOR: &str = "performance_regressor";

/// The trained pair (at least one of them).
pub struct IopsModel {
    /// Risk level probabilities.
    pub classifier: Option<TreeModel>,
    /// Performance score.
    pub regressor: Option<TreeModel>,
    /// The request features (the derived five may be left out).
    schema: Schema,
    /// The models again, read from XGBoost's files, which keep the node covers explanations
    /// need (built on the first explanation), in answer order; `None` when not loaded from an
    /// artifact.
    explainer: Option<Deferred<Vec<TreeModel>>>,
    /// The XGBoost files the explainer reads.
    files: Vec<Arc<XgboostFiles>>,
}

/// Predictions for a batch of rows. Answers: JSON `{"risk_level", "risk_class",
/// "probabilities": {level: p}, "performance_score"}`; CSV `risk_class,risk_level,p_low,
/// p_medium,p_high,p_critical,performance_score`. A model not in the artifact leaves its fields
/// out.
#[derive(Debug, Clone, PartialEq)]
pub struct IopsPrediction {
    /// Per row, the probabilities of low, medium, high, critical.
    pub probabilities: Option<Array2<f32>>,
    /// Per row, the performance score, clipped to [0, 100].
    pub scores: Option<Vec<f32>>,
}

impl IopsPrediction {
    /// The most probable class of row `i` (ties go to the lower risk).
    pub fn class(&self, i: usize) -> Option<usize> {
        Some(crate::metrics::most_probable(
            self.probabilities.as_ref()?.row(i),
        ))
    }
}

impl IopsModel {
    /// Checks the shapes: a 4-class softmax classifier and an identity-link regressor.
    pub fn new(classifier: Option<TreeModel>, regressor: Option<TreeModel>) -> Result<Self> {
        if classifier.is_none() && regressor.is_none() {
            return Err(Error::Artifact(
                "the IOPS model holds neither classifier nor regressor".into(),
            ));
        }
        if let Some(c) = &classifier {
            if c.link != Link::Softmax || c.n_groups() != RISK_LEVELS.len() {
                return Err(Error::Artifact(format!(
                    "the risk classifier must give {} class probabilities",
                    RISK_LEVELS.len()
                )));
            }
        }
        if regressor
            .as_ref()
            .is_some_and(|r| r.link != Link::Identity || r.n_groups() != 1)
        {
            return Err(Error::Artifact(
                "the performance regressor must give one value".into(),
            ));
        }
        let schema = schema(Models {
            classifier: classifier.is_some(),
            regressor: regressor.is_some(),
        });
        Ok(Self {
            classifier,
            regressor,
            schema,
            explainer: None,
            files: Vec::new(),
        })
    }

    /// Loads the compiled trees a manifest lists.
    pub fn load(dir: &std::path::Path, manifest: &Manifest) -> Result<Self> {
        let read = |name: &str| -> Result<Option<TreeModel>> {
            manifest
                .payloads
                .iter()
                .find(|p| p.name == name && p.format == PayloadFormat::CompiledTrees)
                .map(|p| {
                    let n_features = manifest.feature_names.len();
                    TreeModel::from_bytes(&manifest.read_payload(dir, p)?, n_features)
                })
                .transpose()
        };
        let mut model = Self::new(read(CLASSIFIER)?, read(REGRESSOR)?)?;
        // Read and compiled on the first explanation.
        model.files = [
            (CLASSIFIER, &model.classifier),
            (REGRESSOR, &model.regressor),
        ]
        .into_iter()
        .filter(|(_, m)| m.is_some())
        .map(|(name, _)| XgboostFiles::of(dir, manifest, name))
        .collect();
        let files = model.files.clone();
        model.explainer = Some(Deferred::new(move || {
            files.iter().map(|f| f.trees()).collect()
        }));
        Ok(model)
    }

    fn explainer(&self) -> std::result::Result<&[TreeModel], String> {
        self.explainer
            .as_ref()
            .and_then(Deferred::get)
            .map(Vec::as_slice)
            .ok_or_else(|| "the artifact holds no readable XGBoost files of the models, whose node covers explanations need".into())
    }

    /// Predicts every row.
    pub fn predict(&self, x: ArrayView2<f32>) -> IopsPrediction {
        IopsPrediction {
            probabilities: self.classifier.as_ref().map(|c| c.predict(x)),
            scores: self.regressor.as_ref().map(|r| {
                r.predict(x)
                    .column(0)
                    .iter()
                    .map(|v| v.clamp(0.0, 100.0))
                    .collect()
            }),
        }
    }
}

/// The payloads of the trained models: XGBoost's own model and the compiled trees of each;
/// `models` are `(payload name, XGBoost UBJSON, compiled trees)`.
pub fn payloads(models: Vec<(&'static str, Vec<u8>, &TreeModel)>) -> Result<Vec<Payload>> {
    let mut payloads = Vec::new();
    for (name, ubj, trees) in models {
        let payload = |ext: &str, format| PayloadFile {
            name: name.into(),
            file: format!("{name}.{ext}"),
            format,
            weight: None,
        };
        payloads.push((payload("ubj", PayloadFormat::XgboostUbj), ubj));
        payloads.push((
            payload("trees", PayloadFormat::CompiledTrees),
            trees.to_bytes()?,
        ));
    }
    Ok(payloads)
}

impl Model for IopsModel {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn predict(&self, x: ArrayView2<f32>) -> Result<Box<dyn Predictions>> {
        Ok(Box::new(IopsModel::predict(self, x)))
    }

    fn preload_explanations(&self) {
        for f in &self.files {
            f.preload();
        }
    }

    fn contributions_per_row(&self) -> std::result::Result<usize, String> {
        let mut per_row = 0;
        for trees in self.explainer()? {
            trees.can_explain()?;
            per_row += trees.contributions_per_row();
        }
        Ok(per_row)
    }

    /// The classifier's per-class margins (low, medium, high, critical: 26 values each, the 25
    /// features then the bias), then the regressor's score before clipping to [0, 100] (26
    /// more); a model not in the artifact leaves its blocks out.
    fn contributions(&self, x: ArrayView2<f32>) -> std::result::Result<Array2<f32>, String> {
        let blocks = self
            .explainer()?
            .iter()
            .map(|t| t.contributions(x))
            .collect::<std::result::Result<Vec<_>, String>>()?;
        let views: Vec<_> = blocks.iter().map(Array2::view).collect();
        ndarray::concatenate(ndarray::Axis(1), &views).map_err(|e| e.to_string())
    }

    fn memory_bytes(&self) -> usize {
        let preloaded: usize = self.files.iter().map(|f| f.preloaded_bytes()).sum();
        [&self.classifier, &self.regressor]
            .into_iter()
            .flatten()
            .map(TreeModel::memory_bytes)
            .sum::<usize>()
            + preloaded
    }
}

impl Predictions for IopsPrediction {
    fn records(&self) -> usize {
        self.scores
            .as_ref()
            .map(Vec::len)
            .or(self.probabilities.as_ref().map(|a| a.nrows()))
            .unwrap_or(0)
    }

    fn json_record(&self, i: usize, out: &mut String) {
        out.push('{');
        if let (Some(class), Some(probs)) = (self.class(i), &self.probabilities) {
            let _ = write!(
                out,
                "\"risk_level\":\"{}\",\"risk_class\":{class},\"probabilities\":{{",
                RISK_LEVELS[class]
            );
            for (k, (name, p)) in RISK_LEVELS.iter().zip(probs.row(i)).enumerate() {
                let sep = if k == 0 { "" } else { "," };
                let _ = write!(out, "{sep}\"{name}\":");
                push_f32(out, *p);
            }
            out.push('}');
        }
        if let Some(scores) = &self.scores {
            let sep = if self.probabilities.is_some() {
                ","
            } else {
                ""
            };
            let _ = write!(out, "{sep}\"performance_score\":");
            push_f32(out, scores[i]);
        }
        out.push('}');
    }

    fn csv_record(&self, i: usize, out: &mut String) {
        if let (Some(class), Some(probs)) = (self.class(i), &self.probabilities) {
            let _ = write!(out, "{class},{}", RISK_LEVELS[class]);
            for &p in probs.row(i) {
                out.push(',');
                push_f32(out, p);
            }
        }
        if let Some(scores) = &self.scores {
            let sep = if self.probabilities.is_some() {
                ","
            } else {
                ""
            };
            out.push_str(sep);
            push_f32(out, scores[i]);
        }
    }

    fn first_non_finite(&self) -> Option<usize> {
        let classes = self
            .probabilities
            .as_ref()
            .and_then(|p| first_non_finite(p.iter(), p.ncols()));
        let scores = self.scores.as_ref().and_then(|s| first_non_finite(s, 1));
        classes.into_iter().chain(scores).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Format, RowSink};

    /// A medium-risk insight as the generator writes it.
    const INSIGHT: &str = r#"{"timestamp":"2025-12-01T10:00:00.000Z","deviceId":"a1B2c3D4e5","volumeId":"vol-1a2b3c4d",
        "read_iops":1000,"write_iops":500,"total_iops":1500,"iops_variance":30.5,"avg_latency":12.5,
        "p95_latency":30,"p99_latency":55.25,"latency_spike_count":5,"bandwidth_mbps":300,
        "throughput_variance":20,"error_rate":1.25,"error_trend":0.3,"hour_of_day":10,"day_of_week":1,
        "time_since_last_alert":5000,"sequential_access_ratio":0.3,"random_access_ratio":0.6,
        "queue_depth":16,"io_size_avg":64,"io_size_variance":20,"risk_level":"medium",
        "workload_type":"burst","anomaly_detected":true,"performance_score":72.5}"#;

    fn load(text: &str, models: Models) -> crate::Result<RowSink> {
        let mut sink = RowSink::default();
        Format::Json.parse(text.as_bytes(), &schema(models), "x.json", &mut sink)?;
        Ok(sink)
    }

    const BOTH: Models = Models {
        classifier: true,
        regressor: true,
    };

    #[test]
    fn derived_features_golden_values() {
        let sink = load(INSIGHT, BOTH).unwrap();
        let derived = &sink.features[RAW_FEATURES..];
        // 1500 / 12.5; 2 * 1.25 + 3; 0.3 + 5 / 10; 1500 / 15000; 300 / 1500.
        let want = [120.0, 5.5, 0.8, 0.1, 0.2];
        for (k, (got, want)) in derived.iter().zip(want).enumerate() {
            assert!(
                (got - want).abs() < 1e-6,
                "{}: {got} != {want}",
                FEATURE_NAMES[20 + k]
            );
        }
        assert_eq!(sink.labels, vec![1.0, 72.5]);
        // Edge rows stay finite: no latency, no IOPS, capacity beyond the device's.
        let mut row = [0f32; 25];
        assert_eq!(derive(&row, 20), 0.0);
        assert_eq!(derive(&row, 24), 0.0);
        row[2] = 150_000.0;
        assert_eq!(derive(&row, 23), 1.0);
        assert!((0..5).all(|k| derive(&row, 20 + k).is_finite()));
    }

    #[test]
    fn labels_by_name_or_index_and_given_derived_values_kept() {
        let csv = "risk_level,performance_score,".to_owned() + &FEATURE_NAMES.join(",");
        let values: Vec<String> = (0..25).map(|i| i.to_string()).collect();
        let text = format!(
            "{csv}\n\"CRITICAL\",12.5,{}\n3,0,{}\n",
            values.join(","),
            values.join(",")
        );
        let mut sink = RowSink::default();
        Format::Csv
            .parse(text.as_bytes(), &schema(BOTH), "x.csv", &mut sink)
            .unwrap();
        assert_eq!(sink.labels, vec![3.0, 12.5, 3.0, 0.0]);
        assert_eq!(
            sink.features[24], 24.0,
            "a given derived value is used as given"
        );

        for (bad, msg) in [
            (
                INSIGHT.replace("\"medium\"", "\"severe\""),
                "risk_level is not a number: \"severe\"",
            ),
            (
                INSIGHT.replace("72.5", "120"),
                "performance_score 120 is outside [0, 100]",
            ),
            (
                INSIGHT.replace("\"avg_latency\":12.5,", ""),
                "missing feature 'avg_latency'",
            ),
        ] {
            let e = load(&bad, BOTH).unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
        }
        let e = load(
            &INSIGHT.replace("\"performance_score\":72.5", "\"x\":1"),
            BOTH,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("has no 'performance_score' field"), "{e}");
        let classifier_only = Models {
            classifier: true,
            regressor: false,
        };
        assert_eq!(load(INSIGHT, classifier_only).unwrap().labels, vec![1.0]);
    }

    #[test]
    fn headerless_csv_needs_one_model() {
        let line = format!("2,{}\n", vec!["1"; 25].join(","));
        let mut sink = RowSink::default();
        let e = Format::Csv
            .parse(line.as_bytes(), &schema(BOTH), "x.csv", &mut sink)
            .unwrap_err()
            .to_string();
        assert!(e.contains("a headerless CSV holds one label"), "{e}");
        let regressor_only = Models {
            classifier: false,
            regressor: true,
        };
        Format::Csv
            .parse(line.as_bytes(), &schema(regressor_only), "x.csv", &mut sink)
            .unwrap();
        assert_eq!(sink.labels, vec![2.0]);
    }
}

//! Generic tabular training: every candidate fitted on the same rows, compared on ONE metric on
//! the validation split, the winner (or the chosen candidate) saved for `serve`.

use crate::config::{ChannelConfig, TabularConfig, TrainConfig, SELECTION_METRICS};
use crate::report;
use crate::splits::{self, Reader};
use crate::stop::StopFlag;
use common::data::Dataset;
use common::kinds::{self, ModelKind};
use common::metrics::{roc_auc, MultiClassMetrics, RegressionMetrics};
use common::models::tabular::{self, Candidate, TabularModel, Task, TrainRows};
use common::opt_ml::OptMl;
use common::{Error, Result};
use ndarray::Array2;
use serde::Serialize;
use std::collections::BTreeMap;

/// Metric name to value.
pub type Scores = BTreeMap<&'static str, f64>;

/// One candidate's results.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateReport {
    /// Seconds spent fitting.
    pub fit_seconds: f64,
    /// Every metric of the task on the validation split.
    pub validation: Scores,
    /// The same on the test split, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<Scores>,
}

/// How the comparison decided.
#[derive(Debug, Clone, Serialize)]
pub struct Criterion {
    /// The one metric compared.
    pub metric: &'static str,
    /// The split it is computed on.
    pub split: &'static str,
    /// `minimize` or `maximize`.
    pub goal: &'static str,
}

/// `model_comparison.json`: every candidate's metrics, the criterion, the winner and what is served.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The task (`regression`, `binary`, `multiclass`).
    pub task: &'static str,
    /// How the winner was chosen.
    pub criterion: Criterion,
    /// The best candidate by the criterion.
    pub best_model: &'static str,
    /// The candidate `serve` answers with (the best unless `serve_model` names another).
    pub served_model: &'static str,
    /// Rows per split.
    pub rows: BTreeMap<&'static str, usize>,
    /// Every candidate, by name.
    pub candidates: BTreeMap<&'static str, CandidateReport>,
}

/// Loads, fits every candidate, compares, saves the served model; returns the comparison.
pub fn train(
    opt_ml: &OptMl,
    config: &TrainConfig,
    t: &TabularConfig,
    channels: &BTreeMap<String, ChannelConfig>,
    stop: &StopFlag,
) -> Result<Comparison> {
    let task = t.task;
    let check = |d: &Dataset, what: &str| {
        task.check_labels(d.labels().as_slice().expect("contiguous labels"))
            .map_err(|m| Error::Data(format!("{what}: {m}")))
    };
    let splits = splits::load(
        opt_ml,
        &config.split,
        channels,
        Reader::Tabular(&t.options),
        task != Task::Regression,
        &check,
        stop,
    )?;
    let mut reports = BTreeMap::new();
    let mut models = BTreeMap::new();
    for &candidate in &t.candidates {
        stop.check()?;
        let start = std::time::Instant::now();
        let model = tabular::fit(
            candidate,
            task,
            &t.params,
            &TrainRows {
                x: splits.train.features.view(),
                y: splits.train.labels(),
                weights: splits.train.weights.as_ref(),
                validation: Some((
                    splits.validation.features.view(),
                    splits.validation.labels(),
                )),
                absent_is_zero: splits.train.absent_is_zero,
            },
            &mut |log| {
                println!("{}", log.line);
                stop.check()
            },
        )?;
        let fit_seconds = start.elapsed().as_secs_f64();
        let score = |d: &Dataset| {
            scores(
                task,
                d.labels().as_slice().unwrap(),
                &model.predict(d.features.view()),
            )
        };
        let report = CandidateReport {
            fit_seconds,
            validation: score(&splits.validation),
            test: splits.test.as_ref().map(score),
        };
        tracing::info!(candidate = candidate.name(), seconds = format!("{fit_seconds:.2}"), validation = ?report.validation, "candidate fitted");
        reports.insert(candidate, report);
        models.insert(candidate, model);
    }
    let (metric, larger_is_better) = SELECTION_METRICS
        .iter()
        .copied()
        .find(|(m, _)| *m == t.selection_metric)
        .expect("a listed metric");
    let value = |c: &Candidate| {
        let v = reports[c]
            .validation
            .get(metric)
            .copied()
            .unwrap_or(f64::NAN);
        // An undefined value (AUC of one class) ranks last.
        match (v.is_nan(), larger_is_better) {
            (true, _) => f64::INFINITY,
            (false, true) => -v,
            (false, false) => v,
        }
    };
    let best = *t
        .candidates
        .iter()
        .min_by(|a, b| value(a).total_cmp(&value(b)))
        .expect("at least one candidate");
    let served = t.serve_model.unwrap_or(best);
    let served_model = models
        .remove(&served)
        .expect("the config keeps serve_model among the candidates");
    let comparison = Comparison {
        task: match task {
            Task::Regression => "regression",
            Task::Binary => "binary",
            Task::MultiClass { .. } => "multiclass",
        },
        criterion: Criterion {
            metric,
            split: "validation",
            goal: if larger_is_better {
                "maximize"
            } else {
                "minimize"
            },
        },
        best_model: best.name(),
        served_model: served.name(),
        rows: splits.rows(),
        candidates: reports.iter().map(|(c, r)| (c.name(), r.clone())).collect(),
    };
    for line in metric_lines(&comparison) {
        println!("{line}");
    }
    stop.check()?;
    save_model(
        opt_ml,
        config,
        &served_model,
        &splits.train.feature_names,
        &comparison,
    )?;
    report::write_output_json(opt_ml, "model_comparison.json", &comparison)?;
    report::write_evaluation(opt_ml, &comparison)?;
    tracing::info!(
        best = best.name(),
        served = served.name(),
        metric,
        "model comparison"
    );
    Ok(comparison)
}

/// Every metric of the task: regression `rmse`, `mae`, `r2`; binary `auc`, `logloss`, `error`,
/// `accuracy`; multi-class `mlogloss`, `merror`, `accuracy`.
pub fn scores(task: Task, labels: &[f32], p: &Array2<f32>) -> Scores {
    match task {
        Task::Regression => {
            let m = RegressionMetrics::compute(
                labels,
                p.column(0).as_slice().unwrap_or(&p.column(0).to_vec()),
            );
            Scores::from([("rmse", m.rmse), ("mae", m.mae), ("r2", m.r2)])
        }
        Task::Binary => {
            let q: Vec<f32> = p.column(0).to_vec();
            let n = labels.len().max(1) as f64;
            let logloss = labels
                .iter()
                .zip(&q)
                .map(|(&y, &p)| {
                    let p = f64::from(p).clamp(1e-15, 1.0 - 1e-15);
                    if y == 1.0 {
                        -p.ln()
                    } else {
                        -(1.0 - p).ln()
                    }
                })
                .sum::<f64>()
                / n;
            let wrong = labels
                .iter()
                .zip(&q)
                .filter(|(&y, &p)| (p > 0.5) != (y == 1.0))
                .count();
            let mut s = Scores::from([
                ("logloss", logloss),
                ("error", wrong as f64 / n),
                ("accuracy", 1.0 - wrong as f64 / n),
            ]);
            s.insert("auc", roc_auc(labels, &q).unwrap_or(f64::NAN));
            s
        }
        Task::MultiClass { .. } => {
            let m = MultiClassMetrics::compute(labels, p.view());
            Scores::from([
                ("mlogloss", m.log_loss),
                ("merror", 1.0 - m.accuracy),
                ("accuracy", m.accuracy),
            ])
        }
    }
}

/// `metric: <split>:<name>=v` for the served model, `metric: <split>:<candidate>:<name>=v` for all.
fn metric_lines(c: &Comparison) -> Vec<String> {
    let mut out = Vec::new();
    for split in ["validation", "test"] {
        let of = |r: &CandidateReport| {
            if split == "test" {
                r.test.clone()
            } else {
                Some(r.validation.clone())
            }
        };
        if let Some(s) = of(&c.candidates[c.served_model]) {
            out.extend(
                s.iter()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(k, v)| format!("metric: {split}:{k}={v:.6}")),
            );
        }
        for (name, r) in &c.candidates {
            if let Some(s) = of(r) {
                out.extend(
                    s.iter()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(k, v)| format!("metric: {split}:{name}:{k}={v:.6}")),
                );
            }
        }
    }
    out
}

fn save_model(
    opt_ml: &OptMl,
    config: &TrainConfig,
    model: &TabularModel,
    feature_names: &[String],
    comparison: &Comparison,
) -> Result<()> {
    let manifest = report::manifest(
        ModelKind::Tabular,
        feature_names.to_vec(),
        comparison,
        &comparison.rows,
        &config.hyperparameters,
    )?;
    report::write_model(opt_ml, manifest, kinds::tabular::payloads(model)?)
}

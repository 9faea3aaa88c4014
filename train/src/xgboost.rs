//! `model_kind=xgboost`: training with the contract of SageMaker's built-in XGBoost algorithm.
//!
//! The `train` channel is trained on whole (nothing is held out, as the built-in); a
//! `validation` channel is evaluated every round, drives early stopping and gives the
//! `validation-<metric>` values hyperparameter tuning reads from the round lines
//! (`[3]\ttrain-rmse:1.2\tvalidation-rmse:1.4`); a `test` channel (ours) is evaluated once at the
//! end. The model directory holds `xgboost-model` (XGBoost's UBJSON, loadable by
//! `xgboost.Booster(model_file=...)`) beside our manifest; `serve` reads it as a model trained
//! elsewhere would be read.
//!
//! Metrics XGBoost does not compute (`accuracy`, `f1`, `r2`, ...) are computed here each round
//! from XGBoost's predictions, as the built-in does: classes from the margin (`> 0` for one
//! output, the largest for several), values from the prediction.

use crate::checkpoints::{self, Checkpoints};
use crate::report;
use crate::splits::{self, Reader};
use crate::xgboost_hyperparameters::BuiltinParams;
use crate::Job;
use common::artifact::{self, PayloadFile, PayloadFormat};
use common::collective::World;
use common::data::tabular::TabularOptions;
use common::data::Dataset;
use common::kinds::out_of_range::training_ranges;
use common::kinds::ModelKind;
use common::metrics::{label_metric, RegressionMetrics};
use common::models::xgboost::{self, RoundLog, XgbParams};
use common::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use xgb::{Booster, DMatrix};

/// The model file the built-in writes, and downstream tools look for.
pub const MODEL_FILE: &str = "xgboost-model";

/// Metric name to value.
pub type Scores = BTreeMap<String, f64>;

/// `evaluation.json` of an XGBoost job.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// The objective trained.
    pub objective: String,
    /// Rounds asked for.
    pub num_round: u32,
    /// Rounds run.
    pub rounds_run: u32,
    /// The round the model keeps, from 0 (the best on validation with early stopping).
    pub best_iteration: u32,
    /// The metric early stopping watched, when it was on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stopping_metric: Option<String>,
    /// Whether the job was stopped (SIGTERM with `save_model_on_termination`) before its last round.
    pub partial: bool,
    /// Rows per channel.
    pub rows: BTreeMap<&'static str, usize>,
    /// Scores per set (`train`, `validation`, `test`) at the kept round.
    pub scores: BTreeMap<String, Scores>,
}

/// Trains, writes the model (manifest, payload and the `xgboost-model` copy), returns the
/// evaluation.
///
/// On several hosts every host trains on its rows through XGBoost's collective (XGBoost's
/// metrics are over all hosts' rows; ours are computed on gathered predictions), a SIGTERM on
/// any host stops every host after the same round, and the first host writes.
pub fn train(job: &Job, params: &BuiltinParams) -> Result<Evaluation> {
    let (opt_ml, stop, world) = (job.opt_ml, job.stop, job.world);
    let options = TabularOptions {
        label_column: "label".into(),
        csv_weights: params.csv_weights,
        // Detected per file, as the built-in sniffs it.
        delimiter: None,
    };
    let mut data = splits::load_channels(job, Reader::Tabular(&options), &refuse_text)?;
    let feature_names = data.train.feature_names.clone();
    let ranges = training_ranges(&data.train, world)?;
    let has_test = data.test.is_some();
    let mut rows = BTreeMap::from([("train", data.train.len())]);
    rows.extend(data.validation.as_ref().map(|d| ("validation", d.len())));
    rows.extend(data.test.as_ref().map(|d| ("test", d.len())));
    splits::sum_over_hosts(&mut rows, world)?;
    // Every channel is checked and handed to XGBoost before the first round; the rows are then
    // XGBoost's alone (only the labels are kept, for the metrics computed here).
    let mut sets: Vec<(&'static str, &mut Dataset)> = vec![("train", &mut data.train)];
    sets.extend(data.validation.as_mut().map(|d| ("validation", d)));
    sets.extend(data.test.as_mut().map(|d| ("test", d)));
    let mut matrices = Vec::new();
    for (name, d) in &mut sets {
        matrices.push(matrix(d, name, params)?);
        d.features = ndarray::Array2::zeros((0, 0));
    }
    // Our own metrics' labels: every host's, gathered once (none are needed without them).
    let (native, custom) = split_metrics(&params.eval_metrics);
    let labels: Vec<(&str, Vec<f32>)> = sets
        .iter()
        .map(|(n, d)| {
            let y = d.labels().as_slice().expect("contiguous labels");
            Ok((
                *n,
                if custom.is_empty() {
                    Vec::new()
                } else {
                    world.gather(y)?
                },
            ))
        })
        .collect::<Result<_>>()?;
    let test = has_test.then(|| matrices.pop().expect("the test matrix"));
    let evals: Vec<(&DMatrix, &str)> = matrices
        .iter()
        .zip(&labels)
        .map(|(m, l)| (m, l.0))
        .collect();
    let mut xgb_params = params.xgboost.clone();
    for m in &native {
        xgb_params = xgb_params.set("eval_metric", m);
    }

    let checkpoints = Checkpoints::from_config(opt_ml, crate::checkpoints::PREFIX)?;
    let resume = checkpoints::resume_point(checkpoints.as_ref(), world, |bytes| {
        Booster::load_buffer(bytes)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    let (mut booster, start) = match &resume {
        None => (
            xgboost::new_booster(&xgb_params, &matrices.iter().collect::<Vec<_>>())?,
            0,
        ),
        Some((iteration, model)) => {
            tracing::info!(iteration, "Resuming from iteration {iteration}");
            let mut b = xgboost::resume_booster(&xgb_params, model)?;
            // A checkpoint past num_round (a job restarted with fewer rounds) is cut to it.
            if *iteration + 1 > params.num_round {
                b = b.slice(0, params.num_round as i32)?;
            }
            (b, (iteration + 1).min(params.num_round))
        }
    };
    let mut early = params
        .early_stopping_rounds
        .filter(|_| evals.len() > 1)
        .map(|patience| EarlyStopping::new(patience, params.stop_metric.clone()));
    if let (Some(e), true) = (&mut early, resume.is_some()) {
        // The best round before the checkpoint, which it carries.
        e.best = booster.get_attribute(BEST_ATTRIBUTE)?.and_then(|v| {
            let (round, score) = v.split_once(' ')?;
            Some((round.parse().ok()?, score.parse().ok()?))
        });
    }
    drop(resume);
    let mut logs: Vec<RoundLog> = Vec::new();
    let mut partial = false;
    for round in start..params.num_round {
        if let Err(stopped) = stop.agreed(world) {
            if params.save_model_on_termination && round > start {
                tracing::warn!(
                    rounds = round,
                    "SIGTERM: saving the rounds finished so far (save_model_on_termination)"
                );
                partial = true;
                break;
            }
            return Err(stopped);
        }
        booster.update(&matrices[0], round as i32)?;
        let log = round_log(
            &booster,
            &evals,
            &labels,
            round,
            &xgb_params,
            &custom,
            world,
        )?;
        if world.is_leader() {
            println!("{}", log.line);
        }
        if params.save_model_on_termination && world.is_leader() {
            // As the built-in: a stop in the middle of a long round still leaves the rounds
            // before it (XGBoost's own file; the manifest comes with the complete model).
            artifact::write_atomic(
                &opt_ml.model_dir().join(MODEL_FILE),
                &booster.save_buffer(true)?,
            )?;
        }
        let go_on = match &mut early {
            Some(e) => e.observe(&log)?,
            None => true,
        };
        if let (Some(c), true) = (&checkpoints, world.is_leader()) {
            if (round + 1) % params.checkpoint_interval == 0 || round + 1 == params.num_round {
                if let Some((best, score)) = early.as_ref().and_then(|e| e.best) {
                    booster.set_attribute(BEST_ATTRIBUTE, &format!("{best} {score}"))?;
                }
                c.save(round, &booster.save_buffer(true)?)?;
            }
        }
        logs.push(log);
        if !go_on {
            break;
        }
    }
    let rounds_run = start + logs.len() as u32;
    let best_iteration = early
        .as_ref()
        .and_then(EarlyStopping::best_round)
        .unwrap_or(rounds_run.saturating_sub(1));
    if best_iteration + 1 < rounds_run {
        booster = booster.slice(0, best_iteration as i32 + 1)?;
    }

    // The kept round's scores: from its log, or (a round before a resume) evaluated again.
    let kept_log = match logs.iter().position(|l| l.round == best_iteration) {
        Some(i) => logs.swap_remove(i),
        None => round_log(
            &booster,
            &evals,
            &labels,
            best_iteration,
            &xgb_params,
            &custom,
            world,
        )?,
    };
    let mut scores: BTreeMap<String, Scores> = BTreeMap::new();
    for (set, metric, value) in &kept_log.scores {
        scores
            .entry(set.clone())
            .or_default()
            .insert(metric.clone(), *value);
    }
    if let (Some(m), false) = (&test, partial) {
        let y = std::slice::from_ref(labels.last().expect("test labels"));
        let log = round_log(
            &booster,
            &[(m, "test")],
            y,
            best_iteration,
            &xgb_params,
            &custom,
            world,
        )?;
        scores.insert(
            "test".into(),
            log.scores.into_iter().map(|(_, m, v)| (m, v)).collect(),
        );
    }
    let evaluation = Evaluation {
        objective: params.objective.clone(),
        num_round: params.num_round,
        rounds_run,
        best_iteration,
        early_stopping_metric: early.and_then(|e| e.metric),
        partial,
        rows,
        scores,
    };
    if !world.is_leader() {
        return Ok(evaluation);
    }
    for (set, s) in &evaluation.scores {
        for (metric, value) in s.iter().filter(|(_, v)| v.is_finite()) {
            println!("metric: {set}:{metric}={value:.6}");
        }
    }
    let mut manifest = report::manifest(
        ModelKind::Xgboost,
        feature_names,
        &evaluation,
        &evaluation.rows,
        &job.config.hyperparameters,
        ranges,
    )?;
    if evaluation.partial {
        manifest.partial = Some(format!(
            "{} of {} rounds",
            evaluation.rounds_run, evaluation.num_round
        ));
    }
    let bytes = booster.save_buffer(true)?;
    let payload = PayloadFile {
        name: MODEL_FILE.into(),
        file: format!("{MODEL_FILE}.ubj"),
        format: PayloadFormat::XgboostModel,
        weight: None,
    };
    report::write_model(opt_ml, manifest, vec![(payload, bytes.clone())])?;
    // The built-in's file name, for XGBoost tooling; serving reads the manifest's payload.
    artifact::write_atomic(&opt_ml.model_dir().join(MODEL_FILE), &bytes)?;
    report::write_evaluation(opt_ml, &evaluation)?;
    Ok(evaluation)
}

/// Early stopping on the validation set, XGBoost's rule: stop once the watched metric has not
/// improved for `patience` rounds; the model keeps the best round.
#[derive(Debug)]
struct EarlyStopping {
    patience: u32,
    /// The metric asked for (the tuning objective's, else the last of `eval_metric`; `None`:
    /// XGBoost's default, the last it logs), then as XGBoost names it in its log.
    metric: Option<String>,
    resolved: bool,
    best: Option<(u32, f64)>,
}

impl EarlyStopping {
    fn new(patience: u32, metric: Option<String>) -> Self {
        Self {
            patience,
            metric,
            resolved: false,
            best: None,
        }
    }

    /// Sees one round's log; returns whether to go on. A watched metric XGBoost does not log is
    /// an error (never a silent run of every round).
    fn observe(&mut self, log: &RoundLog) -> Result<bool> {
        if !self.resolved {
            let logged: Vec<&str> = log
                .scores
                .iter()
                .filter(|s| s.0 == "validation")
                .map(|s| s.1.as_str())
                .collect();
            let name = match &self.metric {
                None => logged.last().map(|m| m.to_string()),
                Some(asked) => logged
                    .iter()
                    .find(|m| same_metric(asked, m))
                    .map(|m| m.to_string()),
            };
            self.metric = Some(name.ok_or_else(|| {
                Error::Hyperparameter(format!(
                    "early stopping watches '{}', which is not among the validation metrics logged ({})",
                    self.metric.as_deref().unwrap_or("?"),
                    logged.join(", ")
                ))
            })?);
            self.resolved = true;
        }
        let metric = self.metric.as_deref().expect("resolved");
        let score = log.score("validation", metric).expect("logged every round");
        let maximize = BuiltinParams::maximize(metric);
        if self
            .best
            .is_none_or(|(_, b)| if maximize { score > b } else { score < b })
        {
            self.best = Some((log.round, score));
        }
        let since = log.round - self.best.map_or(0, |b| b.0);
        if since >= self.patience {
            tracing::info!(
                metric,
                best_iteration = self.best.map_or(0, |b| b.0),
                "early stopping: no improvement for {} rounds",
                self.patience
            );
        }
        Ok(since < self.patience)
    }

    fn best_round(&self) -> Option<u32> {
        self.best.map(|b| b.0)
    }
}

/// Whether a metric asked for is the one XGBoost logs under `logged`: the same name, or the
/// same base with the same number after `@` (`ndcg@05` is logged `ndcg@5`), or `error@0.5`,
/// which XGBoost logs as `error`.
fn same_metric(asked: &str, logged: &str) -> bool {
    let split = |m: &str| -> (String, Option<f64>) {
        match m.split_once('@') {
            Some((base, p)) => (base.to_owned(), p.parse().ok()),
            None => (m.to_owned(), None),
        }
    };
    let (a, b) = (split(asked), split(logged));
    asked == logged || a == b || (a.0 == "error" && a.1 == Some(0.5) && logged == "error")
}

/// XGBoost's matrix of one channel, its labels checked: labels, weights, and query groups for
/// ranking.
fn matrix(d: &Dataset, name: &str, params: &BuiltinParams) -> Result<DMatrix> {
    let objective = &params.objective;
    let ranking = objective.starts_with("rank:");
    let labels = d.labels().as_slice().expect("contiguous labels");
    if let Some((row, label, needed)) = bad_label(labels, objective, params.num_class) {
        return Err(Error::Data(format!(
            "channel '{name}': row {}: label {label}: objective {objective} needs {needed}",
            row + 1
        )));
    }
    let mut m = xgboost::dmatrix(d.features.view(), Some(d.labels()))?;
    if let Some(w) = &d.weights {
        m.set_weights(w.as_slice().expect("contiguous weights"))?;
    }
    match (&d.query_ids, ranking) {
        (Some(q), true) => m.set_group(&group_sizes(q.as_slice().expect("contiguous"), name)?)?,
        (None, true) => {
            return Err(Error::Data(format!(
                "objective {objective} ranks rows within queries: give the '{name}' channel as libsvm with qid:<id> on every row"
            )))
        }
        _ => {}
    }
    Ok(m)
}

/// The first label the objective cannot take: its row, value and what is needed.
fn bad_label(
    labels: &[f32],
    objective: &str,
    num_class: Option<u32>,
) -> Option<(usize, f32, String)> {
    let (ok, needed): (Box<dyn Fn(f32) -> bool>, String) = match objective {
        "binary:logistic" | "binary:logitraw" | "binary:hinge" | "reg:logistic" => (
            Box::new(|y| (0.0..=1.0).contains(&y)),
            "labels in [0, 1]".into(),
        ),
        "multi:softmax" | "multi:softprob" => {
            let n = num_class.unwrap_or(0) as f32;
            (
                Box::new(move |y| y.fract() == 0.0 && y >= 0.0 && y < n),
                format!("class labels 0 to {} (num_class {n})", n - 1.0),
            )
        }
        "count:poisson" | "reg:tweedie" => (Box::new(|y| y >= 0.0), "labels >= 0".into()),
        "reg:gamma" => (Box::new(|y| y > 0.0), "labels > 0".into()),
        "reg:squaredlogerror" => (Box::new(|y| y > -1.0), "labels > -1".into()),
        _ => return None,
    };
    labels
        .iter()
        .position(|&y| !ok(y))
        .map(|row| (row, labels[row], needed))
}

/// Rows per query, for rows sorted by query id (as XGBoost requires them).
fn group_sizes(query_ids: &[u32], channel: &str) -> Result<Vec<u32>> {
    let mut sizes: Vec<u32> = Vec::new();
    for (row, pair) in query_ids.windows(2).enumerate() {
        if pair[1] < pair[0] {
            return Err(Error::Data(format!(
                "channel '{channel}': row {} has qid {} after qid {}: the rows of each query must be together, in increasing qid order",
                row + 2,
                pair[1],
                pair[0]
            )));
        }
    }
    let mut last = None;
    for &q in query_ids {
        if last == Some(q) {
            *sizes.last_mut().expect("a group") += 1;
        } else {
            sizes.push(1);
            last = Some(q);
        }
    }
    Ok(sizes)
}

/// The metrics the built-in computes itself rather than XGBoost.
const CUSTOM: [&str; 13] = [
    "accuracy",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "mse",
    "precision",
    "precision_macro",
    "precision_micro",
    "r2",
    "recall",
    "recall_macro",
    "recall_micro",
];

/// Splits the asked metrics into XGBoost's own and those computed here.
fn split_metrics(metrics: &[String]) -> (Vec<String>, Vec<String>) {
    metrics
        .iter()
        .cloned()
        .partition(|m| !CUSTOM.contains(&m.as_str()))
}

/// XGBoost's evaluation of `sets` after `round`, our own metrics appended (`labels`: each set's,
/// in the same order).
fn round_log(
    booster: &Booster,
    sets: &[(&DMatrix, &str)],
    labels: &[(&str, Vec<f32>)],
    round: u32,
    params: &XgbParams,
    custom: &[String],
    world: &World,
) -> Result<RoundLog> {
    let mut log = xgboost::evaluate(booster, sets, round, params)?;
    for ((m, name), (_, y)) in sets.iter().zip(labels) {
        for (metric, value) in custom_scores(booster, m, y, custom, world)? {
            log.push(name, &metric, value);
        }
    }
    Ok(log)
}

/// The metrics XGBoost does not compute, on one set with every host's `labels`: classes from
/// the margins (`> 0` for one output per row, else the largest), values from the predictions,
/// both gathered from every host.
fn custom_scores(
    booster: &Booster,
    m: &DMatrix,
    labels: &[f32],
    custom: &[String],
    world: &World,
) -> Result<Vec<(String, f64)>> {
    if custom.is_empty() {
        return Ok(Vec::new());
    }
    let margins = world.gather(&booster.predict_margin(m)?)?;
    let outputs = margins.len() / labels.len().max(1);
    let classes: Vec<f32> = if outputs <= 1 {
        margins
            .iter()
            .map(|&v| f32::from(u8::from(v > 0.0)))
            .collect()
    } else {
        margins
            .chunks(outputs)
            .map(|row| common::metrics::most_probable(ndarray::ArrayView1::from(row)) as f32)
            .collect()
    };
    let mut values: Option<Vec<f32>> = None;
    let mut out = Vec::new();
    for name in custom {
        let value = match name.as_str() {
            "mse" | "r2" => {
                let p = match &values {
                    Some(p) => p,
                    None => values.insert(world.gather(&booster.predict(m)?)?),
                };
                let r = RegressionMetrics::compute(labels, p);
                if name == "mse" {
                    r.rmse * r.rmse
                } else {
                    r.r2
                }
            }
            other => label_metric(other, labels, &classes).expect("a listed label metric"),
        };
        out.push((name.clone(), value));
    }
    Ok(out)
}

/// The booster attribute a checkpoint keeps early stopping's best round and score in.
const BEST_ATTRIBUTE: &str = "sagemaker_best_round_and_score";

/// The built-in algorithm reads numbers only: a text column or text label is refused, naming
/// it (`model_kind=tabular` reads them).
fn refuse_text(d: &Dataset, channel: &str) -> Result<()> {
    let column = (0..d.feature_names.len())
        .find(|&k| d.encoding.feature(k).is_some())
        .map(|k| format!("column '{}'", d.feature_names[k]));
    match column.or_else(|| d.encoding.classes.as_ref().map(|_| "the label".to_owned())) {
        None => Ok(()),
        Some(what) => Err(Error::Data(format!(
            "channel '{channel}': {what} holds text, and the built-in XGBoost algorithm takes numbers only; encode it as numbers, or use model_kind=tabular, which reads text columns as categories and text labels as class names"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_runs_of_sorted_query_ids() {
        assert_eq!(
            group_sizes(&[1, 1, 2, 5, 5, 5], "train").unwrap(),
            [2, 1, 3]
        );
        let e = group_sizes(&[1, 2, 1], "train").unwrap_err().to_string();
        assert!(e.contains("row 3 has qid 1 after qid 2"), "{e}");
    }

    fn round(round: u32, scores: &[(&str, f64)]) -> RoundLog {
        let mut log = RoundLog {
            round,
            line: String::new(),
            scores: Vec::new(),
        };
        for (m, v) in scores {
            log.push("train", m, 0.0);
            log.push("validation", m, *v);
        }
        log
    }

    #[test]
    fn early_stopping_watches_the_asked_metric_as_xgboost_names_it() {
        // auc is maximised; logloss, logged after it, is not the one watched.
        let mut e = EarlyStopping::new(2, Some("auc".into()));
        let aucs = [0.6, 0.7, 0.65, 0.69, 0.8];
        let mut went_on = Vec::new();
        for (i, auc) in aucs.iter().enumerate() {
            went_on.push(
                e.observe(&round(i as u32, &[("auc", *auc), ("logloss", 0.1)]))
                    .unwrap(),
            );
            if !went_on[i] {
                break;
            }
        }
        assert_eq!(went_on, [true, true, true, false]);
        assert_eq!(e.best_round(), Some(1));
        // error@0.5 is logged `error`; ndcg@05 is logged `ndcg@5`.
        let mut e = EarlyStopping::new(3, Some("error@0.5".into()));
        e.observe(&round(0, &[("error", 0.3)])).unwrap();
        assert_eq!(e.metric.as_deref(), Some("error"));
        assert!(same_metric("ndcg@05", "ndcg@5") && !same_metric("ndcg@5", "ndcg@3"));
        // Without a metric asked for: XGBoost's default, the last it logs.
        let mut e = EarlyStopping::new(3, None);
        e.observe(&round(0, &[("rmse", 1.0)])).unwrap();
        assert_eq!(e.metric.as_deref(), Some("rmse"));
        // A metric XGBoost does not log is an error, not a silent run of every round.
        let mut e = EarlyStopping::new(3, Some("map@3".into()));
        let err = e
            .observe(&round(0, &[("ndcg", 0.5)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("early stopping watches 'map@3', which is not among the validation metrics logged (ndcg)"), "{err}");
    }

    #[test]
    fn custom_metrics_are_split_from_xgboost_metrics() {
        let m: Vec<String> = ["rmse", "r2", "accuracy", "auc"].map(String::from).to_vec();
        let (native, custom) = split_metrics(&m);
        assert_eq!(native, ["rmse", "auc"]);
        assert_eq!(custom, ["r2", "accuracy"]);
    }
}

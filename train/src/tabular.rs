//! Generic tabular training: every candidate fitted on the same rows, compared on ONE metric on
//! the validation split, the winner (or the chosen candidate) saved for `serve`.

use crate::checkpoints;
use crate::config::{TabularConfig, SELECTION_METRICS};
use crate::report;
use crate::rounds::Rounds;
use crate::splits::{self, total_rows, Reader};
use crate::Job;
use common::data::Dataset;
use common::kinds::out_of_range::training_ranges;
use common::kinds::{self, ModelKind};
use common::metrics::{roc_auc, MultiClassMetrics, RegressionMetrics};
use common::models::boosted::BoostState;
use common::models::tabular::{self, Candidate, TabularModel, Task, TrainRows};
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
    /// Seconds spent scoring the validation and test splits (k-NN's real cost is here).
    pub score_seconds: f64,
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
    /// The metric that breaks a tie on `metric` (then the candidates' order).
    pub tie_break: &'static str,
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
    /// Every candidate fitted, by name.
    pub candidates: BTreeMap<&'static str, CandidateReport>,
    /// Candidates left out, with the reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<&'static str, String>,
    /// Whether the fit was ended by SIGTERM (`save_model_on_termination`); the manifest's
    /// `partial` says what was fitted.
    pub partial: bool,
}

/// The candidates' fits so far: a checkpoint.
#[derive(Debug, Default, serde::Deserialize, Serialize)]
struct TabularState {
    /// The candidates fitted, in order: fit seconds and [`TabularModel::to_bytes`].
    fitted: Vec<(Candidate, f64, Vec<u8>)>,
    /// The XGBoost candidate's rounds so far, while it is fitted.
    boosting: Option<BoostState>,
    /// The checkpoint's number: one for each candidate fitted and each boosting round.
    steps: u32,
}

/// Loads, fits every candidate, compares, saves the served model; returns the comparison.
///
/// On several hosts the XGBoost and random-forest candidates train across them; the linear
/// model and k-NN are left out (see the README).
pub fn train(job: &Job, t: &TabularConfig) -> Result<Comparison> {
    let world = job.world;
    let channels = splits::load_channels(job, Reader::Tabular(&t.options), &|_, _| Ok(()))?;
    // Text labels are class names: they decide the task when no objective does.
    let classes = channels.train.encoding.classes.as_ref();
    let t = &t.for_labels(classes.map(|c| c.names()))?;
    let task = t.task;
    let check = |d: &Dataset, what: &str| {
        task.check_labels(d.labels().as_slice().expect("contiguous labels"))
            .map_err(|m| Error::Data(format!("{what}: {m}")))
    };
    // Every channel's labels, not only train's: a validation label of 3 for a 3-class task
    // would index past the confusion matrix, a 2 in a binary one count as a negative.
    check(&channels.train, "train channel")?;
    if let Some(validation) = &channels.validation {
        check(validation, "validation channel")?;
    }
    if let Some(test) = &channels.test {
        check(test, "test channel")?;
    }
    let splits = splits::split(
        channels,
        &job.config.split,
        task != Task::Regression,
        &check,
        world,
    )?;
    let width = splits.train.features.ncols();
    let categories = if splits.train.encoding.has_categorical() {
        splits.train.encoding.cardinalities(width)
    } else {
        Vec::new()
    };
    // The linear model and k-NN see categorical features one-hot encoded.
    let encoded_width = tabular::one_hot_width(&categories).max(width);
    let mut reports = BTreeMap::new();
    let mut models = BTreeMap::new();
    let mut skipped = BTreeMap::new();
    let (checkpoints, mut state) = checkpoints::resume(
        job,
        checkpoints::TABULAR_PREFIX,
        "candidates and boosting rounds done",
        checkpoints::decode::<TabularState>,
    )?;
    let writer = checkpoints.as_ref();
    // What a fit ended by SIGTERM kept, candidate by candidate, once it was.
    let mut partial: Option<Vec<String>> = None;
    for &candidate in &t.candidates {
        // k-NN scores every held-out row against every kept training row: past a budget it
        // would dominate the job, so among other candidates it is left out, unless it is the one
        // to serve.
        let scored = splits.validation.len() + splits.test.as_ref().map_or(0, Dataset::len);
        let kept = splits.train.len().min(t.params.knn_sample_size as usize);
        let encoded_values = encoded_width.saturating_mul(splits.train.len());
        // Why this candidate cannot be fitted here, and the error when it is required (alone,
        // or the one to serve); otherwise it is left out.
        let linear_or_knn = matches!(candidate, Candidate::Linear | Candidate::Knn);
        let cannot = if linear_or_knn
            && !categories.is_empty()
            && (encoded_width > tabular::MAX_ONE_HOT_WIDTH
                || encoded_values > tabular::MAX_ONE_HOT_VALUES)
        {
            let why = format!(
                "the categorical features one-hot encoded make {encoded_width} columns ({encoded_values} values for the train split), over the {} columns or {} values this candidate takes",
                tabular::MAX_ONE_HOT_WIDTH,
                tabular::MAX_ONE_HOT_VALUES
            );
            let refusal = Error::Data(format!("{}: {why}", candidate.name()));
            Some((why, refusal))
        } else if world.is_distributed() && linear_or_knn {
            let why = "not trained across several hosts (only the XGBoost and random-forest candidates are)".to_string();
            let refusal =
                Error::Config(format!("{}: {why}; train it on one host", candidate.name()));
            Some((why, refusal))
        } else {
            None
        };
        if let Some((why, refusal)) = cannot {
            if t.candidates.len() == 1 || t.serve_model == Some(candidate) {
                return Err(refusal);
            }
            tracing::warn!(candidate = candidate.name(), "left out: {why}");
            skipped.insert(candidate.name(), why);
            continue;
        }
        if candidate == Candidate::Knn
            && t.candidates.len() > 1
            && t.serve_model != Some(Candidate::Knn)
        {
            if let Some(seconds) = knn_too_costly(kept, scored, encoded_width) {
                let why = format!(
                    "scoring {scored} rows against {kept} would take about {seconds:.0} s, over the budget of {:.0} s; lower knn_sample_size, or name knn alone in candidates to fit it anyway",
                    KNN_BUDGET * NANOS_PER_TERM
                );
                tracing::warn!(candidate = "knn", "k-NN left out: {why}");
                skipped.insert(candidate.name(), why);
                continue;
            }
        }
        if partial.is_some() || !job.termination().go_on()? {
            partial
                .get_or_insert_with(Vec::new)
                .push(format!("{} not fitted", candidate.name()));
            continue;
        }
        let rows = TrainRows {
            x: splits.train.features.view(),
            y: splits.train.labels(),
            weights: splits.train.weights.as_ref(),
            validation: Some((
                splits.validation.features.view(),
                splits.validation.labels(),
            )),
            absent_is_zero: splits.train.absent_is_zero,
            categories: &categories,
        };
        let (model, fit_seconds) = match state.fitted.iter().find(|f| f.0 == candidate) {
            Some((_, seconds, bytes)) => (TabularModel::from_bytes(bytes)?, *seconds),
            None => {
                let start = std::time::Instant::now();
                let before = state.steps - state.boosting.as_ref().map_or(0, |b| b.rounds);
                let resume = state
                    .boosting
                    .take()
                    .filter(|_| candidate == Candidate::Xgboost);
                let mut fold = |s: &BoostState| {
                    state.boosting = Some(s.clone());
                    state.steps = before + s.rounds;
                    Ok((state.steps, checkpoints::encode(&state)?))
                };
                let mut hooks = Rounds::of(job, writer, &mut fold);
                let model = tabular::fit(candidate, task, &t.params, &rows, &mut hooks, resume)?;
                let seconds = start.elapsed().as_secs_f64();
                if let Some(rounds) = hooks.ended_after {
                    let asked = t.params.boost.num_round;
                    partial = Some(vec![format!(
                        "{} {rounds} of {asked} rounds",
                        candidate.name()
                    )]);
                } else if let Some(c) = writer {
                    state.boosting = None;
                    state.steps += 1;
                    state.fitted.push((candidate, seconds, model.to_bytes()?));
                    c.save(state.steps, &checkpoints::encode(&state)?)?;
                }
                (model, seconds)
            }
        };
        let start = std::time::Instant::now();
        let score = |d: &Dataset| -> Result<Scores> {
            let p = model.predict(d.features.view());
            let labels = world.gather(d.labels().as_slice().expect("contiguous labels"))?;
            let p = world.gather(p.as_slice().expect("standard layout"))?;
            let outputs = task.outputs();
            let p = Array2::from_shape_vec((p.len() / outputs, outputs), p)
                .map_err(|e| Error::Fit(format!("gathered predictions: {e}")))?;
            Ok(scores(task, &labels, &p))
        };
        let validation = score(&splits.validation)?;
        let test = splits.test.as_ref().map(score).transpose()?;
        let report = CandidateReport {
            fit_seconds,
            score_seconds: start.elapsed().as_secs_f64(),
            validation,
            test,
        };
        tracing::info!(candidate = candidate.name(), fit_seconds = format!("{fit_seconds:.2}"), score_seconds = format!("{:.2}", report.score_seconds), validation = ?report.validation, "candidate fitted");
        reports.insert(candidate, report);
        models.insert(candidate, model);
    }
    if reports.is_empty() && partial.is_some() {
        return Err(Error::Stopped(
            "the job received SIGTERM before any candidate was fitted; no model was written".into(),
        ));
    }
    let (metric, larger_is_better) = selection(t.selection_metric);
    let (tie_break, tie_larger_is_better) = selection(second_metric(task, metric));
    // Smaller is better; an undefined value (AUC of one class) ranks last.
    let rank = |c: &Candidate, m: &str, larger: bool| {
        let v = reports[c].validation.get(m).copied().unwrap_or(f64::NAN);
        match (v.is_nan(), larger) {
            (true, _) => f64::INFINITY,
            (false, true) => -v,
            (false, false) => v,
        }
    };
    let fitted: Vec<Candidate> = t
        .candidates
        .iter()
        .copied()
        .filter(|c| reports.contains_key(c))
        .collect();
    let best = *fitted
        .iter()
        .min_by(|a, b| {
            rank(a, metric, larger_is_better)
                .total_cmp(&rank(b, metric, larger_is_better))
                .then(rank(a, tie_break, tie_larger_is_better).total_cmp(&rank(
                    b,
                    tie_break,
                    tie_larger_is_better,
                )))
        })
        .expect("at least one candidate fitted");
    let tied: Vec<&str> = fitted
        .iter()
        .filter(|c| {
            **c != best
                && rank(c, metric, larger_is_better) == rank(&best, metric, larger_is_better)
        })
        .map(|c| c.name())
        .collect();
    if !tied.is_empty() {
        tracing::info!(best = best.name(), tied = ?tied, metric, tie_break, "candidates tie on the selection metric: the second metric decides, then the candidates' order");
    }
    // A candidate to serve that SIGTERM left unfitted gives way to the best fitted.
    let served = t
        .serve_model
        .filter(|c| models.contains_key(c))
        .unwrap_or(best);
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
            tie_break,
        },
        best_model: best.name(),
        served_model: served.name(),
        rows: total_rows(&splits, world)?,
        candidates: reports.iter().map(|(c, r)| (c.name(), r.clone())).collect(),
        skipped,
        partial: partial.is_some(),
    };
    let ranges = training_ranges(&splits.train, world)?;
    let partial = partial.map(|kept| kept.join(", "));
    job.termination().before_saving(partial.as_deref())?;
    if world.is_leader() {
        for line in metric_lines(&comparison) {
            println!("{line}");
        }
        save_model(
            job,
            &served_model,
            &splits.train,
            ranges,
            &comparison,
            partial,
        )?;
        report::write_output_json(job.opt_ml, "model_comparison.json", &comparison)?;
        report::write_evaluation(job.opt_ml, &comparison)?;
    }
    tracing::info!(
        best = best.name(),
        served = served.name(),
        metric,
        "model comparison"
    );
    Ok(comparison)
}

/// Most distance terms (kept training rows x scored rows x features) k-NN may compute when it is
/// one of several candidates.
const KNN_BUDGET: f64 = 1e10;

/// Seconds per distance term, about (one core).
const NANOS_PER_TERM: f64 = 1e-9;

/// The seconds k-NN's scoring would take, when over [`KNN_BUDGET`].
fn knn_too_costly(kept: usize, scored: usize, features: usize) -> Option<f64> {
    let terms = kept as f64 * scored as f64 * features as f64;
    (terms > KNN_BUDGET).then_some(terms * NANOS_PER_TERM)
}

/// A selection metric's name and whether larger is better.
fn selection(name: &str) -> (&'static str, bool) {
    SELECTION_METRICS
        .iter()
        .copied()
        .find(|(m, _)| *m == name)
        .expect("a listed metric")
}

/// The metric that breaks ties on `metric`: the task's other main metric.
fn second_metric(task: Task, metric: &str) -> &'static str {
    match (task, metric) {
        (Task::Regression, "rmse") => "mae",
        (Task::Regression, _) => "rmse",
        (Task::Binary, "auc") => "logloss",
        (Task::Binary, _) => "auc",
        (Task::MultiClass { .. }, "mlogloss") => "merror",
        (Task::MultiClass { .. }, _) => "mlogloss",
    }
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
    job: &Job,
    model: &TabularModel,
    train: &Dataset,
    ranges: BTreeMap<String, [f32; 2]>,
    comparison: &Comparison,
    partial: Option<String>,
) -> Result<()> {
    let mut manifest = report::manifest(
        ModelKind::Tabular,
        train.feature_names.clone(),
        comparison,
        &comparison.rows,
        &job.config.hyperparameters,
        ranges,
    )?;
    manifest.set_encoding(&train.encoding);
    manifest.partial = partial;
    // Trees are kept in XGBoost's format since version 2: older builds refuse the model.
    manifest.format_version = common::artifact::READS_UP_TO;
    report::write_model(job.opt_ml, manifest, kinds::tabular::payloads(model)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knn_is_left_out_past_its_budget_and_ties_have_a_second_metric() {
        // 600,000 rows of 14 features, 30 % held out, 10,000 kept: about 25 s.
        let s = knn_too_costly(10_000, 180_000, 14).unwrap();
        assert!((s - 25.2).abs() < 0.1, "{s}");
        // California housing (20,640 rows, 8 features): scored.
        assert_eq!(knn_too_costly(10_000, 6_192, 8), None);
        assert_eq!(second_metric(Task::Regression, "rmse"), "mae");
        assert_eq!(second_metric(Task::Binary, "error"), "auc");
        assert_eq!(
            second_metric(Task::MultiClass { num_class: 3 }, "mlogloss"),
            "merror"
        );
    }
}

//! XGBoost plumbing shared by every tree model: matrices, raw parameters, the round loop.
//!
//! Parameters are passed to XGBoost as plain `name=value` strings, exactly as XGBoost documents
//! them. The `xgb` crate's typed defaults pin `base_score=0.5`, which switches off XGBoost's own
//! intercept estimation; [`new_booster`] turns it back on so results match Python `xgboost`.

use super::trees::TreeModel;
use crate::error::{Error, Result};
use ndarray::{Array1, ArrayView2};
use xgb::parameters::BoosterParameters;
use xgb::{Booster, DMatrix};

/// XGBoost parameters as `name=value` pairs, applied in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XgbParams(pub Vec<(String, String)>);

impl XgbParams {
    /// Appends one parameter.
    pub fn set(mut self, name: &str, value: impl ToString) -> Self {
        self.0.push((name.to_owned(), value.to_string()));
        self
    }
}

/// A dense matrix (NaN = missing) with optional labels.
pub fn dmatrix(features: ArrayView2<f32>, labels: Option<&Array1<f32>>) -> Result<DMatrix> {
    let rows = features.nrows();
    let data: Vec<f32>;
    let slice = match features.as_slice() {
        Some(s) => s,
        None => {
            data = features.iter().copied().collect();
            &data
        }
    };
    if rows == 0 {
        return Err(Error::Fit("cannot build a matrix of 0 rows".into()));
    }
    let mut m = DMatrix::from_dense(slice, rows)?;
    if let Some(y) = labels {
        m.set_labels(y.as_slice().expect("labels are contiguous"))?;
    }
    Ok(m)
}

/// Marks the features with categories (`categories[k] > 0`) as categorical for XGBoost (their
/// values are category codes); nothing when `categories` holds none.
pub fn mark_categorical(m: &mut DMatrix, categories: &[usize]) -> Result<()> {
    if categories.iter().all(|&c| c == 0) {
        return Ok(());
    }
    let types: Vec<&str> = categories
        .iter()
        .map(|&c| if c > 0 { "c" } else { "q" })
        .collect();
    m.set_feature_types(&types)?;
    Ok(())
}

/// A booster with `params`, caching `cache` (the training matrix first) for fast evaluation.
pub fn new_booster(params: &XgbParams, cache: &[&DMatrix]) -> Result<Booster> {
    configured(
        Booster::new_with_cached_dmats(&BoosterParameters::default(), cache)?,
        params,
    )
}

/// A booster that goes on training from `model` (an XGBoost model file, which keeps no training
/// parameters: `params` are set again, as in [`new_booster`]).
pub fn resume_booster(params: &XgbParams, model: &[u8]) -> Result<Booster> {
    configured(Booster::load_buffer(model)?, params)
}

/// `booster` with XGBoost's intercept estimation back on, then `params` in order.
fn configured(mut booster: Booster, params: &XgbParams) -> Result<Booster> {
    booster.set_param("boost_from_average", "1")?;
    for (k, v) in &params.0 {
        booster.set_param(k, v)?;
    }
    Ok(booster)
}

/// One boosting round's evaluation: XGBoost's own log line and the scores in it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundLog {
    /// Round number from 0.
    pub round: u32,
    /// `[i]\ttrain-m:v\tvalidation-m:v`, as XGBoost prints it.
    pub line: String,
    /// `(set, metric, value)` in line order.
    pub scores: Vec<(String, String, f64)>,
}

impl RoundLog {
    /// The score of `metric` on the evaluation set `set`.
    pub fn score(&self, set: &str, metric: &str) -> Option<f64> {
        self.scores
            .iter()
            .find(|(s, m, _)| s == set && m == metric)
            .map(|t| t.2)
    }
}

/// Trains up to `rounds` boosting rounds on the first of `evals` (named `train`), evaluating
/// every set each round. `on_round` sees each round's [`RoundLog`] and returns whether to go on
/// (early stopping), or an error to abandon training (SIGTERM).
pub fn train_rounds(
    params: &XgbParams,
    evals: &[(&DMatrix, &str)],
    rounds: u32,
    on_round: &mut dyn FnMut(&RoundLog) -> Result<bool>,
) -> Result<Booster> {
    let dtrain = evals.first().expect("training matrix").0;
    let cache: Vec<&DMatrix> = evals.iter().map(|(m, _)| *m).collect();
    let mut booster = new_booster(params, &cache)?;
    for round in 0..rounds {
        booster.update(dtrain, round as i32)?;
        if !on_round(&evaluate(&booster, evals, round, params)?)? {
            break;
        }
    }
    Ok(booster)
}

/// One round on `dtrain` and nothing else: a forest (`num_parallel_tree` trees), whose round
/// needs no evaluation (XGBoost would predict every training row with the new trees for it).
pub fn fit_one_round(params: &XgbParams, dtrain: &DMatrix) -> Result<Booster> {
    let mut booster = new_booster(params, &[dtrain])?;
    booster.update(dtrain, 0)?;
    Ok(booster)
}

/// XGBoost's evaluation of every set after `round`, metrics in the order `eval_metric` lists
/// them in `params` (as XGBoost prints them).
pub fn evaluate(
    booster: &Booster,
    evals: &[(&DMatrix, &str)],
    round: u32,
    params: &XgbParams,
) -> Result<RoundLog> {
    let order: Vec<&str> = params
        .0
        .iter()
        .filter(|(k, _)| k == "eval_metric")
        .map(|(_, v)| v.as_str())
        .collect();
    let rank = |m: &str| order.iter().position(|o| *o == m).unwrap_or(usize::MAX);
    let mut log = RoundLog {
        round,
        line: format!("[{round}]"),
        scores: Vec::new(),
    };
    for (m, name) in evals {
        let mut scores: Vec<(String, f32)> = booster.evaluate(m)?.into_iter().collect();
        scores.sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
        for (metric, value) in scores {
            log.push(name, &metric, f64::from(value));
        }
    }
    Ok(log)
}

impl RoundLog {
    /// Appends one score to the scores and the line.
    pub fn push(&mut self, set: &str, metric: &str, value: f64) {
        self.line.push_str(&format!("\t{set}-{metric}:{value:.5}"));
        self.scores.push((set.to_owned(), metric.to_owned(), value));
    }
}

/// A trained booster in both forms the artifact keeps: XGBoost's own UBJSON model (for XGBoost
/// tooling) and the compiled trees that `train` and `serve` predict with.
pub fn export(booster: &Booster) -> Result<(Vec<u8>, TreeModel)> {
    let ubj = booster.save_buffer(true)?;
    let mut trees = TreeModel::from_xgboost_files(&[&ubj])?;
    // Stored as compiled trees, which keep no covers.
    trees.drop_covers();
    Ok((ubj, trees))
}

/// The XGBoost library's version (`major.minor.patch`), read from the `version` field XGBoost
/// writes into every model; `unknown` if a probe model cannot be made.
pub fn library_version() -> String {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION
        .get_or_init(|| {
            let probe = || -> Result<String> {
                let x = ndarray::arr2(&[[0.0f32], [1.0]]);
                let m = dmatrix(x.view(), Some(&ndarray::arr1(&[0.0, 1.0])))?;
                let mut b = new_booster(&XgbParams::default().set("nthread", 1), &[&m])?;
                b.update(&m, 0)?;
                let json: serde_json::Value = serde_json::from_slice(&b.save_buffer(false)?)
                    .map_err(|e| Error::Fit(e.to_string()))?;
                let v = json["version"].as_array().cloned().unwrap_or_default();
                Ok(v.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join("."))
            };
            probe().unwrap_or_else(|_| "unknown".to_owned())
        })
        .clone()
}

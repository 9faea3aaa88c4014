//! The hyperparameters of SageMaker's built-in XGBoost algorithm (`model_kind=xgboost`): every
//! name it accepts, its aliases, ranges and dependency rules, and its error wording
//! (`Missing required hyperparameter: num_round`, `Extraneous hyperparameter found: x`,
//! `Hyperparameter eta: 2.0 is not in [0, 1]`). Like the built-in, nothing is defaulted here:
//! what the user does not set is XGBoost's own default. Validated values are forwarded to XGBoost
//! as the user wrote them, except the few the container itself consumes.
//!
//! Where this differs from the built-in (each written in the README): whole numbers may be
//! written `10.0`; `true`/`false` in any case; list items may have spaces; `reg:absoluteerror`
//! is an objective; `auc` also applies to `multi:*`; the tree method need not be set for
//! monotone or interaction constraints (XGBoost's default is `hist`); GPU settings and `_kfold`
//! cross-validation are refused with a reason instead of accepted.

use common::hyperparams::Hyperparameters;
use common::models::xgboost::XgbParams;
use common::{Error, Result};

/// Metrics where larger is better (the built-in's list; `@` variants follow their base name).
pub const MAXIMIZE: [&str; 16] = [
    "accuracy",
    "auc",
    "aucpr",
    "balanced_accuracy",
    "f1",
    "f1_binary",
    "f1_macro",
    "map",
    "ndcg",
    "precision",
    "r2",
    "recall",
    "precision_macro",
    "precision_micro",
    "recall_macro",
    "recall_micro",
];

/// Metrics where smaller is better.
pub const MINIMIZE: [&str; 17] = [
    "aft-nloglik",
    "cox-nloglik",
    "error",
    "gamma-deviance",
    "gamma-nloglik",
    "interval-regression-accuracy",
    "logloss",
    "mae",
    "mape",
    "merror",
    "mlogloss",
    "mphe",
    "mse",
    "poisson-nloglik",
    "rmse",
    "rmsle",
    "tweedie-nloglik",
];

/// Objectives accepted (the built-in's, plus `reg:absoluteerror`).
pub const OBJECTIVES: [&str; 19] = [
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "count:poisson",
    "multi:softmax",
    "multi:softprob",
    "rank:pairwise",
    "rank:ndcg",
    "rank:map",
    "reg:linear",
    "reg:squarederror",
    "reg:logistic",
    "reg:gamma",
    "reg:pseudohubererror",
    "reg:squaredlogerror",
    "reg:tweedie",
    "reg:absoluteerror",
    "survival:aft",
    "survival:cox",
];

const UPDATERS: [&str; 10] = [
    "grow_colmaker",
    "distcol",
    "grow_histmaker",
    "grow_local_histmaker",
    "grow_skmaker",
    "sync",
    "refresh",
    "prune",
    "shotgun",
    "coord_descent",
];
const GROW_UPDATERS: [&str; 4] = [
    "grow_colmaker",
    "distcol",
    "grow_histmaker",
    "grow_local_histmaker",
];
const TRUE_FALSE: &[&str] = &["true", "false"];

/// Alias and the name it stands for (aliases are replaced before anything else).
const ALIASES: [(&str, &str); 4] = [
    ("learning_rate", "eta"),
    ("min_split_loss", "gamma"),
    ("reg_lambda", "lambda"),
    ("reg_alpha", "alpha"),
];

/// A range bound: the value and whether it is allowed itself.
#[derive(Clone, Copy)]
struct Bound(f64, bool);

const INF: Bound = Bound(f64::INFINITY, false);

/// What one hyperparameter takes.
#[derive(Clone, Copy)]
enum Kind {
    Int(Bound, Bound),
    Float(Bound, Bound),
    Choice(&'static [&'static str]),
    /// A comma list of tree or linear updaters.
    Updaters,
    /// A comma list of metric names.
    Metrics,
    /// `(1,0,-1)`: one of -1, 0, 1 per feature.
    Monotone,
    /// `[[1,2],[3,4]]`: lists of feature indices.
    Interaction,
}

const fn closed(a: f64) -> Bound {
    Bound(a, true)
}
const fn open(a: f64) -> Bound {
    Bound(a, false)
}

/// Every name the built-in accepts, in its order.
const SPECS: [(&str, Kind); 54] = [
    ("num_round", Kind::Int(closed(1.0), INF)),
    ("csv_weights", Kind::Int(closed(0.0), closed(1.0))),
    ("early_stopping_rounds", Kind::Int(closed(1.0), INF)),
    ("booster", Kind::Choice(&["gbtree", "gblinear", "dart"])),
    ("verbosity", Kind::Int(closed(0.0), closed(3.0))),
    ("nthread", Kind::Int(closed(1.0), INF)),
    ("eta", Kind::Float(closed(0.0), closed(1.0))),
    ("gamma", Kind::Float(closed(0.0), INF)),
    ("max_depth", Kind::Int(closed(0.0), INF)),
    ("min_child_weight", Kind::Float(closed(0.0), INF)),
    ("max_delta_step", Kind::Float(closed(0.0), INF)),
    ("subsample", Kind::Float(open(0.0), closed(1.0))),
    ("colsample_bytree", Kind::Float(open(0.0), closed(1.0))),
    ("colsample_bylevel", Kind::Float(open(0.0), closed(1.0))),
    ("colsample_bynode", Kind::Float(open(0.0), closed(1.0))),
    ("lambda", Kind::Float(closed(0.0), INF)),
    ("alpha", Kind::Float(closed(0.0), INF)),
    (
        "tree_method",
        Kind::Choice(&["auto", "exact", "approx", "hist", "gpu_hist"]),
    ),
    ("sketch_eps", Kind::Float(open(0.0), open(1.0))),
    ("scale_pos_weight", Kind::Float(open(0.0), INF)),
    ("updater", Kind::Updaters),
    ("dsplit", Kind::Choice(&["row", "col"])),
    ("refresh_leaf", Kind::Int(closed(0.0), closed(1.0))),
    ("process_type", Kind::Choice(&["default", "update"])),
    ("grow_policy", Kind::Choice(&["depthwise", "lossguide"])),
    ("max_leaves", Kind::Int(closed(0.0), INF)),
    ("max_bin", Kind::Int(closed(0.0), INF)),
    (
        "predictor",
        Kind::Choice(&["auto", "cpu_predictor", "gpu_predictor"]),
    ),
    ("monotone_constraints", Kind::Monotone),
    ("interaction_constraints", Kind::Interaction),
    ("sample_type", Kind::Choice(&["uniform", "weighted"])),
    ("normalize_type", Kind::Choice(&["tree", "forest"])),
    ("rate_drop", Kind::Float(closed(0.0), closed(1.0))),
    ("one_drop", Kind::Int(closed(0.0), closed(1.0))),
    ("skip_drop", Kind::Float(closed(0.0), closed(1.0))),
    ("lambda_bias", Kind::Float(closed(0.0), closed(1.0))),
    ("tweedie_variance_power", Kind::Float(open(1.0), open(2.0))),
    ("objective", Kind::Choice(&OBJECTIVES)),
    ("num_class", Kind::Int(closed(2.0), INF)),
    ("base_score", Kind::Float(closed(0.0), INF)),
    ("_kfold", Kind::Int(closed(2.0), INF)),
    ("_num_cv_round", Kind::Int(closed(1.0), INF)),
    ("eval_metric", Kind::Metrics),
    ("seed", Kind::Int(open(-2147483648.0), open(2147483647.0))),
    ("num_parallel_tree", Kind::Int(closed(1.0), INF)),
    ("save_model_on_termination", Kind::Choice(TRUE_FALSE)),
    // Ours: write a checkpoint every this many rounds (the built-in writes every round).
    ("checkpoint_interval", Kind::Int(closed(1.0), INF)),
    (
        "aft_loss_distribution",
        Kind::Choice(&["normal", "logistic", "extreme"]),
    ),
    ("aft_loss_distribution_scale", Kind::Float(closed(0.0), INF)),
    ("single_precision_histogram", Kind::Choice(TRUE_FALSE)),
    ("deterministic_histogram", Kind::Choice(TRUE_FALSE)),
    (
        "sampling_method",
        Kind::Choice(&["uniform", "gradient_based"]),
    ),
    ("prob_buffer_row", Kind::Float(open(0.0), closed(1.0))),
    ("use_dask_gpu_training", Kind::Choice(TRUE_FALSE)),
];

/// Names the container consumes itself; everything else validated goes to XGBoost.
const CONSUMED: [&str; 9] = [
    "num_round",
    "checkpoint_interval",
    "csv_weights",
    "early_stopping_rounds",
    "eval_metric",
    "save_model_on_termination",
    "_kfold",
    "_num_cv_round",
    "use_dask_gpu_training",
];

/// A job's settings in the built-in's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinParams {
    /// Boosting rounds.
    pub num_round: u32,
    /// Rounds without improvement of the watched validation metric before stopping.
    pub early_stopping_rounds: Option<u32>,
    /// CSV column 1 (libsvm `label:weight`) is an instance weight.
    pub csv_weights: bool,
    /// The objective (XGBoost's default `reg:squarederror` when not given).
    pub objective: String,
    /// Classes, for `multi:*`.
    pub num_class: Option<u32>,
    /// The metrics asked for: `eval_metric` and the tuning objective's, in the built-in's order;
    /// empty means XGBoost's default for the objective.
    pub eval_metrics: Vec<String>,
    /// The metric early stopping watches: the tuning objective's, else the last of
    /// `eval_metric` (the built-in's rule); `None`: XGBoost's default metric.
    pub stop_metric: Option<String>,
    /// Write the rounds finished so far when the job is stopped.
    pub save_model_on_termination: bool,
    /// Rounds between two checkpoints (with `checkpointconfig.json`).
    pub checkpoint_interval: u32,
    /// What XGBoost itself receives, in the user's order (metrics not included).
    pub xgboost: XgbParams,
}

impl BuiltinParams {
    /// Validates `hp` (without `model_kind`, which is ours) as the built-in does.
    pub fn from_hyperparameters(hp: &Hyperparameters) -> Result<Self> {
        let mut given: Vec<(&str, &str)> = Vec::new();
        for (key, value) in hp.iter().filter(|(k, _)| *k != "model_kind") {
            let value = value.trim();
            let key = ALIASES
                .iter()
                .find(|(alias, _)| *alias == key)
                .map_or(key, |(_, name)| name);
            given.retain(|(k, _)| *k != key);
            given.push((key, value));
        }
        let get = |key: &str| lookup(&given, key);
        if get("num_round").is_none() {
            return Err(fail("Missing required hyperparameter: num_round".into()));
        }
        for &(key, value) in &given {
            let Some(kind) = kind_of(key) else {
                return Err(fail(format!(
                    "Extraneous hyperparameter found: {}",
                    common::error::one_line(key, 100)
                )));
            };
            check(key, value, kind)?;
        }
        let objective = get("objective").unwrap_or("reg:squarederror");
        let objective = if objective == "reg:linear" {
            // XGBoost's old name of the same objective.
            "reg:squarederror"
        } else {
            objective
        };
        let tuning = hp
            .tuning_objective_metric
            .as_deref()
            .map(tuning_metric)
            .transpose()?;
        let eval_metrics = metric_list(get("eval_metric"), tuning);
        dependencies(&given, objective, &eval_metrics)?;
        let stop_metric = tuning.map(str::to_owned).or_else(|| {
            get("eval_metric")
                .and_then(|m| m.split(',').next_back())
                .map(|m| m.trim().to_owned())
        });
        let int = |key: &str| get(key).map(|v| parse_number(v).expect("checked") as i64);
        let mut xgboost = XgbParams::default().set("objective", objective);
        for &(key, value) in &given {
            if key == "objective" || CONSUMED.contains(&key) {
                continue;
            }
            // XGBoost reads whole numbers only as such (`10`, not `10.0` or `1e1`).
            xgboost = match kind_of(key) {
                Some(Kind::Int(..)) => xgboost.set(key, int(key).expect("given")),
                // `True` becomes `true` (the SDK writes Python's `str(True)`).
                Some(Kind::Choice(choices)) if choices == TRUE_FALSE => {
                    xgboost.set(key, value.to_ascii_lowercase())
                }
                _ => xgboost.set(key, value),
            };
        }
        Ok(Self {
            num_round: int("num_round").expect("required") as u32,
            early_stopping_rounds: int("early_stopping_rounds").map(|n| n as u32),
            csv_weights: int("csv_weights") == Some(1),
            objective: objective.to_owned(),
            num_class: int("num_class").map(|n| n as u32),
            eval_metrics,
            stop_metric,
            save_model_on_termination: get("save_model_on_termination")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            checkpoint_interval: int("checkpoint_interval").map_or(1, |n| n as u32),
            xgboost,
        })
    }

    /// Whether larger values of `metric` are better.
    pub fn maximize(metric: &str) -> bool {
        let base = metric.split('@').next().unwrap_or(metric);
        MAXIMIZE.contains(&base)
    }
}

/// What `key` takes, if the built-in accepts it.
fn kind_of(key: &str) -> Option<Kind> {
    SPECS
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, kind)| *kind)
}

/// Every metric name, as the built-in lists them in messages.
fn all_metrics() -> Vec<&'static str> {
    [&MAXIMIZE[..], &MINIMIZE[..]].concat()
}

/// The value given for `key`.
fn lookup<'a>(given: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    given.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn fail(message: String) -> Error {
    Error::Hyperparameter(message)
}

fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

fn range_text(lo: Bound, hi: Bound) -> String {
    let end = |b: Bound| {
        if b.0.is_infinite() {
            "+inf".to_owned()
        } else {
            format!("{}", b.0)
        }
    };
    format!(
        "{}{}, {}{}",
        if lo.1 { '[' } else { '(' },
        end(lo),
        end(hi),
        if hi.1 { ']' } else { ')' }
    )
}

fn within(v: f64, lo: Bound, hi: Bound) -> bool {
    (if lo.1 { v >= lo.0 } else { v > lo.0 }) && (if hi.1 { v <= hi.0 } else { v < hi.0 })
}

fn python_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Parses and range-checks one value.
fn check(key: &str, value: &str, kind: Kind) -> Result<()> {
    let shown = common::error::one_line(value, 100);
    let unparsable = || {
        fail(format!(
            "Hyperparameter {key}: could not parse value '{shown}'"
        ))
    };
    let outside = |v: &dyn std::fmt::Display, range: String| {
        fail(format!("Hyperparameter {key}: {v} is not in {range}"))
    };
    match kind {
        Kind::Int(lo, hi) => {
            let v = parse_number(value).ok_or_else(unparsable)?;
            if v.fract() != 0.0 {
                return Err(unparsable());
            }
            // XGBoost's integers are 32-bit: "+inf" ends there.
            let hi = if hi.0.is_infinite() {
                Bound(f64::from(i32::MAX), true)
            } else {
                hi
            };
            if !within(v, lo, hi) {
                return Err(outside(&(v as i64), range_text(lo, hi)));
            }
        }
        Kind::Float(lo, hi) => {
            let v = parse_number(value).ok_or_else(unparsable)?;
            if !within(v, lo, hi) {
                return Err(outside(&format!("{v:?}"), range_text(lo, hi)));
            }
        }
        Kind::Choice(choices) => {
            let word = value.trim();
            let ok = if choices == TRUE_FALSE {
                choices.iter().any(|c| c.eq_ignore_ascii_case(word))
            } else {
                choices.contains(&word)
            };
            if !ok {
                return Err(outside(&shown, python_list(choices)));
            }
        }
        Kind::Updaters => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if items.iter().any(|i| !UPDATERS.contains(i)) {
                return Err(fail(format!(
                    "Hyperparameter {key}: value {} not in range {}",
                    python_list(&items),
                    python_list(&UPDATERS)
                )));
            }
        }
        Kind::Metrics => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if let Some(bad) = items.iter().find(|m| !is_metric(m)) {
                return Err(fail(format!(
                    "Hyperparameter {key}: value {} not in range (metric '{bad}' is not one of {} or error@t, ndcg@n, map@n)",
                    python_list(&items),
                    python_list(&all_metrics())
                )));
            }
        }
        Kind::Monotone => {
            let inner = value.trim().trim_start_matches('(').trim_end_matches(')');
            let ok = inner
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .all(|s| matches!(s, "-1" | "0" | "1"));
            if !ok || inner.trim().is_empty() {
                return Err(fail(format!(
                    "Hyperparameter {key}: value {shown} not in range (a tuple of -1, 0 and 1, one per feature, e.g. (1,0,-1))"
                )));
            }
        }
        Kind::Interaction => {
            let lists: std::result::Result<Vec<Vec<u64>>, _> = serde_json::from_str(value);
            match lists {
                Ok(lists) if !lists.is_empty() && lists.iter().flatten().all(|&i| i >= 1) => {}
                _ => {
                    return Err(fail(format!(
                        "Hyperparameter {key}: value {shown} not in range (lists of feature indices >= 1, e.g. [[1,2],[3,4]])"
                    )))
                }
            }
        }
    }
    Ok(())
}

/// Whether `m` is a metric name the built-in accepts: a listed name, or `error@t` (t a number),
/// `ndcg@n`, `map@n` (n a whole number, as XGBoost reads them).
fn is_metric(m: &str) -> bool {
    match m.split_once('@') {
        None => MAXIMIZE.contains(&m) || MINIMIZE.contains(&m),
        Some(("error", t)) => parse_number(t).is_some(),
        Some(("ndcg" | "map", n)) => n.parse::<u32>().is_ok(),
        Some(_) => false,
    }
}

/// The metric part of `_tuning_objective_metric` (`validation:auc` -> `auc`).
fn tuning_metric(text: &str) -> Result<&str> {
    let name = text.split_once(':').map_or(text, |(_, m)| m).trim();
    if is_metric(name) {
        return Ok(name);
    }
    let names: Vec<String> = all_metrics()
        .iter()
        .map(|m| format!("validation:{m}"))
        .collect();
    Err(fail(format!(
        "Hyperparameter _tuning_objective_metric: {text} is not in {}",
        python_list(&names.iter().map(String::as_str).collect::<Vec<_>>())
    )))
}

/// `eval_metric` and the tuning objective's metric: the union, sorted, when both are given
/// (the built-in's order); otherwise whichever is given.
fn metric_list(eval_metric: Option<&str>, tuning: Option<&str>) -> Vec<String> {
    let mut metrics: Vec<String> = eval_metric
        .map(|v| v.split(',').map(|m| m.trim().to_owned()).collect())
        .unwrap_or_default();
    if let Some(name) = tuning {
        if !metrics.is_empty() {
            metrics.push(name.to_owned());
            metrics.sort();
        } else {
            metrics.push(name.to_owned());
        }
    }
    let mut seen = Vec::new();
    metrics.retain(|m| {
        let new = !seen.contains(m);
        seen.push(m.clone());
        new
    });
    metrics
}

/// The rules between hyperparameters, in the built-in's wording where it has one.
fn dependencies(given: &[(&str, &str)], objective: &str, metrics: &[String]) -> Result<()> {
    let get = |key: &str| lookup(given, key);
    if objective == "survival:aft" {
        return Err(fail("objective survival:aft needs lower and upper label bounds per row, which no input format of the built-in algorithm carries (it fails there too); use survival:cox, with negative labels for censored rows".into()));
    }
    if let Some(m) = metrics.iter().find(|m| ["mse", "r2"].contains(&m.as_str())) {
        if objective.starts_with("multi:") {
            return Err(fail(format!(
                "Metric '{m}' needs one prediction per row; objective {objective} gives one per class"
            )));
        }
    }
    if objective.starts_with("multi:") && get("num_class").is_none() {
        return Err(fail(
            "Require input for parameter 'num_class' for multi-classification".into(),
        ));
    }
    if metrics.iter().any(|m| m == "auc")
        && !["binary:", "rank:", "multi:"]
            .iter()
            .any(|p| objective.starts_with(p))
    {
        return Err(fail(
            "Metric 'auc' can only be applied for classification and ranking problems.".into(),
        ));
    }
    if metrics.iter().any(|m| m == "aft-nloglik") && objective != "survival:aft" {
        return Err(fail(
            "Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.".into(),
        ));
    }
    let tree_method = get("tree_method");
    if get("monotone_constraints").is_some()
        && !matches!(tree_method, None | Some("exact" | "hist"))
    {
        return Err(fail("monotone_constraints can be used only when the tree_method parameter is set to either 'exact' or 'hist'.".into()));
    }
    if get("interaction_constraints").is_some()
        && !matches!(tree_method, None | Some("exact" | "hist" | "approx"))
    {
        return Err(fail("interaction_constraints can be used only when the tree_method parameter is set to either 'exact', 'hist' or 'approx'.".into()));
    }
    if let Some(updater) = get("updater") {
        let items: Vec<&str> = updater.split(',').map(str::trim).collect();
        let linear = ["shotgun", "coord_descent"];
        if get("booster") == Some("gblinear") {
            if items.len() != 1 || !linear.contains(&items[0]) {
                return Err(fail(format!(
                    "Linear updater should be one of these options: {}.",
                    linear.map(|u| format!("'{u}'")).join(", ")
                )));
            }
        } else if get("process_type") == Some("update") {
            if items.iter().any(|i| !["refresh", "prune"].contains(i)) {
                return Err(fail(
                    "process_type 'update' can only be used with updater 'refresh' and 'prune'"
                        .into(),
                ));
            }
        } else if items.iter().any(|i| linear.contains(i)) {
            return Err(fail(format!(
                "Tree updater should be selected from these options: {}.",
                UPDATERS[..8]
                    .iter()
                    .map(|u| format!("'{u}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        } else if items.iter().filter(|i| GROW_UPDATERS.contains(i)).count() > 1 {
            return Err(fail(format!(
                "Only one tree grow plugin can be selected. Choose one from the following: {}.",
                GROW_UPDATERS.map(|u| format!("'{u}'")).join(", ")
            )));
        }
    }
    let no_gpu = "this image runs on CPU only (XGBoost's CPU library)";
    if get("tree_method") == Some("gpu_hist") {
        return Err(fail(format!(
            "tree_method 'gpu_hist' is not available: {no_gpu}; use 'hist' (same algorithm on CPU)"
        )));
    }
    if get("predictor") == Some("gpu_predictor") {
        return Err(fail(format!(
            "predictor 'gpu_predictor' is not available: {no_gpu}; leave predictor unset"
        )));
    }
    if get("use_dask_gpu_training").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(fail(format!(
            "use_dask_gpu_training=true is not available: {no_gpu}"
        )));
    }
    if get("_kfold").is_some() || get("_num_cv_round").is_some() {
        return Err(fail(
            "_kfold / _num_cv_round: cross-validation is not supported by this image; train without them and use a validation channel".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Result<BuiltinParams> {
        BuiltinParams::from_hyperparameters(&Hyperparameters::from_pairs(pairs.iter().copied()))
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        params(pairs).unwrap_err().to_string()
    }

    #[test]
    fn aliases_consumed_names_and_forwarded_parameters() {
        let p = params(&[
            ("model_kind", "xgboost"),
            ("num_round", "10.0"),
            ("learning_rate", "0.1"),
            ("reg_alpha", "2"),
            ("csv_weights", "1"),
            ("early_stopping_rounds", "3"),
            ("objective", "reg:linear"),
            ("eval_metric", "rmse, mae"),
            ("save_model_on_termination", "True"),
            ("monotone_constraints", "(1,0,-1)"),
            ("max_depth", "6.0"),
            ("tree_method", " hist "),
        ])
        .unwrap();
        assert_eq!(p.num_round, 10);
        assert_eq!(p.early_stopping_rounds, Some(3));
        assert!(p.csv_weights && p.save_model_on_termination);
        assert_eq!(p.objective, "reg:squarederror");
        assert_eq!(p.eval_metrics, ["rmse", "mae"]);
        let forwarded: Vec<(&str, &str)> = p
            .xgboost
            .0
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            forwarded,
            [
                ("objective", "reg:squarederror"),
                ("eta", "0.1"),
                ("max_depth", "6"),
                ("monotone_constraints", "(1,0,-1)"),
                ("alpha", "2"),
                ("tree_method", "hist"),
            ]
        );
    }

    #[test]
    fn the_tuning_metric_joins_eval_metric_sorted() {
        let mut hp = Hyperparameters::from_pairs([("num_round", "5"), ("eval_metric", "rmse,mae")]);
        let p = BuiltinParams::from_hyperparameters(&hp).unwrap();
        assert_eq!(p.stop_metric.as_deref(), Some("mae"));
        hp.tuning_objective_metric = Some("validation:r2".into());
        let p = BuiltinParams::from_hyperparameters(&hp).unwrap();
        assert_eq!(p.eval_metrics, ["mae", "r2", "rmse"]);
        // Early stopping watches the tuning objective, as the built-in.
        assert_eq!(p.stop_metric.as_deref(), Some("r2"));
        hp.tuning_objective_metric = Some("validation:nonsense".into());
        let e = BuiltinParams::from_hyperparameters(&hp)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Hyperparameter _tuning_objective_metric: validation:nonsense is not in ['validation:accuracy'"), "{e}");
        assert!(BuiltinParams::maximize("ndcg@5") && !BuiltinParams::maximize("error@0.7"));
    }

    #[test]
    fn the_builtin_wording_for_every_kind_of_mistake() {
        let n = ("num_round", "5");
        for (pairs, want) in [
            (vec![("eta", "0.1")], "Missing required hyperparameter: num_round"),
            (vec![n, ("silent", "1")], "Extraneous hyperparameter found: silent"),
            (vec![n, ("max_depth", "1.5")], "Hyperparameter max_depth: could not parse value '1.5'"),
            (vec![n, ("subsample", "0")], "Hyperparameter subsample: 0.0 is not in (0, 1]"),
            (vec![n, ("seed", "-2147483648")], "Hyperparameter seed: -2147483648 is not in (-2147483648, 2147483647)"),
            (vec![n, ("num_round", "0")], "Hyperparameter num_round: 0 is not in [1, 2147483647]"),
            (vec![n, ("num_round", "4294967296")], "Hyperparameter num_round: 4294967296 is not in [1, 2147483647]"),
            (vec![n, ("tree_method", " gpu_hist")], "tree_method 'gpu_hist' is not available"),
            (vec![n, ("objective", "survival:aft")], "objective survival:aft needs lower and upper label bounds"),
            (vec![n, ("objective", "multi:softprob"), ("num_class", "3"), ("eval_metric", "r2")], "Metric 'r2' needs one prediction per row"),
            (vec![n, ("booster", "gbforest")], "Hyperparameter booster: gbforest is not in ['gbtree', 'gblinear', 'dart']"),
            (vec![n, ("eval_metric", "rmse,foo")], "Hyperparameter eval_metric: value ['rmse', 'foo'] not in range"),
            (vec![n, ("eval_metric", "aft-nloglik")], "Metric 'aft-nloglik' can only be applied for 'survival:aft' objective."),
            (vec![n, ("monotone_constraints", "(1,2)")], "Hyperparameter monotone_constraints: value (1,2) not in range"),
            (vec![n, ("monotone_constraints", "(1,0)"), ("tree_method", "approx")], "monotone_constraints can be used only when the tree_method parameter is set to either 'exact' or 'hist'."),
            (vec![n, ("interaction_constraints", "[[0,1]]")], "Hyperparameter interaction_constraints: value [[0,1]] not in range"),
            (vec![n, ("updater", "grow_colmaker,grow_histmaker")], "Only one tree grow plugin can be selected."),
            (vec![n, ("booster", "gblinear"), ("updater", "prune")], "Linear updater should be one of these options: 'shotgun', 'coord_descent'."),
            (vec![n, ("process_type", "update"), ("updater", "grow_colmaker")], "process_type 'update' can only be used with updater 'refresh' and 'prune'"),
            (vec![n, ("_kfold", "5")], "cross-validation is not supported by this image"),
            (vec![n, ("predictor", "gpu_predictor")], "predictor 'gpu_predictor' is not available"),
        ] {
            let e = error(&pairs);
            assert!(e.contains(want), "{pairs:?}: {e}");
        }
        // Metrics with thresholds and cut-offs, and auc for a multi-class objective.
        params(&[
            n,
            ("objective", "multi:softprob"),
            ("num_class", "3"),
            ("eval_metric", "auc,merror"),
        ])
        .unwrap();
        params(&[
            n,
            ("objective", "rank:ndcg"),
            ("eval_metric", "ndcg@5,map@3,error@0.7"),
        ])
        .unwrap();
    }
}

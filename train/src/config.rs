//! The training job's configuration: hyperparameters, channels and hosts, validated before any
//! data is read.

use crate::xgboost_hyperparameters::BuiltinParams;
use common::data::tabular::{TabularOptions, DELIMITERS};
use common::hyperparams::{HyperparameterReader, Hyperparameters, Interval};
use common::kinds::{iops, ModelKind};
use common::models::boosted::BoostParams;
use common::models::ensemble::{BoostingParams, EnsembleParams, ForestParams, Member, Weighting};
use common::models::logistic::LogisticParams;
use common::models::tabular::{Candidate, TabularParams, Task};
use common::opt_ml::OptMl;
use common::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The IOPS models' names for the `models` hyperparameter.
pub const IOPS_MODELS: [&str; 2] = ["classifier", "regressor"];

/// How rows are split when the validation or test channel is absent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitConfig {
    /// Share of all rows held out for validation.
    pub validation_fraction: f64,
    /// Share of all rows held out for test.
    pub test_fraction: f64,
    /// Random state of the split.
    pub seed: u64,
}

/// The IOPS job's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct IopsParams {
    /// Which of the two models to train.
    pub models: iops::Models,
    /// XGBoost settings, shared by both models.
    pub boost: BoostParams,
}

/// The model-specific settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// The fire detector's ensemble.
    Fire(EnsembleParams),
    /// The IOPS risk classifier and performance regressor.
    Iops(IopsParams),
    /// Generic tabular candidates compared on one metric.
    Tabular(TabularConfig),
    /// SageMaker's built-in XGBoost algorithm, with its hyperparameters.
    Xgboost(BuiltinParams),
}

/// Selection metrics and whether larger is better.
pub const SELECTION_METRICS: [(&str, bool); 7] = [
    ("rmse", false),
    ("mae", false),
    ("auc", true),
    ("logloss", false),
    ("error", false),
    ("mlogloss", false),
    ("merror", false),
];

/// The tabular job's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TabularConfig {
    /// What is predicted.
    pub task: Task,
    /// Whether `objective` was given; when not, text labels make the task classification
    /// ([`TabularConfig::for_labels`]).
    pub objective_given: bool,
    /// `selection_metric` as given, and the tuning objective's metric: the selection metric
    /// again when the task is decided by the labels.
    selection_given: Option<String>,
    tuning_metric: Option<String>,
    /// Candidates to fit and compare.
    pub candidates: Vec<Candidate>,
    /// The one metric the comparison uses (on the validation split).
    pub selection_metric: &'static str,
    /// The candidate to serve; `None` serves the comparison's winner.
    pub serve_model: Option<Candidate>,
    /// Every candidate's settings.
    pub params: TabularParams,
    /// How labels and weights are read.
    pub options: TabularOptions,
}

/// Everything `train` needs to know before reading data.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The model kind.
    pub model_kind: ModelKind,
    /// Settings of that kind.
    pub model: ModelConfig,
    /// Split settings.
    pub split: SplitConfig,
    /// The decoded hyperparameters, for the manifest.
    pub hyperparameters: BTreeMap<String, String>,
    /// When checkpoints are kept: boosting rounds between two (`checkpoint_interval`).
    pub checkpoint_interval: u32,
    /// `save_model_on_termination`: on SIGTERM the model as it stands is saved, marked partial.
    pub save_model_on_termination: bool,
}

const UNIT: Interval = Interval::left_open(0.0, 1.0);
const NON_NEGATIVE: Interval = Interval::closed(0.0, f64::INFINITY);

impl TrainConfig {
    /// Reads and validates the hyperparameters; unknown keys are an error.
    pub fn from_hyperparameters(hp: &Hyperparameters) -> Result<Self> {
        let mut r = HyperparameterReader::new(hp);
        let model_kind = r.choice(
            "model_kind",
            ModelKind::FireEnsemble.name(),
            &ModelKind::TRAINED,
        )?;
        let model_kind = ModelKind::from_name(model_kind).expect("a listed kind");
        let hyperparameters = hp
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if model_kind == ModelKind::Xgboost {
            // The built-in's own names and rules, and nothing held out of `train`.
            let params = BuiltinParams::from_hyperparameters(hp)?;
            return Ok(Self {
                model_kind,
                split: SplitConfig {
                    validation_fraction: 0.0,
                    test_fraction: 0.0,
                    seed: 0,
                },
                hyperparameters,
                checkpoint_interval: params.checkpoint_interval,
                save_model_on_termination: params.save_model_on_termination,
                model: ModelConfig::Xgboost(params),
            });
        }
        let seed = r.u64("seed", 42, 0, u64::from(u32::MAX))?;
        let max_bin = r.u64("max_bin", 256, 2, 4096)? as u32;
        let nthread = r.u64("nthread", 0, 0, 1024)? as u32;
        let model = match model_kind {
            ModelKind::FireEnsemble => {
                ModelConfig::Fire(fire_params(&mut r, seed, max_bin, nthread)?)
            }
            ModelKind::Iops => ModelConfig::Iops(iops_params(&mut r, seed, max_bin, nthread)?),
            ModelKind::Xgboost => unreachable!("returned above"),
            ModelKind::Tabular => ModelConfig::Tabular(tabular_config(
                &mut r,
                hp.tuning_objective_metric.as_deref(),
                seed,
                max_bin,
                nthread,
            )?),
        };
        // A checkpoint holds the whole state (a fire state the forest, tens of MB; an IOPS or
        // tabular one the models finished before): every 10 rounds by default.
        let checkpoint_interval = r.u64("checkpoint_interval", 10, 1, 1_000_000)? as u32;
        let save_model_on_termination = r.bool("save_model_on_termination", false)?;
        let split = SplitConfig {
            validation_fraction: r.f64(
                "validation_fraction",
                0.15,
                Interval::right_open(0.01, 0.5),
            )?,
            test_fraction: r.f64("test_fraction", 0.15, Interval::right_open(0.0, 0.5))?,
            seed,
        };
        r.finish()?;
        Ok(Self {
            model_kind,
            model,
            split,
            hyperparameters,
            checkpoint_interval,
            save_model_on_termination,
        })
    }
}

fn fire_params(
    r: &mut HyperparameterReader,
    seed: u64,
    max_bin: u32,
    nthread: u32,
) -> Result<EnsembleParams> {
    let members = r
        .list("models", &Member::NAMES, &Member::NAMES)?
        .into_iter()
        .filter_map(Member::from_name)
        .collect();
    let d = EnsembleParams::default();
    let weighting =
        Weighting::from_name(r.choice("weighting", d.weighting.name(), &Weighting::NAMES)?)
            .expect("listed name");
    let b = &d.boosting;
    Ok(EnsembleParams {
        members,
        forest: forest_params(r, &d.forest, true)?,
        boosting: BoostingParams {
            num_round: r.u64("gb_num_round", b.num_round.into(), 1, 10_000)? as u32,
            max_depth: r.u64("gb_max_depth", b.max_depth.into(), 1, 20)? as u32,
            eta: r.f64("gb_eta", b.eta, UNIT)?,
            subsample: r.f64("gb_subsample", b.subsample, UNIT)?,
            colsample_bytree: r.f64("gb_colsample_bytree", b.colsample_bytree, UNIT)?,
            lambda: r.f64("gb_lambda", b.lambda, NON_NEGATIVE)?,
            min_child_weight: r.f64("gb_min_child_weight", b.min_child_weight, NON_NEGATIVE)?,
            eval_interval: r.u64("gb_eval_interval", b.eval_interval.into(), 1, 10_000)? as u32,
        },
        logistic: LogisticParams {
            c: r.f64(
                "lr_c",
                d.logistic.c,
                Interval::left_open(0.0, f64::INFINITY),
            )?,
            max_iterations: r.u64("lr_max_iter", d.logistic.max_iterations, 1, 100_000)?,
        },
        weighting,
        threshold: r.f64(
            "threshold",
            d.threshold,
            Interval {
                min: 0.0,
                min_inclusive: false,
                max: 1.0,
                max_inclusive: false,
            },
        )?,
        max_bin,
        seed,
        nthread,
    })
}

/// Random forest settings (`rf_*`), defaulting to `d`; `regularisation` also reads `rf_lambda`
/// and `rf_min_child_weight`.
fn forest_params(
    r: &mut HyperparameterReader,
    d: &ForestParams,
    regularisation: bool,
) -> Result<ForestParams> {
    let mut f = ForestParams {
        num_trees: r.u64("rf_num_trees", d.num_trees.into(), 1, 5000)? as u32,
        max_depth: r.u64("rf_max_depth", d.max_depth.into(), 1, 20)? as u32,
        subsample: r.f64("rf_subsample", d.subsample, UNIT)?,
        colsample_bynode: r
            .opt_f64("rf_colsample_bynode", UNIT)?
            .or(d.colsample_bynode),
        ..*d
    };
    if regularisation {
        f.lambda = r.f64("rf_lambda", d.lambda, NON_NEGATIVE)?;
        f.min_child_weight = r.f64("rf_min_child_weight", d.min_child_weight, NON_NEGATIVE)?;
    }
    Ok(f)
}

/// XGBoost settings under SageMaker's built-in XGBoost names, defaulting to `d`.
fn boost_params(
    r: &mut HyperparameterReader,
    d: BoostParams,
    seed: u64,
    max_bin: u32,
    nthread: u32,
) -> Result<BoostParams> {
    let early_default = d.early_stopping_rounds.map_or(0, u64::from);
    let early = r.u64("early_stopping_rounds", early_default, 0, 10_000)? as u32;
    Ok(BoostParams {
        num_round: r.u64("num_round", u64::from(d.num_round), 1, 10_000)? as u32,
        eta: r.f64("eta", d.eta, UNIT)?,
        max_depth: r.u64("max_depth", u64::from(d.max_depth), 1, 20)? as u32,
        min_child_weight: r.f64("min_child_weight", d.min_child_weight, NON_NEGATIVE)?,
        subsample: r.f64("subsample", d.subsample, UNIT)?,
        colsample_bytree: r.f64("colsample_bytree", d.colsample_bytree, UNIT)?,
        gamma: r.f64("gamma", d.gamma, NON_NEGATIVE)?,
        alpha: r.f64("alpha", d.alpha, NON_NEGATIVE)?,
        lambda: r.f64("lambda", d.lambda, NON_NEGATIVE)?,
        early_stopping_rounds: (early > 0).then_some(early),
        max_bin,
        seed,
        nthread,
    })
}

/// The tabular settings: the task from `objective` (built-in XGBoost names), the candidates and
/// their settings, and the selection metric (`selection_metric`, else the metric of
/// `_tuning_objective_metric` when it names one, else RMSE / AUC / multi-class log loss).
fn tabular_config(
    r: &mut HyperparameterReader,
    tuning_metric: Option<&str>,
    seed: u64,
    max_bin: u32,
    nthread: u32,
) -> Result<TabularConfig> {
    let objective_given = r.raw_text("objective").is_some();
    let objective = r.choice(
        "objective",
        "reg:squarederror",
        &[
            "reg:squarederror",
            "reg:linear",
            "binary:logistic",
            "multi:softprob",
            "multi:softmax",
        ],
    )?;
    let num_class = r.u64("num_class", 0, 0, 10_000)? as u32;
    let task = match objective {
        "binary:logistic" => Task::Binary,
        o if o.starts_with("multi:") => {
            if num_class < 2 {
                return Err(Error::Hyperparameter(format!(
                    "num_class: {objective} needs num_class >= 2"
                )));
            }
            Task::MultiClass { num_class }
        }
        _ => Task::Regression,
    };
    let candidates: Vec<Candidate> = r
        .list("candidates", &Candidate::NAMES, &Candidate::NAMES)?
        .into_iter()
        .filter_map(Candidate::from_name)
        .collect();
    let selection_given = r.raw_text("selection_metric");
    // Without an objective, text labels may still make it a classification: checked then.
    let selection_metric = match selection_metric(task, selection_given, tuning_metric) {
        Err(_) if !objective_given => selection_metric(task, None, tuning_metric)?,
        chosen => chosen?,
    };
    let mut serve_choices = vec!["auto"];
    serve_choices.extend(Candidate::NAMES);
    let serve_model = Candidate::from_name(r.choice("serve_model", "auto", &serve_choices)?);
    if let Some(served) = serve_model.filter(|c| !candidates.contains(c)) {
        return Err(Error::Hyperparameter(format!(
            "serve_model: '{}' is not among the candidates ({})",
            served.name(),
            candidates
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let d = TabularParams::default();
    let params = TabularParams {
        boost: boost_params(r, d.boost, seed, max_bin, nthread)?,
        // lambda and min_child_weight stay at the forest defaults (not tabular hyperparameters).
        forest: forest_params(r, &d.forest, false)?,
        linear_c: r.f64(
            "linear_c",
            d.linear_c,
            Interval::left_open(0.0, f64::INFINITY),
        )?,
        linear_lambda: r.f64("linear_lambda", d.linear_lambda, NON_NEGATIVE)?,
        knn_k: r.u64("knn_k", d.knn_k.into(), 1, 1000)? as u32,
        knn_sample_size: r.u64("knn_sample_size", d.knn_sample_size.into(), 1, 10_000_000)? as u32,
    };
    let options = TabularOptions {
        label_column: r.raw_text("label_column").unwrap_or("label").to_owned(),
        csv_weights: r.bool("csv_weights", false)?,
        delimiter: match r.choice(
            "csv_delimiter",
            "auto",
            &["auto", "comma", "tab", "semicolon", "pipe"],
        )? {
            "auto" => None,
            name => DELIMITERS.iter().find(|d| d.1 == name).map(|d| d.0),
        },
    };
    Ok(TabularConfig {
        task,
        objective_given,
        selection_given: selection_given.map(str::to_owned),
        tuning_metric: tuning_metric.map(str::to_owned),
        candidates,
        selection_metric,
        serve_model,
        params,
        options,
    })
}

/// The metric models are compared on for `task`: `given` (any case), else the tuning
/// objective's metric when the task has it, else the task's first (RMSE, AUC, multi-class log
/// loss).
fn selection_metric(
    task: Task,
    given: Option<&str>,
    tuning_metric: Option<&str>,
) -> Result<&'static str> {
    let allowed: &[&'static str] = match task {
        Task::Regression => &["rmse", "mae"],
        Task::Binary => &["auc", "logloss", "error"],
        Task::MultiClass { .. } => &["mlogloss", "merror"],
    };
    let find = |m: &str| allowed.iter().copied().find(|a| a.eq_ignore_ascii_case(m));
    match given {
        Some(text) => find(text).ok_or_else(|| {
            Error::Hyperparameter(format!(
                "selection_metric: could not parse value '{}'; allowed: one of {}",
                common::error::one_line(text, 100),
                allowed.join(", ")
            ))
        }),
        None => Ok(tuning_metric
            .and_then(|m| m.rsplit([':', '-']).next())
            .and_then(find)
            .unwrap_or(allowed[0])),
    }
}

impl TabularConfig {
    /// The settings for the labels read: numbers keep the objective's task; text labels of
    /// `classes` names make it binary for two classes and multi-class for more without an
    /// objective, and must agree with a given one.
    pub fn for_labels(&self, classes: Option<&[String]>) -> Result<Self> {
        let Some(classes) = classes else {
            return Ok(Self {
                selection_metric: selection_metric(
                    self.task,
                    self.selection_given.as_deref(),
                    self.tuning_metric.as_deref(),
                )?,
                ..self.clone()
            });
        };
        let n = classes.len();
        let shown = common::data::categories::shown(classes);
        let task = match (self.objective_given, self.task) {
            (_, _) if n < 2 => {
                return Err(Error::Data(format!(
                    "the labels are one class name ({shown}); a classifier needs two or more"
                )))
            }
            (false, _) if n == 2 => Task::Binary,
            (false, _) => Task::MultiClass {
                num_class: n as u32,
            },
            (true, Task::Regression) => {
                return Err(Error::Data(format!(
                    "the labels are class names ({shown}) but objective is a regression; leave objective out, or set binary:logistic (two classes) or multi:softprob with num_class={n}"
                )))
            }
            (true, Task::Binary) if n != 2 => {
                return Err(Error::Data(format!(
                    "objective binary:logistic needs two classes, the labels have {n} ({shown}); set multi:softprob with num_class={n}"
                )))
            }
            (true, Task::MultiClass { num_class }) if num_class as usize != n => {
                return Err(Error::Data(format!(
                    "num_class is {num_class}, the labels have {n} classes ({shown})"
                )))
            }
            (true, task) => task,
        };
        Ok(Self {
            task,
            selection_metric: selection_metric(
                task,
                self.selection_given.as_deref(),
                self.tuning_metric.as_deref(),
            )?,
            ..self.clone()
        })
    }
}

/// The IOPS settings under SageMaker's built-in XGBoost names. `objective` and `num_class` as
/// the original job passed them are accepted: a multi-class objective selects the classifier
/// alone, `reg:squarederror` the regressor alone.
fn iops_params(
    r: &mut HyperparameterReader,
    seed: u64,
    max_bin: u32,
    nthread: u32,
) -> Result<IopsParams> {
    let listed = r.list("models", &IOPS_MODELS, &IOPS_MODELS)?;
    let mut models = iops::Models {
        classifier: listed.contains(&"classifier"),
        regressor: listed.contains(&"regressor"),
    };
    match r.choice(
        "objective",
        "",
        &[
            "multi:softmax",
            "multi:softprob",
            "reg:squarederror",
            "reg:linear",
        ],
    )? {
        "" => {}
        o if o.starts_with("multi:") => models.regressor = false,
        _ => models.classifier = false,
    }
    if !models.classifier && !models.regressor {
        return Err(Error::Hyperparameter(
            "models and objective select no model: a multi-class objective trains the classifier, reg:squarederror the regressor".into(),
        ));
    }
    r.u64("num_class", 4, 4, 4)?;
    Ok(IopsParams {
        models,
        boost: boost_params(r, BoostParams::default(), seed, max_bin, nthread)?,
    })
}

/// One channel's entry of `inputdataconfig.json`; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChannelConfig {
    /// The MIME type the job declared for the channel, if any.
    #[serde(rename = "ContentType", default)]
    pub content_type: Option<String>,
    /// `File`, `FastFile` or `Pipe`.
    #[serde(rename = "TrainingInputMode", default)]
    pub input_mode: Option<String>,
    /// `FullyReplicated` (every host gets every file) or `ShardedByS3Key` (each its own files).
    #[serde(rename = "S3DistributionType", default)]
    pub distribution: Option<String>,
}

/// Reads `inputdataconfig.json` leniently; a missing file means no declared channels.
pub fn input_data_config(opt_ml: &OptMl) -> Result<BTreeMap<String, ChannelConfig>> {
    read_optional_json(&opt_ml.input_data_config_file())
}

/// The part of `resourceconfig.json` that matters: this host and all hosts.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResourceConfig {
    /// This container's host name.
    #[serde(default)]
    pub current_host: Option<String>,
    /// All hosts of the job.
    #[serde(default)]
    pub hosts: Vec<String>,
}

impl ResourceConfig {
    /// Reads `resourceconfig.json` leniently; a missing file means a single host.
    pub fn load(opt_ml: &OptMl) -> Result<Self> {
        read_optional_json(&opt_ml.resource_config_file())
    }
}

fn read_optional_json<T: serde::de::DeserializeOwned + Default>(
    path: &std::path::Path,
) -> Result<T> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            Error::Config(format!("{name} is malformed: {e}"))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals() {
        let c = TrainConfig::from_hyperparameters(&Hyperparameters::default()).unwrap();
        assert_eq!(c.model, ModelConfig::Fire(EnsembleParams::default()));
        assert_eq!(
            c.split,
            SplitConfig {
                validation_fraction: 0.15,
                test_fraction: 0.15,
                seed: 42
            }
        );
    }

    #[test]
    fn overrides_and_member_switches() {
        let hp = Hyperparameters::from_pairs([
            ("models", "gradient_boosting, logistic_regression"),
            ("gb_eta", "3e-2"),
            ("weighting", "AUC"),
        ]);
        let c = TrainConfig::from_hyperparameters(&hp).unwrap();
        let ModelConfig::Fire(e) = c.model else {
            panic!("fire is the default kind")
        };
        assert_eq!(
            e.members,
            vec![Member::GradientBoosting, Member::LogisticRegression]
        );
        assert_eq!(e.boosting.eta, 0.03);
        assert_eq!(e.weighting, Weighting::Auc);
    }

    #[test]
    fn iops_takes_the_builtin_xgboost_names_and_the_originals_objectives() {
        let iops = |pairs: &[(&str, &str)]| {
            let mut all = vec![("model_kind", "iops")];
            all.extend_from_slice(pairs);
            TrainConfig::from_hyperparameters(&Hyperparameters::from_pairs(all)).map(|c| c.model)
        };
        let both = iops::Models {
            classifier: true,
            regressor: true,
        };
        assert_eq!(
            iops(&[]).unwrap(),
            ModelConfig::Iops(IopsParams {
                models: both,
                boost: BoostParams::default()
            })
        );
        let ModelConfig::Iops(p) = iops(&[
            ("objective", "multi:softmax"),
            ("num_class", "4"),
            ("eta", "0.05"),
            ("max_depth", "8"),
            ("alpha", "1.5"),
            ("early_stopping_rounds", "0"),
        ])
        .unwrap() else {
            panic!("iops")
        };
        assert!(p.models.classifier && !p.models.regressor);
        assert_eq!(
            (p.boost.eta, p.boost.max_depth, p.boost.alpha),
            (0.05, 8, 1.5)
        );
        assert_eq!(p.boost.early_stopping_rounds, None);
        let e = iops(&[("models", "regressor"), ("objective", "multi:softprob")]).unwrap_err();
        assert!(e.to_string().contains("select no model"), "{e}");
        let e = iops(&[("num_class", "3")]).unwrap_err();
        assert!(
            e.to_string().contains("num_class: 3 is not in [4, 4]"),
            "{e}"
        );
        let e = iops(&[("rf_num_trees", "3")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("Extraneous hyperparameter found: rf_num_trees"),
            "{e}"
        );
    }

    #[test]
    fn serve_model_must_be_a_candidate() {
        let hp = |serve: &str| {
            Hyperparameters::from_pairs([
                ("model_kind", "tabular"),
                ("candidates", "xgboost,linear"),
                ("serve_model", serve),
            ])
        };
        let c = TrainConfig::from_hyperparameters(&hp("linear")).unwrap();
        let ModelConfig::Tabular(t) = c.model else {
            panic!("not tabular")
        };
        assert_eq!(t.serve_model, Some(Candidate::Linear));
        let e = TrainConfig::from_hyperparameters(&hp("knn")).unwrap_err();
        assert!(
            e.to_string()
                .contains("serve_model: 'knn' is not among the candidates (xgboost, linear)"),
            "{e}"
        );
    }

    #[test]
    fn text_labels_decide_the_task_unless_the_objective_does() {
        let tabular = |pairs: &[(&str, &str)]| {
            let mut all = vec![("model_kind", "tabular")];
            all.extend_from_slice(pairs);
            match TrainConfig::from_hyperparameters(&Hyperparameters::from_pairs(all))
                .unwrap()
                .model
            {
                ModelConfig::Tabular(t) => t,
                _ => panic!("not tabular"),
            }
        };
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let two = names(&["<=50K", ">50K"]);
        let three = names(&["a", "b", "c"]);
        let t = tabular(&[]).for_labels(Some(&two)).unwrap();
        assert_eq!((t.task, t.selection_metric), (Task::Binary, "auc"));
        let t = tabular(&[("selection_metric", "merror")]);
        assert_eq!(t.task, Task::Regression);
        let t = t.for_labels(Some(&three)).unwrap();
        assert_eq!(
            (t.task, t.selection_metric),
            (Task::MultiClass { num_class: 3 }, "merror")
        );
        // Numeric labels keep the regression, and a classification metric is then refused.
        let e = tabular(&[("selection_metric", "auc")])
            .for_labels(None)
            .unwrap_err();
        assert!(e.to_string().contains("allowed: one of rmse, mae"), "{e}");
        for (pairs, says) in [
            (
                &[("objective", "binary:logistic")][..],
                "binary:logistic needs two classes, the labels have 3",
            ),
            (
                &[("objective", "multi:softprob"), ("num_class", "4")][..],
                "num_class is 4, the labels have 3 classes",
            ),
            (
                &[("objective", "reg:squarederror")][..],
                "the labels are class names ('a', 'b', 'c') but objective is a regression",
            ),
        ] {
            let e = tabular(pairs).for_labels(Some(&three)).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
        let e = tabular(&[])
            .for_labels(Some(&names(&["only"])))
            .unwrap_err();
        assert!(
            e.to_string().contains("a classifier needs two or more"),
            "{e}"
        );
    }

    #[test]
    fn unknown_kind_and_key_are_rejected() {
        let e = TrainConfig::from_hyperparameters(&Hyperparameters::from_pairs([(
            "model_kind",
            "housing",
        )]))
        .unwrap_err();
        assert!(
            e.to_string().contains(
                "model_kind: could not parse value 'housing'; allowed: one of fire_ensemble, iops"
            ),
            "{e}"
        );
        let e =
            TrainConfig::from_hyperparameters(&Hyperparameters::from_pairs([("num_round", "10")]))
                .unwrap_err();
        assert!(
            e.to_string()
                .contains("Extraneous hyperparameter found: num_round"),
            "{e}"
        );
    }
}

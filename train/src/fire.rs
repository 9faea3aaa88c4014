//! Training the fire detector's ensemble from the job's channels.

use crate::config::{ChannelConfig, TrainConfig};
use crate::report::{self, Evaluation, SplitMetrics};
use crate::stop::StopFlag;
use common::artifact::{self, Manifest, PayloadFile};
use common::data::{self, Dataset};
use common::metrics::BinaryMetrics;
use common::models::ensemble::{FireEnsemble, MemberModel, Progress};
use common::models::xgboost;
use common::opt_ml::OptMl;
use common::{fire, split, Error, Result};
use std::collections::BTreeMap;

/// The model kind written into the manifest.
pub const MODEL_KIND: &str = "fire_ensemble";

/// The three splits the fit uses.
struct Splits {
    train: Dataset,
    validation: Dataset,
    test: Option<Dataset>,
}

/// Loads, splits, fits, evaluates and saves; returns the evaluation.
pub fn train(
    opt_ml: &OptMl,
    config: &TrainConfig,
    channels: &BTreeMap<String, ChannelConfig>,
    stop: &StopFlag,
) -> Result<Evaluation> {
    let splits = load_splits(opt_ml, config, channels, stop)?;
    let rows = BTreeMap::from([
        ("train", splits.train.len()),
        ("validation", splits.validation.len()),
        ("test", splits.test.as_ref().map_or(0, Dataset::len)),
    ]);
    let mut progress = LogProgress { stop };
    let outcome = config
        .ensemble
        .fit(splits.train, &splits.validation, &mut progress)?;
    for (member, seconds) in &outcome.fit_seconds {
        tracing::info!(
            member = member.name(),
            seconds = format!("{seconds:.2}"),
            "member fitted"
        );
    }
    tracing::info!(peak_mib = common::peak_memory_mib(), "all members fitted");
    let ensemble = &outcome.ensemble;
    let validation = evaluate(ensemble, &splits.validation)?;
    let test = splits
        .test
        .as_ref()
        .map(|t| evaluate(ensemble, t))
        .transpose()?;
    let evaluation = Evaluation {
        evaluated_on: if test.is_some() { "test" } else { "validation" },
        rows,
        weights: report::by_name(&ensemble.weights),
        weighting: config.ensemble.weighting.name(),
        threshold: ensemble.threshold,
        validation,
        test,
        fit_seconds: report::by_name(&outcome.fit_seconds),
    };
    for line in report::metric_lines("validation", &evaluation.validation) {
        println!("{line}");
    }
    if let Some(t) = &evaluation.test {
        for line in report::metric_lines("test", t) {
            println!("{line}");
        }
    }
    stop.check()?;
    save_model(opt_ml, config, ensemble, &evaluation)?;
    let eval_json =
        serde_json::to_vec_pretty(&evaluation).map_err(|e| Error::Fit(e.to_string()))?;
    let out = opt_ml.output_data_dir();
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    artifact::write_atomic(&out.join("evaluation.json"), &eval_json)?;
    Ok(evaluation)
}

/// Prints boosting rounds in XGBoost's format and answers SIGTERM.
struct LogProgress<'a> {
    stop: &'a StopFlag,
}

impl Progress for LogProgress<'_> {
    fn checkpoint(&mut self) -> Result<()> {
        self.stop.check()
    }
    fn boosting_round(&mut self, line: &str) {
        println!("{line}");
    }
}

fn evaluate(ensemble: &FireEnsemble, data: &Dataset) -> Result<SplitMetrics> {
    let p = ensemble.predict(data.features.view())?;
    let labels = data.labels.as_slice().expect("contiguous labels");
    let members = p
        .members
        .iter()
        .map(|(m, q)| {
            (
                m.name(),
                BinaryMetrics::compute(labels, q, ensemble.threshold),
            )
        })
        .collect();
    Ok(SplitMetrics {
        members,
        ensemble: BinaryMetrics::compute(labels, &p.ensemble, ensemble.threshold),
    })
}

/// The `train` channel (or `training`, the original's name), with its declared ContentType.
fn channel<'a>(
    opt_ml: &OptMl,
    channels: &'a BTreeMap<String, ChannelConfig>,
    names: &[&'static str],
) -> Result<Option<(&'static str, Option<&'a str>)>> {
    for &name in names {
        let cfg = channels.get(name);
        if cfg
            .and_then(|c| c.input_mode.as_deref())
            .is_some_and(|m| m.eq_ignore_ascii_case("pipe"))
        {
            return Err(Error::Config(format!(
                "channel '{name}' uses Pipe input mode, which this container does not support; use File or FastFile"
            )));
        }
        if opt_ml.channel_dir(name).exists() {
            return Ok(Some((name, cfg.and_then(|c| c.content_type.as_deref()))));
        }
    }
    Ok(None)
}

fn load_splits(
    opt_ml: &OptMl,
    config: &TrainConfig,
    channels: &BTreeMap<String, ChannelConfig>,
    stop: &StopFlag,
) -> Result<Splits> {
    let schema = fire::schema();
    let check = || stop.check();
    let load = |name: &str, content_type: Option<&str>| {
        data::load_channel(
            &opt_ml.channel_dir(name),
            name,
            content_type,
            &schema,
            &check,
        )
    };
    for name in channels
        .keys()
        .filter(|n| !["train", "training", "validation", "test"].contains(&n.as_str()))
    {
        tracing::warn!(channel = %name, "ignoring a channel this model does not use (known: train or training, validation, test)");
    }
    let (train_name, train_ct) =
        channel(opt_ml, channels, &["train", "training"])?.ok_or_else(|| {
            Error::Config(format!(
                "Missing required channel: train (also accepted: training) under {}",
                opt_ml.data_dir().display()
            ))
        })?;
    let all = load(train_name, train_ct)?;
    require_both_classes(&all, train_name)?;
    let validation = channel(opt_ml, channels, &["validation"])?
        .map(|(n, ct)| load(n, ct))
        .transpose()?;
    let test = channel(opt_ml, channels, &["test"])?
        .map(|(n, ct)| load(n, ct))
        .transpose()?;
    let s = config.split;
    let splits = match validation {
        Some(validation) => Splits {
            train: all,
            validation,
            test,
        },
        None => {
            // Hold out validation (and test, unless a test channel was given) from `train`.
            let test_fraction = if test.is_some() { 0.0 } else { s.test_fraction };
            let ix = split::stratified(
                all.labels.as_slice().unwrap(),
                s.validation_fraction,
                test_fraction,
                s.seed,
            );
            let held_test = (!ix.test.is_empty()).then(|| all.select(&ix.test));
            Splits {
                train: all.select(&ix.train),
                validation: all.select(&ix.validation),
                test: test.or(held_test),
            }
        }
    };
    require_both_classes(&splits.train, "train split")?;
    if splits.validation.is_empty() {
        return Err(Error::Data(
            "the validation split is empty; provide more rows or a validation channel".into(),
        ));
    }
    tracing::info!(
        train = splits.train.len(),
        validation = splits.validation.len(),
        test = splits.test.as_ref().map_or(0, Dataset::len),
        fire_rate = format!("{:.4}", splits.train.positive_rate()),
        seed = s.seed,
        peak_mib = common::peak_memory_mib(),
        "split sizes"
    );
    Ok(splits)
}

fn require_both_classes(d: &Dataset, what: &str) -> Result<()> {
    let rate = d.positive_rate();
    if rate == 0.0 || rate == 1.0 {
        let only = if rate == 0.0 { 0 } else { 1 };
        return Err(Error::Data(format!(
            "the {what} data holds only label {only} ({} rows); the fire detector needs examples of both 0 and 1",
            d.len()
        )));
    }
    Ok(())
}

fn save_model(
    opt_ml: &OptMl,
    config: &TrainConfig,
    ensemble: &FireEnsemble,
    evaluation: &Evaluation,
) -> Result<()> {
    let mut payloads = Vec::new();
    for (member, model) in &ensemble.members {
        let weight = ensemble.weights.get(member).copied();
        let payload = |file: String, format: &str| PayloadFile {
            name: member.name().into(),
            file,
            format: format.into(),
            weight,
        };
        match model {
            MemberModel::Trees {
                trees,
                xgboost_models,
            } => {
                for ubj in xgboost_models {
                    payloads.push((
                        payload(format!("{}.ubj", member.name()), "xgboost-ubj"),
                        ubj.clone(),
                    ));
                }
                payloads.push((
                    payload(format!("{}.trees", member.name()), "compiled-trees"),
                    trees.to_bytes()?,
                ));
            }
            MemberModel::Logistic(m) => payloads.push((
                payload(format!("{}.bin", member.name()), "bincode-logistic"),
                m.to_bytes()?,
            )),
        }
    }
    let manifest = Manifest {
        format_version: artifact::FORMAT_VERSION,
        model_kind: MODEL_KIND.into(),
        feature_names: fire::FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        threshold: Some(ensemble.threshold),
        weighting: Some(evaluation.weighting.into()),
        payloads: vec![],
        metrics: serde_json::to_value(evaluation).map_err(|e| Error::Fit(e.to_string()))?,
        hyperparameters: config.hyperparameters.clone(),
        library_versions: BTreeMap::from([
            ("xgboost".to_owned(), xgboost::library_version()),
            ("train".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
            ("linfa-logistic".to_owned(), "0.8".to_owned()),
        ]),
        rows: evaluation
            .rows
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
    };
    let dir = opt_ml.model_dir();
    artifact::save(&dir, manifest, payloads)?;
    tracing::info!(dir = %dir.display(), "model written");
    Ok(())
}

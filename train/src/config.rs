//! The training job's configuration: hyperparameters, channels and hosts, validated before any
//! data is read.

use common::hyperparams::{HyperparameterReader, Hyperparameters, Interval};
use common::models::ensemble::{BoostingParams, EnsembleParams, ForestParams, Member, Weighting};
use common::models::logistic::LogisticParams;
use common::opt_ml::OptMl;
use common::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Model kinds this build trains.
pub const MODEL_KINDS: [&str; 1] = ["fire_ensemble"];

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

/// Everything `train` needs to know before reading data.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The model kind (`fire_ensemble`).
    pub model_kind: &'static str,
    /// Ensemble settings.
    pub ensemble: EnsembleParams,
    /// Split settings.
    pub split: SplitConfig,
    /// The decoded hyperparameters, for the manifest.
    pub hyperparameters: BTreeMap<String, String>,
}

impl TrainConfig {
    /// Reads and validates the hyperparameters; unknown keys are an error.
    pub fn from_hyperparameters(hp: &Hyperparameters) -> Result<Self> {
        let mut r = HyperparameterReader::new(hp);
        let model_kind = r.choice("model_kind", "fire_ensemble", &MODEL_KINDS)?;
        let unit = Interval::left_open(0.0, 1.0);
        let non_negative = Interval::closed(0.0, f64::INFINITY);
        let seed = r.u64("seed", 42, 0, u64::from(u32::MAX))?;
        let members = r
            .list("models", &Member::NAMES, &Member::NAMES)?
            .into_iter()
            .filter_map(Member::from_name)
            .collect();
        let weighting =
            Weighting::from_name(r.choice("weighting", "exp_accuracy", &Weighting::NAMES)?)
                .expect("listed name");
        let ensemble = EnsembleParams {
            members,
            forest: ForestParams {
                num_trees: r.u64("rf_num_trees", 200, 1, 5000)? as u32,
                max_depth: r.u64("rf_max_depth", 10, 1, 20)? as u32,
                subsample: r.f64("rf_subsample", 0.632, unit)?,
                colsample_bynode: r.opt_f64("rf_colsample_bynode", unit)?,
                lambda: r.f64("rf_lambda", 1e-5, non_negative)?,
                min_child_weight: r.f64("rf_min_child_weight", 1.0, non_negative)?,
            },
            boosting: BoostingParams {
                num_round: r.u64("gb_num_round", 200, 1, 10_000)? as u32,
                max_depth: r.u64("gb_max_depth", 6, 1, 20)? as u32,
                eta: r.f64("gb_eta", 0.1, unit)?,
                subsample: r.f64("gb_subsample", 1.0, unit)?,
                colsample_bytree: r.f64("gb_colsample_bytree", 1.0, unit)?,
                lambda: r.f64("gb_lambda", 1.0, non_negative)?,
                min_child_weight: r.f64("gb_min_child_weight", 1.0, non_negative)?,
            },
            logistic: LogisticParams {
                c: r.f64("lr_c", 1.0, Interval::left_open(0.0, f64::INFINITY))?,
                max_iterations: r.u64("lr_max_iter", 1000, 1, 100_000)?,
            },
            weighting,
            threshold: r.f64(
                "threshold",
                0.5,
                Interval {
                    min: 0.0,
                    min_inclusive: false,
                    max: 1.0,
                    max_inclusive: false,
                },
            )?,
            max_bin: r.u64("max_bin", 256, 2, 4096)? as u32,
            seed,
            nthread: r.u64("nthread", 0, 0, 1024)? as u32,
        };
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
        let hyperparameters = hp
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(Self {
            model_kind,
            ensemble,
            split,
            hyperparameters,
        })
    }
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

    /// Whether this host writes the model: the first host in sorted order, or the only one.
    pub fn is_leader(&self) -> bool {
        let Some(me) = &self.current_host else {
            return true;
        };
        self.hosts.iter().min().is_none_or(|first| first == me)
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
        assert_eq!(c.ensemble, EnsembleParams::default());
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
        assert_eq!(
            c.ensemble.members,
            vec![Member::GradientBoosting, Member::LogisticRegression]
        );
        assert_eq!(c.ensemble.boosting.eta, 0.03);
        assert_eq!(c.ensemble.weighting, Weighting::Auc);
    }

    #[test]
    fn unknown_kind_and_key_are_rejected() {
        let e = TrainConfig::from_hyperparameters(&Hyperparameters::from_pairs([(
            "model_kind",
            "iops",
        )]))
        .unwrap_err();
        assert!(
            e.to_string().contains(
                "model_kind: could not parse value 'iops'; allowed: one of fire_ensemble"
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

    #[test]
    fn leader_is_first_sorted_host() {
        let rc = |me: &str| ResourceConfig {
            current_host: Some(me.into()),
            hosts: vec!["algo-2".into(), "algo-1".into()],
        };
        assert!(rc("algo-1").is_leader());
        assert!(!rc("algo-2").is_leader());
        assert!(ResourceConfig::default().is_leader());
    }
}

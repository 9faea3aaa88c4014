//! The `train` entry point of the SageMaker training contract.
//!
//! [`run`] reads `/opt/ml/input/config`, validates everything before touching data, trains the
//! model the `model_kind` hyperparameter names, and writes `/opt/ml/model` and
//! `/opt/ml/output/data/evaluation.json`. `main.rs` turns an error into `/opt/ml/output/failure`.

pub mod config;
pub mod datagen_cli;
pub mod fire;
pub mod iops;
pub mod outcome;
pub mod report;
pub mod splits;
pub mod stop;
pub mod tabular;
pub mod xgboost;
pub mod xgboost_hyperparameters;

use common::hyperparams::Hyperparameters;
use common::opt_ml::OptMl;
use common::Result;
use config::{ModelConfig, ResourceConfig, TrainConfig};
use stop::StopFlag;

/// What a successful run did.
#[derive(Debug)]
pub enum Summary {
    /// The model was trained and written; its evaluation (`evaluation.json`).
    Trained(Box<serde_json::Value>),
    /// This host is not the leader of a multi-host job, so it wrote nothing.
    NotLeader,
}

/// Runs one training job against the `/opt/ml` tree at `opt_ml`.
pub fn run(opt_ml: &OptMl, stop: &StopFlag) -> Result<Summary> {
    let hp = Hyperparameters::load(&opt_ml.hyperparameters_file())?;
    let config = TrainConfig::from_hyperparameters(&hp)?;
    if let Some(metric) = &hp.tuning_objective_metric {
        tracing::info!(%metric, "tuning objective metric (every metric is logged; see the README for names)");
    }
    let channels = config::input_data_config(opt_ml)?;
    let resources = ResourceConfig::load(opt_ml)?;
    if !resources.is_leader() {
        tracing::info!(
            host = resources.current_host.as_deref().unwrap_or(""),
            hosts = ?resources.hosts,
            "not the leader host (first of the sorted hosts): distributed training is not supported, so this host writes no model"
        );
        return Ok(Summary::NotLeader);
    }
    tracing::info!(model_kind = %config.model_kind, root = %opt_ml.root().display(), "training");
    let evaluation = match &config.model {
        ModelConfig::Fire(params) => {
            serde_json::to_value(fire::train(opt_ml, &config, params, &channels, stop)?)
        }
        ModelConfig::Iops(params) => {
            serde_json::to_value(iops::train(opt_ml, &config, params, &channels, stop)?)
        }
        ModelConfig::Tabular(t) => {
            serde_json::to_value(tabular::train(opt_ml, &config, t, &channels, stop)?)
        }
        ModelConfig::Xgboost(params) => {
            serde_json::to_value(xgboost::train(opt_ml, &config, params, &channels, stop)?)
        }
    }
    .map_err(|e| common::Error::Fit(e.to_string()))?;
    Ok(Summary::Trained(Box::new(evaluation)))
}

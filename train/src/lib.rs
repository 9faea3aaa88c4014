//! The `train` entry point of the SageMaker training contract.
//!
//! [`run`] reads `/opt/ml/input/config`, validates everything before touching data, trains the
//! model the `model_kind` hyperparameter names, and writes `/opt/ml/model` and
//! `/opt/ml/output/data/evaluation.json`. `main.rs` turns an error into `/opt/ml/output/failure`.

pub mod config;
pub mod datagen_cli;
pub mod fire;
pub mod memory;
pub mod outcome;
pub mod report;
pub mod stop;

use common::hyperparams::Hyperparameters;
use common::opt_ml::OptMl;
use common::Result;
use config::{ResourceConfig, TrainConfig};
use stop::StopFlag;

/// What a successful run did.
#[derive(Debug)]
pub enum Summary {
    /// The model was trained and written.
    Trained(Box<report::Evaluation>),
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
    tracing::info!(model_kind = config.model_kind, root = %opt_ml.root().display(), "training");
    let evaluation = fire::train(opt_ml, &config, &channels, stop)?;
    Ok(Summary::Trained(Box::new(evaluation)))
}

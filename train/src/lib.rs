//! The `train` entry point of the SageMaker training contract.
//!
//! [`run`] reads `/opt/ml/input/config`, validates everything before touching data, trains the
//! model the `model_kind` hyperparameter names, and writes `/opt/ml/model` and
//! `/opt/ml/output/data/evaluation.json`. `main.rs` turns an error into `/opt/ml/output/failure`.

pub mod checkpoints;
pub mod config;
pub mod datagen_cli;
pub mod distributed;
pub mod fire;
pub mod iops;
pub mod outcome;
pub mod report;
pub mod rounds;
pub mod splits;
pub mod stop;
pub mod tabular;
pub mod xgboost;
pub mod xgboost_hyperparameters;

use common::collective::World;
use common::hyperparams::Hyperparameters;
use common::opt_ml::OptMl;
use common::Result;
use config::{ModelConfig, ResourceConfig, TrainConfig};
use distributed::Cluster;
use std::collections::BTreeMap;
use std::sync::Arc;
use stop::StopFlag;

/// What a successful run did.
#[derive(Debug)]
pub enum Summary {
    /// The model was trained and written; its evaluation (`evaluation.json`).
    Trained(Box<serde_json::Value>),
    /// This host trained with the others of a multi-host job; the first host wrote the model.
    Worker,
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
    let settings = distributed::Settings::from_env()?;
    // The version probe trains a tiny booster: on several hosts that would be a collective step
    // only one host takes, so it runs before joining.
    let _ = common::models::xgboost::library_version();
    let failed_root = opt_ml.clone();
    let stopped = stop.clone();
    let on_lost: distributed::OnLostHost = Arc::new(move |reason: &str| {
        let reason = cause(&stopped, || reason.to_owned());
        outcome::fail_and_exit(&failed_root, &reason, std::time::Duration::ZERO)
    });
    if resources.hosts.len() > 1 {
        outcome::fail_on_abort(opt_ml);
    }
    let cluster = Cluster::join(&resources, &settings, stop, on_lost)?;
    tracing::info!(model_kind = %config.model_kind, root = %opt_ml.root().display(), "training");
    let job = Job {
        opt_ml,
        config: &config,
        channels: &channels,
        stop,
        world: &cluster.world,
        hosts: &cluster.hosts,
    };
    let evaluation = match train_model(&job) {
        Ok(e) => e,
        Err(e) if cluster.world.is_distributed() => fail_now(opt_ml, &cluster, stop, e),
        Err(e) => return Err(e),
    };
    let leader = cluster.world.is_leader();
    let hosts = cluster.hosts.len();
    if let Err(e) = cluster.barrier() {
        fail_now(opt_ml, &cluster, stop, e);
    }
    cluster.finish()?;
    if hosts > 1 {
        tracing::info!(hosts, "every host finished");
    }
    Ok(if leader {
        Summary::Trained(Box::new(evaluation))
    } else {
        Summary::Worker
    })
}

/// Ends a host of a multi-host job that failed. Leaving the communicator (also XGBoost's own
/// clean-up at exit) talks to hosts that may be gone and waits up to the collective timeout, so
/// the host writes its reason (SIGTERM's, when it was stopped), answers the others' probes a
/// little longer, and ends at once.
fn fail_now(opt_ml: &OptMl, cluster: &Cluster, stop: &StopFlag, e: common::Error) -> ! {
    let reason = cause(stop, || cluster.explain(e).to_string());
    outcome::fail_and_exit(opt_ml, &reason, distributed::LIVENESS_GRACE)
}

/// A multi-host failure's reason: SIGTERM's once the job was stopped (SageMaker stops every
/// host at once, so a peer gone then is not the cause), else `reason()`.
fn cause(stop: &StopFlag, reason: impl FnOnce() -> String) -> String {
    stop.check().err().map_or_else(reason, |e| e.to_string())
}

/// What every model kind's training gets.
pub struct Job<'a> {
    /// The `/opt/ml` tree.
    pub opt_ml: &'a OptMl,
    /// The decoded hyperparameters.
    pub config: &'a TrainConfig,
    /// `inputdataconfig.json`'s channels.
    pub channels: &'a BTreeMap<String, config::ChannelConfig>,
    /// Raised by SIGTERM.
    pub stop: &'a StopFlag,
    /// The hosts training together (one for most jobs); only the leader writes.
    pub world: &'a World,
    /// Their sorted names, by rank (one name, or none, for a single host).
    pub hosts: &'a [String],
}

impl Job<'_> {
    /// What the fit's safe points do once SIGTERM came (`save_model_on_termination`).
    pub fn termination(&self) -> stop::Termination<'_> {
        stop::Termination {
            stop: self.stop,
            world: self.world,
            keep_partial: self.config.save_model_on_termination,
        }
    }

    /// The job's checkpoints named `prefix<n>` (none without `checkpointconfig.json`).
    pub fn checkpoints(&self, prefix: &'static str) -> Result<Option<checkpoints::Checkpoints>> {
        checkpoints::Checkpoints::from_config(self.opt_ml, prefix)
    }
}

fn train_model(job: &Job) -> Result<serde_json::Value> {
    match &job.config.model {
        ModelConfig::Fire(params) => serde_json::to_value(fire::train(job, params)?),
        ModelConfig::Iops(params) => serde_json::to_value(iops::train(job, params)?),
        ModelConfig::Tabular(t) => serde_json::to_value(tabular::train(job, t)?),
        ModelConfig::Xgboost(params) => serde_json::to_value(xgboost::train(job, params)?),
    }
    .map_err(|e| common::Error::Fit(e.to_string()))
}

//! Training the fire detector's ensemble from the job's channels.

use crate::config::{ChannelConfig, TrainConfig};
use crate::report::{self, Evaluation, SplitMetrics};
use crate::splits;
use crate::stop::StopFlag;
use common::data::Dataset;
use common::kinds::out_of_range::training_ranges;
use common::kinds::{fire, ModelKind};
use common::metrics::BinaryMetrics;
use common::models::ensemble::{EnsembleParams, FireEnsemble, Progress};
use common::opt_ml::OptMl;
use common::{Error, Result};
use std::collections::BTreeMap;

/// Loads, splits, fits, evaluates and saves; returns the evaluation.
pub fn train(
    opt_ml: &OptMl,
    config: &TrainConfig,
    params: &EnsembleParams,
    channels: &BTreeMap<String, ChannelConfig>,
    stop: &StopFlag,
) -> Result<Evaluation> {
    let splits = splits::load(
        opt_ml,
        &config.split,
        channels,
        splits::Reader::Schema(&fire::schema()),
        true,
        &require_both_classes,
        stop,
    )?;
    tracing::info!(
        fire_rate = format!("{:.4}", splits.train.positive_rate()),
        "train split"
    );
    let rows = splits.rows();
    let ranges = training_ranges(&splits.train);
    let mut progress = LogProgress { stop };
    let outcome = params.fit(splits.train, &splits.validation, &mut progress)?;
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
        weighting: params.weighting.name(),
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
    save_model(opt_ml, config, ensemble, &evaluation, ranges)?;
    report::write_evaluation(opt_ml, &evaluation)?;
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
    let labels = data.labels().as_slice().expect("contiguous labels");
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
    ranges: BTreeMap<String, [f32; 2]>,
) -> Result<()> {
    let mut manifest = report::manifest(
        ModelKind::FireEnsemble,
        fire::FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        evaluation,
        &evaluation.rows,
        &config.hyperparameters,
        ranges,
    )?;
    let payloads = fire::payloads(ensemble, &mut manifest)?;
    manifest.weighting = Some(evaluation.weighting.into());
    manifest
        .library_versions
        .insert("linfa-logistic".into(), "0.8".into());
    report::write_model(opt_ml, manifest, payloads)
}

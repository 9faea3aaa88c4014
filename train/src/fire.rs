//! Training the fire detector's ensemble from the job's channels.

use crate::checkpoints::{self, Checkpoints};
use crate::report::{self, Evaluation, SplitMetrics};
use crate::splits::{self, total_rows};
use crate::stop::Termination;
use crate::Job;
use common::collective::World;
use common::data::Dataset;
use common::kinds::out_of_range::training_ranges;
use common::kinds::{fire, ModelKind};
use common::metrics::BinaryMetrics;
use common::models::ensemble::{
    EnsembleParams, EnsemblePrediction, FireEnsemble, FitState, Progress,
};
use common::{Error, Result};
use std::collections::BTreeMap;

/// Loads, splits, fits, evaluates and saves (the leader); returns the evaluation.
pub fn train(job: &Job, params: &EnsembleParams) -> Result<Evaluation> {
    let world = job.world;
    let both_classes = |d: &Dataset, what: &str| require_both_classes(d, what, world);
    let splits = splits::load(
        job,
        splits::Reader::Schema(&fire::schema()),
        true,
        &both_classes,
    )?;
    tracing::info!(
        fire_rate = format!("{:.4}", splits.train.positive_rate()),
        "train split"
    );
    let rows = total_rows(&splits, world)?;
    let ranges = training_ranges(&splits.train, world)?;
    let (checkpoints, state) = checkpoints::resume(
        job,
        checkpoints::FIRE_PREFIX,
        "members, forest parts and boosting rounds done",
        FitState::from_bytes,
    )?;
    let mut progress = LogProgress {
        termination: job.termination(),
        print: world.is_leader(),
        checkpoints,
        interval: job.config.checkpoint_interval,
    };
    let outcome = params.fit(
        splits.train,
        &splits.validation,
        &mut progress,
        world,
        state,
    )?;
    for (member, seconds) in &outcome.fit_seconds {
        tracing::info!(
            member = member.name(),
            seconds = format!("{seconds:.2}"),
            "member fitted"
        );
    }
    tracing::info!(peak_mib = common::peak_memory_mib(), "all members fitted");
    let ensemble = &outcome.ensemble;
    // The members' validation probabilities, from the fit (which scored the members on them).
    let predicted = ensemble.combine(outcome.validation_predictions);
    let validation = evaluate(ensemble, predicted, &splits.validation, world)?;
    let test = splits
        .test
        .as_ref()
        .map(|t| {
            let predicted = ensemble.predict_on_threads(t.features.view(), params.nthread)?;
            evaluate(ensemble, predicted, t, world)
        })
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
        partial: outcome.partial.is_some(),
    };
    job.termination()
        .before_saving(outcome.partial.as_deref())?;
    if world.is_leader() {
        for line in report::metric_lines("validation", &evaluation.validation) {
            println!("{line}");
        }
        if let Some(t) = &evaluation.test {
            for line in report::metric_lines("test", t) {
                println!("{line}");
            }
        }
        save_model(job, ensemble, &evaluation, ranges, outcome.partial.clone())?;
        report::write_evaluation(job.opt_ml, &evaluation)?;
    }
    Ok(evaluation)
}

/// Prints boosting rounds in XGBoost's format (on the leader), answers SIGTERM, and writes the
/// fit's states as checkpoints (the leader, when the job has them).
struct LogProgress<'a> {
    termination: Termination<'a>,
    print: bool,
    checkpoints: Option<Checkpoints>,
    interval: u32,
}

impl Progress for LogProgress<'_> {
    fn go_on(&mut self) -> Result<bool> {
        self.termination.go_on()
    }
    fn state_interval(&self) -> u32 {
        self.interval
    }
    fn boosting_round(&mut self, line: &str) {
        if self.print {
            println!("{line}");
        }
    }
    fn keeps_states(&self) -> bool {
        self.checkpoints.is_some()
    }
    fn save(&mut self, state: &FitState) -> Result<()> {
        match &self.checkpoints {
            Some(c) => c.save(state.steps(), &state.to_bytes()?),
            None => Ok(()),
        }
    }
}

/// Metrics over every host's rows of a split, from this host's predictions `p` of `data`.
fn evaluate(
    ensemble: &FireEnsemble,
    p: EnsemblePrediction,
    data: &Dataset,
    world: &World,
) -> Result<SplitMetrics> {
    let labels = world.gather(data.labels().as_slice().expect("contiguous labels"))?;
    let members = p
        .members
        .iter()
        .map(|(m, q)| {
            Ok((
                m.name(),
                BinaryMetrics::compute(&labels, &world.gather(q)?, ensemble.threshold),
            ))
        })
        .collect::<Result<_>>()?;
    Ok(SplitMetrics {
        members,
        ensemble: BinaryMetrics::compute(&labels, &world.gather(&p.ensemble)?, ensemble.threshold),
    })
}

/// Both classes among every host's rows (a host may hold only one).
fn require_both_classes(d: &Dataset, what: &str, world: &World) -> Result<()> {
    let positives = d.labels().iter().filter(|&&y| y == 1.0).count();
    let mut counts = [d.len() as f64, positives as f64];
    world.sum(&mut counts)?;
    let [rows, positives] = counts;
    if positives == 0.0 || positives == rows {
        let only = if positives == 0.0 { 0 } else { 1 };
        let on = if world.is_distributed() {
            " on every host"
        } else {
            ""
        };
        return Err(Error::Data(format!(
            "the {what} data holds only label {only} ({rows} rows{on}); the fire detector needs examples of both 0 and 1"
        )));
    }
    Ok(())
}

fn save_model(
    job: &Job,
    ensemble: &FireEnsemble,
    evaluation: &Evaluation,
    ranges: BTreeMap<String, [f32; 2]>,
    partial: Option<String>,
) -> Result<()> {
    let mut manifest = report::manifest(
        ModelKind::FireEnsemble,
        fire::FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        evaluation,
        &evaluation.rows,
        &job.config.hyperparameters,
        ranges,
    )?;
    let payloads = fire::payloads(ensemble, &mut manifest)?;
    manifest.weighting = Some(evaluation.weighting.into());
    manifest.partial = partial;
    manifest
        .library_versions
        .insert("linfa-logistic".into(), "0.8".into());
    report::write_model(job.opt_ml, manifest, payloads)
}

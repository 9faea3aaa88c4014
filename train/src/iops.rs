//! Training the storage IOPS models: the risk-level classifier and the performance-score
//! regressor, each an XGBoost model with early stopping on the validation split.

use crate::checkpoints;
use crate::config::IopsParams;
use crate::report;
use crate::rounds::Rounds;
use crate::splits::{self, total_rows, Splits};
use crate::Job;
use common::collective::World;
use common::data::Dataset;
use common::kinds::iops::{self, IopsModel, CLASSIFIER, REGRESSOR};
use common::kinds::out_of_range::training_ranges;
use common::kinds::ModelKind;
use common::metrics::{MultiClassMetrics, RegressionMetrics};
use common::models::boosted::{self, BoostState, Boosted, FitData, Objective};
use common::{Error, Result};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How one model's fit went and how it scores.
#[derive(Debug, Clone, Serialize)]
pub struct ModelReport<M> {
    /// Boosting rounds run.
    pub rounds_run: u32,
    /// The round kept (best on validation), from 0.
    pub best_iteration: u32,
    /// Seconds spent fitting.
    pub fit_seconds: f64,
    /// Metrics on the validation split.
    pub validation: M,
    /// Metrics on the test split, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<M>,
}

impl<M> ModelReport<M> {
    /// The report of a fitted model with its metrics on the validation and test splits.
    fn new(fitted: &(Boosted, f64), validation: M, test: Option<M>) -> Self {
        Self {
            rounds_run: fitted.0.rounds_run,
            best_iteration: fitted.0.best_iteration,
            fit_seconds: fitted.1,
            validation,
            test,
        }
    }

    /// The metrics on `split` (`validation` or `test`), when there are any.
    fn on(&self, split: &str) -> Option<&M> {
        if split == "test" {
            self.test.as_ref()
        } else {
            Some(&self.validation)
        }
    }
}

/// The document written to `evaluation.json` and into the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct IopsEvaluation {
    /// The split the headline metrics are on: `test`, or `validation` without a test split.
    pub evaluated_on: &'static str,
    /// Rows per split.
    pub rows: BTreeMap<&'static str, usize>,
    /// Class names by index.
    pub risk_levels: [&'static str; 4],
    /// The classifier's report, when trained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier: Option<ModelReport<MultiClassMetrics>>,
    /// The regressor's report, when trained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regressor: Option<ModelReport<RegressionMetrics>>,
    /// Whether the fit was ended by SIGTERM (`save_model_on_termination`); the manifest's
    /// `partial` says what the models hold.
    pub partial: bool,
}

/// Loads, splits, fits both models, evaluates and saves; returns the evaluation.
pub fn train(job: &Job, params: &IopsParams) -> Result<IopsEvaluation> {
    let world = job.world;
    let models = params.models;
    let splits = splits::load(
        job,
        splits::Reader::Schema(&iops::schema(models)),
        models.classifier,
        &|_, _| Ok(()),
    )?;
    // Targets are in schema order: the classifier's label first when it is trained.
    let score_target = usize::from(models.classifier);
    let (checkpoints, mut state) = checkpoints::resume(
        job,
        checkpoints::IOPS_PREFIX,
        "the two models' rounds done",
        checkpoints::decode::<IopsState>,
    )?;
    let writer = checkpoints.as_ref();
    let mut fit =
        |objective: Objective, target: usize, which: &'static str| -> Result<(Boosted, f64)> {
            let start = std::time::Instant::now();
            let resume = state.of(which).clone();
            let mut fold = |s: &BoostState| {
                *state.of(which) = Some(s.clone());
                Ok((state.rounds(), checkpoints::encode(&state)?))
            };
            let mut hooks = Rounds::of(job, writer, &mut fold);
            let model = boosted::fit(
                &params.boost,
                objective,
                FitData {
                    train: splits.train.features.view(),
                    train_labels: &splits.train.targets[target],
                    train_weights: None,
                    validation: Some((
                        splits.validation.features.view(),
                        &splits.validation.targets[target],
                    )),
                    categories: &[],
                },
                &mut hooks,
                resume,
            )?;
            let seconds = start.elapsed().as_secs_f64();
            tracing::info!(
                objective = objective.name(),
                rounds_run = model.rounds_run,
                best_iteration = model.best_iteration,
                seconds = format!("{seconds:.2}"),
                "model fitted"
            );
            Ok((model, seconds))
        };
    let classifier = models
        .classifier
        .then(|| fit(Objective::MultiClass { num_class: 4 }, 0, CLASSIFIER))
        .transpose()?;
    // A classifier ended by SIGTERM ends the job's fitting, and so does SIGTERM between the two:
    // the regressor is not begun.
    let begin_regressor = match &classifier {
        Some((b, _)) if b.interrupted => false,
        Some(_) if models.regressor => job.termination().go_on()?,
        _ => true,
    };
    let regressor = (models.regressor && begin_regressor)
        .then(|| fit(Objective::SquaredError, score_target, REGRESSOR))
        .transpose()?;
    let partial = partial_fit(params, classifier.as_ref(), regressor.as_ref());
    let model = IopsModel::new(
        classifier.as_ref().map(|(b, _)| b.trees.clone()),
        regressor.as_ref().map(|(b, _)| b.trees.clone()),
    )?;
    let mut evaluation = evaluate(
        &model,
        &splits,
        classifier.as_ref(),
        regressor.as_ref(),
        score_target,
        world,
    )?;
    evaluation.partial = partial.is_some();
    let ranges = training_ranges(&splits.train, world)?;
    job.termination().before_saving(partial.as_deref())?;
    if world.is_leader() {
        for (split, lines) in metric_lines(&evaluation) {
            for line in lines {
                println!("metric: {split}:{line}");
            }
        }
        save_model(job, classifier, regressor, &evaluation, ranges, partial)?;
        report::write_evaluation(job.opt_ml, &evaluation)?;
    }
    Ok(evaluation)
}

fn evaluate(
    model: &IopsModel,
    splits: &Splits,
    classifier: Option<&(Boosted, f64)>,
    regressor: Option<&(Boosted, f64)>,
    score_target: usize,
    world: &World,
) -> Result<IopsEvaluation> {
    // Metrics over every host's rows: predictions and labels gathered.
    let on = |d: &Dataset| -> Result<_> {
        let p = model.predict(d.features.view());
        let target = |t: usize| world.gather(d.targets[t].as_slice().expect("contiguous"));
        let class = p
            .probabilities
            .map(|probs| -> Result<_> {
                let probs = world.gather(probs.as_slice().expect("standard layout"))?;
                let probs = Array2::from_shape_vec((probs.len() / 4, 4), probs)
                    .map_err(|e| Error::Fit(format!("gathered probabilities: {e}")))?;
                Ok(MultiClassMetrics::compute(&target(0)?, probs.view()))
            })
            .transpose()?;
        let score = p
            .scores
            .map(|s| -> Result<_> {
                Ok(RegressionMetrics::compute(
                    &target(score_target)?,
                    &world.gather(&s)?,
                ))
            })
            .transpose()?;
        Ok((class, score))
    };
    let (v_class, v_score) = on(&splits.validation)?;
    let (t_class, t_score) = splits.test.as_ref().map(on).transpose()?.unzip();
    Ok(IopsEvaluation {
        evaluated_on: if splits.test.is_some() {
            "test"
        } else {
            "validation"
        },
        rows: total_rows(splits, world)?,
        risk_levels: iops::RISK_LEVELS,
        classifier: classifier.map(|c| {
            ModelReport::new(c, v_class.expect("classifier predicted"), t_class.flatten())
        }),
        regressor: regressor
            .map(|r| ModelReport::new(r, v_score.expect("regressor predicted"), t_score.flatten())),
        partial: false,
    })
}

/// `(split, ["classifier:accuracy=...", ...])` for the validation and test splits.
fn metric_lines(e: &IopsEvaluation) -> Vec<(&'static str, Vec<String>)> {
    let class_lines = |m: &MultiClassMetrics| {
        let macro_f1 = m.classes.iter().map(|c| c.f1).sum::<f64>() / m.classes.len() as f64;
        vec![
            format!("classifier:accuracy={:.6}", m.accuracy),
            format!("classifier:log_loss={:.6}", m.log_loss),
            format!("classifier:f1_macro={macro_f1:.6}"),
        ]
    };
    let score_lines = |m: &RegressionMetrics| {
        vec![
            format!("regressor:rmse={:.6}", m.rmse),
            format!("regressor:mae={:.6}", m.mae),
            format!("regressor:r2={:.6}", m.r2),
        ]
    };
    let mut out = Vec::new();
    for split in ["validation", "test"] {
        let mut lines = Vec::new();
        if let Some(m) = e.classifier.as_ref().and_then(|c| c.on(split)) {
            lines.extend(class_lines(m));
        }
        if let Some(m) = e.regressor.as_ref().and_then(|r| r.on(split)) {
            lines.extend(score_lines(m));
        }
        out.push((split, lines));
    }
    out
}

fn save_model(
    job: &Job,
    classifier: Option<(Boosted, f64)>,
    regressor: Option<(Boosted, f64)>,
    evaluation: &IopsEvaluation,
    ranges: BTreeMap<String, [f32; 2]>,
    partial: Option<String>,
) -> Result<()> {
    let models = [(CLASSIFIER, classifier), (REGRESSOR, regressor)];
    let payloads = iops::payloads(
        models
            .iter()
            .filter_map(|(name, m)| m.as_ref().map(|(b, _)| (*name, b.ubj.clone(), &b.trees)))
            .collect(),
    )?;
    let mut manifest = report::manifest(
        ModelKind::Iops,
        iops::FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        evaluation,
        &evaluation.rows,
        &job.config.hyperparameters,
        ranges,
    )?;
    manifest.partial = partial;
    report::write_model(job.opt_ml, manifest, payloads)
}

/// What a fit ended by SIGTERM kept (`None` when nothing was cut short).
fn partial_fit(
    params: &IopsParams,
    classifier: Option<&(Boosted, f64)>,
    regressor: Option<&(Boosted, f64)>,
) -> Option<String> {
    let cut = |m: Option<&(Boosted, f64)>| m.is_some_and(|(b, _)| b.interrupted);
    let missing = params.models.regressor && regressor.is_none();
    if !cut(classifier) && !cut(regressor) && !missing {
        return None;
    }
    let num_round = params.boost.num_round;
    let mut kept = Vec::new();
    for (name, wanted, model) in [
        (CLASSIFIER, params.models.classifier, classifier),
        (REGRESSOR, params.models.regressor, regressor),
    ] {
        match model {
            Some((b, _)) if b.interrupted => {
                kept.push(format!("{name} {} of {num_round} rounds", b.rounds_run))
            }
            Some(_) => kept.push(format!("{name} complete")),
            None if wanted => kept.push(format!("{name} not fitted")),
            None => {}
        }
    }
    Some(kept.join(", "))
}

/// The two models' fits so far: a checkpoint of the pair.
#[derive(Debug, Default, Serialize, Deserialize)]
struct IopsState {
    classifier: Option<BoostState>,
    regressor: Option<BoostState>,
}

impl IopsState {
    fn of(&mut self, model: &str) -> &mut Option<BoostState> {
        if model == CLASSIFIER {
            &mut self.classifier
        } else {
            &mut self.regressor
        }
    }

    /// Rounds done by both models: the checkpoint's number.
    fn rounds(&self) -> u32 {
        [&self.classifier, &self.regressor]
            .iter()
            .filter_map(|s| s.as_ref().map(|s| s.rounds))
            .sum()
    }
}

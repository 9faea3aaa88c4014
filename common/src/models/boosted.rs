//! One XGBoost gradient-boosted model with early stopping, configured with the hyperparameter
//! names of SageMaker's built-in XGBoost algorithm.
//!
//! Early stopping follows XGBoost's own rule: training stops once the last evaluation metric on
//! the validation set has not improved for `early_stopping_rounds` rounds, and the model kept is
//! the one of the best round (XGBoost's `save_best`), so `train`, `serve` and XGBoost tooling
//! reading the saved model all predict with the same trees.

use super::trees::TreeModel;
use super::xgboost::{self, RoundLog, XgbParams};
use crate::error::Result;
use ndarray::{Array1, ArrayView2};
use serde::{Deserialize, Serialize};
use xgb::DMatrix;

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Class probabilities of `num_class` classes (`multi:softprob`).
    MultiClass {
        /// Number of classes.
        num_class: u32,
    },
    /// Least-squares regression (`reg:squarederror`).
    SquaredError,
    /// Probability of class 1 (`binary:logistic`).
    BinaryLogistic,
}

impl Objective {
    /// XGBoost's name of the objective.
    pub fn name(self) -> &'static str {
        match self {
            Objective::MultiClass { .. } => "multi:softprob",
            Objective::SquaredError => "reg:squarederror",
            Objective::BinaryLogistic => "binary:logistic",
        }
    }

    /// Metrics logged each round; early stopping watches the last one (XGBoost's rule).
    pub fn eval_metrics(self) -> &'static [&'static str] {
        match self {
            Objective::MultiClass { .. } => &["merror", "mlogloss"],
            Objective::SquaredError => &["rmse"],
            Objective::BinaryLogistic => &["error", "logloss"],
        }
    }
}

/// Hyperparameters, named as SageMaker's built-in XGBoost names them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoostParams {
    /// Maximum boosting rounds.
    pub num_round: u32,
    /// Learning rate.
    pub eta: f64,
    /// Maximum tree depth.
    pub max_depth: u32,
    /// Minimum hessian sum in a leaf.
    pub min_child_weight: f64,
    /// Share of rows per round.
    pub subsample: f64,
    /// Share of features per tree.
    pub colsample_bytree: f64,
    /// Minimum loss reduction for a split.
    pub gamma: f64,
    /// L1 regularisation of leaf weights.
    pub alpha: f64,
    /// L2 regularisation of leaf weights.
    pub lambda: f64,
    /// Stop after this many rounds without improvement on validation (`None`: never).
    pub early_stopping_rounds: Option<u32>,
    /// Histogram bins per feature.
    pub max_bin: u32,
    /// Random seed.
    pub seed: u64,
    /// Threads (0 = all cores).
    pub nthread: u32,
}

impl Default for BoostParams {
    /// The IOPS original's settings (reference-systems.md 2.4).
    fn default() -> Self {
        Self {
            num_round: 100,
            eta: 0.2,
            max_depth: 5,
            min_child_weight: 1.0,
            subsample: 0.8,
            colsample_bytree: 0.8,
            gamma: 0.0,
            alpha: 0.0,
            lambda: 1.0,
            early_stopping_rounds: Some(10),
            max_bin: 256,
            seed: 42,
            nthread: 0,
        }
    }
}

impl BoostParams {
    /// The parameters as XGBoost takes them.
    pub fn xgb_params(&self, objective: Objective) -> XgbParams {
        let mut p = XgbParams::default()
            .set("objective", objective.name())
            .set("tree_method", "hist")
            .set("eta", self.eta)
            .set("max_depth", self.max_depth)
            .set("min_child_weight", self.min_child_weight)
            .set("subsample", self.subsample)
            .set("colsample_bytree", self.colsample_bytree)
            .set("gamma", self.gamma)
            .set("alpha", self.alpha)
            .set("lambda", self.lambda)
            .set("max_bin", self.max_bin)
            .set("seed", self.seed)
            .set("nthread", self.nthread);
        if let Objective::MultiClass { num_class } = objective {
            p = p.set("num_class", num_class);
        }
        for m in objective.eval_metrics() {
            p = p.set("eval_metric", m);
        }
        p
    }
}

/// A fitted model.
pub struct Boosted {
    /// The compiled trees of the kept rounds (what `train` and `serve` predict with).
    pub trees: TreeModel,
    /// XGBoost's UBJSON model of the kept rounds.
    pub ubj: Vec<u8>,
    /// Rounds run.
    pub rounds_run: u32,
    /// The round kept (the best on validation with early stopping, else the last), from 0.
    pub best_iteration: u32,
    /// The watched metric's validation value at the kept round, when there was validation.
    pub best_score: Option<f64>,
    /// Whether the fit was ended early by its caller (SIGTERM with `save_model_on_termination`).
    pub interrupted: bool,
}

/// Training data of one fit.
pub struct FitData<'a> {
    /// Training features.
    pub train: ArrayView2<'a, f32>,
    /// Training labels.
    pub train_labels: &'a Array1<f32>,
    /// Training instance weights.
    pub train_weights: Option<&'a Array1<f32>>,
    /// Validation features and labels (early stopping and the logged validation metrics).
    pub validation: Option<(ArrayView2<'a, f32>, &'a Array1<f32>)>,
    /// Per feature, its number of categories (0: numeric); empty when all are numeric.
    pub categories: &'a [usize],
}

/// A boosted fit's progress, enough to go on from it (a checkpoint) and reach the model of an
/// uninterrupted fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoostState {
    /// Rounds finished.
    pub rounds: u32,
    /// XGBoost's UBJSON model of them (all rounds, not cut to the best).
    pub model: Vec<u8>,
    /// The watched metric on validation after each round (early stopping's memory).
    pub scores: Vec<f64>,
    /// Whether the fit had ended (early stopping or `num_round`).
    pub finished: bool,
}

/// What a running fit tells its caller, and asks of it.
pub trait RoundHooks {
    /// After every round, its log: `Ok(true)` goes on, `Ok(false)` ends the fit with the rounds
    /// so far (`save_model_on_termination`), an error abandons it (SIGTERM).
    fn round(&mut self, log: &RoundLog) -> Result<bool>;
    /// Whether to save the state after `rounds` rounds (`last`: the fit ends there).
    fn saves_after(&self, _rounds: u32, _last: bool) -> bool {
        false
    }
    /// Keeps a state (a checkpoint).
    fn save(&mut self, _state: &BoostState) -> Result<()> {
        Ok(())
    }
    /// The fit was ended by [`RoundHooks::round`] after `rounds` rounds, short of its end.
    fn ended_early(&mut self, _rounds: u32) {}
}

impl<F: FnMut(&RoundLog) -> Result<bool>> RoundHooks for F {
    fn round(&mut self, log: &RoundLog) -> Result<bool> {
        self(log)
    }
}

/// Fits one model, from `resume` on when given (a state of the same fit); `hooks` see every
/// round and may end the fit early.
pub fn fit(
    params: &BoostParams,
    objective: Objective,
    data: FitData,
    hooks: &mut dyn RoundHooks,
    resume: Option<BoostState>,
) -> Result<Boosted> {
    let mut dtrain = xgboost::dmatrix(data.train, Some(data.train_labels))?;
    xgboost::mark_categorical(&mut dtrain, data.categories)?;
    if let Some(w) = data.train_weights {
        dtrain.set_weights(w.as_slice().expect("contiguous weights"))?;
    }
    let dvalid = data
        .validation
        .map(|(x, y)| {
            let mut d = xgboost::dmatrix(x, Some(y))?;
            xgboost::mark_categorical(&mut d, data.categories)?;
            Ok::<_, crate::error::Error>(d)
        })
        .transpose()?;
    let mut evals = vec![(&dtrain, "train")];
    if let Some(d) = &dvalid {
        evals.push((d, "validation"));
    }
    let watched = *objective.eval_metrics().last().expect("a metric");
    let patience = params.early_stopping_rounds.filter(|_| dvalid.is_some());
    let xgb_params = params.xgb_params(objective);
    let (mut booster, mut state) = match resume {
        Some(state) => (xgboost::resume_booster(&xgb_params, &state.model)?, state),
        None => {
            let cache: Vec<&DMatrix> = evals.iter().map(|(m, _)| *m).collect();
            let state = BoostState {
                rounds: 0,
                model: Vec::new(),
                scores: Vec::new(),
                finished: false,
            };
            (xgboost::new_booster(&xgb_params, &cache)?, state)
        }
    };
    let mut interrupted = false;
    while !state.finished && state.rounds < params.num_round {
        let round = state.rounds;
        booster.update(&dtrain, round as i32)?;
        let log = xgboost::evaluate(&booster, &evals, round, &xgb_params)?;
        let go_on = hooks.round(&log)?;
        state.rounds = round + 1;
        if let Some(score) = log.score("validation", watched) {
            state.scores.push(score);
        }
        let since_best = best_round(&state.scores).map_or(0, |b| round - b);
        let ended = patience.is_some_and(|p| since_best >= p) || state.rounds == params.num_round;
        // A stop asked in the round the fit ends anyway is no interruption.
        state.finished = ended;
        if hooks.saves_after(state.rounds, ended || !go_on) {
            state.model = booster.save_buffer(true)?;
            hooks.save(&state)?;
        }
        if ended {
            break;
        }
        if !go_on {
            interrupted = true;
            hooks.ended_early(state.rounds);
            break;
        }
    }
    let rounds_run = state.rounds;
    let best_iteration = match (patience, best_round(&state.scores)) {
        (Some(_), Some(round)) => round,
        _ => rounds_run.saturating_sub(1),
    };
    let kept = if best_iteration + 1 < rounds_run {
        booster.slice(0, best_iteration as i32 + 1)?
    } else {
        booster
    };
    let (ubj, trees) = xgboost::export(&kept)?;
    Ok(Boosted {
        trees,
        ubj,
        rounds_run,
        best_iteration,
        best_score: state.scores.get(best_iteration as usize).copied(),
        interrupted,
    })
}

/// The round of the lowest score (the first of equals), as XGBoost's early stopping keeps it.
fn best_round(scores: &[f64]) -> Option<u32> {
    let mut best: Option<(u32, f64)> = None;
    for (round, &score) in scores.iter().enumerate() {
        if best.is_none_or(|(_, b)| score < b) {
            best = Some((round as u32, score));
        }
    }
    best.map(|(round, _)| round)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, Array2};

    /// y = x0 on the first half, noise after: validation error bottoms out early.
    fn data(rows: usize, seed: u64) -> (Array2<f32>, Array1<f32>) {
        use rand::Rng;
        let mut rng = crate::datagen::rng(seed);
        let x = Array2::from_shape_fn((rows, 3), |_| rng.random::<f32>());
        let y = x.column(0).mapv(|v| v * 10.0)
            + Array1::from_shape_fn(rows, |_| rng.random::<f32>() * 4.0);
        (x, y)
    }

    #[test]
    fn early_stopping_keeps_the_best_round_in_both_forms() {
        let (x, y) = data(400, 1);
        let (vx, vy) = data(200, 2);
        let params = BoostParams {
            num_round: 300,
            eta: 0.5,
            max_depth: 6,
            early_stopping_rounds: Some(5),
            nthread: 1,
            ..BoostParams::default()
        };
        let mut lines = Vec::new();
        let m = fit(
            &params,
            Objective::SquaredError,
            FitData {
                train: x.view(),
                train_labels: &y,
                train_weights: None,
                validation: Some((vx.view(), &vy)),
                categories: &[],
            },
            &mut |log: &RoundLog| {
                lines.push(log.line.clone());
                Ok(true)
            },
            None,
        )
        .unwrap();
        assert!(m.rounds_run < 300, "stopped early");
        assert_eq!(m.rounds_run, m.best_iteration + 6);
        assert_eq!(lines.len() as u32, m.rounds_run);
        assert!(
            lines[0].starts_with("[0]\ttrain-rmse:") && lines[0].contains("\tvalidation-rmse:")
        );
        assert_eq!(m.trees.n_trees() as u32, m.best_iteration + 1);
        // XGBoost's saved model holds the same rounds and predicts as the compiled trees.
        let booster = xgb::Booster::load_buffer(&m.ubj).unwrap();
        let dm = xgboost::dmatrix(vx.view(), None).unwrap();
        let theirs = booster.predict(&dm).unwrap();
        let ours = m.trees.predict(vx.view());
        for (a, b) in theirs.iter().zip(ours.iter()) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        // The kept round has the lowest validation RMSE of all rounds logged.
        let rmse = |l: &String| l.rsplit(':').next().unwrap().parse::<f64>().unwrap();
        let best = lines.iter().map(rmse).fold(f64::INFINITY, f64::min);
        assert!((rmse(&lines[m.best_iteration as usize]) - best).abs() < 1e-9);
    }

    #[test]
    fn multiclass_logs_merror_then_mlogloss() {
        let (x, y) = data(300, 3);
        let classes = y.mapv(|v| (v / 4.0).floor().min(3.0));
        let m = fit(
            &BoostParams {
                num_round: 3,
                nthread: 1,
                ..BoostParams::default()
            },
            Objective::MultiClass { num_class: 4 },
            FitData {
                train: x.view(),
                train_labels: &classes,
                train_weights: None,
                validation: Some((x.view(), &classes)),
                categories: &[],
            },
            &mut |log: &RoundLog| {
                let names: Vec<&str> = log.scores.iter().map(|s| s.1.as_str()).collect();
                assert_eq!(names, ["merror", "mlogloss", "merror", "mlogloss"]);
                Ok(true)
            },
            None,
        )
        .unwrap();
        assert_eq!(m.trees.n_groups(), 4);
        let p = m.trees.predict(x.view());
        assert!(p.rows().into_iter().all(|r| (r.sum() - 1.0).abs() < 1e-5));
    }

    /// Keeps every state it is offered and ends the fit after `stop_after` rounds.
    struct Keeper {
        states: Vec<BoostState>,
        stop_after: Option<u32>,
    }

    impl RoundHooks for Keeper {
        fn round(&mut self, log: &RoundLog) -> Result<bool> {
            Ok(self.stop_after != Some(log.round + 1))
        }
        fn saves_after(&self, _rounds: u32, _last: bool) -> bool {
            true
        }
        fn save(&mut self, state: &BoostState) -> Result<()> {
            self.states.push(state.clone());
            Ok(())
        }
    }

    #[test]
    fn a_fit_resumed_from_any_state_is_the_uninterrupted_fit() {
        let (x, y) = data(400, 4);
        let (vx, vy) = data(200, 5);
        let params = BoostParams {
            num_round: 60,
            eta: 0.5,
            max_depth: 6,
            early_stopping_rounds: Some(5),
            nthread: 1,
            // No row or column sampling: XGBoost does not keep its samplers' random state, so
            // resumed rounds would draw other samples.
            colsample_bytree: 1.0,
            subsample: 1.0,
            ..BoostParams::default()
        };
        let rows = || FitData {
            train: x.view(),
            train_labels: &y,
            train_weights: None,
            validation: Some((vx.view(), &vy)),
            categories: &[],
        };
        let mut whole = Keeper {
            states: Vec::new(),
            stop_after: None,
        };
        let m = fit(&params, Objective::SquaredError, rows(), &mut whole, None).unwrap();
        assert!(!m.interrupted && m.rounds_run < 60, "stopped early");
        assert!(whole.states.last().unwrap().finished);
        // Ended by its caller after 4 rounds: those 4 rounds, marked.
        let mut cut = Keeper {
            states: Vec::new(),
            stop_after: Some(4),
        };
        let partial = fit(&params, Objective::SquaredError, rows(), &mut cut, None).unwrap();
        assert!(partial.interrupted && partial.rounds_run == 4);
        assert!(!cut.states.last().unwrap().finished);
        // Asked to stop in the very round early stopping ends the fit: a whole fit.
        let mut at_end = Keeper {
            states: Vec::new(),
            stop_after: Some(m.rounds_run),
        };
        let ended = fit(&params, Objective::SquaredError, rows(), &mut at_end, None).unwrap();
        assert!(!ended.interrupted && ended.rounds_run == m.rounds_run);
        assert!(at_end.states.last().unwrap().finished);
        for from in [
            cut.states[3].clone(),
            whole.states[1].clone(),
            whole.states.last().unwrap().clone(),
        ] {
            let mut go_on = |_: &RoundLog| Ok(true);
            let r = fit(
                &params,
                Objective::SquaredError,
                rows(),
                &mut go_on,
                Some(from),
            )
            .unwrap();
            assert_eq!(
                (r.rounds_run, r.best_iteration, r.best_score),
                (m.rounds_run, m.best_iteration, m.best_score)
            );
            assert_eq!(r.trees.predict(vx.view()), m.trees.predict(vx.view()));
        }
    }
}

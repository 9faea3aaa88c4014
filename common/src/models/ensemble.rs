//! The fire detector's weighted ensemble: random forest + gradient boosting + logistic regression.
//!
//! Both tree models are XGBoost `hist` models: the forest is XGBoost's random-forest mode (one
//! round of `num_parallel_tree` trees, row subsampling, per-node column sampling, learning rate
//! 1), since linfa-trees needs 27.7 s for one depth-10 tree on 200K rows. The ensemble probability
//! is the weighted mean of the members' class-1 probabilities; fire iff it is `> threshold`.
//! Weights are keyed by member name, never by position (a bug of the original serve script).

use super::logistic::{LogisticModel, LogisticParams};
use super::trees::TreeModel;
use super::xgboost::{self, XgbParams};
use crate::collective::World;
use crate::data::Dataset;
use crate::error::Result;
use crate::metrics::BinaryMetrics;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;

/// An ensemble member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Member {
    /// XGBoost random forest.
    RandomForest,
    /// XGBoost gradient boosting.
    GradientBoosting,
    /// Logistic regression on standardised features.
    LogisticRegression,
}

impl Member {
    /// Every member, in reporting order.
    pub const ALL: [Member; 3] = [
        Member::RandomForest,
        Member::GradientBoosting,
        Member::LogisticRegression,
    ];
    /// Names accepted by the `models` hyperparameter.
    pub const NAMES: [&'static str; 3] =
        ["random_forest", "gradient_boosting", "logistic_regression"];

    /// The member's name in hyperparameters, the manifest, metrics and responses.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The member with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }
}

/// How member weights are derived from validation results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// The original: min-max normalised validation accuracy `x`, weight `e^(3x)`, normalised.
    ExpAccuracy,
    /// Proportional to validation ROC AUC.
    Auc,
    /// Equal weights.
    Equal,
}

impl Weighting {
    /// Names accepted by the `weighting` hyperparameter.
    pub const NAMES: [&'static str; 3] = ["exp_accuracy", "auc", "equal"];

    const ALL: [Weighting; 3] = [Weighting::ExpAccuracy, Weighting::Auc, Weighting::Equal];

    /// The method's name in hyperparameters, the manifest and `evaluation.json`.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The method with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }

    /// Normalised weights (summing to 1) from each member's validation metrics.
    pub fn weights(self, validation: &BTreeMap<Member, BinaryMetrics>) -> BTreeMap<Member, f64> {
        let raw: BTreeMap<Member, f64> = match self {
            Weighting::Equal => validation.keys().map(|&m| (m, 1.0)).collect(),
            Weighting::Auc => validation
                .iter()
                .map(|(&m, v)| (m, v.auc.unwrap_or(0.5)))
                .collect(),
            Weighting::ExpAccuracy => {
                let lo = validation
                    .values()
                    .map(|v| v.accuracy)
                    .fold(f64::INFINITY, f64::min);
                let hi = validation
                    .values()
                    .map(|v| v.accuracy)
                    .fold(f64::NEG_INFINITY, f64::max);
                validation
                    .iter()
                    .map(|(&m, v)| {
                        (
                            m,
                            if hi > lo {
                                (3.0 * (v.accuracy - lo) / (hi - lo)).exp()
                            } else {
                                1.0
                            },
                        )
                    })
                    .collect()
            }
        };
        let total: f64 = raw.values().sum();
        if total > 0.0 {
            raw.into_iter().map(|(m, w)| (m, w / total)).collect()
        } else {
            let k = raw.len() as f64;
            raw.into_keys().map(|m| (m, 1.0 / k)).collect()
        }
    }
}

/// Random forest settings (XGBoost forest mode).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForestParams {
    /// Trees in the forest.
    pub num_trees: u32,
    /// Maximum tree depth.
    pub max_depth: u32,
    /// Share of rows each tree sees (bootstrap-like).
    pub subsample: f64,
    /// Share of features considered at each split; `None` = sqrt(n_features) / n_features.
    pub colsample_bynode: Option<f64>,
    /// L2 regularisation of leaf weights (XGBoost's random forests use a tiny value).
    pub lambda: f64,
    /// Minimum hessian sum in a leaf.
    pub min_child_weight: f64,
}

impl Default for ForestParams {
    fn default() -> Self {
        Self {
            num_trees: 200,
            max_depth: 10,
            subsample: 0.632,
            colsample_bynode: None,
            lambda: 1e-5,
            min_child_weight: 1.0,
        }
    }
}

impl ForestParams {
    /// XGBoost's random-forest mode on top of `base`: one round of `trees` trees with eta 1;
    /// `default_colsample` stands in when `colsample_bynode` is unset.
    pub fn xgb_params(&self, base: XgbParams, trees: u32, default_colsample: f64) -> XgbParams {
        base.set("eta", 1)
            .set("num_parallel_tree", trees)
            .set("max_depth", self.max_depth)
            .set("subsample", self.subsample)
            .set(
                "colsample_bynode",
                self.colsample_bynode.unwrap_or(default_colsample),
            )
            .set("lambda", self.lambda)
            .set("min_child_weight", self.min_child_weight)
    }
}

/// Gradient boosting settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoostingParams {
    /// Boosting rounds.
    pub num_round: u32,
    /// Maximum tree depth.
    pub max_depth: u32,
    /// Learning rate.
    pub eta: f64,
    /// Share of rows per round.
    pub subsample: f64,
    /// Share of features per tree.
    pub colsample_bytree: f64,
    /// L2 regularisation of leaf weights.
    pub lambda: f64,
    /// Minimum hessian sum in a leaf.
    pub min_child_weight: f64,
    /// Rounds between two evaluations of the train and validation splits (the round lines):
    /// rounds 0, `eval_interval`, `2 * eval_interval`, ..., the first after a resume from a
    /// checkpoint, and the last. Every round's would cost about a fifth of the boosting's time
    /// (XGBoost predicts and scores every row of both splits).
    pub eval_interval: u32,
}

impl Default for BoostingParams {
    fn default() -> Self {
        Self {
            num_round: 200,
            max_depth: 6,
            eta: 0.1,
            subsample: 1.0,
            colsample_bytree: 1.0,
            lambda: 1.0,
            min_child_weight: 1.0,
            eval_interval: 10,
        }
    }
}

/// Everything the ensemble fit needs.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleParams {
    /// Members to train, at least one.
    pub members: Vec<Member>,
    /// Forest settings.
    pub forest: ForestParams,
    /// Boosting settings.
    pub boosting: BoostingParams,
    /// Logistic regression settings.
    pub logistic: LogisticParams,
    /// Weighting method.
    pub weighting: Weighting,
    /// Decision threshold: fire iff probability `>` threshold.
    pub threshold: f64,
    /// Histogram bins per feature for both tree models.
    pub max_bin: u32,
    /// Random seed of the tree models.
    pub seed: u64,
    /// XGBoost threads (0 = all cores).
    pub nthread: u32,
}

impl Default for EnsembleParams {
    fn default() -> Self {
        Self {
            members: Member::ALL.to_vec(),
            forest: ForestParams::default(),
            boosting: BoostingParams::default(),
            logistic: LogisticParams::default(),
            weighting: Weighting::ExpAccuracy,
            threshold: 0.5,
            max_bin: 256,
            seed: 42,
            nthread: 0,
        }
    }
}

/// Callbacks from a running fit: progress lines and the chance to stop (SIGTERM).
pub trait Progress {
    /// Called at every safe point: `Ok(false)` ends the fit keeping the members (forest parts,
    /// boosting rounds) fitted so far, an error abandons it.
    fn go_on(&mut self) -> Result<bool>;
    /// One boosting round's evaluation line in XGBoost's format.
    fn boosting_round(&mut self, line: &str);
    /// Whether [`Progress::save`] keeps anything (encoding a state has a cost).
    fn keeps_states(&self) -> bool {
        false
    }
    /// Boosting rounds between two saved states (a state holds every member finished so far).
    fn state_interval(&self) -> u32 {
        10
    }
    /// What the fit has finished so far, after each member, forest part and
    /// [`Progress::state_interval`] boosting rounds, for checkpoints.
    fn save(&mut self, _state: &FitState) -> Result<()> {
        Ok(())
    }
}

/// What a fit has finished: enough to go on from it ([`EnsembleParams::fit`] takes one) and
/// reach the model of an uninterrupted fit (the forest parts have their own seeds, boosting
/// samples no rows or columns by default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FitState {
    /// The fitted logistic regression.
    pub logistic: Option<LogisticModel>,
    /// XGBoost's UBJSON model of each forest part finished.
    pub forest_parts: Vec<Vec<u8>>,
    /// Boosting: rounds finished and XGBoost's UBJSON model of them.
    pub boosting: Option<(u32, Vec<u8>)>,
}

impl FitState {
    /// Units of work done (a member, a part, a round): grows with every saved state.
    pub fn steps(&self) -> u32 {
        u32::from(self.logistic.is_some())
            + self.forest_parts.len() as u32
            + self.boosting.as_ref().map_or(0, |b| b.0)
    }

    /// The state as bytes (bincode).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| crate::error::Error::Fit(format!("encoding a fit state: {e}")))
    }

    /// A state written by [`FitState::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map(|(s, _)| s)
            .map_err(|e| crate::error::Error::Fit(format!("a fit state is corrupt: {e}")))
    }
}

/// A forest part as XGBoost's UBJSON model and compiled trees ([`xgboost::export`]).
type ExportedPart = (Vec<u8>, TreeModel);

/// Trees per forest part: XGBoost keeps per-tree working memory until the end of a boosting
/// round, so one 200-tree round peaks about 200 MB higher than 8 rounds of 25 trees in
/// separate boosters; parts also give SIGTERM a safe point every few seconds.
pub const FOREST_PART_TREES: u32 = 25;

/// A fitted member model.
pub enum MemberModel {
    /// XGBoost models: one for boosting, the parts of a forest. (A forest round's margin is the
    /// mean of its trees' leaves, so the mean of the parts' margins is the margin of one forest
    /// of all their trees.)
    Trees {
        /// All parts as one compiled model ([`TreeModel::average`]); this predicts.
        trees: TreeModel,
        /// XGBoost's UBJSON model of each part, for the artifact (empty when loaded to serve).
        xgboost_models: Vec<Vec<u8>>,
    },
    /// The logistic regression.
    Logistic(LogisticModel),
}

impl MemberModel {
    /// A tree member from trained boosters (the parts of a forest, or one booster).
    /// The member made of exported boosters (`xgboost::export`: UBJSON and compiled trees);
    /// several are averaged into one forest.
    fn from_exported(exported: Vec<(Vec<u8>, TreeModel)>) -> Result<Self> {
        let (xgboost_models, parts): (Vec<_>, Vec<_>) = exported.into_iter().unzip();
        Ok(MemberModel::Trees {
            trees: TreeModel::average(&parts)?,
            xgboost_models,
        })
    }

    /// Bytes the member holds.
    pub fn memory_bytes(&self) -> usize {
        match self {
            MemberModel::Trees { trees, .. } => trees.memory_bytes(),
            MemberModel::Logistic(m) => m.memory_bytes(),
        }
    }

    /// Each feature's contribution to every row's log-odds and the bias (`n_features + 1` values
    /// summing to it); an error when the trees keep no node covers.
    pub fn contributions(&self, x: ArrayView2<f32>) -> std::result::Result<Array2<f32>, String> {
        match self {
            MemberModel::Trees { trees, .. } => trees.contributions(x),
            MemberModel::Logistic(m) => Ok(m.contributions(x)),
        }
    }

    /// Class-1 probability of every row.
    pub fn predict(&self, x: ArrayView2<f32>) -> Result<Vec<f32>> {
        match self {
            MemberModel::Trees { trees, .. } => Ok(trees.predict(x).column(0).to_vec()),
            MemberModel::Logistic(m) => Ok(m.predict(x)),
        }
    }

    /// [`MemberModel::predict`] with the rows split over `threads` threads (0: every core).
    pub fn predict_on_threads(&self, x: ArrayView2<f32>, threads: u32) -> Result<Vec<f32>> {
        let threads = match threads {
            0 => crate::parallel::cores(),
            n => n as usize,
        };
        let mut all = Vec::with_capacity(x.nrows());
        for part in
            crate::parallel::in_row_views(x, threads, MIN_ROWS_PER_THREAD, |x| self.predict(x))
        {
            all.extend(part.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?);
        }
        Ok(all)
    }
}

/// Rows per thread below which splitting a prediction is not worth a thread.
const MIN_ROWS_PER_THREAD: usize = 2048;

/// The fitted ensemble.
pub struct FireEnsemble {
    /// Members in reporting order.
    pub members: Vec<(Member, MemberModel)>,
    /// Normalised weight of each member.
    pub weights: BTreeMap<Member, f64>,
    /// Decision threshold.
    pub threshold: f64,
}

/// Probabilities for a batch of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsemblePrediction {
    /// Each member's class-1 probabilities.
    pub members: Vec<(Member, Vec<f32>)>,
    /// The weighted ensemble probability.
    pub ensemble: Vec<f32>,
}

impl FireEnsemble {
    /// Member and ensemble probabilities for every row.
    pub fn predict(&self, x: ArrayView2<f32>) -> Result<EnsemblePrediction> {
        self.predict_with(x, None)
    }

    /// [`FireEnsemble::predict`], with the tree members at `together.1` walked side by side in
    /// `together.0` ([`TreeModel::side_by_side`] of them, in that order: the same bits).
    pub fn predict_with(
        &self,
        x: ArrayView2<f32>,
        together: Option<&(TreeModel, Vec<usize>)>,
    ) -> Result<EnsemblePrediction> {
        let walked = together.map(|(model, which)| (model.predict(x), which));
        if let Some((p, which)) = &walked {
            debug_assert!(
                p.ncols() == which.len() && which.iter().all(|&i| i < self.members.len())
            );
        }
        let members = self
            .members
            .iter()
            .enumerate()
            .map(|(i, (m, model))| {
                let output = walked
                    .as_ref()
                    .and_then(|(p, which)| Some(p.column(which.iter().position(|&w| w == i)?)));
                match output {
                    Some(p) => Ok((*m, p.to_vec())),
                    None => Ok((*m, model.predict(x)?)),
                }
            })
            .collect::<Result<_>>()?;
        Ok(self.combine(members))
    }

    /// The tree members walked side by side ([`TreeModel::side_by_side`]) and their indices in
    /// `members`, where there are several and it pays.
    pub fn tree_members_together(&self) -> Option<(TreeModel, Vec<usize>)> {
        let (which, models): (Vec<usize>, Vec<&TreeModel>) = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, (_, model))| match model {
                MemberModel::Trees { trees, .. } => Some((i, trees)),
                MemberModel::Logistic(_) => None,
            })
            .unzip();
        if models.len() < 2 {
            return None;
        }
        Some((TreeModel::side_by_side(&models)?, which))
    }

    /// [`FireEnsemble::predict`] with the rows split over `threads` threads (0: every core).
    pub fn predict_on_threads(
        &self,
        x: ArrayView2<f32>,
        threads: u32,
    ) -> Result<EnsemblePrediction> {
        let members = self
            .members
            .iter()
            .map(|(m, model)| Ok((*m, model.predict_on_threads(x, threads)?)))
            .collect::<Result<_>>()?;
        Ok(self.combine(members))
    }

    /// The ensemble's probabilities from its members' (each member's, of the same rows).
    pub fn combine(&self, members: Vec<(Member, Vec<f32>)>) -> EnsemblePrediction {
        let rows = members.first().map_or(0, |(_, p)| p.len());
        let mut ensemble = vec![0.0f64; rows];
        for (m, p) in &members {
            let w = self.weights.get(m).copied().unwrap_or(0.0);
            for (e, &q) in ensemble.iter_mut().zip(p) {
                *e += w * f64::from(q);
            }
        }
        EnsemblePrediction {
            members,
            ensemble: ensemble.into_iter().map(|v| v as f32).collect(),
        }
    }
}

impl FireEnsemble {
    /// Per row, each feature's contribution to the ensemble's probability and the bias
    /// (`n_features + 1` values summing to it). Each member's exact explanation of its log-odds
    /// (TreeSHAP, or the linear form) is carried to the probability scale by the member's own
    /// slope between its bias and its output, `(p - sigmoid(b)) / (z - b)` (the sigmoid's slope
    /// at `b` when `z = b`), which keeps each member's sum equal to its probability; the
    /// ensemble's are the members' weighted by their weights, the bias `sum w sigmoid(b)`.
    pub fn contributions(&self, x: ArrayView2<f32>) -> std::result::Result<Array2<f32>, String> {
        let n = x.ncols();
        let mut out = Array2::<f32>::zeros((x.nrows(), n + 1));
        for (member, model) in &self.members {
            let w = self.weights.get(member).copied().unwrap_or(0.0);
            let phi = model.contributions(x)?;
            for (mut total, phi) in out.rows_mut().into_iter().zip(phi.rows()) {
                let b = f64::from(phi[n]);
                let z: f64 = phi.iter().map(|&v| f64::from(v)).sum();
                let (p, p0) = (sigmoid(z), sigmoid(b));
                let slope = if (z - b).abs() > 1e-9 {
                    (p - p0) / (z - b)
                } else {
                    p0 * (1.0 - p0)
                };
                for k in 0..n {
                    total[k] += (w * slope * f64::from(phi[k])) as f32;
                }
                total[n] += (w * p0) as f32;
            }
        }
        Ok(out)
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The result of a fit: the ensemble, validation metrics and timings.
pub struct FitOutcome {
    /// The fitted ensemble.
    pub ensemble: FireEnsemble,
    /// Validation metrics of each member (the weights' input).
    pub validation: BTreeMap<Member, BinaryMetrics>,
    /// Seconds spent fitting each member.
    pub fit_seconds: BTreeMap<Member, f64>,
    /// Each fitted member's probabilities of this host's validation rows (the metrics' input).
    pub validation_predictions: Vec<(Member, Vec<f32>)>,
    /// What a fit ended early ([`Progress::go_on`]) kept, member by member (`None`: complete).
    pub partial: Option<String>,
}

impl EnsembleParams {
    fn forest_params(&self, n_features: usize, trees: u32, seed: u64) -> XgbParams {
        let sqrt_share = (n_features as f64).sqrt() / n_features as f64;
        self.forest
            .xgb_params(self.tree_base().set("seed", seed), trees, sqrt_share)
    }

    fn boosting_params(&self) -> XgbParams {
        let b = &self.boosting;
        self.tree_base()
            .set("eval_metric", "logloss")
            .set("eta", b.eta)
            .set("max_depth", b.max_depth)
            .set("subsample", b.subsample)
            .set("colsample_bytree", b.colsample_bytree)
            .set("lambda", b.lambda)
            .set("min_child_weight", b.min_child_weight)
    }

    fn tree_base(&self) -> XgbParams {
        XgbParams::default()
            .set("objective", "binary:logistic")
            .set("tree_method", "hist")
            .set("max_bin", self.max_bin)
            // Fewer cached node histograms: about 15 MB less at depth 10, and no slower here.
            .set("max_cached_hist_node", 256)
            .set("seed", self.seed)
            .set("nthread", self.nthread)
            .set("verbosity", 1)
    }

    /// Fits the forest in parts of [`FOREST_PART_TREES`] trees, each with its own seed, and
    /// says whether it was ended early. Parts in `state` are taken as they are.
    fn fit_forest(
        &self,
        dtrain: &xgb::DMatrix,
        n_features: usize,
        progress: &mut dyn Progress,
        state: &mut FitState,
    ) -> Result<(Vec<ExportedPart>, bool)> {
        let mut parts = Vec::new();
        let mut left = self.forest.num_trees;
        while left > 0 {
            if !progress.go_on()? {
                return Ok((parts, true));
            }
            let trees = left.min(FOREST_PART_TREES);
            if let Some(saved) = state.forest_parts.get(parts.len()) {
                parts.push(xgboost::export(&xgb::Booster::load_buffer(saved)?)?);
                left -= trees;
                continue;
            }
            let seed = self.seed.wrapping_add(parts.len() as u64);
            let params = self.forest_params(n_features, trees, seed);
            let booster = xgboost::fit_one_round(&params, dtrain)?;
            // Exported and dropped at once: a live Booster keeps XGBoost's training caches, and
            // all 8 parts kept alive until the end peaked at 413 MiB on the 251K-row mix.
            let part = xgboost::export(&booster)?;
            if progress.keeps_states() {
                state.forest_parts.push(part.0.clone());
                progress.save(state)?;
            }
            parts.push(part);
            left -= trees;
        }
        Ok((parts, false))
    }

    /// Boosting rounds, from those in `state` on; the booster, its rounds and whether it was
    /// ended early.
    fn fit_boosting(
        &self,
        evals: &[(&xgb::DMatrix, &str)],
        progress: &mut dyn Progress,
        state: &mut FitState,
    ) -> Result<(xgb::Booster, u32, bool)> {
        let params = self.boosting_params();
        let (mut booster, start) = match &state.boosting {
            Some((done, model)) => (xgboost::resume_booster(&params, model)?, *done),
            None => {
                let cache: Vec<&xgb::DMatrix> = evals.iter().map(|(m, _)| *m).collect();
                (xgboost::new_booster(&params, &cache)?, 0)
            }
        };
        for round in start..self.boosting.num_round {
            booster.update(evals[0].0, round as i32)?;
            let go_on = progress.go_on()?;
            let done = round + 1;
            // Every `eval_interval`-th round, the first after a resume and the last.
            let last = done == self.boosting.num_round || !go_on;
            if round % self.boosting.eval_interval.max(1) == 0 || round == start || last {
                let log = xgboost::evaluate(&booster, evals, round, &params)?;
                progress.boosting_round(&log.line);
            }
            if progress.keeps_states()
                && (done % progress.state_interval() == 0 || done == self.boosting.num_round)
            {
                state.boosting = Some((done, booster.save_buffer(true)?));
                progress.save(state)?;
            }
            if !go_on && done < self.boosting.num_round {
                return Ok((booster, done, true));
            }
        }
        Ok((booster, self.boosting.num_round.max(start), false))
    }

    /// Fits every member on `train`, scores them on `validation`, and weights them.
    ///
    /// The logistic regression is fitted first, before XGBoost's matrices exist, so the two
    /// never hold their working memory at the same time; `train` is dropped once XGBoost has
    /// its own copy, and the validation matrix exists only while boosting needs it.
    ///
    /// On several hosts (`world`) each passes its own rows: XGBoost trains the tree members
    /// across the hosts, the logistic regression sums its loss over them, and the weights come
    /// from every host's validation rows.
    ///
    /// A `state` saved by an earlier fit of the same data (a checkpoint) is gone on from.
    pub fn fit(
        &self,
        train: Dataset,
        validation: &Dataset,
        progress: &mut dyn Progress,
        world: &World,
        mut state: FitState,
    ) -> Result<FitOutcome> {
        let mut order = self.members.clone();
        order.sort_by_key(|m| *m != Member::LogisticRegression);
        let n_features = train.feature_names.len();
        let mut train = Some(train);
        let mut dtrain = None;
        let mut fitted = BTreeMap::new();
        let mut scores = BTreeMap::new();
        let mut fit_seconds = BTreeMap::new();
        // What each member kept when the fit was ended early, and whether it was.
        let mut kept: Vec<String> = Vec::new();
        let mut ended = false;
        for member in order {
            if ended || !progress.go_on()? {
                ended = true;
                kept.push(format!("{} not fitted", member.name()));
                continue;
            }
            let start = Instant::now();
            let model = if member == Member::LogisticRegression {
                let t = train
                    .as_ref()
                    .expect("the logistic regression is fitted first");
                let fitted = match state.logistic.clone() {
                    Some(saved) => saved,
                    None => {
                        let m = self.logistic.fit(t.features.view(), t.labels(), world)?;
                        if progress.keeps_states() {
                            state.logistic = Some(m.clone());
                            progress.save(&state)?;
                        }
                        m
                    }
                };
                MemberModel::Logistic(fitted)
            } else {
                if dtrain.is_none() {
                    // From here on only XGBoost's copy of the training rows is needed.
                    let t = train.take().expect("training rows");
                    dtrain = Some(xgboost::dmatrix(t.features.view(), Some(t.labels()))?);
                }
                let dtrain = dtrain.as_ref().expect("built above");
                if member == Member::RandomForest {
                    let (parts, cut) = self.fit_forest(dtrain, n_features, progress, &mut state)?;
                    if cut {
                        ended = true;
                        let trees =
                            (parts.len() as u32 * FOREST_PART_TREES).min(self.forest.num_trees);
                        kept.push(format!(
                            "random_forest {trees} of {} trees",
                            self.forest.num_trees
                        ));
                        if parts.is_empty() {
                            continue;
                        }
                    }
                    MemberModel::from_exported(parts)?
                } else {
                    let dvalid =
                        xgboost::dmatrix(validation.features.view(), Some(validation.labels()))?;
                    let evals = [(dtrain, "train"), (&dvalid, "validation")];
                    let (booster, rounds, cut) = self.fit_boosting(&evals, progress, &mut state)?;
                    if cut {
                        ended = true;
                        kept.push(format!(
                            "gradient_boosting {rounds} of {} rounds",
                            self.boosting.num_round
                        ));
                    }
                    MemberModel::from_exported(vec![xgboost::export(&booster)?])?
                }
            };
            fit_seconds.insert(member, start.elapsed().as_secs_f64());
            let local = model.predict_on_threads(validation.features.view(), self.nthread)?;
            let p = world.gather(&local)?;
            let labels = world.gather(validation.labels().as_slice().expect("contiguous"))?;
            scores.insert(member, BinaryMetrics::compute(&labels, &p, self.threshold));
            fitted.insert(member, (model, local));
        }
        if fitted.is_empty() {
            return Err(crate::error::Error::Stopped(
                "the job received SIGTERM before any member was fitted; no model was written"
                    .into(),
            ));
        }
        // Members and their validation probabilities in the order of `self.members`.
        let (members, validation_predictions): (Vec<_>, Vec<_>) = self
            .members
            .iter()
            .filter_map(|m| fitted.remove(m).map(|(model, p)| ((*m, model), (*m, p))))
            .unzip();
        let weights = self.weighting.weights(&scores);
        Ok(FitOutcome {
            ensemble: FireEnsemble {
                members,
                weights,
                threshold: self.threshold,
            },
            validation: scores,
            validation_predictions,
            fit_seconds,
            partial: ended.then(|| kept.join(", ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(accuracy: f64, auc: f64) -> BinaryMetrics {
        BinaryMetrics {
            accuracy,
            precision: 0.0,
            recall: 0.0,
            f1: 0.0,
            auc: Some(auc),
        }
    }

    #[test]
    fn original_weighting_reproduces_the_reported_split() {
        // RF best, GB normalised at 0.997, LR worst: the original's 49.02 / 48.54 / 2.44 %.
        let v = BTreeMap::from([
            (Member::RandomForest, metrics(0.7000, 0.75)),
            (
                Member::GradientBoosting,
                metrics(0.7000 - 0.003 * 0.0560, 0.75),
            ),
            (Member::LogisticRegression, metrics(0.6440, 0.68)),
        ]);
        let w = Weighting::ExpAccuracy.weights(&v);
        assert!((w[&Member::RandomForest] - 0.4902).abs() < 5e-4, "{w:?}");
        assert!(
            (w[&Member::GradientBoosting] - 0.4854).abs() < 5e-4,
            "{w:?}"
        );
        assert!(
            (w[&Member::LogisticRegression] - 0.0244).abs() < 5e-4,
            "{w:?}"
        );
    }

    #[test]
    fn equal_scores_give_equal_weights_and_auc_is_proportional() {
        let v = BTreeMap::from([
            (Member::RandomForest, metrics(0.7, 0.8)),
            (Member::LogisticRegression, metrics(0.7, 0.6)),
        ]);
        let w = Weighting::ExpAccuracy.weights(&v);
        assert_eq!(w[&Member::RandomForest], 0.5);
        let w = Weighting::Auc.weights(&v);
        assert!((w[&Member::RandomForest] - 0.8 / 1.4).abs() < 1e-12);
        let one = BTreeMap::from([(Member::GradientBoosting, metrics(0.6, 0.7))]);
        assert_eq!(
            Weighting::ExpAccuracy.weights(&one)[&Member::GradientBoosting],
            1.0
        );
    }

    #[test]
    fn member_and_weighting_names_round_trip() {
        for w in Weighting::ALL {
            assert_eq!(Weighting::from_name(w.name()), Some(w));
        }
        for m in Member::ALL {
            assert_eq!(Member::from_name(m.name()), Some(m));
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.name())
            );
        }
    }

    /// Ends the fit at its `stop_at`-th safe point; keeps the round lines' round numbers.
    struct StopAt {
        calls: u32,
        stop_at: u32,
        rounds: Vec<u32>,
    }

    impl Progress for StopAt {
        fn go_on(&mut self) -> Result<bool> {
            self.calls += 1;
            Ok(self.calls < self.stop_at)
        }
        fn boosting_round(&mut self, line: &str) {
            assert!(line.contains("\ttrain-logloss:") && line.contains("\tvalidation-logloss:"));
            let round = line[1..line.find(']').unwrap()].parse().unwrap();
            self.rounds.push(round);
        }
    }

    use crate::datagen::fire_dataset;

    #[test]
    fn a_fit_ended_early_keeps_what_it_fitted_and_nothing_fitted_is_an_error() {
        let (train, validation) = (fire_dataset(1, 2_000), fire_dataset(2, 500));
        let mut params = EnsembleParams {
            nthread: 1,
            ..EnsembleParams::default()
        };
        params.forest.num_trees = 60;
        params.boosting.num_round = 20;
        let fit = |stop_at| {
            let mut progress = StopAt {
                calls: 0,
                stop_at,
                rounds: Vec::new(),
            };
            let fit = params.fit(
                train.clone(),
                &validation,
                &mut progress,
                &World::single(),
                FitState::default(),
            );
            fit.map(|f| (f, progress.rounds))
        };
        // Safe points: each member's start (3), each forest part's (3), each boosting round.
        assert!(matches!(fit(1), Err(crate::error::Error::Stopped(_))));
        let (forest_cut, _) = fit(4).unwrap();
        assert_eq!(
            forest_cut.partial.as_deref(),
            Some("random_forest 25 of 60 trees, gradient_boosting not fitted")
        );
        assert_eq!(forest_cut.ensemble.members.len(), 2);
        // Round lines every `eval_interval` rounds and for the last round fitted.
        let (rounds_cut, lines) = fit(10).unwrap();
        assert_eq!(
            rounds_cut.partial.as_deref(),
            Some("gradient_boosting 4 of 20 rounds")
        );
        assert_eq!(lines, [0, 3]);
        assert_eq!(rounds_cut.ensemble.weights.len(), 3);
        let (whole, lines) = fit(u32::MAX).unwrap();
        assert!(whole.partial.is_none());
        assert_eq!(lines, [0, 10, 19]);
    }
}

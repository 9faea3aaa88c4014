//! Generic tabular candidates (`model_kind=tabular`): XGBoost gradient boosting, an XGBoost random
//! forest, a linear model (least squares, or logistic regression one-vs-rest), and k-nearest
//! neighbours; each fits regression, binary or multi-class tasks and predicts one matrix:
//! the value (regression), the probability of class 1 (binary) or every class's probability.
//!
//! Missing values (NaN): the tree models route them as XGBoost learned; the linear model and k-NN
//! replace them with the training mean of the feature (kept in the model), or with 0 when the
//! data came as libsvm, where an absent index means zero. Instance weights are
//! used by both tree models and least squares; logistic regression and k-NN ignore them.

use super::boosted::{self, BoostParams, BoostState, FitData, Objective, RoundHooks};
use super::ensemble::ForestParams;
use super::logistic::{LogisticModel, LogisticParams};
use super::trees::TreeModel;
use super::xgboost::{self, XgbParams};
use crate::collective::World;
use crate::error::{Error, Result};
use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// What is predicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// A value (`reg:squarederror`).
    Regression,
    /// Probability of class 1 (`binary:logistic`).
    Binary,
    /// Probabilities of `num_class` classes (`multi:softprob`).
    MultiClass {
        /// Number of classes.
        num_class: u32,
    },
}

impl Task {
    /// The XGBoost objective of the task.
    pub fn objective(self) -> Objective {
        match self {
            Task::Regression => Objective::SquaredError,
            Task::Binary => Objective::BinaryLogistic,
            Task::MultiClass { num_class } => Objective::MultiClass { num_class },
        }
    }

    /// Columns of a prediction.
    pub fn outputs(self) -> usize {
        match self {
            Task::MultiClass { num_class } => num_class as usize,
            _ => 1,
        }
    }

    /// Checks labels: 0/1 for binary, class indices for multi-class.
    pub fn check_labels(self, labels: &[f32]) -> std::result::Result<(), String> {
        let bad = |y: &f32| match self {
            Task::Regression => false,
            Task::Binary => *y != 0.0 && *y != 1.0,
            Task::MultiClass { num_class } => {
                y.fract() != 0.0 || *y < 0.0 || *y >= num_class as f32
            }
        };
        match labels.iter().position(bad) {
            None => Ok(()),
            Some(i) => Err(match self {
                Task::Binary => format!(
                    "row {}: label {} is not 0 or 1 (binary:logistic)",
                    i + 1,
                    labels[i]
                ),
                _ => format!(
                    "row {}: label {} is not a class index below num_class",
                    i + 1,
                    labels[i]
                ),
            }),
        }
    }
}

/// The candidate model families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Candidate {
    /// XGBoost gradient boosting.
    Xgboost,
    /// XGBoost in random-forest mode.
    RandomForest,
    /// Least squares (regression) or logistic regression.
    Linear,
    /// k-nearest neighbours on standardised features.
    Knn,
}

impl Candidate {
    /// Every candidate, in comparison order.
    pub const ALL: [Candidate; 4] = [Self::Xgboost, Self::RandomForest, Self::Linear, Self::Knn];
    /// Hyperparameter names, in the order of [`Candidate::ALL`].
    pub const NAMES: [&'static str; 4] = ["xgboost", "random_forest", "linear", "knn"];

    /// The candidate's name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The candidate named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Self::ALL[i])
    }
}

/// Settings of every candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TabularParams {
    /// Gradient boosting (also `max_bin`, `seed`, `nthread` for the forest).
    pub boost: BoostParams,
    /// Random forest (`colsample_bynode` unset: sqrt of the feature count for classification, a
    /// third for regression).
    pub forest: ForestParams,
    /// Logistic regression's inverse L2 strength (scikit-learn's `C`).
    pub linear_c: f64,
    /// Least squares' L2 strength on standardised coefficients.
    pub linear_lambda: f64,
    /// Neighbours.
    pub knn_k: u32,
    /// Training rows k-NN keeps (a seeded sample when there are more).
    pub knn_sample_size: u32,
}

impl Default for TabularParams {
    /// XGBoost's own defaults, as the built-in algorithm has them (`num_round` is required
    /// there; 100 here), a 100-tree forest, C = 1, 5 neighbours among up to 10,000 rows.
    fn default() -> Self {
        Self {
            boost: BoostParams {
                num_round: 100,
                eta: 0.3,
                max_depth: 6,
                subsample: 1.0,
                colsample_bytree: 1.0,
                early_stopping_rounds: None,
                ..BoostParams::default()
            },
            forest: ForestParams {
                num_trees: 100,
                ..ForestParams::default()
            },
            linear_c: 1.0,
            linear_lambda: 1e-6,
            knn_k: 5,
            knn_sample_size: 10_000,
        }
    }
}

/// A fitted candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabularModel {
    /// What it predicts.
    pub task: Task,
    /// Which family it is.
    pub candidate: Candidate,
    /// Input width.
    pub n_features: usize,
    predictor: Predictor,
}

/// The fitted model. New variants go at the end: files name a variant by its position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Predictor {
    /// Compiled trees (models written before the trees were kept in XGBoost's format).
    Trees(TreeModel),
    LeastSquares(LeastSquares),
    Logistic(Logistic),
    Knn(Knn),
    /// Trees in XGBoost's own format, categorical splits and node covers included.
    XgboostTrees(XgbTrees),
    /// A model of the one-hot encoded features.
    OneHot(OneHot, Encoded),
}

/// The models that take numbers only: of the features as they are, or one-hot encoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Encoded {
    LeastSquares(LeastSquares),
    Logistic(Logistic),
    Knn(Knn),
}

impl Encoded {
    fn fit(candidate: Candidate, task: Task, p: &TabularParams, rows: &TrainRows) -> Result<Self> {
        Ok(match (candidate, task) {
            (Candidate::Knn, _) => Self::Knn(Knn::fit(
                rows,
                task,
                p.knn_k,
                p.knn_sample_size,
                p.boost.seed,
            )),
            (_, Task::Regression) => Self::LeastSquares(LeastSquares::fit(rows, p.linear_lambda)?),
            _ => Self::Logistic(Logistic::fit(rows, task, p.linear_c)?),
        })
    }

    fn predict(&self, task: Task, x: ArrayView2<f32>) -> Array2<f32> {
        match self {
            Self::LeastSquares(m) => m.predict_outputs(x),
            Self::Logistic(m) => m.predict(x),
            Self::Knn(k) => k.predict(x, task),
        }
    }

    fn memory_bytes(&self, n_features: usize) -> usize {
        match self {
            Self::Knn(k) => k.memory_bytes(n_features),
            Self::LeastSquares(_) => LeastSquares::memory_bytes(n_features),
            Self::Logistic(m) => m.memory_bytes(n_features),
        }
    }

    fn check(&self, task: Task, n: usize) -> std::result::Result<(), String> {
        match self {
            Self::LeastSquares(l) => l.check(n),
            Self::Logistic(m) => m.check(task, n),
            Self::Knn(k) => k.check(task, n),
        }
    }

    fn into_predictor(self) -> Predictor {
        match self {
            Self::LeastSquares(m) => Predictor::LeastSquares(m),
            Self::Logistic(m) => Predictor::Logistic(m),
            Self::Knn(k) => Predictor::Knn(k),
        }
    }
}

/// `Ok` when a vector of the model has `len` values for `n` features.
fn width_is(n: usize, what: &str, len: usize) -> std::result::Result<(), String> {
    if len == n {
        Ok(())
    } else {
        Err(format!("{what} has {len} values for {n} features"))
    }
}

/// Logistic regression: one model (binary) or one per class (one-vs-rest), with the imputation
/// means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Logistic {
    imputer: Imputer,
    models: Vec<LogisticModel>,
}

impl Logistic {
    /// Its coefficients and imputation means, counted as 32 bytes per feature and model.
    fn memory_bytes(&self, n_features: usize) -> usize {
        32 * n_features * (self.models.len() + 1)
    }

    fn fit(rows: &TrainRows, task: Task, c: f64) -> Result<Self> {
        let imputer = Imputer::fit(rows.x, rows.absent_is_zero);
        let x = imputer.apply(rows.x);
        let params = LogisticParams {
            c,
            max_iterations: 1000,
        };
        // One host: training leaves this candidate out on several.
        let one = World::single();
        let models = match task {
            Task::MultiClass { num_class } => (0..num_class)
                .map(|c| params.fit(x.view(), &rows.y.mapv(|y| f32::from(y == c as f32)), &one))
                .collect::<Result<Vec<_>>>()?,
            _ => vec![params.fit(x.view(), rows.y, &one)?],
        };
        Ok(Self { imputer, models })
    }

    /// Per one-vs-rest model, the exact linear contributions to its log-odds (imputed values
    /// first), block after block.
    fn contributions(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let x = self.imputer.apply(x);
        let blocks: Vec<Array2<f32>> = self
            .models
            .iter()
            .map(|m| m.contributions(x.view()))
            .collect();
        let views: Vec<_> = blocks.iter().map(Array2::view).collect();
        ndarray::concatenate(Axis(1), &views).expect("blocks of equal rows")
    }

    fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let x = self.imputer.apply(x);
        let mut p = Array2::zeros((x.nrows(), self.models.len()));
        for (k, m) in self.models.iter().enumerate() {
            p.column_mut(k).assign(&Array1::from(m.predict(x.view())));
        }
        if self.models.len() > 1 {
            for mut row in p.rows_mut() {
                let sum: f32 = row.sum();
                if sum > 0.0 {
                    row.mapv_inplace(|v| v / sum);
                }
            }
        }
        p
    }

    fn check(&self, task: Task, n: usize) -> std::result::Result<(), String> {
        width_is(n, "the imputation means", self.imputer.means.len())?;
        if self.models.len() != task.outputs() {
            return Err(format!(
                "{} logistic models for {} outputs",
                self.models.len(),
                task.outputs()
            ));
        }
        for m in &self.models {
            width_is(n, "a logistic model's mean", m.mean.len())?;
            width_is(n, "a logistic model's scale", m.scale.len())?;
            width_is(n, "a logistic model's coefficients", m.coefficients.len())?;
        }
        Ok(())
    }
}

/// Trees written as the XGBoost UBJSON they were exported as (what categorical splits and node
/// covers need), compiled when read. A served model lets the file go
/// ([`TabularModel::keep_compiled_only`]); training keeps it, to write the model (a resumed job
/// writes candidates read back from its checkpoint).
#[derive(Debug, Clone, PartialEq)]
struct XgbTrees {
    /// The exported file; empty once let go.
    ubj: Vec<u8>,
    trees: TreeModel,
}

impl XgbTrees {
    fn new(ubj: Vec<u8>) -> Result<Self> {
        let trees = super::ubjson::from_json_or_ubjson::<super::trees::XgboostJson>(&ubj)
            .map_err(|e| Error::Artifact(format!("XGBoost model: {e}")))?
            .compile()?;
        Ok(Self { ubj, trees })
    }
}

impl Serialize for XgbTrees {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.ubj.is_empty() {
            return Err(serde::ser::Error::custom(
                "a served tree model keeps no XGBoost file to write again",
            ));
        }
        s.serialize_bytes(&self.ubj)
    }
}

impl<'de> Deserialize<'de> for XgbTrees {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let ubj: Vec<u8> = serde_bytes_vec(d)?;
        Self::new(ubj).map_err(serde::de::Error::custom)
    }
}

/// Reads what `serialize_bytes` wrote.
fn serde_bytes_vec<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<u8>, D::Error> {
    struct Bytes;
    impl<'de> serde::de::Visitor<'de> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(
            self,
            v: Vec<u8>,
        ) -> std::result::Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    // As a sequence, read a byte at a time: a length a file forges allocates nothing.
    d.deserialize_seq(Bytes)
}

/// Most columns the one-hot encoding of the categorical features may have for the linear model
/// and k-NN; past it they are left out of the comparison.
pub const MAX_ONE_HOT_WIDTH: usize = 1_000;

/// Most values the one-hot encoded train split may hold for the linear model and k-NN (800 MB
/// as float32; the linear fit keeps a float64 copy besides); past it they are left out.
pub const MAX_ONE_HOT_VALUES: usize = 200_000_000;

/// Columns of the one-hot encoding of features with `categories` categories each (0: numeric).
pub fn one_hot_width(categories: &[usize]) -> usize {
    categories.iter().map(|&c| c.max(1)).sum()
}

/// Categorical features one-hot encoded (for the linear model and k-NN): a column per category,
/// all zeros for a missing or unseen one; numeric features kept as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OneHot {
    /// Per input feature, its number of categories (0: numeric).
    categories: Vec<u32>,
}

impl OneHot {
    fn width(&self) -> usize {
        self.categories.iter().map(|&c| c.max(1) as usize).sum()
    }

    /// Contributions of the encoded columns (`outputs` blocks of `width() + 1`) summed back into
    /// the input features (blocks of `n + 1`), the bias kept last.
    fn fold(&self, phi: ArrayView2<f32>, outputs: usize) -> Array2<f32> {
        let (n, wide) = (self.categories.len(), self.width());
        let mut out = Array2::zeros((phi.nrows(), outputs * (n + 1)));
        for (from, mut to) in phi.rows().into_iter().zip(out.rows_mut()) {
            for g in 0..outputs {
                let (block, into) = (g * (wide + 1), g * (n + 1));
                let mut at = 0;
                for (k, &c) in self.categories.iter().enumerate() {
                    let span = c.max(1) as usize;
                    to[into + k] = (at..at + span).map(|j| from[block + j]).sum();
                    at += span;
                }
                to[into + n] = from[block + wide];
            }
        }
        out
    }

    /// `f` of the encoded rows of `x`, a chunk of rows at a time (so a request of many short
    /// rows never holds all of them encoded, up to 1,000 columns each), `columns` per row.
    fn in_chunks(
        &self,
        x: ArrayView2<f32>,
        columns: usize,
        f: impl Fn(ArrayView2<f32>) -> Array2<f32>,
    ) -> Array2<f32> {
        const ROWS: usize = 4096;
        let mut out = Array2::zeros((x.nrows(), columns));
        for start in (0..x.nrows()).step_by(ROWS) {
            let end = (start + ROWS).min(x.nrows());
            let wide = self.expand(x.slice(ndarray::s![start..end, ..]));
            out.slice_mut(ndarray::s![start..end, ..])
                .assign(&f(wide.view()));
        }
        out
    }

    fn expand(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = Array2::zeros((x.nrows(), self.width()));
        for (row, mut wide) in x.rows().into_iter().zip(out.rows_mut()) {
            let mut at = 0;
            for (&v, &c) in row.iter().zip(&self.categories) {
                if c == 0 {
                    wide[at] = v;
                } else if v >= 0.0 && v < c as f32 {
                    wide[at + v as usize] = 1.0;
                }
                at += c.max(1) as usize;
            }
        }
        out
    }
}

/// The rows a candidate is fitted on.
pub struct TrainRows<'a> {
    /// Training features (NaN = missing).
    pub x: ArrayView2<'a, f32>,
    /// Training labels.
    pub y: &'a Array1<f32>,
    /// Instance weights.
    pub weights: Option<&'a Array1<f32>>,
    /// Validation rows for XGBoost's per-round log and early stopping.
    pub validation: Option<(ArrayView2<'a, f32>, &'a Array1<f32>)>,
    /// Whether a missing value means zero (libsvm) rather than unknown.
    pub absent_is_zero: bool,
    /// Per feature, its number of categories (0: numeric); empty when all are numeric.
    pub categories: &'a [usize],
}

/// Fits `candidate`; the XGBoost candidate's rounds go through `hooks` (round lines, SIGTERM,
/// checkpoints) and start from `resume` when given.
pub fn fit(
    candidate: Candidate,
    task: Task,
    p: &TabularParams,
    rows: &TrainRows,
    hooks: &mut dyn RoundHooks,
    resume: Option<BoostState>,
) -> Result<TabularModel> {
    Ok(TabularModel {
        task,
        candidate,
        n_features: rows.x.ncols(),
        predictor: fit_predictor(candidate, task, p, rows, hooks, resume)?,
    })
}

fn fit_predictor(
    candidate: Candidate,
    task: Task,
    p: &TabularParams,
    rows: &TrainRows,
    hooks: &mut dyn RoundHooks,
    resume: Option<BoostState>,
) -> Result<Predictor> {
    let categorical = rows.categories.iter().any(|&c| c > 0);
    Ok(match candidate {
        Candidate::Xgboost => {
            let fitted = boosted::fit(
                &p.boost,
                task.objective(),
                FitData {
                    train: rows.x,
                    train_labels: rows.y,
                    train_weights: rows.weights,
                    validation: rows.validation,
                    categories: rows.categories,
                },
                hooks,
                resume,
            )?;
            Predictor::XgboostTrees(XgbTrees::new(fitted.ubj)?)
        }
        Candidate::RandomForest => {
            Predictor::XgboostTrees(XgbTrees::new(fit_forest(task, p, rows)?)?)
        }
        Candidate::Linear | Candidate::Knn if categorical => {
            let one_hot = OneHot {
                categories: rows.categories.iter().map(|&c| c as u32).collect(),
            };
            let x = one_hot.expand(rows.x);
            let validation = rows.validation.map(|(vx, vy)| (one_hot.expand(vx), vy));
            let expanded = TrainRows {
                x: x.view(),
                validation: validation.as_ref().map(|(vx, vy)| (vx.view(), *vy)),
                categories: &[],
                ..*rows
            };
            Predictor::OneHot(one_hot, Encoded::fit(candidate, task, p, &expanded)?)
        }
        Candidate::Linear | Candidate::Knn => {
            Encoded::fit(candidate, task, p, rows)?.into_predictor()
        }
    })
}

/// The forest as XGBoost UBJSON.
fn fit_forest(task: Task, p: &TabularParams, rows: &TrainRows) -> Result<Vec<u8>> {
    let n = rows.x.ncols() as f64;
    let default_share = match task {
        Task::Regression => (1.0 / 3.0f64).max(1.0 / n),
        _ => n.sqrt() / n,
    };
    let base = XgbParams::default()
        .set("objective", task.objective().name())
        .set("tree_method", "hist")
        .set("max_bin", p.boost.max_bin)
        .set("seed", p.boost.seed)
        .set("nthread", p.boost.nthread);
    let mut params = p.forest.xgb_params(base, p.forest.num_trees, default_share);
    if let Task::MultiClass { num_class } = task {
        params = params.set("num_class", num_class);
    }
    let mut dtrain = xgboost::dmatrix(rows.x, Some(rows.y))?;
    xgboost::mark_categorical(&mut dtrain, rows.categories)?;
    if let Some(w) = rows.weights {
        dtrain.set_weights(w.as_slice().expect("contiguous weights"))?;
    }
    let booster = xgboost::fit_one_round(&params, &dtrain)?;
    Ok(booster.save_buffer(true)?)
}

impl TabularModel {
    /// Predictions: one row per input row, [`Task::outputs`] columns.
    pub fn predict(&self, x: ArrayView2<f32>) -> Array2<f32> {
        self.predictor.predict(self.task, x)
    }

    /// Bytes the model holds: its trees (and their file), or k-NN's rows; the linear models'
    /// few coefficients are counted as 32 bytes per feature.
    pub fn memory_bytes(&self) -> usize {
        self.predictor.memory_bytes(self.n_features)
    }

    /// Lets a tree candidate's XGBoost file go, keeping the compiled trees that predict and
    /// explain: the file is 3.2-3.5 times their size (what a multi-model endpoint counts). The
    /// model can no longer be written ([`TabularModel::to_bytes`] says so).
    pub fn keep_compiled_only(&mut self) {
        if let Predictor::XgboostTrees(t) = &mut self.predictor {
            t.ubj = Vec::new();
        }
    }

    /// Encodes the model with bincode.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| Error::Artifact(format!("encoding the tabular model: {e}")))
    }

    /// Decodes a model written by [`TabularModel::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map(|(m, _)| m)
            .map_err(|e| Error::Artifact(format!("the tabular model is corrupt: {e}")))
    }

    /// Checks a decoded model before it predicts anything: every vector has the model's width,
    /// trees are well-formed, k-NN keeps whole rows, and class labels are in range.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        self.predictor.check(self.task, self.n_features)
    }

    /// Contribution values per row ([`TabularModel::contributions`]), or why there are none.
    pub fn contributions_per_row(&self) -> std::result::Result<usize, String> {
        let explained = match &self.predictor {
            Predictor::XgboostTrees(t) => t.trees.can_explain(),
            Predictor::LeastSquares(_)
            | Predictor::Logistic(_)
            | Predictor::OneHot(_, Encoded::LeastSquares(_) | Encoded::Logistic(_)) => Ok(()),
            Predictor::Knn(_) | Predictor::OneHot(_, Encoded::Knn(_)) => {
                Err("k-NN's predictions have no additive explanation".into())
            }
            Predictor::Trees(_) => Err(
                "the trees of a model written before format version 2 keep no node covers; train it again to explain it"
                    .into(),
            ),
        };
        explained.map(|()| self.task.outputs() * (self.n_features + 1))
    }

    /// Per row and output (the value, class 1, or each class), each feature's contribution and
    /// the bias, `n_features + 1` values summing to the output's margin: TreeSHAP for the trees
    /// (log-odds for classification), the exact linear form for least squares (the value) and
    /// logistic regression (each one-vs-rest model's log-odds, before the probabilities are
    /// normalised); a one-hot encoded feature's columns are summed back into it.
    pub fn contributions(&self, x: ArrayView2<f32>) -> std::result::Result<Array2<f32>, String> {
        self.contributions_per_row()?;
        Ok(match &self.predictor {
            Predictor::XgboostTrees(t) => t.trees.contributions(x)?,
            Predictor::LeastSquares(m) => m.contributions(x),
            Predictor::Logistic(m) => m.contributions(x),
            Predictor::OneHot(one_hot, m) => {
                one_hot.in_chunks(x, self.task.outputs() * (self.n_features + 1), |wide| {
                    let phi = match m {
                        Encoded::LeastSquares(m) => m.contributions(wide),
                        Encoded::Logistic(m) => m.contributions(wide),
                        Encoded::Knn(_) => unreachable!("refused above"),
                    };
                    one_hot.fold(phi.view(), self.task.outputs())
                })
            }
            Predictor::Knn(_) | Predictor::Trees(_) => unreachable!("refused above"),
        })
    }
}

impl Predictor {
    fn predict(&self, task: Task, x: ArrayView2<f32>) -> Array2<f32> {
        match self {
            Predictor::Trees(t) => t.predict(x),
            Predictor::XgboostTrees(t) => t.trees.predict(x),
            Predictor::OneHot(one_hot, m) => {
                one_hot.in_chunks(x, task.outputs(), |wide| m.predict(task, wide))
            }
            Predictor::LeastSquares(m) => m.predict_outputs(x),
            Predictor::Logistic(m) => m.predict(x),
            Predictor::Knn(k) => k.predict(x, task),
        }
    }

    fn memory_bytes(&self, n_features: usize) -> usize {
        match self {
            Predictor::Trees(t) => t.memory_bytes(),
            Predictor::XgboostTrees(t) => t.trees.memory_bytes() + t.ubj.len(),
            Predictor::OneHot(one_hot, m) => {
                4 * one_hot.categories.len() + m.memory_bytes(one_hot.width())
            }
            Predictor::Knn(k) => k.memory_bytes(n_features),
            Predictor::LeastSquares(_) => LeastSquares::memory_bytes(n_features),
            Predictor::Logistic(m) => m.memory_bytes(n_features),
        }
    }

    fn check(&self, task: Task, n: usize) -> std::result::Result<(), String> {
        let trees = |t: &TreeModel| {
            t.check(n)?;
            if t.n_groups() != task.outputs() {
                return Err("the trees give another number of outputs than the task".into());
            }
            Ok(())
        };
        match self {
            Predictor::Trees(t) => trees(t),
            Predictor::XgboostTrees(t) => trees(&t.trees),
            Predictor::OneHot(one_hot, m) => {
                width_is(n, "the one-hot encoding", one_hot.categories.len())?;
                if one_hot.width() > MAX_ONE_HOT_WIDTH {
                    return Err("the one-hot encoding is wider than this build takes".into());
                }
                m.check(task, one_hot.width())
            }
            Predictor::LeastSquares(l) => l.check(n),
            Predictor::Logistic(m) => m.check(task, n),
            Predictor::Knn(k) => k.check(task, n),
        }
    }
}

/// Per-feature training means, standing in for missing values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Imputer {
    means: Vec<f32>,
}

impl Imputer {
    fn fit(x: ArrayView2<f32>, absent_is_zero: bool) -> Self {
        if absent_is_zero {
            return Self {
                means: vec![0.0; x.ncols()],
            };
        }
        let means = x
            .columns()
            .into_iter()
            .map(|c| {
                let (sum, n) = c
                    .iter()
                    .filter(|v| !v.is_nan())
                    .fold((0.0f64, 0usize), |(s, n), &v| (s + f64::from(v), n + 1));
                if n == 0 {
                    0.0
                } else {
                    (sum / n as f64) as f32
                }
            })
            .collect();
        Self { means }
    }

    fn apply(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut out = x.to_owned();
        for mut row in out.rows_mut() {
            for (v, m) in row.iter_mut().zip(&self.means) {
                if v.is_nan() {
                    *v = *m;
                }
            }
        }
        out
    }
}

/// Standardisation (mean and scale of the imputed training rows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Standardizer {
    imputer: Imputer,
    mean: Vec<f64>,
    scale: Vec<f64>,
}

impl Standardizer {
    fn check(&self, n: usize) -> std::result::Result<(), String> {
        if self.imputer.means.len() != n || self.mean.len() != n || self.scale.len() != n {
            return Err(format!("the standardisation is not for {n} features"));
        }
        Ok(())
    }

    fn fit(x: ArrayView2<f32>, absent_is_zero: bool) -> Self {
        let imputer = Imputer::fit(x, absent_is_zero);
        let z = imputer.apply(x).mapv(f64::from);
        let mean = z.mean_axis(Axis(0)).map(|m| m.to_vec()).unwrap_or_default();
        let scale = z
            .std_axis(Axis(0), 0.0)
            .iter()
            .map(|&s| if s > 0.0 { s } else { 1.0 })
            .collect();
        Self {
            imputer,
            mean,
            scale,
        }
    }

    fn row(&self, row: ndarray::ArrayView1<f32>, out: &mut Vec<f64>) {
        out.clear();
        for (k, &v) in row.iter().enumerate() {
            let v = if v.is_nan() { self.imputer.means[k] } else { v };
            out.push((f64::from(v) - self.mean[k]) / self.scale[k]);
        }
    }
}

/// Least squares on standardised features, weighted, with an optional L2 penalty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LeastSquares {
    standardizer: Standardizer,
    coefficients: Vec<f64>,
    intercept: f64,
}

impl LeastSquares {
    /// Its few coefficients, counted as 32 bytes per feature.
    fn memory_bytes(n_features: usize) -> usize {
        32 * n_features
    }

    /// Predictions as a one-column matrix (the tabular output shape).
    fn predict_outputs(&self, x: ArrayView2<f32>) -> Array2<f32> {
        self.predict(x).insert_axis(Axis(1))
    }

    fn check(&self, n: usize) -> std::result::Result<(), String> {
        self.standardizer.check(n)?;
        width_is(n, "the coefficients", self.coefficients.len())
    }

    fn fit(rows: &TrainRows, lambda: f64) -> Result<Self> {
        let standardizer = Standardizer::fit(rows.x, rows.absent_is_zero);
        let d = rows.x.ncols() + 1;
        // Normal equations over [z, 1]: (Z'WZ + lambda I) b = Z'Wy, intercept not penalised.
        let mut a = vec![0.0f64; d * d];
        let mut b = vec![0.0f64; d];
        let mut z = Vec::with_capacity(d);
        for (i, row) in rows.x.rows().into_iter().enumerate() {
            standardizer.row(row, &mut z);
            z.push(1.0);
            let w = rows.weights.map_or(1.0, |w| f64::from(w[i]));
            let y = f64::from(rows.y[i]);
            for r in 0..d {
                b[r] += w * z[r] * y;
                for c in 0..d {
                    a[r * d + c] += w * z[r] * z[c];
                }
            }
        }
        for r in 0..d - 1 {
            a[r * d + r] += lambda;
        }
        let solution = solve(&mut a, &mut b, d).ok_or_else(|| {
            Error::Fit(
                "least squares: the features are linearly dependent; set linear_lambda > 0".into(),
            )
        })?;
        Ok(Self {
            standardizer,
            intercept: solution[d - 1],
            coefficients: solution[..d - 1].to_vec(),
        })
    }

    /// Each feature's contribution `coefficient * z` (z the standardised, imputed value) and the
    /// bias (the intercept: the value at the training mean); they sum to the prediction.
    fn contributions(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let n = self.coefficients.len();
        let mut out = Array2::zeros((x.nrows(), n + 1));
        let mut z = Vec::new();
        for (row, mut phi) in x.rows().into_iter().zip(out.rows_mut()) {
            self.standardizer.row(row, &mut z);
            for k in 0..n {
                phi[k] = (z[k] * self.coefficients[k]) as f32;
            }
            phi[n] = self.intercept as f32;
        }
        out
    }

    fn predict(&self, x: ArrayView2<f32>) -> Array1<f32> {
        let mut z = Vec::new();
        x.rows()
            .into_iter()
            .map(|row| {
                self.standardizer.row(row, &mut z);
                (z.iter()
                    .zip(&self.coefficients)
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                    + self.intercept) as f32
            })
            .collect()
    }
}

/// Solves `a x = b` (`d` x `d`, row-major) by Gaussian elimination with partial pivoting.
fn solve(a: &mut [f64], b: &mut [f64], d: usize) -> Option<Vec<f64>> {
    for col in 0..d {
        let pivot =
            (col..d).max_by(|&i, &j| a[i * d + col].abs().total_cmp(&a[j * d + col].abs()))?;
        if a[pivot * d + col].abs() < 1e-12 {
            return None;
        }
        for k in 0..d {
            a.swap(col * d + k, pivot * d + k);
        }
        b.swap(col, pivot);
        for r in col + 1..d {
            let f = a[r * d + col] / a[col * d + col];
            for k in col..d {
                a[r * d + k] -= f * a[col * d + k];
            }
            b[r] -= f * b[col];
        }
    }
    let mut x = vec![0.0; d];
    for r in (0..d).rev() {
        let s: f64 = (r + 1..d).map(|k| a[r * d + k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r * d + r];
    }
    Some(x)
}

/// k-nearest neighbours (Euclidean, standardised features, uniform weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Knn {
    standardizer: Standardizer,
    k: usize,
    /// Kept training rows, standardised, row-major.
    rows: Vec<f32>,
    labels: Vec<f32>,
}

impl Knn {
    fn memory_bytes(&self, n_features: usize) -> usize {
        4 * (self.rows.len() + self.labels.len()) + 32 * n_features
    }

    fn check(&self, task: Task, n: usize) -> std::result::Result<(), String> {
        self.standardizer.check(n)?;
        let classes = task.outputs();
        let bad_label = matches!(task, Task::MultiClass { .. })
            && self
                .labels
                .iter()
                .any(|&l| !(l >= 0.0 && (l as usize) < classes));
        if self.labels.is_empty()
            || self.rows.len() != self.labels.len() * n
            || self.k == 0
            || self.k > self.labels.len()
            || bad_label
        {
            return Err("the k-NN rows, labels or k do not fit together".into());
        }
        Ok(())
    }

    fn fit(rows: &TrainRows, _task: Task, k: u32, sample_size: u32, seed: u64) -> Self {
        let standardizer = Standardizer::fit(rows.x, rows.absent_is_zero);
        let mut keep: Vec<usize> = (0..rows.x.nrows()).collect();
        if keep.len() > sample_size as usize {
            use rand::seq::SliceRandom;
            keep.shuffle(&mut crate::datagen::rng(seed));
            keep.truncate(sample_size as usize);
            keep.sort_unstable();
        }
        let mut z = Vec::new();
        let mut kept = Vec::with_capacity(keep.len() * rows.x.ncols());
        for &i in &keep {
            standardizer.row(rows.x.row(i), &mut z);
            kept.extend(z.iter().map(|&v| v as f32));
        }
        Self {
            standardizer,
            k: (k as usize).min(keep.len()).max(1),
            rows: kept,
            labels: keep.iter().map(|&i| rows.y[i]).collect(),
        }
    }

    fn predict(&self, x: ArrayView2<f32>, task: Task) -> Array2<f32> {
        let d = x.ncols();
        let mut out = Array2::zeros((x.nrows(), task.outputs()));
        let mut z = Vec::new();
        let mut dist: Vec<(f32, usize)> = Vec::with_capacity(self.labels.len());
        for (i, row) in x.rows().into_iter().enumerate() {
            self.standardizer.row(row, &mut z);
            dist.clear();
            for (j, t) in self.rows.chunks_exact(d).enumerate() {
                let s: f32 = t.iter().zip(&z).map(|(a, &b)| (a - b as f32).powi(2)).sum();
                dist.push((s, j));
            }
            let k = self.k;
            dist.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let near = &dist[..k];
            match task {
                Task::MultiClass { .. } => {
                    for &(_, j) in near {
                        out[[i, self.labels[j] as usize]] += 1.0 / k as f32;
                    }
                }
                _ => {
                    out[[i, 0]] = near.iter().map(|&(_, j)| self.labels[j]).sum::<f32>() / k as f32
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn params() -> TabularParams {
        TabularParams {
            boost: BoostParams {
                num_round: 30,
                early_stopping_rounds: None,
                nthread: 1,
                ..BoostParams::default()
            },
            forest: ForestParams {
                num_trees: 20,
                max_depth: 6,
                ..ForestParams::default()
            },
            linear_c: 1.0,
            linear_lambda: 0.0,
            knn_k: 5,
            knn_sample_size: 10_000,
        }
    }

    /// y = 2 x0 - x1 + noise, with a few values missing.
    fn regression(rows: usize, seed: u64) -> (Array2<f32>, Array1<f32>) {
        let mut rng = crate::datagen::rng(seed);
        let mut x = Array2::from_shape_fn((rows, 3), |_| rng.random::<f32>() * 10.0);
        let y = x.column(0).mapv(|v| 2.0 * v) - x.column(1)
            + Array1::from_shape_fn(rows, |_| rng.random::<f32>() * 0.1);
        x[[3, 2]] = f32::NAN;
        (x, y)
    }

    /// Fits `candidate` with the test settings, no weights.
    fn fit_rows<'a>(
        candidate: Candidate,
        task: Task,
        x: ArrayView2<'a, f32>,
        y: &'a Array1<f32>,
        validation: Option<(ArrayView2<'a, f32>, &'a Array1<f32>)>,
        categories: &'a [usize],
    ) -> TabularModel {
        let rows = TrainRows {
            x,
            y,
            weights: None,
            validation,
            absent_is_zero: false,
            categories,
        };
        let mut go_on = |_: &crate::models::xgboost::RoundLog| Ok(true);
        fit(candidate, task, &params(), &rows, &mut go_on, None).unwrap()
    }

    #[test]
    fn a_categorical_feature_is_learned_by_every_candidate() {
        // y = effect of the category of x0 (codes 0..4) + x1; x0 missing now and then.
        let effect = [0.0f32, 10.0, -5.0, 3.0];
        let data = |rows: usize, seed: u64| {
            let mut rng = crate::datagen::rng(seed);
            let x = Array2::from_shape_fn((rows, 2), |(i, j)| match j {
                0 if i % 50 == 7 => f32::NAN,
                0 => rng.random_range(0..4) as f32,
                _ => rng.random::<f32>() * 4.0,
            });
            let y = x
                .rows()
                .into_iter()
                .map(|r| if r[0].is_nan() { 2.0 } else { effect[r[0] as usize] } + r[1])
                .collect::<Array1<f32>>();
            (x, y)
        };
        let (x, y) = data(800, 5);
        let (vx, vy) = data(200, 6);
        for candidate in Candidate::ALL {
            let m = fit_rows(
                candidate,
                Task::Regression,
                x.view(),
                &y,
                Some((vx.view(), &vy)),
                &[4, 0],
            );
            let p = m.predict(vx.view());
            let known: Vec<usize> = (0..200).filter(|&i| !vx[[i, 0]].is_nan()).collect();
            let rmse = (known
                .iter()
                .map(|&i| (p[[i, 0]] - vy[i]).powi(2))
                .sum::<f32>()
                / known.len() as f32)
                .sqrt();
            // The categories' spread is about 5.5: each candidate tells them apart.
            assert!(rmse < 1.5, "{candidate:?}: rmse {rmse}");
            assert_eq!(TabularModel::from_bytes(&m.to_bytes().unwrap()).unwrap(), m);
            // A category training never saw is a missing value: an answer, never NaN.
            let unseen = ndarray::arr2(&[[crate::data::categories::UNSEEN, 1.0]]);
            assert!(
                m.predict(unseen.view())[[0, 0]].is_finite(),
                "{candidate:?}"
            );
        }
    }

    #[test]
    fn models_written_before_the_categorical_layout_still_read() {
        // The layout files had before (the logistic model as a two-field variant).
        #[derive(Serialize)]
        enum Before {
            _Trees(TreeModel),
            _LeastSquares(LeastSquares),
            Logistic(Imputer, Vec<LogisticModel>),
        }
        #[derive(Serialize)]
        struct BeforeModel {
            task: Task,
            candidate: Candidate,
            n_features: usize,
            predictor: Before,
        }
        let (x, y) = regression(300, 8);
        let binary = y.mapv(|v| f32::from(v > 5.0));
        let rows = TrainRows {
            x: x.view(),
            y: &binary,
            weights: None,
            validation: None,
            absent_is_zero: false,
            categories: &[],
        };
        let logistic = Logistic::fit(&rows, Task::Binary, 1.0).unwrap();
        let before = BeforeModel {
            task: Task::Binary,
            candidate: Candidate::Linear,
            n_features: 3,
            predictor: Before::Logistic(logistic.imputer.clone(), logistic.models.clone()),
        };
        let bytes = bincode::serde::encode_to_vec(&before, bincode::config::standard()).unwrap();
        let read = TabularModel::from_bytes(&bytes).unwrap();
        assert_eq!(read.predictor, Predictor::Logistic(logistic));
    }

    #[test]
    fn every_candidate_learns_a_linear_signal_and_round_trips() {
        let (x, y) = regression(600, 1);
        let (vx, vy) = regression(200, 2);
        for candidate in Candidate::ALL {
            let m = fit_rows(
                candidate,
                Task::Regression,
                x.view(),
                &y,
                Some((vx.view(), &vy)),
                &[],
            );
            let p = m.predict(vx.view());
            let rmse = (p
                .column(0)
                .iter()
                .zip(&vy)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f32>()
                / 200.0)
                .sqrt();
            // The spread of y is about 6.5; every family does far better than predicting the mean.
            assert!(rmse < 2.5, "{candidate:?}: rmse {rmse}");
            assert_eq!(TabularModel::from_bytes(&m.to_bytes().unwrap()).unwrap(), m);
        }
        // Least squares recovers the coefficients.
        let m = fit_rows(Candidate::Linear, Task::Regression, x.view(), &y, None, &[]);
        let p = m.predict(ndarray::arr2(&[[1.0f32, 1.0, 5.0]]).view());
        assert!((p[[0, 0]] - 1.05).abs() < 0.05, "{p:?}");
    }

    #[test]
    fn served_tree_models_keep_no_xgboost_file() {
        let (x, y) = regression(600, 1);
        for candidate in [Candidate::Xgboost, Candidate::RandomForest] {
            let fitted = fit_rows(candidate, Task::Regression, x.view(), &y, None, &[]);
            let file = match &fitted.predictor {
                Predictor::XgboostTrees(t) => t.ubj.len(),
                other => panic!("{candidate:?}: {other:?}"),
            };
            assert!(file > 0, "{candidate:?}");
            // Read back (as a resumed job reads its checkpoint's candidates), it writes the same.
            let bytes = fitted.to_bytes().unwrap();
            let mut served = TabularModel::from_bytes(&bytes).unwrap();
            assert_eq!(served.to_bytes().unwrap(), bytes, "{candidate:?}");
            served.keep_compiled_only();
            assert_eq!(
                served.memory_bytes() + file,
                fitted.memory_bytes(),
                "{candidate:?}"
            );
            assert_eq!(served.predict(x.view()), fitted.predict(x.view()));
            let again = served.to_bytes().unwrap_err().to_string();
            assert!(again.contains("keeps no XGBoost file"), "{again}");
        }
    }

    #[test]
    fn classification_candidates_give_probabilities() {
        let (x, y) = regression(600, 3);
        let classes = y.mapv(|v| {
            if v < 0.0 {
                0.0
            } else if v < 8.0 {
                1.0
            } else {
                2.0
            }
        });
        let binary = y.mapv(|v| f32::from(v > 5.0));
        for candidate in Candidate::ALL {
            for (task, labels) in [
                (Task::Binary, &binary),
                (Task::MultiClass { num_class: 3 }, &classes),
            ] {
                let m = fit_rows(candidate, task, x.view(), labels, None, &[]);
                let p = m.predict(x.view());
                assert_eq!(p.ncols(), task.outputs());
                assert!(
                    p.iter().all(|v| (0.0..=1.0001).contains(v)),
                    "{candidate:?}"
                );
                let right = (0..600)
                    .filter(|&i| match task {
                        Task::Binary => (p[[i, 0]] > 0.5) == (labels[i] == 1.0),
                        _ => {
                            let row = p.row(i);
                            let best = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
                            best as f32 == labels[i]
                        }
                    })
                    .count();
                assert!(right > 480, "{candidate:?} {task:?}: {right} of 600");
            }
        }
        assert!(Task::Binary
            .check_labels(&[0.0, 2.0])
            .unwrap_err()
            .contains("row 2: label 2 is not 0 or 1"));
        assert!(Task::MultiClass { num_class: 3 }
            .check_labels(&[0.0, 2.0, 1.0])
            .is_ok());
    }
}

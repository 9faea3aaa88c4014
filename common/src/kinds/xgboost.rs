//! XGBoost models trained elsewhere (`model_kind=xgboost`): a model directory with no manifest
//! of ours, holding XGBoost model files, as SageMaker's built-in XGBoost algorithm writes them
//! (`xgboost-model`). Every non-hidden regular file is one model, read by the XGBoost library
//! this image ships (JSON and UBJSON; the legacy binary format and pickles of XGBoost 1.x are
//! refused, naming the file) and compiled like our own trees. Several files form an ensemble:
//! the mean of their predictions, or a vote for `multi:softmax` and `binary:hinge`.
//!
//! Answers follow the built-in algorithm: by default each record's prediction (a value, or for
//! `multi:softprob` the class probabilities as `[p0, p1, ...]`), in CSV joined by commas on one
//! line (one line per record in batch mode); with `SAGEMAKER_INFERENCE_OUTPUT` the selected keys
//! (`predicted_label`, `labels`, `probability`, `probabilities`, `raw_score`, `raw_scores`,
//! `predicted_score`), each valid only for the objectives the built-in allows it for.

use super::added_keys::{explained_by_deadline, MAX_EXPLAINED_VALUES};
use super::{first_non_finite, Model, Predictions};
use crate::artifact::{Manifest, PayloadFile, PayloadFormat, MANIFEST};
use crate::data::number::push_f32;
use crate::data::Schema;
use crate::error::{Error, Result};
use crate::models::legacy;
use crate::models::trees::{Link, TreeModel, XgboostJson};
use ndarray::{Array2, ArrayView2};
use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

/// How models trained elsewhere are served (from the environment SageMaker sets).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// `SAGEMAKER_INFERENCE_ENSEMBLE=false`: only the first file (in name order) is served.
    pub first_only: bool,
    /// `SAGEMAKER_INFERENCE_OUTPUT`: the keys each answer holds, in order.
    pub output: Option<Vec<OutputKey>>,
}

/// A key the built-in algorithm's selectable output offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKey {
    /// The predicted class.
    PredictedLabel,
    /// Every class label.
    Labels,
    /// The probability of the predicted class (binary: of class 1).
    Probability,
    /// Every class's probability.
    Probabilities,
    /// The raw score of the predicted class (binary: the prediction).
    RawScore,
    /// Every class's raw score (binary: `[1 - v, v]`, as the built-in).
    RawScores,
    /// The regression prediction.
    PredictedScore,
    /// Each feature's contribution to the margin and the bias (exact TreeSHAP, as XGBoost's
    /// `pred_contribs`): the features in model order, the bias last; per class for `multi:*`.
    Contributions,
}

impl OutputKey {
    const ALL: [OutputKey; 8] = [
        OutputKey::PredictedLabel,
        OutputKey::Labels,
        OutputKey::Probability,
        OutputKey::Probabilities,
        OutputKey::RawScore,
        OutputKey::RawScores,
        OutputKey::PredictedScore,
        OutputKey::Contributions,
    ];

    /// The key's name.
    pub fn name(self) -> &'static str {
        [
            "predicted_label",
            "labels",
            "probability",
            "probabilities",
            "raw_score",
            "raw_scores",
            "predicted_score",
            "contributions",
        ][self as usize]
    }

    /// Parses a comma-separated list, as `SAGEMAKER_INFERENCE_OUTPUT` holds it (spaces and
    /// case ignored).
    pub fn parse_list(text: &str) -> std::result::Result<Vec<OutputKey>, String> {
        let keys: Vec<OutputKey> = text
            .split(',')
            .map(|k| k.trim().to_ascii_lowercase())
            .filter(|k| !k.is_empty())
            .map(|k| {
                Self::ALL
                    .into_iter()
                    .find(|o| o.name() == k)
                    .ok_or_else(|| {
                        format!(
                            "'{k}' is not an output key (use {})",
                            Self::ALL.map(OutputKey::name).join(", ")
                        )
                    })
            })
            .collect::<std::result::Result<_, _>>()?;
        if keys.is_empty() {
            return Err("no output key given".into());
        }
        Ok(keys)
    }
}

/// What an objective's predictions are, for answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A value (regression, count, survival time).
    Score,
    /// `binary:logistic`: the probability of class 1.
    Probability,
    /// `binary:logitraw`: a margin, class 1 when positive.
    Margin,
    /// `binary:hinge`, `multi:softmax`: a class.
    Class,
    /// `multi:softprob`: every class's probability.
    Probabilities,
}

impl Shape {
    fn of(link: Link, objective: &str) -> Self {
        match link {
            Link::Logistic if objective.starts_with("binary:") => Shape::Probability,
            Link::Identity if objective == "binary:logitraw" => Shape::Margin,
            Link::Hinge | Link::ArgMax => Shape::Class,
            Link::Softmax => Shape::Probabilities,
            _ => Shape::Score,
        }
    }

    /// Checks that every key applies to this objective.
    fn check(self, keys: &[OutputKey], objective: &str) -> std::result::Result<(), String> {
        match keys.iter().find(|k| !self.allows(**k)) {
            None => Ok(()),
            Some(bad) => {
                let allowed: Vec<_> = OutputKey::ALL
                    .into_iter()
                    .filter(|k| self.allows(*k))
                    .map(OutputKey::name)
                    .collect();
                Err(format!(
                    "'{}' does not apply to objective {objective} (it takes {})",
                    bad.name(),
                    allowed.join(", ")
                ))
            }
        }
    }

    /// The output keys the built-in algorithm allows for this objective.
    fn allows(self, key: OutputKey) -> bool {
        use OutputKey::*;
        if key == Contributions {
            return true;
        }
        match self {
            Shape::Score => key == PredictedScore,
            Shape::Probability | Shape::Probabilities => key != PredictedScore,
            Shape::Margin | Shape::Class => {
                matches!(key, PredictedLabel | Labels | RawScore | RawScores)
            }
        }
    }
}

/// The manifest of a directory of XGBoost model files: every regular file whose name does not
/// start with `.` (in name order), or only the first with `first_only`. Feature names are the
/// models' own when they were trained with names, else `f0`, `f1`, ...
pub fn scan(dir: &Path, options: &Options) -> Result<Manifest> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            let regular = std::fs::symlink_metadata(e.path()).ok()?.is_file();
            (regular && !name.starts_with('.') && name != MANIFEST).then_some(name)
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Artifact(format!(
            "no {MANIFEST}, model.tar.gz or XGBoost model file in {}",
            dir.display()
        )));
    }
    if options.first_only {
        files.truncate(1);
    }
    Ok(Manifest {
        payloads: files
            .into_iter()
            .map(|file| PayloadFile {
                name: file.clone(),
                file,
                format: PayloadFormat::XgboostModel,
                weight: None,
            })
            .collect(),
        ..Manifest::new(super::ModelKind::Xgboost, Vec::new())
    })
}

/// One or more XGBoost models of one objective, compiled.
pub struct XgboostModel {
    members: Arc<[TreeModel]>,
    objective: Arc<str>,
    shape: Shape,
    /// Classes, for classification objectives.
    num_class: usize,
    output: Option<Vec<OutputKey>>,
    schema: Schema,
}

impl XgboostModel {
    /// Loads every model file the (scanned) manifest lists and sets the manifest's feature names.
    pub fn load(dir: &Path, manifest: &mut Manifest, options: &Options) -> Result<Self> {
        let mut members = Vec::new();
        let mut first: Option<(String, usize, Vec<String>)> = None;
        for p in &manifest.payloads {
            let bytes = manifest.read_payload(dir, p)?;
            let cannot = |why: String| {
                Error::Artifact(format!(
                    "{} is not an XGBoost model this build reads (JSON, UBJSON, XGBoost 1.x binary, a pickled Booster): {why}",
                    p.file
                ))
            };
            let (trees, objective, num_class, names) = compile(&bytes).map_err(cannot)?;
            match &first {
                None => first = Some((objective, num_class, names)),
                Some((o, c, n)) if *o != objective || n.len() != names.len() || *c != num_class => {
                    return Err(Error::Artifact(format!(
                        "{} ({objective}, {} features, {num_class} classes) does not match the first model ({o}, {} features, {c} classes): an ensemble needs one objective, one input and one output",
                        p.file,
                        trees.n_features,
                        n.len()
                    )))
                }
                Some(_) => {}
            }
            members.push(trees);
        }
        let (objective, num_class, names) =
            first.ok_or_else(|| Error::Artifact("no XGBoost model file".into()))?;
        let shape = Shape::of(members[0].link, &objective);
        if let Some(keys) = &options.output {
            shape
                .check(keys, &objective)
                .and_then(|()| explainable(keys, &members))
                .map_err(|e| Error::Artifact(format!("SAGEMAKER_INFERENCE_OUTPUT: {e}")))?;
        }
        manifest.feature_names = names.clone();
        Ok(Self {
            members: members.into(),
            objective: objective.into(),
            shape,
            num_class,
            output: options.output.clone(),
            schema: Schema {
                feature_names: names,
                derived: None,
                targets: vec![],
                allow_missing: true,
                categories: Vec::new(),
            },
        })
    }
}

/// Checks that `keys` asking for contributions have one model to explain, which can be.
fn explainable(keys: &[OutputKey], members: &[TreeModel]) -> std::result::Result<(), String> {
    if !keys.contains(&OutputKey::Contributions) {
        return Ok(());
    }
    if members.len() > 1 {
        return Err(format!(
            "contributions explain one model, and this endpoint serves an ensemble of {}; set SAGEMAKER_INFERENCE_ENSEMBLE=false to serve the first",
            members.len()
        ));
    }
    members[0].can_explain()
}

/// The compiled trees of a parsed model, with its objective, classes and feature names (the
/// given ones, else `f0`, `f1`, ...); `limit` keeps that many trees per group (0: all).
fn described(model: XgboostJson, limit: usize) -> std::result::Result<Compiled, String> {
    let (objective, num_class) = (model.objective().to_owned(), model.num_class());
    let given = model.feature_names().to_vec();
    let mut trees = model.compile().map_err(|e| e.to_string())?;
    if trees.n_features > MAX_FEATURES {
        return Err(format!(
            "{} features are more than the {MAX_FEATURES} this build serves",
            trees.n_features
        ));
    }
    trees.keep_first(limit);
    let names = if given.len() == trees.n_features {
        given
    } else {
        (0..trees.n_features).map(|i| format!("f{i}")).collect()
    };
    Ok((trees, objective, num_class, names))
}

/// Most features a model trained elsewhere may take (each has a name held in memory).
const MAX_FEATURES: usize = 1 << 20;

/// A compiled model file: trees, objective, classes, feature names.
type Compiled = (TreeModel, String, usize, Vec<String>);

/// Compiles one model file, read by this build's own readers (XGBoost's loader is never given
/// a file here: fuzzing found corrupt files that crash it with a segmentation fault): XGBoost's
/// JSON or UBJSON (a 1,000-tree model in about 10 ms, where XGBoost's own load and JSON dump
/// take 90), its 1.x binary format and pickles through [`legacy`].
fn compile(bytes: &[u8]) -> std::result::Result<Compiled, String> {
    let (model, limit) = if legacy::is_legacy(bytes) {
        legacy::read(bytes).map_err(|e| e.to_string())?
    } else {
        let model = crate::models::ubjson::from_json_or_ubjson::<XgboostJson>(bytes)
            .map_err(|e| format!("XGBoost model {e}"))?;
        (model, 0)
    };
    described(model, limit)
}

impl Model for XgboostModel {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn predict(&self, x: ArrayView2<f32>) -> Result<Box<dyn Predictions>> {
        let all: Vec<Array2<f32>> = self.members.iter().map(|m| m.predict(x)).collect();
        let values = if all.len() == 1 {
            all.into_iter().next().expect("one member")
        } else if self.shape == Shape::Class {
            vote(&all)
        } else {
            let mut sum = all[0].clone();
            for a in &all[1..] {
                sum += a;
            }
            sum / all.len() as f32
        };
        Ok(Box::new(XgboostPredictions {
            values,
            objective: self.objective.clone(),
            shape: self.shape,
            num_class: self.num_class,
            output: self.output.clone(),
            members: self.members.clone(),
            contributions: None,
        }))
    }

    fn memory_bytes(&self) -> usize {
        self.members.iter().map(TreeModel::memory_bytes).sum()
    }
}

/// Per row, the class most members predict (the smallest of tied classes).
fn vote(all: &[Array2<f32>]) -> Array2<f32> {
    let rows = all[0].nrows();
    Array2::from_shape_fn((rows, 1), |(r, _)| {
        let mut counts: Vec<(f32, usize)> = Vec::new();
        for a in all {
            let class = a[[r, 0]];
            match counts.iter_mut().find(|(c, _)| *c == class) {
                Some((_, n)) => *n += 1,
                None => counts.push((class, 1)),
            }
        }
        counts
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.total_cmp(&a.0)))
            .map_or(0.0, |(c, _)| c)
    })
}

/// Answers in the built-in algorithm's shapes.
pub struct XgboostPredictions {
    /// One row per record: one value, or the class probabilities (`multi:softprob`).
    values: Array2<f32>,
    objective: Arc<str>,
    shape: Shape,
    num_class: usize,
    output: Option<Vec<OutputKey>>,
    members: Arc<[TreeModel]>,
    /// Per record, the contributions, when an answer asks for them.
    contributions: Option<Array2<f32>>,
}

impl XgboostPredictions {
    /// The contributions of `x`'s records, when the selected keys ask for them.
    fn explain_if_asked(
        &mut self,
        x: ArrayView2<f32>,
        deadline: Option<std::time::Instant>,
    ) -> std::result::Result<(), String> {
        let asked = self
            .output
            .as_ref()
            .is_some_and(|k| k.contains(&OutputKey::Contributions));
        if !asked {
            return Ok(());
        }
        // One model that can be explained: checked when the keys were chosen (at load for the
        // endpoint's default, in `select_output` for a request's).
        let model = &self.members[0];
        let values = x.nrows().saturating_mul(model.contributions_per_row());
        if values > MAX_EXPLAINED_VALUES {
            return Err(format!(
                "contributions of {} records are {values} values, over the {MAX_EXPLAINED_VALUES} one answer holds; send fewer records per request",
                x.nrows()
            ));
        }
        let explained = explained_by_deadline(x, deadline, |rows| model.contributions(rows))?;
        self.contributions = Some(explained);
        Ok(())
    }

    /// The predicted class of record `i`.
    fn label(&self, i: usize) -> usize {
        let row = self.values.row(i);
        match self.shape {
            Shape::Probabilities => crate::metrics::most_probable(row),
            Shape::Probability => usize::from(row[0] > 0.5),
            Shape::Margin => usize::from(row[0] > 0.0),
            Shape::Class | Shape::Score => row[0] as usize,
        }
    }

    /// One key's value of record `i`, and whether it is a list.
    fn key_values(&self, key: OutputKey, i: usize) -> (Vec<f32>, bool) {
        let row = self.values.row(i);
        let v = row[0];
        let probabilities = self.shape == Shape::Probabilities;
        match key {
            OutputKey::PredictedLabel => (vec![self.label(i) as f32], false),
            OutputKey::Labels => {
                let classes = if probabilities || self.num_class > 1 {
                    self.num_class.max(2)
                } else {
                    2
                };
                ((0..classes).map(|c| c as f32).collect(), true)
            }
            OutputKey::Probability | OutputKey::RawScore if probabilities => (
                vec![row.iter().copied().fold(f32::NEG_INFINITY, f32::max)],
                false,
            ),
            OutputKey::Probability | OutputKey::RawScore | OutputKey::PredictedScore => {
                (vec![v], false)
            }
            OutputKey::Probabilities | OutputKey::RawScores if probabilities => {
                (row.to_vec(), true)
            }
            OutputKey::Probabilities | OutputKey::RawScores => (vec![1.0 - v, v], true),
            OutputKey::Contributions => (
                self.contributions
                    .as_ref()
                    .map_or_else(Vec::new, |c| c.row(i).to_vec()),
                true,
            ),
        }
    }

    /// Writes one key's value of record `i`; lists as JSON arrays (`[a, b]`).
    fn write_key(&self, key: OutputKey, i: usize, out: &mut String) {
        let (values, list) = self.key_values(key, i);
        if !list {
            push_f32(out, values[0]);
            return;
        }
        out.push('[');
        for (k, &v) in values.iter().enumerate() {
            out.push_str(if k == 0 { "" } else { ", " });
            push_f32(out, v);
        }
        out.push(']');
    }
}

impl Predictions for XgboostPredictions {
    fn records(&self) -> usize {
        self.values.nrows()
    }

    fn json_record(&self, i: usize, out: &mut String) {
        out.push('{');
        match &self.output {
            None => {
                out.push_str("\"score\":");
                if self.shape == Shape::Probabilities {
                    self.write_key(OutputKey::Probabilities, i, out);
                } else {
                    self.write_key(OutputKey::PredictedScore, i, out);
                }
            }
            Some(keys) => {
                for (k, key) in keys.iter().enumerate() {
                    let sep = if k == 0 { "" } else { "," };
                    let _ = write!(out, "{sep}\"{}\":", key.name());
                    self.write_key(*key, i, out);
                }
            }
        }
        out.push('}');
    }

    fn csv_record(&self, i: usize, out: &mut String) {
        match &self.output {
            None if self.shape == Shape::Probabilities => {
                self.write_key(OutputKey::Probabilities, i, out)
            }
            None => self.write_key(OutputKey::PredictedScore, i, out),
            Some(keys) => {
                for (k, key) in keys.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    let start = out.len();
                    self.write_key(*key, i, out);
                    if out[start..].starts_with('[') {
                        out.insert(start, '"');
                        out.push('"');
                    }
                }
            }
        }
    }

    fn csv_records_on_one_line(&self) -> bool {
        self.output.is_none()
    }

    fn recordio_record(&self, i: usize, out: &mut Vec<u8>) -> bool {
        let Some(keys) = &self.output else {
            return false;
        };
        let values: Vec<(&str, Vec<f32>)> = keys
            .iter()
            .map(|k| (k.name(), self.key_values(*k, i).0))
            .collect();
        let labels: Vec<(&str, &[f32])> = values.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        crate::data::recordio::write_label_record(&labels, out);
        true
    }

    fn select_output(&mut self, keys: &str) -> std::result::Result<(), String> {
        let keys = OutputKey::parse_list(keys)?;
        self.shape.check(&keys, &self.objective)?;
        explainable(&keys, &self.members)?;
        self.output = Some(keys);
        Ok(())
    }

    fn explain(
        &mut self,
        x: ArrayView2<f32>,
        deadline: Option<std::time::Instant>,
    ) -> std::result::Result<(), String> {
        self.explain_if_asked(x, deadline)
    }

    fn first_non_finite(&self) -> Option<usize> {
        let values = first_non_finite(self.values.iter(), self.values.ncols());
        // A model file may hold covers of zero: an explanation is checked like the prediction.
        let explained = self
            .contributions
            .as_ref()
            .and_then(|c| first_non_finite(c.iter(), c.ncols()));
        match (values, explained) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

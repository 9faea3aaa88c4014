//! Model kinds: each kind's module is its one home. It owns the kind's contract (feature names,
//! labels), its artifact both ways (the payloads training writes and serving reads back), and
//! how its answers are written. Everything else sees "a loaded model" through [`Model`] and
//! [`Predictions`], and picks a kind through [`ModelKind`] alone.
//!
//! Adding a kind: a module here, a [`ModelKind`] variant with its arm in [`open`], and on the
//! training side its pipeline (`train/src/<kind>.rs`), hyperparameters and dispatch.

pub mod added_keys;
pub mod fire;
pub mod iops;
pub mod out_of_range;
pub mod tabular;
pub mod xgboost;

use crate::artifact::{Manifest, PayloadFile, PayloadFormat};
use crate::data::Schema;
use crate::error::{Error, Result};
use crate::models::trees::TreeModel;
use ndarray::{Array2, ArrayView2};
use std::path::Path;

/// The model kinds this build trains and serves; the `model_kind` hyperparameter and the
/// manifest's `model_kind` field name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum ModelKind {
    /// The fire detector's weighted ensemble ([`fire`]).
    FireEnsemble,
    /// The storage IOPS risk classifier and score regressor ([`iops`]).
    Iops,
    /// One generic tabular candidate ([`tabular`]).
    Tabular,
    /// SageMaker's built-in XGBoost algorithm: its models (trained here or elsewhere), served
    /// from XGBoost's own files ([`xgboost`]).
    Xgboost,
}

impl ModelKind {
    /// Every kind, in the order they are listed to users.
    pub const ALL: [ModelKind; 4] = [
        ModelKind::FireEnsemble,
        ModelKind::Iops,
        ModelKind::Tabular,
        ModelKind::Xgboost,
    ];
    /// Their names, in the same order.
    pub const NAMES: [&'static str; 4] = ["fire_ensemble", "iops", "tabular", "xgboost"];
    /// The names of the kinds `train` fits.
    pub const TRAINED: [&'static str; 4] = Self::NAMES;

    /// The kind's name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The kind called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq<&str> for ModelKind {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl From<ModelKind> for &'static str {
    fn from(kind: ModelKind) -> Self {
        kind.name()
    }
}

impl TryFrom<String> for ModelKind {
    type Error = String;
    fn try_from(name: String) -> std::result::Result<Self, String> {
        Self::from_name(&name).ok_or_else(|| {
            format!(
                "model kind '{name}' is not served by this build (it serves {})",
                Self::NAMES.join(", ")
            )
        })
    }
}

/// A loaded model of any kind, ready to predict (shared by all requests, no locks).
pub trait Model: Send + Sync {
    /// The request features: names in model order, which are computed when left out, whether
    /// values may be missing.
    fn schema(&self) -> &Schema;
    /// Predicts every row of `x` (a full-width matrix in [`Model::schema`]'s order).
    fn predict(&self, x: ArrayView2<f32>) -> Result<Box<dyn Predictions>>;
    /// Bytes the model's arrays hold (what a multi-model endpoint charges it), files read ahead
    /// for explanations included; the copy of the trees a first explanation builds
    /// ([`Deferred`]) is not counted.
    fn memory_bytes(&self) -> usize;
    /// Reads now the files explanations need (before an unpacked archive's files are removed,
    /// or `serve` gives up root); they are compiled on the first explanation.
    fn preload_explanations(&self) {}
    /// Contribution values per record ([`Model::contributions`]), or why the model has no
    /// explanations; asked before any is computed.
    fn contributions_per_row(&self) -> std::result::Result<usize, String> {
        Err("this model's predictions have no explanations".into())
    }
    /// Per record of `x`, each feature's contribution to the model's output and the bias,
    /// summing to it, in the kind's documented layout. XGBoost models trained elsewhere answer
    /// `contributions` among their own keys instead.
    fn contributions(&self, x: ArrayView2<f32>) -> std::result::Result<Array2<f32>, String> {
        let _ = x;
        Err("this model's predictions have no explanations".into())
    }
}

/// The artifact's XGBoost UBJSON files of a member or model (the parts of a forest), which
/// keep the node covers explanations need: read when first needed, or earlier with
/// [`XgboostFiles::preload`] (before `serve` gives up root, which may leave it unable to read
/// them).
pub(crate) struct XgboostFiles {
    dir: std::path::PathBuf,
    name: String,
    n_features: usize,
    files: Vec<PayloadFile>,
    preloaded: std::sync::Mutex<Option<Vec<Vec<u8>>>>,
}

impl XgboostFiles {
    /// The files of `name` in the artifact of `manifest` in `dir`.
    pub(crate) fn of(dir: &Path, manifest: &Manifest, name: &str) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            dir: dir.to_path_buf(),
            name: name.to_owned(),
            n_features: manifest.feature_names.len(),
            files: manifest
                .payloads
                .iter()
                .filter(|p| p.name == name && p.format == PayloadFormat::XgboostUbj)
                .cloned()
                .collect(),
            preloaded: std::sync::Mutex::new(None),
        })
    }

    fn read(&self) -> Result<Vec<Vec<u8>>> {
        self.files.iter().map(|p| p.read(&self.dir)).collect()
    }

    /// Reads the files now, to compile them later (logged when they cannot be read); once.
    pub(crate) fn preload(&self) {
        if self.preloaded.lock().is_ok_and(|p| p.is_some()) {
            return;
        }
        match self.read() {
            Ok(bytes) => {
                if let Ok(mut held) = self.preloaded.lock() {
                    *held = Some(bytes);
                }
            }
            Err(e) => self.unreadable(&e),
        }
    }

    /// Bytes read ahead by [`XgboostFiles::preload`] and held until the first explanation:
    /// part of what the model holds, which a multi-model endpoint charges.
    pub(crate) fn preloaded_bytes(&self) -> usize {
        self.preloaded.lock().ok().map_or(0, |p| {
            p.as_ref()
                .map_or(0, |files| files.iter().map(Vec::len).sum())
        })
    }

    fn unreadable(&self, e: &Error) {
        tracing::warn!(member = %self.name, error = %e, "XGBoost's files of this model cannot be read: it is served without explanations");
    }

    /// The trees (the parts of a forest averaged, as training combined them), checked to take
    /// the model's features; `None` when there are no files or they cannot be read (logged):
    /// the model is then served unexplained, as before explanations existed.
    pub(crate) fn trees(&self) -> Option<TreeModel> {
        if self.files.is_empty() {
            return None;
        }
        let preloaded = self.preloaded.lock().ok().and_then(|mut p| p.take());
        let trees = preloaded.map_or_else(|| self.read(), Ok).and_then(|bytes| {
            let trees = TreeModel::from_xgboost_files(&bytes)?;
            trees.check(self.n_features).map_err(Error::Artifact)?;
            Ok(trees)
        });
        trees.map_err(|e| self.unreadable(&e)).ok()
    }
}

/// A value built when first asked for, not when the model is loaded: the trees explanations
/// need take longer to compile than the ones predictions need (a fire ensemble's: about 50 ms),
/// and most endpoints never explain. Concurrent askers
/// wait for the one building it.
pub struct Deferred<T> {
    value: std::sync::OnceLock<Option<T>>,
    build: std::sync::Mutex<Option<Builder<T>>>,
}

/// What builds a [`Deferred`] value, taken by the first asker.
type Builder<T> = Box<dyn FnOnce() -> Option<T> + Send>;

impl<T> Deferred<T> {
    /// A value `build` makes on first use.
    pub fn new(build: impl FnOnce() -> Option<T> + Send + 'static) -> Self {
        Self {
            value: std::sync::OnceLock::new(),
            build: std::sync::Mutex::new(Some(Box::new(build))),
        }
    }

    /// The value, built now if it is the first ask (`None` when it could not be).
    pub fn get(&self) -> Option<&T> {
        self.value
            .get_or_init(|| {
                let build = self.build.lock().ok().and_then(|mut b| b.take());
                build.and_then(|b| b())
            })
            .as_ref()
    }
}

/// A batch of predictions that can be written record by record; each kind shapes its own
/// answer (the JSON object and CSV line of one record).
pub trait Predictions: Send {
    /// Number of records.
    fn records(&self) -> usize;
    /// Appends record `i` as one JSON object.
    fn json_record(&self, i: usize, out: &mut String);
    /// Appends record `i` as one CSV line without its newline.
    fn csv_record(&self, i: usize, out: &mut String);
    /// The first record whose answer holds NaN or infinity, if any (such answers are refused).
    fn first_non_finite(&self) -> Option<usize>;
    /// Whether a CSV answer outside batch mode puts every record on one line, joined by commas
    /// (SageMaker's built-in XGBoost does); else one line per record.
    fn csv_records_on_one_line(&self) -> bool {
        false
    }
    /// Appends record `i` as a RecordIO-framed protobuf `Record` (its `label` map), where the
    /// kind answers that way; false when it does not.
    fn recordio_record(&self, i: usize, out: &mut Vec<u8>) -> bool {
        let _ = (i, out);
        false
    }
    /// Computes what the chosen keys need beyond the prediction (explanations), from the
    /// records `x`; an error for a request it cannot answer (too many values).
    /// Explaining stops with [`added_keys::DEADLINE_PASSED`] once `deadline` passes.
    fn explain(
        &mut self,
        x: ArrayView2<f32>,
        deadline: Option<std::time::Instant>,
    ) -> std::result::Result<(), String> {
        let _ = (x, deadline);
        Ok(())
    }
    /// Chooses the keys each record's answer holds (a comma-separated list), where the kind
    /// offers a choice.
    fn select_output(&mut self, keys: &str) -> std::result::Result<(), String> {
        let _ = keys;
        Err(
            "this model's answers have no keys to choose (XGBoost models trained elsewhere have)"
                .into(),
        )
    }
}

/// The first record holding a non-finite value, for [`Predictions::first_non_finite`]:
/// `values` in record order, `per_record` of them per record.
pub fn first_non_finite<'a>(
    values: impl IntoIterator<Item = &'a f32>,
    per_record: usize,
) -> Option<usize> {
    values
        .into_iter()
        .position(|v| !v.is_finite())
        .map(|i| i / per_record.max(1))
}

/// The predictions of consecutive row ranges, read as one batch.
pub struct Joined {
    parts: Vec<Box<dyn Predictions>>,
    /// The record number each part starts at.
    starts: Vec<usize>,
    records: usize,
}

impl Joined {
    /// Joins `parts` in order.
    pub fn new(parts: Vec<Box<dyn Predictions>>) -> Self {
        let mut starts = Vec::with_capacity(parts.len());
        let mut records = 0;
        for p in &parts {
            starts.push(records);
            records += p.records();
        }
        Self {
            parts,
            starts,
            records,
        }
    }

    /// The part holding record `i`, and `i` within it.
    fn locate(&self, i: usize) -> (&dyn Predictions, usize) {
        let k = self.starts.partition_point(|&s| s <= i) - 1;
        (self.parts[k].as_ref(), i - self.starts[k])
    }
}

impl Predictions for Joined {
    fn records(&self) -> usize {
        self.records
    }
    fn json_record(&self, i: usize, out: &mut String) {
        let (part, i) = self.locate(i);
        part.json_record(i, out);
    }
    fn csv_record(&self, i: usize, out: &mut String) {
        let (part, i) = self.locate(i);
        part.csv_record(i, out);
    }
    fn csv_records_on_one_line(&self) -> bool {
        self.parts.iter().any(|p| p.csv_records_on_one_line())
    }
    fn select_output(&mut self, keys: &str) -> std::result::Result<(), String> {
        self.parts
            .iter_mut()
            .try_for_each(|p| p.select_output(keys))
    }
    fn explain(
        &mut self,
        x: ArrayView2<f32>,
        deadline: Option<std::time::Instant>,
    ) -> std::result::Result<(), String> {
        let ranges: Vec<_> = self
            .parts
            .iter()
            .zip(&self.starts)
            .map(|(p, &start)| x.slice(ndarray::s![start..start + p.records(), ..]))
            .collect();
        if self.parts.len() == 1 {
            return self.parts[0].explain(ranges[0], deadline);
        }
        // Each part (a row range predicted on its own thread) on its own thread again.
        std::thread::scope(|s| {
            let parts: Vec<_> = self
                .parts
                .iter_mut()
                .zip(ranges)
                .map(|(p, rows)| s.spawn(move || p.explain(rows, deadline)))
                .collect();
            parts.into_iter().try_for_each(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        })
    }
    fn recordio_record(&self, i: usize, out: &mut Vec<u8>) -> bool {
        let (part, i) = self.locate(i);
        part.recordio_record(i, out)
    }
    fn first_non_finite(&self) -> Option<usize> {
        self.parts
            .iter()
            .zip(&self.starts)
            .find_map(|(p, start)| p.first_non_finite().map(|i| start + i))
    }
}

/// Opens the model in `dir` (a model directory, or an unpacked `model.tar.gz`): the kind its
/// manifest names, or without a manifest XGBoost model files trained elsewhere. Checks that
/// the model's features are the manifest's.
pub fn open(dir: &Path, options: &xgboost::Options) -> Result<(Manifest, Box<dyn Model>)> {
    let mut manifest = if crate::access::present(&dir.join(crate::artifact::MANIFEST))
        .map_err(|e| Error::io(dir, e))?
    {
        Manifest::load(dir)?
    } else {
        xgboost::scan(dir, options)?
    };
    let model: Box<dyn Model> = match manifest.model_kind {
        ModelKind::FireEnsemble => Box::new(fire::FireModel::load(dir, &manifest)?),
        ModelKind::Iops => Box::new(iops::IopsModel::load(dir, &manifest)?),
        ModelKind::Tabular => Box::new(tabular::TabularServed::load(dir, &manifest)?),
        ModelKind::Xgboost => Box::new(xgboost::XgboostModel::load(dir, &mut manifest, options)?),
    };
    if manifest.feature_names != model.schema().feature_names {
        return Err(Error::Artifact(format!(
            "the manifest's feature names differ from the {} model's: {:?}",
            manifest.model_kind, manifest.feature_names
        )));
    }
    Ok((manifest, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in ModelKind::ALL {
            assert_eq!(ModelKind::from_name(kind.name()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{kind}\""));
            assert_eq!(serde_json::from_str::<ModelKind>(&json).unwrap(), kind);
        }
        let e = serde_json::from_str::<ModelKind>("\"housing\"").unwrap_err();
        assert!(
            e.to_string()
                .contains("model kind 'housing' is not served by this build"),
            "{e}"
        );
    }
}

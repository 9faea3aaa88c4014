//! The model being served: loaded from the model directory through its kind
//! ([`common::kinds::open`]), answered the same way whatever the kind.

use crate::codec::{self, Input};
use crate::error::ServeError;
use common::artifact::{self, Manifest};
use common::data::categories;
use common::kinds::added_keys::{
    explained_by_deadline, Contributions, WithKey, DEADLINE_PASSED, MAX_EXPLAINED_VALUES,
};
use common::kinds::first_non_finite;
use common::kinds::out_of_range::{self, TrainingRanges};
use common::kinds::xgboost::{self, OutputKey};
use common::kinds::{self, Joined, Model, ModelKind, Predictions};
use common::opt_ml::OptMl;
use common::parallel;
use common::{Error, Result};
use ndarray::{Array2, ArrayView2};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// A loaded model, ready to predict (shared by all requests, no locks).
pub struct LoadedModel {
    /// The manifest it was loaded from.
    pub manifest: Manifest,
    model: Box<dyn Model>,
    /// Values of requests so far that were categories training never saw (read as missing).
    unseen: AtomicU64,
    /// What training saw, for the `out_of_range` key (models trained by this build).
    ranges: Option<TrainingRanges>,
    /// The keys added to answers when a request chooses none (`SAGEMAKER_INFERENCE_OUTPUT`).
    added_by_default: AddedKeys,
}

/// The keys the serving layer adds to a kind's answers ([`kinds::added_keys`]), and the others
/// the kind chooses among itself.
#[derive(Debug, Clone, Default, PartialEq)]
struct AddedKeys {
    out_of_range: bool,
    /// For every kind but XGBoost models, whose own keys hold `contributions`.
    contributions: bool,
    /// The other keys named, if any.
    rest: Option<String>,
}

impl AddedKeys {
    /// Splits a comma-separated key list; `contributions` is added here unless the kind
    /// answers it itself (`own_contributions`).
    fn of(keys: &str, own_contributions: bool) -> Self {
        let mut added = Self::default();
        let mut rest = Vec::new();
        for key in keys.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if key.eq_ignore_ascii_case(out_of_range::KEY) {
                added.out_of_range = true;
            } else if key.eq_ignore_ascii_case("contributions") && !own_contributions {
                added.contributions = true;
            } else {
                rest.push(key);
            }
        }
        // Nothing named at all is the kind's own error to give.
        let named_any = added.out_of_range || added.contributions;
        added.rest = (!rest.is_empty() || !named_any).then(|| rest.join(","));
        added
    }
}

impl LoadedModel {
    /// Loads `model/` (or the `model.tar.gz` in it, unpacked under the system temp directory and
    /// removed once loaded; the model directory itself is only read).
    pub fn load(opt_ml: &OptMl) -> Result<Self> {
        let loaded = Self::load_from(&opt_ml.model_dir())?;
        // The endpoint's one model: the files explanations need are read now, while `serve` may
        // still run as root (it gives root up once loaded); a multi-model endpoint keeps root.
        loaded.model.preload_explanations();
        Ok(loaded)
    }

    /// Loads the model in `model_dir` (a model directory, or one holding `model.tar.gz`).
    pub fn load_from(model_dir: &Path) -> Result<Self> {
        let scratch = scratch_dir();
        // A fault in a reader is a failed load, never a panic that leaves a load unfinished
        // (and the unpacked archive behind).
        let loaded = std::panic::catch_unwind(|| {
            let dir = artifact::open_model_dir(model_dir, &scratch)?;
            // The endpoint's default keys: those XGBoost models choose among go to their kind.
            let default_keys = std::env::var("SAGEMAKER_INFERENCE_OUTPUT").ok();
            let own = default_keys.as_deref().map(|k| AddedKeys::of(k, true));
            let options = xgboost_options(own.and_then(|a| a.rest).as_deref())?;
            let (manifest, model) = kinds::open(&dir, &options)?;
            let added_by_default = default_keys
                .as_deref()
                .map(|k| AddedKeys::of(k, manifest.model_kind == ModelKind::Xgboost))
                .map(|a| AddedKeys { rest: None, ..a })
                .unwrap_or_default();
            if let Some(kept) = &manifest.partial {
                tracing::warn!(%kept, "this model was saved on SIGTERM before its fit was complete (save_model_on_termination); it holds only what was fitted");
            }
            let ranges = TrainingRanges::of(&manifest);
            // Held as `ranges` from here (a multi-model endpoint holds thousands of manifests).
            let manifest = Manifest {
                training_ranges: Default::default(),
                ..manifest
            };
            if added_by_default.out_of_range && ranges.is_none() {
                return Err(Error::Config(no_ranges("SAGEMAKER_INFERENCE_OUTPUT")));
            }
            if added_by_default.contributions {
                model.contributions_per_row().map_err(|e| {
                    Error::Config(format!("SAGEMAKER_INFERENCE_OUTPUT: contributions: {e}"))
                })?;
            }
            Ok(Self {
                manifest,
                model,
                unseen: AtomicU64::new(0),
                ranges,
                added_by_default,
            })
        })
        .unwrap_or_else(|_| {
            Err(Error::Artifact(
                "loading the model failed unexpectedly".into(),
            ))
        });
        // Everything served is in memory now; an unpacked archive is not needed any more.
        if scratch.exists() {
            if let Ok(model) = &loaded {
                model.model.preload_explanations();
            }
            if let Err(e) = std::fs::remove_dir_all(&scratch) {
                tracing::warn!(path = %scratch.display(), error = %e, "cannot remove the unpacked model.tar.gz");
            }
        }
        loaded
    }

    /// The answer type when a request names none: `text/csv` for XGBoost models trained
    /// elsewhere (as SageMaker's built-in algorithm), else the server's default.
    pub fn default_accept(&self) -> Option<&'static str> {
        (self.manifest.model_kind == ModelKind::Xgboost).then_some("text/csv")
    }

    /// Bytes the model's arrays hold.
    pub fn memory_bytes(&self) -> usize {
        self.model.memory_bytes()
    }

    /// Decodes a body, predicts every record and hands the predictions to `reply`, which encodes
    /// them. Bodies of many records are predicted on up to `threads` threads, in row ranges. The
    /// body is given back (`crate::buffers`) once decoded, so a large batch payload and its
    /// answer are never held by one request at the same time.
    pub fn answer<R>(
        &self,
        body: Vec<u8>,
        input: Input,
        batch: bool,
        threads: usize,
        reply: impl FnOnce(&dyn Predictions) -> R,
    ) -> Result<R, ServeError> {
        self.answer_selecting(body, input, batch, threads, None, None, reply)
    }

    /// [`LoadedModel::answer`] with the answer's keys chosen by the request (`output`: the
    /// `output=` custom attribute), for models whose answers offer a choice; explanations stop
    /// with a 504 once `deadline` passes (a prediction is never that slow; an explanation of
    /// many records can be).
    #[allow(clippy::too_many_arguments)]
    pub fn answer_selecting<R>(
        &self,
        body: Vec<u8>,
        input: Input,
        batch: bool,
        threads: usize,
        output: Option<&str>,
        deadline: Option<Deadline>,
        reply: impl FnOnce(&dyn Predictions) -> R,
    ) -> Result<R, ServeError> {
        let x = codec::decode(input, &body, self.model.schema(), batch)?;
        crate::buffers::BODIES.give(body);
        if !self.model.schema().categories.is_empty() {
            self.count_unseen(x.view());
        }
        // A fault in a model answers this request with a 500, never takes the connection down.
        let parts = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            in_row_ranges(x.view(), threads, MIN_ROWS_PER_THREAD, |x| {
                self.model.predict(x)
            })
        }))
        .unwrap_or_else(|_| Err(Error::Fit("prediction panicked".into())))
        .map_err(|e| {
            tracing::error!(error = %e, "prediction failed");
            ServeError::Internal
        })?;
        let mut predictions = Joined::new(parts);
        let added = match output {
            Some(text) => AddedKeys::of(text, self.manifest.model_kind == ModelKind::Xgboost),
            None => self.added_by_default.clone(),
        };
        if let Some(keys) = &added.rest {
            predictions
                .select_output(keys)
                .map_err(|e| ServeError::BadRequest(format!("custom attribute output: {e}")))?;
        }
        // Explanations, when the chosen keys ask for them (after the choice: none are computed
        // for an answer that does not hold them).
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            predictions.explain(x.view(), deadline.map(|d| d.at))
        }))
        .map_err(|_| {
            tracing::error!("explaining the predictions panicked");
            ServeError::Internal
        })?
        .map_err(|e| explain_error(e, deadline))?;
        // No answer holds NaN or infinity: a record whose output is not finite (its inputs lie
        // far outside anything the model was trained on) is refused, by record number.
        if let Some(i) = predictions.first_non_finite() {
            return Err(ServeError::BadRequest(format!(
                "record {}: the model's output is not a finite number; its inputs are far outside the range it was trained on",
                i + 1
            )));
        }
        let mut answer: Box<dyn Predictions> = Box::new(predictions);
        if added.contributions {
            let contributions = self.contributions(x.view(), threads, deadline)?;
            answer = Box::new(WithKey::new(answer, Box::new(Contributions(contributions))));
        }
        if added.out_of_range {
            let ranges = self
                .ranges
                .as_ref()
                .ok_or_else(|| ServeError::BadRequest(no_ranges("custom attribute output")))?;
            let names = &self.model.schema().feature_names;
            answer = Box::new(ranges.flag(answer, x.view(), names));
        }
        let replied = reply(answer.as_ref());
        drop(answer);
        crate::buffers::VALUES.give(x.into_raw_vec_and_offset().0);
        Ok(replied)
    }

    /// The records' contributions ([`Model::contributions`]), computed in row ranges on up to
    /// `threads` threads; a 400 when the model cannot explain or the answer would be too large.
    fn contributions(
        &self,
        x: ArrayView2<f32>,
        threads: usize,
        deadline: Option<Deadline>,
    ) -> Result<Array2<f32>, ServeError> {
        let bad = |e: String| ServeError::BadRequest(format!("contributions: {e}"));
        let per_row = self.model.contributions_per_row().map_err(bad)?;
        let values = x.nrows().saturating_mul(per_row);
        if values > MAX_EXPLAINED_VALUES {
            return Err(bad(format!(
                "{} records are {values} values, over the {MAX_EXPLAINED_VALUES} one answer holds; send fewer records per request",
                x.nrows()
            )));
        }
        let parts = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            in_row_ranges(x, threads, MIN_EXPLAINED_ROWS_PER_THREAD, |x| {
                let at = deadline.map(|d| d.at);
                explained_by_deadline(x, at, |rows| self.model.contributions(rows))
                    .map_err(Error::Data)
            })
        }))
        .map_err(|_| {
            tracing::error!("explaining the predictions panicked");
            ServeError::Internal
        })?
        .map_err(|e| match e {
            Error::Data(m) if m == DEADLINE_PASSED => explain_error(m, deadline),
            other => bad(other.to_string()),
        })?;
        let views: Vec<_> = parts.iter().map(Array2::view).collect();
        let all =
            ndarray::concatenate(ndarray::Axis(0), &views).map_err(|_| ServeError::Internal)?;
        if let Some(i) = first_non_finite(all.iter(), per_row) {
            return Err(bad(format!(
                "record {}: a contribution is not a finite number; its inputs are far outside the range the model was trained on",
                i + 1
            )));
        }
        Ok(all)
    }
}

/// Why `out_of_range` cannot be answered.
fn no_ranges(asked_by: &str) -> String {
    format!(
        "{asked_by}: {} needs the training ranges the manifest of a model trained by this build holds; this model has none (trained elsewhere, by an earlier build, or on more than 10,000 features)",
        out_of_range::KEY
    )
}

impl LoadedModel {
    /// Counts the values that were categories training never saw, and logs the count when it
    /// reaches 1, 10, 100, ... (a client sending them all day writes a few lines, not one each).
    fn count_unseen(&self, x: ArrayView2<f32>) {
        let schema = self.model.schema();
        let mut columns = std::collections::BTreeSet::new();
        let mut count = 0u64;
        for row in x.rows() {
            for (k, &v) in row.iter().enumerate() {
                if categories::is_unseen(v) {
                    count += 1;
                    columns.insert(schema.feature_names[k].as_str());
                }
            }
        }
        if count == 0 {
            return;
        }
        let before = self.unseen.fetch_add(count, Ordering::Relaxed);
        let total = before + count;
        if total.ilog10() > before.checked_ilog10().unwrap_or(0) || before == 0 {
            tracing::warn!(total, columns = ?columns, "request values that are categories training never saw, read as missing (count so far)");
        }
    }
}

/// How XGBoost models trained elsewhere are served: `SAGEMAKER_INFERENCE_ENSEMBLE=false` serves
/// the first model file only; `keys` (`SAGEMAKER_INFERENCE_OUTPUT` less the keys added for
/// every kind) selects the answer's keys.
fn xgboost_options(keys: Option<&str>) -> Result<xgboost::Options> {
    let output = keys
        .map(OutputKey::parse_list)
        .transpose()
        .map_err(|e| Error::Config(format!("SAGEMAKER_INFERENCE_OUTPUT: {e}")))?;
    let first_only = std::env::var("SAGEMAKER_INFERENCE_ENSEMBLE")
        .is_ok_and(|v| v.trim().eq_ignore_ascii_case("false"));
    Ok(xgboost::Options { first_only, output })
}

/// A directory of this process's own for unpacking one `model.tar.gz`.
fn scratch_dir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("serve-model-{}-{n}", std::process::id()))
}

/// Runs `predict` on contiguous row ranges of `x` (at least `min_rows` each) on up to `threads`
/// threads, in row order.
fn in_row_ranges<T: Send>(
    x: ArrayView2<f32>,
    threads: usize,
    min_rows: usize,
    predict: impl Fn(ArrayView2<f32>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    parallel::in_row_views(x, threads, min_rows, predict)
        .into_iter()
        .map(|part| part.unwrap_or_else(|_| Err(Error::Fit("prediction thread panicked".into()))))
        .collect()
}

/// Rows per thread below which splitting a request's predictions is not worth a thread.
const MIN_ROWS_PER_THREAD: usize = 2048;

/// The same for explanations, which cost far more per row (TreeSHAP of a 400-tree ensemble:
/// milliseconds).
const MIN_EXPLAINED_ROWS_PER_THREAD: usize = 16;

/// When a request must be answered, for explanations, which can outlast it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// The instant.
    pub at: std::time::Instant,
    /// The request timeout in seconds, for the 504's message.
    pub secs: u64,
}

/// An explanation's error: a 504 once the deadline passed, else a 400 with its reason.
fn explain_error(message: String, deadline: Option<Deadline>) -> ServeError {
    match deadline {
        Some(d) if message == DEADLINE_PASSED => ServeError::Deadline(d.secs),
        _ => ServeError::BadRequest(message),
    }
}

//! The model being served: loaded from the model directory through its kind
//! ([`common::kinds::load`]), answered the same way whatever the kind.

use crate::codec::{self, Input};
use crate::error::ServeError;
use common::artifact::{self, Manifest};
use common::data::categories;
use common::kinds::xgboost::{self, OutputKey};
use common::kinds::{self, Joined, Model, ModelKind, Predictions};
use common::opt_ml::OptMl;
use common::{Error, Result};
use ndarray::ArrayView2;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// A loaded model, ready to predict (shared by all requests, no locks).
pub struct LoadedModel {
    /// The manifest it was loaded from.
    pub manifest: Manifest,
    model: Box<dyn Model>,
    /// Values of requests so far that were categories training never saw (read as missing).
    unseen: AtomicU64,
}

impl LoadedModel {
    /// Loads `model/` (or the `model.tar.gz` in it, unpacked under the system temp directory and
    /// removed once loaded; the model directory itself is only read).
    pub fn load(opt_ml: &OptMl) -> Result<Self> {
        Self::load_from(&opt_ml.model_dir())
    }

    /// Loads the model in `model_dir` (a model directory, or one holding `model.tar.gz`).
    pub fn load_from(model_dir: &Path) -> Result<Self> {
        let scratch = scratch_dir();
        // A fault in a reader is a failed load, never a panic that leaves a load unfinished
        // (and the unpacked archive behind).
        let loaded = std::panic::catch_unwind(|| {
            let dir = artifact::open_model_dir(model_dir, &scratch)?;
            let (manifest, model) = kinds::open(&dir, &xgboost_options()?)?;
            Ok(Self {
                manifest,
                model,
                unseen: AtomicU64::new(0),
            })
        })
        .unwrap_or_else(|_| {
            Err(Error::Artifact(
                "loading the model failed unexpectedly".into(),
            ))
        });
        // Everything served is in memory now; an unpacked archive is not needed any more.
        if scratch.exists() {
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
    /// body is dropped once decoded, so a large batch payload and its answer are never held at
    /// the same time.
    pub fn answer<R>(
        &self,
        body: Vec<u8>,
        input: Input,
        batch: bool,
        threads: usize,
        reply: impl FnOnce(&dyn Predictions) -> R,
    ) -> Result<R, ServeError> {
        self.answer_selecting(body, input, batch, threads, None, reply)
    }

    /// [`LoadedModel::answer`] with the answer's keys chosen by the request (`output`: the
    /// `output=` custom attribute), for models whose answers offer a choice.
    pub fn answer_selecting<R>(
        &self,
        body: Vec<u8>,
        input: Input,
        batch: bool,
        threads: usize,
        output: Option<&str>,
        reply: impl FnOnce(&dyn Predictions) -> R,
    ) -> Result<R, ServeError> {
        let x = codec::decode(input, &body, self.model.schema(), batch)?;
        drop(body);
        if !self.model.schema().categories.is_empty() {
            self.count_unseen(x.view());
        }
        // A fault in a model answers this request with a 500, never takes the connection down.
        let parts = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            in_row_ranges(x.view(), threads, |x| self.model.predict(x))
        }))
        .unwrap_or_else(|_| Err(Error::Fit("prediction panicked".into())))
        .map_err(|e| {
            tracing::error!(error = %e, "prediction failed");
            ServeError::Internal
        })?;
        let mut predictions = Joined::new(parts);
        if let Some(keys) = output {
            predictions
                .select_output(keys)
                .map_err(|e| ServeError::BadRequest(format!("custom attribute output: {e}")))?;
        }
        // Explanations, when the chosen keys ask for them (after the choice: none are computed
        // for an answer that does not hold them).
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            predictions.explain(x.view())
        }))
        .map_err(|_| {
            tracing::error!("explaining the predictions panicked");
            ServeError::Internal
        })?
        .map_err(ServeError::BadRequest)?;
        // No answer holds NaN or infinity: a record whose output is not finite (its inputs lie
        // far outside anything the model was trained on) is refused, by record number.
        if let Some(i) = predictions.first_non_finite() {
            return Err(ServeError::BadRequest(format!(
                "record {}: the model's output is not a finite number; its inputs are far outside the range it was trained on",
                i + 1
            )));
        }
        Ok(reply(&predictions))
    }
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
/// the first model file only; `SAGEMAKER_INFERENCE_OUTPUT` selects the answer's keys.
fn xgboost_options() -> Result<xgboost::Options> {
    let output = std::env::var("SAGEMAKER_INFERENCE_OUTPUT")
        .ok()
        .map(|v| OutputKey::parse_list(&v))
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

/// Runs `predict` on contiguous row ranges of `x` on up to `threads` threads, in row order.
fn in_row_ranges<T: Send>(
    x: ArrayView2<f32>,
    threads: usize,
    predict: impl Fn(ArrayView2<f32>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let ranges = row_ranges(x.nrows(), threads);
    if ranges.len() == 1 {
        return Ok(vec![predict(x)?]);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = ranges
            .iter()
            .map(|r| {
                let part = x.slice(ndarray::s![r.clone(), ..]);
                let predict = &predict;
                s.spawn(move || predict(part))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Fit("prediction thread panicked".into())))
            })
            .collect()
    })
}

/// Rows per thread below which splitting a request is not worth a thread.
const MIN_ROWS_PER_THREAD: usize = 2048;

/// Splits `rows` into at most `threads` contiguous ranges of at least [`MIN_ROWS_PER_THREAD`].
fn row_ranges(rows: usize, threads: usize) -> Vec<std::ops::Range<usize>> {
    let k = threads.clamp(1, (rows / MIN_ROWS_PER_THREAD).max(1));
    let step = rows.div_ceil(k);
    (0..k)
        .map(|i| i * step..((i + 1) * step).min(rows))
        .filter(|r| !r.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::row_ranges;

    #[test]
    fn ranges_cover_every_row_once() {
        assert_eq!(row_ranges(1, 2), vec![0..1]);
        assert_eq!(row_ranges(4095, 2), vec![0..4095]);
        assert_eq!(row_ranges(5000, 2), vec![0..2500, 2500..5000]);
        assert_eq!(
            row_ranges(10_001, 3),
            vec![0..3334, 3334..6668, 6668..10_001]
        );
    }
}

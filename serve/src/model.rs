//! The model being served, loaded from the model directory and described by its manifest.

use crate::codec::{
    self, FirePredictions, Input, IopsPredictions, Predictions, TabularPredictions,
};
use crate::error::ServeError;
use common::artifact::{self, Manifest};
use common::data::Schema;
use common::models::ensemble::FireEnsemble;
use common::models::iops::{IopsModel, IopsPrediction};
use common::models::tabular::{TabularModel, Task};
use common::opt_ml::OptMl;
use common::{fire, iops, Error, Result};
use ndarray::{ArrayView2, Axis};

/// The model families `serve` answers with, chosen by the manifest's `model_kind`.
enum Kind {
    Fire {
        ensemble: FireEnsemble,
        members: Vec<&'static str>,
    },
    Iops(IopsModel),
    Tabular(TabularModel),
}

/// A loaded model, ready to predict (shared by all requests, no locks).
pub struct LoadedModel {
    /// The manifest it was loaded from.
    pub manifest: Manifest,
    /// The request features: names in model order, and which are computed when left out.
    schema: Schema,
    kind: Kind,
}

impl LoadedModel {
    /// Loads `model/` (or the `model.tar.gz` in it, unpacked under the system temp directory and
    /// removed once loaded; the model directory itself is only read).
    pub fn load(opt_ml: &OptMl) -> Result<Self> {
        let scratch = std::env::temp_dir().join(format!("serve-model-{}", std::process::id()));
        let loaded = Self::load_dir(&opt_ml.model_dir(), &scratch);
        // Everything served is in memory now; an unpacked archive is not needed any more.
        if scratch.exists() {
            if let Err(e) = std::fs::remove_dir_all(&scratch) {
                tracing::warn!(path = %scratch.display(), error = %e, "cannot remove the unpacked model.tar.gz");
            }
        }
        loaded
    }

    fn load_dir(model_dir: &std::path::Path, scratch: &std::path::Path) -> Result<Self> {
        let dir = artifact::open_model_dir(model_dir, scratch)?;
        let manifest = Manifest::load(&dir)?;
        let (schema, kind) = match manifest.model_kind.as_str() {
            "fire_ensemble" => {
                let ensemble = FireEnsemble::load(&dir, &manifest)?;
                let members = ensemble.members.iter().map(|(m, _)| m.name()).collect();
                (fire::schema(), Kind::Fire { ensemble, members })
            }
            "iops" => {
                let model = IopsModel::load(&dir, &manifest)?;
                let models = iops::Models {
                    classifier: model.classifier.is_some(),
                    regressor: model.regressor.is_some(),
                };
                (iops::schema(models), Kind::Iops(model))
            }
            "tabular" => {
                let model = TabularModel::load(&dir, &manifest)?;
                let schema = Schema {
                    feature_names: manifest.feature_names.clone(),
                    derived: None,
                    targets: vec![],
                    allow_missing: true,
                };
                (schema, Kind::Tabular(model))
            }
            other => {
                return Err(Error::Artifact(format!(
                    "model kind '{other}' is not served by this build (it serves fire_ensemble, iops and tabular)"
                )))
            }
        };
        if manifest.feature_names != schema.feature_names {
            return Err(Error::Artifact(format!(
                "the manifest's feature names differ from the {} model's: {:?}",
                manifest.model_kind, manifest.feature_names
            )));
        }
        Ok(Self {
            manifest,
            schema,
            kind,
        })
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
        let x = codec::decode(input, &body, &self.schema, batch)?;
        drop(body);
        let failed = |e: Error| {
            tracing::error!(error = %e, "prediction failed");
            ServeError::Internal
        };
        match &self.kind {
            Kind::Fire { ensemble, members } => {
                let parts =
                    in_row_ranges(x.view(), threads, |x| ensemble.predict(x)).map_err(failed)?;
                let mut member_probabilities = vec![Vec::with_capacity(x.nrows()); members.len()];
                let mut probabilities = Vec::with_capacity(x.nrows());
                for p in parts {
                    for (all, (_, part)) in member_probabilities.iter_mut().zip(p.members) {
                        all.extend(part);
                    }
                    probabilities.extend(p.ensemble);
                }
                finite_answers(probabilities.iter(), 1)?;
                for m in &member_probabilities {
                    finite_answers(m.iter(), 1)?;
                }
                let predictions = FirePredictions {
                    members,
                    member_probabilities: &member_probabilities,
                    probabilities: &probabilities,
                    threshold: ensemble.threshold,
                };
                Ok(reply(&predictions))
            }
            Kind::Tabular(model) => {
                let parts =
                    in_row_ranges(x.view(), threads, |x| Ok(model.predict(x))).map_err(failed)?;
                let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
                let values = ndarray::concatenate(Axis(0), &views)
                    .map_err(|e| failed(Error::Fit(e.to_string())))?;
                finite_answers(values.iter(), values.ncols().max(1))?;
                let predictions = TabularPredictions {
                    values: &values,
                    classification: model.task != Task::Regression,
                };
                Ok(reply(&predictions))
            }
            Kind::Iops(model) => {
                let parts =
                    in_row_ranges(x.view(), threads, |x| Ok(model.predict(x))).map_err(failed)?;
                let joined = join_iops(parts).map_err(failed)?;
                if let Some(p) = &joined.probabilities {
                    finite_answers(p.iter(), p.ncols().max(1))?;
                }
                if let Some(s) = &joined.scores {
                    finite_answers(s.iter(), 1)?;
                }
                Ok(reply(&IopsPredictions(&joined)))
            }
        }
    }
}

/// No answer holds NaN or infinity: a record whose output is not finite (its inputs lie far
/// outside anything the model was trained on) is refused, by record number.
fn finite_answers<'a>(
    values: impl Iterator<Item = &'a f32>,
    per_record: usize,
) -> Result<(), ServeError> {
    match values.enumerate().find(|(_, v)| !v.is_finite()) {
        None => Ok(()),
        Some((i, _)) => Err(ServeError::BadRequest(format!(
            "record {}: the model's output is not a finite number; its inputs are far outside the range it was trained on",
            i / per_record + 1
        ))),
    }
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

/// Concatenates the IOPS predictions of consecutive row ranges.
fn join_iops(parts: Vec<IopsPrediction>) -> Result<IopsPrediction> {
    let probabilities = parts
        .iter()
        .map(|p| p.probabilities.as_ref().map(|a| a.view()))
        .collect::<Option<Vec<_>>>()
        .map(|views| ndarray::concatenate(Axis(0), &views))
        .transpose()
        .map_err(|e| Error::Fit(e.to_string()))?;
    let scores = parts
        .iter()
        .map(|p| p.scores.clone())
        .collect::<Option<Vec<_>>>()
        .map(|s| s.concat());
    Ok(IopsPrediction {
        probabilities,
        scores,
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

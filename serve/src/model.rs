//! The model being served, loaded from the model directory and described by its manifest.

use crate::codec::{self, FirePredictions, Input, Output};
use crate::error::ServeError;
use common::artifact::{self, Manifest};
use common::models::ensemble::{EnsemblePrediction, FireEnsemble};
use common::opt_ml::OptMl;
use common::{Error, Result};

/// A loaded model, ready to predict (shared by all requests, no locks).
pub struct LoadedModel {
    /// The manifest it was loaded from.
    pub manifest: Manifest,
    ensemble: FireEnsemble,
    members: Vec<&'static str>,
}

impl LoadedModel {
    /// Loads `model/` (or the `model.tar.gz` in it, unpacked under the system temp directory; the
    /// model directory itself is only read).
    pub fn load(opt_ml: &OptMl) -> Result<Self> {
        let scratch = std::env::temp_dir().join(format!("serve-model-{}", std::process::id()));
        let dir = artifact::open_model_dir(&opt_ml.model_dir(), &scratch)?;
        let manifest = Manifest::load(&dir)?;
        match manifest.model_kind.as_str() {
            "fire_ensemble" => {
                let ensemble = FireEnsemble::load(&dir, &manifest)?;
                let members = ensemble.members.iter().map(|(m, _)| m.name()).collect();
                Ok(Self {
                    manifest,
                    ensemble,
                    members,
                })
            }
            other => Err(Error::Artifact(format!(
                "model kind '{other}' is not served by this build (it serves fire_ensemble)"
            ))),
        }
    }

    /// Decodes a body, predicts every record and encodes the answer. Bodies of many records are
    /// predicted on up to `threads` threads, in row ranges.
    pub fn answer(
        &self,
        body: &[u8],
        input: Input,
        output: Output,
        batch: bool,
        threads: usize,
    ) -> Result<String, ServeError> {
        let x = codec::decode(input, body, &self.manifest.feature_names, batch)?;
        let ranges = row_ranges(x.nrows(), threads);
        let results: Vec<Result<EnsemblePrediction>> = if ranges.len() == 1 {
            vec![self.ensemble.predict(x.view())]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = ranges
                    .iter()
                    .map(|r| s.spawn(|| self.ensemble.predict(x.slice(ndarray::s![r.clone(), ..]))))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(Error::Fit("prediction thread panicked".into()))
                        })
                    })
                    .collect()
            })
        };
        let mut member_probabilities = vec![Vec::with_capacity(x.nrows()); self.members.len()];
        let mut probabilities = Vec::with_capacity(x.nrows());
        for result in results {
            let p = result.map_err(|e| {
                tracing::error!(error = %e, "prediction failed");
                ServeError::Internal
            })?;
            for (all, (_, part)) in member_probabilities.iter_mut().zip(p.members) {
                all.extend(part);
            }
            probabilities.extend(p.ensemble);
        }
        let predictions = FirePredictions {
            members: &self.members,
            member_probabilities: &member_probabilities,
            probabilities: &probabilities,
            threshold: self.ensemble.threshold,
        };
        Ok(predictions.encode(output, batch))
    }
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

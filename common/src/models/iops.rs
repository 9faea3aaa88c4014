//! The storage IOPS models as served: a risk-level classifier (4 class probabilities) and a
//! performance-score regressor, either or both, each XGBoost trees compiled for prediction.

use super::trees::{Link, TreeModel};
use crate::artifact::Manifest;
use crate::error::{Error, Result};
use crate::iops::RISK_LEVELS;
use ndarray::{Array2, ArrayView2};

/// Payload name of the classifier.
pub const CLASSIFIER: &str = "risk_classifier";
/// Payload name of the regressor.
pub const REGRESSOR: &str = "performance_regressor";

/// The trained pair (at least one of them).
pub struct IopsModel {
    /// Risk level probabilities.
    pub classifier: Option<TreeModel>,
    /// Performance score.
    pub regressor: Option<TreeModel>,
}

/// Predictions for a batch of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct IopsPrediction {
    /// Per row, the probabilities of low, medium, high, critical.
    pub probabilities: Option<Array2<f32>>,
    /// Per row, the performance score, clipped to [0, 100].
    pub scores: Option<Vec<f32>>,
}

impl IopsPrediction {
    /// The most probable class of row `i` (ties go to the lower risk).
    pub fn class(&self, i: usize) -> Option<usize> {
        Some(crate::metrics::most_probable(
            self.probabilities.as_ref()?.row(i),
        ))
    }
}

impl IopsModel {
    /// Checks the shapes: a 4-class softmax classifier and an identity-link regressor.
    pub fn new(classifier: Option<TreeModel>, regressor: Option<TreeModel>) -> Result<Self> {
        if classifier.is_none() && regressor.is_none() {
            return Err(Error::Artifact(
                "the IOPS model holds neither classifier nor regressor".into(),
            ));
        }
        if let Some(c) = &classifier {
            if c.link != Link::Softmax || c.n_groups() != RISK_LEVELS.len() {
                return Err(Error::Artifact(format!(
                    "the risk classifier must give {} class probabilities",
                    RISK_LEVELS.len()
                )));
            }
        }
        if regressor
            .as_ref()
            .is_some_and(|r| r.link != Link::Identity || r.n_groups() != 1)
        {
            return Err(Error::Artifact(
                "the performance regressor must give one value".into(),
            ));
        }
        Ok(Self {
            classifier,
            regressor,
        })
    }

    /// Loads the compiled trees a manifest lists.
    pub fn load(dir: &std::path::Path, manifest: &Manifest) -> Result<Self> {
        let read = |name: &str| -> Result<Option<TreeModel>> {
            manifest
                .payloads
                .iter()
                .find(|p| p.name == name && p.format == "compiled-trees")
                .map(|p| {
                    let n_features = manifest.feature_names.len();
                    TreeModel::from_bytes(&manifest.read_payload(dir, p)?, n_features)
                })
                .transpose()
        };
        Self::new(read(CLASSIFIER)?, read(REGRESSOR)?)
    }

    /// Predicts every row.
    pub fn predict(&self, x: ArrayView2<f32>) -> IopsPrediction {
        IopsPrediction {
            probabilities: self.classifier.as_ref().map(|c| c.predict(x)),
            scores: self.regressor.as_ref().map(|r| {
                r.predict(x)
                    .column(0)
                    .iter()
                    .map(|v| v.clamp(0.0, 100.0))
                    .collect()
            }),
        }
    }
}

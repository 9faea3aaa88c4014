//! The model being served, loaded from the model directory and described by its manifest.

use crate::codec::{self, FirePredictions, Input, Output};
use crate::error::ServeError;
use common::artifact::{self, Manifest};
use common::models::ensemble::FireEnsemble;
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
                Ok(Self { manifest, ensemble, members })
            }
            other => Err(Error::Artifact(format!("model kind '{other}' is not served by this build (it serves fire_ensemble)"))),
        }
    }

    /// Decodes a body, predicts every record and encodes the answer.
    pub fn answer(&self, body: &[u8], input: Input, output: Output, batch: bool) -> Result<String, ServeError> {
        let x = codec::decode(input, body, &self.manifest.feature_names, batch)?;
        let p = self.ensemble.predict(x.view()).map_err(|e| {
            tracing::error!(error = %e, "prediction failed");
            ServeError::Internal
        })?;
        let member_probabilities: Vec<Vec<f32>> = p.members.into_iter().map(|(_, v)| v).collect();
        let predictions = FirePredictions {
            members: &self.members,
            member_probabilities: &member_probabilities,
            probabilities: &p.ensemble,
            threshold: self.ensemble.threshold,
        };
        Ok(predictions.encode(output, batch))
    }
}

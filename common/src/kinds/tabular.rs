//! Generic tabular models (`model_kind=tabular`): the served candidate's artifact both ways and
//! its answers, shaped as SageMaker's built-in XGBoost answers. The candidates themselves
//! (fitting, prediction) are [`crate::models::tabular`]; the columns come from the data.

use super::{first_non_finite, Model, Predictions};
use crate::artifact::{Manifest, Payload, PayloadFile, PayloadFormat};
use crate::data::number::push_f32;
use crate::data::Schema;
use crate::error::{Error, Result};
use crate::models::tabular::{TabularModel, Task};
use ndarray::{Array2, ArrayView2};
use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

/// The payload of the served candidate.
pub fn payloads(model: &TabularModel) -> Result<Vec<Payload>> {
    let name = model.candidate.name();
    Ok(vec![(
        PayloadFile {
            name: name.into(),
            file: format!("tabular-{name}.bin"),
            format: PayloadFormat::BincodeTabular,
            weight: None,
        },
        model.to_bytes()?,
    )])
}

impl TabularModel {
    /// Loads the served model from a model directory, checking it takes the manifest's features.
    pub fn load(dir: &Path, manifest: &Manifest) -> Result<Self> {
        let format = PayloadFormat::BincodeTabular;
        let payload = manifest
            .payloads
            .iter()
            .find(|p| p.format == format)
            .ok_or_else(|| {
                Error::Artifact(format!(
                    "the tabular model has no {} payload",
                    format.as_str()
                ))
            })?;
        let mut model = Self::from_bytes(&manifest.read_payload(dir, payload)?)?;
        model.keep_compiled_only();
        if model.n_features != manifest.feature_names.len() {
            return Err(Error::Artifact(format!(
                "the tabular model takes {} features, the manifest names {}",
                model.n_features,
                manifest.feature_names.len()
            )));
        }
        model
            .check()
            .map_err(|e| Error::Artifact(format!("the tabular model is corrupt: {e}")))?;
        Ok(model)
    }
}

/// The candidate as served: any feature may be missing (the candidates impute or route it);
/// categorical features are read by name, and text labels answered by name.
pub struct TabularServed {
    model: TabularModel,
    schema: Schema,
    /// The class names as JSON strings, when the labels were text.
    class_names: Option<Arc<[String]>>,
}

impl TabularServed {
    /// Loads the served candidate from a model directory.
    pub fn load(dir: &Path, manifest: &Manifest) -> Result<Self> {
        let model = TabularModel::load(dir, manifest)?;
        let encoding = manifest.encoding()?;
        let class_names = match &encoding.classes {
            None => None,
            Some(c) => {
                let classes = match model.task {
                    Task::Regression => 0,
                    Task::Binary => 2,
                    Task::MultiClass { num_class } => num_class as usize,
                };
                if c.len() != classes {
                    return Err(Error::Artifact(format!(
                        "the manifest names {} classes, the model predicts {classes}",
                        c.len()
                    )));
                }
                Some(
                    c.names()
                        .iter()
                        .map(|n| serde_json::Value::from(n.as_str()).to_string())
                        .collect(),
                )
            }
        };
        let categories = if encoding.has_categorical() {
            encoding.features
        } else {
            Vec::new()
        };
        Ok(Self {
            model,
            schema: Schema {
                feature_names: manifest.feature_names.clone(),
                derived: None,
                targets: vec![],
                allow_missing: true,
                categories,
            },
            class_names,
        })
    }
}

impl Model for TabularServed {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn predict(&self, x: ArrayView2<f32>) -> Result<Box<dyn Predictions>> {
        Ok(Box::new(TabularPredictions {
            values: self.model.predict(x),
            classification: self.model.task != Task::Regression,
            class_names: self.class_names.clone(),
        }))
    }

    fn memory_bytes(&self) -> usize {
        self.model.memory_bytes()
    }

    fn contributions_per_row(&self) -> std::result::Result<usize, String> {
        self.model.contributions_per_row()
    }

    fn contributions(&self, x: ArrayView2<f32>) -> std::result::Result<Array2<f32>, String> {
        self.model.contributions(x)
    }
}

/// Predictions of a tabular model, shaped as SageMaker's built-in XGBoost answers: regression
/// `{"score": v}` (CSV `v`); binary `{"score": p, "predicted_label": 0|1}` (CSV `p`); multi-class
/// `{"score": [p0, ...], "predicted_label": k}` (CSV `p0,...`). With text labels, the predicted
/// label is the class's name, and probabilities are in the order of the manifest's
/// `class_names` (binary: `p` is the second's).
pub struct TabularPredictions {
    /// One row per record.
    pub values: Array2<f32>,
    /// Whether the values are class probabilities (binary or multi-class).
    pub classification: bool,
    /// The class names as JSON strings, when the labels were text.
    pub class_names: Option<Arc<[String]>>,
}

impl TabularPredictions {
    fn label(&self, i: usize) -> usize {
        let row = self.values.row(i);
        if row.len() == 1 {
            return usize::from(row[0] > 0.5);
        }
        crate::metrics::most_probable(row)
    }
}

impl Predictions for TabularPredictions {
    fn records(&self) -> usize {
        self.values.nrows()
    }

    fn json_record(&self, i: usize, out: &mut String) {
        let row = self.values.row(i);
        if row.len() == 1 {
            out.push_str("{\"score\":");
            push_f32(out, row[0]);
        } else {
            out.push_str("{\"score\":[");
            for (k, &p) in row.iter().enumerate() {
                out.push_str(if k == 0 { "" } else { "," });
                push_f32(out, p);
            }
            out.push(']');
        }
        if self.classification {
            let label = self.label(i);
            match &self.class_names {
                Some(names) => {
                    out.push_str(",\"predicted_label\":");
                    out.push_str(&names[label]);
                }
                None => {
                    let _ = write!(out, ",\"predicted_label\":{label}");
                }
            }
        }
        out.push('}');
    }

    fn csv_record(&self, i: usize, out: &mut String) {
        for (k, &p) in self.values.row(i).iter().enumerate() {
            out.push_str(if k == 0 { "" } else { "," });
            push_f32(out, p);
        }
    }

    fn first_non_finite(&self) -> Option<usize> {
        first_non_finite(self.values.iter(), self.values.ncols())
    }
}

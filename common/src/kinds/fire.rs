//! The fire detector (`model_kind=fire_ensemble`): the 18 named FLIR + SCD41 features in model
//! order, the ensemble's artifact both ways, and its answers.
//!
//! The names and their order are part of the artifact format and of every request format;
//! feature-name drift broke the original system once, so they live here and nowhere else.
//! The ensemble itself (members, weights, fitting) is [`crate::models::ensemble`].

use super::{first_non_finite, Deferred, Model, Predictions, XgboostFiles};
use crate::artifact::{Manifest, Payload, PayloadFile, PayloadFormat};
use crate::data::number::push_f32;
use crate::data::{Schema, Target, TargetKind};
use crate::error::{Error, Result};
use crate::models::ensemble::{FireEnsemble, Member, MemberModel};
use crate::models::logistic::LogisticModel;
use crate::models::trees::{self, Link, TreeModel};
use ndarray::{Array2, ArrayView2};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

/// The 18 features in model order: 15 thermal (FLIR) then 3 gas (SCD41 CO2).
pub const FEATURE_NAMES: [&str; 18] = [
    "t_mean",
    "t_std",
    "t_max",
    "t_p95",
    "t_hot_area_pct",
    "t_hot_largest_blob_pct",
    "t_grad_mean",
    "t_grad_std",
    "t_diff_mean",
    "t_diff_std",
    "flow_mag_mean",
    "flow_mag_std",
    "tproxy_val",
    "tproxy_delta",
    "tproxy_vel",
    "gas_val",
    "gas_delta",
    "gas_vel",
];

/// Column and field names accepted for the label: `label` (the ensemble trainer's) and
/// `fire_detected` (the original's older CSV trainer's).
pub const LABEL_NAMES: [&str; 2] = ["label", "fire_detected"];

/// The training-data schema of the fire detector: 18 named features, a 0/1 label.
pub fn schema() -> Schema {
    Schema {
        feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        derived: None,
        targets: vec![Target {
            names: LABEL_NAMES.iter().map(|s| s.to_string()).collect(),
            kind: TargetKind::Binary,
        }],
        allow_missing: false,
        categories: Vec::new(),
    }
}

/// The payloads of a fitted ensemble, and its threshold in `manifest`: per tree member
/// XGBoost's own models and the compiled trees, per logistic member its coefficients.
pub fn payloads(ensemble: &FireEnsemble, manifest: &mut Manifest) -> Result<Vec<Payload>> {
    manifest.threshold = Some(ensemble.threshold);
    let mut payloads = Vec::new();
    for (member, model) in &ensemble.members {
        let weight = ensemble.weights.get(member).copied();
        let payload = |ext: &str, format| PayloadFile {
            name: member.name().into(),
            file: format!("{}.{ext}", member.name()),
            format,
            weight,
        };
        match model {
            MemberModel::Trees {
                trees,
                xgboost_models,
            } => {
                for ubj in xgboost_models {
                    payloads.push((payload("ubj", PayloadFormat::XgboostUbj), ubj.clone()));
                }
                payloads.push((
                    payload("trees", PayloadFormat::CompiledTrees),
                    trees.to_bytes()?,
                ));
            }
            MemberModel::Logistic(m) => payloads.push((
                payload("bin", PayloadFormat::BincodeLogistic),
                m.to_bytes()?,
            )),
        }
    }
    Ok(payloads)
}

impl FireEnsemble {
    /// Loads the ensemble a manifest of kind `fire_ensemble` describes, from `dir`.
    pub fn load(dir: &Path, manifest: &Manifest) -> Result<Self> {
        let n_features = manifest.feature_names.len();
        let mut members = Vec::new();
        let mut weights = BTreeMap::new();
        for p in &manifest.payloads {
            let member = Member::from_name(&p.name)
                .ok_or_else(|| Error::Artifact(format!("unknown ensemble member '{}'", p.name)))?;
            let model = match p.format {
                // XGBoost's own models are in the artifact for XGBoost tooling only.
                PayloadFormat::XgboostUbj => continue,
                PayloadFormat::CompiledTrees => {
                    let trees = TreeModel::from_bytes(&manifest.read_payload(dir, p)?, n_features)?;
                    if trees.link != Link::Logistic || trees.n_groups() != 1 {
                        return Err(Error::Artifact(format!(
                            "member '{}' is not a binary classifier (one logistic output)",
                            p.name
                        )));
                    }
                    MemberModel::Trees {
                        trees,
                        xgboost_models: Vec::new(),
                    }
                }
                PayloadFormat::BincodeLogistic => MemberModel::Logistic(LogisticModel::from_bytes(
                    &manifest.read_payload(dir, p)?,
                    n_features,
                )?),
                other => {
                    return Err(Error::Artifact(format!(
                        "payload format '{}' is not one of a fire ensemble's (member '{}')",
                        other.as_str(),
                        p.name
                    )))
                }
            };
            if weights.insert(member, p.weight.unwrap_or(0.0)).is_some() {
                return Err(Error::Artifact(format!(
                    "the manifest lists member '{}' twice",
                    p.name
                )));
            }
            members.push((member, model));
        }
        if members.is_empty() {
            return Err(Error::Artifact(
                "the manifest lists no ensemble members".into(),
            ));
        }
        Ok(Self {
            members,
            weights,
            threshold: manifest.threshold.unwrap_or(0.5),
        })
    }
}

/// The ensemble as served.
pub struct FireModel {
    ensemble: FireEnsemble,
    members: Vec<&'static str>,
    schema: Schema,
    /// The same ensemble with its trees read from XGBoost's files, which keep the node covers
    /// explanations need (built on the first explanation: they take longer to read than the
    /// compiled trees); `None` when the artifact has none.
    explainer: Deferred<FireEnsemble>,
    /// The tree members' XGBoost files the explainer reads.
    files: Vec<Arc<XgboostFiles>>,
    /// The tree members walked side by side, so that each block of rows is copied and numbered
    /// once, not once per member ([`FireEnsemble::tree_members_together`]). Built for the first
    /// prediction of [`SIDE_BY_SIDE_ROWS`] rows (10-15 ms and 3 MB for the default ensemble,
    /// which cold start and single-record endpoints need not pay); none on multi-model
    /// endpoints, where memory goes to models.
    together: std::sync::OnceLock<Option<(TreeModel, Vec<usize>)>>,
}

/// Rows from which a prediction's tree members are walked side by side (`serve` predicts a
/// large request in row ranges of at least 2,048 rows, so each range of it qualifies).
const SIDE_BY_SIDE_ROWS: usize = 1024;

impl FireModel {
    /// Loads the ensemble from a model directory.
    pub fn load(dir: &Path, manifest: &Manifest) -> Result<Self> {
        let ensemble = FireEnsemble::load(dir, manifest)?;
        let members = ensemble.members.iter().map(|(m, _)| m.name()).collect();
        // Read and compiled on the first explanation (read earlier by `preload_explanations`).
        let parts: Vec<(Member, Option<LogisticModel>, Option<Arc<XgboostFiles>>)> = ensemble
            .members
            .iter()
            .map(|(member, model)| match model {
                MemberModel::Logistic(m) => (*member, Some(m.clone()), None),
                MemberModel::Trees { .. } => (
                    *member,
                    None,
                    Some(XgboostFiles::of(dir, manifest, member.name())),
                ),
            })
            .collect();
        let files = parts.iter().filter_map(|p| p.2.clone()).collect();
        let (weights, threshold) = (ensemble.weights.clone(), ensemble.threshold);
        let explainer = Deferred::new(move || {
            let members = parts
                .into_iter()
                .map(|(member, logistic, files)| {
                    let model = match logistic {
                        Some(m) => MemberModel::Logistic(m),
                        None => MemberModel::Trees {
                            trees: files?.trees()?,
                            xgboost_models: Vec::new(),
                        },
                    };
                    Some((member, model))
                })
                .collect::<Option<Vec<_>>>()?;
            Some(FireEnsemble {
                members,
                weights,
                threshold,
            })
        });
        Ok(Self {
            ensemble,
            members,
            schema: schema(),
            explainer,
            files,
            together: std::sync::OnceLock::new(),
        })
    }

    fn explainer(&self) -> std::result::Result<&FireEnsemble, String> {
        self.explainer.get().ok_or_else(|| {
            "the artifact holds no readable XGBoost files of the tree members, whose node covers explanations need".into()
        })
    }
}

impl Model for FireModel {
    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn predict(&self, x: ArrayView2<f32>) -> Result<Box<dyn Predictions>> {
        let together = (x.nrows() >= SIDE_BY_SIDE_ROWS && !trees::keeping_models_small())
            .then(|| {
                self.together
                    .get_or_init(|| self.ensemble.tree_members_together())
                    .as_ref()
            })
            .flatten();
        let p = self.ensemble.predict_with(x, together)?;
        Ok(Box::new(FirePredictions {
            members: self.members.clone(),
            member_probabilities: p.members.into_iter().map(|(_, q)| q).collect(),
            probabilities: p.ensemble,
            threshold: self.ensemble.threshold,
        }))
    }

    fn memory_bytes(&self) -> usize {
        let together = self
            .together
            .get()
            .and_then(Option::as_ref)
            .map_or(0, |(t, _)| t.memory_bytes());
        let members: usize = self
            .ensemble
            .members
            .iter()
            .map(|(_, m)| m.memory_bytes())
            .sum();
        let preloaded: usize = self.files.iter().map(|f| f.preloaded_bytes()).sum();
        members + together + preloaded
    }

    fn preload_explanations(&self) {
        for f in &self.files {
            f.preload();
        }
    }

    fn contributions_per_row(&self) -> std::result::Result<usize, String> {
        for (member, model) in &self.explainer()?.members {
            if let MemberModel::Trees { trees, .. } = model {
                trees
                    .can_explain()
                    .map_err(|e| format!("member '{}': {e}", member.name()))?;
            }
        }
        Ok(FEATURE_NAMES.len() + 1)
    }

    /// The ensemble probability's contributions ([`FireEnsemble::contributions`]): the 18
    /// features in model order, then the bias.
    fn contributions(&self, x: ArrayView2<f32>) -> std::result::Result<Array2<f32>, String> {
        self.explainer()?.contributions(x)
    }
}

/// The ensemble's answers, as the original service gave them: JSON `{"ensemble_prediction",
/// "ensemble_probability", "individual_predictions": {member: 0|1}, "individual_probabilities":
/// {member: p}}`; CSV `label,probability,p_member...`.
pub struct FirePredictions {
    /// Member names in manifest order.
    pub members: Vec<&'static str>,
    /// Member probabilities, one vector per member.
    pub member_probabilities: Vec<Vec<f32>>,
    /// Ensemble probabilities.
    pub probabilities: Vec<f32>,
    /// Decision threshold.
    pub threshold: f64,
}

impl FirePredictions {
    fn label(&self, p: f32) -> u8 {
        u8::from(f64::from(p) > self.threshold)
    }
}

impl Predictions for FirePredictions {
    fn records(&self) -> usize {
        self.probabilities.len()
    }

    fn json_record(&self, i: usize, out: &mut String) {
        let p = self.probabilities[i];
        let _ = write!(
            out,
            "{{\"ensemble_prediction\":{},\"ensemble_probability\":",
            self.label(p)
        );
        push_f32(out, p);
        for (key, labels) in [
            ("individual_predictions", true),
            ("individual_probabilities", false),
        ] {
            let _ = write!(out, ",\"{key}\":{{");
            for (k, (name, probs)) in self
                .members
                .iter()
                .zip(&self.member_probabilities)
                .enumerate()
            {
                let sep = if k == 0 { "" } else { "," };
                if labels {
                    let _ = write!(out, "{sep}\"{name}\":{}", self.label(probs[i]));
                } else {
                    let _ = write!(out, "{sep}\"{name}\":");
                    push_f32(out, probs[i]);
                }
            }
            out.push('}');
        }
        out.push('}');
    }

    fn csv_record(&self, i: usize, out: &mut String) {
        let p = self.probabilities[i];
        let _ = write!(out, "{},", self.label(p));
        push_f32(out, p);
        for probs in &self.member_probabilities {
            out.push(',');
            push_f32(out, probs[i]);
        }
    }

    fn first_non_finite(&self) -> Option<usize> {
        std::iter::once(&self.probabilities)
            .chain(&self.member_probabilities)
            .filter_map(|values| first_non_finite(values, 1))
            .min()
    }
}

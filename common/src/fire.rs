//! The fire detector's contract: the 18 named FLIR + SCD41 features, in model order.
//!
//! The names and their order are part of the artifact format and of every request format;
//! feature-name drift broke the original system once, so they live here and nowhere else.

use crate::data::{Schema, Target, TargetKind};

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
    }
}

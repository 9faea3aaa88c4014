//! Model families, the machinery the kinds ([`crate::kinds`]) are built from: XGBoost plumbing,
//! compiled trees, XGBoost 1.x files (`legacy`), the standardised logistic regression, the fire ensemble, single boosted
//! models with early stopping, and the generic tabular candidates.

pub mod boosted;
pub mod ensemble;
pub mod legacy;
pub mod logistic;
pub(crate) mod shap;
pub mod tabular;
pub mod trees;
pub mod ubjson;
pub mod xgboost;

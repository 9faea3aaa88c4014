//! Model families: XGBoost plumbing, the standardised logistic regression, the fire ensemble,
//! single boosted models with early stopping, the IOPS pair built from them, and the generic
//! tabular candidates.

pub mod boosted;
pub mod ensemble;
pub mod iops;
pub mod logistic;
pub mod tabular;
pub mod trees;
pub mod xgboost;

//! Model families: XGBoost plumbing, the standardised logistic regression, and the fire ensemble.

pub mod ensemble;
pub mod logistic;
pub mod trees;
pub mod xgboost;

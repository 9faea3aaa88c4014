//! The end-to-end test binary (one binary keeps link time down on small machines).

mod docker_e2e;
mod fuzz_e2e;
mod hostile_e2e;
mod iops_e2e;
mod mme_e2e;
mod multihost_e2e;
mod serve_e2e;
mod tabular_e2e;
mod train_e2e;
mod train_failures;
mod xgboost_e2e;
mod xgboost_train_e2e;

//! Shared logic of the `train` and `serve` binaries.
//!
//! Training flow: [`opt_ml::OptMl`] names the paths → [`hyperparams`] decodes the configuration →
//! [`data::load_channel`] reads each channel into a [`data::Dataset`] → [`split`] makes the
//! train / validation / test rows → [`models::ensemble`] fits the members and weights them →
//! [`metrics`] scores them → [`artifact`] writes the model directory atomically.
//! Serving flow: [`artifact`] opens the model directory → [`kinds::open`] gives the model of its
//! kind → it predicts and writes its answers.

#![warn(missing_docs)]

pub mod access;
pub mod artifact;
pub mod collective;
pub mod contain;
pub mod data;
pub mod datagen;
pub mod error;
pub mod hyperparams;
pub mod kinds;
pub mod memory;
pub mod metrics;
pub mod models;
pub mod opt_ml;
pub mod parallel;
pub mod split;

pub use error::{Error, Result};

/// Sets up line-oriented logging to stderr for a binary (`RUST_LOG` overrides the `info` default;
/// no colours, since SageMaker sends the lines to CloudWatch).
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Peak resident memory of this process so far, in MiB (Linux; 0 elsewhere), for progress logs.
pub fn peak_memory_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

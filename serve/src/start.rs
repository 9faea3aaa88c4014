//! The image's default command, `serve auto`: what to do when SageMaker starts the container
//! with no command (the SageMaker Python SDK v3's local mode does so for training jobs).
//!
//! A training job lays out `/opt/ml/input/config/` (its hyperparameters, channels and hosts); an
//! endpoint or batch transform never does. So `serve auto` becomes `train` (by `exec`, keeping
//! PID 1 and its signals) when that directory is there, and serves otherwise. Explicit `train`
//! and `serve` commands never consult the layout.

use common::opt_ml::OptMl;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

/// Which entry point a container started with no command runs, and why (one log line).
pub fn choose(opt_ml: &OptMl) -> (&'static str, String) {
    let config = opt_ml.config_dir();
    match common::access::present(&config) {
        Ok(true) => (
            "train",
            format!("{} exists: a training job", config.display()),
        ),
        Ok(false) => (
            "serve",
            format!("no {}: an endpoint or batch transform", config.display()),
        ),
        // Only a training job mounts an `input/` directory at all; one we may not enter is one.
        Err(e) => (
            "train",
            format!(
                "{} cannot be inspected ({e}): a training job",
                config.display()
            ),
        ),
    }
}

/// Replaces this process with `train` when the layout is a training job's; returns (to serve)
/// otherwise. An error means `train` could not be started.
pub fn train_if_training_job(opt_ml: &OptMl) -> std::io::Result<()> {
    let (entry, why) = choose(opt_ml);
    tracing::info!("started with no command: {why}, so running {entry}");
    if entry == "serve" {
        return Ok(());
    }
    // `train` sits beside `serve` (/usr/local/bin in the image); PATH is the fallback.
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.join("train")))
        .filter(|p| p.is_file());
    let program = beside.unwrap_or_else(|| PathBuf::from("train"));
    let err = std::process::Command::new(&program).arg("train").exec();
    Err(std::io::Error::new(
        err.kind(),
        format!("cannot start {}: {err}", program.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_directory_means_training() {
        let dir = tempfile::tempdir().unwrap();
        let opt_ml = OptMl::at(dir.path());
        assert_eq!(choose(&opt_ml).0, "serve");
        std::fs::create_dir_all(opt_ml.config_dir()).unwrap();
        assert_eq!(choose(&opt_ml).0, "train");
    }
}

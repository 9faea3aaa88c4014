//! Every path of SageMaker's `/opt/ml` contract, in one place.
//!
//! The root is `/opt/ml` in a real job and `$SAGEMAKER_BASE_DIR` when that is set (the name the
//! SageMaker training toolkit uses), so every behaviour can be tested in a temporary directory.

use std::path::{Path, PathBuf};

/// The SageMaker root directory and the paths below it.
#[derive(Debug, Clone)]
pub struct OptMl {
    root: PathBuf,
}

impl OptMl {
    /// The root named by `SAGEMAKER_BASE_DIR`, else `/opt/ml`.
    pub fn from_env() -> Self {
        let root = std::env::var_os("SAGEMAKER_BASE_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/opt/ml"));
        Self { root }
    }

    /// A root at an explicit path (tests, local tools).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `input/config/`.
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("input/config")
    }

    /// `input/config/hyperparameters.json`.
    pub fn hyperparameters_file(&self) -> PathBuf {
        self.config_dir().join("hyperparameters.json")
    }

    /// `input/config/inputdataconfig.json`.
    pub fn input_data_config_file(&self) -> PathBuf {
        self.config_dir().join("inputdataconfig.json")
    }

    /// `input/config/resourceconfig.json`.
    pub fn resource_config_file(&self) -> PathBuf {
        self.config_dir().join("resourceconfig.json")
    }

    /// `input/data/`, the parent of all channel directories.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("input/data")
    }

    /// `input/data/<channel>/`.
    pub fn channel_dir(&self, channel: &str) -> PathBuf {
        self.data_dir().join(channel)
    }

    /// `model/`, where the artifact goes (and where `serve` reads it).
    pub fn model_dir(&self) -> PathBuf {
        self.root.join("model")
    }

    /// `output/`.
    pub fn output_dir(&self) -> PathBuf {
        self.root.join("output")
    }

    /// `output/data/`, for non-model outputs such as `evaluation.json`.
    pub fn output_data_dir(&self) -> PathBuf {
        self.output_dir().join("data")
    }

    /// `output/failure`, the failure reason SageMaker reports.
    pub fn failure_file(&self) -> PathBuf {
        self.output_dir().join("failure")
    }

    /// `output/success`, written after a good run (as the SageMaker toolkit does).
    pub fn success_file(&self) -> PathBuf {
        self.output_dir().join("success")
    }
}

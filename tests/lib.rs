//! Helpers for the end-to-end tests: a temporary `/opt/ml` tree and the real binaries.

use common::datagen::{self, Layout};
use common::opt_ml::OptMl;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary SageMaker root with the usual sub-directories.
pub struct Sandbox {
    _dir: tempfile::TempDir,
    /// The paths inside it.
    pub opt_ml: OptMl,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// An empty tree: `input/config`, `input/data`, `model`, `output/data`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let opt_ml = OptMl::at(dir.path());
        for d in [opt_ml.config_dir(), opt_ml.data_dir(), opt_ml.model_dir(), opt_ml.output_data_dir()] {
            std::fs::create_dir_all(d).unwrap();
        }
        Self { _dir: dir, opt_ml }
    }

    /// Writes a config file (`hyperparameters.json`, ...) verbatim.
    pub fn config(&self, name: &str, json: &str) -> &Self {
        std::fs::write(self.opt_ml.config_dir().join(name), json).unwrap();
        self
    }

    /// Writes a file into a channel, creating directories.
    pub fn data_file(&self, channel: &str, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.opt_ml.channel_dir(channel).join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Writes `rows` generated fire rows (seeded) into a channel file in `layout`.
    pub fn fire_file(&self, channel: &str, name: &str, rows: usize, seed: u64, layout: Layout) -> PathBuf {
        self.data_file(channel, name, &fire_bytes(rows, seed, layout))
    }

    /// The first line of `output/failure`, if written.
    pub fn failure_reason(&self) -> Option<String> {
        std::fs::read_to_string(self.opt_ml.failure_file()).ok().map(|s| s.lines().next().unwrap_or("").to_owned())
    }

    /// Runs the real `train` binary against this tree.
    pub fn run_train(&self) -> Output {
        self.train_command().output().expect("run train")
    }

    /// The `train` command with `SAGEMAKER_BASE_DIR` pointing here.
    pub fn train_command(&self) -> Command {
        let mut c = Command::new(binary("train"));
        c.arg("train").env("SAGEMAKER_BASE_DIR", self.opt_ml.root()).env("RUST_LOG", "info");
        c
    }
}

/// Generated fire rows (generator rows plus a sixth as many demo rows) in `layout`.
pub fn fire_bytes(rows: usize, seed: u64, layout: Layout) -> Vec<u8> {
    let data = datagen::fire_mix(seed, rows - rows / 6, rows / 6);
    let mut out = Vec::new();
    datagen::write_rows(&data, layout, &mut out).unwrap();
    out
}

/// Small, fast model settings for tests.
pub const SMALL_MODELS: &str = r#""rf_num_trees": "20", "gb_num_round": "20", "rf_max_depth": "6""#;

/// The path of a workspace binary, built next to this test executable
/// (`target/<profile>/deps/e2e-*` → `target/<profile>/<name>`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile directory");
    let path = dir.join(name);
    assert!(path.is_file(), "{} is missing: build it first (`cargo build --workspace --bins`, as scripts/test.sh does)", path.display());
    path
}

/// Text of a process output stream.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

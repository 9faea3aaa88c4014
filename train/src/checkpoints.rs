//! Checkpoints for managed spot training, as the built-in XGBoost algorithm keeps them (the
//! other kinds' are kept the same way: `fire-checkpoint.<steps>`, `iops-checkpoint.<rounds>`,
//! `tabular-checkpoint.<steps>`, each a bincode state of the fit; numbers only grow).
//!
//! They are on only when the job has a `checkpointconfig.json` (SageMaker writes it for jobs with
//! a `CheckpointConfig`); its `LocalPath` (default `/opt/ml/checkpoints`) is the directory
//! SageMaker restores from S3 before the job starts and uploads while it runs. The booster is
//! written there as `xgboost-checkpoint.<iteration>` (XGBoost's UBJSON model of rounds 0 ..=
//! iteration): first under a name ending `.sagemaker-ignore`, which the uploader skips, then
//! renamed, so a checkpoint is whole or absent. The newest five are kept; an older one is
//! deleted only once the uploader's `<file>.sagemaker-uploaded` marker shows S3 has it.

use common::collective::World;
use common::opt_ml::OptMl;
use common::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The built-in kind's checkpoint names: this prefix and the iteration.
pub const PREFIX: &str = "xgboost-checkpoint.";
/// The fire ensemble's: this prefix and the steps done (members, forest parts, rounds).
pub const FIRE_PREFIX: &str = "fire-checkpoint.";
/// The IOPS pair's: this prefix and the two models' rounds done.
pub const IOPS_PREFIX: &str = "iops-checkpoint.";
/// The tabular candidates': this prefix and the steps done (candidates, boosting rounds).
pub const TABULAR_PREFIX: &str = "tabular-checkpoint.";
/// Checkpoints kept (the built-in's number).
pub const KEEP: usize = 5;

/// The checkpoint directory of a job.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
    prefix: &'static str,
}

#[derive(Debug, Default, Deserialize)]
struct CheckpointConfig {
    #[serde(rename = "LocalPath", default)]
    local_path: Option<String>,
}

impl Checkpoints {
    /// The job's checkpoints named `prefix<n>`, when `checkpointconfig.json` exists.
    pub fn from_config(opt_ml: &OptMl, prefix: &'static str) -> Result<Option<Self>> {
        let path = opt_ml.config_dir().join("checkpointconfig.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let config: CheckpointConfig = if bytes.iter().all(u8::is_ascii_whitespace) {
            CheckpointConfig::default()
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| Error::Config(format!("checkpointconfig.json is malformed: {e}")))?
        };
        let dir = config
            .local_path
            .filter(|p| !p.trim().is_empty())
            .map_or_else(|| opt_ml.root().join("checkpoints"), PathBuf::from);
        Ok(Some(Self { dir, prefix }))
    }

    /// Checkpoints `prefix<n>` in `dir`.
    pub fn at(dir: impl Into<PathBuf>, prefix: &'static str) -> Self {
        Self {
            dir: dir.into(),
            prefix,
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Iterations of the complete checkpoints present, newest first.
    fn iterations(&self) -> Result<Vec<u32>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut found: Vec<u32> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let n = name.strip_prefix(self.prefix)?;
                n.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| n.parse().ok())?
            })
            .collect();
        found.sort_unstable_by(|a, b| b.cmp(a));
        Ok(found)
    }

    fn path(&self, iteration: u32) -> PathBuf {
        self.dir.join(format!("{}{iteration}", self.prefix))
    }

    /// The newest checkpoint `usable` accepts (XGBoost can load it), with its iteration; a
    /// checkpoint it refuses is skipped with a warning.
    pub fn latest(
        &self,
        usable: impl Fn(&[u8]) -> std::result::Result<(), String>,
    ) -> Result<Option<(u32, Vec<u8>)>> {
        for iteration in self.iterations()? {
            let path = self.path(iteration);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            match usable(&bytes) {
                Ok(()) => return Ok(Some((iteration, bytes))),
                Err(why) => {
                    tracing::warn!(file = %path.display(), %why, "skipping an unusable checkpoint")
                }
            }
        }
        Ok(None)
    }

    /// Writes the model after `iteration` (temporary name, then rename), then deletes the
    /// checkpoints past the newest [`KEEP`] that S3 has.
    pub fn save(&self, iteration: u32, model: &[u8]) -> Result<()> {
        common::access::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let path = self.path(iteration);
        let partial = self
            .dir
            .join(format!("{}{iteration}.sagemaker-ignore", self.prefix));
        std::fs::write(&partial, model).map_err(|e| Error::io(&partial, e))?;
        std::fs::rename(&partial, &path).map_err(|e| Error::io(&path, e))?;
        common::access::adopt_parent_owner(&path);
        for old in self.iterations()?.into_iter().skip(KEEP) {
            let file = self.path(old);
            let uploaded = PathBuf::from(format!("{}.sagemaker-uploaded", file.display()));
            if uploaded.exists() {
                std::fs::remove_file(&file).map_err(|e| Error::io(&file, e))?;
            }
        }
        Ok(())
    }
}

/// Where training goes on from: the newest checkpoint of the first host that `usable` accepts
/// (sent to every host), as its number and bytes.
pub fn resume_point(
    checkpoints: Option<&Checkpoints>,
    world: &World,
    usable: impl Fn(&[u8]) -> std::result::Result<(), String>,
) -> Result<Option<(u32, Vec<u8>)>> {
    let mine = match checkpoints {
        Some(c) if world.is_leader() => c.latest(usable)?,
        _ => None,
    };
    if !world.is_distributed() {
        return Ok(mine);
    }
    // Sent as the number's 4 bytes and the checkpoint; nothing when there is none.
    let sent = mine.map_or_else(Vec::new, |(i, bytes)| {
        [i.to_le_bytes().to_vec(), bytes].concat()
    });
    let got = world.broadcast(sent)?;
    Ok((got.len() > 4).then(|| {
        let number = u32::from_le_bytes(got[..4].try_into().expect("4 bytes"));
        (number, got[4..].to_vec())
    }))
}

/// Where a kind's fit goes on from: the state in the newest checkpoint `prefix<n>` that
/// `decode` reads (logged as `Resuming from iteration n (what n counts)`), else the default;
/// with the checkpoints this host writes (the first host's, when the job keeps them).
pub fn resume<T: Default>(
    job: &crate::Job,
    prefix: &'static str,
    counts: &str,
    decode: impl Fn(&[u8]) -> Result<T>,
) -> Result<(Option<Checkpoints>, T)> {
    let checkpoints = job.checkpoints(prefix)?;
    let usable = |b: &[u8]| decode(b).map(|_| ()).map_err(|e| e.to_string());
    let state = match resume_point(checkpoints.as_ref(), job.world, usable)? {
        Some((n, bytes)) => {
            tracing::info!(n, "Resuming from iteration {n} ({counts})");
            decode(&bytes)?
        }
        None => T::default(),
    };
    Ok((checkpoints.filter(|_| job.world.is_leader()), state))
}

/// A kind's fit state as checkpoint bytes (bincode).
pub fn encode<T: Serialize>(state: &T) -> Result<Vec<u8>> {
    bincode::serde::encode_to_vec(state, bincode::config::standard())
        .map_err(|e| Error::Fit(format!("encoding a checkpoint: {e}")))
}

/// A state written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(s, _)| s)
        .map_err(|e| Error::Fit(format!("a checkpoint is corrupt: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_whole_newest_first_old_ones_deleted_only_once_uploaded() {
        let dir = tempfile::tempdir().unwrap();
        let c = Checkpoints::at(dir.path(), PREFIX);
        assert_eq!(c.latest(|_| Ok(())).unwrap(), None);
        for i in 0..8u32 {
            c.save(i, &[i as u8]).unwrap();
            if i == 1 {
                // S3 has checkpoint 1 (and not 0): only 1 may go once it is old.
                std::fs::write(
                    dir.path().join(format!("{PREFIX}1.sagemaker-uploaded")),
                    b"",
                )
                .unwrap();
            }
        }
        std::fs::write(
            dir.path().join(format!("{PREFIX}9.sagemaker-ignore")),
            b"half",
        )
        .unwrap();
        std::fs::write(dir.path().join("xgboost-checkpoint.x"), b"").unwrap();
        assert_eq!(c.iterations().unwrap(), vec![7, 6, 5, 4, 3, 2, 0]);
        assert_eq!(c.latest(|_| Ok(())).unwrap(), Some((7, vec![7])));
        // An unusable newest one is skipped.
        let refuse_7 = |b: &[u8]| {
            if b == [7] {
                Err("corrupt".to_string())
            } else {
                Ok(())
            }
        };
        assert_eq!(c.latest(refuse_7).unwrap(), Some((6, vec![6])));
    }

    #[test]
    fn on_only_with_a_checkpoint_config() {
        let dir = tempfile::tempdir().unwrap();
        let opt_ml = OptMl::at(dir.path());
        std::fs::create_dir_all(opt_ml.config_dir()).unwrap();
        assert!(Checkpoints::from_config(&opt_ml, PREFIX).unwrap().is_none());
        std::fs::write(opt_ml.config_dir().join("checkpointconfig.json"), b"{}").unwrap();
        let c = Checkpoints::from_config(&opt_ml, PREFIX).unwrap().unwrap();
        assert_eq!(c.dir(), dir.path().join("checkpoints"));
        std::fs::write(
            opt_ml.config_dir().join("checkpointconfig.json"),
            br#"{"LocalPath": "/somewhere/else", "S3Uri": "s3://b/k"}"#,
        )
        .unwrap();
        let c = Checkpoints::from_config(&opt_ml, PREFIX).unwrap().unwrap();
        assert_eq!(c.dir(), Path::new("/somewhere/else"));
    }
}

//! The job's verdict for SageMaker: `output/failure` with a reason, or `output/success`.

use common::opt_ml::OptMl;
use std::io::Write;

/// Most of the failure file SageMaker shows as `FailureReason`.
pub const FAILURE_REASON_LIMIT: usize = 1024;

/// Writes the failure reason, unless another writer already did (the first failure is the
/// cause; later ones are consequences). The first line is the whole message, so the first
/// 1024 characters SageMaker shows carry the actionable part.
pub fn write_failure(opt_ml: &OptMl, reason: &str) {
    let path = opt_ml.failure_file();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let reason = reason.replace('\n', " ");
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            let _ = writeln!(f, "{reason}");
            let _ = f.sync_all();
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            tracing::warn!(path = %path.display(), "a failure file exists already; keeping the first reason");
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot write the failure file")
        }
    }
}

/// Writes the empty `output/success` marker.
pub fn write_success(opt_ml: &OptMl) -> std::io::Result<()> {
    std::fs::create_dir_all(opt_ml.output_dir())?;
    std::fs::write(opt_ml.success_file(), b"")
}

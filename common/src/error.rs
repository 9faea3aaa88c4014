//! The one error type of the shared library.
//!
//! Every variant carries a message written for the person who has to fix the input: SageMaker
//! shows the first 1024 characters of `/opt/ml/output/failure` as the job's `FailureReason`.

use std::path::PathBuf;

/// Result alias used throughout `common`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong, grouped by who has to act.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A hyperparameter is unknown, unparsable or out of range.
    #[error("Hyperparameter error: {0}")]
    Hyperparameter(String),
    /// A channel or config file is missing or malformed.
    #[error("Input configuration error: {0}")]
    Config(String),
    /// This process may not read or write a path it needs (names the path, its owner and mode,
    /// and the process's ids).
    #[error("Permission error: {0}")]
    Permission(String),
    /// Training data is malformed (names the file and line).
    #[error("Data error: {0}")]
    Data(String),
    /// An I/O operation failed on a named path.
    #[error("I/O error on '{path}': {source}")]
    Io {
        /// The path the operation was on.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Model fitting failed.
    #[error("Training error: {0}")]
    Fit(String),
    /// A model artifact is missing, corrupt or of an unknown format.
    #[error("Model artifact error: {0}")]
    Artifact(String),
    /// The hosts of a multi-host job could not find or keep reaching each other.
    #[error("Distributed training error: {0}")]
    Collective(String),
    /// The job was asked to stop (SIGTERM) before it finished.
    #[error("Stopped: {0}")]
    Stopped(String),
}

impl Error {
    /// Wraps an I/O error with the path it happened on; a permission error is explained
    /// ([`crate::access::explain_denied`]).
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            return Error::Permission(crate::access::explain_denied(&path, &source));
        }
        Error::Io { path, source }
    }
}

impl From<xgb::XGBError> for Error {
    fn from(e: xgb::XGBError) -> Self {
        Error::Fit(format!("XGBoost: {}", xgboost_message(&e.to_string())))
    }
}

/// `text` as one line of printable characters, at most `max` of them (cut ones end in `...`):
/// for messages that quote what a file or library said.
pub fn one_line(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max + 1)
        .collect();
    if out.chars().count() > max {
        out = out.chars().take(max.saturating_sub(3)).collect::<String>() + "...";
    }
    out
}

/// The message of an XGBoost error without its C++ stack trace and the `[time] /build/path:line:`
/// prefix: host library paths never reach a failure file or a response.
pub fn xgboost_message(raw: &str) -> String {
    let head = raw.split("Stack trace:").next().unwrap_or(raw);
    let lines = head.lines().map(|line| {
        let line = line.trim();
        let line = match line.strip_prefix('[').and_then(|r| r.split_once("] ")) {
            Some((_, rest)) => rest,
            None => line,
        };
        // `/path/to/file.cc:123: message`
        match line.split_once(": ") {
            Some((place, rest))
                if place.contains('/')
                    && place
                        .rsplit(':')
                        .next()
                        .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit())) =>
            {
                rest
            }
            _ => line,
        }
    });
    lines
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn xgboost_errors_lose_stack_traces_and_paths() {
        let raw = "[10:11:12] /workspace/src/data/data.cc:123: Check failed: valid: Input data contains `inf` or a value too large.\nStack trace:\n  [bt] (0) /usr/lib/libxgboost.so(+0x1234) [0x7f]\n";
        assert_eq!(
            super::xgboost_message(raw),
            "Check failed: valid: Input data contains `inf` or a value too large."
        );
    }
}

//! The server's configuration, from the environment SageMaker sets.

use std::time::Duration;

/// One MiB; SageMaker's "MB" limits are MiB.
const MIB: usize = 1024 * 1024;

/// Effective serving settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// TCP port: `SAGEMAKER_BIND_TO_PORT`, else 8080.
    pub port: u16,
    /// Batch transform (`SAGEMAKER_BATCH=true`): one output line per input line.
    pub batch: bool,
    /// Largest accepted body in bytes: `SAGEMAKER_MAX_PAYLOAD_IN_MB` when set, else 6 MiB for
    /// real-time and 100 MiB (the batch maximum) for batch.
    pub max_body_bytes: usize,
    /// `Accept` used when a request has none or `*/*`: `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`,
    /// else `application/json`.
    pub default_accept: String,
    /// Requests predicting at once: `SAGEMAKER_MODEL_SERVER_WORKERS`, else the usable CPUs.
    pub workers: usize,
    /// Requests admitted (predicting or waiting) before answering 503: `SERVE_MAX_IN_FLIGHT`,
    /// default 512.
    pub max_in_flight: usize,
    /// How long a SIGTERM waits for in-flight requests before exiting anyway.
    pub drain_timeout: Duration,
}

impl ServeConfig {
    /// Reads the environment; unparsable values fall back to defaults with a warning.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let number = |key: &str| -> Option<usize> {
            let v = get(key)?;
            match v.trim().parse::<usize>() {
                Ok(n) => Some(n),
                Err(_) => {
                    tracing::warn!(key, value = %v, "ignoring a setting that is not a whole number");
                    None
                }
            }
        };
        let batch = get("SAGEMAKER_BATCH").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let max_mb = number("SAGEMAKER_MAX_PAYLOAD_IN_MB")
            .filter(|&n| n > 0)
            .unwrap_or(if batch { 100 } else { 6 });
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            port: number("SAGEMAKER_BIND_TO_PORT")
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(8080),
            batch,
            max_body_bytes: max_mb * MIB,
            default_accept: get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "application/json".into()),
            workers: number("SAGEMAKER_MODEL_SERVER_WORKERS")
                .filter(|&n| n > 0)
                .unwrap_or(cpus),
            max_in_flight: number("SERVE_MAX_IN_FLIGHT")
                .filter(|&n| n > 0)
                .unwrap_or(512),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> ServeConfig {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ServeConfig::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let d = cfg(&[]);
        assert_eq!(
            (d.port, d.batch, d.max_body_bytes, d.default_accept.as_str()),
            (8080, false, 6 * MIB, "application/json")
        );
        let b = cfg(&[
            ("SAGEMAKER_BATCH", "TRUE"),
            ("SAGEMAKER_BIND_TO_PORT", "9091"),
        ]);
        assert_eq!((b.port, b.batch, b.max_body_bytes), (9091, true, 100 * MIB));
        let c = cfg(&[
            ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "20"),
            ("SAGEMAKER_MODEL_SERVER_WORKERS", "x"),
        ]);
        assert_eq!(c.max_body_bytes, 20 * MIB);
        assert!(c.workers >= 1);
    }
}

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
    /// else `application/json` (or the model's own default: `text/csv` for XGBoost models trained
    /// elsewhere, see `default_accept_given`).
    pub default_accept: String,
    /// Whether `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` was set (it then overrides the model's).
    pub default_accept_given: bool,
    /// Requests predicting at once: `SAGEMAKER_MODEL_SERVER_WORKERS`, else the usable CPUs.
    pub workers: usize,
    /// Requests admitted (predicting or waiting) before answering 503: `SERVE_MAX_IN_FLIGHT`,
    /// default 512.
    pub max_in_flight: usize,
    /// How long a SIGTERM waits for in-flight requests before exiting anyway.
    pub drain_timeout: Duration,
    /// Deadline for a request's headers (which also closes a keep-alive connection idle that
    /// long) and longest pause within its body: `SERVE_READ_TIMEOUT_SECS`, default 10.
    pub read_timeout: Duration,
    /// Deadline for a whole request, body and answer: `SAGEMAKER_MODEL_SERVER_TIMEOUT` (seconds,
    /// as SageMaker's own containers read it), default 60.
    pub request_timeout: Duration,
    /// Open connections at most: `SERVE_MAX_CONNECTIONS`, default 10,000, and always below
    /// the open-file limit (`connections::connection_cap`).
    pub max_connections: usize,
    /// The user and group a process started as root switches to once the model is loaded:
    /// `SERVE_USER` as `uid:gid` (or `uid`, gid the same), default 10001:10001 (the image's
    /// `sagemaker` user); `root` keeps root. With several models (`multi_model`) models arrive
    /// while serving, readable perhaps only by root, so root is kept unless `SERVE_USER` is set.
    pub run_as: Option<(u32, u32)>,
    /// Multi-model endpoint (`SAGEMAKER_MULTI_MODEL=true`): no model at start, models loaded and
    /// unloaded through `/models`.
    pub multi_model: bool,
    /// Share of the container's memory (cgroup limit) models may fill before a load answers
    /// 507: `SERVE_MODEL_MEMORY_FRACTION`, default 0.9; the rest is for requests in flight.
    pub model_memory_fraction: f64,
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
        let multi_model =
            get("SAGEMAKER_MULTI_MODEL").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let cpus = common::parallel::cores();
        Self {
            port: number("SAGEMAKER_BIND_TO_PORT")
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(8080),
            batch,
            max_body_bytes: max_mb * MIB,
            default_accept: get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "application/json".into()),
            default_accept_given: get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
                .is_some_and(|s| !s.trim().is_empty()),
            workers: number("SAGEMAKER_MODEL_SERVER_WORKERS")
                .filter(|&n| n > 0)
                .unwrap_or(cpus),
            max_in_flight: number("SERVE_MAX_IN_FLIGHT")
                .filter(|&n| n > 0)
                .unwrap_or(512),
            drain_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(
                number("SERVE_READ_TIMEOUT_SECS")
                    .filter(|&n| n > 0)
                    .unwrap_or(10) as u64,
            ),
            request_timeout: Duration::from_secs(
                number("SAGEMAKER_MODEL_SERVER_TIMEOUT")
                    .filter(|&n| n > 0)
                    .unwrap_or(60) as u64,
            ),
            max_connections: number("SERVE_MAX_CONNECTIONS")
                .filter(|&n| n > 0)
                .unwrap_or(10_000),
            run_as: match get("SERVE_USER") {
                None if multi_model => None,
                user => run_as(user.as_deref()),
            },
            multi_model,
            model_memory_fraction: get("SERVE_MODEL_MEMORY_FRACTION")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|f| *f > 0.0 && *f <= 1.0)
                .unwrap_or(0.9),
        }
    }
}

/// The image's unprivileged user, `sagemaker`.
const DEFAULT_RUN_AS: (u32, u32) = (10001, 10001);

fn run_as(value: Option<&str>) -> Option<(u32, u32)> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Some(DEFAULT_RUN_AS);
    };
    if v.eq_ignore_ascii_case("root") {
        return None;
    }
    let (uid, gid) = v.split_once(':').unwrap_or((v, v));
    match (uid.trim().parse(), gid.trim().parse()) {
        (Ok(0), _) => None,
        (Ok(uid), Ok(gid)) => Some((uid, gid)),
        _ => {
            tracing::warn!(
                value = v,
                "SERVE_USER is not uid:gid or root; using 10001:10001"
            );
            Some(DEFAULT_RUN_AS)
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
        assert_eq!(d.run_as, Some((10001, 10001)));
        assert_eq!(cfg(&[("SERVE_USER", "root")]).run_as, None);
        assert_eq!(cfg(&[("SERVE_USER", "1000:100")]).run_as, Some((1000, 100)));
        assert_eq!(cfg(&[("SERVE_USER", "65534")]).run_as, Some((65534, 65534)));
        let mme = cfg(&[("SAGEMAKER_MULTI_MODEL", "TRUE")]);
        assert!(mme.multi_model && !d.multi_model);
        assert_eq!(
            mme.run_as, None,
            "models arriving later may be root's alone"
        );
        assert_eq!(
            cfg(&[("SAGEMAKER_MULTI_MODEL", "true"), ("SERVE_USER", "1000")]).run_as,
            Some((1000, 1000))
        );
        assert_eq!(d.model_memory_fraction, 0.9);
    }
}

//! Training on several hosts: joining them through XGBoost's collective, and each host's share
//! of the rows.
//!
//! The hosts are `resourceconfig.json`'s, sorted; the first runs the tracker (port 9099, as the
//! built-in algorithm) and writes the model, all of them train. Host names may resolve late, so
//! resolving the first host and joining are retried with backoff up to a bound
//! (`SAGEMAKER_TABULAR_HOST_WAIT_SECONDS`, default 900 s, the built-in's 15 minutes). A job of one
//! host (or no `resourceconfig.json`) starts no tracker and opens no port.

use crate::config::{ChannelConfig, ResourceConfig};
use crate::stop::StopFlag;
use common::collective::{JoinConfig, Tracker, World};
use common::data::categories::Categories;
use common::data::Dataset;
use common::{Error, Result};
use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tracker's port (the built-in's).
pub const DEFAULT_TRACKER_PORT: u16 = 9099;
/// How long resolving and joining the hosts may take by default (the built-in's 15 minutes).
pub const DEFAULT_HOST_WAIT: Duration = Duration::from_secs(15 * 60);
/// How long one collective operation may wait for a peer by default (XGBoost's own default):
/// a host cut off from the others makes every host fail after this long; a host that exits or
/// is killed makes them fail at once.
pub const DEFAULT_COLLECTIVE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Where and how long the hosts look for each other; the job's `Environment` may change each.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `SAGEMAKER_TABULAR_TRACKER_PORT`.
    pub tracker_port: u16,
    /// `SAGEMAKER_TABULAR_HOST_WAIT_SECONDS`.
    pub host_wait: Duration,
    /// `SAGEMAKER_TABULAR_COLLECTIVE_TIMEOUT_SECONDS`.
    pub collective_timeout: Duration,
}

impl Settings {
    /// The settings from the environment, defaults where unset.
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u64| -> Result<u64> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        Error::Config(format!("{name}={v:?} is not a positive whole number"))
                    }),
            }
        };
        let port = number(
            "SAGEMAKER_TABULAR_TRACKER_PORT",
            DEFAULT_TRACKER_PORT.into(),
        )?;
        Ok(Self {
            // The next port is the liveness port, so the last one is refused too.
            tracker_port: u16::try_from(port)
                .ok()
                .filter(|&p| p < u16::MAX)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "SAGEMAKER_TABULAR_TRACKER_PORT={port} is not a port below 65535"
                    ))
                })?,
            host_wait: Duration::from_secs(number(
                "SAGEMAKER_TABULAR_HOST_WAIT_SECONDS",
                DEFAULT_HOST_WAIT.as_secs(),
            )?),
            collective_timeout: Duration::from_secs(number(
                "SAGEMAKER_TABULAR_COLLECTIVE_TIMEOUT_SECONDS",
                DEFAULT_COLLECTIVE_TIMEOUT.as_secs(),
            )?),
        })
    }
}

/// The hosts of a job as training sees them.
pub struct Cluster {
    /// This host's place among them (a single-host world for a job of one host).
    pub world: World,
    /// The sorted host names (one name, or none, for a single host).
    pub hosts: Vec<String>,
    /// The tracker, on the first host.
    tracker: Option<Tracker>,
    /// The port every host answers on while it lives, so that the others can tell which host
    /// is gone (the tracker's port + 1, as the built-in's second port).
    liveness_port: u16,
    /// Whether a host that stops answering still fails this one (until the final barrier).
    watching: Arc<AtomicBool>,
}

/// What a host does once another host has stopped answering: given the reason, it writes the
/// failure and ends the process.
pub type OnLostHost = Arc<dyn Fn(&str) + Send + Sync>;

impl Cluster {
    /// A job of one host.
    pub fn single() -> Self {
        Self {
            world: World::single(),
            hosts: Vec::new(),
            tracker: None,
            liveness_port: 0,
            watching: Arc::default(),
        }
    }

    /// Joins the other hosts of the job, if there are any. From then on each host watches the
    /// others: one that does not answer [`PROBE_MISSES`] probes in a row makes this host call
    /// `on_lost` (XGBoost alone may wait its whole collective timeout on a peer that is gone).
    pub fn join(
        resources: &ResourceConfig,
        settings: &Settings,
        stop: &StopFlag,
        on_lost: OnLostHost,
    ) -> Result<Self> {
        let mut hosts = resources.hosts.clone();
        hosts.sort();
        hosts.dedup();
        if hosts.len() <= 1 {
            return Ok(Self::single());
        }
        let me = resources.current_host.clone().ok_or_else(|| {
            Error::Config(format!(
                "resourceconfig.json lists {} hosts but no current_host",
                hosts.len()
            ))
        })?;
        let my_rank = hosts.iter().position(|h| *h == me).ok_or_else(|| {
            Error::Config(format!(
                "resourceconfig.json: current_host {me:?} is not among the hosts {hosts:?}"
            ))
        })?;
        let deadline = Instant::now() + settings.host_wait;
        let first = &hosts[0];
        let liveness_port = settings.tracker_port.wrapping_add(1);
        answer_while_alive(&resolve(&me, deadline, stop)?, liveness_port)?;
        let tracker = if my_rank == 0 {
            tracing::info!(
                port = settings.tracker_port,
                hosts = hosts.len(),
                "starting the tracker"
            );
            Some(Tracker::start(
                hosts.len(),
                settings.tracker_port,
                settings.host_wait,
            )?)
        } else {
            None
        };
        let address = resolve(first, deadline, stop)?;
        let config = JoinConfig {
            tracker_address: address.clone(),
            tracker_port: settings.tracker_port,
            task_id: me.clone(),
            timeout: settings.collective_timeout,
            // Also the attempts on each peer while the hosts connect to each other.
            retries: 3,
        };
        let world = retry_until(deadline, stop, "joining the other hosts", || {
            World::join(&config)
        })
            .map_err(|e| {
                Error::Collective(format!(
                    "host {me} could not join the hosts {hosts:?} through the tracker on {first} ({address}:{}) within {} s: {e}",
                    settings.tracker_port,
                    settings.host_wait.as_secs()
                ))
            })?;
        if world.size() != hosts.len() || world.rank() != my_rank {
            // Leaving the communicator would wait on the others: fail at once.
            on_lost(&format!(
                "Distributed training error: host {me} joined as rank {} of {}, expected rank {my_rank} of {}",
                world.rank(),
                world.size(),
                hosts.len()
            ));
        }
        tracing::info!(host = %me, rank = my_rank, hosts = ?hosts, "joined the hosts: every host trains, the first writes the model");
        let watching = Arc::new(AtomicBool::new(true));
        for peer in hosts.iter().filter(|h| **h != me) {
            watch(
                peer.clone(),
                liveness_port,
                Arc::clone(&watching),
                Arc::clone(&on_lost),
            );
        }
        Ok(Self {
            world,
            hosts,
            tracker,
            liveness_port,
            watching,
        })
    }

    /// This host's name ("" for a single host).
    pub fn current_host(&self) -> &str {
        self.hosts.get(self.world.rank()).map_or("", String::as_str)
    }

    /// Waits for every host (so none exits before the model is written: SDK local mode stops
    /// every container once one exits); past it, the others may exit at any moment, so they are
    /// no longer watched.
    pub fn barrier(&self) -> Result<()> {
        self.world.barrier()?;
        self.watching.store(false, Ordering::SeqCst);
        Ok(())
    }

    /// Leaves the communicator after [`Cluster::barrier`] and, on the first host, waits for the
    /// tracker.
    pub fn finish(self) -> Result<()> {
        let Self { world, tracker, .. } = self;
        drop(world);
        if let Some(tracker) = tracker {
            tracker.wait()?;
        }
        Ok(())
    }

    /// Adds which host this is to an error of a multi-host job and, when the collective lost a
    /// peer, which hosts no longer answer (probed on their liveness port for a few seconds).
    pub fn explain(&self, error: Error) -> Error {
        if !self.world.is_distributed() {
            return error;
        }
        let me = self.current_host();
        let lost = || {
            let gone = self.unreachable_hosts();
            if gone.is_empty() {
                "every other host still answers (one of them failed: its own failure file says why)"
                    .to_string()
            } else {
                format!(
                    "lost host(s) {} (failed, stopped, or cut off from the network)",
                    gone.join(", ")
                )
            }
        };
        match error {
            Error::Collective(m) => {
                Error::Collective(format!("on host {me} of {:?}: {}: {m}", self.hosts, lost()))
            }
            Error::Fit(m) if looks_like_a_lost_peer(&m) => {
                Error::Collective(format!("on host {me} of {:?}: {}: {m}", self.hosts, lost()))
            }
            other => other,
        }
    }

    /// The other hosts that do not accept a connection on their liveness port within 3 s.
    fn unreachable_hosts(&self) -> Vec<String> {
        let me = self.world.rank();
        let probes: Vec<_> = self
            .hosts
            .iter()
            .enumerate()
            .filter(|(rank, _)| *rank != me)
            .map(|(_, host)| {
                let (host, port) = (host.clone(), self.liveness_port);
                std::thread::spawn(move || {
                    let answers = answers(&host, port);
                    (host, answers)
                })
            })
            .collect();
        probes
            .into_iter()
            .filter_map(|p| p.join().ok())
            .filter(|(_, answers)| !answers)
            .map(|(host, _)| host)
            .collect()
    }
}

/// How long a failed host keeps answering on its liveness port before it exits, so that the
/// other failed hosts' probes count it as alive.
pub const LIVENESS_GRACE: Duration = Duration::from_secs(5);
/// Seconds between two probes of a peer.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How long one probe waits for a peer to accept.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Probes in a row a peer may miss before it counts as lost: a killed host is noticed within
/// about 15 s, a host cut off from the network within about 30 s.
pub const PROBE_MISSES: u32 = 3;

/// Whether `host` accepts a connection on `port` within [`PROBE_TIMEOUT`].
fn answers(host: &str, port: u16) -> bool {
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|addr| std::net::TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok())
}

/// Probes `peer` every [`PROBE_INTERVAL`] while `watching`; calls `on_lost` after
/// [`PROBE_MISSES`] misses in a row.
fn watch(peer: String, port: u16, watching: Arc<AtomicBool>, on_lost: OnLostHost) {
    std::thread::spawn(move || {
        let mut misses = 0;
        let mut since = Instant::now();
        while watching.load(Ordering::SeqCst) {
            std::thread::sleep(PROBE_INTERVAL);
            if answers(&peer, port) {
                misses = 0;
                continue;
            }
            if misses == 0 {
                since = Instant::now();
            }
            misses += 1;
            tracing::warn!(host = %peer, misses, "another host does not answer");
            if misses >= PROBE_MISSES && watching.load(Ordering::SeqCst) {
                on_lost(&format!(
                    "Distributed training error: lost host {peer}: it has not answered for {} s (it failed, was stopped, or was cut off from the network; its own failure file, if it could write one, says why); every host stops",
                    since.elapsed().as_secs() + PROBE_INTERVAL.as_secs()
                ));
            }
        }
    });
}

/// Accepts (and closes) connections on `port` for the rest of the process's life: on every
/// interface, or only on `address` when this host's name is a loopback address (hosts on one
/// machine, as in the tests; a name resolving to 127.0.1.1 would not do on a real cluster).
fn answer_while_alive(address: &str, port: u16) -> Result<()> {
    let loopback = address
        .parse::<std::net::IpAddr>()
        .is_ok_and(|a| a.is_loopback());
    let address = if loopback { address } else { "0.0.0.0" };
    let listener = std::net::TcpListener::bind((address, port)).map_err(|e| {
        Error::Collective(format!("cannot listen on {address}:{port} (liveness): {e}"))
    })?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    Ok(())
}

/// Whether an XGBoost error is the collective losing a peer rather than a modelling error.
fn looks_like_a_lost_peer(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "socket",
        "connection",
        "timeout",
        "timed out",
        "peer",
        "tracker",
        "recv",
        "send",
        "broken pipe",
        "eof",
        "closed",
        "allreduce",
        "allgather",
        "broadcast",
        "collective",
    ]
    .iter()
    .any(|k| m.contains(k))
}

/// The first address of `host`, retried with backoff until `deadline` (names of SageMaker's
/// hosts may take a while to appear in DNS).
fn resolve(host: &str, deadline: Instant, stop: &StopFlag) -> Result<String> {
    retry_until(deadline, stop, &format!("resolving host {host}"), || {
        (host, 0)
            .to_socket_addrs()
            .map_err(|e| Error::Collective(format!("cannot resolve host {host}: {e}")))?
            .next()
            .map(|a| a.ip().to_string())
            .ok_or_else(|| Error::Collective(format!("host {host} has no address")))
    })
}

/// Runs `attempt` until it succeeds, `deadline` passes or SIGTERM arrives, waiting 0.5, 1, 2,
/// ... up to 30 s between attempts; each failed attempt is logged once.
fn retry_until<T>(
    deadline: Instant,
    stop: &StopFlag,
    what: &str,
    mut attempt: impl FnMut() -> Result<T>,
) -> Result<T> {
    let mut wait = Duration::from_millis(500);
    for n in 1.. {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) => {
                stop.check()?;
                if Instant::now() + wait > deadline {
                    return Err(e);
                }
                tracing::warn!(attempt = n, retry_in_s = wait.as_secs_f32(), error = %e, "{what}: retrying");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
    unreachable!("the loop returns")
}

/// On several hosts, the same columns on every host, before the later channels are matched to
/// them: the widest host's width (narrower libsvm rows widened with absent entries; rows of
/// fixed width must agree), then the same names, text columns and text labels (each host codes
/// what its own files hold, so sharded files with other names would give a code other meanings).
/// Every host takes the same decision from the same sums, so all fail alike or none.
pub fn agree_on_columns(train: &mut Dataset, world: &World) -> Result<()> {
    if !world.is_distributed() {
        return Ok(());
    }
    let fixed_width = f64::from(u8::from(!train.absent_is_zero));
    let m = world.min_max(&[train.features.ncols() as f64, fixed_width])?;
    let (narrowest, widest, fixed) = (m[0][0] as usize, m[0][1] as usize, m[1][1] > 0.0);
    if widest != narrowest {
        if fixed {
            return Err(Error::Data(format!(
                "the hosts' train channels have from {narrowest} to {widest} columns (this host {}); every host's files need the same columns",
                train.features.ncols()
            )));
        }
        let old = train.features.ncols();
        let mut wider = ndarray::Array2::from_elem((train.len(), widest), f32::NAN);
        wider
            .slice_mut(ndarray::s![.., ..old])
            .assign(&train.features);
        train.features = wider;
        train
            .feature_names
            .extend((old..widest).map(|k| format!("f{k}")));
    }
    let e = &train.encoding;
    let names = |c: Option<&Categories>| c.map(|c| c.names().join("\u{1f}")).unwrap_or_default();
    let described = format!(
        "{}|{}|{}",
        train.feature_names.join("\u{1f}"),
        (0..e.features.len())
            .map(|k| names(e.feature(k)))
            .collect::<Vec<_>>()
            .join("\u{1e}"),
        names(e.classes.as_ref())
    );
    // FNV-1a of the description, in two halves a f64 holds exactly.
    let hash = described.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let halves = [(hash >> 32) as f64, (hash & 0xffff_ffff) as f64];
    if world.min_max(&halves)?.iter().any(|[lo, hi]| lo != hi) {
        return Err(Error::Data(
            "the hosts' train channels differ in their column names, the names in their text columns, or their text labels; with text columns on several hosts use S3DistributionType=FullyReplicated, so every host codes the same names".into(),
        ));
    }
    Ok(())
}

/// Whether each host reads all of the channel's files (`FullyReplicated`, SageMaker's default),
/// rather than its own share of them (`ShardedByS3Key`).
pub fn is_replicated(channel: Option<&ChannelConfig>) -> bool {
    channel
        .and_then(|c| c.distribution.as_deref())
        .is_none_or(|d| !d.eq_ignore_ascii_case("ShardedByS3Key"))
}

/// This host's share of rows every host holds alike: every `size`-th row from its rank, or,
/// for ranking data, every `size`-th query group (a group never spans hosts).
pub fn share(rows: Dataset, world: &World) -> Dataset {
    if !world.is_distributed() {
        return rows;
    }
    let (rank, size) = (world.rank(), world.size());
    let keep: Vec<usize> = match &rows.query_ids {
        None => (rank..rows.len()).step_by(size).collect(),
        Some(q) => {
            let mut group = 0usize;
            (0..rows.len())
                .filter(|&i| {
                    if i > 0 && q[i] != q[i - 1] {
                        group += 1;
                    }
                    group % size == rank
                })
                .collect()
        }
    };
    rows.select(&keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicated_unless_sharded_by_key() {
        let c = |d: Option<&str>| ChannelConfig {
            distribution: d.map(str::to_owned),
            ..ChannelConfig::default()
        };
        assert!(is_replicated(None));
        assert!(is_replicated(Some(&c(None))));
        assert!(is_replicated(Some(&c(Some("FullyReplicated")))));
        assert!(!is_replicated(Some(&c(Some("ShardedByS3Key")))));
    }

    #[test]
    fn one_host_or_none_starts_no_tracker() {
        let settings = Settings::from_env().unwrap();
        for hosts in [vec![], vec!["algo-1".to_string()]] {
            let resources = ResourceConfig {
                current_host: Some("algo-1".into()),
                hosts,
            };
            let c = Cluster::join(
                &resources,
                &settings,
                &StopFlag::default(),
                Arc::new(|_: &str| ()),
            )
            .unwrap();
            assert!(!c.world.is_distributed() && c.world.is_leader() && c.tracker.is_none());
        }
        let stranger = ResourceConfig {
            current_host: Some("algo-9".into()),
            hosts: vec!["algo-1".into(), "algo-2".into()],
        };
        let e = Cluster::join(
            &stranger,
            &settings,
            &StopFlag::default(),
            Arc::new(|_: &str| ()),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("not among the hosts"), "{e}");
    }

    #[test]
    fn a_single_host_keeps_every_row() {
        let rows = Dataset::from_sink(
            common::data::RowSink {
                features: vec![1.0, 2.0],
                labels: vec![0.0, 1.0],
                rows: 2,
            },
            vec!["a".into()],
            1,
        );
        assert_eq!(share(rows, &World::single()).len(), 2);
    }

    #[test]
    fn retries_stop_at_the_deadline_with_the_last_error() {
        let start = Instant::now();
        let mut n = 0;
        let stop = StopFlag::default();
        let r: Result<()> = retry_until(start + Duration::from_millis(1700), &stop, "test", || {
            n += 1;
            Err(Error::Collective(format!("attempt {n}")))
        });
        assert_eq!(n, 3, "waits of 0.5 s and 1 s fit, the next of 2 s does not");
        assert!(r.unwrap_err().to_string().contains("attempt 3"));
    }
}

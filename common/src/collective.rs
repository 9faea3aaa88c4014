//! XGBoost's collective (the Rabit tracker and communicator) for training on several hosts.
//!
//! One host runs a [`Tracker`]; every host, that one included, joins the communicator with
//! [`World::join`]. XGBoost then trains across all of them by itself (histograms and quantile
//! sketches are summed over the hosts, its metrics are global); [`World`] adds the few
//! operations our own code needs over the same connections: sums, a gather of per-row values
//! (metrics over every host's rows) and a barrier. A single-host job uses [`World::single`],
//! where every operation is the identity and nothing touches the network.
//!
//! XGBoost keeps the communicator in a thread-local variable, so a joined [`World`] is not
//! `Send`: it and every booster that trains across the hosts stay on the thread that joined.

use crate::error::{Error, Result};
use std::ffi::{c_int, c_void, CStr, CString};
use std::marker::PhantomData;
use std::time::Duration;

/// XGBoost's array-interface type codes (`ArrayInterfaceHandler::Type`).
const TYPE_F32: c_int = 1;
const TYPE_F64: c_int = 2;
/// XGBoost's reduction codes (`collective::Op`).
const OP_MAX: c_int = 0;
const OP_SUM: c_int = 2;

/// The last error XGBoost recorded on this thread.
#[allow(unsafe_code)]
fn last_error() -> String {
    // SAFETY: XGBGetLastError returns a pointer to a NUL-terminated thread-local string that
    // stays valid until the next XGBoost call on this thread; it is copied at once.
    unsafe {
        let p = xgboost_sys::XGBGetLastError();
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().trim().to_owned()
        }
    }
}

fn check(rc: c_int, what: &str) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Error::Collective(format!("{what}: {}", last_error())))
    }
}

fn c_string(s: &str) -> CString {
    CString::new(s).expect("JSON configuration holds no NUL")
}

/// The tracker that introduces the hosts to each other, run by the first host. It works in
/// XGBoost's background thread from [`Tracker::start`] until every worker has finished.
pub struct Tracker {
    handle: xgboost_sys::TrackerHandle,
}

impl Tracker {
    /// Starts a tracker for `workers` hosts listening on every interface at `port`; `timeout`
    /// bounds its network operations.
    #[allow(unsafe_code)]
    pub fn start(workers: usize, port: u16, timeout: Duration) -> Result<Self> {
        let config = serde_json::json!({
            "dmlc_communicator": "rabit",
            "n_workers": workers,
            "host": "0.0.0.0",
            "port": port,
            "timeout": timeout.as_secs().max(1),
            // Ranks in the order of the task ids, which are the sorted host names.
            "sortby": 1,
        })
        .to_string();
        let config = c_string(&config);
        let mut handle: xgboost_sys::TrackerHandle = std::ptr::null_mut();
        // SAFETY: `config` is a valid C string for the call; `handle` receives a new tracker,
        // owned by the returned value and freed exactly once in its Drop.
        check(
            unsafe { xgboost_sys::XGTrackerCreate(config.as_ptr(), &mut handle) },
            &format!("cannot start the tracker on port {port}"),
        )?;
        let tracker = Self { handle };
        let empty = c_string("{}");
        // SAFETY: the handle is live; the configuration string outlives the call.
        check(
            unsafe { xgboost_sys::XGTrackerRun(tracker.handle, empty.as_ptr()) },
            "cannot run the tracker",
        )?;
        Ok(tracker)
    }

    /// Waits until every worker has finished with the tracker (after they have left the
    /// communicator).
    #[allow(unsafe_code)]
    pub fn wait(self) -> Result<()> {
        let empty = c_string("{}");
        // SAFETY: the handle is live until Drop; the configuration outlives the call.
        check(
            unsafe { xgboost_sys::XGTrackerWaitFor(self.handle, empty.as_ptr()) },
            "the tracker did not finish cleanly",
        )
    }
}

impl Drop for Tracker {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the handle came from XGTrackerCreate and is freed only here.
        let rc = unsafe { xgboost_sys::XGTrackerFree(self.handle) };
        if rc != 0 {
            tracing::warn!(error = %last_error(), "freeing the tracker");
        }
    }
}

/// Where a host reaches the tracker and how long it waits on its peers.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// The tracker's address (an IP address: names are resolved by the caller, with retries).
    pub tracker_address: String,
    /// The tracker's port.
    pub tracker_port: u16,
    /// This host's name: its rank is its place among the sorted names.
    pub task_id: String,
    /// How long one collective operation may wait for a peer before the job fails.
    pub timeout: Duration,
    /// Connection attempts XGBoost makes before giving up (on the tracker and on each peer).
    pub retries: u32,
}

/// This process's place among the hosts of a training job.
pub struct World {
    rank: usize,
    size: usize,
    joined: bool,
    /// The communicator is thread-local in XGBoost: keep this value on its thread.
    _not_send: PhantomData<*const ()>,
}

impl World {
    /// A job of one host: every operation is the identity.
    pub fn single() -> Self {
        Self {
            rank: 0,
            size: 1,
            joined: false,
            _not_send: PhantomData,
        }
    }

    /// Joins the communicator: returns once every host has joined (or the tracker's and this
    /// host's bounds are reached).
    #[allow(unsafe_code)]
    pub fn join(config: &JoinConfig) -> Result<Self> {
        let json = serde_json::json!({
            "dmlc_communicator": "rabit",
            "dmlc_tracker_uri": config.tracker_address,
            "dmlc_tracker_port": config.tracker_port,
            "dmlc_task_id": config.task_id,
            "dmlc_timeout": config.timeout.as_secs().max(1),
            "dmlc_retry": config.retries,
        })
        .to_string();
        let json = c_string(&json);
        // SAFETY: the configuration is a valid C string for the call. A successful init is
        // paired with XGCommunicatorFinalize in Drop.
        check(
            unsafe { xgboost_sys::XGCommunicatorInit(json.as_ptr()) },
            &format!(
                "cannot join the other hosts through the tracker at {}:{}",
                config.tracker_address, config.tracker_port
            ),
        )?;
        // SAFETY: plain queries of the communicator just initialised on this thread.
        let (rank, size) = unsafe {
            (
                xgboost_sys::XGCommunicatorGetRank(),
                xgboost_sys::XGCommunicatorGetWorldSize(),
            )
        };
        Ok(Self {
            rank: usize::try_from(rank).unwrap_or(0),
            size: usize::try_from(size).unwrap_or(1).max(1),
            joined: true,
            _not_send: PhantomData,
        })
    }

    /// This host's rank, from 0.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of hosts.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether there are several hosts.
    pub fn is_distributed(&self) -> bool {
        self.size > 1
    }

    /// Whether this host writes the model (rank 0, the first of the sorted host names).
    pub fn is_leader(&self) -> bool {
        self.rank == 0
    }

    #[allow(unsafe_code)]
    fn allreduce<T>(
        &self,
        values: &mut [T],
        data_type: c_int,
        op: c_int,
        what: &str,
    ) -> Result<()> {
        if !self.joined || values.is_empty() {
            return Ok(());
        }
        // SAFETY: the buffer is `values.len()` elements of the type `data_type` names, valid
        // and exclusively borrowed for the call; the communicator is initialised on this thread
        // (`World` is not Send).
        check(
            unsafe {
                xgboost_sys::XGCommunicatorAllreduce(
                    values.as_mut_ptr().cast::<c_void>(),
                    values.len(),
                    data_type,
                    op,
                )
            },
            what,
        )
    }

    /// Element-wise sums over every host, in place (the same result on every host).
    pub fn sum(&self, values: &mut [f64]) -> Result<()> {
        self.allreduce(values, TYPE_F64, OP_SUM, "summing over the hosts")
    }

    /// Element-wise maxima over every host, in place.
    pub fn max(&self, values: &mut [f64]) -> Result<()> {
        self.allreduce(values, TYPE_F64, OP_MAX, "taking maxima over the hosts")
    }

    /// Each value's smallest and largest over every host, `[min, max]` (one allreduce: the
    /// maxima of the values and of their negations). Equal everywhere iff `min == max`.
    pub fn min_max(&self, values: &[f64]) -> Result<Vec<[f64; 2]>> {
        let n = values.len();
        let mut both: Vec<f64> = values
            .iter()
            .map(|v| -v)
            .chain(values.iter().copied())
            .collect();
        self.max(&mut both)?;
        Ok((0..n).map(|k| [-both[k], both[n + k]]).collect())
    }

    /// Every host's values one after another in rank order, on every host.
    pub fn gather(&self, local: &[f32]) -> Result<Vec<f32>> {
        if !self.joined {
            return Ok(local.to_vec());
        }
        let mut counts = vec![0.0f64; self.size];
        counts[self.rank] = local.len() as f64;
        self.sum(&mut counts)?;
        let offset: f64 = counts[..self.rank].iter().sum();
        let total: f64 = counts.iter().sum();
        // Every other host contributes zeros where this one's values go, so the sum is exact.
        let mut all = vec![0.0f32; total as usize];
        all[offset as usize..offset as usize + local.len()].copy_from_slice(local);
        self.allreduce(
            &mut all,
            TYPE_F32,
            OP_SUM,
            "gathering values from the hosts",
        )?;
        Ok(all)
    }

    /// The first host's bytes, on every host (what others pass is ignored).
    #[allow(unsafe_code)]
    pub fn broadcast(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        if !self.joined {
            return Ok(bytes);
        }
        let mut len = [if self.is_leader() {
            bytes.len() as f64
        } else {
            0.0
        }];
        self.max(&mut len)?;
        let mut buffer = if self.is_leader() {
            bytes
        } else {
            vec![0u8; len[0] as usize]
        };
        if buffer.is_empty() {
            return Ok(buffer);
        }
        // SAFETY: the buffer holds `buffer.len()` bytes (the same length on every host), valid
        // and exclusively borrowed for the call; the communicator is initialised on this
        // thread.
        check(
            unsafe {
                xgboost_sys::XGCommunicatorBroadcast(
                    buffer.as_mut_ptr().cast::<c_void>(),
                    buffer.len(),
                    0,
                )
            },
            "broadcasting from the first host",
        )?;
        Ok(buffer)
    }

    /// Returns once every host has called it.
    pub fn barrier(&self) -> Result<()> {
        self.sum(&mut [1.0])
    }
}

impl Drop for World {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if self.joined {
            // SAFETY: paired with the successful XGCommunicatorInit on this thread.
            let rc = unsafe { xgboost_sys::XGCommunicatorFinalize() };
            if rc != 0 {
                tracing::warn!(error = %last_error(), "leaving the communicator");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_host_world_is_the_identity() {
        let w = World::single();
        assert!(w.is_leader() && !w.is_distributed());
        let mut v = [1.0, 2.0];
        w.sum(&mut v).unwrap();
        assert_eq!(v, [1.0, 2.0]);
        assert_eq!(
            w.min_max(&[3.0, -1.0]).unwrap(),
            vec![[3.0, 3.0], [-1.0, -1.0]]
        );
        assert_eq!(w.gather(&[3.0, 4.0]).unwrap(), vec![3.0, 4.0]);
        w.barrier().unwrap();
    }

    /// Three hosts as three threads on loopback: the real tracker and communicator.
    #[test]
    fn three_hosts_sum_gather_and_meet_at_a_barrier() {
        let port = free_port();
        let tracker = Tracker::start(3, port, Duration::from_secs(30)).unwrap();
        let hosts = ["algo-1", "algo-2", "algo-3"];
        let results: Vec<(usize, Vec<f64>, Vec<f32>)> = std::thread::scope(|s| {
            let joins: Vec<_> = hosts
                .iter()
                .map(|h| {
                    s.spawn(move || {
                        let w = World::join(&JoinConfig {
                            tracker_address: "127.0.0.1".into(),
                            tracker_port: port,
                            task_id: (*h).into(),
                            timeout: Duration::from_secs(30),
                            retries: 3,
                        })
                        .unwrap();
                        assert_eq!(w.size(), 3);
                        let r = w.rank();
                        let mut v = vec![r as f64, 1.0];
                        w.sum(&mut v).unwrap();
                        let m = w.min_max(&[r as f64, 5.0]).unwrap();
                        assert_eq!(m, vec![[0.0, 2.0], [5.0, 5.0]]);
                        // Rank r holds r + 1 values equal to r.
                        let g = w.gather(&vec![r as f32; r + 1]).unwrap();
                        let b = w.broadcast(format!("from {r}").into_bytes()).unwrap();
                        assert_eq!(b, b"from 0");
                        w.barrier().unwrap();
                        (r, v, g)
                    })
                })
                .collect();
            joins.into_iter().map(|j| j.join().unwrap()).collect()
        });
        tracker.wait().unwrap();
        let ranks: Vec<usize> = results.iter().map(|r| r.0).collect();
        assert_eq!(ranks, vec![0, 1, 2], "ranks follow the sorted task ids");
        for (_, v, g) in &results {
            assert_eq!(v, &vec![3.0, 3.0]);
            assert_eq!(g, &vec![0.0, 1.0, 1.0, 2.0, 2.0, 2.0]);
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

//! Accepting connections, bounded: a cap on open connections below the open-file limit, a
//! deadline for request headers that also closes idle keep-alive connections, and a drain on
//! SIGTERM that in-flight requests cannot stretch past its window.
//!
//! Slow or stalled clients cost one connection each and nothing else: request slots are taken
//! only once a body is complete (`lib.rs`), and a body that stops arriving is answered 408.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// File descriptors kept free for everything that is not a client connection (the listener,
/// model files, logging, the blocking pool).
const RESERVED_FDS: u64 = 64;

/// How often at most the "connection cap reached" line is logged.
const CAP_LOG_EVERY: Duration = Duration::from_secs(10);

/// Raises the soft open-file limit to the hard one and returns it (as Go's runtime does), so
/// the connection cap can sit close below what the container allows.
#[allow(unsafe_code)]
pub fn raise_open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write only the struct passed, which lives here.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// The connection cap: `wanted`, but never within [`RESERVED_FDS`] of the open-file limit.
pub fn connection_cap(wanted: usize, open_file_limit: u64) -> usize {
    let room = open_file_limit.saturating_sub(RESERVED_FDS).max(1);
    wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets requests
/// in flight finish (idle connections close at once) and returns after at most `drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    max_connections: usize,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let service = TowerToHyperService::new(router);
    let mut refused: u64 = 0;
    let mut last_cap_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: not fatal.
                    tracing::warn!(error = %e, "accept failed; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refused += 1;
            if last_cap_log.is_none_or(|t| t.elapsed() >= CAP_LOG_EVERY) {
                tracing::warn!(
                    max_connections,
                    refused,
                    "connection cap reached: closing new connections until some end (SERVE_MAX_CONNECTIONS)"
                );
                last_cap_log = Some(Instant::now());
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection =
            graceful.watch(builder.serve_connection(TokioIo::new(stream), service.clone()));
        tokio::spawn(async move {
            // Client resets and header timeouts end connections; neither is the server's fault.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutdown requested: no new connections, finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!("requests still in flight after {drain:?}; exiting");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_stays_below_the_open_file_limit() {
        assert_eq!(connection_cap(10_000, 1024), 960);
        assert_eq!(connection_cap(10_000, 1_048_576), 10_000);
        assert_eq!(connection_cap(10_000, 10), 1);
    }
}

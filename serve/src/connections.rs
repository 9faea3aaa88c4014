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

/// The connection cap: `wanted`, but never within `RESERVED_FDS` (64) of the open-file limit.
pub fn connection_cap(wanted: usize, open_file_limit: u64) -> usize {
    let room = open_file_limit.saturating_sub(RESERVED_FDS).max(1);
    wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// The most hyper buffers from a connection at a time (its default is 408 KiB): a smaller read
/// buffer stays below glibc's mmap threshold, so it is reused from the heap instead of being
/// mapped afresh, page by page, for every large body. Headers past it may be refused with a 431
/// (hyper checks after each read, so always past about 112 KiB). Hyper also flushes its write
/// queue at this size, so each streamed piece of a long answer goes out on its own.
const READ_BUFFER_BYTES: usize = 64 * 1024;

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
        .max_buf_size(READ_BUFFER_BYTES)
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
        let io = TokioIo::new(JsonErrors::new(stream));
        let connection = graceful.watch(builder.serve_connection(io, service.clone()));
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

/// The connection's socket, with hyper's own answers to requests that are not HTTP (400), have a
/// URI too long (414) or headers too large (431) given the JSON one-line body every other error
/// has. Those answers are written by hyper before any route sees the request, with an empty body
/// (`content-length: 0`); this layer recognises them by that, in the one write that holds them,
/// and sends its own version instead. Everything else passes through untouched.
struct JsonErrors<T> {
    inner: T,
    /// A replacement being written, how much of it is written, and how long the write it
    /// replaces was.
    replacement: Option<(Vec<u8>, usize, usize)>,
}

impl<T> JsonErrors<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            replacement: None,
        }
    }
}

/// The JSON version of a response hyper wrote for a request it could not parse, if `head` is one.
fn json_version(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let rest = text.strip_prefix("HTTP/1.1 ")?;
    let empty = text
        .to_ascii_lowercase()
        .contains("\r\ncontent-length: 0\r\n");
    if !text.ends_with("\r\n\r\n") || !empty {
        return None;
    }
    let code: u16 = rest.get(..3)?.parse().ok()?;
    let message = match code {
        400 => "the request is not valid HTTP/1.1",
        414 => "the request URI is too long",
        431 => "the request headers are too large",
        _ => return None,
    };
    let reason = rest.lines().next()?.get(4..).unwrap_or("");
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    let head = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    Some([head.into_bytes(), body.into_bytes()].concat())
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for JsonErrors<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for JsonErrors<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        if self.replacement.is_none() && buf.starts_with(b"HTTP/1.1 4") && buf.len() < 512 {
            if let Some(json) = json_version(buf) {
                self.replacement = Some((json, 0, buf.len()));
            }
        }
        let this = &mut *self;
        let Some((bytes, written, replaced)) = this.replacement.as_mut() else {
            return std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        while *written < bytes.len() {
            match std::pin::Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()))
                }
                Poll::Ready(Ok(n)) => *written += n,
                other => return other,
            }
        }
        let replaced = *replaced;
        this.replacement = None;
        Poll::Ready(Ok(replaced))
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        // hyper's automatic answers are one buffer (a head, no body); all else goes straight on.
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        let (first, more) = (filled.next(), filled.next().is_some());
        match first {
            Some(head)
                if !more && (self.replacement.is_some() || head.starts_with(b"HTTP/1.1 4")) =>
            {
                self.poll_write(cx, head)
            }
            _ => std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_empty_parse_error_answers_get_json_bodies_and_nothing_else_changes() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 00:00:00 GMT\r\n\r\n";
        let json = String::from_utf8(json_version(hyper_431).unwrap()).unwrap();
        assert!(
            json.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{json}"
        );
        assert!(
            json.ends_with(r#"{"error":431,"message":"the request headers are too large"}"#),
            "{json}"
        );
        // Our own errors have bodies; successful answers are not touched.
        assert!(json_version(b"HTTP/1.1 404 Not Found\r\ncontent-length: 80\r\n\r\n").is_none());
        assert!(json_version(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
    }

    #[test]
    fn cap_stays_below_the_open_file_limit() {
        assert_eq!(connection_cap(10_000, 1024), 960);
        assert_eq!(connection_cap(10_000, 1_048_576), 10_000);
        assert_eq!(connection_cap(10_000, 10), 1);
    }
}

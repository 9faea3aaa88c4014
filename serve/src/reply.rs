//! How an answer goes back: in one piece, or, when it is long, streamed while it is encoded.
//!
//! A batch answer can be several times larger than its request (a record of zeros is 37 bytes
//! of CSV in and about 150 bytes of JSON out). Held whole, a 100 MiB request of such records
//! needed about 9.5 times its size in memory. Answers estimated above [`STREAM_ABOVE_BYTES`]
//! are therefore encoded twice: once to count their exact length (sent as Content-Length, so
//! clients see an ordinary response), once in pieces of [`PIECE_BYTES`] handed to the
//! connection as it sends them. Formatting is deterministic, so both passes agree.

use crate::codec::{self, Output};
use crate::error::ServeError;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use common::kinds::Predictions;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};

/// Answers estimated larger than this are streamed.
pub const STREAM_ABOVE_BYTES: usize = 4 << 20;

/// Size of one streamed piece.
pub const PIECE_BYTES: usize = 256 << 10;

/// An answer ready to send.
pub enum Reply {
    /// The whole answer.
    Whole(Vec<u8>),
    /// Pieces still being encoded, `len` bytes in all.
    Streamed {
        /// Exact length of the whole answer.
        len: usize,
        /// The pieces, in order.
        pieces: mpsc::Receiver<Bytes>,
    },
}

/// Where the encoding thread says how the answer will come: once, with the reply or the error.
pub type Ready = oneshot::Sender<Result<Reply, ServeError>>;

/// What [`encode`] made: the whole answer, a refusal, or `None` when it is being streamed.
pub type Encoded = Option<Result<Vec<u8>, ServeError>>;

/// How a long answer may be streamed: the runtime to wait on, the longest wait for the client
/// to take a piece, and the request's deadline, which bounds the whole answer.
pub struct Streaming<'a> {
    /// The server's runtime (the encoding runs on a blocking thread).
    pub runtime: &'a tokio::runtime::Handle,
    /// Longest wait for the client to take one piece.
    pub stall: std::time::Duration,
    /// When the request must be answered in full.
    pub deadline: tokio::time::Instant,
}

/// Encodes `p`: returns the whole answer for a short one (and always for RecordIO, which is
/// binary); for a long one (when `stream` is given), announces a streamed reply on `ready` and
/// encodes into it, returning `None`. A client
/// that stops reading for the stall time, or is not done by the deadline, is given up on: its
/// answer ends short and the connection is dropped, so a slow reader cannot hold a worker.
pub fn encode(
    p: &dyn Predictions,
    output: Output,
    batch: bool,
    stream: Option<Streaming>,
    ready: &mut Option<Ready>,
) -> Encoded {
    if output == Output::RecordIo {
        return Some(codec::encode_recordio(p));
    }
    let Some(stream) = stream else {
        return Some(Ok(codec::encode(p, output, batch).into_bytes()));
    };
    if codec::estimated_len(p, output) <= STREAM_ABOVE_BYTES {
        return Some(Ok(codec::encode(p, output, batch).into_bytes()));
    }
    let len = codec::encoded_len(p, output, batch);
    let (tx, pieces) = mpsc::channel(2);
    let announced = ready
        .take()
        .is_some_and(|r| r.send(Ok(Reply::Streamed { len, pieces })).is_ok());
    if announced {
        // Stops early when the client has gone (the receiver is dropped).
        codec::encode_in_chunks(p, output, batch, PIECE_BYTES, |piece| {
            let until = (tokio::time::Instant::now() + stream.stall).min(stream.deadline);
            let send = tokio::time::timeout_at(until, tx.send(Bytes::from(piece)));
            matches!(stream.runtime.block_on(send), Ok(Ok(())))
        });
    }
    None
}

impl Reply {
    /// The HTTP response carrying this answer as `content_type`.
    pub fn into_response(self, content_type: &'static str) -> Response {
        match self {
            Reply::Whole(text) => ([(header::CONTENT_TYPE, content_type)], text).into_response(),
            Reply::Streamed { len, pieces } => {
                let mut response = Response::new(Body::new(Pieces {
                    pieces,
                    remaining: len as u64,
                }));
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                response
            }
        }
    }
}

/// A response body fed by the encoding thread.
struct Pieces {
    pieces: mpsc::Receiver<Bytes>,
    remaining: u64,
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.pieces.poll_recv(cx) {
            Poll::Ready(Some(piece)) => {
                self.remaining = self.remaining.saturating_sub(piece.len() as u64);
                Poll::Ready(Some(Ok(http_body::Frame::data(piece))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

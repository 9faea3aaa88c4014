//! The `serve` entry point of the SageMaker hosting contract.
//!
//! Start-up binds the port first (SageMaker expects connections within 250 ms), then loads the
//! model on a blocking thread; `/ping` answers 503 while loading, 200 once ready, 500 if loading
//! failed. `/invocations` reads the body (up to the limit), then decodes, predicts and encodes on
//! the blocking pool with at most `workers` requests computing at once; beyond `max_in_flight`
//! admitted requests it answers 503 instead of queueing without bound. SIGTERM stops accepting,
//! lets in-flight requests finish, and exits. With `SAGEMAKER_MULTI_MODEL=true` it starts with
//! no model and serves SageMaker's model API instead ([`multi_model`]).

pub mod buffers;
pub mod codec;
pub mod config;
pub mod connections;
pub mod error;
pub mod model;
pub mod multi_model;
pub mod reply;
pub mod signals;
pub mod start;
pub mod transform;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use common::opt_ml::OptMl;
use config::ServeConfig;
use error::ServeError;
use model::LoadedModel;
use multi_model::Registry;
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// Bodies up to this size are answered on the async worker itself (about 20 records of CSV).
const INLINE_BODY_BYTES: usize = 4096;

/// The model slot: empty while loading, then the model or the (logged) reason it failed.
pub type ModelSlot = Arc<OnceLock<Result<Arc<LoadedModel>, String>>>;

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    /// The model, once loaded (single-model endpoints).
    pub model: ModelSlot,
    /// The models loaded through `/models` (multi-model endpoints).
    pub registry: Arc<Registry>,
    /// The configuration.
    pub config: Arc<ServeConfig>,
    /// Permits for requests admitted (computing or waiting).
    admitted: Arc<Semaphore>,
    /// Permits for requests computing.
    workers: Arc<Semaphore>,
    /// Turns true on SIGTERM: body reads then wait at most a second for the next piece.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    /// State with an empty model slot, and the sender that announces a stop.
    pub fn new(config: ServeConfig) -> (Self, tokio::sync::watch::Sender<bool>) {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let state = Self {
            model: Arc::default(),
            registry: Arc::new(Registry::new(config.model_memory_fraction)),
            admitted: Arc::new(Semaphore::new(config.max_in_flight)),
            workers: Arc::new(Semaphore::new(config.workers)),
            config: Arc::new(config),
            stopping,
        };
        (state, stop)
    }

    /// Loads the model into the slot (blocking); logs one clear line on failure. A process
    /// started as root gives root up before the model answers any request; if it cannot, it
    /// serves nothing (fails closed) unless `SERVE_USER=root` asked to keep root.
    pub fn load_model(&self, opt_ml: &OptMl) {
        let start = std::time::Instant::now();
        let mut result = LoadedModel::load(opt_ml)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        if let Some((uid, gid)) = self.config.run_as.filter(|_| common::access::is_root()) {
            match common::access::drop_privileges(uid, gid) {
                Ok(()) => tracing::info!(
                    uid,
                    gid,
                    "model read as root; running unprivileged from now on"
                ),
                Err(e) => {
                    result = Err(format!(
                        "cannot switch from root to uid {uid} gid {gid} ({e}); set SERVE_USER=root to serve as root"
                    ))
                }
            }
        }
        match &result {
            Ok(m) => tracing::info!(
                model_kind = %m.manifest.model_kind,
                features = m.manifest.feature_names.len(),
                ms = start.elapsed().as_millis() as u64,
                "model loaded; ready"
            ),
            Err(e) => tracing::error!("cannot serve: {e}"),
        }
        let _ = self.model.set(result);
    }

    /// Multi-model endpoints: switches to `SERVE_USER` before any model arrives, when it is set
    /// and the process runs as root (by default root is kept: see [`ServeConfig::run_as`]).
    fn drop_privileges_for_models(&self) -> std::io::Result<()> {
        if let Some((uid, gid)) = self.config.run_as.filter(|_| common::access::is_root()) {
            common::access::drop_privileges(uid, gid)?;
            tracing::info!(uid, gid, "running unprivileged");
        }
        Ok(())
    }
}

/// The HTTP routes.
pub fn router(state: AppState) -> Router {
    let routes = Router::new().route("/execution-parameters", get(execution_parameters));
    let routes = if state.config.multi_model {
        routes
            .route("/ping", get(|| async { StatusCode::OK }))
            .route("/invocations", post(|| async {
                ServeError::BadRequest("this endpoint serves several models (SAGEMAKER_MULTI_MODEL=true): POST /models/<name>/invoke".into())
            }))
            .route("/models", get(multi_model::list).post(multi_model::load))
            .route(
                "/models/{name}",
                get(multi_model::describe).delete(multi_model::unload),
            )
            .route("/models/{name}/invoke", post(multi_model::invoke))
    } else {
        routes
            .route("/ping", get(ping))
            .route("/invocations", post(invocations))
    };
    routes
        .fallback(|uri: axum::http::Uri| async move {
            ServeError::NotFound(uri.path().chars().take(100).collect())
        })
        .method_not_allowed_fallback(|| async { ServeError::MethodNotAllowed })
        .with_state(state)
}

async fn ping(State(state): State<AppState>) -> Response {
    match state.model.get() {
        Some(Ok(_)) => StatusCode::OK.into_response(),
        Some(Err(_)) => ServeError::ModelUnavailable.into_response(),
        None => ServeError::Unavailable("the model is loading").into_response(),
    }
}

async fn execution_parameters(State(state): State<AppState>) -> Response {
    let body = serde_json::json!({
        "MaxConcurrentTransforms": state.config.workers,
        "BatchStrategy": "MULTI_RECORD",
        // SageMaker's default of 6 MB, unless this server takes less; never so much that
        // MaxConcurrentTransforms x MaxPayloadInMB exceeds the 100 SageMaker allows.
        "MaxPayloadInMB": (state.config.max_body_bytes / (1024 * 1024))
            .min(6)
            .min(100 / state.config.workers.max(1))
            .max(1),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn invocations(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match state.model.get() {
        Some(Ok(model)) => invoke_with(&state, &headers, body, model.clone()).await,
        Some(Err(_)) => ServeError::ModelUnavailable.into_response(),
        None => ServeError::Unavailable("the model is loading").into_response(),
    }
}

/// Answers one request with `model`.
pub(crate) async fn invoke_with(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    model: Arc<LoadedModel>,
) -> Response {
    match answer(state, headers, body, model).await {
        Ok((content_type, reply)) => reply.into_response(content_type),
        Err(e) => {
            // Client errors and load shedding are the client's to see; faults are logged once.
            if e == ServeError::Internal {
                tracing::error!("request failed with an internal error");
            }
            e.into_response()
        }
    }
}

async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    model: Arc<LoadedModel>,
) -> Result<(&'static str, reply::Reply), ServeError> {
    let started = tokio::time::Instant::now();
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(encoding) =
        text(header::CONTENT_ENCODING).filter(|e| !e.trim().eq_ignore_ascii_case("identity"))
    {
        return Err(ServeError::UnsupportedEncoding(
            encoding.chars().take(40).collect(),
        ));
    }
    // Refuse an unusable Accept before reading what may be a 100 MiB body.
    let default_accept = match model.default_accept() {
        Some(own) if !state.config.default_accept_given => own,
        _ => state.config.default_accept.as_str(),
    };
    let output = codec::output_format(text(header::ACCEPT), default_accept)?;
    let limit = state.config.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ServeError::PayloadTooLarge(limit));
    }
    let deadline = started + state.config.request_timeout;
    let bytes = read_body(
        body,
        declared,
        limit,
        &state.config,
        deadline,
        state.stopping.clone(),
    )
    .await?;
    // A slot is taken only for a complete body: slow senders hold a connection and what they
    // have sent (in one of the few kept buffers, when it was free), nothing more.
    let admitted = state
        .admitted
        .clone()
        .try_acquire_owned()
        .map_err(|_| ServeError::Unavailable("too many requests in flight; retry later"))?;
    let bytes_len = bytes.len();
    let input = codec::input_format(text(header::CONTENT_TYPE), &bytes)?;
    let (batch, threads) = (state.config.batch, state.config.workers);
    let secs = state.config.request_timeout.as_secs();
    let worker = tokio::time::timeout_at(deadline, state.workers.clone().acquire_owned())
        .await
        .map_err(|_| ServeError::Deadline(secs))?
        .map_err(|_| ServeError::Internal)?;
    // A body of a few records costs tens of microseconds: less than handing it to another
    // thread, whose context switches set the tail latency on a 2-core host. Larger bodies go to
    // the blocking pool so the reactor keeps answering /ping and reading other requests; their
    // slots are held until the last piece of a streamed answer is encoded.
    let inline = bytes_len <= INLINE_BODY_BYTES;
    let runtime = tokio::runtime::Handle::current();
    let stall = state.config.read_timeout;
    let chosen = output_attribute(headers.get(CUSTOM_ATTRIBUTES).and_then(|v| v.to_str().ok()));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let work = move || {
        let _slots = (admitted, worker);
        let mut ready = Some(ready_tx);
        let until = model::Deadline {
            at: deadline.into_std(),
            secs,
        };
        let chosen = chosen.as_deref();
        let answered =
            model.answer_selecting(bytes, input, batch, threads, chosen, Some(until), |p| {
                let stream = (!inline).then_some(reply::Streaming {
                    runtime: &runtime,
                    stall,
                    deadline,
                });
                reply::encode(p, output, batch, stream, &mut ready)
            });
        if let Some(ready) = ready.take() {
            let whole = answered.and_then(|encoded| match encoded {
                Some(answer) => answer.map(reply::Reply::Whole),
                None => Ok(reply::Reply::Whole(Vec::new())),
            });
            let _ = ready.send(whole);
        }
    };
    if inline {
        work();
    } else {
        tokio::task::spawn_blocking(work);
    }
    let reply = tokio::time::timeout_at(deadline, ready_rx)
        .await
        .map_err(|_| ServeError::Deadline(secs))?
        .map_err(|_| ServeError::Internal)??;
    Ok((output.content_type(), reply))
}

/// The header SageMaker forwards from `InvokeEndpoint`'s `CustomAttributes`.
const CUSTOM_ATTRIBUTES: &str = "x-amzn-sagemaker-custom-attributes";

/// The `output=key,key` attribute of `X-Amzn-SageMaker-Custom-Attributes` (attributes are
/// separated by `;`; others are ignored): the answer's keys for this request.
fn output_attribute(header: Option<&str>) -> Option<String> {
    header?.split(';').find_map(|attribute| {
        let (name, value) = attribute.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("output")
            .then(|| value.trim().to_owned())
    })
}

/// Once the server is stopping, the longest pause allowed within a body still being read.
const SHUTDOWN_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Untrusted Content-Length is believed up to this much before any of the body arrives.
const BODY_RESERVE_BEFORE_DATA: usize = 64 * 1024;

/// Reads a body of at most `limit` bytes into one buffer. Content-Length sizes the buffer once
/// the first 64 KiB have arrived (a client that declares 100 MiB and stalls costs no more), so a
/// large batch payload is still held once, never copied into a second buffer. A body that
/// pauses longer than the read timeout (one second once the server is stopping) or is not
/// complete by `deadline` is not waited for.
async fn read_body(
    mut body: Body,
    declared: Option<usize>,
    limit: usize,
    config: &ServeConfig,
    deadline: tokio::time::Instant,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<u8>, ServeError> {
    use http_body_util::BodyExt;
    let declared = declared.map(|n| n.min(limit));
    let expected = declared.unwrap_or(0);
    let mut buf = buffers::BODIES.take(expected, expected.min(BODY_RESERVE_BEFORE_DATA));
    let timed_out = ServeError::BodyTimeout {
        idle: config.read_timeout.as_secs(),
        total: config.request_timeout.as_secs(),
    };
    let mut pause = config.read_timeout;
    let mut shutting_down = false;
    loop {
        let pause_ends = (tokio::time::Instant::now() + pause).min(deadline);
        let frame = tokio::select! {
            frame = tokio::time::timeout_at(pause_ends, body.frame()) => frame.map_err(|_| {
                if shutting_down {
                    ServeError::Unavailable("the server is shutting down")
                } else {
                    timed_out.clone()
                }
            })?,
            // Stopping: a body still arriving is finished; one that pauses is not waited for.
            // (Polling a body frame is cancel-safe: no data is lost by starting over.)
            _ = stopping.wait_for(|&stop| stop), if !shutting_down => {
                shutting_down = true;
                pause = pause.min(SHUTDOWN_PAUSE);
                continue;
            }
        };
        let Some(frame) = frame else { break };
        let frame = frame
            .map_err(|_| ServeError::BadRequest("the request body could not be read".into()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(ServeError::PayloadTooLarge(limit));
            }
            if let Some(n) = declared.filter(|&n| n > buf.capacity()) {
                if buf.len() + data.len() > BODY_RESERVE_BEFORE_DATA.min(n) {
                    // Best effort: where memory is short (strict overcommit), the buffer grows
                    // as the bytes really arrive instead of aborting the process.
                    let _ = buf.try_reserve_exact(n - buf.len());
                }
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// Binds, loads the model, serves until SIGTERM or SIGINT, drains, returns.
pub async fn run(config: ServeConfig, opt_ml: OptMl) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port)).await?;
    let open_files = connections::raise_open_file_limit();
    let max_connections = connections::connection_cap(config.max_connections, open_files);
    tracing::info!(
        port = config.port,
        batch = config.batch,
        max_body_bytes = config.max_body_bytes,
        default_accept = %config.default_accept,
        workers = config.workers,
        max_in_flight = config.max_in_flight,
        max_connections,
        open_files,
        read_timeout_s = config.read_timeout.as_secs(),
        request_timeout_s = config.request_timeout.as_secs(),
        run_as = ?config.run_as,
        model_dir = %opt_ml.model_dir().display(),
        "serve starting"
    );
    let (drain, read_timeout) = (config.drain_timeout, config.read_timeout);
    let (state, stop) = AppState::new(config);
    if state.config.multi_model {
        // Models by the hundred, each asked a few rows at a time: memory over batch speed.
        common::models::trees::keep_models_small();
        buffers::keep_none();
        tracing::info!(
            budget_mib = state.registry.budget().map(|b| b >> 20),
            "multi-model endpoint: no model until POST /models"
        );
        state.drop_privileges_for_models().map_err(|e| {
            std::io::Error::other(format!(
                "cannot switch to SERVE_USER ({e}); serving nothing"
            ))
        })?;
    } else {
        let loader = state.clone();
        tokio::task::spawn_blocking(move || loader.load_model(&opt_ml));
    }
    let shutdown = async move {
        signals::shutdown().await;
        let _ = stop.send(true);
    };
    connections::serve(
        listener,
        router(state),
        max_connections,
        read_timeout,
        shutdown,
        drain,
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}

//! The `serve` entry point of the SageMaker hosting contract.
//!
//! Start-up binds the port first (SageMaker expects connections within 250 ms), then loads the
//! model on a blocking thread; `/ping` answers 503 while loading, 200 once ready, 500 if loading
//! failed. `/invocations` reads the body (up to the limit), then decodes, predicts and encodes on
//! the blocking pool with at most `workers` requests computing at once; beyond `max_in_flight`
//! admitted requests it answers 503 instead of queueing without bound. SIGTERM stops accepting,
//! lets in-flight requests finish, and exits.

pub mod codec;
pub mod config;
pub mod error;
pub mod model;
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
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// Bodies up to this size are answered on the async worker itself (about 20 records of CSV).
const INLINE_BODY_BYTES: usize = 4096;

/// The model slot: empty while loading, then the model or the (logged) reason it failed.
pub type ModelSlot = Arc<OnceLock<Result<LoadedModel, String>>>;

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    /// The model, once loaded.
    pub model: ModelSlot,
    /// The configuration.
    pub config: Arc<ServeConfig>,
    /// Permits for requests admitted (computing or waiting).
    admitted: Arc<Semaphore>,
    /// Permits for requests computing.
    workers: Arc<Semaphore>,
}

impl AppState {
    /// State with an empty model slot.
    pub fn new(config: ServeConfig) -> Self {
        Self {
            model: Arc::default(),
            admitted: Arc::new(Semaphore::new(config.max_in_flight)),
            workers: Arc::new(Semaphore::new(config.workers)),
            config: Arc::new(config),
        }
    }

    /// Loads the model into the slot (blocking); logs one clear line on failure. A process
    /// started as root gives root up before the model answers any request.
    pub fn load_model(&self, opt_ml: &OptMl) {
        let start = std::time::Instant::now();
        let result = LoadedModel::load(opt_ml).map_err(|e| e.to_string());
        if let Some((uid, gid)) = self.config.run_as.filter(|_| common::access::is_root()) {
            match common::access::drop_privileges(uid, gid) {
                Ok(()) => tracing::info!(
                    uid,
                    gid,
                    "model read as root; running unprivileged from now on"
                ),
                Err(e) => {
                    tracing::warn!(uid, gid, error = %e, "cannot give up root; serving as root")
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
}

/// The HTTP routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ping", get(ping))
        .route("/invocations", post(invocations))
        .route("/execution-parameters", get(execution_parameters))
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
        "MaxPayloadInMB": 6,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn invocations(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match answer(&state, &headers, body).await {
        Ok((content_type, text)) => ([(header::CONTENT_TYPE, content_type)], text).into_response(),
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
) -> Result<(&'static str, String), ServeError> {
    match state.model.get() {
        Some(Ok(_)) => {}
        Some(Err(_)) => return Err(ServeError::ModelUnavailable),
        None => return Err(ServeError::Unavailable("the model is loading")),
    }
    let _admitted = state
        .admitted
        .clone()
        .try_acquire_owned()
        .map_err(|_| ServeError::Unavailable("too many requests in flight; retry later"))?;
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    // Refuse an unusable Accept before reading what may be a 100 MiB body.
    let output = codec::output_format(text(header::ACCEPT), &state.config.default_accept)?;
    let limit = state.config.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ServeError::PayloadTooLarge(limit));
    }
    let bytes = read_body(body, declared, limit).await?;
    let bytes_len = bytes.len();
    let input = codec::input_format(text(header::CONTENT_TYPE), &bytes)?;
    let (batch, threads) = (state.config.batch, state.config.workers);
    let _worker = state
        .workers
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ServeError::Internal)?;
    let model = state.model.clone();
    let work = move || match model.get() {
        Some(Ok(m)) => m.answer(bytes, input, output, batch, threads),
        _ => Err(ServeError::ModelUnavailable),
    };
    // A body of a few records costs tens of microseconds: less than handing it to another
    // thread, whose context switches set the tail latency on a 2-core host. Larger bodies go to
    // the blocking pool so the reactor keeps answering /ping and reading other requests.
    let text = if bytes_len <= INLINE_BODY_BYTES {
        work()?
    } else {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| ServeError::Internal)??
    };
    Ok((output.content_type(), text))
}

/// Reads a body of at most `limit` bytes into one buffer, sized up front from Content-Length
/// when declared: a 100 MiB batch payload is held once, never copied into a second buffer.
async fn read_body(
    mut body: Body,
    declared: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, ServeError> {
    use http_body_util::BodyExt;
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|_| ServeError::BadRequest("the request body could not be read".into()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(ServeError::PayloadTooLarge(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// Binds, loads the model, serves until SIGTERM or SIGINT, drains, returns.
pub async fn run(config: ServeConfig, opt_ml: OptMl) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port)).await?;
    tracing::info!(
        port = config.port,
        batch = config.batch,
        max_body_bytes = config.max_body_bytes,
        default_accept = %config.default_accept,
        workers = config.workers,
        max_in_flight = config.max_in_flight,
        run_as = ?config.run_as,
        model_dir = %opt_ml.model_dir().display(),
        "serve starting"
    );
    let drain = config.drain_timeout;
    let state = AppState::new(config);
    let loader = state.clone();
    tokio::task::spawn_blocking(move || loader.load_model(&opt_ml));
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutdown requested: no new connections, finishing requests in flight");
            // A request that outlives the drain window must not keep the process past SIGKILL.
            tokio::spawn(async move {
                tokio::time::sleep(drain).await;
                tracing::warn!("requests still in flight after {drain:?}; exiting");
                std::process::exit(0);
            });
        })
        .await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

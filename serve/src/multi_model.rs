//! Multi-model endpoints (`SAGEMAKER_MULTI_MODEL=true`): SageMaker's model API on the serving
//! port. The container starts with no model; `POST /models` loads one from a directory under
//! `/opt/ml/models` (read, never written), `GET /models[/<name>]` lists and describes,
//! `DELETE /models/<name>` unloads, `POST /models/<name>/invoke` is `/invocations` for it.
//!
//! Models of any kind sit side by side, each behind its own `Arc`: a request holds the model it
//! answers with, so loads, unloads and other models' requests never wait for it. Memory is
//! budgeted against the container's limit (cgroup): a load answers 507 when the process's
//! resident memory, plus what loads in progress reserve, plus this load's estimate, would pass
//! `SERVE_MODEL_MEMORY_FRACTION` of the limit. SageMaker then unloads a model and retries.
//! An unload answers once the model's memory is freed and given back to the system.

use crate::error::ServeError;
use crate::model::LoadedModel;
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The loaded models and the memory loads in progress have reserved.
pub struct Registry {
    models: Mutex<BTreeMap<String, Slot>>,
    /// Bytes reserved by loads in progress.
    reserved: Mutex<u64>,
    /// Resident bytes the process may reach with its models (`None`: no limit known).
    budget: Option<u64>,
}

enum Slot {
    /// A load of this name is in progress.
    Loading,
    Ready {
        url: String,
        model: Arc<LoadedModel>,
    },
}

/// A load's memory estimate as a multiple of the bytes of the files it reads: the bytes read,
/// the structures decoded from them (compiled trees take about twice their file), and slack.
const LOAD_ESTIMATE_FACTOR: u64 = 3;

/// Largest `POST /models` body read (the request is a name and a path).
const MAX_LOAD_REQUEST_BYTES: usize = 64 * 1024;

/// Models listed per page when the request gives no `limit`, and the most it may ask for.
const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

impl Registry {
    /// An empty registry budgeting `fraction` of the container's memory limit.
    pub fn new(fraction: f64) -> Self {
        let budget = common::memory::limit_bytes().map(|limit| (limit as f64 * fraction) as u64);
        Self {
            models: Mutex::default(),
            reserved: Mutex::new(0),
            budget,
        }
    }

    /// The budget in bytes, if the container's memory is known.
    pub fn budget(&self) -> Option<u64> {
        self.budget
    }

    /// The model loaded under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<LoadedModel>> {
        match self.models.lock().expect("registry lock").get(name) {
            Some(Slot::Ready { model, .. }) => Some(model.clone()),
            _ => None,
        }
    }

    /// Reserves `bytes` for a load, or says why memory is short.
    fn reserve(&self, bytes: u64) -> Result<Reservation<'_>, String> {
        let mut reserved = self.reserved.lock().expect("reservation lock");
        if let Some(budget) = self.budget {
            let resident = common::memory::resident_bytes();
            if resident + *reserved + bytes > budget {
                return Err(format!(
                    "not enough memory to load another model: {} MiB in use and {} MiB reserved by loads in progress, this one needs about {} MiB, the budget is {} MiB (SERVE_MODEL_MEMORY_FRACTION of the container's memory); unload a model and retry",
                    resident >> 20,
                    *reserved >> 20,
                    bytes.div_ceil(1 << 20),
                    budget >> 20
                ));
            }
        }
        *reserved += bytes;
        Ok(Reservation {
            registry: self,
            bytes,
        })
    }

    fn remove_if_loading(&self, name: &str) {
        let mut models = self.models.lock().expect("registry lock");
        if matches!(models.get(name), Some(Slot::Loading)) {
            models.remove(name);
        }
    }
}

/// Memory reserved for a load in progress; released when dropped.
struct Reservation<'a> {
    registry: &'a Registry,
    bytes: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        *self.registry.reserved.lock().expect("reservation lock") -= self.bytes;
    }
}

#[derive(Deserialize)]
struct LoadRequest {
    model_name: String,
    url: String,
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `POST /models`: loads `{"model_name", "url"}`; 200 once it answers requests.
pub async fn load(State(state): State<AppState>, body: Body) -> Response {
    match load_model(&state, body).await {
        Ok(name) => json(
            StatusCode::OK,
            serde_json::json!({ "status": format!("Model \"{name}\" loaded") }),
        ),
        Err(e) => e.into_response(),
    }
}

async fn load_model(state: &AppState, body: Body) -> Result<String, ServeError> {
    let bytes = axum::body::to_bytes(body, MAX_LOAD_REQUEST_BYTES)
        .await
        .map_err(|_| ServeError::PayloadTooLarge(MAX_LOAD_REQUEST_BYTES))?;
    let request: LoadRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ServeError::BadRequest(format!(
            "the body must be {{\"model_name\": \"...\", \"url\": \"/opt/ml/models/...\"}}: {e}"
        ))
    })?;
    let name = request.model_name;
    if name.is_empty() || name.len() > 1024 || name.chars().any(char::is_control) {
        return Err(ServeError::BadRequest(
            "model_name must be 1 to 1024 printable characters".into(),
        ));
    }
    let registry = state.registry.clone();
    {
        let mut models = registry.models.lock().expect("registry lock");
        if models.contains_key(&name) {
            return Err(ServeError::Conflict(format!(
                "model '{}' is already loaded (or loading); unload it first",
                shown(&name)
            )));
        }
        models.insert(name.clone(), Slot::Loading);
    }
    let url = request.url;
    let loading = name.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let dir = std::path::Path::new(&url);
        let estimate = LOAD_ESTIMATE_FACTOR
            * model_file_bytes(dir).map_err(|e| match e {
                Some(e) => ServeError::BadRequest(format!(
                    "cannot read model '{}' at {url}: {e}",
                    shown(&loading)
                )),
                None => ServeError::NoSuchModel(format!("no model directory at {url}")),
            })?;
        let reservation = registry
            .reserve(estimate)
            .map_err(ServeError::InsufficientMemory)?;
        let model = LoadedModel::load_from(dir).map_err(|e| {
            ServeError::BadRequest(format!(
                "cannot load model '{}' from {url}: {}",
                shown(&loading),
                common::error::one_line(&e.to_string(), 500)
            ))
        })?;
        drop(reservation);
        tracing::info!(
            model = %loading,
            %url,
            model_kind = %model.manifest.model_kind,
            ms = started.elapsed().as_millis() as u64,
            resident_mib = common::memory::resident_bytes() >> 20,
            "model loaded"
        );
        Ok((url, Arc::new(model)))
    })
    .await
    .unwrap_or(Err(ServeError::Internal));
    match loaded {
        Ok((url, model)) => {
            let mut models = state.registry.models.lock().expect("registry lock");
            models.insert(name.clone(), Slot::Ready { url, model });
            Ok(name)
        }
        Err(e) => {
            state.registry.remove_if_loading(&name);
            if let ServeError::BadRequest(m) | ServeError::InsufficientMemory(m) = &e {
                tracing::warn!("{m}");
            }
            Err(e)
        }
    }
}

/// Bytes of the files a load reads: every regular file in `dir` but XGBoost's own models
/// (`*.ubj`, kept for XGBoost tooling and never read). `Err(None)` when `dir` does not exist.
fn model_file_bytes(dir: &std::path::Path) -> Result<u64, Option<std::io::Error>> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => None,
        _ => Some(e),
    })?;
    let mut bytes = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".ubj") {
            continue;
        }
        if let Some(meta) = entry.metadata().ok().filter(|m| m.is_file()) {
            bytes += meta.len();
        }
    }
    Ok(bytes)
}

/// A name as shown in messages and logs: at most 100 characters.
fn shown(name: &str) -> String {
    name.chars().take(100).collect()
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
    next_page_token: Option<String>,
}

/// `GET /models`: `{"models": [{"modelName", "modelUrl"}], "nextPageToken"}` in name order,
/// `limit` per page (default 100), from `next_page_token` on.
pub async fn list(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Response {
    let limit = match query.limit.as_deref().map(str::parse::<usize>) {
        None => PAGE,
        Some(Ok(n)) if n > 0 => n.min(MAX_PAGE),
        Some(_) => {
            return ServeError::BadRequest("limit must be a whole number above 0".into())
                .into_response()
        }
    };
    let start = match query.next_page_token.as_deref().map(str::parse::<usize>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return ServeError::BadRequest("next_page_token is not one this server gave".into())
                .into_response()
        }
    };
    let models = state.registry.models.lock().expect("registry lock");
    let ready: Vec<_> = models
        .iter()
        .filter_map(|(name, slot)| match slot {
            Slot::Ready { url, .. } => {
                Some(serde_json::json!({"modelName": name, "modelUrl": url}))
            }
            Slot::Loading => None,
        })
        .collect();
    let end = start.saturating_add(limit).min(ready.len());
    let page = ready.get(start.min(end)..end).unwrap_or_default().to_vec();
    let mut body = serde_json::json!({ "models": page });
    if end < ready.len() {
        body["nextPageToken"] = end.to_string().into();
    }
    json(StatusCode::OK, body)
}

/// `GET /models/<name>`: `{"modelName", "modelUrl"}`, or 404.
pub async fn describe(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let models = state.registry.models.lock().expect("registry lock");
    match models.get(&name) {
        Some(Slot::Ready { url, .. }) => json(
            StatusCode::OK,
            serde_json::json!({"modelName": name, "modelUrl": url}),
        ),
        _ => not_loaded(&name).into_response(),
    }
}

fn not_loaded(name: &str) -> ServeError {
    ServeError::NoSuchModel(format!("model '{}' is not loaded", shown(name)))
}

/// `DELETE /models/<name>`: unloads; answers once no request holds the model any more and its
/// memory is given back.
pub async fn unload(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let model = {
        let mut models = state.registry.models.lock().expect("registry lock");
        match models.get(&name) {
            Some(Slot::Ready { .. }) => match models.remove(&name) {
                Some(Slot::Ready { model, .. }) => model,
                _ => unreachable!("checked under the lock"),
            },
            Some(Slot::Loading) => {
                return ServeError::Conflict(format!(
                    "model '{}' is still loading; unload it once loaded",
                    shown(&name)
                ))
                .into_response()
            }
            None => return not_loaded(&name).into_response(),
        }
    };
    // Requests already answering with it finish first (each is bounded by its deadline).
    let mut model = model;
    loop {
        match Arc::try_unwrap(model) {
            Ok(last) => {
                let _ = tokio::task::spawn_blocking(move || {
                    drop(last);
                    common::memory::release_free_memory();
                })
                .await;
                break;
            }
            Err(shared) => {
                model = shared;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    tracing::info!(
        model = %shown(&name),
        resident_mib = common::memory::resident_bytes() >> 20,
        "model unloaded"
    );
    json(
        StatusCode::OK,
        serde_json::json!({ "status": format!("Model \"{}\" unloaded", shown(&name)) }),
    )
}

/// `POST /models/<name>/invoke`: `/invocations` for that model.
pub async fn invoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match state.registry.get(&name) {
        Some(model) => crate::invoke_with(&state, &headers, body, model).await,
        None => not_loaded(&name).into_response(),
    }
}

//! Multi-model endpoints (`SAGEMAKER_MULTI_MODEL=true`): SageMaker's model API on the serving
//! port. The container starts with no model; `POST /models` loads one from a directory under
//! `/opt/ml/models` (read, never written), `GET /models[/<name>]` lists and describes,
//! `DELETE /models/<name>` unloads, `POST /models/<name>/invoke` is `/invocations` for it.
//!
//! Models of any kind sit side by side, each behind its own `Arc`: a request holds the model it
//! answers with, so loads, unloads and other models' requests never wait for it.
//!
//! Memory is budgeted against the container's limit (cgroup, else the machine's memory). Each
//! model is charged what its arrays hold (the kind reports it: compiled trees, k-NN rows), 1/16
//! more for allocator slack and a fixed 32 KiB, the same every time for the same model, so unloading one model always
//! makes room for a model like it. Models may fill `SERVE_MODEL_MEMORY_FRACTION` (0.9) of the
//! limit, counted from the memory the server held at start; the rest is for requests in
//! flight. A load whose model does not fit is undone and answered 507 (SageMaker then unloads
//! a model and retries). Measured memory is the safety net: a load does not start when the
//! process's resident memory plus the peaks of the loads in progress and this one (twice the
//! bytes of the files it reads, plus the overhead) could pass the point halfway between the
//! budget and the limit, so no load takes the container to the kernel's OOM killer. An unload
//! answers once the model's memory is freed and given back to the system.

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

/// The loaded models and what they are charged.
pub struct Registry {
    models: Mutex<BTreeMap<String, Slot>>,
    accounts: Mutex<Accounts>,
    /// Resident memory at start, before any model.
    baseline: u64,
    /// Bytes the models may fill (`None`: no limit known, nothing refused).
    budget: Option<u64>,
    /// Resident bytes a load in progress may briefly take the process to.
    peak_cap: Option<u64>,
}

#[derive(Default)]
struct Accounts {
    /// The charges of the loaded models and of the loads in progress.
    charged: u64,
    /// The peaks of the loads in progress.
    loading: u64,
}

enum Slot {
    /// A load of this name is in progress.
    Loading,
    Ready {
        url: String,
        model: Arc<LoadedModel>,
        /// What the model is charged against the budget.
        charge: u64,
    },
}

/// What a model costs beyond its arrays (manifest, names, schema), besides 1/16 of the arrays
/// for allocator slack. Measured: a 200 + 200-tree fire ensemble held 1,814 KiB resident for
/// 1,712 KiB of arrays (charged 1,851 KiB); a 20 + 20-tree one 24 KiB for 27 KiB (charged 61).
const MODEL_OVERHEAD: u64 = 32 * 1024;

/// Largest `POST /models` body read (the request is a name and a path).
const MAX_LOAD_REQUEST_BYTES: usize = 64 * 1024;

/// Models listed per page when the request gives no `limit`, and the most it may ask for.
const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

impl Registry {
    /// An empty registry budgeting `fraction` of the container's memory limit.
    pub fn new(fraction: f64) -> Self {
        let limit = common::memory::limit_bytes();
        let budget = limit.map(|limit| (limit as f64 * fraction) as u64);
        Self {
            models: Mutex::default(),
            accounts: Mutex::default(),
            baseline: common::memory::resident_bytes(),
            budget,
            peak_cap: limit.zip(budget).map(|(l, b)| b + (l - b) / 2),
        }
    }

    /// The bytes models may fill, if the container's memory is known.
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

    /// Admits a load that reads `bytes` of model files while memory allows its peak.
    fn admit(&self, bytes: u64) -> Result<Admission<'_>, String> {
        let peak = 2 * bytes + MODEL_OVERHEAD;
        let mut accounts = self.accounts.lock().expect("accounts lock");
        if let (Some(budget), Some(peak_cap)) = (self.budget, self.peak_cap) {
            if self.baseline + accounts.charged + MODEL_OVERHEAD > budget {
                return Err(self.full(accounts.charged, MODEL_OVERHEAD));
            }
            let resident = common::memory::resident_bytes();
            if resident + accounts.loading + peak > peak_cap {
                return Err(format!(
                    "not enough memory to load another model: the server holds {} MiB, loads in progress may take {} MiB more and this one {} MiB, over the {} MiB kept clear of the container's limit; unload a model and retry",
                    mib(resident),
                    mib(accounts.loading),
                    mib(peak),
                    mib(peak_cap)
                ));
            }
        }
        accounts.loading += peak;
        Ok(Admission {
            registry: self,
            peak,
        })
    }

    /// Charges a loaded model `charge` bytes if the budget has room for it.
    fn charge(&self, charge: u64) -> Result<(), String> {
        let mut accounts = self.accounts.lock().expect("accounts lock");
        if let Some(budget) = self.budget {
            if self.baseline + accounts.charged + charge > budget {
                return Err(self.full(accounts.charged, charge));
            }
        }
        accounts.charged += charge;
        Ok(())
    }

    fn full(&self, charged: u64, charge: u64) -> String {
        format!(
            "not enough memory for another model: the loaded models take {} MiB of the {} MiB they may fill (SERVE_MODEL_MEMORY_FRACTION of the container's memory, less {} MiB for the server), this one needs {} MiB; unload a model and retry",
            mib(charged),
            mib(self.budget.unwrap_or(0)),
            mib(self.baseline),
            mib(charge)
        )
    }

    fn discharge(&self, charge: u64) {
        self.accounts.lock().expect("accounts lock").charged -= charge;
    }

    fn remove_if_loading(&self, name: &str) {
        let mut models = self.models.lock().expect("registry lock");
        if matches!(models.get(name), Some(Slot::Loading)) {
            models.remove(name);
        }
    }
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// A load in progress; its peak is released when dropped.
struct Admission<'a> {
    registry: &'a Registry,
    peak: u64,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.registry
            .accounts
            .lock()
            .expect("accounts lock")
            .loading -= self.peak;
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
    // The task finishes the slot itself (ready, or freed), so a client that goes away while
    // its model loads leaves no slot stuck in Loading and no charge behind.
    let task = tokio::task::spawn_blocking(move || match load_into(&registry, &loading, url) {
        Ok((url, model, charge)) => {
            let slot = Slot::Ready { url, model, charge };
            registry
                .models
                .lock()
                .expect("registry lock")
                .insert(loading, slot);
            Ok(())
        }
        Err(e) => {
            registry.remove_if_loading(&loading);
            if let ServeError::BadRequest(m) | ServeError::InsufficientMemory(m) = &e {
                tracing::warn!("{m}");
            }
            Err(e)
        }
    });
    match task.await {
        Ok(Ok(())) => Ok(name),
        Ok(Err(e)) => Err(e),
        Err(_) => {
            state.registry.remove_if_loading(&name);
            Err(ServeError::Internal)
        }
    }
}

/// Loads the model at `url` for `name` within the memory budget (blocking).
fn load_into(
    registry: &Registry,
    name: &str,
    url: String,
) -> Result<(String, Arc<LoadedModel>, u64), ServeError> {
    let started = std::time::Instant::now();
    let dir = std::path::Path::new(&url);
    let bytes = model_file_bytes(dir).map_err(|e| match e {
        Some(e) => {
            ServeError::BadRequest(format!("cannot read model '{}' at {url}: {e}", shown(name)))
        }
        None => ServeError::NoSuchModel(format!("no model directory at {url}")),
    })?;
    let admission = registry
        .admit(bytes)
        .map_err(ServeError::InsufficientMemory)?;
    let model = LoadedModel::load_from(dir).map_err(|e| {
        ServeError::BadRequest(format!(
            "cannot load model '{}' from {url}: {}",
            shown(name),
            common::error::one_line(&e.to_string(), 500)
        ))
    })?;
    drop(admission);
    let arrays = model.memory_bytes() as u64;
    let charge = arrays + arrays / 16 + MODEL_OVERHEAD;
    if let Err(full) = registry.charge(charge) {
        drop(model);
        common::memory::release_free_memory();
        return Err(ServeError::InsufficientMemory(full));
    }
    tracing::info!(
        model = %name,
        %url,
        model_kind = %model.manifest.model_kind,
        ms = started.elapsed().as_millis() as u64,
        charged_kib = charge >> 10,
        resident_mib = common::memory::resident_bytes() >> 20,
        "model loaded"
    );
    Ok((url, Arc::new(model), charge))
}

/// Bytes a load reads, for its peak estimate: every regular file in `dir` (XGBoost models
/// trained elsewhere are read whatever their names), a `model.tar.gz` counted four times (what it
/// unpacks to). `Err(None)` when `dir` does not exist.
fn model_file_bytes(dir: &std::path::Path) -> Result<u64, Option<std::io::Error>> {
    let entries = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => None,
        _ => Some(e),
    })?;
    let mut bytes = 0u64;
    for entry in entries.flatten() {
        if let Some(meta) = entry.metadata().ok().filter(|m| m.is_file()) {
            let archive = entry.file_name().to_string_lossy().ends_with(".tar.gz");
            bytes = bytes.saturating_add(meta.len() * if archive { 4 } else { 1 });
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
    let (model, charge) = {
        let mut models = state.registry.models.lock().expect("registry lock");
        match models.remove(&name) {
            Some(Slot::Ready { model, charge, .. }) => (model, charge),
            Some(Slot::Loading) => {
                // Still the loader's (under this lock): put back as it was.
                models.insert(name.clone(), Slot::Loading);
                return ServeError::Conflict(format!(
                    "model '{}' is still loading; unload it once loaded",
                    shown(&name)
                ))
                .into_response();
            }
            None => return not_loaded(&name).into_response(),
        }
    };
    // Requests already answering with it finish first (each is bounded by its deadline). A
    // task of its own frees the model and its charge even if this client goes away.
    let registry = state.registry.clone();
    let freed = tokio::spawn(async move {
        let mut model = model;
        loop {
            match Arc::try_unwrap(model) {
                Ok(last) => {
                    let _ = tokio::task::spawn_blocking(move || {
                        drop(last);
                        common::memory::release_free_memory();
                    })
                    .await;
                    registry.discharge(charge);
                    return;
                }
                Err(shared) => {
                    model = shared;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    });
    let _ = freed.await;
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

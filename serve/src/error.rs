//! Request errors and their HTTP status codes: one variant, one status, one short body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a request was not answered with predictions.
#[derive(Debug, Clone, PartialEq)]
pub enum ServeError {
    /// 400: the body cannot be read as records (the message names record and field).
    BadRequest(String),
    /// 406: no acceptable output type.
    NotAcceptable(String),
    /// 406: the type asked for is not one this model's answers come in (why).
    NotAnswerableAs(String),
    /// 413: the body is over the limit (bytes).
    PayloadTooLarge(usize),
    /// 415: an input type the server does not read.
    UnsupportedMediaType(String),
    /// 415: a compressed body (Content-Encoding other than identity).
    UnsupportedEncoding(String),
    /// 500: the model could not be loaded (details are in the log).
    ModelUnavailable,
    /// 503: the model is still loading, the queue is full, or the server is stopping.
    Unavailable(&'static str),
    /// 408: the body stopped arriving (`idle` seconds without a byte) or was not complete within
    /// the request deadline (`total` seconds); the connection is closed.
    BodyTimeout {
        /// Longest pause allowed between two pieces of the body.
        idle: u64,
        /// Longest time allowed for the whole request.
        total: u64,
    },
    /// 504: the answer was not ready within the request deadline (seconds).
    Deadline(u64),
    /// 404: no such route.
    NotFound(String),
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 404: multi-model endpoints: no such model (loaded, or at the URL given).
    NoSuchModel(String),
    /// 409: multi-model endpoints: the model name is taken, or the model is still loading.
    Conflict(String),
    /// 507: multi-model endpoints: not enough memory to load another model.
    InsufficientMemory(String),
    /// 500: an unexpected fault (logged, not echoed).
    Internal,
}

impl ServeError {
    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServeError::NotAcceptable(_) | ServeError::NotAnswerableAs(_) => {
                StatusCode::NOT_ACCEPTABLE
            }
            ServeError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServeError::UnsupportedMediaType(_) | ServeError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ServeError::ModelUnavailable | ServeError::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ServeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServeError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ServeError::Deadline(_) => StatusCode::GATEWAY_TIMEOUT,
            ServeError::NotFound(_) | ServeError::NoSuchModel(_) => StatusCode::NOT_FOUND,
            ServeError::Conflict(_) => StatusCode::CONFLICT,
            ServeError::InsufficientMemory(_) => StatusCode::INSUFFICIENT_STORAGE,
            ServeError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The one-line message sent to the client.
    pub fn message(&self) -> String {
        match self {
            ServeError::BadRequest(m)
            | ServeError::NotAnswerableAs(m)
            | ServeError::NoSuchModel(m)
            | ServeError::Conflict(m)
            | ServeError::InsufficientMemory(m) => m.clone(),
            ServeError::NotAcceptable(a) => format!(
                "Accept '{a}' is not supported; use application/json, text/csv, application/jsonlines or application/x-recordio-protobuf"
            ),
            ServeError::PayloadTooLarge(limit) => format!("request body is over the limit of {limit} bytes"),
            ServeError::UnsupportedMediaType(t) => format!(
                "Content-Type '{t}' is not supported; use text/csv, application/json, application/jsonlines, text/libsvm or application/x-recordio-protobuf"
            ),
            ServeError::UnsupportedEncoding(e) => format!(
                "Content-Encoding '{e}' is not supported; send the body uncompressed"
            ),
            ServeError::ModelUnavailable => "the model could not be loaded; see the container log".into(),
            ServeError::Unavailable(why) => (*why).into(),
            ServeError::Internal => "internal error; see the container log".into(),
            ServeError::BodyTimeout { idle, total } => format!(
                "the request body did not arrive in time: no data for {idle} s, or not complete within {total} s"
            ),
            ServeError::Deadline(secs) => format!(
                "no answer within {secs} s (SAGEMAKER_MODEL_SERVER_TIMEOUT)"
            ),
            ServeError::NotFound(path) => format!(
                "no route {path}; this server answers GET /ping, POST /invocations, GET /execution-parameters"
            ),
            ServeError::MethodNotAllowed => "method not allowed on this route".into(),
        }
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let body =
            serde_json::json!({ "error": self.status().as_u16(), "message": self.message() });
        let mut response = (
            self.status(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if matches!(self, ServeError::BodyTimeout { .. }) {
            // The rest of a late body must not be read as the next request.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

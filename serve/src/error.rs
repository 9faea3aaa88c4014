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
    /// 413: the body is over the limit (bytes).
    PayloadTooLarge(usize),
    /// 415: an input type the server does not read.
    UnsupportedMediaType(String),
    /// 500: the model could not be loaded (details are in the log).
    ModelUnavailable,
    /// 503: the model is still loading, or the queue is full.
    Unavailable(&'static str),
    /// 500: an unexpected fault (logged, not echoed).
    Internal,
}

impl ServeError {
    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ServeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServeError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ServeError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServeError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServeError::ModelUnavailable | ServeError::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ServeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The one-line message sent to the client.
    pub fn message(&self) -> String {
        match self {
            ServeError::BadRequest(m) => m.clone(),
            ServeError::NotAcceptable(a) => format!(
                "Accept '{a}' is not supported; use application/json, text/csv or application/jsonlines"
            ),
            ServeError::PayloadTooLarge(limit) => format!("request body is over the limit of {limit} bytes"),
            ServeError::UnsupportedMediaType(t) => format!(
                "Content-Type '{t}' is not supported; use text/csv, application/json or application/jsonlines"
            ),
            ServeError::ModelUnavailable => "the model could not be loaded; see the container log".into(),
            ServeError::Unavailable(why) => (*why).into(),
            ServeError::Internal => "internal error; see the container log".into(),
        }
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let body =
            serde_json::json!({ "error": self.status().as_u16(), "message": self.message() });
        (
            self.status(),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

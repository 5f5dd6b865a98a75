//! The one HTTP error type: a status code and a one-line reason, sent as `text/plain`.
//! Internal detail is logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::ingest::IngestError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
    /// An extra response header (e.g. `WWW-Authenticate` on a 401).
    pub header: Option<(axum::http::HeaderName, &'static str)>,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            reason: reason.into(),
            header: None,
        }
    }

    pub fn with_header(mut self, name: axum::http::HeaderName, value: &'static str) -> ApiError {
        self.header = Some((name, value));
        self
    }

    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, reason)
    }

    pub fn not_found(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = self.reason;
        body.push('\n');
        let mut response = (
            self.status,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            body,
        )
            .into_response();
        if let Some((name, value)) = self.header {
            response
                .headers_mut()
                .insert(name, axum::http::HeaderValue::from_static(value));
        }
        response
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        let status = match &e {
            IngestError::BadOffer(_) | IngestError::BadFragment(_) => StatusCode::BAD_REQUEST,
            IngestError::Unsupported(_) => StatusCode::NOT_ACCEPTABLE,
            IngestError::Conflict(_) => StatusCode::CONFLICT,
            IngestError::NoSession => StatusCode::NOT_FOUND,
            IngestError::NoMediaPort => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::MediaPort(_) => {
                tracing::error!(error = %e, "WHIP publish failed");
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the media port is unavailable",
                );
            }
            IngestError::Internal(detail) => {
                tracing::error!(%detail, "WHIP publish failed");
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        };
        ApiError::new(status, e.to_string())
    }
}

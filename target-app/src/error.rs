//! `AppError`: the one place an error becomes a response.
//!
//! `Display` (with the `source()` chain) is the internal description, for the log. The client
//! gets an RFC 9457 problem+json body built by [`AppError::response`], whose `detail` is a
//! fixed, safe sentence per variant. The error itself rides along in the response extensions,
//! where the one logging middleware (`http::observe`) finds it, logs it once, and, only with
//! `safe-errors` off, swaps in a body that leaks the internal text.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::breaker;
use crate::db;
use crate::panics::PanicReport;
use crate::payments::PaymentsError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("not enough stock for this quantity")]
    OutOfStock,
    #[error("the Idempotency-Key was already used for a different order")]
    IdempotencyConflict,
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// An error axum answered itself (unknown route, wrong method, a body that is not JSON).
    #[error("rejected by the framework: {message}")]
    Rejected { status: StatusCode, message: String },
    #[error("database error")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    CircuitOpen(#[from] breaker::Open),
    #[error("payments call failed")]
    Payments(#[from] PaymentsError),
    #[error("writing the receipt failed")]
    Disk(#[source] std::io::Error),
    #[error("shedding load: {0}")]
    Overloaded(ShedReason),
    #[error("the request deadline of {0:?} passed")]
    Deadline(Duration),
    #[error("handler {0}")]
    Panic(PanicReport),
    #[error("failpoint `{0}` injected an error")]
    Injected(&'static str),
}

/// Why a request was shed; the `reason` label of `app_load_shed_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShedReason {
    Concurrency,
    Memory,
    /// The process is out of file descriptors (see `http::listener`).
    Descriptors,
}

impl ShedReason {
    pub fn label(self) -> &'static str {
        match self {
            ShedReason::Concurrency => "concurrency",
            ShedReason::Memory => "memory",
            ShedReason::Descriptors => "descriptors",
        }
    }
}

impl std::fmt::Display for ShedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// What a request axum refused did wrong, by the status axum chose.
fn rejection_detail(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => {
            "the request could not be read: its body is not valid JSON, or a part of its address is malformed"
        }
        404 => "there is nothing at this address",
        405 => "this method is not allowed at this address",
        413 => "the request body is too large",
        415 => "the body must be JSON, sent with `Content-Type: application/json`",
        422 => "the JSON body does not have the expected fields and types",
        _ => "the request was refused",
    }
}

/// Sent with every 503 that has no better estimate.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Invalid { .. } | AppError::IdempotencyConflict => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::OutOfStock => StatusCode::CONFLICT,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Rejected { status, .. } => *status,
            // A database that is down or slow is "try again later"; anything else it says
            // (a constraint, a missing column) is our bug.
            AppError::Db(e) if db::is_unavailable(db::error_kind(e)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::CircuitOpen(_)
            | AppError::Payments(_)
            | AppError::Overloaded(_)
            | AppError::Deadline(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Disk(_) | AppError::Panic(_) | AppError::Injected(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The problem `type` slug and the client-safe `detail`.
    fn public(&self) -> (&'static str, String) {
        let (slug, detail) = match self {
            AppError::BadRequest(why) => ("bad-request", *why),
            AppError::Invalid { field, reason } => {
                return ("invalid-input", format!("`{field}` {reason}"));
            }
            AppError::NotFound(what) => return ("not-found", format!("{what} not found")),
            AppError::OutOfStock => ("out-of-stock", "not enough stock for this quantity"),
            AppError::IdempotencyConflict => (
                "idempotency-conflict",
                "this Idempotency-Key was already used for a different order",
            ),
            AppError::Unauthorized => ("unauthorized", "a valid bearer token is required"),
            // axum's rejection texts name Rust types and echo the client's input: they stay in
            // the log (`Display`), and the client reads what was wrong in this service's words.
            AppError::Rejected { status, .. } => ("rejected", rejection_detail(*status)),
            AppError::Db(_) if self.status() == StatusCode::SERVICE_UNAVAILABLE => (
                "dependency-unavailable",
                "the database is unavailable; retry later",
            ),
            AppError::CircuitOpen(_) => (
                "dependency-unavailable",
                "a dependency is failing; retry later",
            ),
            AppError::Payments(_) => (
                "dependency-unavailable",
                "the payment service is unavailable; no order was placed, retry later",
            ),
            AppError::Overloaded(_) => ("overloaded", "the service is overloaded; retry later"),
            AppError::Deadline(_) => (
                "deadline-exceeded",
                "the request took too long; retry later",
            ),
            AppError::Disk(_) => (
                "internal",
                "the order was placed but its receipt could not be written",
            ),
            AppError::Db(_) | AppError::Panic(_) | AppError::Injected(_) => {
                ("internal", "an internal error occurred")
            }
        };
        (slug, detail.to_owned())
    }

    /// The `Retry-After` for a 503.
    fn retry_after(&self) -> Option<Duration> {
        if self.status() != StatusCode::SERVICE_UNAVAILABLE {
            return None;
        }
        Some(match self {
            AppError::CircuitOpen(open) => open.retry_after,
            AppError::Payments(PaymentsError::CircuitOpen(open)) => open.retry_after,
            _ => DEFAULT_RETRY_AFTER,
        })
    }

    /// The problem+json response. `expose_internals` is only ever true with the `safe-errors`
    /// protection off: then `detail` is the internal cause chain, as an unhardened service
    /// would send it.
    pub fn response(&self, expose_internals: bool) -> Response {
        let status = self.status();
        let (slug, safe_detail) = self.public();
        let detail = if expose_internals {
            self.chain()
        } else {
            safe_detail
        };
        let body = serde_json::json!({
            "type": format!("urn:fivehundred:problem:{slug}"),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(after) = self.retry_after() {
            // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }

    /// The error and its sources, `: `-separated: the internal description for the log.
    pub fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            s.push_str(": ");
            s.push_str(&e.to_string());
            source = e.source();
        }
        s
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = self.response(false);
        response.extensions_mut().insert(Arc::new(self));
        response
    }
}

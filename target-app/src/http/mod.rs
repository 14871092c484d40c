//! The public listener: the router, and the middleware every request goes through.
//!
//! Outermost first:
//! 1. request id: the client's `x-request-id`, or a new UUID; echoed on every response;
//! 2. `observe`: metrics for every response, and the one log line for every 4xx/5xx;
//! 3. `catch-panic`: a handler panic becomes a 500 instead of a dropped connection;
//! 4. `timeouts`: the request deadline;
//! 5. the routes of each feature; the shop routes (not the health probes, which must answer
//!    precisely when the service is busy) are behind `load-shed`.

mod deadline;
pub mod health;
pub mod listener;
pub mod orders;
pub mod products;
mod shed;

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::AppState;
use crate::error::AppError;
use crate::panics;
use crate::protections::Protection;

/// The public application. The protections decide which layers exist at all, so that with one
/// off, its code is not merely skipped but absent.
pub fn app(state: Arc<AppState>) -> Router {
    let on = |p| state.protections.on(p);

    let mut shop = products::router().merge(orders::router());
    if on(Protection::LoadShed) {
        shop = shop.layer(shed::ShedLayer(state.clone()));
    }

    let mut app = shop.merge(health::router());
    if on(Protection::Timeouts) {
        app = app.layer(deadline::DeadlineLayer(state.clone()));
    }
    if on(Protection::CatchPanic) {
        app = app.layer(CatchPanicLayer::custom(panic_response));
    }
    app.layer(axum::middleware::from_fn(close_on_reserve))
        .layer(from_fn_with_state(state.clone(), observe))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Counts every response, and logs every failed one exactly once, with its request id and
/// internal cause. This is also where `safe-errors` off swaps in the leaky body.
async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        // Not the raw path: one label value per URL a scanner tries would blow up the series.
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();

    let mut response = next.run(request).await;
    if response.status().as_u16() >= 400 && response.extensions().get::<Arc<AppError>>().is_none() {
        response = problem_from_rejection(response).await;
    }

    let status = response.status();
    let m = &state.metrics;
    m.http_requests
        .with_label_values(&[route.as_str(), method, status.as_str()])
        .inc();
    m.http_duration
        .with_label_values(&[route.as_str(), method])
        .observe(started.elapsed().as_secs_f64());

    let Some(error) = response.extensions().get::<Arc<AppError>>().cloned() else {
        return response;
    };
    match &*error {
        AppError::Panic(_) => m.panics.with_label_values(&["handler"]).inc(),
        AppError::Overloaded(reason) => m.load_shed.with_label_values(&[reason.label()]).inc(),
        _ => {}
    }
    let backtrace = match &*error {
        AppError::Panic(report) => Some(report.backtrace.to_string()),
        _ => None,
    };
    let cause = error.chain();
    if status.is_server_error() {
        tracing::error!(%request_id, status = status.as_u16(), %route, %method, error = %cause, backtrace, "request failed");
    } else {
        tracing::warn!(%request_id, status = status.as_u16(), %route, %method, error = %cause, "request failed");
    }

    if !state.protections.on(Protection::SafeErrors) {
        let mut leaky = error.response(true);
        leaky.extensions_mut().insert(error);
        return leaky;
    }
    response
}

/// The `method` label: the methods this service knows, and `other` for the rest. The method is
/// the client's choice (any token is a valid method), and each new label value is a new series
/// kept for the life of the process.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// axum answers a few errors itself, as text/plain or with no body: an unknown route, a wrong
/// method, a body that is not the expected JSON. They become problem+json here, so the
/// contract holds for every 4xx/5xx. JSON answers (problem+json, /readyz's health+json) pass.
async fn problem_from_rejection(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let message = match String::from_utf8_lossy(&text).trim() {
        "" => parts
            .status
            .canonical_reason()
            .unwrap_or("request rejected")
            .to_owned(),
        text => text.to_owned(),
    };
    AppError::Rejected {
        status: parts.status,
        message,
    }
    .into_response()
}

/// How the request's connection was admitted (see [`listener`]); absent outside a real
/// listener (tests calling the router).
fn admission(request: &Request) -> listener::Admission {
    request
        .extensions()
        .get::<ConnectInfo<listener::Admission>>()
        .map(|c| c.0)
        .unwrap_or(listener::Admission {
            on_reserve: false,
            refused: false,
        })
}

/// A connection accepted on the reserve descriptor is closed after its answer, so the reserve
/// can be taken back for the next one. Used by the admin listener too.
pub async fn close_on_reserve(request: Request, next: Next) -> Response {
    let on_reserve = admission(&request).on_reserve;
    let mut response = next.run(request).await;
    if on_reserve {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// `catch-panic`: the panic becomes an ordinary `AppError`, logged by `observe`.
fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response<Body> {
    AppError::Panic(panics::report(&*payload)).into_response()
}

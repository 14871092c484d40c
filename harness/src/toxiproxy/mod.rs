//! Toxiproxy's HTTP API (version 2) over fivehundred's fault proxy, so that Toxiproxy clients
//! drive it unchanged: the same endpoints, JSON shapes, status codes, error body
//! (`{"error": "...", "status": N}`) and defaults, every Toxiproxy toxic, plus toxics Toxiproxy
//! cannot make (`http_response`, `postgres_error`, `postgres_stall`,
//! `postgres_too_many_clients`).
//!
//! [`ToxiproxyApi`] serves a [`Registry`] of named proxies: ones it creates, and ones a lab
//! registers ([`Registry::register`]). `fivehundred proxy` ([`server`]) runs it alone, as a
//! drop-in `toxiproxy-server`, with proxies and toxics from a config file ([`config`]).

pub mod config;
pub mod model;
pub mod registry;
pub mod server;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub use registry::{ProxyInput, Registry};

/// The version `GET /version` reports: Toxiproxy's API version, with this build as semver
/// build metadata so that clients that parse it accept it.
pub const VERSION: &str = concat!("2.12.0+fivehundred.", env!("CARGO_PKG_VERSION"));

/// An error as Toxiproxy reports it: its message and status, in the body and on the response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} ({status})")]
pub struct ApiError {
    pub message: String,
    pub status: u16,
}

impl ApiError {
    fn new(message: impl Into<String>, status: StatusCode) -> ApiError {
        ApiError {
            message: message.into(),
            status: status.as_u16(),
        }
    }

    pub fn bad_body(detail: &str) -> ApiError {
        ApiError::new(
            format!("bad request body: {detail}"),
            StatusCode::BAD_REQUEST,
        )
    }

    fn missing_field(field: &str) -> ApiError {
        ApiError::new(
            format!("missing required field: {field}"),
            StatusCode::BAD_REQUEST,
        )
    }

    fn proxy_not_found() -> ApiError {
        ApiError::new("proxy not found", StatusCode::NOT_FOUND)
    }

    fn proxy_exists() -> ApiError {
        ApiError::new("proxy already exists", StatusCode::CONFLICT)
    }

    fn invalid_stream() -> ApiError {
        ApiError::new(
            "stream was invalid, can be either upstream or downstream",
            StatusCode::BAD_REQUEST,
        )
    }

    fn invalid_toxic_type() -> ApiError {
        ApiError::new("invalid toxic type", StatusCode::BAD_REQUEST)
    }

    fn toxic_exists() -> ApiError {
        ApiError::new("toxic already exists", StatusCode::CONFLICT)
    }

    fn toxic_not_found() -> ApiError {
        ApiError::new("toxic not found", StatusCode::NOT_FOUND)
    }

    fn lab_proxy(name: &str) -> ApiError {
        ApiError::new(
            format!(
                "proxy {name} belongs to the lab: its listen address and upstream are fixed and it cannot be deleted (disable it instead)"
            ),
            StatusCode::CONFLICT,
        )
    }

    /// A toxic its owner (a game day) would not take: not journalled, so not applied.
    fn refused(toxic: &str, why: &str) -> ApiError {
        ApiError::new(
            format!("{toxic} was not applied: {why}"),
            StatusCode::SERVICE_UNAVAILABLE,
        )
    }

    fn bad_address(field: &str, value: &str) -> ApiError {
        ApiError::new(
            format!("{field} address {value:?} does not resolve to a host and port"),
            StatusCode::BAD_REQUEST,
        )
    }

    fn listen_failed(listen: &str, e: &crate::proxy::ProxyError) -> ApiError {
        ApiError::new(
            format!("cannot listen on {listen}: {e}"),
            StatusCode::CONFLICT,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({ "error": self.message, "status": self.status });
        (status, axum::Json(body)).into_response()
    }
}

/// The API's state: the named proxies.
#[derive(Clone)]
pub struct ToxiproxyApi {
    registry: Arc<Registry>,
}

impl ToxiproxyApi {
    pub fn new(registry: Arc<Registry>) -> ToxiproxyApi {
        ToxiproxyApi { registry }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Every endpoint of Toxiproxy's API. Update endpoints take POST and PATCH, as Toxiproxy
    /// does (POST is its older form).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/reset", post(reset))
            .route("/version", get(version))
            .route("/metrics", get(metrics))
            .route("/populate", post(populate))
            .route("/proxies", get(list_proxies).post(create_proxy))
            .route(
                "/proxies/{proxy}",
                get(show_proxy)
                    .post(update_proxy)
                    .patch(update_proxy)
                    .delete(delete_proxy),
            )
            .route("/proxies/{proxy}/toxics", get(list_toxics).post(add_toxic))
            .route(
                "/proxies/{proxy}/toxics/{toxic}",
                get(show_toxic)
                    .post(update_toxic)
                    .patch(update_toxic)
                    .delete(remove_toxic),
            )
            .layer(middleware::from_fn(refuse_browsers))
            .with_state(self.clone())
    }

    /// Serves the API on `listener` until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Binds `addr` and serves the API in the background; returns the bound address.
    pub async fn spawn(self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(e) = self.serve(listener, std::future::pending()).await {
                tracing::warn!(error = %e, "the Toxiproxy API stopped");
            }
        });
        Ok(local)
    }
}

/// Toxiproxy refuses browsers (a page could otherwise drive it from another origin).
async fn refuse_browsers(request: Request, next: Next) -> Response {
    let browser = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("Mozilla/"));
    if browser {
        return (StatusCode::FORBIDDEN, "User agent not allowed\n").into_response();
    }
    next.run(request).await
}

/// Reads a JSON body whatever its content type (curl sends a form type; Toxiproxy ignores it).
fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_body(&e.to_string()))
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: Value) -> ApiResult {
    Ok(axum::Json(value).into_response())
}

async fn reset(State(api): State<ToxiproxyApi>) -> ApiResult {
    api.registry.reset().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn version() -> Response {
    let mut response = format!("{{\"version\": \"{VERSION}\"}}\n").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    response
}

/// Toxiproxy's proxy metrics in Prometheus' text format. Written by hand: four counters do not
/// need a registry, and their names and labels must be Toxiproxy's exactly.
async fn metrics(State(api): State<ToxiproxyApi>) -> Response {
    let mut out = String::new();
    for (metric, help) in [
        ("received_bytes_total", "The total bytes received"),
        ("sent_bytes_total", "The total bytes sent"),
    ] {
        let _ = writeln!(out, "# HELP toxiproxy_proxy_{metric} {help}");
        let _ = writeln!(out, "# TYPE toxiproxy_proxy_{metric} counter");
        for (name, listen, upstream, stats) in api.registry.stats().await {
            for (direction, bytes) in [
                ("upstream", stats.bytes_up),
                ("downstream", stats.bytes_down),
            ] {
                let _ = writeln!(
                    out,
                    "toxiproxy_proxy_{metric}{{direction=\"{direction}\",listener=\"{listen}\",proxy=\"{name}\",upstream=\"{upstream}\"}} {bytes}"
                );
            }
        }
    }
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// A proxy from a request body: `name` and `upstream` are required, `enabled` defaults to
/// true, `toxics` (an extension) to none.
pub fn proxy_input(value: &Value) -> Result<ProxyInput, ApiError> {
    let obj = value
        .as_object()
        .ok_or_else(|| ApiError::bad_body("a proxy is a JSON object"))?;
    let text = |key: &str| -> Result<String, ApiError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(ApiError::bad_body(&format!(
                "`{key}` {other} is not a string"
            ))),
        }
    };
    let name = text("name")?;
    if name.is_empty() {
        return Err(ApiError::missing_field("name"));
    }
    let upstream = text("upstream")?;
    if upstream.is_empty() {
        return Err(ApiError::missing_field("upstream"));
    }
    let enabled = match obj.get("enabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::bad_body(&format!(
                "`enabled` {other} is not a boolean"
            )));
        }
    };
    let toxics = match obj.get("toxics") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(model::ToxicSpec::from_json)
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ApiError::bad_body(&format!(
                "`toxics` {other} is not a list"
            )));
        }
    };
    let mut names: Vec<&str> = toxics
        .iter()
        .map(|t: &model::ToxicSpec| t.name.as_str())
        .collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(ApiError::toxic_exists());
    }
    Ok(ProxyInput {
        name,
        listen: text("listen")?,
        upstream,
        enabled,
        toxics,
    })
}

async fn list_proxies(State(api): State<ToxiproxyApi>) -> ApiResult {
    ok(api.registry.list().await)
}

async fn create_proxy(State(api): State<ToxiproxyApi>, body: Bytes) -> ApiResult {
    let input = proxy_input(&body_json(&body)?)?;
    let json = api.registry.create(input).await?;
    Ok((StatusCode::CREATED, axum::Json(json)).into_response())
}

async fn populate(State(api): State<ToxiproxyApi>, body: Bytes) -> ApiResult {
    let list = match body_json(&body)? {
        Value::Array(list) => list,
        _ => return Err(ApiError::bad_body("populate takes a list of proxies")),
    };
    // Every proxy is checked before any is touched.
    let inputs = list
        .iter()
        .map(proxy_input)
        .collect::<Result<Vec<_>, _>>()?;
    let json = api.registry.populate(inputs).await?;
    Ok((StatusCode::CREATED, axum::Json(json)).into_response())
}

async fn show_proxy(State(api): State<ToxiproxyApi>, Path(name): Path<String>) -> ApiResult {
    ok(api.registry.show(&name).await?)
}

async fn update_proxy(
    State(api): State<ToxiproxyApi>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    ok(api.registry.update(&name, &body_json(&body)?).await?)
}

async fn delete_proxy(State(api): State<ToxiproxyApi>, Path(name): Path<String>) -> ApiResult {
    api.registry.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_toxics(State(api): State<ToxiproxyApi>, Path(name): Path<String>) -> ApiResult {
    ok(api.registry.toxics(&name).await?)
}

async fn add_toxic(
    State(api): State<ToxiproxyApi>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    // Toxiproxy answers 200 here, not 201.
    ok(api.registry.add_toxic(&name, &body_json(&body)?).await?)
}

async fn show_toxic(
    State(api): State<ToxiproxyApi>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> ApiResult {
    ok(api.registry.show_toxic(&proxy, &toxic).await?)
}

async fn update_toxic(
    State(api): State<ToxiproxyApi>,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body = body_json(&body)?;
    ok(api.registry.update_toxic(&proxy, &toxic, &body).await?)
}

async fn remove_toxic(
    State(api): State<ToxiproxyApi>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> ApiResult {
    api.registry.remove_toxic(&proxy, &toxic).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

//! The lab's control API and its dashboard page, served by axum. On loopback by default; bound
//! anywhere else, every request needs the lab's token (`Authorization: Bearer`, or `?token=` on
//! the page's address, which the page then sends as the header).
//!
//! Two more guards keep other web pages from driving the lab through a browser on the same
//! machine: writes take JSON only (a cross-origin page cannot send JSON without a CORS preflight,
//! which this server never approves), and on loopback the `Host` header must be a loopback name
//! (a DNS-rebinding page would send its own host name).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::client::{ApiError, LabFile};
use super::control::{ControlError, Selector, Shared, Who};
use super::live::{ErrorView, ReadinessChange, SecondView};
use super::params::{FaultRequest, fault_table, parse_for, table_to_json};
use crate::monitoring::AlertStatus;

const DASHBOARD: &str = include_str!("dashboard.html");

/// How the API is reached, and by whom.
#[derive(Debug, Clone)]
pub struct Access {
    /// Required on every request when set.
    pub token: Option<String>,
}

#[derive(Clone)]
struct App {
    gd: Shared,
    info: Arc<LabFile>,
    access: Arc<Access>,
}

/// The control API and the dashboard.
pub fn router(gd: Shared, info: LabFile, access: Access) -> Router {
    let app = App {
        gd,
        info: Arc::new(info),
        access: Arc::new(access),
    };
    Router::new()
        .route("/", get(dashboard))
        .route("/api/status", get(status))
        .route("/api/live", get(live))
        .route("/api/catalogue", get(catalogue))
        .route("/api/inject", post(inject))
        .route("/api/revert", post(revert))
        .route("/api/halt", post(halt))
        .route("/api/resume", post(resume))
        .route("/api/stop", post(stop))
        .layer(axum::middleware::from_fn_with_state(
            app.access.clone(),
            guard,
        ))
        .with_state(app)
}

/// One error type for every handler, turned into a response in one place.
struct Problem(StatusCode, ApiError);

impl Problem {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Problem(
            status,
            ApiError {
                error: error.into(),
                ..Default::default()
            },
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<ControlError> for Problem {
    fn from(e: ControlError) -> Self {
        let status = match &e {
            ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
            ControlError::Conflict(_) => StatusCode::CONFLICT,
            ControlError::NotFound(_) => StatusCode::NOT_FOUND,
            ControlError::Unsupported(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ControlError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ControlError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
        };
        match e {
            ControlError::Invalid(i) => Problem(
                status,
                ApiError {
                    error: i.message,
                    hint: i.hint,
                    key: i.key,
                },
            ),
            other => Problem::new(status, other.to_string()),
        }
    }
}

/// Compares without an early exit, so the time taken says nothing about the token. Hand-written:
/// four lines do not justify a dependency.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn guard(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    match &access.token {
        Some(token) => {
            let bearer = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let query = req.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("token="))
                    .map(str::to_string)
            });
            let ok = bearer.is_some_and(|b| same(b, token))
                || query.as_deref().is_some_and(|q| same(q, token));
            if !ok {
                return Problem(
                    StatusCode::UNAUTHORIZED,
                    ApiError {
                        error: "this lab needs its token".into(),
                        hint: Some(
                            "the lab printed it when it started; open the dashboard with ?token=TOKEN".into(),
                        ),
                        key: None,
                    },
                )
                .into_response();
            }
        }
        None => {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let name = match host.rsplit_once(':') {
                Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
                _ => host,
            };
            let loopback = matches!(name, "127.0.0.1" | "localhost" | "[::1]")
                || name
                    .parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Problem::new(
                    StatusCode::FORBIDDEN,
                    format!("this lab answers loopback names only, not Host: {host}"),
                )
                .into_response();
            }
        }
    }
    next.run(req).await
}

async fn dashboard() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            // The page is self-contained: nothing from elsewhere may load into it.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:",
            ),
        ],
        Html(DASHBOARD),
    )
}

/// The lab as `status` shows it.
#[derive(Debug, Serialize)]
struct StatusView {
    lab: LabView,
    now_ms: f64,
    load: LoadView,
    recent: super::control::Recent,
    ready: Option<bool>,
    active: Vec<super::control::ActiveView>,
    firing: Vec<String>,
    abort_if: Vec<String>,
    aborted: Option<String>,
    windows: Vec<super::control::FaultWindow>,
    log: Vec<super::control::LogEntry>,
}

#[derive(Debug, Serialize)]
struct LabView {
    pid: u32,
    started_at: String,
    uptime_s: f64,
    target_url: String,
    dashboard_url: String,
    control_url: String,
    prometheus_url: String,
    alertmanager_url: String,
    record_dir: String,
    scenario: Option<String>,
    seed: u64,
    default_for: String,
}

#[derive(Debug, Serialize)]
struct LoadView {
    running: bool,
    rate: f64,
    configured_rate: f64,
}

/// The window `status` reports the error rate and p99 over.
const RECENT: Duration = Duration::from_secs(10);

fn status_view(app: &App) -> StatusView {
    let gd = &app.gd;
    gd.with_live(|l| l.update(&gd.lab.recorder));
    let (running, rate) = gd.load_running();
    let info = &app.info;
    let mut log = gd.log_entries();
    let keep = log.len().saturating_sub(200);
    log.drain(..keep);
    StatusView {
        lab: LabView {
            pid: info.pid,
            started_at: info.started_at.clone(),
            uptime_s: gd.now_ms() / 1000.0,
            target_url: info.target_url.clone(),
            dashboard_url: info.dashboard_url.clone(),
            control_url: info.control_url.clone(),
            prometheus_url: info.prometheus_url.clone(),
            alertmanager_url: info.alertmanager_url.clone(),
            record_dir: info.record_dir.display().to_string(),
            scenario: gd.settings.scenario.as_ref().map(|s| s.name.clone()),
            seed: gd.settings.seed,
            default_for: humantime::format_duration(gd.settings.default_for).to_string(),
        },
        now_ms: gd.now_ms(),
        load: LoadView {
            running,
            rate: if running { rate } else { 0.0 },
            configured_rate: gd.settings.rate,
        },
        recent: gd.recent(RECENT),
        ready: gd.with_live(|l| l.ready()),
        active: gd.active(),
        firing: gd.firing(),
        abort_if: gd.settings.aborts.iter().map(|a| a.to_string()).collect(),
        aborted: gd.aborted(),
        windows: gd.windows(),
        log,
    }
}

async fn status(State(app): State<App>) -> Json<StatusView> {
    Json(status_view(&app))
}

#[derive(Debug, Deserialize)]
struct LiveQuery {
    #[serde(default)]
    from: u64,
}

/// An alert starting or stopping, for the timeline.
#[derive(Debug, Serialize)]
struct AlertChange {
    at_ms: f64,
    alert: String,
    firing: bool,
    labels: String,
}

#[derive(Debug, Serialize)]
struct LiveView {
    status: StatusView,
    classes: [&'static str; 5],
    from_s: u64,
    seconds: Vec<SecondView>,
    alerts: Vec<AlertChange>,
    readiness: Vec<ReadinessChange>,
    errors: Vec<ErrorView>,
}

/// Everything the dashboard draws. `from` is the first second the page needs again: seconds
/// before it are complete on the page already (requests are recorded when they end, so the last
/// seconds fill in late; the page asks again for the last 15).
async fn live(State(app): State<App>, Query(q): Query<LiveQuery>) -> Json<LiveView> {
    let status = status_view(&app);
    let gd = &app.gd;
    let alerts = gd.lab.recorder.with(|r| {
        let mut last: std::collections::BTreeMap<&str, AlertStatus> = Default::default();
        let mut out = Vec::new();
        for n in &r.alerts {
            let before = last.insert(&n.fingerprint, n.status);
            if before != Some(n.status) && !(before.is_none() && n.status == AlertStatus::Resolved)
            {
                out.push(AlertChange {
                    at_ms: n.at_ms,
                    alert: n.alert.clone(),
                    firing: n.status == AlertStatus::Firing,
                    labels: n
                        .labels
                        .iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "job" | "instance"))
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        out
    });
    let (seconds, readiness) = gd.with_live(|l| (l.seconds(q.from), l.readiness().to_vec()));
    let errors = gd.with_live(|l| l.errors(&gd.lab.recorder));
    Json(LiveView {
        status,
        classes: super::live::classes(),
        from_s: q.from,
        seconds,
        alerts,
        readiness,
        errors,
    })
}

#[derive(Debug, Serialize)]
struct KindView {
    kind: &'static str,
    /// Parameters of a fault of this kind from the catalogue, to start from.
    example: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct NamedView {
    name: String,
    title: String,
    faults: Vec<String>,
    /// The one fault's parameters, adjustable; none when the name injects several faults.
    params: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Serialize)]
struct CatalogueView {
    kinds: Vec<KindView>,
    named: Vec<NamedView>,
    default_for: String,
}

async fn catalogue(State(app): State<App>) -> Json<CatalogueView> {
    let dir = app.gd.settings.catalogue.clone();
    let named = tokio::task::spawn_blocking(move || super::params::catalogue(&dir))
        .await
        .unwrap_or_default();
    let params_of = |f: &crate::faults::Fault| {
        let mut t = fault_table(f);
        t.remove("kind");
        table_to_json(&t)
    };
    let kinds = crate::faults::KINDS
        .iter()
        .map(|&kind| KindView {
            kind,
            example: named
                .iter()
                .flat_map(|(_, _, faults)| faults.iter())
                .find(|f| fault_table(f).get("kind").and_then(|k| k.as_str()) == Some(kind))
                .map(params_of)
                .unwrap_or_default(),
        })
        .collect();
    let named = named
        .iter()
        .map(|(name, title, faults)| NamedView {
            name: name.clone(),
            title: title.clone(),
            faults: faults.iter().map(|f| f.describe()).collect(),
            params: (faults.len() == 1).then(|| params_of(&faults[0])),
        })
        .collect();
    Json(CatalogueView {
        kinds,
        named,
        default_for: humantime::format_duration(app.gd.settings.default_for).to_string(),
    })
}

/// Runs an operation in its own task. A client that goes away (a Ctrl-C on `inject`, a closed
/// tab) drops its request's future; the operation must still run to its end, or a fault could be
/// left half-injected. A panic in it becomes a 500, and the lab goes on.
async fn detached<T: Send + 'static>(
    op: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, Problem> {
    tokio::spawn(op).await.map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the operation failed inside the lab (a bug): {e}; every fault stays under its deadline"),
        )
    })
}

fn who(by: Option<Who>) -> Result<Who, Problem> {
    match by.unwrap_or(Who::Cli) {
        Who::Lab => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "`by` is cli or page; only the lab acts as the lab",
        )),
        w => Ok(w),
    }
}

// No `deny_unknown_fields`: serde does not support it next to `flatten`.
#[derive(Debug, Deserialize)]
struct InjectBody {
    #[serde(flatten)]
    fault: FaultRequest,
    /// The deadline, `30s`; the lab's default when absent.
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    by: Option<Who>,
}

async fn inject(
    State(app): State<App>,
    Json(body): Json<InjectBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
    let by = who(body.by)?;
    let for_ = match body.for_.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(s) => Some(parse_for(s).map_err(|e| {
            Problem(
                StatusCode::BAD_REQUEST,
                ApiError {
                    error: e,
                    hint: None,
                    key: Some("for".into()),
                },
            )
        })?),
        None => None,
    };
    let gd = app.gd.clone();
    let injected = detached(async move { gd.inject(&body.fault, for_, by).await }).await??;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "injected": injected })),
    ))
}

#[derive(Debug, Deserialize)]
struct RevertBody {
    #[serde(default)]
    all: bool,
    #[serde(default)]
    id: Option<u64>,
    #[serde(flatten)]
    fault: FaultRequest,
    #[serde(default)]
    by: Option<Who>,
}

async fn revert(
    State(app): State<App>,
    Json(body): Json<RevertBody>,
) -> Result<Json<serde_json::Value>, Problem> {
    let by = who(body.by)?;
    let named = body.fault.name.is_some() || !body.fault.params.is_empty();
    let selector = match (body.all, body.id, named) {
        (true, None, false) => Selector::All,
        (false, Some(id), false) => Selector::Id(id),
        (false, None, true) => Selector::Matching(body.fault),
        _ => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "name one of: all, an id, or a fault",
            ));
        }
    };
    let gd = app.gd.clone();
    let reverted = detached(async move { gd.revert(&selector, by).await }).await??;
    Ok(Json(serde_json::json!({ "reverted": reverted })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ByBody {
    #[serde(default)]
    by: Option<Who>,
    #[serde(default)]
    rate: Option<f64>,
}

async fn halt(
    State(app): State<App>,
    Json(body): Json<ByBody>,
) -> Result<Json<super::control::HaltOutcome>, Problem> {
    let by = who(body.by)?;
    let gd = app.gd.clone();
    Ok(Json(
        detached(async move { gd.halt(by, None).await }).await?,
    ))
}

async fn resume(
    State(app): State<App>,
    Json(body): Json<ByBody>,
) -> Result<Json<serde_json::Value>, Problem> {
    let by = who(body.by)?;
    let gd = app.gd.clone();
    let rate = detached(async move { gd.resume(body.rate, by).await }).await??;
    Ok(Json(serde_json::json!({ "rate": rate })))
}

async fn stop(
    State(app): State<App>,
    Json(body): Json<ByBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
    let by = who(body.by)?;
    eprintln!("stop asked by {by}");
    app.gd.stop.cancel();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "record_dir": app.info.record_dir })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare route behind the guard, on a loopback port.
    async fn guarded(token: Option<&str>) -> String {
        let app = Router::new().route("/x", get(|| async { "ok" })).layer(
            axum::middleware::from_fn_with_state(
                Arc::new(Access {
                    token: token.map(String::from),
                }),
                guard,
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/x")
    }

    #[tokio::test]
    async fn with_a_token_every_request_needs_it() {
        let url = guarded(Some("s3cret")).await;
        let c = reqwest::Client::new();
        let status =
            |r: reqwest::RequestBuilder| async move { r.send().await.unwrap().status().as_u16() };
        assert_eq!(status(c.get(&url)).await, 401);
        assert_eq!(status(c.get(&url).bearer_auth("s3cre")).await, 401);
        assert_eq!(status(c.get(&url).bearer_auth("s3cret")).await, 200);
        assert_eq!(status(c.get(format!("{url}?token=s3cret"))).await, 200);
        assert_eq!(status(c.get(format!("{url}?token=nope"))).await, 401);
    }

    #[tokio::test]
    async fn on_loopback_only_loopback_host_names_are_answered() {
        let url = guarded(None).await;
        let c = reqwest::Client::new();
        let with_host = |h: &'static str| {
            let r = c.get(&url).header(header::HOST, h);
            async move { r.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(c.get(&url).send().await.unwrap().status().as_u16(), 200);
        assert_eq!(with_host("localhost:8080").await, 200);
        assert_eq!(with_host("[::1]:8080").await, 200);
        // A page on another origin that rebinds its name to 127.0.0.1 sends its own name.
        assert_eq!(with_host("attacker.example").await, 403);
        assert_eq!(with_host("attacker.example:8080").await, 403);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }
}

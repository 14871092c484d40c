//! The lab's control API and its dashboard page, served by axum. Every request needs a
//! credential, on loopback too (any local user or process can reach a loopback port): the lab's
//! token as `Authorization: Bearer` (the command line reads it from the 0600 lab file), or the
//! dashboard's session cookie, set by a one-time link (see [`super::session`]). Who acted (cli or
//! page) follows from which of the two was shown, never from the request body.
//!
//! More guards keep other web pages from driving the lab through a browser on the same machine:
//! the cookie is `SameSite=Strict` (another site's page never sends it), writes take JSON only (a
//! cross-origin page cannot send JSON without a CORS preflight, which this server never
//! approves), no page may frame the dashboard (clickjacking), and on loopback the `Host` header
//! must be a loopback name (a DNS-rebinding page would send its own host name).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Extension, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::client::{ApiError, LabFile};
use super::control::{ControlError, Selector, Shared, Who};
use super::live::{ErrorView, ReadinessChange, SecondView};
use super::params::{FaultRequest, fault_table, parse_for, table_to_json};
use super::session::Sessions;
use crate::monitoring::AlertStatus;

const DASHBOARD: &str = include_str!("dashboard.html");

/// How the API is reached, and by whom.
#[derive(Debug)]
pub struct Access {
    /// The token and the dashboard's sessions; one of the two is needed on every request.
    pub sessions: Sessions,
    /// Bound to loopback: the `Host` header must be a loopback name too.
    pub loopback: bool,
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
        .route("/open", get(open))
        .route("/api/link", post(link))
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

/// Whether `host` (a `Host` header) names this machine's loopback.
fn loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks the caller on every request but the one-time link (which checks its own code), hands
/// the handlers who it is, and forbids framing on every answer.
async fn guard(State(access): State<Arc<Access>>, mut req: Request, next: Next) -> Response {
    let mut resp = 'checked: {
        if access.loopback {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !loopback_host(host) {
                break 'checked Problem::new(
                    StatusCode::FORBIDDEN,
                    format!("this lab answers loopback names only, not Host: {host}"),
                )
                .into_response();
            }
        }
        if req.uri().path() == "/open" {
            break 'checked next.run(req).await;
        }
        match access.sessions.caller(req.headers()) {
            Some(who) => {
                req.extensions_mut().insert(who);
                next.run(req).await
            }
            None => Problem(
                StatusCode::UNAUTHORIZED,
                ApiError {
                    error: "this lab needs its token, or the dashboard's session".into(),
                    hint: Some(
                        "open the one-time dashboard link the lab printed, or print a new one with `fivehundred lab open`; scripts send `Authorization: Bearer TOKEN` (the token is in the lab file)".into(),
                    ),
                    key: None,
                },
            )
            .into_response(),
        }
    };
    let h = resp.headers_mut();
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    resp
}

#[derive(Debug, Deserialize)]
struct OpenQuery {
    #[serde(default)]
    code: String,
}

/// The one-time link: a live code sets the session cookie and sends the browser to the
/// dashboard, whose address then holds no secret.
async fn open(State(app): State<App>, Query(q): Query<OpenQuery>) -> Response {
    open_response(&app.access.sessions, &q.code)
}

fn open_response(sessions: &Sessions, code: &str) -> Response {
    match sessions.redeem(code) {
        Some(value) => {
            let cookie = Sessions::set_cookie(value);
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/".to_string()),
                    (header::SET_COOKIE, cookie),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                    // The code must not travel on to anything the page loads.
                    (header::REFERRER_POLICY, "no-referrer".to_string()),
                ],
            )
                .into_response()
        }
        None => Problem(
            StatusCode::UNAUTHORIZED,
            ApiError {
                error: "this dashboard link was used already, has expired, or is not one".into(),
                hint: Some("print a new one with `fivehundred lab open`".into()),
                key: None,
            },
        )
        .into_response(),
    }
}

/// A new one-time dashboard link; for the command line only (a page that has a session does
/// not need one, and must not hand sessions on).
async fn link(
    State(app): State<App>,
    Extension(by): Extension<Who>,
) -> Result<Json<serde_json::Value>, Problem> {
    if by != Who::Cli {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "new dashboard links are made with the lab's token (`fivehundred lab open`)",
        ));
    }
    Ok(Json(
        serde_json::json!({ "url": open_url(&app.info.control_url, &app.access.sessions.mint()) }),
    ))
}

/// The one-time link for `code`.
pub fn open_url(control_url: &str, code: &str) -> String {
    format!("{}/open?code={code}", control_url.trim_end_matches('/'))
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
    /// Toxics added through the lab's Toxiproxy API, in effect until removed there or halted.
    toxics: Vec<super::control::ToxicView>,
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
        toxics: gd.toxics(),
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

/// A `by` in a request body: accepted for older clients, never believed (the caller is known from
/// its credential).
type Claimed = Option<serde::de::IgnoredAny>;

// No `deny_unknown_fields`: serde does not support it next to `flatten`.
#[derive(Debug, Deserialize)]
struct InjectBody {
    #[serde(flatten)]
    fault: FaultRequest,
    /// The deadline, `30s`; the lab's default when absent.
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default, rename = "by")]
    _claimed: Claimed,
}

async fn inject(
    State(app): State<App>,
    Extension(by): Extension<Who>,
    Json(body): Json<InjectBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
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
    #[serde(default, rename = "by")]
    _claimed: Claimed,
}

async fn revert(
    State(app): State<App>,
    Extension(by): Extension<Who>,
    Json(body): Json<RevertBody>,
) -> Result<Json<serde_json::Value>, Problem> {
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
    #[serde(default, rename = "by")]
    _claimed: Claimed,
    #[serde(default)]
    rate: Option<f64>,
}

async fn halt(
    State(app): State<App>,
    Extension(by): Extension<Who>,
    // Parsed only to refuse what is not JSON (see the module's doc).
    Json(_body): Json<ByBody>,
) -> Result<Json<super::control::HaltOutcome>, Problem> {
    let gd = app.gd.clone();
    Ok(Json(
        detached(async move { gd.halt(by, None).await }).await?,
    ))
}

async fn resume(
    State(app): State<App>,
    Extension(by): Extension<Who>,
    Json(body): Json<ByBody>,
) -> Result<Json<serde_json::Value>, Problem> {
    let gd = app.gd.clone();
    let rate = detached(async move { gd.resume(body.rate, by).await }).await??;
    Ok(Json(serde_json::json!({ "rate": rate })))
}

async fn stop(
    State(app): State<App>,
    Extension(by): Extension<Who>,
    Json(_body): Json<ByBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Bare routes behind the guard, on a loopback port: `/x` answers who called, a POST to
    /// `/api/inject` counts its calls and answers who the handler was told the caller is. Returns
    /// the base address and the count.
    async fn guarded(loopback: bool) -> (String, Arc<Access>, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let access = Arc::new(Access {
            sessions: Sessions::new("s3cret".into()),
            loopback,
        });
        let app = Router::new()
            .route(
                "/x",
                get(|Extension(by): Extension<Who>| async move { by.to_string() }),
            )
            .route(
                "/api/inject",
                post(
                    move |Extension(by): Extension<Who>, Json(_): Json<serde_json::Value>| {
                        let counted = counted.clone();
                        async move {
                            counted.fetch_add(1, Ordering::SeqCst);
                            by.to_string()
                        }
                    },
                ),
            )
            .route("/open", get(|| async { "open" }))
            .layer(axum::middleware::from_fn_with_state(access.clone(), guard));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), access, calls)
    }

    #[tokio::test]
    async fn an_unauthenticated_post_to_inject_from_loopback_is_refused_and_reaches_nothing() {
        let (base, _, calls) = guarded(true).await;
        let c = reqwest::Client::new();
        let body = serde_json::json!({ "name": "memory", "params": { "size": "15GiB" } });
        for req in [
            c.post(format!("{base}/api/inject")).json(&body),
            c.post(format!("{base}/api/inject?token=s3cret"))
                .json(&body),
            c.post(format!("{base}/api/inject"))
                .bearer_auth("s3cre")
                .json(&body),
            c.post(format!("{base}/api/inject"))
                .header(header::COOKIE, "fivehundred_session=s3cret")
                .json(&body),
        ] {
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 401);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no handler ran");
        let r = c
            .post(format!("{base}/api/inject"))
            .bearer_auth("s3cret")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_claimed_by_is_ignored_the_credential_decides() {
        let (base, access, _) = guarded(true).await;
        let c = reqwest::Client::new();
        let claimed = serde_json::json!({ "by": "page" });
        let r = c
            .post(format!("{base}/api/inject"))
            .bearer_auth("s3cret")
            .json(&claimed)
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "cli");
        let secret = access.sessions.redeem(&access.sessions.mint()).unwrap();
        let r = c
            .post(format!("{base}/api/inject"))
            .header(header::COOKIE, format!("fivehundred_session={secret}"))
            .json(&serde_json::json!({ "by": "cli" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "page");
    }

    #[tokio::test]
    async fn no_answer_may_be_framed_by_another_page() {
        let (base, _, _) = guarded(true).await;
        let c = reqwest::Client::new();
        for r in [
            c.get(format!("{base}/x")).send().await.unwrap(),
            c.get(format!("{base}/x"))
                .bearer_auth("s3cret")
                .send()
                .await
                .unwrap(),
        ] {
            assert_eq!(r.headers()[header::X_FRAME_OPTIONS], "DENY");
            let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        }
    }

    #[tokio::test]
    async fn on_loopback_only_loopback_host_names_are_answered() {
        let (base, _, _) = guarded(true).await;
        let c = reqwest::Client::new();
        let with_host = |h: &'static str| {
            let r = c
                .get(format!("{base}/x"))
                .bearer_auth("s3cret")
                .header(header::HOST, h);
            async move { r.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(with_host("127.0.0.1:8080").await, 200);
        assert_eq!(with_host("localhost:8080").await, 200);
        assert_eq!(with_host("[::1]:8080").await, 200);
        // A page on another origin that rebinds its name to 127.0.0.1 sends its own name.
        assert_eq!(with_host("attacker.example").await, 403);
        assert_eq!(with_host("attacker.example:8080").await, 403);
        let (beyond, _, _) = guarded(false).await;
        let r = c
            .get(format!("{beyond}/x"))
            .bearer_auth("s3cret")
            .header(header::HOST, "lab.example:8080")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "bound beyond loopback, any name");
    }

    #[test]
    fn the_one_time_link_sets_a_strict_http_only_cookie_once_and_sends_to_a_clean_address() {
        let sessions = Sessions::new("s3cret".into());
        let code = sessions.mint();
        let first = open_response(&sessions, &code);
        assert_eq!(first.status(), StatusCode::SEE_OTHER);
        assert_eq!(first.headers()[header::LOCATION], "/");
        let cookie = first.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(
            !cookie.contains("s3cret"),
            "the token is not the cookie: {cookie}"
        );
        let again = open_response(&sessions, &code);
        assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
        assert!(again.headers().get(header::SET_COOKIE).is_none());
    }

    #[tokio::test]
    async fn the_one_time_link_route_is_reachable_without_a_credential() {
        let (base, _, _) = guarded(true).await;
        let r = reqwest::get(format!("{base}/open?code=x")).await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
}

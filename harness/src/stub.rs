//! The HTTP dependencies the lab stands in front of: a lab file's `http` dependency, answered
//! by an [`HttpStub`] from its canned answers (target-app's payments API is one) or by passing
//! each request on to its real upstream, with a switchable [`Behaviour`] for the faults a real
//! provider shows (errors, garbage, slowness, silence). The behaviours' names and rules live in `stub/behaviour.rs`, once: the scenario's
//! `dependency` fault uses both rather than its own.
//!
//! Network faults (refused, reset, stalled connections) are not its business: the lab puts a
//! [`crate::proxy::Proxy`] in front of it for those, as it does for the database.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::labfile::CannedAnswer;

mod behaviour;
#[cfg(test)]
mod tests;

pub use behaviour::{Behaviour, BehaviourKeyError, BehaviourKind, RawBehaviour};

#[derive(Debug, thiserror::Error)]
pub enum StubError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid behaviour: {0}")]
    InvalidBehaviour(String),
}

struct Shared {
    answers: Vec<CannedAnswer>,
    /// A real upstream (`http://host:port`) every request goes on to while healthy, instead of
    /// the canned answers.
    upstream: Option<(reqwest::Client, String)>,
    behaviour: watch::Sender<Behaviour>,
    /// Ends hanging and slow requests when the stub stops, so that shutdown is not held up.
    cancel: CancellationToken,
}

/// A running stub. Dropping it stops the server (in the background); [`HttpStub::stop`] waits
/// for it.
pub struct HttpStub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

impl HttpStub {
    /// Serves `answers` on a free loopback port: each request gets the first answer whose
    /// method and path match it, a 404 when none does.
    pub async fn start(answers: Vec<CannedAnswer>) -> Result<HttpStub, StubError> {
        HttpStub::serve(answers, None).await
    }

    /// Passes every request on to `upstream` (`http://host:port`) and its answer back, while
    /// healthy; the behaviours act as they do on canned answers.
    pub async fn forward(upstream: &str) -> Result<HttpStub, StubError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| StubError::InvalidBehaviour(e.to_string()))?;
        let base = upstream.trim_end_matches('/').to_string();
        HttpStub::serve(Vec::new(), Some((client, base))).await
    }

    async fn serve(
        answers: Vec<CannedAnswer>,
        upstream: Option<(reqwest::Client, String)>,
    ) -> Result<HttpStub, StubError> {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let bind_error = |source| StubError::Bind {
            addr: listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let shared = Arc::new(Shared {
            answers,
            upstream,
            behaviour: watch::Sender::new(Behaviour::Healthy),
            cancel: CancellationToken::new(),
        });
        let cancel = shared.cancel.clone();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { cancel.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "HTTP stub stopped");
            }
        });
        Ok(HttpStub {
            addr,
            shared,
            server: Some(server),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches how new requests, and requests hanging now, are answered.
    pub fn set_behaviour(&self, behaviour: Behaviour) -> Result<(), StubError> {
        behaviour
            .check()
            .map_err(|e| StubError::InvalidBehaviour(e.message))?;
        self.shared.behaviour.send_replace(behaviour);
        Ok(())
    }

    pub fn behaviour(&self) -> Behaviour {
        self.shared.behaviour.borrow().clone()
    }

    /// Stops serving: hanging requests are dropped, idle connections closed.
    pub async fn stop(mut self) {
        self.shared.cancel.cancel();
        if let Some(server) = self.server.take() {
            // Graceful shutdown waits for open connections; a client that keeps one open
            // without sending anything must not hold the lab up.
            let abort = server.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

impl Drop for HttpStub {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

async fn answer(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let Some(behaviour) = settled_behaviour(&shared).await else {
        return shutting_down();
    };
    match behaviour {
        Behaviour::Healthy => {}
        Behaviour::Error { status } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = problem(status, "the dependency is failing");
            if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS
            {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            return response;
        }
        Behaviour::Garbage => {
            // Labelled JSON but not JSON: a misconfigured gateway's error page. The client must
            // treat it as a failure, not as an answer.
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "<html><body><h1>502 Bad Gateway</h1><p>upstream sent nothing</p></body></html>",
            )
                .into_response();
        }
        Behaviour::Slow { delay } => {
            if let Err(stopped) = take_time(&shared, delay).await {
                return stopped;
            }
        }
        Behaviour::Hang => unreachable!("settled_behaviour never returns Hang"),
    }
    match &shared.upstream {
        Some((client, base)) => forward(client, base, req).await,
        None => canned(&shared, req.method().as_str(), req.uri().path()).await,
    }
}

/// The largest request body passed on to an upstream.
const MAX_BODY: usize = 16 << 20;

/// `req` sent on to `base`, and its answer back: status, headers (but the hop-by-hop ones) and
/// body. An upstream that cannot be reached is a 502 saying so.
async fn forward(client: &reqwest::Client, base: &str, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large to pass on",
        );
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut out = client.request(method, format!("{base}{path}")).body(body);
    for (k, v) in &parts.headers {
        if !hop_by_hop(k.as_str()) && k != header::HOST {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    let answer = match out.send().await {
        Ok(a) => a,
        Err(e) => {
            return problem(
                StatusCode::BAD_GATEWAY,
                &format!("the upstream {base} did not answer: {e}"),
            );
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers: Vec<(String, Vec<u8>)> = answer
        .headers()
        .iter()
        .filter(|(k, _)| !hop_by_hop(k.as_str()) && *k != reqwest::header::CONTENT_LENGTH)
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let body = answer.bytes().await.unwrap_or_default();
    let mut resp = Response::new(axum::body::Body::from(body));
    *resp.status_mut() = status;
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(&v),
        ) {
            resp.headers_mut().append(k, v);
        }
    }
    resp
}

/// Headers that belong to one connection, not to the request or answer passed on.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
    )
}

/// The behaviour to answer with: waits while it is `Hang`. `None` when the stub stops first.
async fn settled_behaviour(shared: &Shared) -> Option<Behaviour> {
    let mut rx = shared.behaviour.subscribe();
    loop {
        let current = rx.borrow_and_update().clone();
        if current != Behaviour::Hang {
            return Some(current);
        }
        tokio::select! {
            changed = rx.changed() => changed.ok()?,
            _ = shared.cancel.cancelled() => return None,
        }
    }
}

/// The first canned answer for `method` `path`, or a 404 saying there is none.
/// It is sent after the answer's `delay`, as a real provider takes its time.
async fn canned(shared: &Shared, method: &str, path: &str) -> Response {
    let Some(a) = shared.answers.iter().find(|a| a.matches(method, path)) else {
        return problem(
            StatusCode::NOT_FOUND,
            &format!("no canned answer for {method} {path}"),
        );
    };
    if let Err(stopped) = take_time(shared, a.delay).await {
        return stopped;
    }
    let mut resp = Response::new(axum::body::Body::from(a.body.clone()));
    *resp.status_mut() =
        StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in &a.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// Waits `delay` before answering, or gives the [`shutting_down`] answer if the stub stops
/// first, so that shutdown is not held up.
async fn take_time(shared: &Shared, delay: Duration) -> Result<(), Response> {
    tokio::select! {
        _ = tokio::time::sleep(delay) => Ok(()),
        _ = shared.cancel.cancelled() => Err(shutting_down()),
    }
}

/// The answer to a request that arrives or waits while the stub stops.
fn shutting_down() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "the dependency is shutting down",
    )
}

/// An RFC 9457 problem+json response, like the ones a real provider sends.
fn problem(status: StatusCode, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

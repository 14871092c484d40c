//! The payments dependency the lab serves to the target: `POST /charges` as ARCHITECTURE.md
//! describes it, idempotent on `Idempotency-Key`, with a switchable [`PaymentsBehaviour`] for the
//! faults a real payment provider shows (errors, garbage, slowness, silence). The behaviours'
//! names and rules live in `payments/behaviour.rs`, once: the scenario's `dependency` fault uses
//! both rather than its own.
//!
//! Network faults (refused, reset, stalled connections) are not its business: the lab puts a
//! [`crate::proxy::Proxy`] in front of it for those, as it does for the database.
//!
//! The stub keeps a ledger of every charge so that checks can prove that no payment was taken
//! twice for one order, whatever the target retried.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod behaviour;
#[cfg(test)]
mod tests;

pub use behaviour::{BehaviourKeyError, PaymentsBehaviour, PaymentsBehaviourKind, RawBehaviour};

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid payments behaviour: {0}")]
    InvalidBehaviour(String),
}

/// One captured charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Charge {
    pub id: Uuid,
    /// `None` when the request carried no `Idempotency-Key` (each such request is a new charge).
    pub idempotency_key: Option<String>,
    pub order_id: String,
    pub amount_cents: i64,
    /// How many requests were answered with this charge: 1, plus one per idempotent replay.
    pub requests: u64,
}

/// A snapshot of what the stub has charged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChargeLedger {
    /// In the order they were captured.
    pub charges: Vec<Charge>,
    /// Every `POST /charges` received, whatever the behaviour answered.
    pub requests: u64,
}

impl ChargeLedger {
    /// Charges captured (idempotent replays do not count).
    pub fn count(&self) -> usize {
        self.charges.len()
    }

    pub fn by_key(&self, key: &str) -> Option<&Charge> {
        self.charges
            .iter()
            .find(|c| c.idempotency_key.as_deref() == Some(key))
    }

    /// Orders charged more than once, with how many times: a payment taken twice.
    pub fn duplicate_orders(&self) -> Vec<(&str, usize)> {
        let mut per_order: HashMap<&str, usize> = HashMap::new();
        for c in &self.charges {
            *per_order.entry(c.order_id.as_str()).or_default() += 1;
        }
        let mut dups: Vec<(&str, usize)> = per_order.into_iter().filter(|(_, n)| *n > 1).collect();
        dups.sort_unstable();
        dups
    }
}

struct Shared {
    behaviour: watch::Sender<PaymentsBehaviour>,
    ledger: Mutex<Ledger>,
    /// Ends hanging and slow requests when the stub stops, so that shutdown is not held up.
    cancel: CancellationToken,
}

struct Ledger {
    charges: Vec<Charge>,
    /// Idempotency key to index in `charges`.
    by_key: HashMap<String, usize>,
    requests: u64,
    /// Charge ids come from the run's seed, so two runs with one seed issue the same ids.
    rng: ChaCha8Rng,
}

/// The running stub. Dropping it stops the server (in the background); [`PaymentsStub::stop`]
/// waits for it.
pub struct PaymentsStub {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

impl PaymentsStub {
    /// Serves on a free loopback port.
    pub async fn start(seed: u64) -> Result<PaymentsStub, PaymentsError> {
        PaymentsStub::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), seed).await
    }

    pub async fn start_on(listen: SocketAddr, seed: u64) -> Result<PaymentsStub, PaymentsError> {
        let bind_error = |source| PaymentsError::Bind {
            addr: listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let shared = Arc::new(Shared {
            behaviour: watch::Sender::new(PaymentsBehaviour::Healthy),
            ledger: Mutex::new(Ledger {
                charges: Vec::new(),
                by_key: HashMap::new(),
                requests: 0,
                rng: ChaCha8Rng::seed_from_u64(seed),
            }),
            cancel: CancellationToken::new(),
        });
        let cancel = shared.cancel.clone();
        let app = router(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { cancel.cancelled().await })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "payments stub stopped");
            }
        });
        Ok(PaymentsStub {
            addr,
            shared,
            server: Some(server),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, the value for the target's `--payments-url` (when no proxy is
    /// in between).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches how new requests, and requests hanging now, are answered.
    pub fn set_behaviour(&self, behaviour: PaymentsBehaviour) -> Result<(), PaymentsError> {
        behaviour
            .check()
            .map_err(|e| PaymentsError::InvalidBehaviour(e.message))?;
        self.shared.behaviour.send_replace(behaviour);
        Ok(())
    }

    pub fn behaviour(&self) -> PaymentsBehaviour {
        self.shared.behaviour.borrow().clone()
    }

    pub fn charges(&self) -> ChargeLedger {
        let ledger = self.shared.ledger.lock().unwrap();
        ChargeLedger {
            charges: ledger.charges.clone(),
            requests: ledger.requests,
        }
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

impl Drop for PaymentsStub {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/charges", post(create_charge))
        .with_state(shared)
}

#[derive(Debug, Deserialize)]
struct ChargeRequest {
    order_id: String,
    amount_cents: i64,
}

#[derive(Debug, Serialize)]
struct ChargeResponse {
    id: Uuid,
    status: &'static str,
}

async fn create_charge(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.ledger.lock().unwrap().requests += 1;
    let Some(behaviour) = settled_behaviour(&shared).await else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "the payments stub is shutting down",
        );
    };
    match behaviour {
        PaymentsBehaviour::Healthy => {}
        PaymentsBehaviour::Error { status } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = problem(status, "the payment provider is failing");
            if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS
            {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            return response;
        }
        PaymentsBehaviour::Garbage => {
            // Labelled JSON but not JSON: a misconfigured gateway's error page. The client must
            // treat it as a failure, not as a charge.
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "<html><body><h1>502 Bad Gateway</h1><p>upstream sent nothing</p></body></html>",
            )
                .into_response();
        }
        PaymentsBehaviour::Slow { delay } => {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shared.cancel.cancelled() => {
                    return problem(StatusCode::SERVICE_UNAVAILABLE, "the payments stub is shutting down");
                }
            }
        }
        PaymentsBehaviour::Hang => unreachable!("settled_behaviour never returns Hang"),
    }
    charge(&shared, &headers, &body)
}

/// The behaviour to answer with: waits while it is `Hang`. `None` when the stub stops first.
async fn settled_behaviour(shared: &Shared) -> Option<PaymentsBehaviour> {
    let mut rx = shared.behaviour.subscribe();
    loop {
        let current = rx.borrow_and_update().clone();
        if current != PaymentsBehaviour::Hang {
            return Some(current);
        }
        tokio::select! {
            changed = rx.changed() => changed.ok()?,
            _ = shared.cancel.cancelled() => return None,
        }
    }
}

/// Captures a charge, or replays the one already captured under the same idempotency key.
fn charge(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let request: ChargeRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("expected {{\"order_id\": \"<uuid>\", \"amount_cents\": <int>}}: {e}"),
            );
        }
    };
    if Uuid::parse_str(&request.order_id).is_err() {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "order_id must be a UUID");
    }
    if request.amount_cents <= 0 {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_cents must be positive",
        );
    }
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() => Some(k.to_string()),
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Idempotency-Key must be visible ASCII",
            );
        }
    };

    let mut ledger = shared.ledger.lock().unwrap();
    if let Some(&i) = key.as_ref().and_then(|k| ledger.by_key.get(k)) {
        let existing = &mut ledger.charges[i];
        // A provider must not let one key stand for two different payments.
        if existing.order_id != request.order_id || existing.amount_cents != request.amount_cents {
            return problem(
                StatusCode::CONFLICT,
                "this Idempotency-Key was used for a different charge",
            );
        }
        existing.requests += 1;
        return captured(existing.id);
    }
    let id = uuid::Builder::from_random_bytes(ledger.rng.random()).into_uuid();
    let index = ledger.charges.len();
    ledger.charges.push(Charge {
        id,
        idempotency_key: key.clone(),
        order_id: request.order_id,
        amount_cents: request.amount_cents,
        requests: 1,
    });
    if let Some(k) = key {
        ledger.by_key.insert(k, index);
    }
    captured(id)
}

fn captured(id: Uuid) -> Response {
    (
        StatusCode::CREATED,
        axum::Json(ChargeResponse {
            id,
            status: "captured",
        }),
    )
        .into_response()
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

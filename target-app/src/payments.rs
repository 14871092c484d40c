//! The payments dependency: `POST {payments-url}/charges`, behind its own circuit breaker and
//! (with `timeouts`) a whole-call timeout.
//!
//! The API (ARCHITECTURE.md): JSON `{"order_id", "amount_cents"}` with the order id as
//! `Idempotency-Key`, so that a retried charge for the same order is charged once; the answer
//! is `201 {"id", "status": "captured"}`. Anything else is a failure.

use reqwest::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::breaker::{self, Breaker};
use crate::error::AppError;
use crate::protections::Protection;
use crate::{AppState, failpoints};

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("timed out")]
    Timeout(#[source] reqwest::Error),
    #[error("could not reach the payments service")]
    Connect(#[source] reqwest::Error),
    #[error("the payments service answered {0}")]
    Status(StatusCode),
    #[error("the payments service sent an invalid answer: {0}")]
    InvalidResponse(String),
    #[error(transparent)]
    CircuitOpen(#[from] breaker::Open),
}

impl PaymentsError {
    /// The `kind` label of `app_payments_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            PaymentsError::Timeout(_) => "timeout",
            PaymentsError::Connect(_) => "connect",
            PaymentsError::Status(_) => "status",
            PaymentsError::InvalidResponse(_) => "invalid_response",
            PaymentsError::CircuitOpen(_) => "circuit_open",
        }
    }
}

pub struct Payments {
    client: reqwest::Client,
    charges_url: reqwest::Url,
    breaker: Breaker,
}

#[derive(Deserialize)]
struct Charge {
    id: String,
    status: String,
}

impl Payments {
    pub fn new(base: &reqwest::Url, breaker: Breaker) -> Payments {
        let charges_url = base
            .join(&format!("{}/charges", base.path().trim_end_matches('/')))
            .expect("a path joined to a valid http URL is valid");
        Payments {
            // One client for the process: it keeps connections to the payments service alive.
            client: reqwest::Client::new(),
            charges_url,
            breaker,
        }
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }
}

/// Charges `amount_cents` for `order_id` and returns the charge id.
pub async fn charge(
    state: &AppState,
    order_id: Uuid,
    amount_cents: i64,
) -> Result<String, AppError> {
    failpoints::check("payments_charge")?;
    let payments = &state.payments;
    let tunables = state.tunables.get();
    let settings = breaker::Settings::from(&*tunables);
    let breaker_on = state.protections.on(Protection::CircuitBreaker);

    let result = async {
        if breaker_on {
            payments.breaker.check(settings)?;
        }
        let mut request = payments
            .client
            .post(payments.charges_url.clone())
            .header("Idempotency-Key", order_id.to_string())
            .json(&serde_json::json!({ "order_id": order_id, "amount_cents": amount_cents }));
        if state.protections.on(Protection::Timeouts) {
            request = request.timeout(tunables.payments_timeout);
        }
        let outcome = send(request).await;
        if breaker_on {
            payments.breaker.record(outcome.is_ok(), settings);
        }
        outcome
    }
    .await;

    result.map_err(|e| {
        state
            .metrics
            .payments_errors
            .with_label_values(&[e.kind()])
            .inc();
        AppError::Payments(e)
    })
}

async fn send(request: reqwest::RequestBuilder) -> Result<String, PaymentsError> {
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            PaymentsError::Timeout(e)
        } else {
            PaymentsError::Connect(e)
        }
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        return Err(PaymentsError::Status(status));
    }
    // A 2xx that is not the documented answer (a proxy's HTML page, another status) is a
    // broken dependency too, just differently broken.
    let body = response.bytes().await.map_err(transport)?;
    let charge: Charge = serde_json::from_slice(&body)
        .map_err(|e| PaymentsError::InvalidResponse(format!("body is not a charge: {e}")))?;
    if status != StatusCode::CREATED || charge.status != "captured" {
        return Err(PaymentsError::InvalidResponse(format!(
            "{status} with charge status {:?}, expected 201 and \"captured\"",
            charge.status
        )));
    }
    Ok(charge.id)
}

//! `GET /livez` (the process answers) and `GET /readyz` (its dependencies do), both as
//! `application/health+json`.
//!
//! Readiness names each failing component: `database`, `schema`, `data_dir`, `payments`. The
//! outputs are short and generic (an error kind, an errno name) because probes are often
//! reachable from where the public is; the full errors are in the request logs.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::protections::Protection;
use crate::{AppState, db, outbox};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
}

async fn livez() -> Response {
    health_json(StatusCode::OK, json!({ "status": "pass" }))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let (ready, body) = readiness(&state).await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    health_json(status, body)
}

fn health_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/health+json"),
    );
    response
}

/// `Ok(output)` passes, `Err(output)` fails.
type Check = Result<String, String>;

/// Runs every check, updates `app_ready` and `app_schema_ok`, and returns the verdict with the
/// health+json body.
pub async fn readiness(state: &AppState) -> (bool, Value) {
    let (database, schema, data_dir) = tokio::join!(
        check_database(state),
        check_schema(state),
        check_data_dir(state)
    );
    let payments = check_payments(state);

    // When the schema could not be read (database unreachable, query cut or timed out) it is
    // unknown, not wrong: keep the last verdict, or a database outage would also page as a
    // schema mismatch. Only a schema that was read and found wrong sets the gauge to 0.
    let schema_unknown = schema
        .as_ref()
        .err()
        .is_some_and(|e| e.starts_with("cannot read") || e.starts_with("no answer"));
    if !schema_unknown {
        state.metrics.schema_ok.set(i64::from(schema.is_ok()));
    }
    let checks = [
        ("database", database),
        ("schema", schema),
        ("data_dir", data_dir),
        ("payments", payments),
    ];
    let ready = checks.iter().all(|(_, c)| c.is_ok());
    state.metrics.ready.set(i64::from(ready));
    let checks: serde_json::Map<String, Value> = checks
        .into_iter()
        .map(|(name, check)| {
            let (status, output) = match check {
                Ok(output) => ("pass", output),
                Err(output) => ("fail", output),
            };
            (
                name.to_owned(),
                json!({ "status": status, "output": output }),
            )
        })
        .collect();
    let status = if ready { "pass" } else { "fail" };
    (ready, json!({ "status": status, "checks": checks }))
}

/// With `timeouts`, a check gets as long as a request would wait for a connection; without,
/// a hung database hangs the probe too.
async fn bounded(state: &AppState, check: impl Future<Output = Check>) -> Check {
    if !state.protections.on(Protection::Timeouts) {
        return check.await;
    }
    let limit = state.tunables.get().db_acquire_timeout;
    tokio::time::timeout(limit, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
}

async fn check_database(state: &AppState) -> Check {
    bounded(state, async {
        match sqlx::query("SELECT 1").execute(&state.pool).await {
            Ok(_) => Ok("reachable".into()),
            Err(e) => Err(format!("unreachable ({})", db::error_kind(&e))),
        }
    })
    .await
}

async fn check_schema(state: &AppState) -> Check {
    if !state.protections.on(Protection::SchemaCheck) {
        return Ok("not checked (schema-check protection off)".into());
    }
    bounded(state, async {
        db::check_schema(&state.pool)
            .await
            .map(|()| format!("at migration {}", db::expected_schema_version()))
    })
    .await
}

/// Writable means a byte can be written, not only a name created: a full disk still lets an
/// empty file be created. The probe goes where receipts go, `<data-dir>/receipts`: a data
/// directory that is writable while its receipts directory is not is still broken.
async fn check_data_dir(state: &AppState) -> Check {
    let probe = outbox::receipts_dir(&state.data_dir).join(format!(".readyz-{}", Uuid::new_v4()));
    let result = tokio::fs::write(&probe, b"1").await;
    let _ = tokio::fs::remove_file(&probe).await;
    match result {
        Ok(()) => Ok("writable".into()),
        Err(e) => Err(format!("not writable ({})", outbox::errno_label(&e))),
    }
}

fn check_payments(state: &AppState) -> Check {
    if !state.protections.on(Protection::CircuitBreaker) {
        return Ok("not checked (circuit-breaker protection off)".into());
    }
    match state.payments.breaker().state_name() {
        "open" => Err("circuit open: the payments service is failing".into()),
        other => Ok(format!("circuit {other}")),
    }
}

/// Re-evaluates readiness every few seconds, so `app_ready` and `app_schema_ok` stay current
/// even when nothing polls /readyz.
pub async fn refresh_periodically(state: Arc<AppState>, shutdown: CancellationToken) {
    loop {
        readiness(&state).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

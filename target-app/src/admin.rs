//! The admin listener: `GET /metrics`, and the failpoint API for in-process faults.
//!
//! A separate listener (loopback by default) so that neither is reachable where the public API
//! is. The failpoint API only exists with `--admin-token`: without a token its routes are not
//! even registered (404). Each call needs `Authorization: Bearer <token>`, compared in constant
//! time so that response timing does not reveal how much of a guess was right.
//! The failpoints themselves and their action grammar: [`crate::failpoints`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use subtle::ConstantTimeEq;

use crate::error::AppError;
use crate::{AppState, failpoints};

pub fn router(state: Arc<AppState>) -> Router {
    let mut router = Router::new().route("/metrics", get(metrics));
    if state.admin_token.is_some() {
        router = router
            .route("/failpoints", get(list))
            .route("/failpoints/{name}", get(show).put(set).delete(remove));
    }
    router.with_state(state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    // Pool gauges are read here, at scrape time, so they are never stale.
    let pool = &state.pool;
    let gauge = &state.metrics.db_pool_connections;
    let idle = pool.num_idle() as i64;
    gauge.with_label_values(&["idle"]).set(idle);
    gauge
        .with_label_values(&["in_use"])
        .set(i64::from(pool.size()) - idle);
    gauge
        .with_label_values(&["max"])
        .set(i64::from(pool.options().get_max_connections()));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let expected = state.admin_token.as_ref().ok_or(AppError::Unauthorized)?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        Ok(())
    } else {
        Err(AppError::Unauthorized)
    }
}

fn known(name: &str) -> Result<&'static str, AppError> {
    failpoints::ALL
        .into_iter()
        .find(|f| *f == name)
        .ok_or(AppError::NotFound("failpoint"))
}

/// `[{"name", "action"}]` for every failpoint, `action` null when off.
fn entries() -> Vec<serde_json::Value> {
    let active = fail::list();
    failpoints::ALL
        .into_iter()
        .map(|name| {
            let action = active
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, action)| action.clone());
            serde_json::json!({ "name": name, "action": action })
        })
        .collect()
}

async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Vec<serde_json::Value>>, AppError> {
    authorize(&state, &headers)?;
    Ok(Json(entries()))
}

async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    authorize(&state, &headers)?;
    let name = known(&name)?;
    let entry = entries().into_iter().find(|e| e["name"] == name);
    Ok(Json(entry.unwrap_or_default()))
}

async fn set(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    action: String,
) -> Result<Json<serde_json::Value>, AppError> {
    authorize(&state, &headers)?;
    let name = known(&name)?;
    let action = action.trim();
    fail::cfg(name, action).map_err(|_| AppError::BadRequest("not a valid failpoint action"))?;
    tracing::warn!(failpoint = name, action, "failpoint set");
    Ok(Json(serde_json::json!({ "name": name, "action": action })))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<StatusCode, AppError> {
    authorize(&state, &headers)?;
    let name = known(&name)?;
    fail::remove(name);
    tracing::warn!(failpoint = name, "failpoint removed");
    Ok(StatusCode::NO_CONTENT)
}

//! `GET /products` and `GET /products/{id}`: the catalogue, read through the in-process cache.
//!
//! Every answer says where it came from in `x-cache`: `hit` (fresh cache entry), `miss` (the
//! database), or `stale` (the database failed and `stale-cache` served the last good answer).

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;
use tower_http::request_id::RequestId;

use crate::cache::Cache;
use crate::error::AppError;
use crate::protections::Protection;
use crate::{AppState, db, failpoints};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/products", get(list))
        .route("/products/{id}", get(show))
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub price_cents: i64,
    pub stock: i32,
}

async fn list(
    State(state): State<Arc<AppState>>,
    Extension(request_id): Extension<RequestId>,
) -> Result<Response, AppError> {
    failpoints::check("list_products")?;
    let load = async {
        let products =
            sqlx::query_as("SELECT id, name, price_cents, stock FROM products ORDER BY id")
                .fetch_all(&state.pool)
                .await?;
        Ok(products)
    };
    let (products, source) = read_through(&state, &state.catalogue, (), load, &request_id).await?;
    Ok(([("x-cache", source)], Json(products)).into_response())
}

async fn show(
    State(state): State<Arc<AppState>>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    failpoints::check("get_product")?;
    // With `validation` off the id goes to the database as text and is cast there
    // (`$1::bigint`): that is where an unhardened service finds out "abc" is not a number,
    // with a 500.
    let id = if state.protections.on(Protection::Validation) {
        match id.parse::<i64>() {
            Ok(n) if n > 0 => n.to_string(),
            _ => return Err(AppError::BadRequest("a product id is a positive integer")),
        }
    } else {
        id
    };
    let load = async {
        sqlx::query_as("SELECT id, name, price_cents, stock FROM products WHERE id = $1::bigint")
            .bind(&id)
            .fetch_optional(&state.pool)
            .await?
            .ok_or(AppError::NotFound("product"))
    };
    let (product, source) =
        read_through(&state, &state.products, id.clone(), load, &request_id).await?;
    Ok(([("x-cache", source)], Json::<Product>(product)).into_response())
}

/// A fresh cache entry if there is one, else the database; when the database fails (or its
/// breaker is open) and `stale-cache` is on, the last good answer instead of an error.
async fn read_through<K: Eq + Hash, V: Clone>(
    state: &AppState,
    cache: &Cache<K, V>,
    key: K,
    load: impl Future<Output = Result<V, AppError>>,
    request_id: &RequestId,
) -> Result<(V, &'static str), AppError> {
    if let Some(v) = cache.fresh(&key, state.tunables.get().cache_ttl) {
        return Ok((v, "hit"));
    }
    match db::call(state, load).await {
        Ok(v) => {
            cache.put(key, v.clone());
            Ok((v, "miss"))
        }
        Err(e @ (AppError::Db(_) | AppError::CircuitOpen(_)))
            if state.protections.on(Protection::StaleCache) =>
        {
            let Some(v) = cache.stale(&key) else {
                return Err(e);
            };
            state.metrics.stale_cache_serves.inc();
            tracing::warn!(
                request_id = request_id.header_value().to_str().unwrap_or_default(),
                error = %e.chain(),
                "database failed, serving the catalogue from a stale cache"
            );
            Ok((v, "stale"))
        }
        Err(e) => Err(e),
    }
}

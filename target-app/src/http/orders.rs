//! `POST /orders` and `GET /orders/{id}`.
//!
//! Placing an order is one transaction: take the stock (never below zero), insert the order,
//! queue its receipt (with `outbox`), charge the payment, commit. If the charge fails, nothing
//! was placed. The product row stays locked from the stock update to the commit, so orders for
//! one product are serialized through the payments call: correct, and a real source of
//! latency under load that the lock-contention scenario makes visible.
//!
//! A charge that succeeds followed by a commit that fails leaves a charge without an order;
//! the charge's Idempotency-Key is the order id, so a reconciliation job could find it. That
//! job is out of this sample's scope.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::AppError;
use crate::protections::Protection;
use crate::{AppState, db, failpoints, outbox, payments};

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/orders", post(create))
        .route("/orders/{id}", get(show))
}

/// The request body. The numbers are `i64` on purpose: with `validation` off, a quantity too
/// big for the `integer` column must reach the database to fail there, as it would in an
/// unhardened service.
#[derive(Debug, Deserialize)]
pub struct NewOrder {
    pub product_id: i64,
    pub quantity: i64,
    pub customer_email: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Order {
    pub id: Uuid,
    pub product_id: i64,
    pub quantity: i32,
    pub customer_email: String,
    pub amount_cents: i64,
    pub created_at: DateTime<Utc>,
}

const ORDER_COLUMNS: &str = "id, product_id, quantity, customer_email, amount_cents, created_at";

impl NewOrder {
    /// The `validation` protection for the body: the same rules as the table's CHECK
    /// constraints, checked before anything reaches the database.
    fn validate(&self) -> Result<(), AppError> {
        let invalid = |field, reason| Err(AppError::Invalid { field, reason });
        if self.product_id <= 0 {
            return invalid("product_id", "must be a positive integer");
        }
        if !(1..=1000).contains(&self.quantity) {
            return invalid("quantity", "must be between 1 and 1000");
        }
        let email = &self.customer_email;
        let well_formed = email.len() <= 254
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && email.split_once('@').is_some_and(|(user, domain)| {
                !user.is_empty() && !domain.is_empty() && !domain.contains('@')
            });
        if !well_formed {
            return invalid(
                "customer_email",
                "must be an email address of at most 254 characters",
            );
        }
        Ok(())
    }

    fn same_as(&self, order: &Order) -> bool {
        order.product_id == self.product_id
            && i64::from(order.quantity) == self.quantity
            && order.customer_email == self.customer_email
    }
}

/// A body that is not an order, said in this service's words. serde's text (it names Rust types
/// such as `NewOrder` and echoes the client's input back) goes to the log only.
fn not_an_order(rejection: JsonRejection) -> AppError {
    const FIELDS: [&str; 3] = ["product_id", "quantity", "customer_email"];
    let text = rejection.body_text();
    let message = text.clone();
    match rejection {
        JsonRejection::JsonDataError(_) => {
            // Name the field only when it is one of ours: nothing the client sent is repeated.
            let missing = FIELDS
                .into_iter()
                .find(|f| text.contains(&format!("missing field `{f}`")));
            match missing {
                Some(field) => AppError::Invalid {
                    field,
                    reason: "is missing",
                },
                None => AppError::Invalid {
                    field: "body",
                    reason: "must be an object with product_id (an integer), quantity (an integer) and customer_email (a string)",
                },
            }
        }
        other => AppError::Rejected {
            status: other.status(),
            message,
        },
    }
}

/// The optional `Idempotency-Key`, and whether it is acceptable (with `validation`).
fn idempotency_key(headers: &HeaderMap, validate: bool) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| AppError::BadRequest("the Idempotency-Key header must be visible ASCII"))?;
    if validate && !(1..=255).contains(&key.len()) {
        return Err(AppError::Invalid {
            field: "Idempotency-Key",
            reason: "must be 1 to 255 characters",
        });
    }
    Ok(Some(key.to_owned()))
}

async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<NewOrder>, JsonRejection>,
) -> Result<Response, AppError> {
    let Json(new) = body.map_err(not_an_order)?;
    failpoints::check("create_order")?;
    let validation = state.protections.on(Protection::Validation);
    if validation {
        new.validate()?;
    }
    // Without the `idempotency` protection the key is ignored: a retry is a second order.
    let key = match idempotency_key(&headers, validation)? {
        Some(key) if state.protections.on(Protection::Idempotency) => Some(key),
        _ => None,
    };

    if let Some(key) = &key
        && let Some(first) = db::call(&state, find_by_key(&state, key)).await?
    {
        return replay(&new, first);
    }

    let order = match db::call(&state, place(&state, &new, key.as_deref())).await? {
        Placed::New(order) => order,
        // A concurrent request with the same key committed first.
        Placed::Duplicate => {
            let key = key
                .as_deref()
                .expect("only a keyed order can be a duplicate");
            let first = db::call(&state, find_by_key(&state, key))
                .await?
                .ok_or(AppError::NotFound("order"))?;
            return replay(&new, first);
        }
    };

    if state.protections.on(Protection::Outbox) {
        state.outbox_notify.notify_one();
    } else {
        // The order is committed; a failure here still answers 500, so the client believes
        // it failed and may place it again. This is what the outbox prevents.
        let payload = serde_json::to_value(&order).expect("an order serializes");
        outbox::write_receipt(&state, order.id, &payload)
            .await
            .map_err(AppError::Disk)?;
    }

    let location = format!("/orders/{}", order.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(order),
    )
        .into_response())
}

/// The answer to a retried request: the first order, if the retry asks for the same thing.
fn replay(new: &NewOrder, first: Order) -> Result<Response, AppError> {
    if !new.same_as(&first) {
        return Err(AppError::IdempotencyConflict);
    }
    let location = format!("/orders/{}", first.id);
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (
                header::HeaderName::from_static("idempotent-replayed"),
                "true".to_owned(),
            ),
        ],
        Json(first),
    )
        .into_response())
}

async fn find_by_key(state: &AppState, key: &str) -> Result<Option<Order>, AppError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE idempotency_key = $1"
    ))
    .bind(key)
    .fetch_optional(&state.pool)
    .await?)
}

enum Placed {
    New(Order),
    Duplicate,
}

/// The transaction. Dropping `tx` on any early return rolls it back.
async fn place(state: &AppState, new: &NewOrder, key: Option<&str>) -> Result<Placed, AppError> {
    let mut tx = state.pool.begin().await?;

    // Stock never goes below zero: the row is only updated if there is enough.
    let amount: Option<i64> = sqlx::query_scalar(
        "UPDATE products SET stock = stock - $2 WHERE id = $1 AND stock >= $2
         RETURNING price_cents * $2",
    )
    .bind(new.product_id)
    .bind(new.quantity)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(amount_cents) = amount else {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)")
                .bind(new.product_id)
                .fetch_one(&mut *tx)
                .await?;
        return Err(if exists {
            AppError::OutOfStock
        } else {
            AppError::NotFound("product")
        });
    };

    let id = Uuid::new_v4();
    let inserted: Option<Order> = sqlx::query_as(&format!(
        "INSERT INTO orders (id, product_id, quantity, customer_email, amount_cents, idempotency_key)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (idempotency_key) DO NOTHING
         RETURNING {ORDER_COLUMNS}"
    ))
    .bind(id)
    .bind(new.product_id)
    .bind(new.quantity)
    .bind(&new.customer_email)
    .bind(amount_cents)
    .bind(key)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(order) = inserted else {
        return Ok(Placed::Duplicate);
    };

    if state.protections.on(Protection::Outbox) {
        let payload = serde_json::to_value(&order).expect("an order serializes");
        outbox::enqueue(&mut tx, order.id, &payload).await?;
    }
    payments::charge(state, order.id, order.amount_cents).await?;
    tx.commit().await?;
    Ok(Placed::New(order))
}

async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Order>, AppError> {
    failpoints::check("get_order")?;
    // As for products: with `validation` off a malformed id fails in the database (`::uuid`).
    if state.protections.on(Protection::Validation) && Uuid::parse_str(&id).is_err() {
        return Err(AppError::BadRequest("an order id is a UUID"));
    }
    let load = async {
        sqlx::query_as(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1::uuid"
        ))
        .bind(&id)
        .fetch_optional(&state.pool)
        .await?
        .ok_or(AppError::NotFound("order"))
    };
    Ok(Json(db::call(&state, load).await?))
}

//! What a load is asked to do: the plan ([`LoadPlan`]), its weighted mix of request templates
//! ([`MixEntry`], [`Param`]), the defaults for target-app's routes, and the errors a plan can
//! have. Plain data that scenarios write in TOML; `compile.rs` checks it and turns it into what
//! the engine sends.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What to send, how fast, and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadPlan {
    /// `http://127.0.0.1:<port>`: loopback only, anything else is refused.
    pub base_url: String,
    /// Requests per second.
    pub rate: f64,
    /// Stop scheduling after this long (requests due before it are sent).
    #[serde(default, with = "crate::duration_serde::option")]
    pub duration: Option<Duration>,
    /// Stop after this many requests. At least one of `duration` and `requests` is required.
    #[serde(default)]
    pub requests: Option<u64>,
    pub mix: Vec<MixEntry>,
    /// How long a request may take, from its due time, before it is recorded as a timeout.
    #[serde(default = "default_timeout", with = "crate::duration_serde")]
    pub timeout: Duration,
    #[serde(default)]
    pub seed: u64,
    /// Requests in flight beyond this are not sent but recorded as client errors.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u64,
    /// How much of each request is recorded: what checks read (the default), or everything.
    #[serde(default)]
    pub detail: crate::record::RecordDetail,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_in_flight() -> u64 {
    10_000
}

impl LoadPlan {
    /// A plan with the defaults: 5 s timeout, seed 0, 10 000 requests in flight at most, and no
    /// bound yet (set `duration` or `requests`).
    pub fn new(base_url: impl Into<String>, rate: f64, mix: Vec<MixEntry>) -> LoadPlan {
        LoadPlan {
            base_url: base_url.into(),
            rate,
            duration: None,
            requests: None,
            mix,
            timeout: default_timeout(),
            seed: 0,
            max_in_flight: default_max_in_flight(),
            detail: Default::default(),
        }
    }
}

/// One entry of the mix: a request line with what fills it in.
///
/// In TOML: `{ weight = 8, request = "GET /products/{id}", params = { id = { uniform = [1, 20] } } }`.
/// For target-app's routes (`GET /products`, `GET /products/{id}`, `POST /orders`,
/// `GET /orders/{id}`) every field but `weight` and `request` has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixEntry {
    pub weight: u32,
    /// `METHOD /path`, with `{name}` placeholders in the path.
    pub request: String,
    /// A generator for each placeholder of the path and the body.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Param>,
    /// A JSON body template. Placeholders: the params, `{seq}` (the request's sequence number)
    /// and `{uuid}` (a UUID drawn for the request, the same as its idempotency key). Other braces
    /// are left alone, so JSON objects need no escaping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Send an `Idempotency-Key` header (the request's `{uuid}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<bool>,
    /// How many times the same request (same path, body and key) is sent again, in the next
    /// slots of the schedule: a client retrying, which idempotency must absorb.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retry_same_key: u32,
    /// Extra request headers, name to value template (the same placeholders as the body).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Values kept from this request's 2xx JSON answers for later requests: a pool name to the
    /// field that holds the value (`id`, or a dotted path `data.id`). A [`Param::Captured`] of
    /// the same name draws from the pool.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capture: BTreeMap<String, String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl MixEntry {
    /// `request` with its defaults.
    pub fn new(weight: u32, request: impl Into<String>) -> MixEntry {
        MixEntry {
            weight,
            request: request.into(),
            params: BTreeMap::new(),
            body: None,
            idempotency_key: None,
            retry_same_key: 0,
            headers: BTreeMap::new(),
            capture: BTreeMap::new(),
        }
    }
}

/// Fills a placeholder. In TOML: `{ uniform = [1, 20] }`, `{ one_of = ["a", "b"] }`,
/// `{ value = "x" }`, `"sequence"`, `"uuid"`, `{ captured = "pool" }` or `"created_order"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    /// An integer drawn uniformly from `[low, high]`, both included.
    Uniform([i64; 2]),
    OneOf(Vec<String>),
    Value(String),
    /// The id of an order the target acknowledged earlier in this run (the `id` of a 2xx answer
    /// to `POST /orders`), or a random UUID while there is none.
    CreatedOrder,
    /// The request's sequence number (as `{seq}`).
    Sequence,
    /// A UUID drawn for this placeholder (`{uuid}` is the request's own, shared by the body and
    /// the idempotency key).
    Uuid,
    /// A value captured from an earlier answer into this pool (see [`MixEntry::capture`]), or a
    /// random UUID while the pool is empty.
    Captured(String),
}

/// The pool `created_order` draws from: what `POST /orders` captures by default.
pub(super) const CREATED_ORDER_POOL: &str = "created_order";

/// The routes of target-app and what fills them in.
pub const TARGET_APP_ROUTES: &[&str] = &[
    "GET /products",
    "GET /products/{id}",
    "POST /orders",
    "GET /orders/{id}",
];

/// target-app seeds this many products (ids 1..=20).
const TARGET_APP_PRODUCTS: i64 = 20;

const ORDER_BODY: &str =
    r#"{"product_id": {product_id}, "quantity": 1, "customer_email": "user-{seq}@example.com"}"#;

/// What a target-app route gets unless the mix entry says otherwise.
pub(super) struct RouteDefaults {
    pub(super) params: Vec<(&'static str, Param)>,
    pub(super) body: Option<&'static str>,
    pub(super) idempotency_key: bool,
}

pub(super) fn target_app_defaults(line: &str) -> Option<RouteDefaults> {
    let product = || Param::Uniform([1, TARGET_APP_PRODUCTS]);
    let read = |params| RouteDefaults {
        params,
        body: None,
        idempotency_key: false,
    };
    match line {
        "GET /products" => Some(read(vec![])),
        "GET /products/{id}" => Some(read(vec![("id", product())])),
        "GET /orders/{id}" => Some(read(vec![("id", Param::CreatedOrder)])),
        "POST /orders" => Some(RouteDefaults {
            params: vec![("product_id", product())],
            body: Some(ORDER_BODY),
            idempotency_key: true,
        }),
        _ => None,
    }
}

/// A request as the plan will send it (see [`LoadPlan::preview`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedRequest {
    pub seq: u64,
    pub route: String,
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("the load generator only talks to loopback addresses, not {0:?}")]
    NotLoopback(String),
    #[error("invalid base URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("invalid load plan: {0}")]
    Invalid(String),
    #[error("invalid request {request:?}: {reason}")]
    BadRequest { request: String, reason: String },
}

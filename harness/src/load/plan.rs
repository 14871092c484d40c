//! What a load is asked to do: the plan ([`LoadPlan`]), its weighted mix of request templates
//! ([`MixEntry`], [`Param`]), and the errors a plan can have. Plain data that scenarios write
//! in TOML; `compile.rs` checks it and turns it into what the engine sends.

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
    /// The header the service answers each request's id in (any case): whether it came is
    /// noted on every answer, whatever else is kept (the request-id check reads it).
    #[serde(default = "default_request_id_header")]
    pub request_id_header: String,
}

fn default_request_id_header() -> String {
    crate::record::RequestIds::default().header
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_in_flight() -> u64 {
    10_000
}

impl LoadPlan {
    /// A plan with the defaults: 5 s timeout, seed 0, 10 000 requests in flight at most,
    /// request ids in `x-request-id`, and no bound yet (set `duration` or `requests`).
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
            request_id_header: default_request_id_header(),
        }
    }
}

/// One entry of the mix: a request line with what fills it in.
///
/// In TOML: `{ weight = 8, request = "GET /items/{id}", params = { id = { uniform = [1, 20] } } }`.
/// A request the lab file describes (`[[request]]`) needs only `weight` and `request` in a
/// scenario: the rest comes from the lab file (see [`MixEntry::resolved`]).
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

/// `METHOD /path` with single spaces.
pub fn request_line(request: &str) -> String {
    request.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl MixEntry {
    /// This entry completed from the lab file's request of the same line, if there is one:
    /// what the entry leaves out (parameters, body, headers, captures, the idempotency key)
    /// comes from the lab file; its weight and whatever it does say win.
    pub fn resolved(&self, known: &[MixEntry]) -> MixEntry {
        let line = request_line(&self.request);
        let Some(k) = known.iter().find(|k| request_line(&k.request) == line) else {
            return self.clone();
        };
        let mut m = k.clone();
        m.weight = self.weight;
        m.params.extend(self.params.clone());
        if self.body.is_some() {
            m.body = self.body.clone();
        }
        if self.idempotency_key.is_some() {
            m.idempotency_key = self.idempotency_key;
        }
        m.retry_same_key = self.retry_same_key;
        m.headers.extend(self.headers.clone());
        m.capture.extend(self.capture.clone());
        m
    }

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
/// `{ value = "x" }`, `"sequence"`, `"uuid"` or `{ captured = "pool" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Param {
    /// An integer drawn uniformly from `[low, high]`, both included.
    Uniform([i64; 2]),
    OneOf(Vec<String>),
    Value(String),
    /// The request's sequence number (as `{seq}`).
    Sequence,
    /// A UUID drawn for this placeholder (`{uuid}` is the request's own, shared by the body and
    /// the idempotency key).
    Uuid,
    /// A value captured from an earlier answer into this pool (see [`MixEntry::capture`]), or a
    /// random UUID while the pool is empty.
    Captured(String),
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

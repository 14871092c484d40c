//! The open-loop load generator: sends requests at a fixed rate whatever the target does, and
//! records every one of them as a [`RequestRecord`].
//!
//! # Open loop
//!
//! Request *i* is due at `start + i / rate` and is sent at that time even if every earlier request
//! is still waiting for its answer: it goes to an idle connection, or to a new one when every
//! connection is busy (see `load/engine.rs`). A closed-loop generator
//! (N workers, each sending its next request when the previous one is answered) slows down with
//! the target and so hides exactly the latency a fault causes ("coordinated omission"). For the
//! same reason latency is measured from the *due* time, not from when the request got on the
//! wire. In-flight requests are capped ([`LoadPlan::max_in_flight`]); a request over the cap is
//! recorded as a client error instead of waiting for room, which would close the loop again.
//!
//! # Requests
//!
//! A plan's mix is a weighted list of [`MixEntry`]s, each a request line such as
//! `GET /products/{id}` with generators for its placeholders, an optional JSON body template and
//! an optional `Idempotency-Key`. The four routes of target-app have built-in defaults, so a
//! scenario can write just `{ weight = 8, request = "GET /products/{id}" }`. Every random choice
//! comes from one ChaCha generator seeded by [`LoadPlan::seed`], drawn in sequence order before
//! the request is due, so the same seed sends the same requests (one documented exception:
//! `created_order`, which picks among the orders the target has acknowledged so far).
//!
//! # Client
//!
//! A minimal HTTP/1.1 client over keep-alive connections (`load/wire.rs`), one task per
//! connection, and a scheduler that paces requests to within microseconds (`load/pace.rs`).
//! hyper's pooled client with a task per request was the first version; it topped out at a
//! quarter of wrk's rate on the same machine (`cargo bench -p fivehundred` compares them).

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Scheme;
use http::{Method, Uri};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::record::{Outcome, RequestRecord, TransportError};

mod engine;
mod pace;
#[cfg(test)]
mod tests;
mod wire;

/// Response bodies are kept up to this size (see [`Outcome::Response`]).
pub const BODY_LIMIT: usize = 16 * 1024;

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

    /// The first `n` requests this plan sends, without sending anything: what `seq` 0..n will
    /// be. (`created_order` placeholders show as random ids here.)
    pub fn preview(&self, n: u64) -> Result<Vec<PlannedRequest>, LoadError> {
        let plan = Compiled::new(self)?;
        let mut sequence = Sequence::new(&plan);
        let orders = CreatedOrders::default();
        Ok((0..n)
            .map(|seq| {
                let r = sequence.next(seq, &plan, &orders);
                PlannedRequest {
                    seq,
                    route: plan.entries[r.entry].line.clone(),
                    method: plan.entries[r.entry].method.to_string(),
                    headers: r.headers(),
                    path: r.path,
                    body: r.body,
                }
            })
            .collect())
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
const CREATED_ORDER_POOL: &str = "created_order";

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
struct RouteDefaults {
    params: Vec<(&'static str, Param)>,
    body: Option<&'static str>,
    idempotency_key: bool,
}

fn target_app_defaults(line: &str) -> Option<RouteDefaults> {
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

/// Where records go. Called from many tasks at once, as each request ends; must not block.
/// Implemented for closures and for unbounded channel senders.
pub trait RecordSink: Send + Sync + 'static {
    fn record(&self, record: RequestRecord);
}

impl<F: Fn(RequestRecord) + Send + Sync + 'static> RecordSink for F {
    fn record(&self, record: RequestRecord) {
        self(record)
    }
}

impl RecordSink for mpsc::UnboundedSender<RequestRecord> {
    fn record(&self, record: RequestRecord) {
        // The receiver gone means nobody wants records any more; the load stops on its own.
        let _ = self.send(record);
    }
}

/// Live counters of a running load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// Requests whose due time has come (including those over the in-flight cap).
    pub sent: u64,
    /// Requests finished and recorded.
    pub completed: u64,
    /// Answers with status 4xx.
    pub client_errors: u64,
    /// Answers with status 5xx.
    pub server_errors: u64,
    /// No answer: connect, closed, timeout, other.
    pub transport_errors: u64,
    /// Not sent because [`LoadPlan::max_in_flight`] requests were in flight (also counted in
    /// `transport_errors`).
    pub over_cap: u64,
    pub in_flight: u64,
}

impl Progress {
    /// 5xx answers and requests without an answer.
    pub fn errors(&self) -> u64 {
        self.server_errors + self.transport_errors
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    completed: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    transport_errors: AtomicU64,
    over_cap: AtomicU64,
    in_flight: AtomicU64,
    connections: AtomicU64,
    /// How late a request task started, after its due time: the generator's own delay.
    max_lag_us: AtomicU64,
    total_lag_us: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Progress {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Progress {
            sent: get(&self.sent),
            completed: get(&self.completed),
            client_errors: get(&self.client_errors),
            server_errors: get(&self.server_errors),
            transport_errors: get(&self.transport_errors),
            over_cap: get(&self.over_cap),
            in_flight: get(&self.in_flight),
        }
    }
}

/// How a load ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadOutcome {
    pub progress: Progress,
    /// From the first due time to the last send.
    pub send_span: Duration,
    /// Sends per second over `send_span` (intervals between sends; the plan's rate when every
    /// request went out on time).
    pub achieved_rate: f64,
    /// The latest any request started after its due time.
    pub max_send_lag: Duration,
    pub mean_send_lag: Duration,
    /// Connections opened (each is kept for the rest of the load unless it fails).
    pub connections: u64,
    /// Stopped by the cancellation token before the plan's bound.
    pub cancelled: bool,
}

/// A running load. Dropping it does not stop the load; cancel the token for that.
pub struct LoadHandle {
    counters: Arc<Counters>,
    cancel: CancellationToken,
    running: engine::Running,
}

impl LoadHandle {
    pub fn progress(&self) -> Progress {
        self.counters.snapshot()
    }

    /// Stops scheduling; requests in flight still finish (within the plan's timeout) and are
    /// recorded.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Waits until every request is recorded.
    pub async fn wait(self) -> LoadOutcome {
        self.running.wait().await
    }
}

/// Starts sending `plan`, recording each request into `sink` with `at_ms` counted from
/// `run_start`. Cancelling `cancel` stops scheduling early. The load runs on a thread of its
/// own (see `load/engine.rs`); `sink` is called there.
pub fn start(
    plan: &LoadPlan,
    run_start: std::time::Instant,
    sink: impl RecordSink,
    cancel: CancellationToken,
) -> Result<LoadHandle, LoadError> {
    start_with(plan, run_start, Sink::Records(Box::new(sink)), cancel, None)
}

fn start_with(
    plan: &LoadPlan,
    run_start: std::time::Instant,
    sink: Sink,
    cancel: CancellationToken,
    threads: Option<usize>,
) -> Result<LoadHandle, LoadError> {
    let compiled = Compiled::new(plan)?;
    let counters = Arc::new(Counters::default());
    let running = engine::spawn(
        compiled,
        sink,
        Arc::clone(&counters),
        Instant::from_std(run_start),
        cancel.clone(),
        threads,
    );
    Ok(LoadHandle {
        counters,
        cancel,
        running,
    })
}

/// [`start`] and wait.
pub async fn run(
    plan: &LoadPlan,
    run_start: std::time::Instant,
    sink: impl RecordSink,
    cancel: CancellationToken,
) -> Result<LoadOutcome, LoadError> {
    Ok(start(plan, run_start, sink, cancel)?.wait().await)
}

/// What [`run_summary`] reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadSummary {
    pub outcome: LoadOutcome,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests without an answer, by kind (`connect`, `closed`, `timeout`, `other`).
    pub transport_errors: BTreeMap<String, u64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Percentiles of answered requests from each one's first write to its answer's last byte
    /// rather than from its due time: what a closed-loop tool such as wrk reports. The
    /// difference from the above is the generator's send lag.
    pub sent_p50_ms: f64,
    pub sent_p99_ms: f64,
}

/// Runs `plan` and keeps only counts and a latency histogram, not the records: for benchmarks
/// and quick checks, flat in memory however long the run.
pub async fn run_summary(plan: &LoadPlan) -> Result<LoadSummary, LoadError> {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let outcome = start_with(
        plan,
        std::time::Instant::now(),
        Sink::Tally(Arc::clone(&tally)),
        CancellationToken::new(),
        None,
    )?
    .wait()
    .await;
    let t = tally.lock().unwrap();
    let ms = |q: f64| t.latency_us.value_at_quantile(q) as f64 / 1000.0;
    let sent_ms = |q: f64| t.exchange_us.value_at_quantile(q) as f64 / 1000.0;
    Ok(LoadSummary {
        outcome,
        statuses: t.statuses.clone(),
        transport_errors: t.transport_errors.clone(),
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        max_ms: t.latency_us.max() as f64 / 1000.0,
        sent_p50_ms: sent_ms(0.5),
        sent_p99_ms: sent_ms(0.99),
    })
}

/// Where the engine puts what it learns of each request.
enum Sink {
    /// A full [`RequestRecord`] each, for the caller's [`RecordSink`].
    Records(Box<dyn RecordSink>),
    /// Counts and a histogram only ([`run_summary`]): no record is built, and of an answer only
    /// its status is read, so what is measured is the generator, not its bookkeeping.
    Tally(Arc<Mutex<Tally>>),
}

struct Tally {
    statuses: BTreeMap<u16, u64>,
    transport_errors: BTreeMap<String, u64>,
    latency_us: hdrhistogram::Histogram<u64>,
    /// From the request's first write to the answer's last byte (as wrk times), for answered
    /// requests; `latency_us` runs from the due time.
    exchange_us: hdrhistogram::Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            statuses: BTreeMap::new(),
            transport_errors: BTreeMap::new(),
            // 1 µs to 1 hour at 3 significant digits.
            latency_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
            exchange_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }
}

impl Tally {
    fn add(&mut self, outcome: &Outcome, latency: Duration, exchange: Option<Duration>) {
        match outcome {
            Outcome::Response { status, .. } => *self.statuses.entry(*status).or_default() += 1,
            Outcome::Error { kind, .. } => {
                *self
                    .transport_errors
                    .entry(transport_error_name(*kind).to_string())
                    .or_default() += 1
            }
        }
        self.latency_us
            .saturating_record((latency.as_micros() as u64).max(1));
        if let Some(exchange) = exchange {
            self.exchange_us
                .saturating_record((exchange.as_micros() as u64).max(1));
        }
    }
}

fn transport_error_name(kind: TransportError) -> &'static str {
    match kind {
        TransportError::Connect => "connect",
        TransportError::Closed => "closed",
        TransportError::Timeout => "timeout",
        TransportError::Other => "other",
    }
}

// ---------------------------------------------------------------------------------------------
// The plan, checked and compiled.

struct Compiled {
    /// Where to connect.
    dest: wire::Dest,
    /// The `Host` header: the base URL's authority.
    host: String,
    /// A path prefix from the base URL (usually empty).
    prefix: String,
    rate: f64,
    duration: Option<Duration>,
    requests: Option<u64>,
    timeout: Duration,
    seed: u64,
    max_in_flight: u64,
    detail: crate::record::RecordDetail,
    entries: Vec<Entry>,
    /// Cumulative weights, for a weighted draw with one random number.
    cumulative: Vec<u64>,
    /// Capture pool names; [`Entry::captures`] and drawn params index into it.
    pools: Vec<String>,
}

struct Entry {
    /// The request line as written: the record's `route`.
    line: String,
    /// The same, shared by every record of this entry.
    route: crate::record::Route,
    method: Method,
    path: Vec<Piece>,
    body: Option<Vec<Piece>>,
    /// In name order: the order values are drawn in.
    params: Vec<(String, Param)>,
    idempotency_key: bool,
    retry_same_key: u32,
    /// Whether the body of a 2xx answer is kept (writes).
    keep_success_body: bool,
    /// Header name and value template, in name order.
    headers: Vec<(String, Vec<Piece>)>,
    /// What its 2xx answers give to later requests: a pool (by name until compiled, then the
    /// index into [`Compiled::pools`]) and the JSON pointer of the value. Only pools some
    /// request reads are kept, so an answer nobody needs is never parsed.
    captures: Vec<(usize, String)>,
    capture_names: Vec<(String, String)>,
}

enum Piece {
    Text(String),
    /// An index into the entry's `params`.
    Param(usize),
    Seq,
    Uuid,
}

/// Resolves capture pools: every `captured` param must name a pool some entry fills; each
/// entry keeps the captures someone reads. Returns the pool names.
fn link_captures(entries: &mut [Entry]) -> Result<Vec<String>, LoadError> {
    let read = |p: &Param| match p {
        Param::Captured(pool) => Some(pool.clone()),
        Param::CreatedOrder => Some(CREATED_ORDER_POOL.to_string()),
        _ => None,
    };
    let mut pools: Vec<String> = Vec::new();
    for e in entries.iter() {
        for (_, p) in &e.params {
            if let Some(pool) = read(p)
                && !pools.contains(&pool)
            {
                pools.push(pool);
            }
        }
    }
    for e in entries.iter() {
        for (_, p) in &e.params {
            if let Param::Captured(pool) = p
                && !entries
                    .iter()
                    .any(|x| x.capture_names.iter().any(|(n, _)| n == pool))
            {
                return Err(LoadError::BadRequest {
                    request: e.line.clone(),
                    reason: format!(
                        "no request captures `{pool}`; add capture = {{ {pool} = \"id\" }} to the request whose answer holds it"
                    ),
                });
            }
        }
    }
    for e in entries.iter_mut() {
        e.captures = e
            .capture_names
            .iter()
            .filter_map(|(name, field)| {
                let pool = pools.iter().position(|p| p == name)?;
                let pointer: String = field.split('.').map(|f| format!("/{f}")).collect();
                Some((pool, pointer))
            })
            .collect();
    }
    Ok(pools)
}

impl Compiled {
    fn new(plan: &LoadPlan) -> Result<Compiled, LoadError> {
        let (dest, host, prefix) = parse_base_url(&plan.base_url)?;
        if !(plan.rate.is_finite() && plan.rate > 0.0) {
            return Err(LoadError::Invalid(format!(
                "the rate must be a positive number of requests per second, got {}",
                plan.rate
            )));
        }
        if plan.duration.is_none() && plan.requests.is_none() {
            return Err(LoadError::Invalid(
                "a load needs a bound: set `duration`, `requests`, or both".into(),
            ));
        }
        if plan.timeout.is_zero() {
            return Err(LoadError::Invalid("the timeout must be positive".into()));
        }
        if plan.max_in_flight == 0 {
            return Err(LoadError::Invalid(
                "max_in_flight must be at least 1".into(),
            ));
        }
        if plan.mix.is_empty() {
            return Err(LoadError::Invalid("the mix has no requests".into()));
        }
        let mut entries = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for m in &plan.mix {
            if m.weight == 0 {
                return Err(LoadError::BadRequest {
                    request: m.request.clone(),
                    reason: "a weight of 0 is never sent; remove the entry instead".into(),
                });
            }
            total += u64::from(m.weight);
            cumulative.push(total);
            entries.push(Entry::new(m)?);
        }
        let pools = link_captures(&mut entries)?;
        Ok(Compiled {
            dest,
            host,
            prefix,
            rate: plan.rate,
            duration: plan.duration,
            requests: plan.requests,
            timeout: plan.timeout,
            seed: plan.seed,
            max_in_flight: plan.max_in_flight,
            detail: plan.detail,
            entries,
            cumulative,
            pools,
        })
    }
}

fn parse_base_url(url: &str) -> Result<(wire::Dest, String, String), LoadError> {
    let bad = |reason: &str| LoadError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
    if uri.scheme() != Some(&Scheme::HTTP) {
        return Err(bad("only http:// is supported"));
    }
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let ip = host.parse::<IpAddr>().ok();
    let loopback = host.eq_ignore_ascii_case("localhost") || ip.is_some_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(LoadError::NotLoopback(url.to_string()));
    }
    if uri.query().is_some() {
        return Err(bad("a base URL has no query"));
    }
    let port = authority.port_u16().unwrap_or(80);
    let dest = match ip {
        Some(ip) => wire::Dest::Addr(std::net::SocketAddr::new(ip, port)),
        None => wire::Dest::Name(host.to_string(), port),
    };
    let prefix = uri.path().trim_end_matches('/').to_string();
    Ok((dest, authority.as_str().to_string(), prefix))
}

impl Entry {
    fn new(m: &MixEntry) -> Result<Entry, LoadError> {
        let bad = |reason: String| LoadError::BadRequest {
            request: m.request.clone(),
            reason,
        };
        let line = m.request.split_whitespace().collect::<Vec<_>>().join(" ");
        let (method, route) = line
            .split_once(' ')
            .ok_or_else(|| bad("write it as `METHOD /path`".into()))?;
        let method: Method = method
            .parse()
            .map_err(|_| bad(format!("`{method}` is not an HTTP method")))?;
        if !route.starts_with('/') {
            return Err(bad("the path must start with `/`".into()));
        }

        let defaults = target_app_defaults(&line);
        let mut params: BTreeMap<String, Param> = defaults
            .iter()
            .flat_map(|d| &d.params)
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        params.extend(m.params.clone());
        let body = m
            .body
            .clone()
            .or_else(|| defaults.as_ref()?.body.map(str::to_string));
        let idempotency_key = m
            .idempotency_key
            .unwrap_or_else(|| defaults.as_ref().is_some_and(|d| d.idempotency_key));

        for (name, p) in &params {
            match p {
                Param::Uniform([low, high]) if low > high => {
                    return Err(bad(format!(
                        "`{name}`: uniform range [{low}, {high}] is empty"
                    )));
                }
                Param::OneOf(values) if values.is_empty() => {
                    return Err(bad(format!("`{name}`: one_of needs at least one value")));
                }
                _ => {}
            }
        }
        let params: Vec<(String, Param)> = params.into_iter().collect();
        let path = pieces(route, &params, true).map_err(bad)?;
        let body = body
            .as_deref()
            .map(|b| pieces(b, &params, false))
            .transpose()
            .map_err(bad)?;
        let is_write = method != Method::GET && method != Method::HEAD;
        let mut headers = Vec::new();
        for (name, value) in &m.headers {
            let name = http::HeaderName::try_from(name.as_str())
                .map_err(|_| bad(format!("`{name}` is not a header name")))?;
            let reserved = ["host", "content-length", "transfer-encoding", "connection"];
            if reserved.contains(&name.as_str()) {
                return Err(bad(format!(
                    "the `{name}` header is the load generator's own; remove it"
                )));
            }
            headers.push((
                name.to_string(),
                pieces(value, &params, false).map_err(bad)?,
            ));
        }
        let mut capture_names: Vec<(String, String)> = m
            .capture
            .iter()
            .map(|(pool, field)| (pool.clone(), field.clone()))
            .collect();
        if method == Method::POST && route == "/orders" && m.capture.is_empty() {
            capture_names.push((CREATED_ORDER_POOL.to_string(), "id".to_string()));
        }
        for (pool, field) in &capture_names {
            if field.is_empty() || field.split('.').any(str::is_empty) {
                return Err(bad(format!(
                    "capture `{pool}`: `{field}` is not a field; write `id` or `data.id`"
                )));
            }
        }
        Ok(Entry {
            headers,
            captures: Vec::new(),
            capture_names,
            route: crate::record::Route::new(&line),
            line,
            method,
            path,
            body,
            params,
            idempotency_key,
            retry_same_key: m.retry_same_key,
            keep_success_body: is_write,
        })
    }
}

/// Splits a template into text and placeholders. In a path every `{...}` is a placeholder; in a
/// body only `{identifier}` is, so that JSON braces stay text.
fn param_index(params: &[(String, Param)], name: &str) -> Result<usize, String> {
    params.iter().position(|(n, _)| n == name).ok_or_else(|| {
        format!("`{{{name}}}` has no generator; add e.g. params = {{ {name} = {{ uniform = [1, 20] }} }}")
    })
}

fn pieces(template: &str, params: &[(String, Param)], strict: bool) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let name = after.find('}').map(|close| &after[..close]);
        let is_ident = |n: &str| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !n.starts_with(|c: char| c.is_ascii_digit())
        };
        match name {
            Some(name) if is_ident(name) => {
                text.push_str(&rest[..open]);
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(match name {
                    "seq" => Piece::Seq,
                    "uuid" => Piece::Uuid,
                    _ => Piece::Param(param_index(params, name)?),
                });
                rest = &after[name.len() + 1..];
            }
            _ if strict => return Err(format!("bad placeholder in `{template}`")),
            _ => {
                text.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The request sequence.

/// One request, drawn and filled in.
struct Drawn {
    entry: usize,
    path: String,
    body: Option<String>,
    key: Option<String>,
    /// The entry's own headers, filled in.
    headers: Vec<(String, String)>,
}

impl Drawn {
    fn headers(&self) -> BTreeMap<String, String> {
        let mut h = BTreeMap::new();
        if self.body.is_some() {
            h.insert("content-type".to_string(), "application/json".to_string());
        }
        if let Some(key) = &self.key {
            h.insert("idempotency-key".to_string(), key.clone());
        }
        for (name, value) in &self.headers {
            h.insert(name.clone(), value.clone());
        }
        h
    }
}

/// Draws requests in sequence order from one seeded generator.
struct Sequence {
    rng: ChaCha8Rng,
    /// A request to send again (`retry_same_key`) and how many more times.
    repeat: Option<(Drawn, u32)>,
}

impl Sequence {
    fn new(plan: &Compiled) -> Sequence {
        Sequence {
            rng: ChaCha8Rng::seed_from_u64(plan.seed),
            repeat: None,
        }
    }

    fn next(&mut self, seq: u64, plan: &Compiled, orders: &CreatedOrders) -> Drawn {
        if let Some((drawn, left)) = self.repeat.take() {
            if left > 1 {
                self.repeat = Some((drawn.clone_request(), left - 1));
            }
            return drawn;
        }
        let total = *plan.cumulative.last().expect("the mix is not empty");
        let pick = self.rng.random_range(0..total);
        let entry_index = plan.cumulative.partition_point(|&c| c <= pick);
        let entry = &plan.entries[entry_index];
        let values: Vec<String> = entry
            .params
            .iter()
            .map(|(_, p)| match p {
                Param::Uniform([low, high]) => self.rng.random_range(*low..=*high).to_string(),
                Param::OneOf(values) => values[self.rng.random_range(0..values.len())].clone(),
                Param::Value(v) => v.clone(),
                Param::CreatedOrder | Param::Captured(_) => {
                    let pool = match p {
                        Param::Captured(name) => name.as_str(),
                        _ => CREATED_ORDER_POOL,
                    };
                    let pool = plan.pools.iter().position(|n| n == pool);
                    let draw: u128 = self.rng.random();
                    pool.and_then(|pool| orders.pick(pool, draw as u64))
                        .unwrap_or_else(|| {
                            uuid::Builder::from_random_bytes(draw.to_le_bytes())
                                .into_uuid()
                                .to_string()
                        })
                }
                Param::Sequence => seq.to_string(),
                Param::Uuid => uuid::Builder::from_random_bytes(self.rng.random())
                    .into_uuid()
                    .to_string(),
            })
            .collect();
        let uuid = uuid::Builder::from_random_bytes(self.rng.random()).into_uuid();
        let fill = |pieces: &[Piece]| {
            let mut s = String::new();
            for p in pieces {
                match p {
                    Piece::Text(t) => s.push_str(t),
                    Piece::Param(i) => s.push_str(&values[*i]),
                    Piece::Seq => s.push_str(&seq.to_string()),
                    Piece::Uuid => s.push_str(&uuid.to_string()),
                }
            }
            s
        };
        let drawn = Drawn {
            entry: entry_index,
            path: fill(&entry.path),
            body: entry.body.as_deref().map(fill),
            key: entry.idempotency_key.then(|| uuid.to_string()),
            headers: entry
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), fill(value)))
                .collect(),
        };
        if entry.retry_same_key > 0 {
            self.repeat = Some((drawn.clone_request(), entry.retry_same_key));
        }
        drawn
    }
}

impl Drawn {
    fn clone_request(&self) -> Drawn {
        Drawn {
            entry: self.entry,
            path: self.path.clone(),
            body: self.body.clone(),
            key: self.key.clone(),
            headers: self.headers.clone(),
        }
    }
}

/// Values captured from 2xx answers, one pool per capture name (`created_order` among them),
/// for [`Param::Captured`] and [`Param::CreatedOrder`]. Bounded: the most recent values are
/// enough to read back.
#[derive(Default)]
struct CreatedOrders(Mutex<Vec<VecDeque<String>>>);

const CREATED_ORDERS_KEPT: usize = 10_000;

impl CreatedOrders {
    fn pick(&self, pool: usize, draw: u64) -> Option<String> {
        let pools = self.0.lock().unwrap();
        let ids = pools.get(pool)?;
        (!ids.is_empty()).then(|| ids[(draw % ids.len() as u64) as usize].clone())
    }

    /// Keeps, from a JSON answer, the value at each pointer in its pool. Strings are kept as
    /// they are, numbers and other values as JSON text.
    fn add(&self, captures: &[(usize, String)], body: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
            return;
        };
        let mut pools = self.0.lock().unwrap();
        for (pool, pointer) in captures {
            let value = match v.pointer(pointer) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => continue,
                Some(other) => other.to_string(),
            };
            if pools.len() <= *pool {
                pools.resize_with(pool + 1, VecDeque::new);
            }
            let ids = &mut pools[*pool];
            if ids.len() >= CREATED_ORDERS_KEPT {
                ids.pop_front();
            }
            ids.push_back(value);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sending: see `load/engine.rs`.

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

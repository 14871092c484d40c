//! Tests of the load generator against a small axum server on loopback.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::record::{Headers, Outcome, RecordDetail, RequestRecord, TransportError};

const LIMIT: Duration = Duration::from_secs(30);

/// One of the shop's requests below, completed as a lab file would describe it: products by id,
/// orders with a JSON body and an idempotency key whose ids are read back.
fn shop(weight: u32, line: &str) -> MixEntry {
    let mut product = MixEntry::new(1, "GET /products/{id}");
    product.params.insert("id".into(), Param::Uniform([1, 20]));
    let mut order = MixEntry::new(1, "POST /orders");
    order
        .params
        .insert("product_id".into(), Param::Uniform([1, 20]));
    order.body = Some(
        r#"{"product_id": {product_id}, "quantity": 1, "customer_email": "user-{seq}@example.com"}"#
            .into(),
    );
    order.idempotency_key = Some(true);
    order.capture.insert("order".into(), "id".into());
    let mut read = MixEntry::new(1, "GET /orders/{id}");
    read.params
        .insert("id".into(), Param::Captured("order".into()));
    MixEntry::new(weight, line).resolved(&[product, order, read])
}

/// What the test server saw: when each request arrived, its path and idempotency key.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Arrival>>>);

/// When, which path, which idempotency key.
type Arrival = (Instant, String, Option<String>);

impl Seen {
    fn note(&self, path: String, headers: &HeaderMap) {
        let key = headers
            .get("idempotency-key")
            .map(|v| v.to_str().unwrap().to_string());
        self.0.lock().unwrap().push((Instant::now(), path, key));
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.0.lock().unwrap().iter().map(|(t, _, _)| *t).collect()
    }

    fn keys(&self) -> Vec<Option<String>> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, k)| k.clone())
            .collect()
    }
}

/// A shop in miniature: product 13 is broken (503), orders get ids, `/slow` takes 2 s and
/// `/hang` never answers.
fn app(seen: Seen) -> Router {
    async fn products(State(seen): State<Seen>, headers: HeaderMap) -> impl IntoResponse {
        seen.note("/products".into(), &headers);
        ([("x-request-id", "r-list")], "[]")
    }
    async fn product(
        State(seen): State<Seen>,
        Path(id): Path<u32>,
        headers: HeaderMap,
    ) -> axum::response::Response {
        seen.note(format!("/products/{id}"), &headers);
        if id == 13 {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    ("content-type", "application/problem+json"),
                    ("retry-after", "1"),
                    ("x-request-id", "r-13"),
                ],
                r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"down"}"#,
            )
                .into_response();
        }
        ([("x-request-id", "r-ok")], format!("{{\"id\":{id}}}")).into_response()
    }
    async fn order(
        State(seen): State<Seen>,
        headers: HeaderMap,
        body: String,
    ) -> impl IntoResponse {
        seen.note("/orders".into(), &headers);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let id = format!("order-{}", v["product_id"]);
        (StatusCode::CREATED, format!("{{\"id\":\"{id}\"}}"))
    }
    async fn read_order(
        State(seen): State<Seen>,
        Path(id): Path<String>,
        headers: HeaderMap,
    ) -> StatusCode {
        seen.note(format!("/orders/{id}"), &headers);
        if id.starts_with("order-") {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        }
    }
    async fn slow(State(seen): State<Seen>, headers: HeaderMap) -> &'static str {
        seen.note("/slow".into(), &headers);
        tokio::time::sleep(Duration::from_secs(2)).await;
        "late"
    }
    async fn correlated(State(seen): State<Seen>, headers: HeaderMap) -> impl IntoResponse {
        seen.note("/correlated".into(), &headers);
        ([("X-Correlation-Id", "c-1")], "ok")
    }
    async fn hang(State(seen): State<Seen>, headers: HeaderMap) -> &'static str {
        seen.note("/hang".into(), &headers);
        std::future::pending::<()>().await;
        "never"
    }
    Router::new()
        .route("/products", get(products))
        .route("/products/{id}", get(product))
        .route("/orders", post(order))
        .route("/orders/{id}", get(read_order))
        .route("/slow", get(slow))
        .route("/hang", get(hang))
        .route("/correlated", get(correlated))
        .with_state(seen)
}

async fn server() -> (String, Seen) {
    let seen = Seen::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(seen.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// Runs `plan` and returns its outcome and its records in sequence order.
async fn run_collect(plan: &LoadPlan) -> (LoadOutcome, Vec<RequestRecord>) {
    let records = Arc::new(Mutex::new(Vec::new()));
    let sink_records = Arc::clone(&records);
    let outcome = timeout(
        LIMIT,
        run(
            plan,
            std::time::Instant::now(),
            move |r| sink_records.lock().unwrap().push(r),
            CancellationToken::new(),
        ),
    )
    .await
    .expect("the load did not finish in time")
    .unwrap();
    let mut records = records.lock().unwrap().clone();
    records.sort_by_key(|r| r.seq);
    (outcome, records)
}

fn plan(base: &str, rate: f64, requests: u64, mix: Vec<MixEntry>) -> LoadPlan {
    let mut p = LoadPlan::new(base, rate, mix);
    p.requests = Some(requests);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_out_at_the_planned_rate() {
    let (base, seen) = server().await;
    let mut p = LoadPlan::new(&base, 200.0, vec![MixEntry::new(1, "GET /products")]);
    p.duration = Some(Duration::from_secs(2));
    let started = Instant::now();
    let (outcome, records) = run_collect(&p).await;
    let wall = started.elapsed();

    assert_eq!(outcome.progress.sent, 400);
    assert_eq!(records.len(), 400);
    assert_eq!(seen.arrivals().len(), 400);
    // Due times are exact by construction; what can drift is when requests actually went out.
    assert!((records[399].at_ms - records[0].at_ms - 1995.0).abs() < 1.0);
    assert!(
        (outcome.achieved_rate - 200.0).abs() < 20.0,
        "achieved {}",
        outcome.achieved_rate
    );
    assert!(
        outcome.max_send_lag < Duration::from_millis(200),
        "a request went out {:?} late",
        outcome.max_send_lag
    );
    assert!(
        wall >= Duration::from_millis(1990) && wall < Duration::from_secs(4),
        "{wall:?}"
    );
    // Arrivals at the server are spread over the two seconds, not bunched up.
    let arrivals = seen.arrivals();
    let first_half = arrivals
        .iter()
        .filter(|t| t.duration_since(started) < Duration::from_secs(1))
        .count();
    assert!(
        (160..=240).contains(&first_half),
        "{first_half} in the first second"
    );
    assert!(records.iter().all(|r| r.status() == Some(200)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_does_not_slow_the_load_down() {
    let (base, seen) = server().await;
    let mut p = LoadPlan::new(&base, 50.0, vec![MixEntry::new(1, "GET /slow")]);
    p.duration = Some(Duration::from_secs(2));
    let started = Instant::now();
    let (outcome, records) = run_collect(&p).await;

    assert_eq!(outcome.progress.sent, 100);
    // A closed loop would have sent one request per worker every 2 s; open loop sends them all
    // on schedule while the earlier ones wait.
    let arrivals = seen.arrivals();
    let on_time = arrivals
        .iter()
        .filter(|t| t.duration_since(started) < Duration::from_millis(2500))
        .count();
    assert!(
        on_time >= 95,
        "only {on_time} requests arrived within 2.5 s"
    );
    assert_eq!(records.len(), 100);
    for r in &records {
        assert_eq!(r.status(), Some(200), "{r:?}");
        assert!(r.latency_ms >= 1990.0, "latency {} ms", r.latency_ms);
    }
    assert!(started.elapsed() < Duration::from_secs(8));
}

fn mixed(base: &str, seed: u64) -> LoadPlan {
    let mut p = plan(
        base,
        500.0,
        60,
        vec![
            shop(6, "GET /products/{id}"),
            shop(2, "POST /orders"),
            MixEntry::new(1, "GET /products"),
        ],
    );
    p.seed = seed;
    // These tests compare what was sent with what was planned: keep all of it.
    p.detail = RecordDetail::Everything;
    p
}

/// What makes a request: everything but its timing and answer.
fn request_part(r: &RequestRecord) -> (u64, String, String, String, String, Option<String>) {
    (
        r.seq,
        r.route.to_string(),
        r.method().to_string(),
        r.path.to_string(),
        format!("{:?}", r.request_headers()),
        r.request_body().map(String::from),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_sends_the_same_requests() {
    let (base, _) = server().await;
    let (_, first) = run_collect(&mixed(&base, 5)).await;
    let (_, second) = run_collect(&mixed(&base, 5)).await;
    let (_, other) = run_collect(&mixed(&base, 6)).await;
    let parts = |rs: &[RequestRecord]| rs.iter().map(request_part).collect::<Vec<_>>();
    assert_eq!(parts(&first), parts(&second));
    assert_ne!(parts(&first), parts(&other));
    // And the preview, which sends nothing, agrees.
    let preview = mixed(&base, 5).preview(60).unwrap();
    for (p, r) in preview.iter().zip(&first) {
        assert_eq!(
            (p.seq, p.route.as_str(), p.path.as_str(), p.body.as_deref()),
            (r.seq, r.route.as_str(), &*r.path, r.request_body())
        );
        assert_eq!(&Headers::from(p.headers.clone()), r.request_headers());
    }
    // The mix is honoured and the parts are filled in.
    let orders: Vec<_> = first.iter().filter(|r| r.route == "POST /orders").collect();
    assert!(!orders.is_empty() && orders.len() < 40);
    for o in &orders {
        let body: serde_json::Value = serde_json::from_str(o.request_body().unwrap()).unwrap();
        let product = body["product_id"].as_i64().unwrap();
        assert!((1..=20).contains(&product));
        assert_eq!(
            body["customer_email"],
            format!("user-{}@example.com", o.seq)
        );
        let key = &o.request_headers()["idempotency-key"];
        assert!(uuid::Uuid::parse_str(key).is_ok());
        assert_eq!(&o.request_headers()["content-type"], "application/json");
    }
    let keys: std::collections::HashSet<_> = orders
        .iter()
        .map(|o| &o.request_headers()["idempotency-key"])
        .collect();
    assert_eq!(keys.len(), orders.len(), "idempotency keys repeat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_and_answers_to_writes_are_recorded() {
    let (base, _) = server().await;
    let mix = vec![
        MixEntry {
            params: [(
                "id".to_string(),
                Param::OneOf(vec!["13".into(), "2".into()]),
            )]
            .into(),
            ..shop(1, "GET /products/{id}")
        },
        shop(1, "POST /orders"),
    ];
    let (outcome, records) = run_collect(&plan(&base, 200.0, 40, mix)).await;

    let broken: Vec<_> = records
        .iter()
        .filter(|r| &*r.path == "/products/13")
        .collect();
    let fine: Vec<_> = records
        .iter()
        .filter(|r| &*r.path == "/products/2")
        .collect();
    let orders: Vec<_> = records.iter().filter(|r| r.method() == "POST").collect();
    assert!(!broken.is_empty() && !fine.is_empty() && !orders.is_empty());
    for r in &broken {
        assert_eq!(r.status(), Some(503));
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(r.header("x-request-id"), Some("r-13"));
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert!(r.body().unwrap().contains("\"status\":503"));
        assert_eq!(r.route, "GET /products/{id}");
    }
    for r in &fine {
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.body(), None, "bodies of successful reads are not kept");
        assert_eq!(r.header("x-request-id"), None, "nor their headers");
        assert!(
            r.carries_request_id("x-request-id"),
            "but that an x-request-id came is"
        );
    }
    for r in &orders {
        assert_eq!(r.status(), Some(201));
        assert!(r.body().unwrap().starts_with("{\"id\":\"order-"));
        // What was sent is evidence for errors only.
        assert!(
            r.request_headers().is_empty() && r.request_body().is_none(),
            "{r:?}"
        );
    }
    assert_eq!(outcome.progress.server_errors, broken.len() as u64);
    assert_eq!(outcome.progress.completed, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_is_down_gives_connect_errors() {
    // A port that was just free: nothing listens there.
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (outcome, records) = run_collect(&plan(
        &format!("http://{addr}"),
        100.0,
        10,
        vec![MixEntry::new(1, "GET /products")],
    ))
    .await;
    assert_eq!(records.len(), 10);
    for r in &records {
        match &r.outcome {
            Outcome::Error { kind, message } => {
                assert_eq!(*kind, TransportError::Connect, "{message}");
                assert!(!message.is_empty());
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
    }
    assert_eq!(outcome.progress.transport_errors, 10);
    assert_eq!(outcome.progress.errors(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_never_answers_gives_timeouts_at_the_deadline() {
    let (base, _) = server().await;
    let mut p = plan(&base, 50.0, 5, vec![MixEntry::new(1, "GET /hang")]);
    p.timeout = Duration::from_millis(300);
    let (_, records) = run_collect(&p).await;
    assert_eq!(records.len(), 5);
    for r in &records {
        assert!(
            matches!(
                &r.outcome,
                Outcome::Error {
                    kind: TransportError::Timeout,
                    ..
                }
            ),
            "{r:?}"
        );
        assert!(
            (299.0..1500.0).contains(&r.latency_ms),
            "latency {} ms",
            r.latency_ms
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_before_the_answer_is_recorded_as_closed() {
    use tokio::io::AsyncReadExt;
    // Reads the request, then hangs up without a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
            });
        }
    });
    let (_, records) = run_collect(&plan(
        &format!("http://{addr}"),
        50.0,
        3,
        vec![MixEntry::new(1, "GET /products")],
    ))
    .await;
    for r in &records {
        assert!(
            matches!(
                &r.outcome,
                Outcome::Error {
                    kind: TransportError::Closed,
                    ..
                }
            ),
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_in_flight_cap_are_recorded_not_queued() {
    let (base, _) = server().await;
    let mut p = plan(&base, 100.0, 20, vec![MixEntry::new(1, "GET /hang")]);
    p.max_in_flight = 5;
    p.timeout = Duration::from_millis(800);
    let started = Instant::now();
    let (outcome, records) = run_collect(&p).await;
    assert_eq!(outcome.progress.over_cap, 15);
    let over: Vec<_> = records
        .iter()
        .filter(|r| matches!(&r.outcome, Outcome::Error { kind: TransportError::Other, message } if message.contains("in flight")))
        .collect();
    assert_eq!(over.len(), 15);
    // Recorded at once, not after waiting for room.
    assert!(over.iter().all(|r| r.latency_ms < 200.0));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_the_load_and_keeps_what_was_sent() {
    let (base, seen) = server().await;
    let mut p = LoadPlan::new(&base, 100.0, vec![MixEntry::new(1, "GET /products")]);
    p.duration = Some(Duration::from_secs(60));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let handle = start(&p, std::time::Instant::now(), tx, cancel.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let live = handle.progress();
    assert!(live.sent >= 20, "{live:?}");
    cancel.cancel();
    let outcome = timeout(Duration::from_secs(10), handle.wait())
        .await
        .unwrap();
    assert!(outcome.cancelled);
    assert!(outcome.progress.sent < 200);
    let mut got = 0;
    while rx.try_recv().is_ok() {
        got += 1;
    }
    assert_eq!(got, outcome.progress.sent);
    assert_eq!(seen.arrivals().len() as u64, outcome.progress.sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_spread_over_threads_sends_the_same_requests_once_each() {
    let (base, seen) = server().await;
    let mut p = mixed(&base, 9);
    p.requests = Some(300);
    p.rate = 3000.0;
    let records = Arc::new(Mutex::new(Vec::new()));
    let sink_records = Arc::clone(&records);
    let handle = start_with(
        &p,
        std::time::Instant::now(),
        Sink::Records(Box::new(move |r: RequestRecord| {
            sink_records.lock().unwrap().push(r)
        })),
        CancellationToken::new(),
        Some(2),
    )
    .unwrap();
    let outcome = timeout(LIMIT, handle.wait()).await.unwrap();
    assert_eq!(outcome.progress.sent, 300);
    let mut records = records.lock().unwrap().clone();
    records.sort_by_key(|r| r.seq);
    assert_eq!(
        records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..300).collect::<Vec<_>>()
    );
    assert_eq!(seen.arrivals().len(), 300);
    // Whichever thread sent it, each request is the one the seed makes.
    let preview = p.preview(300).unwrap();
    for (planned, sent) in preview.iter().zip(&records) {
        assert_eq!(
            (planned.path.as_str(), planned.body.as_deref()),
            (&*sent.path, sent.request_body())
        );
        assert_eq!(
            &Headers::from(planned.headers.clone()),
            sent.request_headers()
        );
    }
    assert!(
        records.iter().all(|r| r.status().is_some()),
        "every request answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_sends_the_same_request_with_the_same_key() {
    let (base, seen) = server().await;
    let mix = vec![MixEntry {
        retry_same_key: 2,
        ..shop(1, "POST /orders")
    }];
    let mut p = plan(&base, 200.0, 6, mix);
    p.detail = RecordDetail::Everything;
    let (_, records) = run_collect(&p).await;
    assert_eq!(request_part(&records[0]).3, &*records[1].path);
    for group in records.chunks(3) {
        let key = &group[0].request_headers()["idempotency-key"];
        for r in group {
            assert_eq!(&r.request_headers()["idempotency-key"], key);
            assert_eq!(r.request_body(), group[0].request_body());
        }
    }
    assert_ne!(
        &records[0].request_headers()["idempotency-key"],
        &records[3].request_headers()["idempotency-key"]
    );
    let keys = seen.keys();
    assert_eq!(keys.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_orders_are_read_back() {
    let (base, _) = server().await;
    let mix = vec![shop(1, "POST /orders"), shop(1, "GET /orders/{id}")];
    let (_, records) = run_collect(&plan(&base, 100.0, 40, mix)).await;
    let reads: Vec<_> = records
        .iter()
        .filter(|r| r.route == "GET /orders/{id}")
        .collect();
    // Once an order exists, reads ask for it (the server answers 200 only to its own ids).
    assert!(
        reads.iter().any(|r| r.status() == Some(200)),
        "no read asked for a created order: {:?}",
        reads.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_counts_statuses_and_latencies() {
    let (base, _) = server().await;
    let mix = vec![MixEntry {
        params: [(
            "id".to_string(),
            Param::OneOf(vec!["13".into(), "2".into()]),
        )]
        .into(),
        ..shop(1, "GET /products/{id}")
    }];
    let summary = timeout(LIMIT, run_summary(&plan(&base, 400.0, 200, mix)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.outcome.progress.sent, 200);
    assert_eq!(summary.statuses.values().sum::<u64>(), 200);
    assert!(summary.statuses[&503] > 50 && summary.statuses[&200] > 50);
    assert!(summary.transport_errors.is_empty());
    assert!(summary.p50_ms > 0.0 && summary.p50_ms <= summary.p99_ms);
    assert!(summary.p99_ms <= summary.max_ms);
    // Each exchange lies inside its request's life from its due time, so its percentiles do too.
    assert!(summary.sent_p50_ms > 0.0, "{summary:?}");
    assert!(summary.sent_p50_ms <= summary.p50_ms && summary.sent_p99_ms <= summary.p99_ms);
}

#[test]
fn only_loopback_targets_are_accepted() {
    let mix = || vec![MixEntry::new(1, "GET /products")];
    for url in [
        "http://127.0.0.1:8080",
        "http://localhost:1",
        "http://[::1]:80/",
    ] {
        let mut p = LoadPlan::new(url, 1.0, mix());
        p.requests = Some(1);
        assert!(p.preview(1).is_ok(), "{url} refused");
    }
    for url in [
        "http://10.0.0.1:80",
        "http://example.com",
        "http://8.8.8.8:53",
    ] {
        let mut p = LoadPlan::new(url, 1.0, mix());
        p.requests = Some(1);
        assert!(
            matches!(p.preview(1), Err(LoadError::NotLoopback(_))),
            "{url} accepted"
        );
    }
    let mut p = LoadPlan::new("https://127.0.0.1:443", 1.0, mix());
    p.requests = Some(1);
    assert!(matches!(p.preview(1), Err(LoadError::BadUrl { .. })));
}

#[test]
fn impossible_plans_are_refused() {
    let base = "http://127.0.0.1:1";
    let bounded = |mix: Vec<MixEntry>| plan(base, 10.0, 10, mix);
    // No generator for a placeholder.
    assert!(
        bounded(vec![MixEntry::new(1, "GET /things/{thing}")])
            .preview(1)
            .is_err()
    );
    // A body placeholder without a generator.
    let m = MixEntry {
        body: Some(r#"{"a": {nope}}"#.into()),
        ..MixEntry::new(1, "POST /things")
    };
    assert!(bounded(vec![m]).preview(1).is_err());
    assert!(
        bounded(vec![MixEntry::new(0, "GET /products")])
            .preview(1)
            .is_err()
    );
    assert!(
        bounded(vec![MixEntry::new(1, "/products")])
            .preview(1)
            .is_err()
    );
    assert!(bounded(vec![]).preview(1).is_err());
    let mut unbounded = LoadPlan::new(base, 10.0, vec![MixEntry::new(1, "GET /products")]);
    assert!(unbounded.preview(1).is_err());
    unbounded.requests = Some(1);
    unbounded.rate = 0.0;
    assert!(unbounded.preview(1).is_err());
}

#[test]
fn custom_templates_fill_in_their_placeholders() {
    let m = MixEntry {
        params: [
            ("sku".to_string(), Param::Value("abc".into())),
            ("n".to_string(), Param::Uniform([7, 7])),
        ]
        .into(),
        body: Some(r#"{"sku": "{sku}", "n": {n}, "seq": {seq}, "nested": {"k": 1}}"#.into()),
        idempotency_key: Some(true),
        ..MixEntry::new(1, "PUT /stock/{sku}")
    };
    let p = plan("http://127.0.0.1:1", 10.0, 3, vec![m]);
    let r = &p.preview(3).unwrap()[2];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path, "/stock/abc");
    assert_eq!(
        r.body.as_deref(),
        Some(r#"{"sku": "abc", "n": 7, "seq": 2, "nested": {"k": 1}}"#)
    );
    assert!(r.headers.contains_key("idempotency-key"));
}

#[test]
fn plans_are_read_from_toml() {
    let p: LoadPlan = toml::from_str(
        r#"
        base_url = "http://127.0.0.1:8080"
        rate = 50
        duration = "10s"
        seed = 7
        mix = [
            { weight = 8, request = "GET /products/{id}", params = { id = "sequence" } },
            { weight = 1, request = "POST /orders", retry_same_key = 1, capture = { order = "id" } },
            { weight = 1, request = "GET /products/{id}", params = { id = { uniform = [21, 30] } } },
            { weight = 1, request = "GET /orders/{id}", params = { id = { captured = "order" } } },
        ]
        "#,
    )
    .unwrap();
    assert_eq!(p.duration, Some(Duration::from_secs(10)));
    assert_eq!(p.timeout, Duration::from_secs(5));
    assert_eq!(p.mix[2].params["id"], Param::Uniform([21, 30]));
    assert_eq!(p.mix[3].params["id"], Param::Captured("order".into()));
    assert_eq!(p.preview(10).unwrap().len(), 10);
    assert!(
        toml::from_str::<LoadPlan>(
            "base_url = \"http://127.0.0.1:1\"\nrate = 1\nmix = []\nspeed = 2"
        )
        .is_err()
    );
}

/// A service whose ids come in `X-Correlation-Id`: the plan names it, and the generator notes it
/// on every answer (and not `x-request-id`), keeping no header of a success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plans_request_id_header_is_noted_on_every_answer() {
    let (base, _) = server().await;
    let mix = vec![
        MixEntry::new(1, "GET /correlated"),
        MixEntry::new(1, "GET /products"),
    ];
    let mut p = plan(&base, 200.0, 20, mix);
    p.request_id_header = "X-Correlation-Id".into();
    let (_, records) = run_collect(&p).await;
    let (correlated, products): (Vec<_>, Vec<_>) =
        records.iter().partition(|r| &*r.path == "/correlated");
    assert!(!correlated.is_empty() && !products.is_empty());
    for r in &correlated {
        assert_eq!(r.status(), Some(200));
        assert!(r.carries_request_id("x-correlation-id"), "{r:?}");
        assert_eq!(
            r.header("x-correlation-id"),
            None,
            "a success keeps no header"
        );
    }
    for r in &products {
        assert_eq!(r.status(), Some(200));
        assert!(
            !r.carries_request_id("x-correlation-id"),
            "x-request-id is not this service's header: {r:?}"
        );
    }

    // A header that frames the answer cannot be the one.
    p.request_id_header = "Content-Length".into();
    let e = p.preview(1).unwrap_err().to_string();
    assert!(e.contains("frames the answer"), "{e}");
}

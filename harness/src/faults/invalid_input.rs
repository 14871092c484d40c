//! Invalid input: requests generated with proptest (malformed and truncated JSON, wrong types,
//! huge, negative and fractional numbers, unicode, missing and extra fields, odd content types
//! and Idempotency-Keys, odd path ids) sent to the target while the fault lasts. No input may
//! answer 5xx or go unanswered: bad input is the client's mistake, a 4xx.
//!
//! Each request is recorded with the scenario's load (its route marked `(generated)`), so the
//! usual checks judge it. On the first that fails, proptest shrinks it: it tries simpler and
//! simpler versions against the real target (each one a real, recorded request) and keeps the
//! smallest that still fails, which the fault's own `invalid-input` check then shows.
//!
//! Requests go one at a time, as fast as the target answers: this fault looks for wrong answers,
//! not for capacity. Every draw comes from the run's seed, so a failure reproduces with it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use crate::verdict::{CheckResult, Evidence, Verdict};
use crate::lab::Lab;
use crate::record::{EventKind, Outcome, Phase, Recorder, RequestRecord, Sent, TransportError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidInput {
    /// How many generated requests to send (before any shrinking). Default 200.
    #[serde(default = "default_cases")]
    pub cases: u32,
}

fn default_cases() -> u32 {
    200
}

/// Shrinking stops after this many steps: each is a real request.
const MAX_SHRINK_STEPS: u32 = 200;
/// A generated request that takes longer than this counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// What is generated.

/// One generated request.
#[derive(Debug, Clone, PartialEq)]
pub enum Generated {
    /// `POST /orders` with a generated body and headers.
    Order {
        content_type: Option<String>,
        idempotency_key: Option<String>,
        body: Body,
    },
    /// `GET /products/{id}` with a generated id (percent-encoded into the path).
    Product { id: String },
    /// `GET /orders/{id}` with a generated id.
    OrderById { id: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A JSON object of these members, each value a raw JSON text (so that numbers beyond
    /// what `serde_json` holds can be sent as written).
    Members(Vec<(String, String)>),
    /// Any text, usually not JSON at all.
    Raw(String),
}

impl Body {
    fn text(&self) -> String {
        match self {
            Body::Members(members) => {
                let inner: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", json_string(k)))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
            Body::Raw(text) => text.clone(),
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Everything but RFC 3986's unreserved characters is percent-encoded, so any generated id is a
/// valid path segment (the target decodes it back).
fn path_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Generated {
    fn method(&self) -> &'static str {
        match self {
            Generated::Order { .. } => "POST",
            Generated::Product { .. } | Generated::OrderById { .. } => "GET",
        }
    }

    /// The route template, marked as generated.
    fn route(&self) -> &'static str {
        match self {
            Generated::Order { .. } => "POST /orders (generated)",
            Generated::Product { .. } => "GET /products/{id} (generated)",
            Generated::OrderById { .. } => "GET /orders/{id} (generated)",
        }
    }

    fn path(&self) -> String {
        match self {
            Generated::Order { .. } => "/orders".into(),
            Generated::Product { id } => format!("/products/{}", path_segment(id)),
            Generated::OrderById { id } => format!("/orders/{}", path_segment(id)),
        }
    }

    fn headers(&self) -> BTreeMap<String, String> {
        let mut h = BTreeMap::new();
        if let Generated::Order {
            content_type,
            idempotency_key,
            ..
        } = self
        {
            if let Some(ct) = content_type {
                h.insert("content-type".into(), ct.clone());
            }
            if let Some(k) = idempotency_key {
                h.insert("idempotency-key".into(), k.clone());
            }
        }
        h
    }

    fn body(&self) -> Option<String> {
        match self {
            Generated::Order { body, .. } => Some(body.text()),
            _ => None,
        }
    }

    /// One line for humans: `POST /orders idempotency-key: "" {"quantity":0}`.
    fn show(&self) -> String {
        let mut s = format!("{} {}", self.method(), self.path());
        for (k, v) in self.headers() {
            s.push_str(&format!(" [{k}: {v:?}]"));
        }
        if let Some(b) = self.body() {
            let b: String = b.chars().take(300).collect();
            s.push_str(&format!(" {b}"));
        }
        s
    }
}

/// A JSON number as text: valid, extreme, out of every integer range, fractional, exponent.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (1i64..=20).prop_map(|n| n.to_string()),
        3 => any::<i64>().prop_map(|n| n.to_string()),
        1 => Just("0".to_string()),
        1 => "-?[1-9][0-9]{19,40}",
        1 => "-?[0-9]{1,4}\\.[0-9]{1,4}",
        1 => "[1-9]e[1-9][0-9]{1,3}",
    ]
}

/// A JSON string as text: an email, unicode, control characters, very long.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z]{1,8}@[a-z]{1,8}\\.(com|org)",
        3 => any::<String>().prop_map(|s| s.chars().take(40).collect()),
        1 => "[a-z@ ]{0,12}",
        1 => "[a-z]{240,300}@example\\.com",
        1 => "\\PC{1,20}@\\PC{1,20}",
    ]
    .prop_map(|s: String| json_string(&s))
}

/// Any JSON value as text, valid for the field or not.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => number(),
        3 => string(),
        1 => prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
            Just("[1,2]".to_string()),
        ],
    ]
}

fn member(
    name: &'static str,
    typical: BoxedStrategy<String>,
) -> impl Strategy<Value = Option<(String, String)>> {
    prop_oneof![
        6 => typical.prop_map(move |v| Some((name.to_string(), v))),
        2 => value().prop_map(move |v| Some((name.to_string(), v))),
        1 => Just(None),
    ]
}

fn order_body() -> impl Strategy<Value = Body> {
    let members = (
        member("product_id", number().boxed()),
        member("quantity", number().boxed()),
        member("customer_email", string().boxed()),
        prop::option::weighted(0.1, ("[a-z_]{1,12}", value())),
    )
        .prop_map(|(p, q, e, extra)| {
            Body::Members(p.into_iter().chain(q).chain(e).chain(extra).collect())
        });
    prop_oneof![
        8 => members,
        // Truncated JSON, as a client cut off mid-body sends it.
        1 => (order_body_text(), any::<prop::sample::Index>())
            .prop_map(|(text, cut)| {
                let at = cut.index(text.len().max(1));
                Body::Raw(text.chars().take(at).collect())
            }),
        1 => any::<String>().prop_map(|s| Body::Raw(s.chars().take(60).collect())),
    ]
}

fn order_body_text() -> impl Strategy<Value = String> {
    (number(), number(), string()).prop_map(|(p, q, e)| {
        format!("{{\"product_id\":{p},\"quantity\":{q},\"customer_email\":{e}}}")
    })
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        8 => Just(Some("application/json".to_string())),
        1 => Just(Some("application/json; charset=utf-8".to_string())),
        1 => Just(None),
        1 => Just(Some("text/plain".to_string())),
        1 => "[a-z]{1,10}/[a-z+.-]{1,12}".prop_map(Some),
    ]
}

fn idempotency_key() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => "[0-9a-f]{8}-[0-9a-f]{4}".prop_map(Some),
        2 => Just(None),
        1 => Just(Some(String::new())),
        1 => "[!-~]{1,40}".prop_map(Some),
        1 => "[!-~]{250,300}".prop_map(Some),
    ]
}

fn path_id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (1i64..=20).prop_map(|n| n.to_string()),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "[1-9][0-9]{19,30}",
        1 => "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        2 => any::<String>().prop_map(|s| s.chars().take(30).collect()),
    ]
}

/// Every kind of generated request, orders (the route that takes a body) most often.
pub fn requests() -> impl Strategy<Value = Generated> {
    prop_oneof![
        6 => (content_type(), idempotency_key(), order_body()).prop_map(
            |(content_type, idempotency_key, body)| Generated::Order {
                content_type,
                idempotency_key,
                body,
            }
        ),
        2 => path_id().prop_map(|id| Generated::Product { id }),
        2 => path_id().prop_map(|id| Generated::OrderById { id }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Sending and recording.

/// Sends one request and records it; returns the record.
async fn send(
    client: &reqwest::Client,
    base_url: &str,
    recorder: &Recorder,
    seq: u64,
    request: &Generated,
) -> RequestRecord {
    let at_ms = recorder.now_ms();
    let url = format!("{base_url}{}", request.path());
    let mut builder = match request {
        Generated::Order { .. } => client.post(&url),
        _ => client.get(&url),
    };
    for (k, v) in request.headers() {
        builder = builder.header(k, v);
    }
    if let Some(body) = request.body() {
        builder = builder.body(body);
    }
    let outcome = match builder.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            match response.bytes().await {
                Ok(bytes) => {
                    let body = (status >= 400 || request.method() != "GET").then(|| {
                        let cut = &bytes[..bytes.len().min(crate::load::BODY_LIMIT)];
                        String::from_utf8_lossy(cut).into()
                    });
                    Outcome::Response {
                        status,
                        headers,
                        body,
                    }
                }
                Err(e) => transport(&e),
            }
        }
        Err(e) => transport(&e),
    };
    let record = RequestRecord {
        seq,
        at_ms,
        route: request.route().into(),
        path: request.path().into(),
        sent: Sent::new(request.headers().into(), request.body()),
        latency_ms: recorder.now_ms() - at_ms,
        outcome,
    };
    recorder.with(|r| r.requests.push(record.clone()));
    record
}

fn transport(e: &reqwest::Error) -> Outcome {
    let kind = if e.is_connect() {
        TransportError::Connect
    } else if e.is_timeout() {
        TransportError::Timeout
    } else if e.is_request() || e.is_body() {
        TransportError::Closed
    } else {
        TransportError::Other
    };
    Outcome::Error {
        kind,
        message: e.to_string().into(),
    }
}

/// Why a recorded answer is a failure of the target, if it is.
fn failure(r: &RequestRecord) -> Option<String> {
    match &r.outcome {
        Outcome::Response { status, .. } if *status >= 500 => Some(format!("answered {status}")),
        Outcome::Response { .. } => None,
        Outcome::Error { message, .. } => Some(format!("no answer: {message}")),
    }
}

// ---------------------------------------------------------------------------------------------
// The fault.

/// The generator's run, kept in the lab until the revert.
pub struct Running {
    stop: Arc<AtomicBool>,
    task: tokio::sync::oneshot::Receiver<Verdicts>,
}

/// The generator's thread stack: proptest's value trees and the HTTP client's futures, driven
/// with `block_on` on that thread, outgrow a runtime thread's 2 MiB in a debug build.
const GENERATOR_STACK: usize = 64 << 20;

/// What the run found.
#[derive(Default)]
struct Verdicts {
    sent: u64,
    failed: u64,
    /// The smallest failing request after shrinking, with its recorded answer.
    smallest: Option<(Generated, RequestRecord, u32)>,
    /// Set when the run stopped for another reason than passing or failing.
    aborted: Option<String>,
    /// The run was stopped by the revert before it had sent every case.
    cut_short: bool,
}

impl FaultKind for InvalidInput {
    const HINT: &'static str = "an invalid-input fault takes optionally cases = 200 (how many generated requests)";
    const ORPHAN: &'static str = "nothing to undo: the request generator ended with the run";
    type Held = Running;

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=10_000).contains(&self.cases) {
            return Err((
                "cases",
                format!("cases {} is out of range (1 to 10000)", self.cases),
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("invalid input: {} generated requests", self.cases)
    }

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let seed = lab.seed ^ super::seed_for(&self.describe());
        let mut bytes = [0u8; 32];
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&(seed.rotate_left(i as u32 * 16) ^ i as u64).to_le_bytes());
        }
        let config = Config {
            cases: self.cases,
            max_shrink_iters: MAX_SHRINK_STEPS,
            failure_persistence: None,
            // Each case is a request to a live service: no forking, no per-case timeout beyond
            // the request's own.
            fork: false,
            timeout: 0,
            ..Config::default()
        };
        let runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FaultError::Failed(format!("no HTTP client: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let context = Context {
            client,
            base_url: lab.base_url.clone(),
            recorder: lab.recorder.clone(),
            runtime: tokio::runtime::Handle::current(),
            stop: stop.clone(),
        };
        // proptest's runner is synchronous: it runs on a blocking thread and drives each
        // request on the runtime.
        let (done, task) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("invalid-input".into())
            .stack_size(GENERATOR_STACK)
            .spawn(move || {
                let _ = done.send(context.run(runner));
            })
            .map_err(|e| FaultError::Failed(format!("cannot start the request generator: {e}")))?;
        *held = Some(Running { stop, task });
        Ok(())
    }

    /// Stops generating (what is in flight finishes), then records what was found: an event,
    /// and the `invalid-input` check with the smallest failing request as its evidence.
    async fn revert(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let Some(Running { stop, task }) = held.take() else {
            return Ok(()); // never started
        };
        stop.store(true, Ordering::SeqCst);
        let verdicts = tokio::time::timeout(REQUEST_TIMEOUT + Duration::from_secs(5), task)
            .await
            .map_err(|_| FaultError::Failed("the request generator did not stop".into()))?
            .map_err(|_| FaultError::Failed("the request generator failed".into()))?;
        // The target logs an answer as it sends it; give the last line a moment to arrive.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let check = self.check(lab, &verdicts);
        lab.recorder.event(EventKind::Note, check.summary.clone());
        lab.record_check(check);
        Ok(())
    }
}

impl InvalidInput {
    fn check(&self, lab: &Lab, v: &Verdicts) -> CheckResult {
        let mut summary;
        let mut evidence = Vec::new();
        let verdict = match &v.smallest {
            Some((request, record, steps)) => {
                summary = format!(
                    "{} of {} generated requests failed; the smallest failing one (after {steps} shrink steps): {} {}",
                    v.failed,
                    v.sent,
                    request.show(),
                    failure(record).unwrap_or_default()
                );
                let logs = record
                    .header("x-request-id")
                    .map(|id| {
                        lab.recorder
                            .with(|r| r.logs_for(id).into_iter().cloned().collect())
                    })
                    .unwrap_or_default();
                evidence.push(Evidence::Request {
                    request: Box::new(record.clone()),
                    logs,
                    why: "the smallest generated request that still fails".into(),
                });
                Verdict::Fail
            }
            None if v.aborted.is_some() => {
                summary = format!(
                    "the generator stopped early: {}",
                    v.aborted.as_deref().unwrap_or_default()
                );
                Verdict::Fail
            }
            None => {
                summary = format!(
                    "{} generated requests (malformed JSON, wrong types, extreme numbers, unicode, missing fields, odd headers and ids): none answered 5xx or went unanswered",
                    v.sent
                );
                Verdict::Pass
            }
        };
        if v.cut_short {
            summary.push_str(&format!(
                " (the fault ended after {} of {} cases)",
                v.sent, self.cases
            ));
        }
        CheckResult {
            name: "invalid-input".into(),
            phase: Some(Phase::Fault),
            verdict,
            summary,
            evidence,
        }
    }
}

/// What the blocking thread needs.
struct Context {
    client: reqwest::Client,
    base_url: String,
    recorder: Arc<Recorder>,
    runtime: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
}

impl Context {
    fn run(self, mut runner: TestRunner) -> Verdicts {
        // Interior mutability: proptest takes the test as `Fn`.
        let state = Mutex::new((
            Verdicts::default(),
            Vec::<(Generated, RequestRecord)>::new(),
        ));
        let shrink_steps = std::sync::atomic::AtomicU32::new(0);
        let result = runner.run(&requests(), |request| {
            if self.stop.load(Ordering::SeqCst) {
                if let Ok(mut s) = state.lock() {
                    s.0.cut_short = true;
                }
                return Ok(());
            }
            let seq = state.lock().map(|s| s.0.sent).unwrap_or(0);
            let record = self.runtime.block_on(send(
                &self.client,
                &self.base_url,
                &self.recorder,
                seq,
                &request,
            ));
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            s.0.sent += 1;
            if s.0.failed > 0 {
                shrink_steps.fetch_add(1, Ordering::Relaxed);
            }
            match failure(&record) {
                None => Ok(()),
                Some(why) => {
                    s.0.failed += 1;
                    s.1.push((request, record));
                    Err(TestCaseError::fail(why))
                }
            }
        });
        let (mut verdicts, failures) = state.into_inner().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {}
            Err(TestError::Fail(_, smallest)) => {
                // The record of the smallest failing request: its last send.
                let record = failures
                    .iter()
                    .rev()
                    .find(|(r, _)| *r == smallest)
                    .map(|(_, rec)| rec.clone());
                if let Some(record) = record {
                    verdicts.smallest =
                        Some((smallest, record, shrink_steps.load(Ordering::Relaxed)));
                }
            }
            Err(TestError::Abort(why)) => verdicts.aborted = Some(why.to_string()),
        }
        verdicts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;

    #[test]
    fn the_same_seed_generates_the_same_requests() {
        let draw = |seed: u8| {
            let mut runner = TestRunner::new_with_rng(
                Config::default(),
                TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
            );
            (0..20)
                .map(|_| requests().new_tree(&mut runner).unwrap().current())
                .collect::<Vec<_>>()
        };
        // On a stack as large as the fault's own generator thread has.
        std::thread::Builder::new()
            .stack_size(GENERATOR_STACK)
            .spawn(move || {
                assert_eq!(draw(1), draw(1));
                assert_ne!(draw(1), draw(2));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn bodies_and_paths_are_sent_as_generated() {
        let order = Generated::Order {
            content_type: Some("application/json".into()),
            idempotency_key: None,
            body: Body::Members(vec![
                ("quantity".into(), "123456789012345678901234567890".into()),
                ("customer_email".into(), json_string("é\"@x")),
            ]),
        };
        assert_eq!(
            order.body().unwrap(),
            r#"{"quantity":123456789012345678901234567890,"customer_email":"é\"@x"}"#
        );
        let product = Generated::Product { id: "a/b c".into() };
        assert_eq!(product.path(), "/products/a%2Fb%20c");
        assert!(product.show().starts_with("GET /products/"));
    }
}

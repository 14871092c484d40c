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
//! `GET /items/{id}` with generators for its placeholders, an optional JSON body template and
//! an optional `Idempotency-Key`. A scenario can write just `{ weight = 8, request = "GET
//! /items/{id}" }` for a request its lab file describes ([`MixEntry::resolved`]). Every random
//! choice comes from one ChaCha generator seeded by [`LoadPlan::seed`], drawn in sequence order
//! before the request is due, so the same seed sends the same requests (one documented
//! exception: `captured` values, picked among what the service has answered so far).
//!
//! # Client
//!
//! A minimal HTTP/1.1 client over keep-alive connections (`load/wire.rs`), one task per
//! connection, and a scheduler that paces requests to within microseconds (`load/pace.rs`).
//! hyper's pooled client with a task per request was the first version; it topped out at a
//!
//! # Files
//!
//! `plan.rs` holds what a scenario writes (the plan and its mix); `compile.rs` checks it and
//! compiles each request template; `draw.rs` draws the request sequence from the seed;
//! `progress.rs` and `sink.rs` hold what a load reports; `engine.rs` sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod compile;
mod draw;
mod engine;
mod pace;
mod plan;
mod progress;
mod sink;
#[cfg(test)]
mod tests;
mod wire;

use compile::{Compiled, Entry};
use draw::{CapturedPools, Drawn, Sequence};
pub use plan::{LoadError, LoadPlan, MixEntry, Param, PlannedRequest, request_line};
use progress::Counters;
pub use progress::{LoadOutcome, Progress};
pub use sink::{LoadSummary, RecordSink};
use sink::{Sink, Tally};
pub(crate) use wire::frames_answers;

/// Response bodies are kept up to this size (see [`Outcome::Response`](crate::record::Outcome::Response)).
pub const BODY_LIMIT: usize = 16 * 1024;

impl LoadPlan {
    /// The first `n` requests this plan sends, without sending anything: what `seq` 0..n will
    /// be. (`captured` values show as random ids here.)
    pub fn preview(&self, n: u64) -> Result<Vec<PlannedRequest>, LoadError> {
        let plan = Compiled::new(self)?;
        let mut sequence = Sequence::new(&plan);
        let orders = CapturedPools::default();
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

// ---------------------------------------------------------------------------------------------
// Sending: see `load/engine.rs`.

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

//! Where a load's results go: the caller's [`RecordSink`] for a full [`RequestRecord`] per
//! request, or a [`Tally`] of counts and latency histograms that [`LoadSummary`] is read from
//! (`run_summary`, for benchmarks).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use super::progress::LoadOutcome;
use crate::record::{Outcome, RequestRecord, TransportError};

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

/// What [`run_summary`](super::run_summary) reports.
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

/// Where the engine puts what it learns of each request.
pub(super) enum Sink {
    /// A full [`RequestRecord`] each, for the caller's [`RecordSink`].
    Records(Box<dyn RecordSink>),
    /// Counts and a histogram only ([`run_summary`](super::run_summary)): no record is built, and of an answer only
    /// its status is read, so what is measured is the generator, not its bookkeeping.
    Tally(Arc<Mutex<Tally>>),
}

pub(super) struct Tally {
    pub(super) statuses: BTreeMap<u16, u64>,
    pub(super) transport_errors: BTreeMap<String, u64>,
    pub(super) latency_us: hdrhistogram::Histogram<u64>,
    /// From the request's first write to the answer's last byte (as wrk times), for answered
    /// requests; `latency_us` runs from the due time.
    pub(super) exchange_us: hdrhistogram::Histogram<u64>,
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
    pub(super) fn add(&mut self, outcome: &Outcome, latency: Duration, exchange: Option<Duration>) {
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

//! How far a load has got: the live counters the engine bumps ([`Counters`]), the snapshot
//! callers read ([`Progress`]), and how the load ended ([`LoadOutcome`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

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
    /// Not sent because [`LoadPlan::max_in_flight`](super::LoadPlan::max_in_flight) requests were in flight (also counted in
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
pub(super) struct Counters {
    pub(super) sent: AtomicU64,
    pub(super) completed: AtomicU64,
    pub(super) client_errors: AtomicU64,
    pub(super) server_errors: AtomicU64,
    pub(super) transport_errors: AtomicU64,
    pub(super) over_cap: AtomicU64,
    pub(super) in_flight: AtomicU64,
    pub(super) connections: AtomicU64,
    /// How late a request task started, after its due time: the generator's own delay.
    pub(super) max_lag_us: AtomicU64,
    pub(super) total_lag_us: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> Progress {
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

//! What a run records: every request the load generator sent, every sample of the target's health
//! endpoints and metrics, every log line, every fault event. Checks and reports read only this.
//!
//! Times are offsets from the start of the run (`at_ms`), so a recording is independent of the
//! wall clock and two runs with the same seed line up.
//!
//! This file holds the recording and its recorder, and the small records (probes, metrics
//! samples, log lines, events); `request.rs` the request records, with `route.rs` and
//! `headers.rs` the compact values they hold; `prometheus.rs` reading metrics scrapes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod headers;
mod prometheus;
mod request;
mod route;

pub use headers::Headers;
pub use prometheus::{SeriesSelector, parse_prometheus_text, parse_series_selector};
pub use request::{Outcome, RecordDetail, RequestRecord, Sent, TransportError};
pub use route::Route;

/// The event of a planned exit carries this, for [`crate::checks::no_restart`].
pub const PLANNED_EXIT: &str = "(planned by the crash fault)";

/// The phase of a scenario a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Steady,
    Fault,
    Recovery,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Steady, Phase::Fault, Phase::Recovery];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Steady => "steady",
            Phase::Fault => "fault",
            Phase::Recovery => "recovery",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One poll of a health endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub at_ms: f64,
    /// `livez` or `readyz`.
    pub endpoint: String,
    /// `None` when the endpoint did not answer at all.
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// One scrape of the target's `/metrics`, reduced to the samples checks care about:
/// `name{label="v",...}` (labels sorted) to value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSample {
    pub at_ms: f64,
    pub values: BTreeMap<String, f64>,
}

/// One line the target wrote to stdout or stderr.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    pub at_ms: f64,
    /// The parsed JSON object, or `None` when the line was not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    pub line: String,
}

impl LogRecord {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.json.as_ref()?.get(name)?.as_str()
    }
}

/// Something the controller did or saw that belongs on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: f64,
    pub kind: EventKind,
    /// What happened, for humans: `inject db proxy: down`.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    PhaseStart,
    Inject,
    Revert,
    TargetStart,
    TargetExit,
    AlertFiring,
    AlertResolved,
    Note,
}

/// Everything recorded in one scenario run. Checks and reports read only this.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recording {
    pub requests: Vec<RequestRecord>,
    pub probes: Vec<ProbeRecord>,
    pub metrics: Vec<MetricsSample>,
    pub logs: Vec<LogRecord>,
    pub events: Vec<Event>,
    /// When each phase started and ended (ms from the start of the run).
    pub phases: BTreeMap<Phase, (f64, f64)>,
    /// Every notification Alertmanager sent the lab's webhook.
    #[serde(default)]
    pub alerts: Vec<crate::monitoring::AlertNotification>,
    /// For each alert rule, how long it takes to fire in production (its `for` plus its
    /// shortest window), in seconds: the lab runs the same rules on a faster clock.
    #[serde(default)]
    pub production_detection_s: BTreeMap<String, f64>,
    /// Where the service puts each request's id: the answer header the load noted on every
    /// answer, and the field of its log lines. Reports written before it was recorded read as
    /// target-app's (`x-request-id`, `request_id`).
    #[serde(default)]
    pub request_ids: RequestIds,
}

/// Where a service puts the id of each request: a response header (its lower-case name, the
/// one records keep it under), and a field of its JSON log lines; and the field that gives a
/// line's level (an error must be logged at ERROR or WARN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestIds {
    pub header: String,
    pub field: String,
    #[serde(default = "level_field")]
    pub level: String,
}

fn level_field() -> String {
    "level".into()
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds {
            header: "x-request-id".into(),
            field: "request_id".into(),
            level: level_field(),
        }
    }
}

impl Recording {
    /// The phase a moment belongs to; moments before steady count as steady, after recovery as
    /// recovery.
    pub fn phase_at(&self, at_ms: f64) -> Phase {
        for (p, (start, end)) in &self.phases {
            if at_ms >= *start && at_ms < *end {
                return *p;
            }
        }
        match self.phases.get(&Phase::Steady) {
            Some((start, _)) if at_ms < *start => Phase::Steady,
            _ => Phase::Recovery,
        }
    }

    /// The phase a request belongs to: the fault phase if any part of its life (from its send
    /// time to its answer) overlapped the fault window, since it was exposed to the fault;
    /// otherwise the phase it was sent in. A request sent a moment before the injection and
    /// failed by it is not a steady-state failure, and a request that hung through the fault
    /// and was answered after the revert still counts against the fault.
    pub fn request_phase(&self, r: &RequestRecord) -> Phase {
        if let Some((start, end)) = self.phases.get(&Phase::Fault)
            && r.at_ms < *end
            && r.at_ms + r.latency_ms > *start
        {
            return Phase::Fault;
        }
        self.phase_at(r.at_ms)
    }

    pub fn requests_in(&self, phase: Phase) -> impl Iterator<Item = &RequestRecord> {
        self.requests
            .iter()
            .filter(move |r| self.request_phase(r) == phase)
    }

    /// The request id the service gave `r`, in the header [`Recording::request_ids`] names,
    /// where the answer's headers were kept.
    pub fn request_id<'a>(&self, r: &'a RequestRecord) -> Option<&'a str> {
        r.header(&self.request_ids.header)
    }

    /// Whether the service answered `r` with a non-empty request id (also known of answers
    /// whose headers were not kept: the load notes it on every answer).
    pub fn carries_request_id(&self, r: &RequestRecord) -> bool {
        r.carries_request_id(&self.request_ids.header)
    }

    /// The log lines carrying `request_id` in the service's request-id field.
    pub fn logs_for(&self, request_id: &str) -> Vec<&LogRecord> {
        self.logs_with(&self.request_ids.field, request_id)
    }

    /// The log lines whose `field` is `request_id`.
    pub fn logs_with(&self, field: &str, request_id: &str) -> Vec<&LogRecord> {
        self.logs
            .iter()
            .filter(|l| l.field(field) == Some(request_id))
            .collect()
    }
}

/// A thread-safe collector the lab's tasks write into while a run is under way.
#[derive(Debug)]
pub struct Recorder {
    pub start: std::time::Instant,
    inner: std::sync::Mutex<Recording>,
}

impl Recorder {
    pub fn new(start: std::time::Instant) -> Self {
        Self {
            start,
            inner: std::sync::Mutex::new(Recording::default()),
        }
    }

    /// Milliseconds since the start of the run.
    pub fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut Recording) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    pub fn event(&self, kind: EventKind, detail: impl Into<String>) {
        let at_ms = self.now_ms();
        let detail = detail.into();
        self.with(|r| {
            r.events.push(Event {
                at_ms,
                kind,
                detail,
            })
        });
    }

    pub fn log_line(&self, line: String) {
        let at_ms = self.now_ms();
        let json = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .filter(|v| v.is_object());
        self.with(|r| r.logs.push(LogRecord { at_ms, json, line }));
    }

    /// A copy of everything so far.
    pub fn snapshot(&self) -> Recording {
        self.with(|r| r.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_exposed_to_the_fault_belongs_to_the_fault_phase() {
        let mut rec = Recording::default();
        rec.phases.insert(Phase::Steady, (0.0, 1000.0));
        rec.phases.insert(Phase::Fault, (1000.0, 2000.0));
        rec.phases.insert(Phase::Recovery, (2000.0, 3000.0));
        let req = |at_ms: f64, latency_ms: f64| RequestRecord {
            seq: 0,
            at_ms,
            route: "GET /products".into(),
            path: "/products".into(),
            sent: None,
            latency_ms,
            outcome: Outcome::Error {
                kind: TransportError::Timeout,
                message: "".into(),
            },
        };
        assert_eq!(rec.request_phase(&req(500.0, 10.0)), Phase::Steady);
        assert_eq!(
            rec.request_phase(&req(995.0, 10.0)),
            Phase::Fault,
            "answered after the injection"
        );
        assert_eq!(
            rec.request_phase(&req(1500.0, 5000.0)),
            Phase::Fault,
            "hung past the revert"
        );
        assert_eq!(rec.request_phase(&req(2001.0, 10.0)), Phase::Recovery);
    }

    #[test]
    fn prometheus_text_keys_have_sorted_labels() {
        let text = "# HELP x y\n# TYPE app_x counter\napp_x{b=\"2\",a=\"1,1\"} 3\nplain 4.5\nbad\n";
        let v = parse_prometheus_text(text);
        assert_eq!(v.get("app_x{a=\"1,1\",b=\"2\"}"), Some(&3.0));
        assert_eq!(v.get("plain"), Some(&4.5));
        assert_eq!(v.len(), 2);
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn a_request_record_stays_small() {
        // A successful read costs this much plus its path (one small allocation): a long run
        // at thousands of requests a second keeps one of these per request.
        let size = std::mem::size_of::<RequestRecord>();
        assert!(size <= 112, "{size} bytes");
    }
}

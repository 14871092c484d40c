//! What a run records: every request the load generator sent, every sample of the target's health
//! endpoints and metrics, every log line, every fault event. Checks and reports read only this.
//!
//! Times are offsets from the start of the run (`at_ms`), so a recording is independent of the
//! wall clock and two runs with the same seed line up.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// One request the load generator sent, and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Position in the load sequence (0-based); the same seed gives the same sequence.
    pub seq: u64,
    /// When it was due to be sent, from the start of the run. Open-loop: independent of how
    /// fast earlier requests were answered.
    pub at_ms: f64,
    /// The route template, e.g. `GET /products/{id}`; what checks and reports group by.
    pub route: String,
    pub method: String,
    /// The concrete path, e.g. `/products/3`.
    pub path: String,
    /// Request headers the generator set beyond the defaults (e.g. `idempotency-key`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub request_headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// Time from the due send time to the end of the response body (or the error).
    pub latency_ms: f64,
    pub outcome: Outcome,
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// The target answered.
    Response {
        status: u16,
        /// Response headers, lower-case names. All of them are kept: there are few.
        headers: BTreeMap<String, String>,
        /// The body of every response with status >= 400, and of 2xx responses to writes
        /// (the integrity check needs the order ids). Cut at 16 KiB.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    /// No HTTP response: connection refused or reset, or the client's own deadline passed.
    Error {
        kind: TransportError,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportError {
    /// Could not connect.
    Connect,
    /// The connection was closed or reset before a full response arrived.
    Closed,
    /// No response within the client deadline.
    Timeout,
    Other,
}

impl RequestRecord {
    pub fn status(&self) -> Option<u16> {
        match &self.outcome {
            Outcome::Response { status, .. } => Some(*status),
            Outcome::Error { .. } => None,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        match &self.outcome {
            Outcome::Response { headers, .. } => headers.get(name).map(String::as_str),
            Outcome::Error { .. } => None,
        }
    }

    pub fn body(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Response { body, .. } => body.as_deref(),
            Outcome::Error { .. } => None,
        }
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

    /// The log lines carrying `request_id`.
    pub fn logs_for(&self, request_id: &str) -> Vec<&LogRecord> {
        self.logs
            .iter()
            .filter(|l| l.field("request_id") == Some(request_id))
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

/// Parses Prometheus text exposition into `series -> value`. Comments and malformed lines are
/// skipped; a series key is the metric name followed by its labels sorted by name.
pub fn parse_prometheus_text(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, rest) = match line.find('{') {
            Some(open) => match line[open..].find('}') {
                Some(close) => {
                    let close = open + close;
                    let name = &line[..open];
                    let mut labels: Vec<&str> = split_labels(&line[open + 1..close]);
                    labels.sort_unstable();
                    (
                        format!("{name}{{{}}}", labels.join(",")),
                        &line[close + 1..],
                    )
                }
                None => continue,
            },
            None => match line.split_once(' ') {
                Some((name, rest)) => (name.to_string(), rest),
                None => continue,
            },
        };
        let value = rest.split_whitespace().next().and_then(|v| match v {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            v => v.parse::<f64>().ok(),
        });
        if let Some(v) = value {
            out.insert(series, v);
        }
    }
    out
}

/// Splits `a="x",b="y,z"` at the commas between labels (not those inside quoted values).
fn split_labels(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut in_quotes, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                if i > start {
                    parts.push(s[start..i].trim());
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() && !s[start..].trim().is_empty() {
        parts.push(s[start..].trim());
    }
    parts
}

/// A series selector: a metric name and label equalities that must all hold.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSelector {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

/// Parses `name` or `name{a="b",c="d"}`.
pub fn parse_series_selector(s: &str) -> Option<SeriesSelector> {
    let s = s.trim();
    let (name, labels) = match s.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}')?),
        None => (s, ""),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return None;
    }
    let mut out = Vec::new();
    for part in labels.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=')?;
        let v = v.trim().strip_prefix('"')?.strip_suffix('"')?;
        out.push((k.trim().to_string(), v.to_string()));
    }
    Some(SeriesSelector {
        name: name.to_string(),
        labels: out,
    })
}

impl SeriesSelector {
    /// Whether a series key from [`crate::record::parse_prometheus_text`] matches.
    pub fn matches(&self, key: &str) -> bool {
        let (name, labels) = match key.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (key, ""),
        };
        name == self.name
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
    }

    /// The sum of every matching series in a sample.
    pub fn sum(&self, values: &BTreeMap<String, f64>) -> f64 {
        values
            .iter()
            .filter(|(k, _)| self.matches(k))
            .map(|(_, v)| *v)
            .sum()
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
            method: "GET".into(),
            path: "/products".into(),
            request_headers: BTreeMap::new(),
            request_body: None,
            latency_ms,
            outcome: Outcome::Error {
                kind: TransportError::Timeout,
                message: String::new(),
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

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
///
/// A run keeps one of these per request, at thousands a second through a long game day, so the
/// shape is kept small (about 130 bytes for a successful read): the route is shared with every
/// other request of its route, headers and bodies are held only where a check reads them (see
/// [`RecordDetail`]), and an empty header set costs one pointer. The JSON form is unchanged by
/// this: `route`, `method`, `path`, `request_headers`, `request_body`, `latency_ms`, `outcome`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "RequestRecordJson", from = "RequestRecordJson")]
pub struct RequestRecord {
    /// Position in the load sequence (0-based); the same seed gives the same sequence.
    pub seq: u64,
    /// When it was due to be sent, from the start of the run. Open-loop: independent of how
    /// fast earlier requests were answered.
    pub at_ms: f64,
    /// The route template with its method, e.g. `GET /products/{id}`; what checks and reports
    /// group by. Shared by every request of the route.
    pub route: Route,
    /// The concrete path, e.g. `/products/3`: up to 24 bytes kept inline, without an
    /// allocation.
    pub path: compact_str::CompactString,
    /// What was sent beyond the request line: kept for errors (see [`RecordDetail`]); read it
    /// through [`RequestRecord::request_headers`] and [`RequestRecord::request_body`].
    pub sent: Option<Box<Sent>>,
    /// Time from the due send time to the end of the response body (or the error).
    pub latency_ms: f64,
    pub outcome: Outcome,
}

/// What a request carried beyond its line: the headers the generator set beyond the defaults
/// (e.g. `idempotency-key`) and the body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sent {
    pub headers: Headers,
    pub body: Option<Box<str>>,
}

impl Sent {
    /// `None` when there is nothing to keep.
    pub fn new(headers: Headers, body: Option<String>) -> Option<Box<Sent>> {
        (!headers.is_empty() || body.is_some()).then(|| {
            Box::new(Sent {
                headers,
                body: body.map(String::into_boxed_str),
            })
        })
    }
}

/// How much of each request the load generator keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordDetail {
    /// What checks read: every request's route, path, timing and status; the request headers
    /// and body, the response headers and body of every error (a status >= 400, or no answer);
    /// the body of a write's 2xx answer (the integrity check reads the order ids).
    #[default]
    Checked,
    /// Every header and body of every request, as sent and as answered.
    Everything,
}

/// A route template with its method, `GET /products/{id}`: one allocation shared by every
/// request of the route (cloning it counts a reference).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route(std::sync::Arc<str>);

impl Route {
    pub fn new(line: &str) -> Route {
        Route(line.into())
    }

    /// The whole template, `GET /products/{id}`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The method, the template's first word.
    pub fn method(&self) -> &str {
        self.0.split(' ').next().unwrap_or("")
    }
}

impl std::ops::Deref for Route {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Route {
    fn from(line: &str) -> Route {
        Route::new(line)
    }
}

impl From<String> for Route {
    fn from(line: String) -> Route {
        Route(line.into())
    }
}

impl PartialEq<str> for Route {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Route {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Route {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Route {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Route {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Route, D::Error> {
        String::deserialize(d).map(Route::from)
    }
}

/// Header names (lower case) and values. Most records keep none, so the empty set is one null
/// pointer and a set is allocated only when it holds something. A success's headers are not
/// kept, but whether it carried an `x-request-id` is (the request-id check reads that of every
/// answer): that is one shared set, counted, not allocated per record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Option<std::sync::Arc<HeaderSet>>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct HeaderSet {
    map: BTreeMap<String, String>,
    /// A non-empty `x-request-id` came with the answer, whether or not it is in `map`.
    request_id_seen: bool,
}

/// The headers of every success that carried an `x-request-id` and kept no header.
static REQUEST_ID_SEEN: std::sync::LazyLock<std::sync::Arc<HeaderSet>> =
    std::sync::LazyLock::new(|| {
        std::sync::Arc::new(HeaderSet {
            map: BTreeMap::new(),
            request_id_seen: true,
        })
    });

impl Headers {
    /// These headers, noting whether a non-empty `x-request-id` came with them.
    pub fn with_request_id_seen(mut self, seen: bool) -> Headers {
        match (&mut self.0, seen) {
            (None, true) => self.0 = Some(REQUEST_ID_SEEN.clone()),
            (None, false) => {}
            (Some(set), seen) => std::sync::Arc::make_mut(set).request_id_seen = seen,
        }
        self
    }

    /// Whether a non-empty `x-request-id` came with the answer (kept or not).
    pub fn has_request_id(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.request_id_seen)
            || self
                .get("x-request-id")
                .is_some_and(|v| !v.trim().is_empty())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.as_ref()?.map.get(name).map(String::as_str)
    }

    pub fn insert(&mut self, name: String, value: String) {
        let set = self.0.get_or_insert_default();
        std::sync::Arc::make_mut(set).map.insert(name, value);
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let set = std::sync::Arc::make_mut(self.0.as_mut()?);
        let removed = set.map.remove(name);
        if name == "x-request-id" {
            set.request_id_seen = false;
        }
        if set.map.is_empty() && !set.request_id_seen {
            self.0 = None;
        }
        removed
    }

    /// Whether no header is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.map.len())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().flat_map(|s| s.map.iter())
    }
}

impl From<BTreeMap<String, String>> for Headers {
    fn from(map: BTreeMap<String, String>) -> Headers {
        Headers((!map.is_empty()).then(|| {
            std::sync::Arc::new(HeaderSet {
                map,
                request_id_seen: false,
            })
        }))
    }
}

impl FromIterator<(String, String)> for Headers {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Headers {
        Headers::from(iter.into_iter().collect::<BTreeMap<_, _>>())
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a String, &'a String);
    type IntoIter = Box<dyn Iterator<Item = (&'a String, &'a String)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl std::ops::Index<&str> for Headers {
    type Output = str;
    /// Panics when the header is missing, like a map's index.
    fn index(&self, name: &str) -> &str {
        self.get(name)
            .unwrap_or_else(|| panic!("no header {name:?}"))
    }
}

impl Serialize for Headers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Headers, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(Headers::from)
    }
}

/// A request record as it is written in report.json (its shape before records were made
/// compact; readers of the JSON did not have to change).
#[derive(Serialize, Deserialize)]
struct RequestRecordJson {
    seq: u64,
    at_ms: f64,
    route: Route,
    method: String,
    path: compact_str::CompactString,
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    request_headers: Headers,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_body: Option<Box<str>>,
    latency_ms: f64,
    outcome: Outcome,
}

impl From<RequestRecord> for RequestRecordJson {
    fn from(r: RequestRecord) -> Self {
        RequestRecordJson {
            seq: r.seq,
            at_ms: r.at_ms,
            method: r.route.method().to_string(),
            route: r.route,
            path: r.path,
            request_headers: r
                .sent
                .as_ref()
                .map(|s| s.headers.clone())
                .unwrap_or_default(),
            request_body: r.sent.and_then(|s| s.body),
            latency_ms: r.latency_ms,
            outcome: r.outcome,
        }
    }
}

impl From<RequestRecordJson> for RequestRecord {
    fn from(r: RequestRecordJson) -> Self {
        RequestRecord {
            seq: r.seq,
            at_ms: r.at_ms,
            route: r.route,
            path: r.path,
            sent: Sent::new(r.request_headers, r.request_body.map(String::from)),
            latency_ms: r.latency_ms,
            outcome: r.outcome,
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Outcome {
    /// The target answered.
    Response {
        status: u16,
        /// Response headers, lower-case names: all of them for an error (they are its
        /// evidence), none for a success unless [`RecordDetail::Everything`] was asked for.
        #[serde(default)]
        headers: Headers,
        /// The body of every response with status >= 400, and of 2xx responses to writes
        /// (the integrity check needs the order ids). Cut at 16 KiB.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Box<str>>,
    },
    /// No HTTP response: connection refused or reset, or the client's own deadline passed.
    Error {
        kind: TransportError,
        message: Box<str>,
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

impl Outcome {
    /// Whether this is an error: a status >= 400, or no answer at all.
    pub fn is_error(&self) -> bool {
        match self {
            Outcome::Response { status, .. } => *status >= 400,
            Outcome::Error { .. } => true,
        }
    }
}

impl RequestRecord {
    /// The headers the generator set beyond the defaults, where kept.
    pub fn request_headers(&self) -> &Headers {
        static NONE: Headers = Headers(None);
        self.sent.as_ref().map_or(&NONE, |s| &s.headers)
    }

    /// The request's body, where kept.
    pub fn request_body(&self) -> Option<&str> {
        self.sent.as_ref()?.body.as_deref()
    }

    /// The method, `GET`: the route template's first word.
    pub fn method(&self) -> &str {
        self.route.method()
    }

    pub fn status(&self) -> Option<u16> {
        match &self.outcome {
            Outcome::Response { status, .. } => Some(*status),
            Outcome::Error { .. } => None,
        }
    }

    /// Whether the target answered with a non-empty `x-request-id` (also known of answers whose
    /// headers were not kept).
    pub fn carries_request_id(&self) -> bool {
        match &self.outcome {
            Outcome::Response { headers, .. } => headers.has_request_id(),
            Outcome::Error { .. } => false,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        match &self.outcome {
            Outcome::Response { headers, .. } => headers.get(name),
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

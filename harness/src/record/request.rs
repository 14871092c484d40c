//! [`RequestRecord`]: one request the load generator sent and how it ended, kept compact in
//! memory and written to report.json in the shape readers of the JSON know.

use serde::{Deserialize, Serialize};

use super::{Headers, Route};

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
        static NONE: Headers = Headers::NONE;
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

    /// Whether the target answered with a non-empty request id in `header` (a lower-case name;
    /// also known of answers whose headers were not kept: the load notes the header of its
    /// plan on every answer). [`crate::record::Recording::carries_request_id`] asks with the
    /// header its service uses.
    pub fn carries_request_id(&self, header: &str) -> bool {
        match &self.outcome {
            Outcome::Response { headers, .. } => headers.has_request_id(header),
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

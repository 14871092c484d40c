//! What `report.json` keeps of a run's recording. By default: error requests whole (the first
//! [`ERRORS_KEPT`] of each route, phase and outcome: the evidence a reader follows) and, for
//! every request, a summary per second, route and phase (counts by status, latency
//! percentiles), which is what a reader of a passing run looks at; the log lines of the kept
//! errors and the other warnings and errors; the metric samples as changes. `--record all`
//! keeps everything instead, as the run recorded it.
//!
//! A catalogue run sends tens of thousands of requests; kept whole they made report.json some
//! 30 MB, too much for a CI system to keep without thinking. The summary is what the HTML page
//! draws its timeline from, so the page and the JSON tell the same story.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::{
    LogRecord, MetricsSample, Outcome, Phase, ProbeRecord, Recording, RequestRecord, Route,
};

/// Which requests report.json keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KeepRequests {
    /// The errors in full (a status >= 400, or no answer), and a per-second summary of all.
    #[default]
    Errors,
    /// Every request, as recorded.
    All,
}

/// Error requests kept whole per route, phase and outcome (`503`, `timeout`): the first ones.
/// The summary counts all of them.
pub const ERRORS_KEPT: usize = 20;
/// Log lines without a request id kept, of each kind (warnings and errors; lines that are not
/// JSON, such as a panic's backtrace).
const OTHER_LOG_LINES: usize = 100;
/// Longest log line kept; a panic's line carries its whole backtrace.
const LOG_LINE_LIMIT: usize = 2048;

/// The requests of one run, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestDigest {
    /// How many requests the run sent. `recording.requests` next to this holds only errors.
    pub total: u64,
    /// How many of them were errors, and how many of those are kept whole.
    pub errors: u64,
    pub errors_kept: u64,
    /// How many log lines the run recorded, and how many are kept.
    pub logs: u64,
    pub logs_kept: u64,
    /// One row per second of the run (from its start), route and phase, in that order.
    pub seconds: Vec<SecondSummary>,
}

/// The requests of one route sent during one second of one phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondSummary {
    /// Seconds from the start of the run: requests sent in `[second, second + 1)`.
    pub second: u32,
    pub route: Route,
    pub phase: Phase,
    pub count: u32,
    /// Answers by status (`"200"`), and requests without one by why (`"timeout"`, `"closed"`,
    /// `"connect"`, `"other"`).
    pub outcomes: BTreeMap<String, u32>,
    /// Latency from the due send time, milliseconds (nearest rank).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// One row being summed: its route, its latencies, its outcomes counted.
type Bucket = (Route, Vec<f64>, BTreeMap<String, u32>);

/// The summary of `recording`'s requests.
pub fn digest(recording: &Recording) -> RequestDigest {
    let mut buckets: BTreeMap<(u32, &str, Phase), Bucket> = BTreeMap::new();
    for r in &recording.requests {
        let second = (r.at_ms.max(0.0) / 1000.0) as u32;
        let phase = recording.request_phase(r);
        let (_, latencies, outcomes) = buckets
            .entry((second, r.route.as_str(), phase))
            .or_insert_with(|| (r.route.clone(), Vec::new(), BTreeMap::new()));
        latencies.push(r.latency_ms);
        *outcomes.entry(outcome_key(r)).or_default() += 1;
    }
    let seconds = buckets
        .into_iter()
        .map(|((second, _, phase), (route, mut latencies, outcomes))| {
            latencies.sort_by(f64::total_cmp);
            SecondSummary {
                second,
                route,
                phase,
                count: latencies.len() as u32,
                outcomes,
                p50_ms: rounded(rank(&latencies, 0.50)),
                p99_ms: rounded(rank(&latencies, 0.99)),
                max_ms: rounded(latencies.last().copied().unwrap_or(0.0)),
            }
        })
        .collect();
    let thinned = thin(recording, KeepRequests::Errors);
    RequestDigest {
        total: recording.requests.len() as u64,
        errors: recording
            .requests
            .iter()
            .filter(|r| r.outcome.is_error())
            .count() as u64,
        errors_kept: thinned.requests.len() as u64,
        logs: recording.logs.len() as u64,
        logs_kept: thinned.logs.len() as u64,
        seconds,
    }
}

/// `recording` as report.json keeps it (see the module's text); with [`KeepRequests::All`],
/// all of it.
pub fn thin(recording: &Recording, keep: KeepRequests) -> Recording {
    if keep == KeepRequests::All {
        return recording.clone();
    }
    let mut per_kind: BTreeMap<(&str, Phase, String), usize> = BTreeMap::new();
    let requests: Vec<RequestRecord> = recording
        .requests
        .iter()
        .filter(|r| r.outcome.is_error())
        .filter(|r| {
            let n = per_kind
                .entry((r.route.as_str(), recording.request_phase(r), outcome_key(r)))
                .or_default();
            *n += 1;
            *n <= ERRORS_KEPT
        })
        .cloned()
        .collect();
    let ids: std::collections::HashSet<&str> = requests
        .iter()
        .filter_map(|r| recording.request_id(r))
        .collect();
    let field = recording.request_ids.field.as_str();
    let (mut warnings, mut other) = (0, 0);
    let logs = recording
        .logs
        .iter()
        .filter(|l| match &l.json {
            Some(_) if l.field(field).is_some() => {
                l.field(field).is_some_and(|id| ids.contains(id))
            }
            Some(_) => {
                let loud = matches!(l.field("level"), Some("WARN" | "ERROR"));
                warnings += usize::from(loud);
                loud && warnings <= OTHER_LOG_LINES
            }
            None => {
                other += 1;
                other <= OTHER_LOG_LINES
            }
        })
        .map(|l| LogRecord {
            at_ms: tenth(l.at_ms),
            // The line is the record; its parsed form is only a copy of it.
            json: None,
            line: cut(&l.line),
        })
        .collect();
    Recording {
        requests,
        probes: recording
            .probes
            .iter()
            .map(|p| ProbeRecord {
                at_ms: tenth(p.at_ms),
                // A passing probe's body says "pass"; a failing one's says why.
                body: p.body.clone().filter(|_| p.status != Some(200)),
                ..p.clone()
            })
            .collect(),
        metrics: changes(&recording.metrics),
        logs,
        events: recording.events.clone(),
        phases: recording.phases.clone(),
        alerts: recording.alerts.clone(),
        production_detection_s: recording.production_detection_s.clone(),
        request_ids: recording.request_ids.clone(),
    }
}

/// Metric samples as changes: the first sample whole, each later one with the series whose
/// value differs from the sample before it. Histogram internals (`_bucket`, `_sum`) are left
/// out: they change with every request, and the request summary has the latencies.
fn changes(samples: &[MetricsSample]) -> Vec<MetricsSample> {
    let internal = |series: &str| {
        let name = series.split('{').next().unwrap_or(series);
        name.ends_with("_bucket") || name.ends_with("_sum")
    };
    let mut before: Option<&BTreeMap<String, f64>> = None;
    samples
        .iter()
        .map(|s| {
            let values = s
                .values
                .iter()
                .filter(|(k, v)| !internal(k) && before.is_none_or(|b| b.get(*k) != Some(*v)))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            before = Some(&s.values);
            MetricsSample {
                at_ms: tenth(s.at_ms),
                values,
            }
        })
        .collect()
}

/// A log line cut at [`LOG_LINE_LIMIT`] bytes, saying how much was cut.
fn cut(line: &str) -> String {
    if line.len() <= LOG_LINE_LIMIT {
        return line.to_string();
    }
    let mut end = LOG_LINE_LIMIT;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &line[..end], line.len() - end)
}

fn outcome_key(r: &RequestRecord) -> String {
    match &r.outcome {
        Outcome::Response { status, .. } => status.to_string(),
        Outcome::Error { kind, .. } => match kind {
            crate::record::TransportError::Connect => "connect",
            crate::record::TransportError::Closed => "closed",
            crate::record::TransportError::Timeout => "timeout",
            crate::record::TransportError::Other => "other",
        }
        .to_string(),
    }
}

/// Tenths of a millisecond: the samples are taken every few hundred.
fn tenth(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

/// The nearest-rank quantile of sorted values.
fn rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Hundredths of a millisecond: finer is noise, and every digit is bytes in the file.
fn rounded(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Headers, TransportError};

    fn request(seq: u64, at_ms: f64, route: &str, status: Option<u16>, ms: f64) -> RequestRecord {
        RequestRecord {
            seq,
            at_ms,
            route: route.into(),
            path: "/x".into(),
            sent: None,
            latency_ms: ms,
            outcome: match status {
                Some(status) => Outcome::Response {
                    status,
                    headers: Headers::default(),
                    body: (status >= 400).then(|| "{}".into()),
                },
                None => Outcome::Error {
                    kind: TransportError::Timeout,
                    message: "no answer within 5s".into(),
                },
            },
        }
    }

    fn recording() -> Recording {
        let mut rec = Recording::default();
        rec.phases.insert(Phase::Steady, (0.0, 2000.0));
        rec.phases.insert(Phase::Fault, (2000.0, 3000.0));
        rec.phases.insert(Phase::Recovery, (3000.0, 4000.0));
        for i in 0..100u64 {
            let at = 100.0 + i as f64 * 35.0;
            let status = if (2000.0..3000.0).contains(&at) && i % 2 == 0 {
                None
            } else if (2000.0..3000.0).contains(&at) {
                Some(503)
            } else {
                Some(200)
            };
            rec.requests
                .push(request(i, at, "GET /products/{id}", status, 1.0 + i as f64));
        }
        rec.requests
            .push(request(100, 150.0, "POST /orders", Some(201), 9.0));
        rec
    }

    #[test]
    fn the_summary_counts_every_request_by_second_route_phase_and_outcome() {
        let rec = recording();
        let d = digest(&rec);
        assert_eq!(d.total, 101);
        let counted: u32 = d.seconds.iter().map(|s| s.count).sum();
        assert_eq!(counted, 101, "every request in exactly one row");
        let first = &d.seconds[0];
        assert_eq!(
            (first.second, first.route.as_str(), first.phase),
            (0, "GET /products/{id}", Phase::Steady)
        );
        // Requests at 100, 135, ..., 975 ms: 26 of them, latencies 1..=26 ms.
        assert_eq!(first.count, 26);
        assert_eq!(first.outcomes, BTreeMap::from([("200".to_string(), 26)]));
        assert_eq!(
            (first.p50_ms, first.p99_ms, first.max_ms),
            (13.0, 26.0, 26.0)
        );
        let orders = &d.seconds[1];
        assert_eq!((orders.route.as_str(), orders.count), ("POST /orders", 1));
        let failed: u32 = d
            .seconds
            .iter()
            .flat_map(|s| ["503", "timeout"].map(|k| s.outcomes.get(k).copied().unwrap_or(0)))
            .sum();
        let errors = rec.requests.iter().filter(|r| r.outcome.is_error()).count();
        assert_eq!(failed as usize, errors);
        assert!(
            d.seconds
                .iter()
                .filter(|s| s.outcomes.contains_key("timeout"))
                .all(|s| s.phase == Phase::Fault)
        );
    }

    #[test]
    fn by_default_only_the_error_requests_are_kept_whole_and_all_keeps_everything() {
        let rec = recording();
        let thin_rec = thin(&rec, KeepRequests::Errors);
        assert!(!thin_rec.requests.is_empty());
        assert!(thin_rec.requests.iter().all(|r| r.outcome.is_error()));
        assert_eq!(
            thin_rec.requests.len(),
            rec.requests.iter().filter(|r| r.outcome.is_error()).count()
        );
        assert_eq!(thin_rec.phases, rec.phases);
        let all = thin(&rec, KeepRequests::All);
        assert_eq!(all.requests, rec.requests);
    }

    #[test]
    fn errors_beyond_the_first_of_their_kind_are_only_counted() {
        let mut rec = recording();
        for i in 0..100u64 {
            let at = 2000.0 + i as f64;
            rec.requests
                .push(request(200 + i, at, "GET /slow", None, 5000.0));
        }
        let kept = thin(&rec, KeepRequests::Errors);
        let slow = kept
            .requests
            .iter()
            .filter(|r| r.route == "GET /slow")
            .count();
        assert_eq!(slow, ERRORS_KEPT);
        let d = digest(&rec);
        assert_eq!(
            d.errors,
            rec.requests.iter().filter(|r| r.outcome.is_error()).count() as u64
        );
        assert_eq!(d.errors_kept, kept.requests.len() as u64);
        let counted: u32 = d
            .seconds
            .iter()
            .filter(|s| s.route == "GET /slow")
            .map(|s| s.count)
            .sum();
        assert_eq!(counted, 100, "the summary counts every one");
    }

    #[test]
    fn logs_of_kept_errors_stay_and_metrics_become_changes() {
        let mut rec = recording();
        let mut failed = request(500, 2500.0, "GET /x", Some(503), 3.0);
        if let Outcome::Response { headers, .. } = &mut failed.outcome {
            headers.insert("x-request-id".into(), "kept-1".into());
        }
        rec.requests.push(failed);
        let log = |at_ms: f64, line: String| LogRecord {
            at_ms,
            json: serde_json::from_str::<serde_json::Value>(&line).ok(),
            line,
        };
        rec.logs.push(log(
            2501.0,
            r#"{"level":"ERROR","request_id":"kept-1","message":"request failed"}"#.into(),
        ));
        rec.logs.push(log(
            2502.0,
            r#"{"level":"ERROR","request_id":"other","message":"request failed"}"#.into(),
        ));
        rec.logs.push(log(
            2503.0,
            r#"{"level":"INFO","message":"listening"}"#.into(),
        ));
        rec.logs.push(log(
            2504.0,
            format!("thread panicked: {}", "x".repeat(10_000)),
        ));
        for (at_ms, v) in [(0.0, 1.0), (1000.0, 1.0), (2000.0, 3.0)] {
            rec.metrics.push(MetricsSample {
                at_ms,
                values: BTreeMap::from([
                    ("a".to_string(), v),
                    ("b".to_string(), 7.0),
                    ("h_sum".to_string(), v),
                ]),
            });
        }
        let kept = thin(&rec, KeepRequests::Errors);
        let lines: Vec<&str> = kept.logs.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("kept-1"));
        assert!(lines[1].starts_with("thread panicked") && lines[1].ends_with("(7969 more bytes)"));
        assert!(kept.logs.iter().all(|l| l.json.is_none()));
        let changed: Vec<Vec<&str>> = kept
            .metrics
            .iter()
            .map(|m| m.values.keys().map(String::as_str).collect())
            .collect();
        assert_eq!(changed, vec![vec!["a", "b"], vec![], vec!["a"]]);
    }

    /// A service whose ids come in `x-correlation-id` and are logged under `trace`: the kept
    /// error's lines are found by those names, and the report says which they were.
    #[test]
    fn the_logs_of_kept_errors_are_found_by_the_services_own_header_and_field() {
        let mut rec = recording();
        rec.request_ids = crate::record::RequestIds {
            header: "x-correlation-id".into(),
            field: "trace".into(),
            ..Default::default()
        };
        let mut failed = request(500, 2500.0, "GET /x", Some(503), 3.0);
        if let Outcome::Response { headers, .. } = &mut failed.outcome {
            headers.insert("x-correlation-id".into(), "c-1".into());
            headers.insert("x-request-id".into(), "other".into());
        }
        rec.requests.push(failed);
        for (at_ms, line) in [
            (
                2501.0,
                r#"{"level":"ERROR","trace":"c-1","message":"request failed"}"#,
            ),
            (
                2502.0,
                r#"{"level":"ERROR","trace":"other","message":"request failed"}"#,
            ),
        ] {
            rec.logs.push(LogRecord {
                at_ms,
                json: serde_json::from_str(line).ok(),
                line: line.into(),
            });
        }
        let kept = thin(&rec, KeepRequests::Errors);
        let lines: Vec<&str> = kept.logs.iter().map(|l| l.line.as_str()).collect();
        assert_eq!(
            lines,
            [r#"{"level":"ERROR","trace":"c-1","message":"request failed"}"#]
        );
        assert_eq!(kept.request_ids, rec.request_ids);
        // Written and read back, and read as x-request-id from a report that predates it.
        let json = serde_json::to_value(&kept).unwrap();
        assert_eq!(json["request_ids"]["header"], "x-correlation-id");
        let back: Recording = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.request_ids, rec.request_ids);
        let mut old = json;
        old.as_object_mut().unwrap().remove("request_ids");
        let old: Recording = serde_json::from_value(old).unwrap();
        assert_eq!(old.request_ids.header, "x-request-id");
    }
}

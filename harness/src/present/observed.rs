//! What a recording shows, picked for a human: the answers the client got in the fault phase, one
//! representative error response and log line, the metrics that moved, the alerts, readiness.
//! The HTML report and `fivehundred explain` both show these next to the scenario's learner text,
//! so both pick them here, the same way.
//!
//! "Representative" means the most common kind of error in the fault phase, not the first or the
//! worst one: a learner should see what most clients saw.

use std::collections::BTreeMap;

use crate::present::report::ScenarioReport;
use crate::record::parse_series_selector;
use crate::record::{EventKind, LogRecord, Phase, ProbeRecord, Recording, RequestRecord};
use crate::verdict::Verdict;

/// One series that moved during the fault phase.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricMove {
    /// A series key (`name{label="v"}`), or a scenario's selector summed over its series.
    pub series: String,
    /// The last value before the fault phase (or the first in it).
    pub before: f64,
    /// The value in the fault phase furthest from `before`: the peak of a counter, the dip of a
    /// gauge that recovers before the phase ends.
    pub extreme: f64,
    /// When it first differed from `before`.
    pub first_change_ms: Option<f64>,
    /// Named in the scenario's expectations (shown even when it did not move).
    pub expected: bool,
}

impl MetricMove {
    pub fn moved(&self) -> bool {
        self.extreme != self.before
    }
}

/// An alert notification on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertMark {
    pub at_ms: f64,
    pub firing: bool,
    /// The alert's name (`DatabaseUnavailable`).
    pub alert: String,
    /// Its summary annotation and labels, when Alertmanager sent them.
    pub detail: String,
}

/// What `/readyz` said during the fault phase.
#[derive(Debug, Clone, Default)]
pub struct Readiness<'a> {
    pub samples: usize,
    pub failed: usize,
    pub first_failure: Option<&'a ProbeRecord>,
    /// `component: output` for each component a failing sample named.
    pub failing_components: Vec<String>,
    /// When `/readyz` passed again after the last failure, if it did.
    pub passed_again_ms: Option<f64>,
}

/// The evidence of one scenario run, picked for a human.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    /// Answers in the fault phase, `200×167, 503×73`; empty when no request was sent in it.
    pub fault_statuses: String,
    pub fault_requests: usize,
    pub fault_errors: usize,
    /// One answer of the most common error status in the fault phase (the whole run if none).
    pub error_response: Option<&'a RequestRecord>,
    /// A log line about that request, else the first ERROR (then WARN) line in the fault phase.
    pub error_log: Option<&'a LogRecord>,
    pub metrics: Vec<MetricMove>,
    pub alerts: Vec<AlertMark>,
    pub readiness: Readiness<'a>,
    /// (injected, reverted) times of the first fault, when one was injected.
    pub fault_window: Option<(f64, f64)>,
}

/// How many moved series are worth showing.
const MAX_METRICS: usize = 6;

/// Picks the evidence of one scenario run.
pub fn observe(s: &ScenarioReport) -> Observed<'_> {
    let rec = &s.recording;
    let fault: Vec<&RequestRecord> = rec.requests_in(Phase::Fault).collect();
    let fault_errors = fault.iter().filter(|r| is_error(r)).count();
    let error_response = representative_error(rec, &fault)
        .or_else(|| representative_error(rec, &rec.requests.iter().collect::<Vec<_>>()));
    let error_log = error_response
        .and_then(|r| rec.request_id(r))
        .and_then(|id| {
            rec.logs_for(id)
                .into_iter()
                .find(|l| matches!(l.field("level"), Some("ERROR" | "WARN")))
        })
        .or_else(|| first_log_at_level(rec, "ERROR"))
        .or_else(|| first_log_at_level(rec, "WARN"));
    Observed {
        fault_statuses: if fault.is_empty() {
            String::new()
        } else {
            crate::checks::count_statuses(fault.iter().map(|r| r.status()))
        },
        fault_requests: fault.len(),
        fault_errors,
        error_response,
        error_log,
        metrics: moved_metrics(s),
        alerts: alert_marks(rec),
        readiness: readiness(rec),
        fault_window: fault_window(rec),
    }
}

/// An error answer: 4xx, 5xx, or no HTTP answer at all.
pub fn is_error(r: &RequestRecord) -> bool {
    r.status().is_none_or(|s| s >= 400)
}

fn representative_error<'a>(
    rec: &Recording,
    reqs: &[&'a RequestRecord],
) -> Option<&'a RequestRecord> {
    let mut counts: BTreeMap<Option<u16>, usize> = BTreeMap::new();
    for r in reqs.iter().filter(|r| is_error(r)) {
        *counts.entry(r.status()).or_default() += 1;
    }
    // Most common first; among equals a 5xx before a 4xx before no answer (BTreeMap order puts
    // None first, so compare explicitly).
    let (status, _) = counts
        .into_iter()
        .max_by_key(|(s, n)| (*n, s.map(|s| s / 100 == 5), *s))?;
    let same = || reqs.iter().copied().filter(move |r| r.status() == status);
    // Prefer one whose body was kept and whose request id has a log line: the most to show.
    same()
        .find(|r| r.body().is_some() && rec.request_id(r).is_some())
        .or_else(|| same().next())
}

fn first_log_at_level<'a>(rec: &'a Recording, level: &str) -> Option<&'a LogRecord> {
    let in_fault = |l: &&LogRecord| rec.phase_at(l.at_ms) == Phase::Fault;
    let at_level = |l: &&LogRecord| l.field("level") == Some(level);
    rec.logs
        .iter()
        .filter(at_level)
        .find(in_fault)
        .or_else(|| rec.logs.iter().find(at_level))
}

/// The first fault's window: its first injection to the first revert after it; the fault phase
/// when nothing was injected (the scenario was skipped or interrupted).
pub fn fault_window(rec: &Recording) -> Option<(f64, f64)> {
    let inject = rec.events.iter().find(|e| e.kind == EventKind::Inject)?;
    let revert = rec
        .events
        .iter()
        .find(|e| e.kind == EventKind::Revert && e.at_ms >= inject.at_ms)
        .map(|e| e.at_ms)
        .or_else(|| rec.phases.get(&Phase::Fault).map(|p| p.1))
        .unwrap_or(inject.at_ms);
    Some((inject.at_ms, revert))
}

/// Every (inject, revert) window, paired by the fault's description.
pub fn fault_windows(rec: &Recording) -> Vec<(f64, f64, String)> {
    let end = rec
        .phases
        .get(&Phase::Fault)
        .map(|p| p.1)
        .or_else(|| rec.events.last().map(|e| e.at_ms))
        .unwrap_or(0.0);
    let mut out = Vec::new();
    for (i, e) in rec.events.iter().enumerate() {
        if e.kind != EventKind::Inject {
            continue;
        }
        let revert = rec.events[i + 1..]
            .iter()
            .find(|r| r.kind == EventKind::Revert && r.detail.starts_with(&e.detail))
            .map(|r| r.at_ms)
            .unwrap_or(end.max(e.at_ms));
        out.push((e.at_ms, revert, e.detail.clone()));
    }
    out
}

/// The alert notifications of a run: Alertmanager's, as the webhook recorded them, else the
/// alert events on the timeline (a recording from before alerts were kept on their own).
pub fn alert_marks(rec: &Recording) -> Vec<AlertMark> {
    use crate::monitoring::AlertStatus;
    if !rec.alerts.is_empty() {
        return rec
            .alerts
            .iter()
            .map(|n| {
                let labels: Vec<String> = n
                    .labels
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "alertname" | "severity"))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let summary = n.annotations.get("summary").map(String::as_str);
                AlertMark {
                    at_ms: n.at_ms,
                    firing: n.status == AlertStatus::Firing,
                    alert: n.alert.clone(),
                    detail: [summary.unwrap_or_default().to_string(), labels.join(", ")]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join("; "),
                }
            })
            .collect();
    }
    rec.events
        .iter()
        .filter_map(|e| {
            let firing = match e.kind {
                EventKind::AlertFiring => true,
                EventKind::AlertResolved => false,
                _ => return None,
            };
            // The lab writes `<alert> firing` / `<alert> resolved`.
            let alert = e.detail.split_whitespace().next().unwrap_or("alert");
            Some(AlertMark {
                at_ms: e.at_ms,
                firing,
                alert: alert.to_string(),
                detail: String::new(),
            })
        })
        .collect()
}

/// One alert from its first firing notification to the resolution after it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSpan {
    pub alert: String,
    pub fired_ms: f64,
    /// `None` while it was still firing at the end of the run.
    pub resolved_ms: Option<f64>,
    pub detail: String,
}

/// The alerts that fired, each once, in the order they fired: repeated firing notifications
/// of an alert already firing fold into its span.
pub fn alert_spans(marks: &[AlertMark]) -> Vec<AlertSpan> {
    let mut spans: Vec<AlertSpan> = Vec::new();
    for m in marks {
        let open = spans
            .iter_mut()
            .rev()
            .find(|s| s.alert == m.alert && s.resolved_ms.is_none());
        match (m.firing, open) {
            (true, Some(_)) => {}
            (true, None) => spans.push(AlertSpan {
                alert: m.alert.clone(),
                fired_ms: m.at_ms,
                resolved_ms: None,
                detail: m.detail.clone(),
            }),
            (false, Some(s)) => s.resolved_ms = Some(m.at_ms),
            // A resolution without a firing seen (it fired before the recording began).
            (false, None) => {}
        }
    }
    spans
}

/// `HighErrorRate: fired 8.4s after the injection, resolved 10.2s after the revert`.
pub fn describe_span(s: &AlertSpan, fault_window: Option<(f64, f64)>) -> String {
    let fired = match fault_window {
        Some((inject, _)) if s.fired_ms >= inject => {
            format!(
                "fired {:.1}s after the injection",
                (s.fired_ms - inject) / 1000.0
            )
        }
        _ => format!("fired at {:.1}s", s.fired_ms / 1000.0),
    };
    let resolved = match (s.resolved_ms, fault_window) {
        (None, _) => "still firing at the end".to_string(),
        (Some(t), Some((_, revert))) if t >= revert => {
            format!("resolved {:.1}s after the revert", (t - revert) / 1000.0)
        }
        (Some(t), _) => format!("resolved at {:.1}s", t / 1000.0),
    };
    format!("{}: {fired}, {resolved}", s.alert)
}

/// `DatabaseUnavailable fired at 9.1s (3.6s after the injection): the database is down`.
pub fn describe_alert(m: &AlertMark, fault_window: Option<(f64, f64)>) -> String {
    let relative = match (m.firing, fault_window) {
        (true, Some((inject, _))) if m.at_ms >= inject => {
            format!(" ({:.1}s after the injection)", (m.at_ms - inject) / 1000.0)
        }
        (false, Some((_, revert))) if m.at_ms >= revert => {
            format!(" ({:.1}s after the revert)", (m.at_ms - revert) / 1000.0)
        }
        _ => String::new(),
    };
    format!(
        "{} {} at {:.1}s{relative}{}",
        m.alert,
        if m.firing { "fired" } else { "resolved" },
        m.at_ms / 1000.0,
        if m.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", m.detail)
        }
    )
}

/// A `/readyz` sample passed (2xx).
pub fn probe_passed(p: &ProbeRecord) -> bool {
    p.status.is_some_and(|s| (200..300).contains(&s))
}

fn readiness(rec: &Recording) -> Readiness<'_> {
    let readyz: Vec<&ProbeRecord> = rec
        .probes
        .iter()
        .filter(|p| p.endpoint == "readyz")
        .collect();
    let in_fault: Vec<&ProbeRecord> = readyz
        .iter()
        .copied()
        .filter(|p| rec.phase_at(p.at_ms) == Phase::Fault)
        .collect();
    let failed: Vec<&ProbeRecord> = in_fault
        .iter()
        .copied()
        .filter(|p| !probe_passed(p))
        .collect();
    let mut components = Vec::new();
    for p in &failed {
        for c in failing_components(p) {
            if !components.contains(&c) {
                components.push(c);
            }
        }
    }
    let last_failure = readyz
        .iter()
        .rev()
        .find(|p| !probe_passed(p))
        .map(|p| p.at_ms);
    let passed_again_ms = last_failure.and_then(|t| {
        readyz
            .iter()
            .find(|p| p.at_ms > t && probe_passed(p))
            .map(|p| p.at_ms)
    });
    Readiness {
        samples: in_fault.len(),
        failed: failed.len(),
        first_failure: failed.first().copied(),
        failing_components: components,
        passed_again_ms,
    }
}

/// `component: output` for each failing component of a health+json body. A sample with no
/// answer at all says so.
pub fn failing_components(p: &ProbeRecord) -> Vec<String> {
    let Some(body) = &p.body else {
        return if p.status.is_none() {
            vec!["no answer (timed out or refused)".into()]
        } else {
            Vec::new()
        };
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let Some(checks) = v.get("checks").and_then(|c| c.as_object()) else {
        return Vec::new();
    };
    checks
        .iter()
        .filter(|(_, c)| c.get("status").and_then(|s| s.as_str()) == Some("fail"))
        .map(|(name, c)| match c.get("output").and_then(|o| o.as_str()) {
            Some(o) if !o.is_empty() => format!("{name}: {o}"),
            _ => name.clone(),
        })
        .collect()
}

/// The series worth a learner's attention: those the scenario names, then every `app_` series
/// that moved in the fault phase while it stayed flat in the steady phase (so request counters
/// that grow with the load do not count, error counters do).
fn moved_metrics(s: &ScenarioReport) -> Vec<MetricMove> {
    let rec = &s.recording;
    let Some(&(fault_start, fault_end)) = rec.phases.get(&Phase::Fault) else {
        return Vec::new();
    };
    let steady = rec.phases.get(&Phase::Steady).copied();
    let before_idx = rec.metrics.iter().rposition(|m| m.at_ms <= fault_start);
    let in_fault: Vec<usize> = (0..rec.metrics.len())
        .filter(|&i| {
            let t = rec.metrics[i].at_ms;
            t > fault_start && t <= fault_end
        })
        .collect();
    let Some(&first_in_fault) = in_fault.first() else {
        return Vec::new();
    };
    let before_idx = before_idx.unwrap_or(first_in_fault);

    let value_of = |key: &str, i: usize| -> f64 {
        match parse_series_selector(key) {
            // A scenario's selector may match several series: sum them, as its check does.
            Some(sel) if !rec.metrics[i].values.contains_key(key) => {
                sel.sum(&rec.metrics[i].values)
            }
            _ => rec.metrics[i].values.get(key).copied().unwrap_or(0.0),
        }
    };
    let movement = |key: &str, expected: bool| -> MetricMove {
        let before = value_of(key, before_idx);
        let mut extreme = before;
        let mut first_change_ms = None;
        for &i in &in_fault {
            let v = value_of(key, i);
            if v != before && first_change_ms.is_none() {
                first_change_ms = Some(rec.metrics[i].at_ms);
            }
            if (v - before).abs() > (extreme - before).abs() {
                extreme = v;
            }
        }
        MetricMove {
            series: key.to_string(),
            before,
            extreme,
            first_change_ms,
            expected,
        }
    };

    let mut out: Vec<MetricMove> = Vec::new();
    for phase in Phase::ALL {
        for m in &s.scenario.expect.phase(phase).metrics {
            if !out.iter().any(|o| o.series == m.series) {
                out.push(movement(&m.series, true));
            }
        }
    }
    let steady_samples: Vec<usize> = match steady {
        Some((a, b)) => (0..rec.metrics.len())
            .filter(|&i| rec.metrics[i].at_ms >= a && rec.metrics[i].at_ms <= b)
            .collect(),
        None => Vec::new(),
    };
    let flat_in_steady = |key: &str| -> bool {
        let vals: Vec<f64> = steady_samples
            .iter()
            .filter_map(|&i| rec.metrics[i].values.get(key).copied())
            .collect();
        vals.windows(2).all(|w| w[0] == w[1])
    };
    let keys: Vec<&String> = rec.metrics[first_in_fault]
        .values
        .keys()
        .filter(|k| is_service_series(k))
        .collect();
    let mut found: Vec<MetricMove> = keys
        .into_iter()
        .filter(|k| flat_in_steady(k))
        .map(|k| movement(k, false))
        .filter(|m| m.moved() && !out.iter().any(|o| o.series == m.series))
        .collect();
    // Earliest to move first: the cause tends to move before its consequences.
    found.sort_by(|a, b| {
        a.first_change_ms
            .unwrap_or(f64::INFINITY)
            .total_cmp(&b.first_change_ms.unwrap_or(f64::INFINITY))
            .then_with(|| a.series.cmp(&b.series))
    });
    out.extend(found);
    out.truncate(MAX_METRICS.max(out.iter().filter(|m| m.expected).count()));
    out
}

/// Where in report.json a check's evidence is: `scenarios[0].checks[6]`.
pub fn check_path(scenario_index: usize, s: &ScenarioReport, id: &str) -> Option<String> {
    s.checks
        .iter()
        .position(|c| c.id() == id)
        .map(|i| format!("scenarios[{scenario_index}].checks[{i}]"))
}

/// The failed checks' ids, `status[fault], metric[fault]`.
pub fn failed_ids(s: &ScenarioReport) -> Vec<String> {
    s.checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.id())
        .collect()
}

/// Whether a series is the service's own signal rather than the runtime's (process, language
/// runtime, exporter) or a histogram's parts, and not about the lab's health probes.
fn is_service_series(key: &str) -> bool {
    let name = key.split('{').next().unwrap_or(key);
    const RUNTIME: &[&str] = &[
        "process_",
        "go_",
        "python_",
        "jvm_",
        "nodejs_",
        "promhttp_",
        "scrape_",
    ];
    let histogram = ["_bucket", "_sum", "_count", "_created"]
        .iter()
        .any(|s| name.ends_with(s))
        && (name.contains("duration") || name.contains("latency") || name.contains("seconds"));
    name != "up"
        && !RUNTIME.iter().any(|p| name.starts_with(p))
        && !histogram
        && !["readyz", "livez", "health"]
            .iter()
            .any(|p| key.contains(&format!("route=\"/{p}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{MetricsSample, Outcome, RequestRecord};

    fn mark(at_ms: f64, firing: bool, alert: &str) -> AlertMark {
        AlertMark {
            at_ms,
            firing,
            alert: alert.into(),
            detail: String::new(),
        }
    }

    #[test]
    fn alert_spans_fold_repeated_firings_and_pair_resolutions() {
        let spans = alert_spans(&[
            mark(1000.0, true, "A"),
            mark(1500.0, true, "B"),
            mark(2000.0, true, "A"),
            mark(3000.0, false, "A"),
            mark(4000.0, false, "C"),
        ]);
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert_eq!(
            (spans[0].fired_ms, spans[0].resolved_ms),
            (1000.0, Some(3000.0))
        );
        assert_eq!((spans[1].alert.as_str(), spans[1].resolved_ms), ("B", None));
        assert_eq!(
            describe_span(&spans[1], Some((500.0, 2500.0))),
            "B: fired 1.0s after the injection, still firing at the end"
        );
    }

    fn request(at_ms: f64, status: Option<u16>) -> RequestRecord {
        RequestRecord {
            seq: at_ms as u64,
            at_ms,
            route: "GET /x".into(),
            path: "/x".into(),
            sent: None,
            latency_ms: 1.0,
            outcome: match status {
                Some(status) => Outcome::Response {
                    status,
                    headers: Default::default(),
                    body: None,
                },
                None => Outcome::Error {
                    kind: crate::record::TransportError::Closed,
                    message: "reset".into(),
                },
            },
        }
    }

    #[test]
    fn the_representative_error_is_the_most_common_one() {
        let reqs = [
            request(1.0, Some(200)),
            request(2.0, None),
            request(3.0, Some(503)),
            request(4.0, Some(503)),
            request(5.0, Some(500)),
        ];
        let refs: Vec<&RequestRecord> = reqs.iter().collect();
        let rec = Recording::default();
        assert_eq!(
            representative_error(&rec, &refs).unwrap().status(),
            Some(503)
        );
        assert!(representative_error(&rec, &refs[..1]).is_none());
    }

    #[test]
    fn moved_metrics_are_those_flat_in_steady_that_move_in_the_fault() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/db-down.toml");
        let mut scenario = crate::scenario::load(&path).unwrap();
        // Only what this test names, whatever the catalogue's file expects.
        scenario.expect = Default::default();
        scenario.expect.fault.metrics = vec![crate::scenario::MetricExpect {
            series: "app_stale_cache_serves_total".into(),
            min_delta: Some(1.0),
            max_delta: None,
        }];
        let mut rec = Recording::default();
        rec.phases.insert(Phase::Steady, (0.0, 1000.0));
        rec.phases.insert(Phase::Fault, (1000.0, 2000.0));
        for (i, at) in [0.0, 500.0, 1000.0, 1500.0, 2000.0].into_iter().enumerate() {
            let i = i as f64;
            let mut values = std::collections::BTreeMap::new();
            // Grows with the load all along: not a symptom.
            values.insert("app_http_requests_total{status=\"200\"}".into(), 10.0 * i);
            // Flat, then up in the fault: a symptom.
            values.insert(
                "app_db_errors_total{kind=\"connection\"}".into(),
                if at > 1000.0 { 5.0 } else { 0.0 },
            );
            // The probes' own counter: not the service's traffic.
            values.insert(
                "app_http_requests_total{route=\"/readyz\",status=\"503\"}".into(),
                if at > 1000.0 { 2.0 } else { 0.0 },
            );
            rec.metrics.push(MetricsSample { at_ms: at, values });
        }
        let report = ScenarioReport::from_checks(&scenario, Vec::new(), rec, 1.0, None);
        let moved = moved_metrics(&report);
        let names: Vec<&str> = moved.iter().map(|m| m.series.as_str()).collect();
        // The scenario's own series first (it did not move here), then the symptom.
        assert_eq!(
            names,
            [
                "app_stale_cache_serves_total",
                "app_db_errors_total{kind=\"connection\"}"
            ]
        );
        assert!(!moved[0].moved() && moved[0].expected);
        assert_eq!((moved[1].before, moved[1].extreme), (0.0, 5.0));
        assert_eq!(moved[1].first_change_ms, Some(1500.0));
    }
}

//! The live view of a running lab, read from the same [`Recorder`] the checks use: requests per
//! second by status class with latency percentiles, readiness changes, and the latest error
//! answers. Updated incrementally (only what was recorded since the last update is read), so a
//! lab that has been up for hours costs the same per second as one just started.

use std::collections::VecDeque;

use serde::Serialize;

use super::abort::Window;
use crate::record::{Outcome, Recorder, RequestRecord};

/// How many error answers the dashboard keeps to show.
const LATEST_ERRORS: usize = 12;

/// One second of requests, by the time each was due (open loop: when it should have been sent).
#[derive(Debug, Clone, Default)]
struct Bucket {
    by_class: [u32; 5],
    latencies_ms: Vec<f32>,
}

/// Status classes in the order the dashboard stacks them.
const CLASSES: [&str; 5] = ["2xx", "3xx", "4xx", "5xx", "none"];

fn class(r: &RequestRecord) -> usize {
    match r.status() {
        Some(s) if s < 300 => 0,
        Some(s) if s < 400 => 1,
        Some(s) if s < 500 => 2,
        Some(_) => 3,
        None => 4,
    }
}

/// 5xx or no answer: what the checks call a failure, and what the error rate counts.
fn is_failure(r: &RequestRecord) -> bool {
    r.status().is_none_or(|s| s >= 500)
}

/// One second of the timeline, as the dashboard draws it.
#[derive(Debug, Clone, Serialize)]
pub struct SecondView {
    /// Seconds since the lab started.
    pub t: u64,
    /// Requests per status class, in [`CLASSES`] order.
    pub counts: [u32; 5],
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// `/readyz` going from passing to failing or back.
#[derive(Debug, Clone, Serialize)]
pub struct ReadinessChange {
    pub at_ms: f64,
    pub ready: bool,
    /// The failing components, when not ready.
    pub detail: String,
}

/// An error answer with the target's log lines that carry its request id.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorView {
    pub at_ms: f64,
    pub route: String,
    pub method: String,
    pub path: String,
    /// `None`: no HTTP answer.
    pub status: Option<u16>,
    /// For no answer: why (`connect`, `timeout`, ...).
    pub problem: Option<String>,
    pub latency_ms: f64,
    pub request_id: Option<String>,
    pub body: Option<String>,
    pub logs: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Live {
    requests_seen: usize,
    probes_seen: usize,
    buckets: Vec<Bucket>,
    errors: VecDeque<RequestRecord>,
    last_ready: Option<bool>,
    readiness: Vec<ReadinessChange>,
}

impl Live {
    /// Reads what was recorded since the last call.
    pub fn update(&mut self, rec: &Recorder) {
        rec.with(|r| {
            for req in &r.requests[self.requests_seen.min(r.requests.len())..] {
                let second = (req.at_ms.max(0.0) / 1000.0) as usize;
                if self.buckets.len() <= second {
                    self.buckets.resize_with(second + 1, Bucket::default);
                }
                let b = &mut self.buckets[second];
                b.by_class[class(req)] += 1;
                b.latencies_ms.push(req.latency_ms as f32);
                if crate::present::observed::is_error(req) {
                    if self.errors.len() == LATEST_ERRORS {
                        self.errors.pop_front();
                    }
                    self.errors.push_back(req.clone());
                }
            }
            self.requests_seen = r.requests.len();
            for p in &r.probes[self.probes_seen.min(r.probes.len())..] {
                if p.endpoint != "readyz" {
                    continue;
                }
                let ready = crate::present::observed::probe_passed(p);
                if self.last_ready != Some(ready) {
                    // The first sample sets the state; only changes after it are marks.
                    if self.last_ready.is_some() {
                        self.readiness.push(ReadinessChange {
                            at_ms: p.at_ms,
                            ready,
                            detail: crate::present::observed::failing_components(p).join("; "),
                        });
                    }
                    self.last_ready = Some(ready);
                }
            }
            self.probes_seen = r.probes.len();
        });
    }

    /// Whether `/readyz` passed at its last sample.
    pub fn ready(&self) -> Option<bool> {
        self.last_ready
    }

    /// The requests due in `[now - window, now]`.
    pub fn window(&self, now_ms: f64, window: std::time::Duration) -> Window {
        let from = ((now_ms - window.as_secs_f64() * 1000.0).max(0.0) / 1000.0) as usize;
        let to = ((now_ms.max(0.0) / 1000.0) as usize).min(self.buckets.len().saturating_sub(1));
        let mut w = Window::default();
        if self.buckets.is_empty() {
            return w;
        }
        for b in self.buckets.get(from..=to).unwrap_or_default() {
            let n: u32 = b.by_class.iter().sum();
            w.requests += n as usize;
            w.errors += (b.by_class[3] + b.by_class[4]) as usize;
            w.latencies_ms
                .extend(b.latencies_ms.iter().map(|&l| l as f64));
        }
        w
    }

    /// Every second from `from_s` on.
    pub fn seconds(&self, from_s: u64) -> Vec<SecondView> {
        self.buckets
            .iter()
            .enumerate()
            .skip(from_s as usize)
            .map(|(t, b)| {
                let mut l: Vec<f64> = b.latencies_ms.iter().map(|&v| v as f64).collect();
                SecondView {
                    t: t as u64,
                    counts: b.by_class,
                    p50_ms: crate::checks::quantile(&mut l, 0.5),
                    p99_ms: crate::checks::quantile(&mut l, 0.99),
                }
            })
            .collect()
    }

    pub fn readiness(&self) -> &[ReadinessChange] {
        &self.readiness
    }

    /// The latest error answers, newest first, each with its log lines (looked up now: a log
    /// line may arrive just after the answer).
    pub fn errors(&self, rec: &Recorder) -> Vec<ErrorView> {
        rec.with(|r| {
            // Bounded: the lines of the last errors are near the end of the log.
            let recent = &r.logs[r.logs.len().saturating_sub(20_000)..];
            self.errors
                .iter()
                .rev()
                .map(|req| {
                    let request_id = r.request_id(req).map(String::from);
                    let logs = match &request_id {
                        Some(id) => recent
                            .iter()
                            .filter(|l| l.field(&r.request_ids.field) == Some(id.as_str()))
                            .map(|l| l.line.clone())
                            .collect(),
                        None => Vec::new(),
                    };
                    let problem = match &req.outcome {
                        Outcome::Error { kind, message } => Some(format!(
                            "{}: {message}",
                            serde_json::to_value(kind)
                                .ok()
                                .and_then(|v| v.as_str().map(String::from))
                                .unwrap_or_default()
                        )),
                        Outcome::Response { .. } => None,
                    };
                    ErrorView {
                        at_ms: req.at_ms,
                        route: req.route.to_string(),
                        method: req.method().to_string(),
                        path: req.path.to_string(),
                        status: req.status(),
                        problem,
                        latency_ms: req.latency_ms,
                        request_id,
                        body: req.body().map(|b| b.chars().take(2000).collect()),
                        logs,
                    }
                })
                .collect()
        })
    }
}

/// The status classes, for the page's legend.
pub fn classes() -> [&'static str; 5] {
    CLASSES
}

/// Requests, failures and the latency percentile of a slice of requests: the impact of a fault
/// window in the postmortem.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Impact {
    pub requests: usize,
    pub failures: usize,
    pub p99_ms: Option<f64>,
    /// The worst p99 over any 5 s stretch of the window: a short spike a whole-window p99 hides.
    pub worst_5s_p99_ms: Option<f64>,
    pub statuses: String,
}

pub fn impact(reqs: &[&RequestRecord], from_ms: f64, to_ms: f64) -> Impact {
    let inside: Vec<&RequestRecord> = reqs
        .iter()
        .copied()
        .filter(|r| r.at_ms >= from_ms && r.at_ms < to_ms)
        .collect();
    let mut all: Vec<f64> = inside.iter().map(|r| r.latency_ms).collect();
    let mut worst: Option<f64> = None;
    let mut start = from_ms;
    // The stretches run to the last request, not to an open end.
    let end = inside
        .iter()
        .map(|r| r.at_ms + 1.0)
        .fold(from_ms, f64::max)
        .min(to_ms);
    while start < end {
        let mut l: Vec<f64> = inside
            .iter()
            .filter(|r| r.at_ms >= start && r.at_ms < start + 5000.0)
            .map(|r| r.latency_ms)
            .collect();
        if let Some(p) = crate::checks::quantile(&mut l, 0.99) {
            worst = Some(worst.map_or(p, |w: f64| w.max(p)));
        }
        start += 5000.0;
    }
    Impact {
        requests: inside.len(),
        failures: inside.iter().filter(|r| is_failure(r)).count(),
        p99_ms: crate::checks::quantile(&mut all, 0.99),
        worst_5s_p99_ms: worst,
        statuses: crate::checks::count_statuses(inside.iter().map(|r| r.status())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::record::{ProbeRecord, TransportError};

    fn req(at_ms: f64, status: Option<u16>, latency_ms: f64) -> RequestRecord {
        RequestRecord {
            seq: 0,
            at_ms,
            route: "GET /products/{id}".into(),
            path: "/products/1".into(),
            sent: None,
            latency_ms,
            outcome: match status {
                Some(status) => Outcome::Response {
                    status,
                    headers: [("x-request-id".to_string(), format!("r{at_ms}"))]
                        .into_iter()
                        .collect(),
                    body: (status >= 400).then(|| "{}".into()),
                },
                None => Outcome::Error {
                    kind: TransportError::Connect,
                    message: "refused".into(),
                },
            },
        }
    }

    #[test]
    fn seconds_count_classes_and_windows_count_failures() {
        let rec = Recorder::new(Instant::now());
        rec.with(|r| {
            r.requests.push(req(100.0, Some(200), 5.0));
            r.requests.push(req(200.0, Some(503), 50.0));
            r.requests.push(req(1100.0, None, 2000.0));
            r.requests.push(req(1200.0, Some(404), 3.0));
        });
        let mut live = Live::default();
        live.update(&rec);
        let s = live.seconds(0);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].counts, [1, 0, 0, 1, 0]);
        assert_eq!(s[1].counts, [0, 0, 1, 0, 1]);
        let w = live.window(1500.0, Duration::from_secs(10));
        assert_eq!((w.requests, w.errors), (4, 2));
        // Only the second second.
        let w = live.window(1500.0, Duration::from_millis(400));
        assert_eq!((w.requests, w.errors), (2, 1));
        // A second update reads only what is new.
        rec.with(|r| r.requests.push(req(1300.0, Some(200), 5.0)));
        live.update(&rec);
        assert_eq!(live.seconds(1)[0].counts, [1, 0, 1, 0, 1]);
        let errors = live.errors(&rec);
        assert_eq!(errors.len(), 3);
        assert_eq!(errors[0].status, Some(404), "newest first");
        assert!(errors[1].problem.as_deref().unwrap().starts_with("connect"));
    }

    #[test]
    fn readiness_marks_changes_after_the_first_sample() {
        let rec = Recorder::new(Instant::now());
        let probe = |at_ms, status| ProbeRecord {
            at_ms,
            endpoint: "readyz".into(),
            status: Some(status),
            body: Some(format!(
                r#"{{"status":"x","checks":{{"database":{{"status":"{}","output":"refused"}}}}}}"#,
                if status == 200 { "pass" } else { "fail" }
            )),
        };
        rec.with(|r| {
            for (t, s) in [
                (0.0, 200),
                (250.0, 200),
                (500.0, 503),
                (750.0, 503),
                (1000.0, 200),
            ] {
                r.probes.push(probe(t, s));
            }
        });
        let mut live = Live::default();
        live.update(&rec);
        let marks: Vec<(f64, bool)> = live
            .readiness()
            .iter()
            .map(|c| (c.at_ms, c.ready))
            .collect();
        assert_eq!(marks, vec![(500.0, false), (1000.0, true)]);
        assert_eq!(live.readiness()[0].detail, "database: refused");
        assert_eq!(live.ready(), Some(true));
    }

    #[test]
    fn impact_counts_a_window_and_its_worst_stretch() {
        let reqs: Vec<RequestRecord> = (0..100)
            .map(|i| {
                let at = i as f64 * 100.0;
                let slow = (20..30).contains(&i);
                req(
                    at,
                    Some(if slow { 503 } else { 200 }),
                    if slow { 900.0 } else { 10.0 },
                )
            })
            .collect();
        let refs: Vec<&RequestRecord> = reqs.iter().collect();
        let i = impact(&refs, 0.0, 10_000.0);
        assert_eq!((i.requests, i.failures), (100, 10));
        assert_eq!(i.worst_5s_p99_ms, Some(900.0));
        assert_eq!(i.statuses, "200×90, 503×10");
    }
}

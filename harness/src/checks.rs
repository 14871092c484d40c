//! Checks: what "responds correctly" means, evaluated on a [`Recording`]. Each check passes,
//! fails or is skipped with a reason, per phase, and carries the evidence a human needs to see
//! why: the offending request and response, the log lines with its request id, metric values.
//!
//! Every check here is a pure function of the recording and the scenario's expectations, so each
//! has a unit test in which it fails. The one exception, data integrity, reads the database and
//! is tested end to end.

use std::collections::BTreeMap;

use crate::record::{LogRecord, Phase, ProbeRecord, Recording, RequestRecord};
pub use crate::record::{SeriesSelector, parse_series_selector};
use crate::scenario::{Health, MetricExpect, PhaseExpect, Scenario, StatusExpect};
pub use crate::verdict::{CheckResult, Evidence, Verdict};

/// How many offending requests a failing check shows.
const MAX_EXAMPLES: usize = 3;

fn request_evidence(rec: &Recording, r: &RequestRecord, why: String) -> Evidence {
    let logs = r
        .header("x-request-id")
        .map(|id| rec.logs_for(id).into_iter().cloned().collect())
        .unwrap_or_default();
    Evidence::Request {
        request: Box::new(r.clone()),
        logs,
        why,
    }
}

fn describe_status(s: Option<u16>) -> String {
    match s {
        Some(s) => s.to_string(),
        None => "no answer".into(),
    }
}

fn pass(name: &str, phase: Phase, summary: String) -> CheckResult {
    CheckResult::new(name, Some(phase), Verdict::Pass, summary)
}

fn fail(name: &str, phase: Phase, summary: String) -> CheckResult {
    CheckResult::new(name, Some(phase), Verdict::Fail, summary)
}

fn skip(name: &str, phase: Phase, summary: String) -> CheckResult {
    CheckResult::new(name, Some(phase), Verdict::Skip, summary)
}

/// A check of something the service does not promise (its lab file says so).
fn not_promised(name: &str, phase: Phase) -> CheckResult {
    skip(
        name,
        phase,
        "the service does not promise this (its lab file's [expect])".into(),
    )
}

/// Runs every recording-based check of a scenario.
pub fn evaluate(scenario: &Scenario, rec: &Recording) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for phase in Phase::ALL {
        let expect = scenario.expect.phase(phase);
        let reqs: Vec<&RequestRecord> = rec.requests_in(phase).collect();
        out.push(status(rec, phase, &reqs, expect));
        if let Some(c) = latency(phase, &reqs, expect) {
            out.push(c);
        }
        let contract = &scenario.contract;
        out.push(match contract.problem_json {
            true => problem_json(rec, phase, &reqs),
            false => not_promised("problem-json", phase),
        });
        out.push(no_leaks(rec, phase, &reqs));
        out.push(match contract.request_id {
            true => request_id(rec, phase, &reqs),
            false => not_promised("request-id", phase),
        });
        out.push(match contract.retry_after {
            true => retry_after(rec, phase, &reqs),
            false => not_promised("retry-after", phase),
        });
        for (name, want) in [("readyz", expect.readyz), ("livez", expect.livez)] {
            if let Some(want) = want {
                out.push(health(rec, phase, name, want));
            }
        }
        for m in &expect.metrics {
            out.push(metric(rec, phase, m));
        }
    }
    if let Some(within) = scenario.expect.recovery.recover_within {
        out.push(recovery(rec, within.as_secs_f64() * 1000.0));
    }
    out.push(no_restart(rec));
    for a in &scenario.alerts.expect {
        out.push(fires(rec, a));
        if a.resolves_within.is_some() {
            out.push(resolves(rec, a));
        }
    }
    out.extend(quiet(rec, &scenario.alerts));
    out
}

// --- alerts -----------------------------------------------------------------------------------

use crate::monitoring::{AlertNotification, AlertStatus};
use crate::scenario::{AlertExpect, AlertExpectations};

/// When the first fault was injected and the last one reverted (ms from the start of the run).
fn fault_window(rec: &Recording) -> Option<(f64, f64)> {
    use crate::record::EventKind;
    let inject = rec
        .events
        .iter()
        .find(|e| e.kind == EventKind::Inject)?
        .at_ms;
    let revert = rec
        .events
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::Revert)
        .map(|e| e.at_ms)
        .or_else(|| rec.phases.get(&Phase::Fault).map(|p| p.1))?;
    Some((inject, revert))
}

fn alert_evidence(n: &AlertNotification) -> Evidence {
    let summary = n.annotations.get("summary").cloned().unwrap_or_default();
    Evidence::Note {
        text: format!(
            "{:.1}s: Alertmanager notified {} {} ({}) {summary}",
            n.at_ms / 1000.0,
            n.alert,
            match n.status {
                AlertStatus::Firing => "firing",
                AlertStatus::Resolved => "resolved",
            },
            n.labels
                .iter()
                .filter(|(k, _)| k.as_str() != "alertname")
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn production_note(rec: &Recording, alert: &str) -> String {
    match rec.production_detection_s.get(alert) {
        Some(s) => format!(
            "; with production rule timings it would take about {}",
            humantime::format_duration(std::time::Duration::from_secs(s.round() as u64))
        ),
        None => String::new(),
    }
}

/// The alert was notified through Alertmanager within its deadline of the injection. The
/// summary carries the time to detect.
pub fn fires(rec: &Recording, a: &AlertExpect) -> CheckResult {
    let name = format!("fires:{}", a.name);
    let Some((inject, _)) = fault_window(rec) else {
        return fail(&name, Phase::Fault, "no fault was injected".into());
    };
    let deadline = inject + a.fires_within.as_secs_f64() * 1000.0;
    let first = rec
        .alerts
        .iter()
        .find(|n| n.alert == a.name && n.status == AlertStatus::Firing && n.at_ms >= inject);
    match first {
        Some(n) if n.at_ms <= deadline => pass(
            &name,
            Phase::Fault,
            format!(
                "{} fired {:.1}s after the injection (deadline {:.0}s){}",
                a.name,
                (n.at_ms - inject) / 1000.0,
                a.fires_within.as_secs_f64(),
                production_note(rec, &a.name)
            ),
        )
        .with(vec![alert_evidence(n)]),
        Some(n) => fail(
            &name,
            Phase::Fault,
            format!(
                "{} fired late: {:.1}s after the injection, deadline {:.0}s",
                a.name,
                (n.at_ms - inject) / 1000.0,
                a.fires_within.as_secs_f64()
            ),
        )
        .with(vec![alert_evidence(n)]),
        None => fail(
            &name,
            Phase::Fault,
            format!(
                "{} never fired (no notification reached the webhook){}",
                a.name,
                if rec.alerts.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; notified instead: {}",
                        rec.alerts
                            .iter()
                            .map(|n| n.alert.as_str())
                            .collect::<std::collections::BTreeSet<_>>()
                            .into_iter()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ),
        ),
    }
}

/// The alert was resolved within its deadline of the revert. The summary carries the time to
/// resolve.
pub fn resolves(rec: &Recording, a: &AlertExpect) -> CheckResult {
    let name = format!("resolves:{}", a.name);
    let within = a.resolves_within.unwrap_or_default();
    let Some((_, revert)) = fault_window(rec) else {
        return fail(&name, Phase::Recovery, "no fault was injected".into());
    };
    let fired = rec
        .alerts
        .iter()
        .any(|n| n.alert == a.name && n.status == AlertStatus::Firing);
    let resolved = rec
        .alerts
        .iter()
        .find(|n| n.alert == a.name && n.status == AlertStatus::Resolved && n.at_ms >= revert);
    let deadline = revert + within.as_secs_f64() * 1000.0;
    match resolved {
        _ if !fired => skip(
            &name,
            Phase::Recovery,
            format!("{} never fired, so it cannot resolve", a.name),
        ),
        Some(n) if n.at_ms <= deadline => pass(
            &name,
            Phase::Recovery,
            format!(
                "{} resolved {:.1}s after the revert (deadline {:.0}s)",
                a.name,
                (n.at_ms - revert) / 1000.0,
                within.as_secs_f64()
            ),
        )
        .with(vec![alert_evidence(n)]),
        Some(n) => fail(
            &name,
            Phase::Recovery,
            format!(
                "{} resolved late: {:.1}s after the revert, deadline {:.0}s",
                a.name,
                (n.at_ms - revert) / 1000.0,
                within.as_secs_f64()
            ),
        )
        .with(vec![alert_evidence(n)]),
        None => fail(
            &name,
            Phase::Recovery,
            format!(
                "{} was still firing at the end of the run (deadline {:.0}s after the revert)",
                a.name,
                within.as_secs_f64()
            ),
        ),
    }
}

/// Precision: nothing fires in steady state, and during and after the fault nothing fires but
/// the expected and allowed alerts.
pub fn quiet(rec: &Recording, alerts: &AlertExpectations) -> Vec<CheckResult> {
    let inject = fault_window(rec).map(|w| w.0).unwrap_or(f64::INFINITY);
    let firing = |n: &&AlertNotification| n.status == AlertStatus::Firing;
    let steady: Vec<&AlertNotification> = rec
        .alerts
        .iter()
        .filter(firing)
        .filter(|n| n.at_ms < inject)
        .collect();
    let unexpected: Vec<&AlertNotification> = rec
        .alerts
        .iter()
        .filter(firing)
        .filter(|n| n.at_ms >= inject)
        .filter(|n| {
            !alerts.expect.iter().any(|a| a.name == n.alert) && !alerts.allow.contains(&n.alert)
        })
        .collect();
    let names = |ns: &[&AlertNotification]| {
        ns.iter()
            .map(|n| n.alert.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    out.push(if steady.is_empty() {
        pass(
            "quiet",
            Phase::Steady,
            "no alert fired before the fault".into(),
        )
    } else {
        fail(
            "quiet",
            Phase::Steady,
            format!("{} fired before any fault: a false alarm", names(&steady)),
        )
        .with(
            steady
                .iter()
                .take(MAX_EXAMPLES)
                .map(|n| alert_evidence(n))
                .collect(),
        )
    });
    out.push(if unexpected.is_empty() {
        pass(
            "quiet",
            Phase::Fault,
            "only the expected and allowed alerts fired".into(),
        )
    } else {
        fail(
            "quiet",
            Phase::Fault,
            format!(
                "{} fired but the scenario neither expects nor allows it",
                names(&unexpected)
            ),
        )
        .with(
            unexpected
                .iter()
                .take(MAX_EXAMPLES)
                .map(|n| alert_evidence(n))
                .collect(),
        )
    });
    out
}

// --- status -----------------------------------------------------------------------------------

/// Status codes allowed, forbidden and required in a phase, overall and per route.
pub fn status(
    rec: &Recording,
    phase: Phase,
    reqs: &[&RequestRecord],
    expect: &PhaseExpect,
) -> CheckResult {
    if reqs.is_empty() {
        return fail(
            "status",
            phase,
            "no requests were sent in this phase".into(),
        );
    }
    let mut problems = Vec::new();
    let mut evidence = Vec::new();
    let mut groups: Vec<(String, Vec<&RequestRecord>, &StatusExpect)> =
        vec![("all routes".into(), reqs.to_vec(), &expect.status)];
    for (route, e) in &expect.routes {
        let rs: Vec<&RequestRecord> = reqs.iter().copied().filter(|r| r.route == *route).collect();
        groups.push((route.clone(), rs, e));
    }
    for (label, rs, e) in &groups {
        if let Some(allow) = &e.allow {
            let bad: Vec<&&RequestRecord> = rs
                .iter()
                .filter(|r| !allow.iter().any(|p| p.matches(r.status())))
                .collect();
            if !bad.is_empty() {
                let counts = count_statuses(bad.iter().map(|r| r.status()));
                problems.push(format!(
                    "{label}: {} answer(s) outside {} ({counts})",
                    bad.len(),
                    join(allow)
                ));
                for r in bad.iter().take(MAX_EXAMPLES) {
                    evidence.push(request_evidence(
                        rec,
                        r,
                        format!("{} is not allowed for {label}", describe_status(r.status())),
                    ));
                }
            }
        }
        for p in &e.forbid {
            let bad: Vec<&&RequestRecord> = rs.iter().filter(|r| p.matches(r.status())).collect();
            if !bad.is_empty() {
                problems.push(format!("{label}: {} forbidden {p} answer(s)", bad.len()));
                for r in bad.iter().take(MAX_EXAMPLES) {
                    evidence.push(request_evidence(
                        rec,
                        r,
                        format!("{p} is forbidden for {label}"),
                    ));
                }
            }
        }
        for p in &e.require {
            if !rs.iter().any(|r| p.matches(r.status())) {
                problems.push(format!(
                    "{label}: expected at least one {p} answer, saw none ({})",
                    count_statuses(rs.iter().map(|r| r.status()))
                ));
            }
        }
    }
    let counts = count_statuses(reqs.iter().map(|r| r.status()));
    if problems.is_empty() {
        pass(
            "status",
            phase,
            format!("{} answers as expected ({counts})", reqs.len()),
        )
    } else {
        fail("status", phase, problems.join("; ")).with(evidence)
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("|")
}

/// `200×40, 503×3, no answer×1`.
pub fn count_statuses(statuses: impl Iterator<Item = Option<u16>>) -> String {
    let mut counts: BTreeMap<Option<u16>, usize> = BTreeMap::new();
    for s in statuses {
        *counts.entry(s).or_default() += 1;
    }
    counts
        .iter()
        .map(|(s, n)| format!("{}×{n}", describe_status(*s)))
        .collect::<Vec<_>>()
        .join(", ")
}

// --- latency ----------------------------------------------------------------------------------

/// The q-quantile (0..=1) of `values`, nearest rank.
pub fn quantile(values: &mut [f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// Latency percentiles and maximum in a phase. Requests with no answer count at the latency at
/// which they gave up, so a hang cannot hide.
pub fn latency(phase: Phase, reqs: &[&RequestRecord], expect: &PhaseExpect) -> Option<CheckResult> {
    let l = &expect.latency;
    if l.p50.is_none() && l.p99.is_none() && l.max.is_none() {
        return None;
    }
    let mut lat: Vec<f64> = reqs.iter().map(|r| r.latency_ms).collect();
    if lat.is_empty() {
        return Some(fail("latency", phase, "no requests in this phase".into()));
    }
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for (label, q, limit) in [
        ("p50", 0.5, l.p50),
        ("p99", 0.99, l.p99),
        ("max", 1.0, l.max),
    ] {
        let v = quantile(&mut lat, q).unwrap_or(0.0);
        seen.push(format!("{label} {v:.0}ms"));
        if let Some(limit) = limit {
            let limit_ms = limit.as_secs_f64() * 1000.0;
            if v > limit_ms {
                problems.push(format!("{label} {v:.0}ms > {limit_ms:.0}ms"));
            }
        }
    }
    let evidence: Vec<Evidence> = if problems.is_empty() {
        Vec::new()
    } else {
        let mut slowest: Vec<&&RequestRecord> = reqs.iter().collect();
        slowest.sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms));
        slowest
            .iter()
            .take(MAX_EXAMPLES)
            .map(|r| Evidence::Note {
                text: format!(
                    "{} {} took {:.0}ms and got {}",
                    r.method(),
                    r.path,
                    r.latency_ms,
                    describe_status(r.status())
                ),
            })
            .collect()
    };
    Some(if problems.is_empty() {
        pass("latency", phase, seen.join(", "))
    } else {
        fail("latency", phase, problems.join("; ")).with(evidence)
    })
}

// --- error bodies -----------------------------------------------------------------------------

fn errors<'a>(reqs: &'a [&'a RequestRecord]) -> impl Iterator<Item = &'a RequestRecord> {
    reqs.iter()
        .copied()
        .filter(|r| r.status().is_some_and(|s| s >= 400))
}

/// Why an error response is not valid problem+json, if it is not.
pub fn problem_json_violation(r: &RequestRecord) -> Option<String> {
    let status = r.status()?;
    let ct = r.header("content-type").unwrap_or("");
    if !ct.starts_with("application/problem+json") {
        return Some(format!(
            "content-type is `{ct}`, not application/problem+json"
        ));
    }
    let body = r.body().unwrap_or("");
    let v: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Some(format!("body is not JSON: {e}")),
    };
    match v.get("status").and_then(|s| s.as_u64()) {
        Some(s) if s == u64::from(status) => {}
        Some(s) => return Some(format!("`status` is {s} but the HTTP status is {status}")),
        None => return Some("no numeric `status` member".into()),
    }
    if v.get("title").and_then(|t| t.as_str()).is_none() {
        return Some("no `title` member".into());
    }
    None
}

/// Every 4xx/5xx is problem+json with `status` equal to the HTTP status.
pub fn problem_json(rec: &Recording, phase: Phase, reqs: &[&RequestRecord]) -> CheckResult {
    let errs: Vec<&RequestRecord> = errors(reqs).collect();
    if errs.is_empty() {
        return pass("problem-json", phase, "no error responses to check".into());
    }
    let bad: Vec<(&RequestRecord, String)> = errs
        .iter()
        .filter_map(|r| problem_json_violation(r).map(|w| (*r, w)))
        .collect();
    if bad.is_empty() {
        pass(
            "problem-json",
            phase,
            format!("all {} error responses are problem+json", errs.len()),
        )
    } else {
        let first = bad[0].1.clone();
        fail(
            "problem-json",
            phase,
            format!(
                "{} of {} error responses are not problem+json: {first}",
                bad.len(),
                errs.len()
            ),
        )
        .with(
            bad.into_iter()
                .take(MAX_EXAMPLES)
                .map(|(r, w)| request_evidence(rec, r, w))
                .collect(),
        )
    }
}

/// What an error body leaks, if anything, by the built-in patterns of [`crate::leaks`].
pub fn find_leak(body: &str) -> Option<crate::leaks::Leak> {
    crate::leaks::LeakScanner::builtin().find(body)
}

/// No error body leaks internals.
pub fn no_leaks(rec: &Recording, phase: Phase, reqs: &[&RequestRecord]) -> CheckResult {
    let errs: Vec<&RequestRecord> = errors(reqs).collect();
    let bad: Vec<(&RequestRecord, (String, String))> = errs
        .iter()
        .filter_map(|r| find_leak(r.body().unwrap_or("")).map(|l| (*r, (l.kind, l.text))))
        .collect();
    if bad.is_empty() {
        pass(
            "no-leaks",
            phase,
            format!("{} error bodies scanned, nothing internal", errs.len()),
        )
    } else {
        let (_, (kind, text)) = &bad[0];
        fail(
            "no-leaks",
            phase,
            format!(
                "{} error bodies leak internals, e.g. {kind}: `{text}`",
                bad.len()
            ),
        )
        .with(
            bad.iter()
                .take(MAX_EXAMPLES)
                .map(|(r, (k, t))| request_evidence(rec, r, format!("leaks {k}: `{t}`")))
                .collect(),
        )
    }
}

// --- request ids ------------------------------------------------------------------------------

fn is_error_log(l: &LogRecord) -> bool {
    matches!(
        l.field("level").map(str::to_ascii_uppercase).as_deref(),
        Some("ERROR" | "WARN")
    )
}

/// Every answer carries `x-request-id`, and every 4xx/5xx has an error log line with that id.
pub fn request_id(rec: &Recording, phase: Phase, reqs: &[&RequestRecord]) -> CheckResult {
    let answered: Vec<&RequestRecord> = reqs
        .iter()
        .copied()
        .filter(|r| r.status().is_some())
        .collect();
    let missing: Vec<&RequestRecord> = answered
        .iter()
        .copied()
        .filter(|r| !r.carries_request_id())
        .collect();
    let errs: Vec<&RequestRecord> = errors(reqs).collect();
    let unlogged: Vec<&RequestRecord> = errs
        .iter()
        .copied()
        .filter(|r| {
            r.header("x-request-id")
                .is_some_and(|id| !rec.logs_for(id).iter().any(|l| is_error_log(l)))
        })
        .collect();
    if missing.is_empty() && unlogged.is_empty() {
        return pass(
            "request-id",
            phase,
            format!(
                "{} answers carry x-request-id; all {} errors are logged with it",
                answered.len(),
                errs.len()
            ),
        );
    }
    let mut parts = Vec::new();
    let mut evidence = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("{} answers without x-request-id", missing.len()));
        evidence.extend(
            missing
                .iter()
                .take(MAX_EXAMPLES)
                .map(|r| request_evidence(rec, r, "no x-request-id header".into())),
        );
    }
    if !unlogged.is_empty() {
        parts.push(format!(
            "{} error answers with no error log line carrying their request id",
            unlogged.len()
        ));
        evidence.extend(unlogged.iter().take(MAX_EXAMPLES).map(|r| {
            request_evidence(rec, r, "no ERROR/WARN log line has this request id".into())
        }));
    }
    fail("request-id", phase, parts.join("; ")).with(evidence)
}

/// Every 503 says when to retry.
pub fn retry_after(rec: &Recording, phase: Phase, reqs: &[&RequestRecord]) -> CheckResult {
    let unavailable: Vec<&RequestRecord> = reqs
        .iter()
        .copied()
        .filter(|r| r.status() == Some(503))
        .collect();
    let bad: Vec<&RequestRecord> = unavailable
        .iter()
        .copied()
        .filter(|r| {
            !r.header("retry-after")
                .is_some_and(|v| v.trim().parse::<u64>().is_ok() || v.contains("GMT"))
        })
        .collect();
    if bad.is_empty() {
        pass(
            "retry-after",
            phase,
            format!("{} 503 answers, all with Retry-After", unavailable.len()),
        )
    } else {
        fail(
            "retry-after",
            phase,
            format!(
                "{} of {} 503 answers lack a valid Retry-After",
                bad.len(),
                unavailable.len()
            ),
        )
        .with(
            bad.iter()
                .take(MAX_EXAMPLES)
                .map(|r| request_evidence(rec, r, "503 without Retry-After".into()))
                .collect(),
        )
    }
}

// --- health -----------------------------------------------------------------------------------

/// `/readyz` or `/livez` in a phase. `pass`: every sample passes (in recovery: the last one
/// does, since readiness may take a moment to come back). `fail`: at least one sample fails.
pub fn health(rec: &Recording, phase: Phase, endpoint: &str, want: Health) -> CheckResult {
    let samples: Vec<&ProbeRecord> = rec
        .probes
        .iter()
        .filter(|p| p.endpoint == endpoint && rec.phase_at(p.at_ms) == phase)
        .collect();
    if samples.is_empty() {
        return fail(
            endpoint,
            phase,
            format!("/{endpoint} was never sampled in this phase"),
        );
    }
    let ok = |p: &ProbeRecord| p.status == Some(200);
    let failing: Vec<&&ProbeRecord> = samples.iter().filter(|p| !ok(p)).collect();
    let n = samples.len();
    let evidence = |p: &ProbeRecord| Evidence::Probe { probe: p.clone() };
    match want {
        Health::Fail if !failing.is_empty() => pass(
            endpoint,
            phase,
            format!(
                "/{endpoint} failed in {} of {n} samples, as expected",
                failing.len()
            ),
        )
        .with(vec![evidence(failing[0])]),
        Health::Fail => fail(
            endpoint,
            phase,
            format!("/{endpoint} passed in all {n} samples; it should have reported the failure"),
        )
        .with(vec![evidence(samples[n - 1])]),
        Health::Pass if phase == Phase::Recovery => {
            let last = samples[n - 1];
            if ok(last) {
                pass(
                    endpoint,
                    phase,
                    format!("/{endpoint} passes again by the end of recovery"),
                )
            } else {
                fail(
                    endpoint,
                    phase,
                    format!(
                        "/{endpoint} still answers {} at the end of recovery",
                        describe_status(last.status)
                    ),
                )
                .with(vec![evidence(last)])
            }
        }
        Health::Pass if failing.is_empty() => pass(
            endpoint,
            phase,
            format!("/{endpoint} passed in all {n} samples"),
        ),
        Health::Pass => fail(
            endpoint,
            phase,
            format!("/{endpoint} failed in {} of {n} samples", failing.len()),
        )
        .with(
            failing
                .iter()
                .take(MAX_EXAMPLES)
                .map(|p| evidence(p))
                .collect(),
        ),
    }
}

// --- metrics ----------------------------------------------------------------------------------

/// How much a metric moved over a phase: last sample in the phase minus the last sample before
/// it (or the first in it).
pub fn metric(rec: &Recording, phase: Phase, m: &MetricExpect) -> CheckResult {
    let Some(sel) = parse_series_selector(&m.series) else {
        return fail(
            "metric",
            phase,
            format!("`{}` is not a series selector", m.series),
        );
    };
    let Some((start, end)) = rec.phases.get(&phase).copied() else {
        return skip("metric", phase, "the phase did not run".into());
    };
    let before = rec.metrics.iter().rev().find(|s| s.at_ms <= start);
    let during: Vec<_> = rec
        .metrics
        .iter()
        .filter(|s| s.at_ms > start && s.at_ms <= end + 1000.0)
        .collect();
    let (Some(first), Some(last)) = (before.or(during.first().copied()), during.last()) else {
        return fail(
            "metric",
            phase,
            format!("/metrics was not scraped during the {phase} phase"),
        );
    };
    let (a, b) = (sel.sum(&first.values), sel.sum(&last.values));
    let delta = b - a;
    let mut problems = Vec::new();
    if let Some(min) = m.min_delta
        && delta < min
    {
        problems.push(format!("rose by {delta}, expected at least {min}"));
    }
    if let Some(max) = m.max_delta
        && delta > max
    {
        problems.push(format!("rose by {delta}, expected at most {max}"));
    }
    let evidence = vec![Evidence::Metric {
        series: m.series.clone(),
        before: a,
        after: b,
    }];
    if problems.is_empty() {
        pass("metric", phase, format!("{} moved {a} → {b}", m.series)).with(evidence)
    } else {
        fail(
            "metric",
            phase,
            format!("{} {}", m.series, problems.join("; ")),
        )
        .with(evidence)
    }
}

// --- recovery ---------------------------------------------------------------------------------

fn is_failure(r: &RequestRecord) -> bool {
    r.status().is_none_or(|s| s >= 500)
}

/// After the revert, errors return to the steady baseline within `within_ms`: every one-second
/// window from then on has an error rate no higher than steady state's plus one point.
pub fn recovery(rec: &Recording, within_ms: f64) -> CheckResult {
    let phase = Phase::Recovery;
    let Some((revert, end)) = rec.phases.get(&Phase::Recovery).copied() else {
        return fail("recovery", phase, "the recovery phase did not run".into());
    };
    let steady: Vec<&RequestRecord> = rec.requests_in(Phase::Steady).collect();
    let baseline = if steady.is_empty() {
        0.0
    } else {
        steady.iter().filter(|r| is_failure(r)).count() as f64 / steady.len() as f64
    };
    let reqs: Vec<&RequestRecord> = rec.requests_in(Phase::Recovery).collect();
    if reqs.is_empty() {
        return fail(
            "recovery",
            phase,
            "no requests in the recovery phase".into(),
        );
    }
    let windows = ((end - revert) / 1000.0).ceil().max(1.0) as usize;
    let mut rates = vec![(0usize, 0usize); windows];
    for r in &reqs {
        let i = (((r.at_ms - revert) / 1000.0) as usize).min(windows - 1);
        rates[i].1 += 1;
        if is_failure(r) {
            rates[i].0 += 1;
        }
    }
    let bad = |(e, n): (usize, usize)| n > 0 && e as f64 / n as f64 > baseline + 0.01;
    let recovered_window = (0..windows).find(|&i| rates[i..].iter().all(|w| !bad(*w)));
    match recovered_window {
        Some(i) if (i as f64) * 1000.0 <= within_ms => pass(
            "recovery",
            phase,
            format!(
                "errors back to baseline ({:.1}%) within {}s of the revert (deadline {:.1}s)",
                baseline * 100.0,
                i,
                within_ms / 1000.0
            ),
        ),
        other => {
            let last_bad = reqs.iter().rev().find(|r| is_failure(r));
            let summary = match other {
                Some(i) => format!(
                    "errors took {i}s to return to baseline after the revert; deadline {:.1}s",
                    within_ms / 1000.0
                ),
                None => "errors never returned to baseline during the recovery phase".into(),
            };
            fail("recovery", phase, summary).with(
                last_bad
                    .map(|r| {
                        vec![request_evidence(
                            rec,
                            r,
                            "a failure after the deadline".into(),
                        )]
                    })
                    .unwrap_or_default(),
            )
        }
    }
}

/// The target recovered by itself: it was not restarted and is still running. A crash the
/// scenario planned (the `crash` fault kills the target and starts it again) is not a restart
/// the target needed: its exit, and the one start after it, do not count.
pub fn no_restart(rec: &Recording) -> CheckResult {
    use crate::record::EventKind;
    let starts = rec
        .events
        .iter()
        .filter(|e| e.kind == EventKind::TargetStart)
        .count();
    let planned = rec
        .events
        .iter()
        .filter(|e| {
            e.kind == EventKind::TargetExit && e.detail.contains(crate::record::PLANNED_EXIT)
        })
        .count();
    let exits: Vec<_> = rec
        .events
        .iter()
        .filter(|e| {
            e.kind == EventKind::TargetExit
                && !e.detail.contains("stopped by the lab")
                && !e.detail.contains(crate::record::PLANNED_EXIT)
        })
        .collect();
    let mut r = if starts <= 1 + planned && exits.is_empty() {
        CheckResult::new(
            "no-restart",
            None,
            Verdict::Pass,
            if planned == 0 {
                "the target kept running through the run, no restart needed".into()
            } else {
                format!(
                    "the target restarted only after the {planned} crash(es) the scenario planned"
                )
            },
        )
    } else {
        CheckResult::new(
            "no-restart",
            None,
            Verdict::Fail,
            format!(
                "the target exited {} time(s) and was started {starts} time(s)",
                exits.len() + planned
            ),
        )
    };
    r.evidence = exits
        .iter()
        .map(|e| Evidence::Note {
            text: e.detail.clone(),
        })
        .collect();
    r
}

// --- data integrity ---------------------------------------------------------------------------

/// Ids of orders the target acknowledged with 201, each once: a retry answered with the same
/// order (an idempotent replay) acknowledges one order, not two.
pub fn acknowledged_orders(rec: &Recording) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    rec.requests
        .iter()
        .filter(|r| r.route == "POST /orders" && r.status() == Some(201))
        .filter_map(|r| {
            let v: serde_json::Value = serde_json::from_str(r.body()?).ok()?;
            v.get("id").map(|id| {
                id.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| id.to_string())
            })
        })
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

/// How long one invariant may run.
const INVARIANT_TIMEOUT: &str = "5s";

/// Runs each invariant and says which do not hold. An invariant is the scenario's SQL run with
/// the run's credentials: it runs in a read-only transaction (a write, even in a CTE or a
/// function, is an error) with a statement timeout, and is rolled back.
async fn check_invariants(conn: &mut sqlx::PgConnection, queries: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    for q in queries {
        match invariant_holds(conn, q).await {
            Ok(true) => {}
            Ok(false) => problems.push(format!("invariant violated: {q}")),
            Err(e) => problems.push(format!("invariant `{q}` could not run: {e}")),
        }
    }
    problems
}

async fn invariant_holds(conn: &mut sqlx::PgConnection, q: &str) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = '{INVARIANT_TIMEOUT}'"
    ))
    .execute(&mut *tx)
    .await?;
    // A prepared statement: one statement only, so `...; COMMIT; DELETE ...` cannot run either.
    let holds = sqlx::query_scalar::<_, bool>(q).fetch_one(&mut *tx).await;
    tx.rollback().await?;
    holds
}

/// After the run: every acknowledged order is in the database exactly once, and the scenario's
/// invariants hold.
pub async fn data_integrity(
    database_url: &str,
    scenario: &Scenario,
    rec: &Recording,
) -> CheckResult {
    use sqlx::Connection;
    let name = "data-integrity";
    let mut conn = match sqlx::PgConnection::connect(database_url).await {
        Ok(c) => c,
        Err(e) => {
            return CheckResult::new(
                name,
                None,
                Verdict::Fail,
                format!("cannot connect to the run's database to check it: {e}"),
            );
        }
    };
    let mut problems = Vec::new();
    let mut evidence = Vec::new();
    let acked = acknowledged_orders(rec);
    if scenario.expect.data.acknowledged_orders && !acked.is_empty() {
        let rows: Result<Vec<(String, i64)>, _> = sqlx::query_as(
            "SELECT a.id, count(o.id) FROM unnest($1::text[]) AS a(id) \
             LEFT JOIN orders o ON o.id::text = a.id GROUP BY a.id",
        )
        .bind(&acked)
        .fetch_all(&mut conn)
        .await;
        match rows {
            Ok(rows) => {
                let lost: Vec<&(String, i64)> = rows.iter().filter(|(_, n)| *n == 0).collect();
                let dup: Vec<&(String, i64)> = rows.iter().filter(|(_, n)| *n > 1).collect();
                if !lost.is_empty() {
                    problems.push(format!("{} acknowledged orders are missing", lost.len()));
                    evidence.extend(
                        lost.iter()
                            .take(MAX_EXAMPLES)
                            .map(|(id, _)| Evidence::Note {
                                text: format!(
                                    "order {id} was answered 201 but is not in the database"
                                ),
                            }),
                    );
                }
                if !dup.is_empty() {
                    problems.push(format!("{} acknowledged orders are duplicated", dup.len()));
                }
            }
            Err(e) => problems.push(format!("cannot query orders: {e}")),
        }
    }
    problems.extend(check_invariants(&mut conn, &scenario.expect.data.invariants).await);
    let _ = conn.close().await;
    if problems.is_empty() {
        CheckResult::new(
            name,
            None,
            Verdict::Pass,
            format!(
                "{} acknowledged orders each stored once; {} invariants hold",
                acked.len(),
                scenario.expect.data.invariants.len()
            ),
        )
    } else {
        CheckResult::new(name, None, Verdict::Fail, problems.join("; ")).with(evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Event, EventKind, MetricsSample, Outcome, TransportError};
    use crate::scenario::{LatencyLimits, StatusPattern};
    use std::time::Duration;

    fn resp(at_ms: f64, status: u16, headers: &[(&str, &str)], body: &str) -> RequestRecord {
        RequestRecord {
            seq: 0,
            at_ms,
            route: "GET /products/{id}".into(),
            path: "/products/1".into(),
            sent: None,
            latency_ms: 10.0,
            outcome: Outcome::Response {
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                body: Some(body.into()),
            },
        }
    }

    fn dropped(at_ms: f64) -> RequestRecord {
        RequestRecord {
            outcome: Outcome::Error {
                kind: TransportError::Closed,
                message: "connection closed".into(),
            },
            ..resp(at_ms, 200, &[], "")
        }
    }

    fn problem(status: u16, id: &str) -> RequestRecord {
        resp(
            1500.0,
            status,
            &[
                ("content-type", "application/problem+json"),
                ("x-request-id", id),
                ("retry-after", "1"),
            ],
            &format!("{{\"type\":\"about:blank\",\"title\":\"Unavailable\",\"status\":{status}}}"),
        )
    }

    fn rec(requests: Vec<RequestRecord>) -> Recording {
        let mut r = Recording {
            requests,
            ..Default::default()
        };
        r.phases.insert(Phase::Steady, (0.0, 1000.0));
        r.phases.insert(Phase::Fault, (1000.0, 2000.0));
        r.phases.insert(Phase::Recovery, (2000.0, 5000.0));
        r
    }

    fn error_log(id: &str) -> LogRecord {
        let json =
            serde_json::json!({"level": "ERROR", "message": "request failed", "request_id": id});
        LogRecord {
            at_ms: 1500.0,
            line: json.to_string(),
            json: Some(json),
        }
    }

    fn allow(p: &[&str]) -> PhaseExpect {
        PhaseExpect {
            status: StatusExpect {
                allow: Some(p.iter().map(|s| StatusPattern::parse(s).unwrap()).collect()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn refs(r: &Recording) -> Vec<&RequestRecord> {
        r.requests.iter().collect()
    }

    #[test]
    fn status_fails_on_a_dropped_connection_when_only_statuses_are_allowed() {
        let r = rec(vec![problem(500, "a"), dropped(1600.0)]);
        let c = status(&r, Phase::Fault, &refs(&r), &allow(&["2xx", "500"]));
        assert_eq!(c.verdict, Verdict::Fail, "{}", c.summary);
        assert!(c.summary.contains("no answer"), "{}", c.summary);
        assert_eq!(c.evidence.len(), 1);
    }

    #[test]
    fn status_fails_on_a_forbidden_status_and_passes_otherwise() {
        let r = rec(vec![problem(503, "a"), problem(500, "b")]);
        let mut e = PhaseExpect::default();
        e.status.forbid = vec![StatusPattern::Exact(500)];
        assert_eq!(
            status(&r, Phase::Fault, &refs(&r), &e).verdict,
            Verdict::Fail
        );
        let r = rec(vec![problem(503, "a")]);
        assert_eq!(
            status(&r, Phase::Fault, &refs(&r), &e).verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn status_fails_when_a_required_status_never_appears() {
        let r = rec(vec![resp(1500.0, 200, &[], "")]);
        let mut e = PhaseExpect::default();
        e.status.require = vec![StatusPattern::Class(5)];
        let c = status(&r, Phase::Fault, &refs(&r), &e);
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.summary.contains("saw none"));
    }

    #[test]
    fn status_per_route_applies_to_that_route_only() {
        let mut other = problem(503, "x");
        other.route = "POST /orders".into();
        let r = rec(vec![resp(1500.0, 200, &[], ""), other]);
        let mut e = PhaseExpect::default();
        e.routes.insert(
            "GET /products/{id}".into(),
            StatusExpect {
                forbid: vec![StatusPattern::Class(5)],
                ..Default::default()
            },
        );
        assert_eq!(
            status(&r, Phase::Fault, &refs(&r), &e).verdict,
            Verdict::Pass
        );
        e.routes.insert(
            "POST /orders".into(),
            StatusExpect {
                forbid: vec![StatusPattern::Class(5)],
                ..Default::default()
            },
        );
        assert_eq!(
            status(&r, Phase::Fault, &refs(&r), &e).verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn latency_fails_when_p99_exceeds_its_limit() {
        let mut reqs: Vec<RequestRecord> = (0..100)
            .map(|i| resp(1100.0 + i as f64, 200, &[], ""))
            .collect();
        reqs[7].latency_ms = 4000.0;
        let r = rec(reqs);
        let e = PhaseExpect {
            latency: LatencyLimits {
                p99: Some(Duration::from_millis(500)),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = latency(Phase::Fault, &refs(&r), &e).unwrap();
        assert_eq!(
            c.verdict,
            Verdict::Pass,
            "one slow request in 100 is the 1%"
        );
        r.requests.len();
        let mut reqs = r.requests.clone();
        reqs[8].latency_ms = 4000.0;
        let r = rec(reqs);
        let c = latency(Phase::Fault, &refs(&r), &e).unwrap();
        assert_eq!(c.verdict, Verdict::Fail, "{}", c.summary);
    }

    #[test]
    fn problem_json_fails_on_plain_text_and_on_a_status_mismatch() {
        let plain = resp(1500.0, 500, &[("content-type", "text/plain")], "oops");
        let mismatch = resp(
            1500.0,
            500,
            &[("content-type", "application/problem+json")],
            "{\"title\":\"x\",\"status\":400}",
        );
        for bad in [plain, mismatch] {
            let r = rec(vec![bad]);
            assert_eq!(
                problem_json(&r, Phase::Fault, &refs(&r)).verdict,
                Verdict::Fail
            );
        }
        let r = rec(vec![problem(503, "a")]);
        assert_eq!(
            problem_json(&r, Phase::Fault, &refs(&r)).verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn no_leaks_fails_on_each_kind_of_internal_detail() {
        for body in [
            "thread 'tokio-runtime-worker' panicked at src/http/orders.rs:42:9",
            "error at src/db.rs:10",
            "cannot open /tmp/fivehundred-run-1/data/receipts/x.json",
            "error returned from database: relation \"orders\" does not exist",
            "SELECT id FROM orders WHERE id = $1",
            "postgres://postgres@127.0.0.1:5432/shop",
            "connect to 127.0.0.1:5432 failed",
            "No space left on device (os error 28)",
            "pool timed out while waiting for an open connection",
        ] {
            assert!(find_leak(body).is_some(), "should leak: {body}");
            let r = rec(vec![resp(1500.0, 500, &[], body)]);
            assert_eq!(
                no_leaks(&r, Phase::Fault, &refs(&r)).verdict,
                Verdict::Fail,
                "{body}"
            );
        }
        for body in [
            "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"The database is unavailable; try again shortly.\"}",
            "{\"title\":\"Not Found\",\"status\":404,\"detail\":\"No product with id 7.\"}",
        ] {
            assert_eq!(find_leak(body), None, "{body}");
        }
    }

    #[test]
    fn request_id_fails_without_the_header_or_without_a_matching_log_line() {
        let r = rec(vec![resp(1500.0, 200, &[], "")]);
        assert_eq!(
            request_id(&r, Phase::Fault, &refs(&r)).verdict,
            Verdict::Fail
        );
        let r = rec(vec![problem(500, "abc")]);
        let c = request_id(&r, Phase::Fault, &refs(&r));
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.summary.contains("no error log line"));
        let mut r = rec(vec![problem(500, "abc")]);
        r.logs.push(error_log("abc"));
        assert_eq!(
            request_id(&r, Phase::Fault, &refs(&r)).verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn retry_after_fails_on_a_503_without_it() {
        let r = rec(vec![resp(1500.0, 503, &[], "")]);
        assert_eq!(
            retry_after(&r, Phase::Fault, &refs(&r)).verdict,
            Verdict::Fail
        );
        let r = rec(vec![problem(503, "a")]);
        assert_eq!(
            retry_after(&r, Phase::Fault, &refs(&r)).verdict,
            Verdict::Pass
        );
    }

    fn probe(at_ms: f64, endpoint: &str, status: Option<u16>) -> ProbeRecord {
        ProbeRecord {
            at_ms,
            endpoint: endpoint.into(),
            status,
            body: None,
        }
    }

    #[test]
    fn readyz_fail_expectation_fails_when_readiness_never_dropped() {
        let mut r = rec(vec![]);
        r.probes = vec![
            probe(1200.0, "readyz", Some(200)),
            probe(1700.0, "readyz", Some(200)),
        ];
        assert_eq!(
            health(&r, Phase::Fault, "readyz", Health::Fail).verdict,
            Verdict::Fail
        );
        r.probes.push(probe(1800.0, "readyz", Some(503)));
        assert_eq!(
            health(&r, Phase::Fault, "readyz", Health::Fail).verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn livez_pass_expectation_fails_on_one_failed_sample_and_recovery_needs_the_last() {
        let mut r = rec(vec![]);
        r.probes = vec![
            probe(1200.0, "livez", Some(200)),
            probe(1700.0, "livez", None),
        ];
        assert_eq!(
            health(&r, Phase::Fault, "livez", Health::Pass).verdict,
            Verdict::Fail
        );
        r.probes = vec![
            probe(2100.0, "readyz", Some(503)),
            probe(4900.0, "readyz", Some(503)),
        ];
        assert_eq!(
            health(&r, Phase::Recovery, "readyz", Health::Pass).verdict,
            Verdict::Fail
        );
        r.probes.push(probe(4950.0, "readyz", Some(200)));
        assert_eq!(
            health(&r, Phase::Recovery, "readyz", Health::Pass).verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn metric_fails_when_the_series_did_not_move_enough() {
        let mut r = rec(vec![]);
        let sample = |at_ms: f64, v: f64| MetricsSample {
            at_ms,
            values: [("app_panics_total{kind=\"handler\"}".to_string(), v)].into(),
        };
        r.metrics = vec![sample(900.0, 0.0), sample(1500.0, 0.0), sample(1990.0, 0.0)];
        let m = MetricExpect {
            series: "app_panics_total{kind=\"handler\"}".into(),
            min_delta: Some(1.0),
            max_delta: None,
        };
        assert_eq!(metric(&r, Phase::Fault, &m).verdict, Verdict::Fail);
        r.metrics[2] = sample(1990.0, 4.0);
        assert_eq!(metric(&r, Phase::Fault, &m).verdict, Verdict::Pass);
    }

    #[test]
    fn series_selectors_sum_matching_series() {
        let sel = parse_series_selector("app_db_errors_total{kind=\"connection\"}").unwrap();
        let values: BTreeMap<String, f64> = [
            (
                "app_db_errors_total{kind=\"connection\",route=\"a\"}".to_string(),
                2.0,
            ),
            (
                "app_db_errors_total{kind=\"connection\",route=\"b\"}".to_string(),
                3.0,
            ),
            ("app_db_errors_total{kind=\"other\"}".to_string(), 7.0),
        ]
        .into();
        assert_eq!(sel.sum(&values), 5.0);
        assert!(parse_series_selector("bad name{").is_none());
    }

    #[test]
    fn recovery_fails_when_errors_continue_past_the_deadline() {
        let mut reqs: Vec<RequestRecord> = (0..10)
            .map(|i| resp(i as f64 * 100.0, 200, &[], ""))
            .collect();
        for i in 0..30 {
            let at = 2000.0 + i as f64 * 100.0;
            reqs.push(if i < 15 {
                problem(503, "x")
            } else {
                resp(at, 200, &[], "")
            });
            reqs.last_mut().unwrap().at_ms = at;
        }
        let r = rec(reqs);
        assert_eq!(recovery(&r, 1000.0).verdict, Verdict::Fail);
        let c = recovery(&r, 3000.0);
        assert_eq!(c.verdict, Verdict::Pass, "{}", c.summary);
    }

    #[test]
    fn no_restart_fails_when_the_target_exited() {
        let mut r = rec(vec![]);
        r.events.push(Event {
            at_ms: 0.0,
            kind: EventKind::TargetStart,
            detail: "started".into(),
        });
        assert_eq!(no_restart(&r).verdict, Verdict::Pass);
        r.events.push(Event {
            at_ms: 1500.0,
            kind: EventKind::TargetExit,
            detail: "target exited: signal 9".into(),
        });
        assert_eq!(no_restart(&r).verdict, Verdict::Fail);
    }

    #[test]
    fn no_restart_ignores_a_planned_crash_but_not_a_second_unplanned_exit() {
        let event = |at_ms: f64, kind: EventKind, detail: String| Event {
            at_ms,
            kind,
            detail,
        };
        let mut r = rec(vec![]);
        r.events
            .push(event(0.0, EventKind::TargetStart, "started".into()));
        r.events.push(event(
            1000.0,
            EventKind::TargetExit,
            format!("target killed with SIGKILL {}", crate::record::PLANNED_EXIT),
        ));
        r.events
            .push(event(2000.0, EventKind::TargetStart, "started".into()));
        let c = no_restart(&r);
        assert_eq!(c.verdict, Verdict::Pass, "{}", c.summary);
        // A third start without a planned exit before it is a restart the target needed.
        r.events
            .push(event(3000.0, EventKind::TargetStart, "started".into()));
        assert_eq!(no_restart(&r).verdict, Verdict::Fail);
        r.events.pop();
        r.events.push(event(
            3000.0,
            EventKind::TargetExit,
            "target exited: signal 6".into(),
        ));
        assert_eq!(no_restart(&r).verdict, Verdict::Fail);
    }

    fn note(at_ms: f64, alert: &str, status: AlertStatus) -> AlertNotification {
        AlertNotification {
            at_ms,
            received: None,
            alert: alert.into(),
            status,
            labels: Default::default(),
            annotations: Default::default(),
            starts_at: None,
            ends_at: None,
            fingerprint: alert.into(),
        }
    }

    fn with_fault_events(mut r: Recording) -> Recording {
        for (at_ms, kind) in [(1000.0, EventKind::Inject), (2000.0, EventKind::Revert)] {
            r.events.push(Event {
                at_ms,
                kind,
                detail: String::new(),
            });
        }
        r
    }

    fn expect_alert(fires_s: u64, resolves_s: u64) -> AlertExpect {
        AlertExpect {
            name: "DatabaseUnavailable".into(),
            fires_within: Duration::from_secs(fires_s),
            resolves_within: Some(Duration::from_secs(resolves_s)),
        }
    }

    #[test]
    fn fires_fails_when_the_alert_never_fires_or_fires_late() {
        let mut r = with_fault_events(rec(vec![]));
        let a = expect_alert(5, 10);
        let c = fires(&r, &a);
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.summary.contains("never fired"), "{}", c.summary);
        r.alerts
            .push(note(9000.0, "DatabaseUnavailable", AlertStatus::Firing));
        let c = fires(&r, &a);
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.summary.contains("late"), "{}", c.summary);
        r.alerts[0].at_ms = 4000.0;
        r.production_detection_s
            .insert("DatabaseUnavailable".into(), 360.0);
        let c = fires(&r, &a);
        assert_eq!(c.verdict, Verdict::Pass, "{}", c.summary);
        assert!(
            c.summary.contains("3.0s after") && c.summary.contains("6m"),
            "{}",
            c.summary
        );
    }

    #[test]
    fn resolves_fails_when_the_alert_is_still_firing_or_resolves_late() {
        let mut r = with_fault_events(rec(vec![]));
        r.alerts
            .push(note(3000.0, "DatabaseUnavailable", AlertStatus::Firing));
        let a = expect_alert(5, 10);
        let c = resolves(&r, &a);
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.summary.contains("still firing"), "{}", c.summary);
        r.alerts
            .push(note(20000.0, "DatabaseUnavailable", AlertStatus::Resolved));
        assert_eq!(resolves(&r, &a).verdict, Verdict::Fail);
        r.alerts[1].at_ms = 8000.0;
        assert_eq!(resolves(&r, &a).verdict, Verdict::Pass);
    }

    #[test]
    fn quiet_fails_on_a_steady_state_alarm_and_on_an_unexpected_alert() {
        let expectations = AlertExpectations {
            expect: vec![expect_alert(5, 10)],
            allow: vec!["CircuitOpen".into()],
        };
        let mut r = with_fault_events(rec(vec![]));
        r.alerts
            .push(note(3000.0, "DatabaseUnavailable", AlertStatus::Firing));
        r.alerts
            .push(note(3000.0, "CircuitOpen", AlertStatus::Firing));
        assert!(
            quiet(&r, &expectations)
                .iter()
                .all(|c| c.verdict == Verdict::Pass)
        );
        r.alerts
            .push(note(500.0, "HighErrorRate", AlertStatus::Firing));
        let c = quiet(&r, &expectations);
        assert_eq!(c[0].verdict, Verdict::Fail, "steady alarm");
        r.alerts.remove(2);
        r.alerts
            .push(note(3500.0, "HandlerPanics", AlertStatus::Firing));
        let c = quiet(&r, &expectations);
        assert_eq!((c[0].verdict, c[1].verdict), (Verdict::Pass, Verdict::Fail));
        assert!(c[1].summary.contains("HandlerPanics"));
    }

    #[test]
    fn acknowledged_orders_come_from_201_bodies() {
        let mut a = resp(100.0, 201, &[], "{\"id\":\"7f1c\",\"quantity\":1}");
        a.route = "POST /orders".into();
        let mut b = a.clone();
        b.outcome = Outcome::Response {
            status: 503,
            headers: Default::default(),
            body: Some("{}".into()),
        };
        let replay = a.clone();
        assert_eq!(
            acknowledged_orders(&rec(vec![a, b, replay])),
            vec!["7f1c".to_string()],
            "a replayed order is one order"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_invariant_that_tries_to_write_fails_the_check_and_changes_nothing() {
        use sqlx::Connection;
        let pg = pglab::PgCluster::start()
            .await
            .expect("PostgreSQL server binaries are installed (apt-get install postgresql)");
        let url = pg.create_database("invariants").await.unwrap();
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE products (id int, stock int)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO products VALUES (1, 5), (2, 7)")
            .execute(&mut conn)
            .await
            .unwrap();
        let problems = check_invariants(
            &mut conn,
            &[
                "WITH gone AS (DELETE FROM products RETURNING 1) SELECT true".into(),
                "SELECT true FROM (SELECT set_config('transaction_read_only', 'off', true)) s"
                    .into(),
                "SELECT pg_sleep(30) IS NOT NULL".into(),
                "SELECT NOT EXISTS (SELECT 1 FROM products WHERE stock < 0)".into(),
            ],
        )
        .await;
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].contains("read-only transaction"),
            "{}",
            problems[0]
        );
        assert!(problems[1].contains("could not run"), "{}", problems[1]);
        assert!(problems[2].contains("statement timeout"), "{}", problems[2]);
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 2, "nothing deleted");
        conn.close().await.unwrap();
        pg.stop();
    }
}

//! `postmortem.md`: a markdown skeleton filled from the game day's recording. Timeline of
//! injections, reverts, halts, alerts and readiness changes; impact in numbers per fault window;
//! detection time per alert relative to the injection before it; what worked and what did not,
//! from the checks; and the sections only people can write, left for them.

use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::control::{Action, FaultWindow, LogEntry};
use super::live::impact;
use crate::checks::{CheckResult, Verdict};
use crate::monitoring::AlertStatus;
use crate::record::{EventKind, Recording, RequestRecord};

/// Everything the postmortem is written from.
#[derive(Debug)]
pub struct Input<'a> {
    pub started: DateTime<Utc>,
    pub ended_ms: f64,
    pub scenario: Option<&'a str>,
    pub target: String,
    pub rate: f64,
    pub seed: u64,
    pub windows: &'a [FaultWindow],
    pub log: &'a [LogEntry],
    pub recording: &'a Recording,
    pub checks: &'a [CheckResult],
    pub unreverted: &'a [String],
}

/// A table cell: no line breaks, no column breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn secs(ms: f64) -> String {
    let d = std::time::Duration::from_millis(ms.max(0.0).round() as u64);
    if d.as_secs() >= 60 {
        humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
    } else {
        format!("{:.1}s", ms / 1000.0)
    }
}

fn pct(n: usize, of: usize) -> String {
    if of == 0 {
        "–".into()
    } else {
        format!("{:.1}%", n as f64 * 100.0 / of as f64)
    }
}

fn latency(ms: Option<f64>) -> String {
    match ms {
        None => "–".into(),
        Some(v) if v >= 1000.0 => format!("{:.2}s", v / 1000.0),
        Some(v) => format!("{v:.0}ms"),
    }
}

/// An alert starting or stopping (repeated notifications of a state are not changes).
struct AlertChange {
    at_ms: f64,
    alert: String,
    firing: bool,
}

fn alert_changes(rec: &Recording) -> Vec<AlertChange> {
    let mut last: std::collections::BTreeMap<&str, AlertStatus> = Default::default();
    let mut out = Vec::new();
    for n in &rec.alerts {
        let before = last.insert(&n.fingerprint, n.status);
        if before != Some(n.status) && !(before.is_none() && n.status == AlertStatus::Resolved) {
            out.push(AlertChange {
                at_ms: n.at_ms,
                alert: n.alert.clone(),
                firing: n.status == AlertStatus::Firing,
            });
        }
    }
    out
}

impl Input<'_> {
    /// The wall-clock time (UTC) of a moment `ms` after the lab's start.
    fn at(&self, ms: f64) -> String {
        (self.started + chrono::Duration::milliseconds(ms as i64))
            .format("%H:%M:%S")
            .to_string()
    }
}

/// Writes the postmortem: the facts, then the timeline, impact, detection, what worked and what
/// did not, and the sections for people.
pub fn render(i: &Input) -> String {
    let mut s = String::new();
    facts(&mut s, i);
    timeline(&mut s, i);
    impact_section(&mut s, i);
    detection(&mut s, i);
    outcomes(&mut s, i);
    for_people(&mut s);
    s
}

/// The title and the table of facts: when, what target, scenario, load, faults, the record.
fn facts(s: &mut String, i: &Input) {
    let _ = writeln!(
        s,
        "# Postmortem: game day of {}\n",
        i.started.format("%Y-%m-%d")
    );
    let _ = writeln!(
        s,
        "> A skeleton filled in by fivehundred from what the lab recorded. Times are UTC; `+t` counts from the lab's start. Sections marked _to write_ are for people.\n"
    );
    let reverted = i
        .windows
        .iter()
        .filter(|w| w.reverted_at_ms.is_some())
        .count();
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| lab | {} – {} UTC ({}) |",
        i.at(0.0),
        i.at(i.ended_ms),
        secs(i.ended_ms)
    );
    let _ = writeln!(s, "| target | `{}` |", cell(&i.target));
    let _ = writeln!(
        s,
        "| scenario | {} |",
        i.scenario
            .map(|n| format!("`{n}` (its checks are below)"))
            .unwrap_or_else(|| "none (the default contract checks are below)".into())
    );
    let _ = writeln!(
        s,
        "| load | {} requests/s, open loop, seed {} |",
        i.rate, i.seed
    );
    let _ = writeln!(
        s,
        "| faults | {} injected, {} reverted{} |",
        i.windows.len(),
        reverted,
        if i.unreverted.is_empty() {
            String::new()
        } else {
            format!(
                "; **not reverted: {}** (run `fivehundred recover`)",
                cell(&i.unreverted.join(", "))
            )
        }
    );
    let _ = writeln!(
        s,
        "| record | [report.html](report.html), [report.json](report.json), [gameday.json](gameday.json) |\n"
    );
    let _ = writeln!(
        s,
        "## Summary\n\n_To write: what we set out to learn, what happened, what we learned — three sentences._\n"
    );
}

/// The timeline: the game-day log, alert changes, readiness changes and exits of the target,
/// in time order.
fn timeline(s: &mut String, i: &Input) {
    let rec = i.recording;
    let _ = writeln!(s, "## Timeline\n");
    let _ = writeln!(
        s,
        "| time (UTC) | +t | what happened | who |\n|---|---|---|---|"
    );
    let mut lines: Vec<(f64, String, String)> = i
        .log
        .iter()
        .map(|e| {
            let what = match e.action {
                Action::Abort => format!("**{}**", e.detail),
                Action::Halt => format!("**{}**", e.detail),
                _ => e.detail.clone(),
            };
            (e.at_ms, what, e.by.to_string())
        })
        .collect();
    for a in alert_changes(rec) {
        lines.push((
            a.at_ms,
            format!(
                "alert **{}** {}",
                a.alert,
                if a.firing { "firing" } else { "resolved" }
            ),
            "monitoring".into(),
        ));
    }
    let mut ready: Option<bool> = None;
    for p in rec.probes.iter().filter(|p| p.endpoint == "readyz") {
        let now = crate::present::observed::probe_passed(p);
        if ready.is_some() && ready != Some(now) {
            let what = if now {
                "`/readyz` passes again".to_string()
            } else {
                let why = crate::present::observed::failing_components(p).join("; ");
                format!("`/readyz` fails: {why}")
            };
            lines.push((p.at_ms, what, "target".into()));
        }
        ready = Some(now);
    }
    for e in &rec.events {
        if e.kind == EventKind::TargetExit && !e.detail.contains("stopped by the lab") {
            lines.push((e.at_ms, e.detail.clone(), "target".into()));
        }
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    if lines.is_empty() {
        let _ = writeln!(s, "| {} | +0.0s | nothing was injected | |", i.at(0.0));
    }
    for (ms, what, who) in &lines {
        let _ = writeln!(
            s,
            "| {} | +{} | {} | {} |",
            i.at(*ms),
            secs(*ms),
            cell(what),
            who
        );
    }
    let _ = writeln!(s);
}

/// Impact in numbers: the whole lab, the baseline before the first fault, and each fault
/// window.
fn impact_section(s: &mut String, i: &Input) {
    let reqs: Vec<&RequestRecord> = i.recording.requests.iter().collect();
    let all = impact(&reqs, 0.0, f64::INFINITY);
    let _ = writeln!(s, "## Impact\n");
    let _ = writeln!(
        s,
        "The whole lab: {} requests, {} failed (5xx or no answer: {}), p99 {}.",
        all.requests,
        all.failures,
        pct(all.failures, all.requests),
        latency(all.p99_ms)
    );
    if let Some(first) = i.windows.iter().map(|w| w.injected_at_ms).reduce(f64::min) {
        let base = impact(&reqs, 0.0, first);
        let _ = writeln!(
            s,
            "Before the first fault (the baseline): {} requests, {} failed ({}), p99 {}.",
            base.requests,
            base.failures,
            pct(base.failures, base.requests),
            latency(base.p99_ms)
        );
    }
    let _ = writeln!(s);
    if i.windows.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "| fault | window (UTC) | lasted | ended | requests | failed | error rate | p99 | worst 5 s p99 | answers |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    for w in i.windows {
        let end = w.reverted_at_ms.unwrap_or(i.ended_ms);
        let m = impact(&reqs, w.injected_at_ms, end);
        let _ = writeln!(
            s,
            "| #{} {} | {} – {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            w.id,
            cell(&w.fault),
            i.at(w.injected_at_ms),
            i.at(end),
            secs(end - w.injected_at_ms),
            cell(w.how.as_deref().unwrap_or("not reverted")),
            m.requests,
            m.failures,
            pct(m.failures, m.requests),
            latency(m.p99_ms),
            latency(m.worst_5s_p99_ms),
            cell(&m.statuses)
        );
    }
    let _ = writeln!(s);
}

/// Detection: each alert's first firing after each injection, with the time to detect, and the
/// fault windows no alert fired in.
fn detection(s: &mut String, i: &Input) {
    let _ = writeln!(s, "## Detection\n");
    let fired: Vec<AlertChange> = alert_changes(i.recording)
        .into_iter()
        .filter(|a| a.firing)
        .collect();
    if fired.is_empty() {
        let _ = writeln!(s, "No alert fired.\n");
    } else {
        detection_table(s, i, &fired);
    }
    for w in i.windows {
        let end = w.reverted_at_ms.unwrap_or(i.ended_ms);
        if !fired
            .iter()
            .any(|a| a.at_ms >= w.injected_at_ms && a.at_ms <= end)
        {
            let _ = writeln!(
                s,
                "- No alert fired while #{} {} was active ({}).",
                w.id,
                w.fault,
                secs(end - w.injected_at_ms)
            );
        }
    }
    let _ = writeln!(s);
}

/// The table of detection times, one row per alert and the injection before it.
fn detection_table(s: &mut String, i: &Input, fired: &[AlertChange]) {
    let _ = writeln!(
        s,
        "Detection time is from the injection before the alert to its first notification, on the lab's clock (the lab runs the production rules faster); the production estimate is the rule's `for` plus its shortest window.\n"
    );
    let _ = writeln!(
        s,
        "| alert | fired (UTC) | after | detection time | in production, about |\n|---|---|---|---|---|"
    );
    // The first firing of each alert after each injection: a flapping alert fires again
    // without being detected again.
    let mut seen: Vec<(String, Option<u64>)> = Vec::new();
    for a in fired {
        let cause = i
            .windows
            .iter()
            .filter(|w| w.injected_at_ms <= a.at_ms)
            .max_by(|x, y| x.injected_at_ms.total_cmp(&y.injected_at_ms));
        let key = (a.alert.clone(), cause.map(|w| w.id));
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let (after, took) = match cause {
            Some(w) => (
                format!(
                    "#{} {}{}",
                    w.id,
                    w.fault,
                    match w.reverted_at_ms {
                        Some(r) if r < a.at_ms => " (after its revert)",
                        _ => "",
                    }
                ),
                secs(a.at_ms - w.injected_at_ms),
            ),
            None => ("no fault (before any injection)".into(), "–".into()),
        };
        let prod = i
            .recording
            .production_detection_s
            .get(&a.alert)
            .map(|p| secs(p * 1000.0))
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            a.alert,
            i.at(a.at_ms),
            cell(&after),
            took,
            prod
        );
    }
    let _ = writeln!(s);
}

/// What worked (the passed checks) and what did not (failed checks, aborts, faults left in
/// place).
fn outcomes(s: &mut String, i: &Input) {
    let passed: Vec<&CheckResult> = i
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Pass)
        .collect();
    let failed: Vec<&CheckResult> = i
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .collect();
    let _ = writeln!(s, "## What worked\n");
    if passed.is_empty() {
        let _ = writeln!(s, "- _No check passed._");
    }
    for c in &passed {
        let _ = writeln!(s, "- ✓ `{}`: {}", c.id(), c.summary);
    }
    let _ = writeln!(s, "\n## What did not\n");
    let mut none = true;
    for c in &failed {
        none = false;
        let _ = writeln!(s, "- ✗ `{}`: {}", c.id(), c.summary);
    }
    for e in i.log.iter().filter(|e| e.action == Action::Abort) {
        none = false;
        let _ = writeln!(s, "- The lab aborted: {}", e.detail);
    }
    for u in i.unreverted {
        none = false;
        let _ = writeln!(s, "- {u} could not be reverted");
    }
    if none {
        let _ = writeln!(s, "- _No check failed._");
    }
    let _ = writeln!(
        s,
        "\nEvery check with its evidence (the failing request and response, the log lines with its request id) is in [report.html](report.html).\n"
    );
}

/// The sections only people can write: root cause, contributing factors, the response, action
/// items.
fn for_people(s: &mut String) {
    for (title, prompt) in [
        (
            "Root cause",
            "_To write: why the service behaved as it did, in its own code and configuration._",
        ),
        (
            "Contributing factors",
            "_To write: what made it worse or slower to see._",
        ),
        (
            "The response",
            "_To write: how the team noticed, diagnosed and reacted; what helped, what got in the way._",
        ),
    ] {
        let _ = writeln!(s, "## {title}\n\n{prompt}\n");
    }
    let _ = writeln!(
        s,
        "## Action items\n\n| action | owner | due |\n|---|---|---|\n| _to write_ | | |"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gameday::control::Who;

    #[test]
    fn the_postmortem_has_the_timeline_the_impact_and_the_sections_for_people() {
        let mut rec = Recording::default();
        for i in 0..40 {
            let at = i as f64 * 250.0;
            let status = if (4000.0..8000.0).contains(&at) {
                503
            } else {
                200
            };
            rec.requests.push(RequestRecord {
                seq: i,
                at_ms: at,
                route: "POST /orders".into(),
                path: "/orders".into(),
                sent: None,
                latency_ms: 10.0,
                outcome: crate::record::Outcome::Response {
                    status,
                    headers: Default::default(),
                    body: None,
                },
            });
        }
        rec.alerts.push(crate::monitoring::AlertNotification {
            at_ms: 6500.0,
            received: None,
            alert: "DatabaseUnavailable".into(),
            status: AlertStatus::Firing,
            labels: Default::default(),
            annotations: Default::default(),
            starts_at: None,
            ends_at: None,
            fingerprint: "f1".into(),
        });
        let windows = vec![FaultWindow {
            id: 1,
            fault: "database proxy: down".into(),
            name: Some("db-down".into()),
            injected_at_ms: 4000.0,
            injected_by: Who::Cli,
            deadline_ms: Some(34_000.0),
            reverted_at_ms: Some(8000.0),
            reverted_by: Some(Who::Page),
            how: Some("by the halt (page)".into()),
            spec: None,
        }];
        let log = vec![
            LogEntry {
                at_ms: 4000.0,
                at: String::new(),
                action: Action::Inject,
                by: Who::Cli,
                fault_id: Some(1),
                detail: "injected #1 database proxy: down".into(),
            },
            LogEntry {
                at_ms: 8000.0,
                at: String::new(),
                action: Action::Halt,
                by: Who::Page,
                fault_id: None,
                detail: "halt: reverted #1 database proxy: down".into(),
            },
        ];
        let md = render(&Input {
            started: "2025-03-01T10:00:00Z".parse().unwrap(),
            ended_ms: 10_000.0,
            scenario: None,
            target: "target-app".into(),
            rate: 4.0,
            seed: 7,
            windows: &windows,
            log: &log,
            recording: &rec,
            checks: &[],
            unreverted: &[],
        });
        assert!(
            md.contains("| 10:00:04 | +4.0s | injected #1 database proxy: down | cli |"),
            "{md}"
        );
        assert!(
            md.contains("**halt: reverted #1 database proxy: down**"),
            "{md}"
        );
        assert!(md.contains("alert **DatabaseUnavailable** firing"), "{md}");
        // 16 requests in the window, all 503.
        assert!(md.contains("| 16 | 16 | 100.0% |"), "{md}");
        assert!(
            md.contains("| DatabaseUnavailable | 10:00:06 | #1 database proxy: down | 2.5s |"),
            "{md}"
        );
        for section in [
            "## Summary",
            "## Root cause",
            "## Action items",
            "## What did not",
        ] {
            assert!(md.contains(section), "{section}");
        }
    }
}

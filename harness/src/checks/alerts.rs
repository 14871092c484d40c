//! Alert checks: the expected alerts fire within their deadline of the injection (`fires`) and
//! resolve within theirs of the revert (`resolves`), and nothing else fires (`quiet`).

use super::common::{MAX_EXAMPLES, fail, pass, skip};
use crate::monitoring::{AlertNotification, AlertStatus};
use crate::record::{Phase, Recording};
use crate::scenario::{AlertExpect, AlertExpectations};
use crate::verdict::{CheckResult, Evidence};

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

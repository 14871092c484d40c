//! "How it shows up": per aspect (client, logs, metric, alert, readiness, diagnose), the
//! scenario's learner text next to what this run captured of it.

use std::fmt::Write as _;

use super::evidence::{probe_block, request_block};
use super::text::{cut, esc, num, secs};
use crate::present::observed::{self, Observed};
use crate::present::report::ScenarioReport;
use crate::scenario::Health;

pub(super) fn shows_up(h: &mut String, s: &ScenarioReport, obs: &Observed<'_>) {
    let learn = &s.scenario.learn;
    h.push_str(
        "<h3>How it shows up</h3>\n<table class=\"shows\"><thead><tr><th></th>\
         <th>the scenario says</th><th>captured in this run</th></tr></thead><tbody>\n",
    );
    row(h, "client", &learn.client, &client(obs));
    row(h, "logs", &learn.logs, &logs(obs));
    row(h, "metric", &learn.metric, &metric(obs));
    row(h, "alert", &learn.alert, &alert(s, obs));
    // Readiness: not a learner field, but what a responder looks at first. The scenario's
    // expectation stands in for learner text here.
    row(h, "readiness", readiness_expected(s), &readiness(obs));
    row(h, "diagnose", &learn.diagnose, &diagnose(s, obs));
    h.push_str("</tbody></table>\n");
}

/// What this run captured of an aspect it did not show.
const NOT_SEEN: &str = "<span class=\"absent\">not seen in this run</span>";

/// The client: the fault phase's answers and one error answer.
fn client(obs: &Observed<'_>) -> String {
    let mut client = String::new();
    if obs.fault_requests > 0 {
        let _ = write!(
            client,
            "<p>fault phase: {} answers: {}</p>",
            obs.fault_requests,
            esc(&obs.fault_statuses)
        );
    }
    match obs.error_response {
        Some(r) => {
            client.push_str("<p>an error answer:</p>");
            request_block(&mut client, r);
        }
        None => client.push_str(NOT_SEEN),
    }
    client
}

/// The logs: the first error log line.
fn logs(obs: &Observed<'_>) -> String {
    match obs.error_log {
        Some(l) => format!(
            "<p>at {}:</p><pre class=\"log\">{}</pre>",
            secs(l.at_ms),
            esc(&cut(&l.line))
        ),
        None => NOT_SEEN.to_string(),
    }
}

/// The metrics: each series with where it went and when it first moved.
fn metric(obs: &Observed<'_>) -> String {
    let mut metric = String::new();
    if obs.metrics.is_empty() {
        metric.push_str(NOT_SEEN);
    } else {
        metric.push_str("<ul class=\"metrics\">");
        for m in &obs.metrics {
            let _ = write!(
                metric,
                "<li><code>{}</code> {} → {} <small>{}</small></li>",
                esc(&m.series),
                num(m.before),
                num(m.extreme),
                match (m.moved(), m.first_change_ms) {
                    (true, Some(t)) => format!("moved at {}", secs(t)),
                    (true, None) => "moved".into(),
                    (false, _) => "<span class=\"absent\">did not move</span>".into(),
                }
            );
        }
        metric.push_str("</ul>");
    }
    metric
}

/// The alerts: each one's firing span, and how long it would take with production timings.
fn alert(s: &ScenarioReport, obs: &Observed<'_>) -> String {
    if obs.alerts.is_empty() {
        return "<span class=\"absent\">not seen in this run (no alert notification was recorded)</span>"
            .to_string();
    }
    let mut a = String::from("<ul class=\"alerts\">");
    for span in observed::alert_spans(&obs.alerts) {
        let _ = write!(
            a,
            "<li><b>{}</b>{}</li>",
            esc(&observed::describe_span(&span, obs.fault_window)),
            if span.detail.is_empty() {
                String::new()
            } else {
                format!("<br><small>{}</small>", esc(&span.detail))
            }
        );
    }
    a.push_str("</ul>");
    for (alert, s) in &s.recording.production_detection_s {
        if obs.alerts.iter().any(|m| &m.alert == alert && m.firing) {
            let _ = write!(
                a,
                "<p><small>{}: with production rule timings it would fire after about {}</small></p>",
                esc(alert),
                esc(&humantime::format_duration(std::time::Duration::from_secs(
                    s.round().max(0.0) as u64
                ))
                .to_string())
            );
        }
    }
    a
}

/// Readiness in the fault phase: how many samples failed, which components, and the first
/// failing answer.
fn readiness(obs: &Observed<'_>) -> String {
    let r = &obs.readiness;
    if r.samples == 0 {
        return NOT_SEEN.to_string();
    }
    if r.failed == 0 {
        return format!(
            "<p>/readyz passed in all {} samples of the fault phase</p>",
            r.samples
        );
    }
    let mut t = format!(
        "<p>/readyz failed in {} of {} samples of the fault phase{}</p>",
        r.failed,
        r.samples,
        match r.passed_again_ms {
            Some(at) => format!("; passed again at {}", secs(at)),
            None => "; it had not passed again by the end".into(),
        }
    );
    if !r.failing_components.is_empty() {
        let _ = write!(
            t,
            "<p>failing: {}</p>",
            esc(&r.failing_components.join("; "))
        );
    }
    if let Some(p) = r.first_failure {
        probe_block(&mut t, p);
    }
    t
}

/// What the scenario expects of readiness, in words.
fn readiness_expected(s: &ScenarioReport) -> &'static str {
    match (
        s.scenario.expect.fault.readyz,
        s.scenario.expect.recovery.readyz,
    ) {
        (Some(Health::Fail), _) => {
            "expected: /readyz fails while the fault is active, and passes again in recovery"
        }
        (Some(Health::Pass), _) => "expected: /readyz keeps passing through the fault",
        (None, Some(Health::Pass)) => "expected: /readyz passes again by the end of recovery",
        _ => "",
    }
}

/// Diagnose: where this run's evidence for the learner's steps is.
fn diagnose(s: &ScenarioReport, obs: &Observed<'_>) -> String {
    let mut diag = String::new();
    if let Some(r) = obs.error_response
        && let Some(id) = s.recording.request_id(r)
    {
        let _ = write!(
            diag,
            "<p>request id of the error above: <code>{}</code></p>",
            esc(id)
        );
    }
    if let Some((inject, revert)) = obs.fault_window {
        let _ = write!(
            diag,
            "<p>fault active {} → {}</p>",
            secs(inject),
            secs(revert)
        );
    }
    let failed = observed::failed_ids(s);
    if !failed.is_empty() {
        let _ = write!(diag, "<p>failed checks: {}</p>", esc(&failed.join(", ")));
    }
    diag
}

fn row(h: &mut String, label: &str, says: &str, captured: &str) {
    let _ = writeln!(
        h,
        "<tr class=\"aspect-{label}\"><th>{label}</th><td class=\"says\">{}</td>\
         <td class=\"captured\">{captured}</td></tr>",
        if says.is_empty() {
            "<span class=\"absent\">—</span>".to_string()
        } else {
            esc(says)
        }
    );
}

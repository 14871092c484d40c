//! The checks with their evidence (the request and response, the log lines with its request id,
//! probe answers, metric values), failures first, and the table of events.

use std::fmt::Write as _;

use super::text::{cut, esc, num, secs};
use crate::checks::{CheckResult, Evidence, Verdict};
use crate::record::{EventKind, LogRecord, Outcome, ProbeRecord, Recording, RequestRecord};

/// Most log lines shown for one piece of evidence.
const MAX_LOG_LINES: usize = 10;

/// A verdict's badge text and CSS class.
pub(super) fn verdict_label(v: Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Pass => ("PASS", "pass"),
        Verdict::Fail => ("FAIL", "fail"),
        Verdict::Skip => ("SKIP", "skip"),
    }
}

/// The checks with their evidence; `rec` is the run's recording (where its request ids are).
pub(super) fn checks_list(h: &mut String, checks: &[CheckResult], rec: &Recording) {
    let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
    let _ = writeln!(
        h,
        "<h3>Checks <small>{} of {} passed{}</small></h3>\n<div class=\"checks\">",
        checks.iter().filter(|c| c.verdict == Verdict::Pass).count(),
        checks.len(),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    // Failures first: they are what the reader came for.
    let ordered = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .chain(checks.iter().filter(|c| c.verdict != Verdict::Fail));
    for c in ordered {
        let (label, class) = verdict_label(c.verdict);
        let _ = write!(
            h,
            "<div class=\"check {class}\" data-check=\"{}\"><div class=\"head\">\
             <span class=\"badge {class}\">{label}</span> <code>{}</code> {}</div>",
            esc(&c.id()),
            esc(&c.id()),
            esc(&c.summary)
        );
        if !c.evidence.is_empty() {
            let open = if c.verdict == Verdict::Fail {
                " open"
            } else {
                ""
            };
            let _ = write!(
                h,
                "<details class=\"evidence\"{open}><summary>evidence ({})</summary>",
                c.evidence.len()
            );
            for e in &c.evidence {
                evidence_block(h, e, rec);
            }
            h.push_str("</details>");
        }
        h.push_str("</div>\n");
    }
    h.push_str("</div>\n");
}

fn evidence_block(h: &mut String, e: &Evidence, rec: &Recording) {
    h.push_str("<div class=\"ev\">");
    match e {
        Evidence::Request { request, logs, why } => {
            let _ = write!(h, "<p class=\"why\">{}</p>", esc(why));
            request_block(h, request);
            match rec.request_id(request) {
                Some(id) if logs.is_empty() => {
                    let _ = write!(
                        h,
                        "<p class=\"absent\">no log line carries request id <code>{}</code></p>",
                        esc(id)
                    );
                }
                Some(id) => {
                    let _ = write!(
                        h,
                        "<p>log lines with request id <code>{}</code>:</p>",
                        esc(id)
                    );
                    log_lines(h, logs);
                }
                None => {
                    if !logs.is_empty() {
                        log_lines(h, logs);
                    }
                }
            }
        }
        Evidence::Metric {
            series,
            before,
            after,
        } => {
            let _ = write!(
                h,
                "<p class=\"metric\"><code>{}</code>: {} → {} (Δ {})</p>",
                esc(series),
                num(*before),
                num(*after),
                num(after - before)
            );
        }
        Evidence::Probe { probe } => probe_block(h, probe),
        Evidence::Logs { lines } => log_lines(h, lines),
        Evidence::Note { text } => {
            let _ = write!(h, "<p class=\"evnote\">{}</p>", esc(text));
        }
    }
    h.push_str("</div>");
}

pub(super) fn request_block(h: &mut String, r: &RequestRecord) {
    let mut t = format!(
        "> {} {}   (sent at {})\n",
        r.method(),
        r.path,
        secs(r.at_ms)
    );
    for (k, v) in r.request_headers() {
        let _ = writeln!(t, "> {k}: {v}");
    }
    if let Some(b) = r.request_body() {
        let _ = writeln!(t, ">\n> {}", cut(b));
    }
    match &r.outcome {
        Outcome::Response {
            status,
            headers,
            body,
        } => {
            let _ = writeln!(t, "< {status}   (after {:.0} ms)", r.latency_ms);
            for (k, v) in headers {
                let _ = writeln!(t, "< {k}: {v}");
            }
            if let Some(b) = body {
                let _ = writeln!(t, "<\n< {}", cut(b));
            }
        }
        Outcome::Error { kind, message } => {
            let _ = writeln!(
                t,
                "! no HTTP answer ({kind:?}) after {:.0} ms: {message}",
                r.latency_ms
            );
        }
    }
    let _ = write!(h, "<pre class=\"http\">{}</pre>", esc(&t));
}

pub(super) fn probe_block(h: &mut String, p: &ProbeRecord) {
    let _ = write!(
        h,
        "<pre class=\"probe\">GET /{} at {}: {}{}</pre>",
        esc(&p.endpoint),
        secs(p.at_ms),
        p.status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "no answer".into()),
        p.body
            .as_deref()
            .map(|b| format!("\n{}", esc(&cut(b))))
            .unwrap_or_default()
    );
}

fn log_lines(h: &mut String, lines: &[LogRecord]) {
    h.push_str("<pre class=\"log\">");
    for l in lines.iter().take(MAX_LOG_LINES) {
        let _ = writeln!(h, "{}", esc(&cut(&l.line)));
    }
    if lines.len() > MAX_LOG_LINES {
        let _ = writeln!(
            h,
            "… {} more line(s) in report.json",
            lines.len() - MAX_LOG_LINES
        );
    }
    h.push_str("</pre>");
}

pub(super) fn events_table(h: &mut String, rec: &Recording) {
    if rec.events.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<details class=\"events\"><summary>events ({})</summary><table>",
        rec.events.len()
    );
    for e in &rec.events {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            secs(e.at_ms),
            event_kind(e.kind),
            esc(&e.detail)
        );
    }
    h.push_str("</table></details>\n");
}

fn event_kind(k: EventKind) -> &'static str {
    match k {
        EventKind::PhaseStart => "phase",
        EventKind::Inject => "inject",
        EventKind::Revert => "revert",
        EventKind::TargetStart => "target start",
        EventKind::TargetExit => "target exit",
        EventKind::AlertFiring => "alert fired",
        EventKind::AlertResolved => "alert resolved",
        EventKind::Note => "note",
    }
}

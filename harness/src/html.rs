//! `report.html`: the whole run as one self-contained page (inline CSS and SVG, no script, no
//! network, opens from disk), for a CI artifact or a game-day record.
//!
//! Per scenario: a timeline, "how it shows up" (the scenario's learner text next to what this run
//! captured), the checks with their evidence, and the events. The timeline is SVG drawn here, in
//! Rust, rather than by a charting script: the page then needs no JavaScript at all, so its
//! Content-Security-Policy can forbid every script and every fetch.
//!
//! Everything from the recording (bodies, headers, log lines, event details) is untrusted and is
//! escaped. The recording may hold thousands of requests: the page aggregates them into one-second
//! buckets and shows only the requests that checks chose as evidence.

use std::fmt::Write as _;

use crate::checks::{CheckResult, Evidence, Verdict};
use crate::observed::{self, Observed};
use crate::record::{EventKind, LogRecord, Outcome, Phase, ProbeRecord, Recording, RequestRecord};
use crate::report::{RunReport, ScenarioReport};
use crate::scenario::Health;

/// The page's policy: nothing may be loaded from anywhere, inline style and `data:` images only.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/// Longest body or log line shown before it is cut (report.json has the whole of it).
const MAX_TEXT: usize = 4096;
/// Most log lines shown for one piece of evidence.
const MAX_LOG_LINES: usize = 10;

/// Renders the whole run.
pub fn render(report: &RunReport) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let t = report.totals();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>fivehundred: {} passed, {} failed, {} skipped</title>\n<style>{STYLE}</style>\n\
         </head>\n<body>\n<header>\n<h1>fivehundred report</h1>\n",
        t.passed, t.failed, t.skipped
    );
    let _ = write!(
        h,
        "<p class=\"totals\"><span class=\"badge pass\">{} passed</span> \
         <span class=\"badge fail\">{} failed</span> <span class=\"badge skip\">{} skipped</span>{}</p>\n\
         <dl class=\"meta\"><dt>seed</dt><dd><code id=\"seed\">{}</code></dd>\
         <dt>reproduce</dt><dd><code id=\"command\">{}</code></dd>\
         <dt>started</dt><dd>{}</dd><dt>tool</dt><dd>{}</dd></dl>\n</header>\n<main>\n",
        t.passed,
        t.failed,
        t.skipped,
        if report.strict && t.skipped > 0 {
            " (--strict: skips fail the run)"
        } else {
            ""
        },
        report.seed,
        esc(&report.command),
        esc(&report.started_at),
        esc(&report.tool),
    );
    if report.scenarios.len() > 1 {
        summary_table(&mut h, report);
    }
    if report.scenarios.is_empty() {
        h.push_str("<p>No scenario ran.</p>\n");
    }
    for (i, s) in report.scenarios.iter().enumerate() {
        scenario_section(&mut h, report, i, s);
    }
    h.push_str("</main>\n</body>\n</html>\n");
    h
}

fn anchor(i: usize, s: &ScenarioReport) -> String {
    let name: String = s
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("s{i}-{name}")
}

fn verdict_label(v: Verdict) -> (&'static str, &'static str) {
    match v {
        Verdict::Pass => ("PASS", "pass"),
        Verdict::Fail => ("FAIL", "fail"),
        Verdict::Skip => ("SKIP", "skip"),
    }
}

fn summary_table(h: &mut String, report: &RunReport) {
    h.push_str(
        "<section id=\"summary\"><h2>Scenarios</h2>\n<table class=\"summary\">\
         <thead><tr><th>verdict</th><th>scenario</th><th>cause</th><th>checks</th>\
         <th>failed checks</th><th>time</th></tr></thead><tbody>\n",
    );
    for (i, s) in report.scenarios.iter().enumerate() {
        let (label, class) = verdict_label(s.verdict);
        let failed = observed::failed_ids(s);
        let _ = writeln!(
            h,
            "<tr class=\"{class}\"><td><span class=\"badge {class}\">{label}</span></td>\
             <td><a href=\"#{}\">{}</a></td><td>{}</td><td>{} of {} passed</td><td>{}</td>\
             <td>{:.1}s</td></tr>",
            anchor(i, s),
            esc(&s.name),
            esc(&s.cause),
            s.checks
                .iter()
                .filter(|c| c.verdict == Verdict::Pass)
                .count(),
            s.checks.len(),
            if failed.is_empty() {
                s.note.as_deref().map(esc).unwrap_or_default()
            } else {
                esc(&failed.join(", "))
            },
            s.duration_s
        );
    }
    h.push_str("</tbody></table></section>\n");
}

fn scenario_section(h: &mut String, report: &RunReport, i: usize, s: &ScenarioReport) {
    let (label, class) = verdict_label(s.verdict);
    let obs = observed::observe(s);
    let _ = write!(
        h,
        "<section class=\"scenario {class}\" id=\"{}\">\n\
         <h2><span class=\"badge {class}\">{label}</span> {} <small>{}</small></h2>\n\
         <p class=\"facts\">cause: <b>{}</b> · protection: <b>{}</b> · {:.1}s · {} · \
         seed <code>{}</code></p>\n",
        anchor(i, s),
        esc(&s.name),
        esc(&s.title),
        esc(&s.cause),
        esc(s.protection.as_deref().unwrap_or("none")),
        s.duration_s,
        esc(&s.file),
        report.seed,
    );
    if let Some(n) = &s.note {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(n));
    }
    if !s.scenario.learn.summary.is_empty() {
        let _ = writeln!(
            h,
            "<p class=\"learn\">{}</p>",
            esc(&s.scenario.learn.summary)
        );
    }
    let _ = writeln!(
        h,
        "<p class=\"repro\">reproduce: <code>{}</code> (this scenario alone: <code>{}</code>)</p>",
        esc(&report.command),
        esc(&single_command(report, s))
    );
    h.push_str("<h3>Timeline</h3>\n");
    timeline_svg(h, &s.recording, &anchor(i, s));
    shows_up(h, s, &obs);
    checks_list(h, &s.checks);
    events_table(h, &s.recording);
    h.push_str("</section>\n");
}

/// The reproduce command narrowed to one scenario: the run's command with its scenario names
/// replaced by this one.
fn single_command(report: &RunReport, s: &ScenarioReport) -> String {
    let names: Vec<&str> = report.scenarios.iter().map(|s| s.name.as_str()).collect();
    let mut out = Vec::new();
    let mut placed = false;
    let mut after_dashes = false;
    for w in report.command.split(' ') {
        after_dashes |= w == "--";
        if !after_dashes && names.contains(&w) {
            if !placed {
                out.push(s.name.as_str());
                placed = true;
            }
            continue;
        }
        out.push(w);
    }
    if !placed {
        // `fivehundred run` with no names ran the whole catalogue.
        if let Some(pos) = out.iter().position(|w| *w == "run") {
            out.insert(pos + 1, s.name.as_str());
        }
    }
    out.join(" ")
}

// --- how it shows up ---------------------------------------------------------------------------

fn shows_up(h: &mut String, s: &ScenarioReport, obs: &Observed<'_>) {
    let learn = &s.scenario.learn;
    h.push_str(
        "<h3>How it shows up</h3>\n<table class=\"shows\"><thead><tr><th></th>\
         <th>the scenario says</th><th>captured in this run</th></tr></thead><tbody>\n",
    );
    let not_seen = "<span class=\"absent\">not seen in this run</span>";

    // Client.
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
        None => client.push_str(not_seen),
    }
    row(h, "client", &learn.client, &client);

    // Logs.
    let logs = match obs.error_log {
        Some(l) => format!(
            "<p>at {}:</p><pre class=\"log\">{}</pre>",
            secs(l.at_ms),
            esc(&cut(&l.line))
        ),
        None => not_seen.to_string(),
    };
    row(h, "logs", &learn.logs, &logs);

    // Metrics.
    let mut metric = String::new();
    if obs.metrics.is_empty() {
        metric.push_str(not_seen);
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
    row(h, "metric", &learn.metric, &metric);

    // Alerts.
    let alert = if obs.alerts.is_empty() {
        "<span class=\"absent\">not seen in this run (no alert notification was recorded)</span>"
            .to_string()
    } else {
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
    };
    row(h, "alert", &learn.alert, &alert);

    // Readiness: not a learner field, but what a responder looks at first.
    let r = &obs.readiness;
    let readiness = if r.samples == 0 {
        not_seen.to_string()
    } else if r.failed == 0 {
        format!(
            "<p>/readyz passed in all {} samples of the fault phase</p>",
            r.samples
        )
    } else {
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
    };
    // The scenario's expectation stands in for learner text here.
    let expected = match (
        s.scenario.expect.fault.readyz,
        s.scenario.expect.recovery.readyz,
    ) {
        (Some(Health::Fail), _) => {
            "expected: /readyz fails while the fault is active, and passes again in recovery"
        }
        (Some(Health::Pass), _) => "expected: /readyz keeps passing through the fault",
        (None, Some(Health::Pass)) => "expected: /readyz passes again by the end of recovery",
        _ => "",
    };
    row(h, "readiness", expected, &readiness);

    // Diagnose: the text, and where this run's evidence for it is.
    let mut diag = String::new();
    if let Some(r) = obs.error_response
        && let Some(id) = r.header("x-request-id")
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
    row(h, "diagnose", &learn.diagnose, &diag);
    h.push_str("</tbody></table>\n");
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

// --- checks and evidence -----------------------------------------------------------------------

fn checks_list(h: &mut String, checks: &[CheckResult]) {
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
                evidence_block(h, e);
            }
            h.push_str("</details>");
        }
        h.push_str("</div>\n");
    }
    h.push_str("</div>\n");
}

fn evidence_block(h: &mut String, e: &Evidence) {
    h.push_str("<div class=\"ev\">");
    match e {
        Evidence::Request { request, logs, why } => {
            let _ = write!(h, "<p class=\"why\">{}</p>", esc(why));
            request_block(h, request);
            match request.header("x-request-id") {
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

fn request_block(h: &mut String, r: &RequestRecord) {
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

fn probe_block(h: &mut String, p: &ProbeRecord) {
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

fn events_table(h: &mut String, rec: &Recording) {
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

// --- the timeline --------------------------------------------------------------------------------

/// Per-second aggregate of the requests due in that second.
#[derive(Debug, Default, Clone)]
struct Bucket {
    /// 2xx (and other non-errors), 4xx, 5xx, no answer.
    counts: [u32; 4],
    latencies: Vec<f64>,
}

const CLASSES: [(&str, &str); 4] = [
    ("2xx", "#4caf50"),
    ("4xx", "#ffb300"),
    ("5xx", "#e53935"),
    ("no answer", "#6a1b9a"),
];

fn class_index(r: &RequestRecord) -> usize {
    match r.status() {
        None => 3,
        Some(s) if s >= 500 => 2,
        Some(s) if s >= 400 => 1,
        Some(_) => 0,
    }
}

// Geometry of the drawing, in SVG user units (the SVG scales to the page width).
const W: f64 = 960.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 66.0;
const TOP: f64 = 30.0;
const PLOT_H: f64 = 190.0;
const BAND_H: f64 = 12.0;
/// Most rows the alert band gets; more alerts share the last one.
const MAX_ALERT_ROWS: usize = 6;

/// Draws the timeline of one scenario.
fn timeline_svg(h: &mut String, rec: &Recording, id: &str) {
    // The time range: the phases, and every request and probe, in whole seconds.
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for (a, b) in rec.phases.values() {
        lo = lo.min(*a);
        hi = hi.max(*b);
    }
    for t in rec
        .requests
        .iter()
        .map(|r| r.at_ms)
        .chain(rec.probes.iter().map(|p| p.at_ms))
    {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    if !lo.is_finite() || !hi.is_finite() {
        h.push_str("<p class=\"absent\">nothing was recorded, so there is no timeline</p>\n");
        return;
    }
    let t0 = (lo / 1000.0).floor();
    let t1 = ((hi / 1000.0).ceil()).max(t0 + 1.0);
    let n = (t1 - t0) as usize;
    let mut buckets = vec![Bucket::default(); n];
    for r in &rec.requests {
        let i = (((r.at_ms / 1000.0) - t0).floor() as usize).min(n - 1);
        buckets[i].counts[class_index(r)] += 1;
        buckets[i].latencies.push(r.latency_ms);
    }
    let p99: Vec<Option<f64>> = buckets
        .iter_mut()
        .map(|b| crate::checks::quantile(&mut b.latencies, 0.99))
        .collect();
    let max_count = buckets
        .iter()
        .map(|b| b.counts.iter().sum::<u32>())
        .max()
        .unwrap_or(0);
    // Requests come in whole numbers: no axis step below one.
    let (y_max, y_step) = match nice_axis(max_count.max(1) as f64) {
        (_, step) if step < 1.0 => (max_count.max(1) as f64, 1.0),
        axis => axis,
    };
    let max_lat = p99.iter().flatten().copied().fold(0.0, f64::max);
    let (l_max, l_step) = nice_axis(max_lat.max(1.0));

    let plot_w = W - LEFT - RIGHT;
    let x = |t_s: f64| LEFT + (t_s - t0) / (t1 - t0) * plot_w;
    let xm = |ms: f64| x(ms / 1000.0);
    let y = |c: f64| TOP + PLOT_H - c / y_max * PLOT_H;
    let yl = |ms: f64| TOP + PLOT_H - ms / l_max * PLOT_H;
    let bottom = TOP + PLOT_H;
    let fault_y = bottom + 26.0;
    let ready_y = fault_y + BAND_H + 4.0;
    let live_y = ready_y + BAND_H + 4.0;
    let alert_y = live_y + BAND_H + 4.0;
    // One row per alert that fired, in the order they first fired.
    let alerts = observed::alert_marks(rec);
    let mut alert_names: Vec<&str> = Vec::new();
    for a in alerts.iter().filter(|a| a.firing) {
        if !alert_names.contains(&a.alert.as_str()) {
            alert_names.push(&a.alert);
        }
    }
    let alert_rows = alert_names.len().clamp(1, MAX_ALERT_ROWS);
    let legend_y = alert_y + alert_rows as f64 * (BAND_H + 2.0) + 24.0;
    let height = legend_y + 34.0;

    let _ = writeln!(
        h,
        "<svg class=\"timeline\" id=\"timeline-{id}\" viewBox=\"0 0 {W} {height}\" \
         role=\"img\" aria-label=\"timeline: requests per second by status class, p99 latency, \
         fault window, readiness and events\" xmlns=\"http://www.w3.org/2000/svg\" \
         font-family=\"system-ui, sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(
        h,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{PLOT_H}\" fill=\"#fafafa\" \
         stroke=\"#ccc\"/>"
    );

    // Phases: boundaries and names along the top.
    for (p, (a, b)) in &rec.phases {
        let (xa, xb) = (xm(*a).max(LEFT), xm(*b).min(LEFT + plot_w));
        if xb <= xa {
            continue;
        }
        if *p == Phase::Fault {
            let _ = writeln!(
                h,
                "<rect class=\"fault-phase\" x=\"{xa:.1}\" y=\"{TOP}\" width=\"{:.1}\" \
                 height=\"{PLOT_H}\" fill=\"#ffebee\"><title>fault phase {} → {}</title></rect>",
                xb - xa,
                secs(*a),
                secs(*b)
            );
        }
        let _ = writeln!(
            h,
            "<line x1=\"{xa:.1}\" x2=\"{xa:.1}\" y1=\"{}\" y2=\"{bottom}\" stroke=\"#999\" \
             stroke-dasharray=\"3 3\"/><text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" \
             fill=\"#555\">{}</text>",
            TOP - 14.0,
            (xa + xb) / 2.0,
            TOP - 16.0,
            p.as_str()
        );
    }
    // Fault active: injection to revert.
    for (a, b, what) in observed::fault_windows(rec) {
        let (xa, xb) = (xm(a).max(LEFT), xm(b).min(LEFT + plot_w));
        let _ = writeln!(
            h,
            "<rect class=\"fault-window\" data-from-ms=\"{a:.0}\" data-to-ms=\"{b:.0}\" \
             x=\"{xa:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{PLOT_H}\" fill=\"#e53935\" \
             fill-opacity=\"0.14\" stroke=\"#e53935\" stroke-opacity=\"0.4\">\
             <title>fault active {} → {}: {}</title></rect>",
            (xb - xa).max(1.0),
            secs(a),
            secs(b),
            esc(&what)
        );
    }

    // Grid and the left axis (requests per second).
    let mut c = 0.0;
    while c <= y_max + 1e-9 {
        let yy = y(c);
        let _ = writeln!(
            h,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e0e0e0\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + plot_w,
            LEFT - 5.0,
            yy + 4.0,
            num(c)
        );
        c += y_step;
    }
    let _ = writeln!(
        h,
        "<text transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">requests/s</text>",
        TOP + PLOT_H / 2.0
    );
    // The right axis (p99 latency).
    let mut l = 0.0;
    while l <= l_max + 1e-9 {
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#1565c0\">{}</text>",
            LEFT + plot_w + 5.0,
            yl(l) + 4.0,
            ms_label(l)
        );
        l += l_step;
    }
    let _ = writeln!(
        h,
        "<text transform=\"translate({:.1} {:.1}) rotate(90)\" text-anchor=\"middle\" \
         fill=\"#1565c0\">p99 latency</text>",
        W - 10.0,
        TOP + PLOT_H / 2.0
    );

    // Stacked bars, one per second.
    let bw = plot_w / n as f64;
    h.push_str("<g class=\"bars\">");
    for (i, b) in buckets.iter().enumerate() {
        let total: u32 = b.counts.iter().sum();
        if total == 0 {
            continue;
        }
        let bx = LEFT + i as f64 * bw + bw * 0.1;
        let mut acc = 0.0;
        let tip = format!(
            "{}–{}s: {}{}",
            t0 as i64 + i as i64,
            t0 as i64 + i as i64 + 1,
            CLASSES
                .iter()
                .zip(b.counts)
                .filter(|(_, n)| *n > 0)
                .map(|((name, _), n)| format!("{name} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            p99[i]
                .map(|v| format!(", p99 {}", ms_label(v)))
                .unwrap_or_default()
        );
        let _ = write!(h, "<g><title>{}</title>", esc(&tip));
        for (k, (_, colour)) in CLASSES.iter().enumerate() {
            let cnt = b.counts[k] as f64;
            if cnt == 0.0 {
                continue;
            }
            let _ = write!(
                h,
                "<rect class=\"c{k}\" x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
                 fill=\"{colour}\"/>",
                y(acc + cnt),
                bw * 0.8,
                y(acc) - y(acc + cnt)
            );
            acc += cnt;
        }
        h.push_str("</g>");
    }
    h.push_str("</g>\n");

    // p99 line, broken where a second had no requests.
    let mut d = String::new();
    let mut pen_down = false;
    for (i, v) in p99.iter().enumerate() {
        match v {
            Some(v) => {
                let _ = write!(
                    d,
                    "{}{:.1} {:.1} ",
                    if pen_down { "L" } else { "M" },
                    LEFT + (i as f64 + 0.5) * bw,
                    yl(*v)
                );
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    if !d.is_empty() {
        let _ = writeln!(
            h,
            "<path class=\"p99\" d=\"{}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\"/>",
            d.trim_end()
        );
    }

    // Event markers.
    for e in &rec.events {
        let (colour, label) = match e.kind {
            EventKind::Inject => ("#b71c1c", "inject"),
            EventKind::Revert => ("#2e7d32", "revert"),
            EventKind::AlertFiring => ("#ef6c00", "alert fired"),
            EventKind::AlertResolved => ("#00897b", "alert resolved"),
            EventKind::TargetExit => ("#424242", "target exit"),
            _ => continue,
        };
        let ex = xm(e.at_ms).clamp(LEFT, LEFT + plot_w);
        let _ = writeln!(
            h,
            "<g class=\"marker {}\"><title>{} {}: {}</title><line x1=\"{ex:.1}\" x2=\"{ex:.1}\" \
             y1=\"{TOP}\" y2=\"{bottom}\" stroke=\"{colour}\" stroke-width=\"1.5\"/>\
             <path d=\"M{:.1} {} l5 -8 h-10 z\" fill=\"{colour}\"/></g>",
            label.replace(' ', "-"),
            secs(e.at_ms),
            label,
            esc(&e.detail),
            ex,
            TOP
        );
    }

    // The x axis.
    let (_, x_step) = nice_axis(t1 - t0);
    if (t0 / x_step).fract() != 0.0 {
        // The axis starts between round ticks: still say where.
        let _ = writeln!(
            h,
            "<text x=\"{LEFT}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#777\">{}s</text>",
            bottom + 15.0,
            num(t0)
        );
    }
    let mut t = (t0 / x_step).ceil() * x_step;
    while t <= t1 + 1e-9 {
        let xx = x(t);
        let _ = writeln!(
            h,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{bottom}\" y2=\"{:.1}\" stroke=\"#666\"/>\
             <text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}s</text>",
            bottom + 4.0,
            bottom + 15.0,
            num(t)
        );
        t += x_step;
    }

    // Bands under the axis: when the fault was active (the shading above sits behind the bars,
    // this row does not), /readyz and /livez per sample, and alerts while firing.
    let _ = write!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">fault</text><g class=\"band fault\">",
        LEFT - 5.0,
        fault_y + 10.0
    );
    for (a, b, what) in observed::fault_windows(rec) {
        let (xa, xb) = (xm(a).max(LEFT), xm(b).min(LEFT + plot_w));
        let _ = write!(
            h,
            "<rect x=\"{xa:.1}\" y=\"{fault_y:.1}\" width=\"{:.1}\" height=\"{BAND_H}\" \
             fill=\"#e53935\" fill-opacity=\"0.7\"><title>{}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#fff\" font-size=\"10\">{}</text>",
            (xb - xa).max(1.0),
            esc(&what),
            xa + 3.0,
            fault_y + 9.5,
            esc(&shorten(&what, ((xb - xa) / 6.0) as usize))
        );
    }
    h.push_str("</g>\n");
    for (endpoint, by) in [("readyz", ready_y), ("livez", live_y)] {
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">/{endpoint}</text>\
             <g class=\"band {endpoint}\">",
            LEFT - 5.0,
            by + 10.0
        );
        let probes: Vec<&ProbeRecord> = rec
            .probes
            .iter()
            .filter(|p| p.endpoint == endpoint)
            .collect();
        if probes.is_empty() {
            let _ = write!(
                h,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#999\">no samples</text>",
                LEFT + 4.0,
                by + 10.0
            );
        }
        for (k, p) in probes.iter().enumerate() {
            let end = probes
                .get(k + 1)
                .map(|q| q.at_ms)
                .unwrap_or(p.at_ms + 250.0);
            let (colour, state) = match p.status {
                None => ("#6a1b9a", "no answer"),
                Some(_) if observed::probe_passed(p) => ("#81c784", "pass"),
                Some(_) => ("#e57373", "fail"),
            };
            let (xa, xb) = (xm(p.at_ms).max(LEFT), xm(end).min(LEFT + plot_w));
            if xb <= xa {
                continue;
            }
            let _ = write!(
                h,
                "<rect class=\"{state}\" x=\"{xa:.1}\" y=\"{by:.1}\" width=\"{:.2}\" \
                 height=\"{BAND_H}\" fill=\"{colour}\"><title>/{endpoint} at {}: {}</title></rect>",
                xb - xa,
                secs(p.at_ms),
                p.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "no answer".into())
            );
        }
        h.push_str("</g>\n");
    }
    let _ = write!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">alerts</text><g class=\"band alerts\">",
        LEFT - 5.0,
        alert_y + 10.0
    );
    if alerts.is_empty() {
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#999\">no alert notifications recorded</text>",
            LEFT + 4.0,
            alert_y + 10.0
        );
    }
    let mut labelled = vec![false; alert_rows];
    for (k, a) in alerts.iter().enumerate().filter(|(_, a)| a.firing) {
        // Firing until the same alert's next resolution, or the end of the timeline. A repeated
        // firing notification of an alert already firing just overlaps its bar.
        let end = alerts[k + 1..]
            .iter()
            .find(|b| !b.firing && b.alert == a.alert)
            .map(|b| b.at_ms)
            .unwrap_or(t1 * 1000.0);
        // Alerts beyond the last row share it.
        let row = alert_names
            .iter()
            .position(|n| *n == a.alert)
            .unwrap_or(0)
            .min(alert_rows - 1);
        let ry = alert_y + row as f64 * (BAND_H + 2.0);
        let (xa, xb) = (xm(a.at_ms).max(LEFT), xm(end).min(LEFT + plot_w));
        let _ = write!(
            h,
            "<rect class=\"alert-firing\" x=\"{xa:.1}\" y=\"{ry:.1}\" width=\"{:.1}\" \
             height=\"{BAND_H}\" fill=\"#ffb74d\"><title>{} firing {} → {}</title></rect>",
            (xb - xa).max(1.0),
            esc(&a.alert),
            secs(a.at_ms),
            secs(end)
        );
        if !labelled[row] {
            labelled[row] = true;
            let _ = write!(
                h,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#6d3200\" font-size=\"10\">{}</text>",
                xa + 3.0,
                ry + 9.5,
                esc(if row + 1 == alert_rows && alert_names.len() > alert_rows {
                    "more alerts"
                } else {
                    &a.alert
                })
            );
        }
    }
    h.push_str("</g>\n");

    // Legend.
    let mut lx = LEFT;
    let ly = legend_y;
    let mut swatch = |h: &mut String, shape: &str, label: &str| {
        let _ = write!(
            h,
            "<g transform=\"translate({lx:.1} {ly:.1})\">{shape}<text x=\"16\" y=\"9\">{label}</text></g>"
        );
        lx += 22.0 + label.chars().count() as f64 * 6.2;
    };
    h.push_str("<g class=\"legend\">");
    for (name, colour) in CLASSES {
        swatch(
            h,
            &format!("<rect width=\"11\" height=\"11\" fill=\"{colour}\"/>"),
            name,
        );
    }
    swatch(
        h,
        "<line x1=\"0\" x2=\"12\" y1=\"6\" y2=\"6\" stroke=\"#1565c0\" stroke-width=\"2\"/>",
        "p99 latency",
    );
    swatch(
        h,
        "<rect width=\"11\" height=\"11\" fill=\"#e53935\" fill-opacity=\"0.25\"/>",
        "fault active",
    );
    for (colour, label) in [
        ("#b71c1c", "inject"),
        ("#2e7d32", "revert"),
        ("#ef6c00", "alert fired"),
        ("#00897b", "alert resolved"),
    ] {
        swatch(
            h,
            &format!("<path d=\"M6 11 l5 -9 h-10 z\" fill=\"{colour}\"/>"),
            label,
        );
    }
    lx = LEFT;
    let ly2 = ly + 16.0;
    for (colour, label) in [
        ("#81c784", "health: pass"),
        ("#e57373", "health: fail"),
        ("#6a1b9a", "health: no answer"),
    ] {
        let _ = write!(
            h,
            "<g transform=\"translate({lx:.1} {ly2:.1})\"><rect width=\"11\" height=\"11\" \
             fill=\"{colour}\"/><text x=\"16\" y=\"9\">{label}</text></g>"
        );
        lx += 22.0 + label.chars().count() as f64 * 6.2;
    }
    h.push_str("</g>\n</svg>\n");
}

/// An axis maximum and step for `max`: steps of 1, 2 or 5 times a power of ten, about five of
/// them.
fn nice_axis(max: f64) -> (f64, f64) {
    let raw = max / 5.0;
    let pow = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * pow)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * pow);
    ((max / step).ceil().max(1.0) * step, step)
}

// --- text helpers --------------------------------------------------------------------------------

/// Escapes text for HTML content and attribute values. Control characters other than newline
/// and tab become U+FFFD: they are not allowed in HTML and a hostile body may carry them.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with an ellipsis when cut (for labels inside the drawing).
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else if max <= 1 {
        String::new()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// Cuts long text at a character boundary, saying how much was left out.
fn cut(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… ({} more bytes in report.json)",
        &s[..end],
        s.len() - end
    )
}

fn secs(ms: f64) -> String {
    format!("{:.1}s", ms / 1000.0)
}

fn ms_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{}s", num(ms / 1000.0))
    } else {
        format!("{}ms", num(ms))
    }
}

/// A number without a needless fraction: `3`, `2.5`, `0.25`.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #fff; }
header, main { max-width: 1200px; margin: 0 auto; padding: 0 20px; }
header { border-bottom: 1px solid #ddd; padding-bottom: 8px; }
h1 { font-size: 22px; margin: 16px 0 6px; }
h2 { font-size: 19px; margin: 28px 0 4px; }
h2 small, h3 small { font-weight: normal; color: #555; }
h3 { font-size: 15px; margin: 18px 0 6px; }
code, pre { font: 12.5px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { background: #f6f8fa; border: 1px solid #e1e4e8; border-radius: 4px; padding: 6px 8px; margin: 4px 0;
      white-space: pre-wrap; overflow-wrap: anywhere; max-height: 24em; overflow: auto; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0; }
dl.meta dt { color: #555; } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-weight: 600; font-size: 12px; color: #fff; }
.badge.pass { background: #2e7d32; } .badge.fail { background: #c62828; } .badge.skip { background: #9e9d24; }
table { border-collapse: collapse; }
table.summary td, table.summary th { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: left; }
section.scenario { border-top: 3px solid #ddd; margin-top: 24px; }
section.scenario.fail { border-top-color: #c62828; } section.scenario.pass { border-top-color: #2e7d32; }
.facts, .repro { color: #444; margin: 2px 0; } .learn { max-width: 80ch; }
.note { background: #fff8e1; border-left: 4px solid #f9a825; padding: 4px 8px; }
svg.timeline { width: 100%; height: auto; max-height: 420px; display: block; }
table.shows { width: 100%; table-layout: fixed; }
table.shows th, table.shows td { border-top: 1px solid #eee; padding: 6px 8px; vertical-align: top; text-align: left; }
table.shows tbody th { width: 80px; color: #555; }
table.shows td.says { width: 38%; color: #333; }
table.shows p { margin: 0 0 4px; }
ul.alerts { margin: 0; padding-left: 1.1em; }
ul.metrics { margin: 0; padding-left: 1.1em; } ul.metrics code { overflow-wrap: anywhere; }
td.captured, td.says { overflow-wrap: anywhere; }
.absent { color: #888; font-style: italic; }
.check { border-left: 4px solid #ccc; padding: 3px 8px; margin: 3px 0; }
.check.fail { border-left-color: #c62828; background: #fff5f5; }
.check.pass { border-left-color: #2e7d32; } .check.skip { border-left-color: #9e9d24; }
.check .head code { font-weight: 600; }
details.evidence summary, details.events summary { cursor: pointer; color: #555; }
.ev { margin: 6px 0 10px 12px; } .why { font-weight: 600; margin: 4px 0; }
details.events table td { padding: 1px 10px 1px 0; }
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Event, MetricsSample};
    use std::collections::BTreeMap;

    fn scenario() -> crate::scenario::Scenario {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/db-down.toml");
        crate::scenario::load(&path).expect("the catalogue's db-down parses")
    }

    fn request(seq: u64, at_ms: f64, status: Option<u16>, body: Option<&str>) -> RequestRecord {
        let mut headers = BTreeMap::new();
        headers.insert("x-request-id".to_string(), format!("req-{seq}"));
        headers.insert(
            "content-type".to_string(),
            "application/problem+json".into(),
        );
        RequestRecord {
            seq,
            at_ms,
            route: "GET /products/{id}".into(),
            path: "/products/1".into(),
            sent: None,
            latency_ms: 12.0 + seq as f64,
            outcome: match status {
                Some(status) => Outcome::Response {
                    status,
                    headers: headers.into(),
                    body: body.map(Into::into),
                },
                None => Outcome::Error {
                    kind: crate::record::TransportError::Closed,
                    message: "connection reset".into(),
                },
            },
        }
    }

    fn report_with(recording: Recording, checks: Vec<CheckResult>) -> RunReport {
        let s = ScenarioReport::from_checks(&scenario(), checks, recording, 23.0, None);
        RunReport {
            tool: "fivehundred test".into(),
            seed: 42,
            command: "fivehundred run db-down --seed 42".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            strict: false,
            scenarios: vec![s],
        }
    }

    fn recording() -> Recording {
        let mut rec = Recording::default();
        rec.phases.insert(Phase::Steady, (0.0, 5000.0));
        rec.phases.insert(Phase::Fault, (5000.0, 13000.0));
        rec.phases.insert(Phase::Recovery, (13000.0, 20000.0));
        for i in 0..200u64 {
            let at = i as f64 * 100.0;
            let status = if (5000.0..13000.0).contains(&at) && i % 3 == 0 {
                Some(503)
            } else {
                Some(200)
            };
            let body = (status == Some(503)).then_some(
                r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"retry later"}"#,
            );
            rec.requests.push(request(i, at, status, body));
        }
        rec.events.push(Event {
            at_ms: 5002.0,
            kind: EventKind::Inject,
            detail: "database proxy: down".into(),
        });
        rec.events.push(Event {
            at_ms: 12990.0,
            kind: EventKind::Revert,
            detail: "database proxy: down".into(),
        });
        for i in 0..80 {
            let at = i as f64 * 250.0;
            rec.probes.push(ProbeRecord {
                at_ms: at,
                endpoint: "readyz".into(),
                status: Some(if (5500.0..13000.0).contains(&at) { 503 } else { 200 }),
                body: Some(r#"{"status":"fail","checks":{"database":{"status":"fail","output":"unreachable"}}}"#.into()),
            });
        }
        for i in 0..40 {
            let at = i as f64 * 500.0;
            let mut values = BTreeMap::new();
            values.insert(
                "app_stale_cache_serves_total".to_string(),
                if at > 5000.0 {
                    (at - 5000.0) / 100.0
                } else {
                    0.0
                },
            );
            values.insert(
                "app_ready".to_string(),
                if (5500.0..13000.0).contains(&at) {
                    0.0
                } else {
                    1.0
                },
            );
            rec.metrics.push(MetricsSample { at_ms: at, values });
        }
        rec
    }

    #[test]
    fn the_timeline_shades_the_fault_window_between_inject_and_revert() {
        let html = render(&report_with(recording(), Vec::new()));
        assert!(html.contains("<svg class=\"timeline\""), "no timeline");
        let window = html
            .split("class=\"fault-window\"")
            .nth(1)
            .expect("a fault window");
        assert!(
            window.contains("data-from-ms=\"5002\" data-to-ms=\"12990\""),
            "{}",
            &window[..200]
        );
        // Axes, a p99 line, stacked bars of both classes, the readiness band with failures.
        assert!(html.contains("class=\"p99\""));
        assert!(html.contains("requests/s") && html.contains("p99 latency"));
        assert!(html.contains("class=\"c0\"") && html.contains("class=\"c2\""));
        assert!(html.contains("<g class=\"band readyz\">"));
        assert!(
            html.contains("<g class=\"band fault\"><rect"),
            "the fault band"
        );
        assert!(html.contains("<rect class=\"fail\""));
        assert!(
            html.contains("class=\"marker inject\"") && html.contains("class=\"marker revert\"")
        );
    }

    #[test]
    fn alert_events_are_drawn_when_present() {
        let mut rec = recording();
        rec.events.push(Event {
            at_ms: 8000.0,
            kind: EventKind::AlertFiring,
            detail: "DatabaseUnavailable firing".into(),
        });
        rec.events.push(Event {
            at_ms: 16000.0,
            kind: EventKind::AlertResolved,
            detail: "DatabaseUnavailable resolved".into(),
        });
        let html = render(&report_with(rec, Vec::new()));
        assert!(html.contains("class=\"marker alert-fired\""));
        // DatabaseUnavailable's row, firing from 8 s to 16 s.
        assert!(html.contains("<title>DatabaseUnavailable firing 8.0s → 16.0s</title>"));
        assert!(html.contains("class=\"marker alert-resolved\""));
        assert!(html.contains(
            "DatabaseUnavailable: fired 3.0s after the injection, resolved 3.0s after the revert"
        ));
        assert!(!html.contains("no alert notifications recorded"));
    }

    #[test]
    fn hostile_bodies_and_log_lines_are_escaped() {
        let hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'&\u{0}";
        let mut rec = recording();
        let mut r = request(999, 6000.0, Some(500), Some(hostile));
        if let Outcome::Response { headers, .. } = &mut r.outcome {
            headers.insert("x-evil".into(), "</pre><script>bad()</script>".into());
        }
        rec.requests.push(r.clone());
        let log = LogRecord {
            at_ms: 6001.0,
            json: Some(serde_json::json!({"level": "ERROR", "request_id": "req-999"})),
            line: format!("ERROR {hostile}"),
        };
        rec.logs.push(log.clone());
        rec.events.push(Event {
            at_ms: 7000.0,
            kind: EventKind::Note,
            detail: "<b>bold</b>".into(),
        });
        let check = CheckResult {
            name: "no-leaks".into(),
            phase: Some(Phase::Fault),
            verdict: Verdict::Fail,
            summary: "leak: <script>".into(),
            evidence: vec![Evidence::Request {
                request: Box::new(r),
                logs: vec![log],
                why: "<i>why</i>".into(),
            }],
        };
        let html = render(&report_with(rec, vec![check]));
        assert!(!html.contains("<script"), "a script tag got through");
        assert!(!html.contains("<img"), "an img tag got through");
        assert!(!html.contains("<b>bold"));
        assert!(!html.contains("<i>why"));
        assert!(!html.contains('\u{0}'));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&lt;/pre&gt;&lt;script&gt;bad()"));
        assert!(html.contains("&quot;&#39;&amp;"));
    }

    #[test]
    fn the_page_loads_nothing_from_anywhere() {
        let html = render(&report_with(recording(), Vec::new()));
        assert!(html.contains(&format!(
            "<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
        )));
        // Only in-page anchors; the SVG namespace is an identifier, not a fetch.
        for attr in ["src=", "href=\"http", "url(", "@import", "<script", "<link"] {
            assert!(!html.contains(attr), "found {attr}");
        }
    }

    #[test]
    fn an_empty_recording_renders_without_panicking() {
        let html = render(&report_with(Recording::default(), Vec::new()));
        assert!(html.contains("nothing was recorded, so there is no timeline"));
        assert!(html.contains("not seen in this run"));
        let empty = RunReport {
            scenarios: Vec::new(),
            ..report_with(Recording::default(), Vec::new())
        };
        assert!(render(&empty).contains("No scenario ran."));
    }

    #[test]
    fn a_recording_with_only_events_renders_without_panicking() {
        let mut rec = Recording::default();
        rec.events.push(Event {
            at_ms: 10.0,
            kind: EventKind::Inject,
            detail: "x".into(),
        });
        rec.phases.insert(Phase::Steady, (0.0, 0.0));
        let html = render(&report_with(rec, Vec::new()));
        assert!(html.contains("<svg class=\"timeline\""));
    }

    #[test]
    fn thousands_of_requests_become_per_second_buckets() {
        let mut rec = recording();
        rec.requests = (0..20_000u64)
            .map(|i| request(i, i as f64, Some(200), None))
            .collect();
        let html = render(&report_with(rec, Vec::new()));
        assert!(html.len() < 200_000, "{} bytes", html.len());
        assert!(!html.contains("req-19999"), "requests are not dumped");
    }

    #[test]
    fn shows_up_pairs_the_learner_text_with_what_was_captured() {
        let html = render(&report_with(recording(), Vec::new()));
        let shows = html.split("How it shows up").nth(1).unwrap();
        // The scenario's words and a real error body from the recording.
        let client = &scenario().learn.client;
        assert!(!client.is_empty());
        assert!(shows.contains(&esc(client)), "the scenario's client text");
        assert!(shows.contains("&quot;detail&quot;:&quot;retry later&quot;"));
        // A real metric change and the readiness failure with its component.
        assert!(shows.contains("app_stale_cache_serves_total"));
        assert!(shows.contains("database: unreachable"));
        assert!(shows.contains("expected: /readyz fails while the fault is active"));
        // No log lines and no alerts were recorded: say so.
        assert!(shows.contains("not seen in this run"));
    }

    #[test]
    fn the_summary_table_links_to_each_scenario() {
        let mut report = report_with(recording(), Vec::new());
        let mut second = report.scenarios[0].clone();
        second.name = "other".into();
        report.scenarios.push(second);
        let html = render(&report);
        assert!(html.contains("<a href=\"#s0-db-down\">db-down</a>"));
        assert!(html.contains("<a href=\"#s1-other\">other</a>"));
        assert!(html.contains("id=\"s1-other\""));
    }

    #[test]
    fn a_single_scenario_command_replaces_the_names() {
        let mut report = report_with(recording(), Vec::new());
        report.command =
            "fivehundred run db-down other --seed 4 -- --protections all,-db-down".into();
        let mut second = report.scenarios[0].clone();
        second.name = "other".into();
        report.scenarios.push(second);
        assert_eq!(
            single_command(&report, &report.scenarios[1]),
            "fivehundred run other --seed 4 -- --protections all,-db-down"
        );
        report.command = "fivehundred run --seed 4".into();
        assert_eq!(
            single_command(&report, &report.scenarios[0]),
            "fivehundred run db-down --seed 4"
        );
    }

    #[test]
    fn axes_get_round_steps() {
        assert_eq!(nice_axis(37.0), (40.0, 10.0));
        assert_eq!(nice_axis(1.0), (1.0, 0.2));
        assert_eq!(nice_axis(2010.0), (2500.0, 500.0));
        assert_eq!(num(2.50), "2.5");
        assert_eq!(ms_label(2500.0), "2.5s");
    }
}

//! Unit tests of the page: the timeline's parts, escaping of hostile recordings, nothing loaded
//! from anywhere, and renderings of empty and very large recordings.

use super::text::{ms_label, num};
use super::timeline::nice_axis;
use super::*;
use crate::checks::{CheckResult, Evidence};
use crate::record::{
    Event, EventKind, LogRecord, MetricsSample, Outcome, Phase, ProbeRecord, Recording,
    RequestRecord,
};
use std::collections::BTreeMap;

fn scenario() -> crate::scenario::Scenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/db-down.toml");
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
    assert!(html.contains("class=\"marker inject\"") && html.contains("class=\"marker revert\""));
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
    report.command = "fivehundred run db-down other --seed 4 -- --protections all,-db-down".into();
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

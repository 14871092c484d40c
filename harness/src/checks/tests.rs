//! Unit tests of the checks: each check fails on a recording made to break it, and passes
//! otherwise; the invariant runner is tried against a real PostgreSQL.

use super::data::check_invariants;
use super::*;
use crate::monitoring::{AlertNotification, AlertStatus};
use crate::record::{
    Event, EventKind, LogRecord, MetricsSample, Outcome, ProbeRecord, TransportError,
};
use crate::scenario::{
    AlertExpect, AlertExpectations, Health, LatencyLimits, MetricExpect, PhaseExpect, RequestIds,
    StatusExpect, StatusPattern,
};
use std::collections::BTreeMap;
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
    let json = serde_json::json!({"level": "ERROR", "message": "request failed", "request_id": id});
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
fn request_ids_are_looked_for_in_the_services_own_log_field() {
    let mut r = rec(vec![problem(500, "abc")]);
    r.logs.push(error_log("abc"));
    r.request_ids = RequestIds {
        header: "x-request-id".into(),
        field: "trace".into(),
        ..Default::default()
    };
    // The line names the id under `request_id`, not under the service's `trace`.
    let c = request_id(&r, Phase::Fault, &refs(&r));
    assert_eq!(c.verdict, Verdict::Fail, "{}", c.summary);
    assert!(c.summary.contains("`trace`"), "{}", c.summary);
    let json = serde_json::json!({"level": "ERROR", "message": "failed", "trace": "abc"});
    r.logs.push(crate::record::LogRecord {
        at_ms: 0.0,
        line: json.to_string(),
        json: Some(json),
    });
    assert_eq!(
        request_id(&r, Phase::Fault, &refs(&r)).verdict,
        Verdict::Pass
    );
}

/// A service whose ids come in `X-Correlation-Id`: its answers are judged by that header, a
/// success by what the load noted of it, an error by the header it kept.
#[test]
fn request_ids_in_another_header_are_checked_by_that_header() {
    let correlation = RequestIds {
        header: "x-correlation-id".into(),
        field: "request_id".into(),
        ..Default::default()
    };
    // A success as the load records one: no header kept, the request id noted.
    let noted = |seen: bool| RequestRecord {
        outcome: Outcome::Response {
            status: 200,
            headers: crate::record::Headers::default().with_request_id_seen(seen),
            body: None,
        },
        ..resp(1500.0, 200, &[], "")
    };
    let error = |header: &str| {
        resp(
            1500.0,
            500,
            &[("content-type", "application/problem+json"), (header, "c1")],
            "{}",
        )
    };
    let mut r = rec(vec![noted(true), error("x-correlation-id")]);
    r.request_ids = correlation.clone();
    r.logs.push(error_log("c1"));
    let c = request_id(&r, Phase::Fault, &refs(&r));
    assert_eq!(c.verdict, Verdict::Pass, "{}", c.summary);
    assert!(
        c.summary.contains("2 answers carry x-correlation-id"),
        "{}",
        c.summary
    );

    // A success it did not come with, and an error in `x-request-id`, which is not this
    // service's header.
    let mut r = rec(vec![noted(false), error("x-request-id")]);
    r.request_ids = correlation;
    r.logs.push(error_log("c1"));
    let c = request_id(&r, Phase::Fault, &refs(&r));
    assert_eq!(c.verdict, Verdict::Fail, "{}", c.summary);
    assert!(
        c.summary.contains("2 answers without x-correlation-id"),
        "{}",
        c.summary
    );
    assert_eq!(c.evidence.len(), 2);
    for e in &c.evidence {
        let Evidence::Request { why, .. } = e else {
            panic!("not a request: {e:?}")
        };
        assert_eq!(why, "no x-correlation-id header");
    }

    // An error logged only at INFO: its id is read from its own header, and the line with it
    // in the service's field comes as evidence.
    let mut r = rec(vec![error("x-correlation-id")]);
    r.request_ids = RequestIds {
        header: "x-correlation-id".into(),
        field: "trace".into(),
        ..Default::default()
    };
    let json = serde_json::json!({"level": "INFO", "message": "answered", "trace": "c1"});
    r.logs.push(LogRecord {
        at_ms: 1500.0,
        line: json.to_string(),
        json: Some(json),
    });
    let c = request_id(&r, Phase::Fault, &refs(&r));
    assert_eq!(c.verdict, Verdict::Fail, "{}", c.summary);
    assert!(
        c.summary.contains("their x-correlation-id in `trace`"),
        "{}",
        c.summary
    );
    let Some(Evidence::Request { logs, why, .. }) = c.evidence.first() else {
        panic!("no request evidence: {:?}", c.evidence)
    };
    assert_eq!(
        why,
        "no ERROR/WARN log line has this x-correlation-id in `trace`"
    );
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].field("trace"), Some("c1"));
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
fn acknowledged_records_come_from_2xx_bodies_of_the_stored_request() {
    let stored = crate::labfile::Stored {
        request: "POST /items".into(),
        id: "data.id".into(),
        table: "items".into(),
        column: "id".into(),
    };
    let mut a = resp(
        100.0,
        201,
        &[],
        "{\"data\":{\"id\":\"7f1c\"},\"quantity\":1}",
    );
    a.route = "POST /items".into();
    let mut b = a.clone();
    b.outcome = Outcome::Response {
        status: 503,
        headers: Default::default(),
        body: Some("{}".into()),
    };
    let replay = a.clone();
    let mut other = a.clone();
    other.route = "POST /other".into();
    assert_eq!(
        acknowledged(&rec(vec![a, b, replay, other]), &stored),
        vec!["7f1c".to_string()],
        "a replayed record is one record; other requests acknowledge nothing"
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
            "SELECT true FROM (SELECT set_config('transaction_read_only', 'off', true)) s".into(),
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

#[test]
fn json_errors_fail_on_a_body_that_is_not_an_object_with_every_promised_member() {
    let fields = vec!["ok".to_string(), "error".to_string()];
    let check = |body: &str| {
        let r = rec(vec![resp(1500.0, 400, &[], body)]);
        json_errors(&r, Phase::Fault, &refs(&r), &fields)
    };
    assert_eq!(
        check(r#"{"ok": false, "error": "no"}"#).verdict,
        Verdict::Pass
    );
    for (body, why) in [
        ("<html>Bad Request</html>", "not JSON"),
        ("[1, 2]", "not an object"),
        (r#"{"ok": false}"#, "no `error` member"),
    ] {
        let c = check(body);
        assert_eq!(c.verdict, Verdict::Fail, "{body}");
        assert!(c.summary.contains(why), "{body}: {}", c.summary);
        assert_eq!(c.name, "error-format");
    }
}

#[test]
fn a_lab_file_s_leak_patterns_fail_no_leaks_where_the_built_in_ones_do_not() {
    let body = "KeyError at /items: internal cache shard db-primary-7";
    let r = rec(vec![resp(1500.0, 500, &[], body)]);
    assert_eq!(
        no_leaks(&r, Phase::Fault, &refs(&r)).verdict,
        Verdict::Pass,
        "no built-in pattern matches this body"
    );
    let own = vec![r"db-primary-\d+".to_string()];
    let c = no_leaks_with(&r, Phase::Fault, &refs(&r), &own);
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.summary.contains("db-primary-7"), "{}", c.summary);
}

/// A service that logs its level under `severity` (the lab file's `level_field`): its error
/// lines are found there, Python's `WARNING` counts as a warning, and without the setting the
/// same lines are not taken for error lines.
#[test]
fn error_lines_are_read_from_the_services_own_level_field() {
    let mut r = rec(vec![problem(500, "abc")]);
    let json = serde_json::json!({"severity": "WARNING", "message": "failed", "request_id": "abc"});
    r.logs.push(LogRecord {
        at_ms: 0.0,
        line: json.to_string(),
        json: Some(json),
    });
    let c = request_id(&r, Phase::Fault, &refs(&r));
    assert_eq!(c.verdict, Verdict::Fail, "no `level` field: {}", c.summary);
    r.request_ids.level = "severity".into();
    let c = request_id(&r, Phase::Fault, &refs(&r));
    assert_eq!(c.verdict, Verdict::Pass, "{}", c.summary);
}

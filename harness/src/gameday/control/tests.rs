//! Tests of the control's decisions ([`super::rules`]) and of the log's vocabulary: what a
//! revert picks, what an injection is refused for, what the clock reverts, what a halt says.

use std::time::Duration;

use super::rules::*;
use super::*;
use crate::gameday::params::NamedFault;
use crate::monitoring::{AlertNotification, AlertStatus};
use crate::target::TargetNeeds;

fn fault(spec: &str) -> Fault {
    Fault::from_table(toml::from_str(spec).expect("a fault table")).expect("a valid fault")
}

fn db_down() -> Fault {
    fault("kind='network'\ntarget='database'\nfault='down'")
}

fn panic_failpoint() -> Fault {
    fault("kind='failpoint'\nname='get_product'\naction='panic'")
}

fn active(id: u64, fault: Fault, deadline_ms: f64) -> Active {
    Active {
        id,
        label: format!("#{id} {}", fault.describe()),
        fault,
        name: None,
        by: Who::Cli,
        injected_at_ms: 0.0,
        deadline_ms,
        for_: Duration::from_secs(30),
        revert_error: None,
        retry_at_ms: 0.0,
    }
}

fn view(id: u64, fault: &str) -> ActiveView {
    ActiveView {
        id,
        fault: fault.into(),
        name: None,
        spec: Default::default(),
        by: Who::Page,
        injected_at_ms: 0.0,
        injected_at: String::new(),
        deadline_ms: 0.0,
        deadline_at: String::new(),
        remaining_s: 0.0,
        revert_error: None,
    }
}

fn notification(
    fingerprint: &str,
    alert: &str,
    status: AlertStatus,
    at_ms: f64,
) -> AlertNotification {
    AlertNotification {
        at_ms,
        received: None,
        alert: alert.into(),
        status,
        labels: Default::default(),
        annotations: Default::default(),
        starts_at: None,
        ends_at: None,
        fingerprint: fingerprint.into(),
    }
}

#[test]
fn a_resumed_load_runs_at_a_rate_between_0_and_10000() {
    assert_eq!(checked_rate(0.0).unwrap(), 0.0);
    assert_eq!(checked_rate(12.5).unwrap(), 12.5);
    assert_eq!(checked_rate(10_000.0).unwrap(), 10_000.0);
    for bad in [-1.0, 10_000.5, f64::NAN, f64::INFINITY] {
        let e = checked_rate(bad).unwrap_err();
        assert!(matches!(e, ControlError::Failed(_)), "{bad}: {e:?}");
        assert!(
            e.to_string()
                .contains("is not a rate between 0 and 10000 requests per second"),
            "{e}"
        );
    }
}

#[test]
fn a_fault_already_active_is_a_conflict_naming_its_id() {
    let now = [active(4, db_down(), 1000.0)];
    let same = [NamedFault {
        name: Some("db-down".into()),
        fault: db_down(),
    }];
    let e = conflict(&now, &same).unwrap_err();
    assert!(matches!(e, ControlError::Conflict(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{} is already active as #4; revert it first or change its parameters",
            db_down().describe()
        )
    );
    let other = [NamedFault {
        name: None,
        fault: panic_failpoint(),
    }];
    assert!(conflict(&now, &other).is_ok());
    assert!(conflict(&[], &same).is_ok());
}

#[test]
fn a_fault_needing_more_than_the_target_was_started_with_is_refused_with_how_to_prepare() {
    let nf = NamedFault {
        name: Some("disk-full".into()),
        fault: db_down(),
    };
    let tmpfs = TargetNeeds {
        data_tmpfs: Some(1 << 20),
        ..Default::default()
    };
    // Started with nothing special: a fault needing a tmpfs cannot be injected.
    let e = prepared(&TargetNeeds::default(), &nf, &tmpfs).unwrap_err();
    assert!(matches!(e, ControlError::Unsupported(_)), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains(
            "needs the target started for it (its data directory on a private tmpfs of 1024 KiB)"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("start the lab with `--prepare disk-full`"),
        "{text}"
    );
    // An unnamed fault has no name to prepare by.
    let unnamed = NamedFault {
        name: None,
        ..nf.clone()
    };
    let text = prepared(&TargetNeeds::default(), &unnamed, &tmpfs)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("`--prepare <a named fault of this kind>`"),
        "{text}"
    );
    // Covered: the same, a smaller tmpfs, or no needs at all.
    let bigger = TargetNeeds {
        data_tmpfs: Some(2 << 20),
        unprivileged: true,
        ..Default::default()
    };
    assert!(prepared(&bigger, &nf, &tmpfs).is_ok());
    assert!(prepared(&tmpfs, &nf, &tmpfs).is_ok());
    assert!(prepared(&TargetNeeds::default(), &nf, &TargetNeeds::default()).is_ok());
    // More of something else is not covered.
    let unprivileged = TargetNeeds {
        unprivileged: true,
        ..Default::default()
    };
    assert!(prepared(&tmpfs, &nf, &unprivileged).is_err());
}

#[test]
fn a_revert_picks_by_id_by_fault_or_all_newest_first() {
    let now = [
        active(1, db_down(), 1000.0),
        active(2, panic_failpoint(), 1000.0),
        active(3, db_down(), 1000.0),
    ];
    assert_eq!(selected(&now, &Selector::All, None), vec![3, 2, 1]);
    assert_eq!(selected(&now, &Selector::Id(2), None), vec![2]);
    assert_eq!(selected(&now, &Selector::Id(9), None), Vec::<u64>::new());
    let matching = Selector::Matching(FaultRequest::default());
    assert_eq!(selected(&now, &matching, Some(&[db_down()])), vec![3, 1]);
    assert_eq!(
        selected(&now, &matching, Some(&[panic_failpoint(), db_down()])),
        vec![3, 2, 1]
    );
    // A request that resolved to nothing picks nothing.
    assert_eq!(selected(&now, &matching, None), Vec::<u64>::new());
    assert_eq!(selected(&[], &Selector::All, None), Vec::<u64>::new());
}

#[test]
fn a_revert_that_picks_nothing_says_what_is_active() {
    let e = nothing_matches(&[]);
    assert!(matches!(e, ControlError::NotFound(_)), "{e:?}");
    assert_eq!(e.to_string(), "no fault is active");
    let e = nothing_matches(&[view(2, "database down"), view(5, "panic in get_product")]);
    assert_eq!(
        e.to_string(),
        "no active fault matches; active: #2 database down, #5 panic in get_product"
    );
}

#[test]
fn an_injection_label_names_the_fault_who_and_for_how_long() {
    assert_eq!(
        injection_label(7, &db_down(), Who::Page, Duration::from_secs(90)),
        format!("#7 {} (by page, for 1m 30s)", db_down().describe())
    );
}

#[test]
fn a_halt_says_why_what_it_reverted_and_whether_the_load_stopped() {
    assert_eq!(halt_how(Who::Cli, None), "by the halt (cli)");
    assert_eq!(
        halt_how(Who::Lab, Some("abort: p99 > 2s")),
        "by the halt (abort: p99 > 2s)"
    );
    let nothing = HaltOutcome::default();
    assert_eq!(
        halt_detail(None, &nothing),
        "halt: no fault was active; no load was running"
    );
    let some = HaltOutcome {
        reverted: vec!["#3 b".into(), "#1 a".into()],
        failed: vec!["#2 c: busy".into()],
        load_stopped: true,
    };
    assert_eq!(
        halt_detail(Some("Ctrl-C"), &some),
        "halt (Ctrl-C): reverted #3 b, #1 a; the load stopped; could not revert #2 c: busy"
    );
}

#[test]
fn the_clock_reverts_faults_past_their_deadline_and_retries_failed_reverts_when_due() {
    let mut failed = active(2, panic_failpoint(), 60_000.0);
    failed.revert_error = Some("busy".into());
    failed.retry_at_ms = 12_000.0;
    let mut waiting = active(3, db_down(), 5_000.0);
    waiting.retry_at_ms = 20_000.0;
    let now = [active(1, db_down(), 10_000.0), failed, waiting];
    // Before any deadline or retry time: nothing.
    assert_eq!(due(&now, 9_000.0), vec![]);
    // The first deadline passes; the third is past its deadline but waits for its retry time.
    assert_eq!(
        due(&now, 10_000.0),
        vec![(1, Duration::from_secs(30), true)]
    );
    // The failed revert's retry time comes, before its deadline.
    assert_eq!(
        due(&now, 12_000.0),
        vec![
            (1, Duration::from_secs(30), true),
            (2, Duration::from_secs(30), false)
        ]
    );
    assert_eq!(due(&now, 20_000.0).len(), 3);
    assert_eq!(
        clock_how(Duration::from_secs(30), true),
        "at its deadline (30s)"
    );
    assert_eq!(clock_how(Duration::from_secs(30), false), "on a retry");
}

#[test]
fn an_alert_fires_while_its_last_notification_says_firing() {
    let alerts = [
        notification("a1", "HighErrorRate", AlertStatus::Firing, 1.0),
        notification("b1", "DatabaseDown", AlertStatus::Firing, 2.0),
        notification("a1", "HighErrorRate", AlertStatus::Resolved, 3.0),
        // Two instances of one alert are one name.
        notification("c1", "SlowRequests", AlertStatus::Firing, 4.0),
        notification("c2", "SlowRequests", AlertStatus::Firing, 5.0),
    ];
    assert_eq!(firing(&alerts), vec!["DatabaseDown", "SlowRequests"]);
    assert_eq!(firing(&alerts[..1]), vec!["HighErrorRate"]);
    assert_eq!(firing(&[]), Vec::<String>::new());
}

#[test]
fn who_acted_is_written_in_lowercase_in_the_log_and_its_json() {
    assert_eq!(Who::Cli.to_string(), "cli");
    assert_eq!(Who::Page.to_string(), "page");
    assert_eq!(Who::Lab.to_string(), "lab");
    let entry = LogEntry {
        at_ms: 1.0,
        at: "2024-01-01T00:00:00.001Z".into(),
        action: Action::InjectFailed,
        by: Who::Page,
        fault_id: None,
        detail: "x".into(),
    };
    let json = serde_json::to_value(&entry).unwrap();
    assert_eq!(json["by"], "page");
    assert_eq!(json["action"], "injectfailed");
    assert!(json.get("fault_id").is_none(), "{json}");
    let back: Who = serde_json::from_str("\"lab\"").unwrap();
    assert_eq!(back, Who::Lab);
}

//! The record a game day leaves when the lab stops: its phases (from the first injection to the
//! last revert), the scenario it amounts to, the checks evaluated on the recording, and the
//! files: report.json, report.html, junit.xml, postmortem.md, gameday.json.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::super::control::{FaultWindow, GameDay};
use super::super::postmortem;
use super::args::{LabUpArgs, reproduce, target_line};
use super::takedown::take_down;
use crate::checks::{self, CheckResult};
use crate::exit::{EXIT_LAB, EXIT_OK};
use crate::present::report::{RunReport, ScenarioReport};
use crate::record::{Phase, Recording};
use crate::scenario::{
    AlertExpectations, Expectations, Learn, LoadSpec, Phases, Scenario, ScheduledFault,
};

/// The phases of a game day, for the checks: steady until the first injection, fault until the
/// last revert, recovery after it. Without an injection it is all steady state.
fn phases(windows: &[FaultWindow], end_ms: f64) -> Vec<(Phase, f64, f64)> {
    let first = windows.iter().map(|w| w.injected_at_ms).reduce(f64::min);
    let last = windows
        .iter()
        .map(|w| w.reverted_at_ms.unwrap_or(end_ms))
        .reduce(f64::max);
    match (first, last) {
        (Some(a), Some(b)) => vec![
            (Phase::Steady, 0.0, a),
            (Phase::Fault, a, b),
            (Phase::Recovery, b, end_ms.max(b)),
        ],
        _ => vec![(Phase::Steady, 0.0, end_ms)],
    }
}

/// The scenario the report is about: `--scenario` with the game day's real timing and faults, or
/// a plain "game day" one.
fn effective_scenario(
    gd: &GameDay,
    windows: &[FaultWindow],
    bounds: &[(Phase, f64, f64)],
) -> Scenario {
    let d = |ms: f64| Duration::from_secs_f64(ms.max(0.0) / 1000.0);
    let get = |p: Phase| {
        bounds
            .iter()
            .find(|(q, _, _)| *q == p)
            .map(|(_, a, b)| d(b - a))
            .unwrap_or_default()
    };
    let fault_start = bounds
        .iter()
        .find(|(p, _, _)| *p == Phase::Fault)
        .map(|(_, a, _)| *a)
        .unwrap_or(0.0);
    let faults = windows
        .iter()
        .filter_map(|w| {
            Some(ScheduledFault {
                fault: w.spec.clone()?,
                start: d(w.injected_at_ms - fault_start),
                duration: d(w.reverted_at_ms.unwrap_or(w.injected_at_ms) - w.injected_at_ms),
            })
        })
        .collect();
    let phases = Phases {
        steady: get(Phase::Steady),
        fault: get(Phase::Fault),
        recovery: get(Phase::Recovery),
    };
    let s = &gd.settings;
    match &s.scenario {
        Some(sc) => Scenario {
            phases,
            faults,
            ..sc.clone()
        },
        None => Scenario {
            name: "game-day".into(),
            title: format!(
                "Game day of {}",
                gd.started_wall
                    .with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M")
            ),
            cause: "faults injected by hand".into(),
            protection: None,
            learn: Learn::default(),
            load: LoadSpec {
                rate: s.rate,
                mix: s.mix.clone(),
                timeout: s.load_timeout,
            },
            phases,
            faults,
            expect: Expectations::default(),
            alerts: AlertExpectations::default(),
            contract: crate::scenario::Contract::of(&gd.lab.lab_file),
            file: PathBuf::from("(game day)"),
        },
    }
}

/// Without a scenario: what the lab's service promises whatever is broken (its lab file's
/// contract), per phase. Status codes, latency and alerts have no expectation to check.
fn contract_checks(rec: &Recording, contract: &crate::scenario::Contract) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for phase in Phase::ALL {
        if !rec.phases.contains_key(&phase) {
            continue;
        }
        let reqs: Vec<_> = rec.requests_in(phase).collect();
        out.extend(checks::contract(rec, phase, &reqs, contract));
    }
    out.push(checks::no_restart(rec));
    out
}

/// The game day's phases set on the recording, the scenario it amounts to, and its checks: the
/// scenario's, or without one the contract every target keeps. Without an injection only the
/// steady state's are kept. Runs while the lab is up (data integrity reads its database).
async fn evaluate(
    gd: &GameDay,
    windows: &[FaultWindow],
    end_ms: f64,
) -> (Scenario, Vec<CheckResult>) {
    let bounds = phases(windows, end_ms);
    gd.lab.recorder.with(|r| {
        r.phases.clear();
        for (p, a, b) in &bounds {
            r.phases.insert(*p, (*a, *b));
        }
    });
    let scenario = effective_scenario(gd, windows, &bounds);
    let recording = gd.lab.recorder.snapshot();
    let mut checks = match &gd.settings.scenario {
        Some(_) => {
            let mut c = checks::evaluate(&scenario, &recording);
            // Read from the database before the lab goes.
            c.push(checks::data_integrity(&gd.lab.database_url, &scenario, &recording).await);
            c
        }
        None => contract_checks(&recording, &scenario.contract),
    };
    if windows.is_empty() {
        checks.retain(|c| c.phase.is_none_or(|p| p == Phase::Steady));
    }
    (scenario, checks)
}

/// Tears the lab down and writes the record. Every fault is already reverted (or reported).
pub(super) async fn teardown(
    gd: Arc<GameDay>,
    reason: &str,
    record_dir: &Path,
    args: &LabUpArgs,
) -> i32 {
    gd.refresh();
    let end_ms = gd.now_ms();
    let windows = gd.windows();
    let log = gd.log_entries();
    let unreverted = gd.unreverted();
    let (scenario, checks) = evaluate(&gd, &windows, end_ms).await;

    let seed = gd.settings.seed;
    let started_at = gd
        .started_wall
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let started = gd.started_wall;
    let recorder = gd.lab.recorder.clone();
    let clean = take_down(gd).await && unreverted.is_empty();
    // Read again: the lab's last events (the target stopped by the lab) are on the timeline.
    let recording = recorder.snapshot();

    let duration_s = end_ms / 1000.0;
    let note = Some(format!(
        "game day: {} fault(s) injected by hand; stopped by {reason}",
        windows.len()
    ));
    let report = RunReport {
        tool: format!("fivehundred {}", env!("CARGO_PKG_VERSION")),
        seed,
        command: reproduce(args),
        started_at: started_at.clone(),
        strict: false,
        scenarios: vec![ScenarioReport::from_checks(
            &scenario,
            checks.clone(),
            recording.clone(),
            duration_s,
            note,
        )],
    };
    let mut code = report.exit_code();
    let written = crate::artifacts::write(&report, record_dir, crate::digest::KeepRequests::Errors)
        .and_then(|()| {
            let md = postmortem::render(&postmortem::Input {
                started,
                ended_ms: end_ms,
                scenario: args.scenario.as_deref(),
                target: target_line(args),
                rate: scenario.load.rate,
                seed: report.seed,
                windows: &windows,
                log: &log,
                recording: &recording,
                checks: &checks,
                unreverted: &unreverted,
            });
            std::fs::write(record_dir.join("postmortem.md"), md)?;
            let gameday = serde_json::json!({
                "started_at": started_at,
                "stopped": reason,
                "faults": windows,
                "log": log,
                "abort_if": args.abort_if.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            });
            std::fs::write(
                record_dir.join("gameday.json"),
                serde_json::to_vec_pretty(&gameday).map_err(std::io::Error::other)?,
            )
        });
    match written {
        Ok(()) => {
            println!("record: {}", record_dir.display());
            for f in [
                "postmortem.md",
                "report.html",
                "report.json",
                "gameday.json",
            ] {
                println!("  {}", record_dir.join(f).display());
            }
        }
        Err(e) => {
            eprintln!(
                "error: cannot write the record to {}: {e}",
                record_dir.display()
            );
            code = EXIT_LAB;
        }
    }
    if !clean {
        eprintln!(
            "error: not everything could be reverted ({}); run `fivehundred recover`",
            if unreverted.is_empty() {
                "the lab could not be taken down".into()
            } else {
                unreverted.join(", ")
            }
        );
        return EXIT_LAB;
    }
    if code == EXIT_OK { EXIT_OK } else { code }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gameday::control::Who;

    fn window(id: u64, from: f64, to: Option<f64>) -> FaultWindow {
        FaultWindow {
            id,
            fault: "x".into(),
            name: None,
            injected_at_ms: from,
            injected_by: Who::Cli,
            deadline_ms: Some(from + 1000.0),
            reverted_at_ms: to,
            reverted_by: None,
            how: None,
            spec: None,
        }
    }

    #[test]
    fn phases_run_from_the_first_injection_to_the_last_revert() {
        let p = phases(
            &[
                window(1, 5000.0, Some(8000.0)),
                window(2, 6000.0, Some(12_000.0)),
            ],
            20_000.0,
        );
        assert_eq!(
            p,
            vec![
                (Phase::Steady, 0.0, 5000.0),
                (Phase::Fault, 5000.0, 12_000.0),
                (Phase::Recovery, 12_000.0, 20_000.0)
            ]
        );
        assert_eq!(phases(&[], 9000.0), vec![(Phase::Steady, 0.0, 9000.0)]);
    }
}

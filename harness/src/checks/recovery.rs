//! Recovery checks: errors return to the steady baseline within the deadline after the revert
//! (`recovery`), and the target recovered by itself, without a restart (`no_restart`).

use super::common::{fail, pass, request_evidence};
use crate::record::{Phase, Recording, RequestRecord};
use crate::verdict::{CheckResult, Evidence, Verdict};

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

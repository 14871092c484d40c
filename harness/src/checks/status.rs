//! The status check: status codes allowed, forbidden and required in a phase, overall and per
//! route.

use super::common::{MAX_EXAMPLES, fail, pass, request_evidence};
use super::stats::{count_statuses, describe_status};
use crate::record::{Phase, Recording, RequestRecord};
use crate::scenario::{PhaseExpect, StatusExpect};
use crate::verdict::CheckResult;

/// Status codes allowed, forbidden and required in a phase, overall and per route.
pub fn status(
    rec: &Recording,
    phase: Phase,
    reqs: &[&RequestRecord],
    expect: &PhaseExpect,
) -> CheckResult {
    if reqs.is_empty() {
        return fail(
            "status",
            phase,
            "no requests were sent in this phase".into(),
        );
    }
    let mut problems = Vec::new();
    let mut evidence = Vec::new();
    let mut groups: Vec<(String, Vec<&RequestRecord>, &StatusExpect)> =
        vec![("all routes".into(), reqs.to_vec(), &expect.status)];
    for (route, e) in &expect.routes {
        let rs: Vec<&RequestRecord> = reqs.iter().copied().filter(|r| r.route == *route).collect();
        groups.push((route.clone(), rs, e));
    }
    for (label, rs, e) in &groups {
        if let Some(allow) = &e.allow {
            let bad: Vec<&&RequestRecord> = rs
                .iter()
                .filter(|r| !allow.iter().any(|p| p.matches(r.status())))
                .collect();
            if !bad.is_empty() {
                let counts = count_statuses(bad.iter().map(|r| r.status()));
                problems.push(format!(
                    "{label}: {} answer(s) outside {} ({counts})",
                    bad.len(),
                    join(allow)
                ));
                for r in bad.iter().take(MAX_EXAMPLES) {
                    evidence.push(request_evidence(
                        rec,
                        r,
                        format!("{} is not allowed for {label}", describe_status(r.status())),
                    ));
                }
            }
        }
        for p in &e.forbid {
            let bad: Vec<&&RequestRecord> = rs.iter().filter(|r| p.matches(r.status())).collect();
            if !bad.is_empty() {
                problems.push(format!("{label}: {} forbidden {p} answer(s)", bad.len()));
                for r in bad.iter().take(MAX_EXAMPLES) {
                    evidence.push(request_evidence(
                        rec,
                        r,
                        format!("{p} is forbidden for {label}"),
                    ));
                }
            }
        }
        for p in &e.require {
            if !rs.iter().any(|r| p.matches(r.status())) {
                problems.push(format!(
                    "{label}: expected at least one {p} answer, saw none ({})",
                    count_statuses(rs.iter().map(|r| r.status()))
                ));
            }
        }
    }
    let counts = count_statuses(reqs.iter().map(|r| r.status()));
    if problems.is_empty() {
        pass(
            "status",
            phase,
            format!("{} answers as expected ({counts})", reqs.len()),
        )
    } else {
        fail("status", phase, problems.join("; ")).with(evidence)
    }
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join("|")
}

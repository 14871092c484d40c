//! The retry-after check: every 503 says when to retry.

use super::common::{MAX_EXAMPLES, fail, pass, request_evidence};
use crate::record::{Phase, Recording, RequestRecord};
use crate::verdict::CheckResult;

/// Every 503 says when to retry.
pub fn retry_after(rec: &Recording, phase: Phase, reqs: &[&RequestRecord]) -> CheckResult {
    let unavailable: Vec<&RequestRecord> = reqs
        .iter()
        .copied()
        .filter(|r| r.status() == Some(503))
        .collect();
    let bad: Vec<&RequestRecord> = unavailable
        .iter()
        .copied()
        .filter(|r| {
            !r.header("retry-after")
                .is_some_and(|v| v.trim().parse::<u64>().is_ok() || v.contains("GMT"))
        })
        .collect();
    if bad.is_empty() {
        pass(
            "retry-after",
            phase,
            format!("{} 503 answers, all with Retry-After", unavailable.len()),
        )
    } else {
        fail(
            "retry-after",
            phase,
            format!(
                "{} of {} 503 answers lack a valid Retry-After",
                bad.len(),
                unavailable.len()
            ),
        )
        .with(
            bad.iter()
                .take(MAX_EXAMPLES)
                .map(|r| request_evidence(rec, r, "503 without Retry-After".into()))
                .collect(),
        )
    }
}

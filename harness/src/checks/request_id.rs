//! The request-id check: every answer carries `x-request-id`, and every error answer has an
//! ERROR or WARN log line with that id.

use super::common::{MAX_EXAMPLES, errors, fail, pass, request_evidence};
use crate::record::{LogRecord, Phase, Recording, RequestRecord};
use crate::verdict::CheckResult;

fn is_error_log(l: &LogRecord) -> bool {
    matches!(
        l.field("level").map(str::to_ascii_uppercase).as_deref(),
        Some("ERROR" | "WARN")
    )
}

/// Every answer carries `x-request-id`, and every 4xx/5xx has an error log line with that id.
pub fn request_id(rec: &Recording, phase: Phase, reqs: &[&RequestRecord]) -> CheckResult {
    let answered: Vec<&RequestRecord> = reqs
        .iter()
        .copied()
        .filter(|r| r.status().is_some())
        .collect();
    let missing: Vec<&RequestRecord> = answered
        .iter()
        .copied()
        .filter(|r| !r.carries_request_id())
        .collect();
    let errs: Vec<&RequestRecord> = errors(reqs).collect();
    let unlogged: Vec<&RequestRecord> = errs
        .iter()
        .copied()
        .filter(|r| {
            r.header("x-request-id")
                .is_some_and(|id| !rec.logs_for(id).iter().any(|l| is_error_log(l)))
        })
        .collect();
    if missing.is_empty() && unlogged.is_empty() {
        return pass(
            "request-id",
            phase,
            format!(
                "{} answers carry x-request-id; all {} errors are logged with it",
                answered.len(),
                errs.len()
            ),
        );
    }
    let mut parts = Vec::new();
    let mut evidence = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("{} answers without x-request-id", missing.len()));
        evidence.extend(
            missing
                .iter()
                .take(MAX_EXAMPLES)
                .map(|r| request_evidence(rec, r, "no x-request-id header".into())),
        );
    }
    if !unlogged.is_empty() {
        parts.push(format!(
            "{} error answers with no error log line carrying their request id",
            unlogged.len()
        ));
        evidence.extend(unlogged.iter().take(MAX_EXAMPLES).map(|r| {
            request_evidence(rec, r, "no ERROR/WARN log line has this request id".into())
        }));
    }
    fail("request-id", phase, parts.join("; ")).with(evidence)
}

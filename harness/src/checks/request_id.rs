//! The request-id check: every answer carries `x-request-id`, and every error answer has an
//! ERROR or WARN log line with that id in the service's request-id field.

use super::common::{MAX_EXAMPLES, errors, fail, pass, request_evidence, skip};
use crate::record::{LogRecord, Phase, Recording, RequestRecord};
use crate::scenario::RequestIds;
use crate::verdict::CheckResult;

/// The header the load generator notes on every answer (the others are kept for errors only).
const RECORDED: &str = "x-request-id";

fn is_error_log(l: &LogRecord) -> bool {
    matches!(
        l.field("level").map(str::to_ascii_uppercase).as_deref(),
        Some("ERROR" | "WARN")
    )
}

/// Every answer carries `x-request-id`, and every 4xx/5xx has an error log line with that id in
/// `ids.field`. A service whose ids come in another header is skipped, saying so: the load
/// generator notes only `x-request-id` on every answer.
pub fn request_id(
    rec: &Recording,
    phase: Phase,
    reqs: &[&RequestRecord],
    ids: &RequestIds,
) -> CheckResult {
    if !ids.header.eq_ignore_ascii_case(RECORDED) {
        return skip(
            "request-id",
            phase,
            format!(
                "the service's request ids come in `{}`; fivehundred records `{RECORDED}` on every answer, so this is not checked",
                ids.header
            ),
        );
    }
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
            r.header("x-request-id").is_some_and(|id| {
                !rec.logs_with(&ids.field, id)
                    .iter()
                    .any(|l| is_error_log(l))
            })
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

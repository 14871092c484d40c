//! The request-id check: every answer carries the service's request-id header, and every error
//! answer has an ERROR or WARN log line with that id in the service's request-id field.

use super::common::{MAX_EXAMPLES, errors, fail, pass, request_evidence};
use crate::record::{LogRecord, Phase, Recording, RequestRecord};
use crate::verdict::CheckResult;

/// Logged at ERROR or WARN, in the service's level field (`level_field`).
fn is_error_log(l: &LogRecord, level: &str) -> bool {
    matches!(
        l.field(level).map(str::to_ascii_uppercase).as_deref(),
        Some("ERROR" | "WARN" | "WARNING")
    )
}

/// Every answer carries the header [`Recording::request_ids`] names (the lab file's
/// `request_id_header`, which the load noted on every answer), and every 4xx/5xx has an error
/// log line with that id in its `field`. Messages name the header.
pub fn request_id(rec: &Recording, phase: Phase, reqs: &[&RequestRecord]) -> CheckResult {
    let ids = &rec.request_ids;
    let header = ids.header.as_str();
    let answered: Vec<&RequestRecord> = reqs
        .iter()
        .copied()
        .filter(|r| r.status().is_some())
        .collect();
    let missing: Vec<&RequestRecord> = answered
        .iter()
        .copied()
        .filter(|r| !rec.carries_request_id(r))
        .collect();
    let errs: Vec<&RequestRecord> = errors(reqs).collect();
    let unlogged: Vec<&RequestRecord> = errs
        .iter()
        .copied()
        .filter(|r| {
            rec.request_id(r).is_some_and(|id| {
                !rec.logs_for(id)
                    .iter()
                    .any(|l| is_error_log(l, &rec.request_ids.level))
            })
        })
        .collect();
    if missing.is_empty() && unlogged.is_empty() {
        return pass(
            "request-id",
            phase,
            format!(
                "{} answers carry {header}; all {} errors are logged with it (in `{}`)",
                answered.len(),
                errs.len(),
                ids.field
            ),
        );
    }
    let mut parts = Vec::new();
    let mut evidence = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("{} answers without {header}", missing.len()));
        evidence.extend(
            missing
                .iter()
                .take(MAX_EXAMPLES)
                .map(|r| request_evidence(rec, r, format!("no {header} header"))),
        );
    }
    if !unlogged.is_empty() {
        parts.push(format!(
            "{} error answers with no error log line carrying their {header} in `{}`",
            unlogged.len(),
            ids.field
        ));
        evidence.extend(unlogged.iter().take(MAX_EXAMPLES).map(|r| {
            request_evidence(
                rec,
                r,
                format!(
                    "no ERROR/WARN log line has this {header} in `{}`",
                    ids.field
                ),
            )
        }));
    }
    fail("request-id", phase, parts.join("; ")).with(evidence)
}

//! The problem+json check: every error answer is `application/problem+json` with a `title` and
//! a `status` equal to the HTTP status.

use super::common::{MAX_EXAMPLES, errors, fail, pass, request_evidence};
use crate::record::{Phase, Recording, RequestRecord};
use crate::verdict::CheckResult;

/// Why an error response is not valid problem+json, if it is not.
pub fn problem_json_violation(r: &RequestRecord) -> Option<String> {
    let status = r.status()?;
    let ct = r.header("content-type").unwrap_or("");
    if !ct.starts_with("application/problem+json") {
        return Some(format!(
            "content-type is `{ct}`, not application/problem+json"
        ));
    }
    let body = r.body().unwrap_or("");
    let v: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Some(format!("body is not JSON: {e}")),
    };
    match v.get("status").and_then(|s| s.as_u64()) {
        Some(s) if s == u64::from(status) => {}
        Some(s) => return Some(format!("`status` is {s} but the HTTP status is {status}")),
        None => return Some("no numeric `status` member".into()),
    }
    if v.get("title").and_then(|t| t.as_str()).is_none() {
        return Some("no `title` member".into());
    }
    None
}

/// Every 4xx/5xx is problem+json with `status` equal to the HTTP status.
pub fn problem_json(rec: &Recording, phase: Phase, reqs: &[&RequestRecord]) -> CheckResult {
    let errs: Vec<&RequestRecord> = errors(reqs).collect();
    if errs.is_empty() {
        return pass("problem-json", phase, "no error responses to check".into());
    }
    let bad: Vec<(&RequestRecord, String)> = errs
        .iter()
        .filter_map(|r| problem_json_violation(r).map(|w| (*r, w)))
        .collect();
    if bad.is_empty() {
        pass(
            "problem-json",
            phase,
            format!("all {} error responses are problem+json", errs.len()),
        )
    } else {
        let first = bad[0].1.clone();
        fail(
            "problem-json",
            phase,
            format!(
                "{} of {} error responses are not problem+json: {first}",
                bad.len(),
                errs.len()
            ),
        )
        .with(
            bad.into_iter()
                .take(MAX_EXAMPLES)
                .map(|(r, w)| request_evidence(rec, r, w))
                .collect(),
        )
    }
}

/// Why an error response is not a JSON object with every member of `fields`, if it is not.
pub fn json_error_violation(r: &RequestRecord, fields: &[String]) -> Option<String> {
    let body = r.body().unwrap_or("");
    let v: serde_json::Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(e) => return Some(format!("body is not JSON: {e}")),
    };
    let Some(object) = v.as_object() else {
        return Some("body is JSON but not an object".into());
    };
    let missing: Vec<&str> = fields
        .iter()
        .filter(|f| !object.contains_key(f.as_str()))
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| format!("no `{}` member", missing.join("`, `")))
}

/// Every 4xx/5xx is a JSON object with each of `fields` (the error format a lab file promises).
pub fn json_errors(
    rec: &Recording,
    phase: Phase,
    reqs: &[&RequestRecord],
    fields: &[String],
) -> CheckResult {
    let errs: Vec<&RequestRecord> = errors(reqs).collect();
    let bad: Vec<(&RequestRecord, String)> = errs
        .iter()
        .filter_map(|r| json_error_violation(r, fields).map(|w| (*r, w)))
        .collect();
    let shape = if fields.is_empty() {
        "JSON objects".to_string()
    } else {
        format!("JSON objects with `{}`", fields.join("`, `"))
    };
    if bad.is_empty() {
        return pass(
            "error-format",
            phase,
            format!("all {} error responses are {shape}", errs.len()),
        );
    }
    let first = bad[0].1.clone();
    fail(
        "error-format",
        phase,
        format!(
            "{} of {} error responses are not {shape}: {first}",
            bad.len(),
            errs.len()
        ),
    )
    .with(
        bad.into_iter()
            .take(MAX_EXAMPLES)
            .map(|(r, w)| request_evidence(rec, r, w))
            .collect(),
    )
}

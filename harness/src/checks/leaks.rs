//! The no-leaks check: no error body shows internals (stack traces, SQL, paths, connection
//! strings), by the built-in patterns of [`crate::leaks`].

use super::common::{MAX_EXAMPLES, errors, fail, pass, request_evidence};
use crate::record::{Phase, Recording, RequestRecord};
use crate::verdict::CheckResult;

/// What an error body leaks, if anything, by the built-in patterns of [`crate::leaks`].
pub fn find_leak(body: &str) -> Option<crate::leaks::Leak> {
    crate::leaks::LeakScanner::builtin().find(body)
}

/// No error body leaks internals.
pub fn no_leaks(rec: &Recording, phase: Phase, reqs: &[&RequestRecord]) -> CheckResult {
    let errs: Vec<&RequestRecord> = errors(reqs).collect();
    let bad: Vec<(&RequestRecord, (String, String))> = errs
        .iter()
        .filter_map(|r| find_leak(r.body().unwrap_or("")).map(|l| (*r, (l.kind, l.text))))
        .collect();
    if bad.is_empty() {
        pass(
            "no-leaks",
            phase,
            format!("{} error bodies scanned, nothing internal", errs.len()),
        )
    } else {
        let (_, (kind, text)) = &bad[0];
        fail(
            "no-leaks",
            phase,
            format!(
                "{} error bodies leak internals, e.g. {kind}: `{text}`",
                bad.len()
            ),
        )
        .with(
            bad.iter()
                .take(MAX_EXAMPLES)
                .map(|(r, (k, t))| request_evidence(rec, r, format!("leaks {k}: `{t}`")))
                .collect(),
        )
    }
}

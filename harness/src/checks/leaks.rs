//! The no-leaks check: no error body shows internals (stack traces, SQL, paths, connection
//! strings), by the built-in patterns of [`crate::leaks`].

use super::common::{MAX_EXAMPLES, errors, fail, pass, request_evidence};
use crate::record::{Phase, Recording, RequestRecord};
use crate::verdict::CheckResult;

/// What an error body leaks, if anything, by the built-in patterns of [`crate::leaks`].
pub fn find_leak(body: &str) -> Option<crate::leaks::Leak> {
    crate::leaks::LeakScanner::builtin().find(body)
}

/// No error body leaks internals, by the built-in patterns.
pub fn no_leaks(rec: &Recording, phase: Phase, reqs: &[&RequestRecord]) -> CheckResult {
    no_leaks_with(rec, phase, reqs, &[])
}

/// No error body leaks internals, by the built-in patterns and `extra` regular expressions (a
/// lab file's own, each named by itself in the evidence).
pub fn no_leaks_with(
    rec: &Recording,
    phase: Phase,
    reqs: &[&RequestRecord],
    extra: &[String],
) -> CheckResult {
    let builtin = crate::leaks::LeakScanner::builtin();
    let own;
    let scanner = if extra.is_empty() {
        builtin
    } else {
        match builtin.with_extra(extra.iter().map(|p| (format!("the lab file's `{p}`"), p))) {
            Ok(s) => {
                own = s;
                &own
            }
            // Validated with the lab file; a pattern that still does not compile is a failure
            // of the check, not a silent pass.
            Err(e) => return fail("no-leaks", phase, format!("a leak pattern is invalid: {e}")),
        }
    };
    let errs: Vec<&RequestRecord> = errors(reqs).collect();
    let bad: Vec<(&RequestRecord, (String, String))> = errs
        .iter()
        .filter_map(|r| {
            scanner
                .find(r.body().unwrap_or(""))
                .map(|l| (*r, (l.kind, l.text)))
        })
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

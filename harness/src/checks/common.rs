//! What every check shares: the pass / fail / skip constructors, the evidence of one request
//! (with the log lines carrying its request id), and how many offending requests a failing check
//! shows.

use crate::record::{Phase, Recording, RequestRecord};
use crate::verdict::{CheckResult, Evidence, Verdict};

/// How many offending requests a failing check shows.
pub(super) const MAX_EXAMPLES: usize = 3;

pub(super) fn request_evidence(rec: &Recording, r: &RequestRecord, why: String) -> Evidence {
    let logs = rec
        .request_id(r)
        .map(|id| rec.logs_for(id).into_iter().cloned().collect())
        .unwrap_or_default();
    Evidence::Request {
        request: Box::new(r.clone()),
        logs,
        why,
    }
}

pub(super) fn pass(name: &str, phase: Phase, summary: String) -> CheckResult {
    CheckResult::new(name, Some(phase), Verdict::Pass, summary)
}

pub(super) fn fail(name: &str, phase: Phase, summary: String) -> CheckResult {
    CheckResult::new(name, Some(phase), Verdict::Fail, summary)
}

pub(super) fn skip(name: &str, phase: Phase, summary: String) -> CheckResult {
    CheckResult::new(name, Some(phase), Verdict::Skip, summary)
}

/// A check of something the service does not promise (its lab file says so).
pub(super) fn not_promised(name: &str, phase: Phase) -> CheckResult {
    skip(
        name,
        phase,
        "the service does not promise this (its lab file's [expect])".into(),
    )
}

/// The error answers (4xx and 5xx) among `reqs`.
pub(super) fn errors<'a>(reqs: &'a [&'a RequestRecord]) -> impl Iterator<Item = &'a RequestRecord> {
    reqs.iter()
        .copied()
        .filter(|r| r.status().is_some_and(|s| s >= 400))
}

//! Checks: what "responds correctly" means, evaluated on a [`Recording`]. Each check passes,
//! fails or is skipped with a reason, per phase, and carries the evidence a human needs to see
//! why: the offending request and response, the log lines with its request id, metric values.
//!
//! Every check here is a pure function of the recording and the scenario's expectations, so each
//! has a unit test in which it fails. The one exception, data integrity, reads the database and
//! is tested end to end.
//!
//! # Layout
//!
//! - this file: [`evaluate`], which runs every recording-based check of a scenario, and the
//!   paths the rest of the crate uses (`crate::checks::status`, `crate::checks::quantile`, ...).
//! - `status`, `latency`, `problem_json`, `leaks`, `request_id`, `retry_after`, `health`,
//!   `metrics`, `recovery` (with no-restart), `alerts`, `data` (data integrity): one file per
//!   family of checks.
//! - `stats`: quantiles and status counts, which reports and game days use too.
//! - `common`: the pass / fail / skip constructors and a request's evidence.

mod alerts;
mod common;
mod data;
mod health;
mod latency;
mod leaks;
mod metrics;
mod problem_json;
mod recovery;
mod request_id;
mod retry_after;
mod stats;
mod status;

pub use alerts::{fires, quiet, resolves};
use common::not_promised;
pub use data::{acknowledged, data_integrity};
pub use health::health;
pub use latency::latency;
pub use leaks::{find_leak, no_leaks, no_leaks_with};
pub use metrics::metric;
pub use problem_json::{json_errors, problem_json, problem_json_violation};
pub use recovery::{no_restart, recovery};
pub use request_id::request_id;
pub use retry_after::retry_after;
pub use stats::{count_statuses, quantile};
pub use status::status;

use crate::record::{Phase, Recording, RequestRecord};
pub use crate::record::{SeriesSelector, parse_series_selector};
use crate::scenario::{Contract, Scenario};
pub use crate::verdict::{CheckResult, Evidence, Verdict};

/// The checks of what the service promises whatever is broken (its [`Contract`]: error format,
/// no leaks, request ids, Retry-After) in one phase; a promise it does not make is "not
/// promised".
pub fn contract(
    rec: &Recording,
    phase: Phase,
    reqs: &[&RequestRecord],
    contract: &Contract,
) -> Vec<CheckResult> {
    vec![
        if contract.problem_json {
            problem_json(rec, phase, reqs)
        } else if let Some(fields) = &contract.json_errors {
            json_errors(rec, phase, reqs, fields)
        } else {
            not_promised("problem-json", phase)
        },
        no_leaks_with(rec, phase, reqs, &contract.leak_patterns),
        // The names are the recording's (the load noted its header): the same lab file's.
        match &contract.request_id {
            Some(_) => request_id(rec, phase, reqs),
            None => not_promised("request-id", phase),
        },
        match contract.retry_after {
            true => retry_after(rec, phase, reqs),
            false => not_promised("retry-after", phase),
        },
    ]
}

/// Runs every recording-based check of a scenario.
pub fn evaluate(scenario: &Scenario, rec: &Recording) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for phase in Phase::ALL {
        let expect = scenario.expect.phase(phase);
        let reqs: Vec<&RequestRecord> = rec.requests_in(phase).collect();
        out.push(status(rec, phase, &reqs, expect));
        if let Some(c) = latency(phase, &reqs, expect) {
            out.push(c);
        }
        out.extend(contract(rec, phase, &reqs, &scenario.contract));
        for (name, want) in [("readyz", expect.readyz), ("livez", expect.livez)] {
            if let Some(want) = want {
                out.push(health(rec, phase, name, want));
            }
        }
        for m in &expect.metrics {
            out.push(metric(rec, phase, m));
        }
    }
    if let Some(within) = scenario.expect.recovery.recover_within {
        out.push(recovery(rec, within.as_secs_f64() * 1000.0));
    }
    out.push(no_restart(rec));
    for a in &scenario.alerts.expect {
        out.push(fires(rec, a));
        if a.resolves_within.is_some() {
            out.push(resolves(rec, a));
        }
    }
    out.extend(quiet(rec, &scenario.alerts));
    out
}

#[cfg(test)]
mod tests;

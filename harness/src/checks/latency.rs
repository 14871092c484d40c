//! The latency check: percentiles and maximum of a phase against the scenario's limits.

use super::common::{MAX_EXAMPLES, fail, pass};
use super::stats::{describe_status, quantile};
use crate::record::{Phase, RequestRecord};
use crate::scenario::PhaseExpect;
use crate::verdict::{CheckResult, Evidence};

/// Latency percentiles and maximum in a phase. Requests with no answer count at the latency at
/// which they gave up, so a hang cannot hide.
pub fn latency(phase: Phase, reqs: &[&RequestRecord], expect: &PhaseExpect) -> Option<CheckResult> {
    let l = &expect.latency;
    if l.p50.is_none() && l.p99.is_none() && l.max.is_none() {
        return None;
    }
    let mut lat: Vec<f64> = reqs.iter().map(|r| r.latency_ms).collect();
    if lat.is_empty() {
        return Some(fail("latency", phase, "no requests in this phase".into()));
    }
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for (label, q, limit) in [
        ("p50", 0.5, l.p50),
        ("p99", 0.99, l.p99),
        ("max", 1.0, l.max),
    ] {
        let v = quantile(&mut lat, q).unwrap_or(0.0);
        seen.push(format!("{label} {v:.0}ms"));
        if let Some(limit) = limit {
            let limit_ms = limit.as_secs_f64() * 1000.0;
            if v > limit_ms {
                problems.push(format!("{label} {v:.0}ms > {limit_ms:.0}ms"));
            }
        }
    }
    let evidence: Vec<Evidence> = if problems.is_empty() {
        Vec::new()
    } else {
        let mut slowest: Vec<&&RequestRecord> = reqs.iter().collect();
        slowest.sort_by(|a, b| b.latency_ms.total_cmp(&a.latency_ms));
        slowest
            .iter()
            .take(MAX_EXAMPLES)
            .map(|r| Evidence::Note {
                text: format!(
                    "{} {} took {:.0}ms and got {}",
                    r.method(),
                    r.path,
                    r.latency_ms,
                    describe_status(r.status())
                ),
            })
            .collect()
    };
    Some(if problems.is_empty() {
        pass("latency", phase, seen.join(", "))
    } else {
        fail("latency", phase, problems.join("; ")).with(evidence)
    })
}

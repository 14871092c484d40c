//! The health checks: `/readyz` and `/livez` samples of a phase against what the scenario
//! expects of them.

use super::common::{MAX_EXAMPLES, fail, pass};
use super::stats::describe_status;
use crate::record::{Phase, ProbeRecord, Recording};
use crate::scenario::Health;
use crate::verdict::{CheckResult, Evidence};

/// `/readyz` or `/livez` in a phase. `pass`: every sample passes (in recovery: the last one
/// does, since readiness may take a moment to come back). `fail`: at least one sample fails.
pub fn health(rec: &Recording, phase: Phase, endpoint: &str, want: Health) -> CheckResult {
    let samples: Vec<&ProbeRecord> = rec
        .probes
        .iter()
        .filter(|p| p.endpoint == endpoint && rec.phase_at(p.at_ms) == phase)
        .collect();
    if samples.is_empty() {
        return fail(
            endpoint,
            phase,
            format!("/{endpoint} was never sampled in this phase"),
        );
    }
    let ok = |p: &ProbeRecord| p.status == Some(200);
    let failing: Vec<&&ProbeRecord> = samples.iter().filter(|p| !ok(p)).collect();
    let n = samples.len();
    let evidence = |p: &ProbeRecord| Evidence::Probe { probe: p.clone() };
    match want {
        Health::Fail if !failing.is_empty() => pass(
            endpoint,
            phase,
            format!(
                "/{endpoint} failed in {} of {n} samples, as expected",
                failing.len()
            ),
        )
        .with(vec![evidence(failing[0])]),
        Health::Fail => fail(
            endpoint,
            phase,
            format!("/{endpoint} passed in all {n} samples; it should have reported the failure"),
        )
        .with(vec![evidence(samples[n - 1])]),
        Health::Pass if phase == Phase::Recovery => {
            let last = samples[n - 1];
            if ok(last) {
                pass(
                    endpoint,
                    phase,
                    format!("/{endpoint} passes again by the end of recovery"),
                )
            } else {
                fail(
                    endpoint,
                    phase,
                    format!(
                        "/{endpoint} still answers {} at the end of recovery",
                        describe_status(last.status)
                    ),
                )
                .with(vec![evidence(last)])
            }
        }
        Health::Pass if failing.is_empty() => pass(
            endpoint,
            phase,
            format!("/{endpoint} passed in all {n} samples"),
        ),
        Health::Pass => fail(
            endpoint,
            phase,
            format!("/{endpoint} failed in {} of {n} samples", failing.len()),
        )
        .with(
            failing
                .iter()
                .take(MAX_EXAMPLES)
                .map(|p| evidence(p))
                .collect(),
        ),
    }
}

//! Overload: an extra open-loop load, on top of the scenario's own, at a rate beyond what the
//! target can serve, for as long as the fault lasts. Its requests are real requests through the
//! same load generator and are recorded with the scenario's, so every check sees them.
//!
//! Open loop matters here most of all: a closed-loop client slows down with the service and so
//! never overloads it; real users arriving at a flash sale do not wait for each other.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{FaultError, FaultKind};
use crate::lab::Lab;
use crate::load::{self, LoadHandle, LoadPlan, MixEntry};
use crate::record::RequestRecord;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overload {
    /// Extra requests per second.
    pub rate: f64,
    /// What the extra load sends, as in `[load]`; requests the lab file describes need only
    /// their line. Default: the scenario's own load mix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mix: Vec<MixEntry>,
    /// How long an extra request may take before it is recorded as a timeout. Default 5s.
    #[serde(
        default,
        with = "crate::duration_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
}

/// The extra load is bounded even if nothing reverts it (the lab is dropped with the fault
/// still on): it stops scheduling after this long.
const LONGEST: Duration = Duration::from_secs(600);

/// The running extra load, kept until the revert.
pub struct Running {
    handle: Option<LoadHandle>,
    cancel: CancellationToken,
}

/// Dropped without a revert (a panic, an abandoned run): the extra load stops scheduling.
impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl FaultKind for Overload {
    const HINT: &'static str = "an overload fault takes rate = 300 (extra requests per second) and optionally mix = [...] as in [load] and timeout = \"5s\"";
    const ORPHAN: &'static str = "nothing to undo: the extra load ended with the run";
    const ALONE: bool = true;
    type Held = Running;

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.rate > 0.0 && self.rate <= 5000.0) {
            return Err((
                "rate",
                format!("rate {} is out of range (0 to 5000 per second)", self.rate),
            ));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(("timeout", "the timeout must be positive".into()));
        }
        if self.timeout.is_some_and(|t| t > Duration::from_secs(300)) {
            return Err(("timeout", "the timeout is too long: at most 5m".into()));
        }
        Ok(())
    }

    /// The mix completed from the lab file's requests (the scenario's load when it has none),
    /// then compiled: whatever the load generator refuses is reported now, before anything runs.
    fn fit(
        &mut self,
        lab: &crate::labfile::LabFile,
        mix: &[MixEntry],
    ) -> Result<(), (&'static str, String)> {
        if self.mix.is_empty() {
            self.mix = mix.to_vec();
        }
        for m in &mut self.mix {
            *m = m.resolved(&lab.requests);
        }
        let mut probe = self.plan("http://127.0.0.1:1", 0);
        probe.requests = Some(1);
        probe.preview(1).map_err(|e| ("mix", e.to_string()))?;
        Ok(())
    }

    fn describe(&self) -> String {
        let what: Vec<&str> = self.mix.iter().map(|m| m.request.as_str()).collect();
        format!(
            "overload: {} more requests per second ({})",
            self.rate,
            what.join(", ")
        )
    }

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        // Its own draws, from the run's seed and this fault, so that the scenario's load draws
        // the same requests with or without it.
        let seed = lab.seed ^ super::seed_for(&self.describe());
        let mut plan = self.plan(&lab.base_url, seed);
        // Recorded with the scenario's load: the same request-id header is noted.
        plan.request_id_header = lab.lab_file.request_ids().header;
        let recorder = lab.recorder.clone();
        let sink = move |r: RequestRecord| recorder.with(|rec| rec.requests.push(r));
        let cancel = CancellationToken::new();
        let handle = load::start(&plan, lab.recorder.start, sink, cancel.clone())
            .map_err(|e| FaultError::Failed(format!("the extra load cannot start: {e}")))?;
        *held = Some(Running {
            handle: Some(handle),
            cancel,
        });
        Ok(())
    }

    /// Stops scheduling, lets the requests in flight finish (they are recorded), and checks
    /// that nothing of the extra load is still running.
    async fn revert(&self, _lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let Some(running) = held.take() else {
            return Ok(()); // never started
        };
        running.cancel.cancel();
        let limit = self.timeout.unwrap_or(Duration::from_secs(5)) + Duration::from_secs(2);
        match tokio::time::timeout(limit, running.wait()).await {
            Ok(None) => Ok(()),
            Ok(Some(outcome)) if outcome.progress.in_flight == 0 => Ok(()),
            Ok(Some(outcome)) => Err(FaultError::Failed(format!(
                "the extra load still has {} requests in flight",
                outcome.progress.in_flight
            ))),
            Err(_) => Err(FaultError::Failed(format!(
                "the extra load did not stop within {limit:?}"
            ))),
        }
    }
}

impl Running {
    async fn wait(mut self) -> Option<load::LoadOutcome> {
        Some(self.handle.take()?.wait().await)
    }
}

impl Overload {
    fn plan(&self, base_url: &str, seed: u64) -> LoadPlan {
        let mut plan = LoadPlan::new(base_url, self.rate, self.mix.clone());
        plan.duration = Some(LONGEST);
        plan.timeout = self.timeout.unwrap_or(Duration::from_secs(5));
        plan.seed = seed;
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_scenarios_load_completed_from_the_lab_file_and_a_bad_mix_is_refused() {
        let lab = crate::labfile::target_app();
        let mut o: Overload = toml::from_str("rate = 300").unwrap();
        assert!(o.validate().is_ok());
        let line = lab.requests[0].request.clone();
        o.fit(lab, &[MixEntry::new(3, line.clone())]).unwrap();
        assert_eq!(o.mix, vec![MixEntry::new(3, line).resolved(&lab.requests)]);
        assert!(o.describe().contains(&o.mix[0].request));
        let mut bad: Overload =
            toml::from_str("rate = 300\nmix = [{ weight = 1, request = \"GET products\" }]")
                .unwrap();
        assert_eq!(bad.fit(lab, &[]).unwrap_err().0, "mix");
        let zero: Overload = toml::from_str("rate = 0").unwrap();
        assert_eq!(zero.validate().unwrap_err().0, "rate");
    }
}

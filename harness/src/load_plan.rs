//! Turns a scenario's load into a load-generator plan, and feeds its records to the run's
//! recorder and progress counters.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::faults::INJECT_TIMEOUT;
use crate::lab::Lab;
use crate::labfile::LabFile;
use crate::load::{self, LoadPlan};
use crate::progress::Progress;
use crate::record::{Outcome, Recorder, RequestRecord};
use crate::scenario::Scenario;

/// The plan for a scenario against a base URL. The load is bounded by the scenario's length plus
/// a margin, and by what a revert may take beyond the usual deadline (a crashed service's
/// restart waits for its `ready_within`, during the fault phase); the runner cancels it at the
/// end of recovery.
pub fn plan(scenario: &Scenario, lab_file: &LabFile, base_url: &str, seed: u64) -> LoadPlan {
    let mut plan = LoadPlan::new(base_url, scenario.load.rate, scenario.load.mix.clone());
    let slow_revert = scenario
        .faults
        .iter()
        .map(|f| {
            f.fault
                .revert_within(lab_file)
                .saturating_sub(INJECT_TIMEOUT)
        })
        .max()
        .unwrap_or_default();
    plan.duration = Some(scenario.phases.total() + Duration::from_secs(60) + slow_revert);
    plan.timeout = scenario.load.timeout;
    plan.seed = seed;
    plan.request_id_header = lab_file.request_ids().header;
    plan
}

pub fn start(
    scenario: &Scenario,
    lab: &Lab,
    seed: u64,
    rec: Arc<Recorder>,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let plan = plan(scenario, &lab.lab_file, &lab.base_url, seed);
    let start = rec.start;
    let sink = move |r: RequestRecord| {
        progress.requests.fetch_add(1, Ordering::Relaxed);
        let failed = match &r.outcome {
            Outcome::Response { status, .. } => *status >= 500,
            Outcome::Error { .. } => true,
        };
        if failed {
            progress.errors.fetch_add(1, Ordering::Relaxed);
        }
        rec.with(|recording| recording.requests.push(r));
    };
    match load::start(&plan, start, sink, cancel) {
        Ok(handle) => tokio::spawn(async move {
            handle.wait().await;
        }),
        Err(e) => {
            // The plan was validated with the scenario; this is a bug, shown on the timeline.
            let rec = lab.recorder.clone();
            rec.event(
                crate::record::EventKind::Note,
                format!("the load could not start: {e}"),
            );
            tokio::spawn(async {})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_lasts_while_a_crashed_service_may_take_to_start_again() {
        let lab = |ready_within: &str| {
            let text = format!(
                "[service]\ncommand = [\"serve\", \"{{port}}\"]\nready_within = \"{ready_within}\"\n[[request]]\npath = \"/\"\n"
            );
            crate::labfile::parse(std::path::Path::new("/tmp/fivehundred.toml"), &text).unwrap()
        };
        let scenario = |lab: &LabFile, name: &str| {
            crate::catalogue::catalogue(lab)
                .into_iter()
                .find(|c| c.name == name)
                .unwrap()
                .applies
                .unwrap()
        };
        let slow = lab("120s");
        let crash = scenario(&slow, "crash-restart");
        let lasts = |s: &Scenario, lab: &LabFile| plan(s, lab, "http://127.0.0.1:1", 7).duration;
        let usual = crash.phases.total() + Duration::from_secs(60);
        assert!(lasts(&crash, &slow) >= Some(usual + Duration::from_secs(120)));
        // Other faults, and a service that starts at once, keep the usual margin.
        let overload = scenario(&slow, "overload");
        assert_eq!(
            lasts(&overload, &slow),
            Some(overload.phases.total() + Duration::from_secs(60))
        );
        assert!(lasts(&crash, &lab("1s")) <= Some(usual + Duration::from_secs(1)));
    }

    #[test]
    fn the_load_notes_the_request_id_header_the_lab_file_names() {
        let lab = |logs: &str| {
            let text = format!(
                "[service]\ncommand = [\"serve\", \"{{port}}\"]\n{logs}[[request]]\npath = \"/\"\n"
            );
            crate::labfile::parse(std::path::Path::new("/tmp/fivehundred.toml"), &text).unwrap()
        };
        let header = |lab: &LabFile| {
            let s = crate::catalogue::catalogue(lab)
                .into_iter()
                .find(|c| c.name == "crash-restart")
                .unwrap()
                .applies
                .unwrap();
            plan(&s, lab, "http://127.0.0.1:1", 7).request_id_header
        };
        assert_eq!(header(&lab("")), "x-request-id");
        let correlated =
            lab("[service.logs]\nformat = \"json\"\nrequest_id_header = \"X-Correlation-Id\"\n");
        assert_eq!(header(&correlated), "x-correlation-id");
    }
}

//! Turns a scenario's load into a load-generator plan, and feeds its records to the run's
//! recorder and progress counters.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::lab::Lab;
use crate::load::{self, LoadPlan};
use crate::progress::Progress;
use crate::record::{Outcome, Recorder, RequestRecord};
use crate::scenario::Scenario;

/// The plan for a scenario against a base URL. The load is bounded by the scenario's length plus
/// a margin; the runner cancels it at the end of recovery.
pub fn plan(scenario: &Scenario, base_url: &str, seed: u64) -> LoadPlan {
    let mut plan = LoadPlan::new(base_url, scenario.load.rate, scenario.load.mix.clone());
    plan.duration = Some(scenario.phases.total() + Duration::from_secs(60));
    plan.timeout = scenario.load.timeout;
    plan.seed = seed;
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
    let plan = plan(scenario, &lab.base_url, seed);
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

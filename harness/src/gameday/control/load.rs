//! The game day's load: started with the lab, stopped by a halt, resumed by hand, and drained
//! at the end so its last requests are on the record. Open loop, like a scenario's.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::rules::checked_rate;
use super::{Action, ControlError, GameDay, Who, lock};
use crate::load::LoadPlan;
use crate::record::RequestRecord;

impl GameDay {
    /// Starts the load at `rate` requests per second (none at 0). Open loop, like a scenario's,
    /// bounded by a week: beyond any game day.
    pub fn start_load(&self, rate: f64) -> Result<(), String> {
        let mut load = lock(&self.load);
        if let Some(c) = load.running.take() {
            c.cancel();
        }
        load.rate = rate;
        if rate <= 0.0 {
            return Ok(());
        }
        let mut plan = LoadPlan::new(&self.lab.base_url, rate, self.settings.mix.clone());
        plan.duration = Some(Duration::from_secs(7 * 24 * 3600));
        plan.timeout = self.settings.load_timeout;
        plan.seed = self.settings.seed.wrapping_add(load.started);
        plan.request_id_header = self.lab.lab_file.request_ids().header;
        load.started += 1;
        let rec = self.lab.recorder.clone();
        let start = rec.start;
        let sink = move |r: RequestRecord| rec.with(|recording| recording.requests.push(r));
        let cancel = CancellationToken::new();
        let handle =
            crate::load::start(&plan, start, sink, cancel.clone()).map_err(|e| e.to_string())?;
        load.tasks.push(tokio::spawn(async move {
            handle.wait().await;
        }));
        load.running = Some(cancel);
        Ok(())
    }

    /// Stops scheduling requests; those in flight finish on their own. True if a load ran.
    pub fn stop_load(&self) -> bool {
        let mut load = lock(&self.load);
        match load.running.take() {
            Some(c) => {
                c.cancel();
                true
            }
            None => false,
        }
    }

    pub fn load_running(&self) -> (bool, f64) {
        let load = lock(&self.load);
        (load.running.is_some(), load.rate)
    }

    /// Waits (at most `limit`) for the last requests of every load to be recorded.
    pub async fn drain_load(&self, limit: Duration) {
        self.stop_load();
        let tasks = std::mem::take(&mut lock(&self.load).tasks);
        let _ = tokio::time::timeout(limit, futures::future::join_all(tasks)).await;
    }

    /// Starts the load again after a halt, at `rate` or the lab's rate.
    pub async fn resume(&self, rate: Option<f64>, by: Who) -> Result<f64, ControlError> {
        let _op = self.ops.lock().await;
        if lock(&self.state).stopping {
            return Err(ControlError::Stopping);
        }
        let rate = checked_rate(rate.unwrap_or(self.settings.rate))?;
        self.start_load(rate).map_err(ControlError::Failed)?;
        self.log(
            Action::Resume,
            by,
            None,
            format!("load resumed at {rate} requests per second"),
        );
        Ok(rate)
    }
}

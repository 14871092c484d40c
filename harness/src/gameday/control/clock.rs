//! What the game day does as time passes: reverts faults at their deadlines (and retries failed
//! reverts), collects alerts into the live view, and halts when an abort condition holds.

use super::rules::{clock_how, due, firing};
use super::{Action, GameDay, Who, lock};
use crate::record::EventKind;

impl GameDay {
    /// Reverts every fault whose deadline has passed, and retries failed reverts.
    pub async fn expire(&self) {
        let now = self.now_ms();
        let due = due(&lock(&self.state).active, now);
        if due.is_empty() {
            return;
        }
        let _op = self.ops.lock().await;
        for (id, for_, expired) in due {
            let _ = self
                .revert_one(id, Who::Lab, &clock_how(for_, expired))
                .await;
        }
    }

    /// Collects alert notifications and what was recorded into the live view.
    pub fn refresh(&self) {
        self.lab.collect_alerts();
        lock(&self.live).update(&self.lab.recorder);
    }

    /// The alerts firing now: the last notification of each alert instance says firing.
    pub fn firing(&self) -> Vec<String> {
        self.lab.recorder.with(|r| firing(&r.alerts))
    }

    /// Halts when an abort condition holds and there is something to halt. Returns the reason.
    pub async fn check_aborts(&self) -> Option<String> {
        if self.settings.aborts.is_empty() {
            return None;
        }
        let anything = !lock(&self.state).active.is_empty() || self.load_running().0;
        if !anything {
            return None;
        }
        let firing = self.firing();
        let now = self.now_ms();
        let why = {
            let live = lock(&self.live);
            self.settings.aborts.iter().find_map(|c| {
                let w = live.window(now, c.window().unwrap_or_default());
                c.check(&w, &firing).map(|why| format!("{c}: {why}"))
            })
        }?;
        lock(&self.state).aborted = Some(why.clone());
        self.lab
            .recorder
            .event(EventKind::Note, format!("abort: {why}; halting"));
        self.log(
            Action::Abort,
            Who::Lab,
            None,
            format!("abort: {why}; halting"),
        );
        self.halt(Who::Lab, Some(&format!("abort: {why}"))).await;
        Some(why)
    }
}

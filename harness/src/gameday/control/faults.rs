//! Injecting, reverting and halting: every injection journalled first and all or nothing, every
//! revert verified (a failed one stays active and is tried again), the kill switch. What they
//! decide by is in `rules`.

use std::time::Duration;

use super::super::params::FaultRequest;
use super::rules::{
    conflict, halt_detail, halt_how, injection_label, nothing_matches, prepared, selected,
};
use super::toxics::TOXICS_FAILED;
use super::{
    Action, Active, ActiveView, ControlError, FaultWindow, GameDay, HaltOutcome, REVERT_RETRY,
    Selector, Who, close_window, lock,
};
use crate::faults::{Fault, FaultError, Injected, Injector};
use crate::record::EventKind;

impl GameDay {
    /// Injects what `request` names, each fault with a deadline of `for_` (the lab's default
    /// when `None`). All or nothing: if one fault of a named set fails, those already injected
    /// are reverted.
    pub async fn inject(
        &self,
        request: &FaultRequest,
        for_: Option<Duration>,
        by: Who,
    ) -> Result<Vec<ActiveView>, ControlError> {
        let mut faults = request
            .resolve(&self.settings.catalogue)
            .map_err(ControlError::Invalid)?;
        for nf in &mut faults {
            // Checked against the lab's own file: its dependencies, its requests.
            nf.fault
                .fit(&self.lab.lab_file, &self.settings.mix)
                .map_err(|e| {
                    ControlError::Invalid(crate::gameday::params::FaultInputError {
                        message: e.message,
                        key: e.key,
                        hint: e.hint,
                    })
                })?;
        }
        let for_ = for_.unwrap_or(self.settings.default_for);
        let _op = self.ops.lock().await;
        {
            let state = lock(&self.state);
            if state.stopping {
                return Err(ControlError::Stopping);
            }
            conflict(&state.active, &faults)?;
        }
        for nf in &faults {
            let needs = nf
                .fault
                .preflight(&self.lab.lab_file.program())
                .map_err(|why| {
                    ControlError::Unsupported(format!("{} needs {why}", nf.fault.describe()))
                })?;
            prepared(&self.settings.needs, nf, &needs)?;
        }
        let mut done: Vec<u64> = Vec::new();
        for nf in faults {
            match self.inject_one(&nf.fault, nf.name.clone(), for_, by).await {
                Ok(id) => done.push(id),
                Err(e) => {
                    for id in done.into_iter().rev() {
                        let _ = self
                            .revert_one(
                                id,
                                Who::Lab,
                                "after another fault of the same request failed",
                            )
                            .await;
                    }
                    return Err(e);
                }
            }
        }
        let views = self.active();
        Ok(views.into_iter().filter(|v| done.contains(&v.id)).collect())
    }

    async fn inject_one(
        &self,
        fault: &Fault,
        name: Option<String>,
        for_: Duration,
        by: Who,
    ) -> Result<u64, ControlError> {
        // Journalled (and synced) first: a fault that cannot be journalled is not injected.
        let injector = Injector::new(&self.lab, &self.journal);
        let mut injected = injector
            .journal(fault)
            .map_err(|e| ControlError::Failed(e.to_string()))?;
        let id = injected.id;
        let label = injection_label(id, fault, by, for_);
        let now = self.now_ms();
        let deadline_ms = now + for_.as_secs_f64() * 1000.0;
        // Active before the injection starts: if this task is cancelled or panics half-way,
        // the deadline, a halt or the lab's stop still reverts whatever was done.
        {
            let mut state = lock(&self.state);
            state.active.push(Active {
                id,
                fault: fault.clone(),
                name: name.clone(),
                by,
                injected_at_ms: now,
                deadline_ms,
                for_,
                label: label.clone(),
                revert_error: None,
                retry_at_ms: 0.0,
            });
            state.windows.push(FaultWindow {
                id,
                fault: fault.describe(),
                name,
                injected_at_ms: now,
                injected_by: by,
                deadline_ms: Some(deadline_ms),
                reverted_at_ms: None,
                reverted_by: None,
                how: None,
                spec: Some(fault.clone()),
            });
        }
        let result = injector.inject(&mut injected, &label).await;
        lock(&self.injected).insert(id, injected);
        if let Err(e) = result {
            self.log(
                Action::InjectFailed,
                by,
                Some(id),
                format!("#{id} {} could not be injected: {e}", fault.describe()),
            );
            // A half-done injection is reverted like a done one (and stays active, retried,
            // if that fails).
            let _ = self
                .revert_one(id, Who::Lab, "after its injection failed")
                .await;
            return Err(match e {
                FaultError::Unsupported(why) => ControlError::Unsupported(why),
                FaultError::Failed(why) => ControlError::Failed(format!(
                    "{} could not be injected: {why}",
                    fault.describe()
                )),
            });
        }
        self.log(
            Action::Inject,
            by,
            Some(id),
            format!(
                "injected #{id} {}; reverts by itself at {} (in {})",
                fault.describe(),
                self.wall(deadline_ms)
                    .with_timezone(&chrono::Local)
                    .format("%H:%M:%S"),
                humantime::format_duration(for_)
            ),
        );
        Ok(id)
    }

    /// Reverts active fault `id`; the caller holds `ops`. `how` completes "reverted ...".
    pub(super) async fn revert_one(&self, id: u64, by: Who, how: &str) -> Result<String, String> {
        let Some(active) = lock(&self.state)
            .active
            .iter()
            .find(|a| a.id == id)
            .cloned()
        else {
            return Err(format!("#{id} is not active"));
        };
        let what = format!("#{id} {}", active.fault.describe());
        // What the injection holds; a fault whose injection was abandoned half-way (its task
        // cancelled) is reverted from its parameters alone.
        let mut injected = lock(&self.injected)
            .remove(&id)
            .unwrap_or_else(|| Injected::unheld(id, &active.fault));
        let result = Injector::new(&self.lab, &self.journal)
            .revert(
                &mut injected,
                &format!("{}: reverted {how}", active.label),
                3,
            )
            .await;
        if result.is_err() {
            lock(&self.injected).insert(id, injected);
        }
        match result {
            Ok(()) => {
                let at = self.now_ms();
                {
                    let mut state = lock(&self.state);
                    state.active.retain(|a| a.id != id);
                    close_window(&mut state.windows, id, at, by, how);
                }
                self.log(
                    Action::Revert,
                    by,
                    Some(id),
                    format!("reverted {what} {how}"),
                );
                Ok(what)
            }
            Err(why) => {
                let retry_at_ms = self.now_ms() + REVERT_RETRY.as_secs_f64() * 1000.0;
                {
                    let mut state = lock(&self.state);
                    if let Some(a) = state.active.iter_mut().find(|a| a.id == id) {
                        a.revert_error = Some(why.clone());
                        a.retry_at_ms = retry_at_ms;
                    }
                }
                self.lab.recorder.event(
                    EventKind::Note,
                    format!(
                        "revert failed: {what}: {why}; tried again every {}s",
                        REVERT_RETRY.as_secs()
                    ),
                );
                self.log(
                    Action::RevertFailed,
                    by,
                    Some(id),
                    format!("could not revert {what}: {why}; trying again"),
                );
                Err(format!("{what}: {why}"))
            }
        }
    }

    /// Reverts the faults `selector` picks. Returns what was reverted; a fault that could not
    /// be reverted stays active (and is tried again) and makes this an error.
    pub async fn revert(&self, selector: &Selector, by: Who) -> Result<Vec<String>, ControlError> {
        let wanted: Option<Vec<Fault>> = match selector {
            Selector::Matching(r) => Some(
                r.resolve(&self.settings.catalogue)
                    .map_err(ControlError::Invalid)?
                    .into_iter()
                    .map(|nf| nf.fault)
                    .collect(),
            ),
            _ => None,
        };
        let _op = self.ops.lock().await;
        let ids = selected(&lock(&self.state).active, selector, wanted.as_deref());
        if ids.is_empty() && !matches!(selector, Selector::All) {
            return Err(nothing_matches(&self.active()));
        }
        let mut reverted = Vec::new();
        let mut failed = Vec::new();
        for id in ids {
            match self.revert_one(id, by, &format!("by {by}")).await {
                Ok(what) => reverted.push(what),
                Err(e) => failed.push(e),
            }
        }
        if failed.is_empty() {
            Ok(reverted)
        } else {
            Err(ControlError::Failed(format!(
                "could not revert {}; it stays active and is tried again",
                failed.join("; ")
            )))
        }
    }

    /// The kill switch: stops the load, then reverts every active fault, newest first.
    pub async fn halt(&self, by: Who, why: Option<&str>) -> HaltOutcome {
        // The load stops first: that ends the harm at once, whatever the reverts take.
        let load_stopped = self.stop_load();
        let _op = self.ops.lock().await;
        let ids: Vec<u64> = lock(&self.state)
            .active
            .iter()
            .rev()
            .map(|a| a.id)
            .collect();
        let how = halt_how(by, why);
        let mut out = HaltOutcome {
            load_stopped,
            ..Default::default()
        };
        for id in ids {
            match self.revert_one(id, by, &how).await {
                Ok(what) => out.reverted.push(what),
                Err(e) => out.failed.push(e),
            }
        }
        // And what Toxiproxy's clients added to the lab's proxies.
        self.clear_toxics(by, &how, &mut out).await;
        let detail = halt_detail(why, &out);
        self.lab
            .recorder
            .event(EventKind::Note, format!("{detail} (by {by})"));
        self.log(Action::Halt, by, None, detail);
        out
    }

    /// From now on every operation is refused; returns the halt that reverts what is left.
    pub async fn begin_stopping(&self, why: &str) -> HaltOutcome {
        let out = self.halt(Who::Lab, Some(why)).await;
        let _op = self.ops.lock().await;
        lock(&self.state).stopping = true;
        // A revert that failed in the halt gets its last tries here.
        let left: Vec<u64> = lock(&self.state).active.iter().map(|a| a.id).collect();
        let mut out = out;
        for id in left {
            if let Ok(what) = self.revert_one(id, Who::Lab, "as the lab stopped").await {
                out.failed.retain(|f| !f.starts_with(&what));
                out.reverted.push(what);
            }
        }
        // A toxic added while the halt ran, or one the halt could not remove.
        let mut last = HaltOutcome::default();
        self.clear_toxics(Who::Lab, "as the lab stopped", &mut last)
            .await;
        if last.failed.is_empty() {
            out.failed.retain(|f| !f.starts_with(TOXICS_FAILED));
        }
        out.reverted.extend(last.reverted);
        out
    }

    /// Faults and toxics still active (only after a revert failed for good).
    pub fn unreverted(&self) -> Vec<String> {
        let state = lock(&self.state);
        state
            .active
            .iter()
            .map(|a| format!("#{} {}", a.id, a.fault.describe()))
            .chain(state.toxics.active().iter().map(|t| t.what()))
            .collect()
    }
}

//! The one fault protocol, shared by scenario runs, game days and `explain`: journal first (a
//! fault that cannot be journalled is not injected), inject within a deadline, record the
//! injection on the timeline, revert with retries (each within the deadline too), and journal
//! the revert only once it is verified.

use std::time::Duration;

use super::held::Armed;
use super::{Fault, FaultError};
use crate::journal::{Journal, JournalledFault};
use crate::lab::Lab;
use crate::record::EventKind;

/// How long one injection or one revert attempt may take before it is abandoned.
pub const INJECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A journalled fault: injected, being injected, or waiting for its revert. It owns what the
/// fault holds; dropping it releases that (see [`super::held`]).
pub struct Injected {
    /// The fault's number in the run's journal.
    pub id: u64,
    pub fault: Fault,
    armed: Box<dyn Armed>,
}

impl std::fmt::Debug for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injected")
            .field("id", &self.id)
            .field("fault", &self.fault)
            .finish_non_exhaustive()
    }
}

impl Injected {
    /// A fault already journalled as `id` whose slot was lost (its injection abandoned half-way):
    /// its revert works from the parameters alone.
    pub fn unheld(id: u64, fault: &Fault) -> Injected {
        Injected {
            id,
            fault: fault.clone(),
            armed: fault.arm(),
        }
    }
}

/// Injects and reverts faults in one lab, journalling each step in one journal.
#[derive(Debug, Clone, Copy)]
pub struct Injector<'a> {
    pub lab: &'a Lab,
    pub journal: &'a Journal,
}

impl<'a> Injector<'a> {
    pub fn new(lab: &'a Lab, journal: &'a Journal) -> Self {
        Injector { lab, journal }
    }

    /// Journals `fault` (synced) before anything is done to the lab; returns it ready to inject.
    pub fn journal(&self, fault: &Fault) -> Result<Injected, FaultError> {
        let id = self.journal_entry(fault, fault.describe(), fault.orphan())?;
        Ok(Injected {
            id,
            fault: fault.clone(),
            armed: fault.arm(),
        })
    }

    /// Journals what is about to change the lab (synced): `spec` as its parameters, described as
    /// `describe`, and `orphan` what `recover` says of it after a crash. Returns its id; an error means it must
    /// not be applied. A fault kind's change goes through [`Injector::journal`]; a change made
    /// by other means (a toxic a Toxiproxy client adds to a game day's proxy) comes here
    /// directly, and is then recorded with [`Injector::record_applied`] and
    /// [`Injector::record_reverted`], the same steps a fault's injection and revert end with.
    pub fn journal_entry(
        &self,
        spec: &impl serde::Serialize,
        describe: String,
        orphan: &'static str,
    ) -> Result<u64, FaultError> {
        let entry = JournalledFault {
            // As written (a fault's `kind` first), not re-sorted: people and tests read journals.
            spec: serde_json::value::to_raw_value(spec).map_err(|e| {
                FaultError::Failed(format!("cannot write the fault for the journal: {e}"))
            })?,
            describe,
            orphan,
        };
        self.journal.inject(&entry).map_err(|e| {
            FaultError::Failed(format!(
                "cannot journal the fault, so it was not injected: {e}"
            ))
        })
    }

    /// Records on the timeline that a journalled change is taking effect, as `label`.
    pub fn record_applied(&self, label: &str) {
        self.lab.recorder.event(EventKind::Inject, label);
    }

    /// Journals change `id` as reverted and records `text` on the timeline: a revert verified.
    pub fn record_reverted(&self, id: u64, text: &str) {
        self.journal.reverted(id);
        self.lab.recorder.event(EventKind::Revert, text);
    }

    /// Injects a journalled fault, recording `label` on the timeline first. On an error (or
    /// after [`INJECT_TIMEOUT`]) the fault may be half in place: the caller reverts it like a
    /// finished one.
    pub async fn inject(&self, injected: &mut Injected, label: &str) -> Result<(), FaultError> {
        self.record_applied(label);
        match tokio::time::timeout(INJECT_TIMEOUT, injected.armed.inject(self.lab)).await {
            Ok(result) => result,
            Err(_) => Err(FaultError::Failed(format!(
                "the injection did not finish within {}",
                humantime::format_duration(INJECT_TIMEOUT)
            ))),
        }
    }

    /// Journals and injects in one step (see [`Injector::journal`] and [`Injector::inject`]).
    /// On failure the fault is reverted at once; if that fails too, it is handed back so the
    /// caller keeps it for a later attempt (the journal keeps it for `recover`).
    pub async fn inject_new(
        &self,
        fault: &Fault,
        label: &str,
    ) -> Result<Injected, (FaultError, Option<Injected>)> {
        let mut injected = self.journal(fault).map_err(|e| (e, None))?;
        match self.inject(&mut injected, label).await {
            Ok(()) => Ok(injected),
            Err(e) => {
                let text = format!("{label} (after a failed injection)");
                match self.revert(&mut injected, &text, 3).await {
                    Ok(()) => Err((e, None)),
                    Err(_) => Err((e, Some(injected))),
                }
            }
        }
    }

    /// Reverts an injected fault, trying up to `attempts` times (a revert is the one step that
    /// must not be skipped), each within the fault's own deadline (see
    /// [`super::FaultKind::revert_within`]). Once verified it is journalled as reverted and
    /// `text` recorded on the timeline; a failure is recorded as a note and the fault stays
    /// journalled.
    pub async fn revert(
        &self,
        injected: &mut Injected,
        text: &str,
        attempts: u32,
    ) -> Result<(), String> {
        let within = injected.fault.revert_within(&self.lab.lab_file);
        let mut last = String::new();
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            match tokio::time::timeout(within, injected.armed.revert(self.lab)).await {
                Ok(Ok(())) => {
                    self.record_reverted(injected.id, text);
                    return Ok(());
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => {
                    last = format!(
                        "the revert did not finish within {}",
                        humantime::format_duration(within)
                    )
                }
            }
        }
        Err(last)
    }
}

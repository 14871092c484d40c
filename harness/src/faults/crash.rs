//! A crash: the service's process killed mid-load (SIGKILL by default: no handler runs, nothing is
//! flushed, transactions in flight are cut), and started again by the lab when the fault ends,
//! as a process supervisor would, on the same addresses with the same environment.
//!
//! The exit is recorded as planned, so that the `no-restart` check, which fails a target that
//! had to be restarted to recover, does not count the crash the scenario asked for.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use crate::lab::{Killed, Lab};
use crate::record::EventKind;

use crate::record::PLANNED_EXIT as PLANNED;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crash {
    /// `SIGKILL` (default), `SIGABRT` or `SIGSEGV`: how the process dies.
    #[serde(default = "default_signal")]
    pub signal: String,
}

fn default_signal() -> String {
    "SIGKILL".into()
}

const SIGNALS: &[&str] = &["SIGKILL", "SIGABRT", "SIGSEGV"];

impl FaultKind for Crash {
    const HINT: &'static str = "a crash fault takes optionally signal = \"SIGKILL\" | \"SIGABRT\" | \"SIGSEGV\"";
    const ORPHAN: &'static str = "nothing to undo: the service and its restart ended with the run";
    type Held = Killed;

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !SIGNALS.contains(&self.signal.as_str()) {
            return Err((
                "signal",
                format!(
                    "`{}` is not a crash signal; use one of {}",
                    self.signal,
                    SIGNALS.join(", ")
                ),
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "crash: kill the service with {}, restart it after",
            self.signal
        )
    }

    /// The restart waits up to the service's `ready_within` for it to be ready again, as its
    /// first start did: an attempt abandoned sooner would kill a service that is still
    /// starting, as the lab file allows, and start it over.
    fn revert_within(&self, lab: &crate::labfile::LabFile) -> Duration {
        lab.service.ready_within + super::INJECT_TIMEOUT
    }

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let (killed, status) = lab
            .kill_service(self.signal())
            .await
            .map_err(FaultError::Failed)?;
        *held = Some(killed);
        lab.recorder.event(
            EventKind::TargetExit,
            format!("service killed with {}: {status} {PLANNED}", self.signal),
        );
        Ok(())
    }

    /// Starts the service again where it was and checks that it is alive as a new process.
    async fn revert(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        if let Some(pid) = lab.target_pid() {
            // Already running (a second revert): nothing to start.
            return verify_alive(lab, pid).await;
        }
        let Some(killed) = *held else {
            return Err(FaultError::Failed(
                "the service is not running and where it listened is unknown".into(),
            ));
        };
        let pid = lab
            .restart_service(&killed)
            .await
            .map_err(FaultError::Failed)?;
        *held = None;
        verify_alive(lab, pid).await
    }
}

impl Crash {
    fn signal(&self) -> Signal {
        self.signal.parse().unwrap_or(Signal::SIGKILL)
    }
}

/// The restarted service answers its liveness path (when it has one; its start already waited
/// for readiness).
async fn verify_alive(lab: &Lab, pid: u32) -> Result<(), FaultError> {
    let Some(path) = &lab.health.liveness else {
        return Ok(());
    };
    let url = format!("{}{path}", lab.base_url);
    let answer = reqwest::Client::new()
        .get(&url)
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(FaultError::Failed(format!(
            "the restarted service (pid {pid}) answers {path} with {}",
            r.status()
        ))),
        Err(e) => Err(FaultError::Failed(format!(
            "the restarted service (pid {pid}) does not answer {path}: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_may_take_as_long_as_the_lab_file_lets_the_service_start() {
        let lab = |ready_within: &str| {
            let text = format!(
                "[service]\ncommand = [\"serve\", \"{{port}}\"]\nready_within = \"{ready_within}\"\n[[request]]\npath = \"/\"\n"
            );
            crate::labfile::parse(std::path::Path::new("/tmp/fivehundred.toml"), &text).unwrap()
        };
        let crash = crate::faults::Fault::Crash(Crash {
            signal: "SIGKILL".into(),
        });
        let slow = lab("120s");
        assert!(crash.revert_within(&slow) > Duration::from_secs(120));
        assert!(crash.revert_within(&lab("1s")) >= crate::faults::INJECT_TIMEOUT);
        // Other faults keep the usual deadline.
        let other = crate::faults::Fault::from_table(
            toml::from_str("kind = \"fd-limit\"").unwrap(),
        )
        .unwrap();
        assert_eq!(other.revert_within(&slow), crate::faults::INJECT_TIMEOUT);
    }

    #[test]
    fn only_crash_signals_are_accepted() {
        for good in SIGNALS {
            let c = Crash {
                signal: good.to_string(),
            };
            assert!(c.validate().is_ok(), "{good}");
            assert_eq!(c.signal().as_str(), *good);
        }
        let term = Crash {
            signal: "SIGTERM".into(),
        };
        assert_eq!(term.validate().unwrap_err().0, "signal");
    }
}

//! A crash: the target process killed mid-load (SIGKILL by default: no handler runs, nothing is
//! flushed, transactions in flight are cut), and started again by the lab when the fault ends,
//! as a process supervisor would, on the same addresses with the same environment.
//!
//! The exit is recorded as planned, so that the `no-restart` check, which fails a target that
//! had to be restarted to recover, does not count the crash the scenario asked for.

use std::net::SocketAddr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use crate::lab::Lab;
use crate::record::EventKind;
use crate::target::TargetProcess;

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

/// Where the killed process listened, kept in the lab until the restart.
pub struct Addresses {
    listen: SocketAddr,
    admin: SocketAddr,
    pid: u32,
}

/// How long the restarted target gets to answer `/livez`.
const READY_WITHIN: Duration = Duration::from_secs(30);

impl FaultKind for Crash {
    const HINT: &'static str = "a crash fault takes optionally signal = \"SIGKILL\" | \"SIGABRT\" | \"SIGSEGV\"";
    const ORPHAN: &'static str = "nothing to undo: the target and its restart ended with the run";
    type Held = Addresses;

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
            "crash: kill the target with {}, restart it after",
            self.signal
        )
    }

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let taken = lab.take_target();
        let Some(mut target) = taken else {
            return Err(FaultError::Failed("the target is not running".into()));
        };
        let pid = target.pid();
        *held = Some(Addresses {
                listen: target.listen,
                admin: target.admin,
                pid,
            });
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), self.signal())
            .map_err(|e| FaultError::Failed(format!("cannot signal the target: {e}")))?;
        // Reap it, so that its exit is a fact before the fault counts as injected.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = target.exited() {
                break status;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(FaultError::Failed(format!(
                    "the target (pid {pid}) did not die of {}",
                    self.signal
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        lab.recorder.event(
            EventKind::TargetExit,
            format!("target killed with {}: {status} {PLANNED}", self.signal),
        );
        Ok(())
    }

    /// Starts the target again where it was, and checks it answers `/livez` as a new process.
    async fn revert(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        if let Some(pid) = lab.target_pid() {
            // Already running (a second revert): nothing to start.
            return self.verify_alive(lab, pid).await;
        }
        let Some(at) = held.take() else {
            return Err(FaultError::Failed(
                "the target is not running and where it listened is unknown".into(),
            ));
        };
        let (spec, env) = lab.target_setup();
        let started =
            TargetProcess::start_on(spec, env, &lab.recorder, at.listen, at.admin, READY_WITHIN)
                .await;
        let target = match started {
            Ok(t) => t,
            Err(e) => {
                // Keep the addresses for the next attempt.
                *held = Some(at);
                return Err(FaultError::Failed(format!(
                    "cannot restart the target: {e}"
                )));
            }
        };
        let pid = target.pid();
        lab.journal_restarted_target(pid);
        lab.put_target(target);
        if pid == at.pid {
            return Err(FaultError::Failed(format!(
                "the restarted target has the killed one's pid {pid}"
            )));
        }
        self.verify_alive(lab, pid).await
    }
}

impl Crash {
    fn signal(&self) -> Signal {
        self.signal.parse().unwrap_or(Signal::SIGKILL)
    }

    async fn verify_alive(&self, lab: &Lab, pid: u32) -> Result<(), FaultError> {
        let url = format!("{}/livez", lab.base_url);
        let answer = reqwest::Client::new()
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(FaultError::Failed(format!(
                "the restarted target (pid {pid}) answers /livez with {}",
                r.status()
            ))),
            Err(e) => Err(FaultError::Failed(format!(
                "the restarted target (pid {pid}) does not answer /livez: {e}"
            ))),
        }
    }
}

impl Lab {
    /// Journals a target the crash fault started, so that `recover` kills it if the controller
    /// is killed before the lab stops it. (It is tied to the controller as the first one was, so
    /// this is the second line of defence.)
    fn journal_restarted_target(&self, pid: u32) {
        let _ = self.journal_resource(crate::journal::Resource::Process {
            pid,
            what: "target (restarted by the crash fault)".into(),
            start_time: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

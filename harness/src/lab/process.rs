//! The service process as faults see it: killed as a crash kills it and started again where
//! it was, as a supervisor would, whether it is target-app or a service from a lab file.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::Lab;
use crate::journal::Resource;
use crate::labfile::service::LineSink;
use crate::labfile::{LabFile, ServiceProcess, Start, Values};
use crate::target::TargetProcess;

/// What the lab keeps to start a lab-file service again.
pub(crate) struct ServiceStart {
    pub lab_file: Arc<LabFile>,
    pub values: Values,
    pub sink: LineSink,
}

/// A process a fault killed: enough to start it again where it was.
#[derive(Debug, Clone, Copy)]
pub enum Killed {
    Target {
        pid: u32,
        listen: SocketAddr,
        admin: SocketAddr,
    },
    Service {
        pid: u32,
    },
    /// The lab-file service's container, killed; it is started again as it was.
    Container {
        pid: u32,
    },
}

impl Killed {
    pub fn pid(&self) -> u32 {
        match self {
            Killed::Target { pid, .. } | Killed::Service { pid } | Killed::Container { pid } => {
                *pid
            }
        }
    }
}

/// How long the killed process gets to die, and the restarted one to become ready.
const DIE_WITHIN: Duration = Duration::from_secs(5);
const READY_WITHIN: Duration = Duration::from_secs(30);

impl Lab {
    /// Kills the service with `signal` and reaps it; returns what it was and how it ended. A
    /// lab-file service's whole process group gets the signal: workers a crash would take with
    /// their parent (a pre-fork server's) must not keep serving.
    pub async fn kill_service(&self, signal: Signal) -> Result<(Killed, String), String> {
        if let Some(c) = &self.service_container {
            if c.pid().is_none() {
                return Err("the service's container is not running".into());
            }
            let (pid, status) = c.kill(signal.as_str(), DIE_WITHIN).await?;
            return Ok((Killed::Container { pid }, status));
        }
        if let Some(mut s) = self.service.lock().ok().and_then(|mut s| s.take()) {
            let pid = s.pid();
            let _ = killpg(Pid::from_raw(pid as i32), signal);
            let status = reap(pid, signal, || s.exited()).await?;
            // Whatever of its group outlived the leader goes too.
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            return Ok((Killed::Service { pid }, status.to_string()));
        }
        let Some(mut target) = self.take_target() else {
            return Err("the service is not running".into());
        };
        let pid = target.pid();
        let killed = Killed::Target {
            pid,
            listen: target.listen,
            admin: target.admin,
        };
        kill(Pid::from_raw(pid as i32), signal)
            .map_err(|e| format!("cannot signal the service: {e}"))?;
        let status = reap(pid, signal, || target.exited()).await?;
        Ok((killed, status))
    }

    /// Starts what [`Lab::kill_service`] killed again, on the same addresses with the same
    /// environment, and waits until it is ready. Returns the new pid.
    pub async fn restart_service(&self, killed: &Killed) -> Result<u32, String> {
        let pid = match killed {
            Killed::Target { listen, admin, .. } => {
                let (spec, env) = self.target_setup();
                let target = TargetProcess::start_on(
                    spec,
                    env,
                    &self.recorder,
                    *listen,
                    *admin,
                    READY_WITHIN,
                )
                .await
                .map_err(|e| format!("cannot restart the service: {e}"))?;
                let pid = target.pid();
                self.put_target(target);
                pid
            }
            Killed::Container { .. } => {
                let Some(c) = &self.service_container else {
                    return Err("the lab has no service container".into());
                };
                // Its container is removed with the run's by label: nothing new to journal.
                return c.restart().await;
            }
            Killed::Service { .. } => {
                let Some(start) = &self.service_start else {
                    return Err("the lab does not start this service".into());
                };
                let Start::Command(spec) = &start.lab_file.service.start else {
                    return Err("the service is only a URL: the lab cannot start it".into());
                };
                let process = ServiceProcess::start(
                    &start.lab_file.service,
                    spec,
                    &start.values,
                    &self.run_dir,
                    // The private tmpfs of its data directory (the disk-full fault's), a new one
                    // at each start.
                    self.env
                        .data_tmpfs
                        .map(|size| (self.data_dir.clone(), size)),
                    start.sink.clone(),
                )
                .await
                .map_err(|e| format!("cannot restart the service: {e}"))?;
                let pid = process.pid();
                if let Ok(mut slot) = self.service.lock() {
                    *slot = Some(process);
                }
                pid
            }
        };
        // Journalled so that `recover` stops it if the controller dies before the lab does.
        let _ = self.journal_resource(Resource::Process {
            pid,
            what: "service (restarted by the crash fault)".into(),
            start_time: crate::journal::process_start_time(pid),
        });
        if pid == killed.pid() {
            return Err(format!(
                "the restarted service has the killed one's pid {pid}"
            ));
        }
        Ok(pid)
    }
}

impl Lab {
    /// A handle on each of the lab's proxies, by name (`database`, `payments`, a lab file's
    /// dependencies), for Toxiproxy's API to drive.
    pub fn proxy_handles(&self) -> Vec<(String, crate::proxy::ProxyHandle)> {
        self.proxies
            .iter()
            .map(|(name, p)| (name.clone(), p.handle()))
            .collect()
    }

    /// The lab's database container, its engine and the name of its network, when the lab runs
    /// its PostgreSQL in Docker.
    pub fn database_container(
        &self,
    ) -> Option<(
        &crate::docker::Engine,
        &crate::docker::postgres::PgContainer,
        String,
    )> {
        match &self.db {
            super::Database::Container { pg, engine, run } => Some((engine, pg, run.name("lab"))),
            _ => None,
        }
    }

    /// The lab-file service's container, its engine and the name of its network, when the
    /// service runs as a container.
    pub fn service_container(
        &self,
    ) -> Option<(&crate::docker::Engine, &crate::docker::Container, String)> {
        self.service_container
            .as_ref()
            .map(|c| (&c.engine, &c.container, c.network.name.clone()))
    }

    /// Waits until the service's container, started again by a fault's revert, is ready.
    pub async fn service_container_ready(&self) -> Result<(), String> {
        match &self.service_container {
            Some(c) => c.wait_ready().await.map_err(|e| e.to_string()),
            None => Err("the service does not run in a container".into()),
        }
    }

    /// Every process of the running service: the one the lab started and, for a lab-file
    /// service, the rest of its process group (a pre-fork server's workers), which a fault on
    /// "the service" must reach too. Empty when it is not running.
    pub fn service_pids(&self) -> Vec<u32> {
        if self.service_container.is_some() {
            // Its processes belong to the container's cgroup, which the engine manages: the
            // container fault acts on it (`kind = "container"`, `target = "service"`).
            return Vec::new();
        }
        let Some(leader) = self.target_pid() else {
            return Vec::new();
        };
        let mut pids = vec![leader];
        if self.service_start.is_some() {
            pids.extend(group_members(leader).into_iter().filter(|p| *p != leader));
        }
        pids
    }
}

/// The processes whose process group is `pgid`, from `/proc`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| pgrp_of(&stat))
                == Some(pgid)
        })
        .collect()
}

/// The process group in a `/proc/PID/stat` line: the third field after the command, which is
/// in parentheses and may itself hold spaces and parentheses.
fn pgrp_of(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Waits until `exited` reports the process gone.
async fn reap<S: std::fmt::Display>(
    pid: u32,
    signal: Signal,
    mut exited: impl FnMut() -> Option<S>,
) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + DIE_WITHIN;
    loop {
        if let Some(status) = exited() {
            return Ok(status.to_string());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("the service (pid {pid}) did not die of {signal}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_group_is_read_past_a_command_with_spaces_and_parentheses() {
        assert_eq!(pgrp_of("42 (a b) c)) S 1 4242 4242 0 -1"), Some(4242));
        assert_eq!(pgrp_of("42 (x) S 1"), None);
        let me = std::process::id();
        let own = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let pgid = nix::unistd::getpgrp().as_raw() as u32;
        assert_eq!(pgrp_of(&own), Some(pgid));
        assert!(group_members(pgid).contains(&me));
    }
}

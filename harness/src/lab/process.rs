//! The service process as faults see it: killed as a crash kills it and started again where
//! it was, as a supervisor would; and a second instance beside it, for a fault that shows how
//! a start with another config file goes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::Lab;
use crate::journal::Resource;
use crate::labfile::service::{LineSink, StartError};
use crate::labfile::{CommandSpec, Service, ServiceProcess, Values};
use crate::sys::Isolation;

/// What the lab keeps to start the service (again): its command with the run's arguments,
/// the values its templates are filled with, and where its output goes.
pub(crate) struct ServiceStart {
    pub service: Service,
    pub spec: CommandSpec,
    pub values: Values,
    pub sink: LineSink,
}

impl ServiceStart {
    /// Starts the service and waits until it is ready.
    pub async fn start(
        &self,
        run_dir: &Path,
        isolation: Isolation,
    ) -> Result<ServiceProcess, StartError> {
        ServiceProcess::start(
            &self.service,
            &self.spec,
            &self.values,
            run_dir,
            isolation,
            self.sink.clone(),
        )
        .await
    }
}

/// A process a fault killed: enough to start it again where it was.
#[derive(Debug, Clone, Copy)]
pub enum Killed {
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
            Killed::Service { pid } | Killed::Container { pid } => *pid,
        }
    }
}

/// How long the killed process gets to die.
const DIE_WITHIN: Duration = Duration::from_secs(5);

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
        let Some(mut s) = self.service.lock().ok().and_then(|mut s| s.take()) else {
            return Err("the service is not running".into());
        };
        let pid = s.pid();
        killpg(Pid::from_raw(pid as i32), signal)
            .map_err(|e| format!("cannot signal the service: {e}"))?;
        let status = reap(pid, signal, || s.exited()).await?;
        // Whatever of its group outlived the leader goes too.
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        Ok((Killed::Service { pid }, status.to_string()))
    }

    /// How the service is set apart at each start: its private tmpfs (a new one each time)
    /// and its user.
    pub(crate) fn isolation(&self) -> Isolation {
        Isolation {
            tmpfs: self.data_tmpfs.map(|size| (self.data_dir.clone(), size)),
            user: self.service_user,
        }
    }

    /// A second instance of the service beside the running one, on ports of its own, with its
    /// first config file replaced by `config`; spawned, not waited for. Its listen address
    /// comes with it.
    pub fn spawn_second(
        &self,
        config: &Path,
    ) -> Result<(std::process::Child, std::net::SocketAddr), String> {
        let start = self
            .service_start
            .as_ref()
            .ok_or("the lab does not start this service as a command")?;
        let free = || crate::target::free_port();
        let port = free()?;
        let mut values = start.values.clone();
        values.listen_on(super::HOST, port);
        for name in &start.spec.listeners {
            values.listener(name, super::HOST, free()?);
        }
        let first = start
            .spec
            .configs
            .keys()
            .next()
            .ok_or("the service reads no config file the lab writes")?;
        values.config(first, config);
        for (name, c) in start.spec.configs.iter().skip(1) {
            values.config(name, &self.run_dir.join(&c.file_name));
        }
        let (cmd, _) = crate::labfile::service::command(&start.spec, &values, &self.isolation())
            .map_err(|e| e.to_string())?;
        let child = pglab::proc::spawn_tied(cmd, Signal::SIGKILL)
            .map_err(|e| format!("cannot start a second instance: {e}"))?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        Ok((child, addr))
    }

    /// The config files the service reads, as the lab rendered them for this run.
    pub fn config_paths(&self) -> Vec<PathBuf> {
        match &self.service_start {
            Some(start) => start
                .spec
                .configs
                .values()
                .map(|c| self.run_dir.join(&c.file_name))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Starts what [`Lab::kill_service`] killed again, on the same addresses with the same
    /// environment, and waits until it is ready. Returns the new pid.
    pub async fn restart_service(&self, killed: &Killed) -> Result<u32, String> {
        let pid = match killed {
            Killed::Container { .. } => {
                let Some(c) = &self.service_container else {
                    return Err("the lab has no service container".into());
                };
                // Its container is removed with the run's by label: nothing new to journal.
                return c.restart().await;
            }
            Killed::Service { .. } => {
                let Some(start) = &self.service_start else {
                    return Err("the service is only a URL: the lab cannot start it".into());
                };
                let process = start
                    .start(&self.run_dir, self.isolation())
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
        pids.extend(group_members(leader).into_iter().filter(|p| *p != leader));
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

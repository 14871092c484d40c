//! A fault on one of the lab's containers, for a lab whose PostgreSQL runs in Docker
//! (`--backend docker`): paused (every process frozen, its connections left open), killed or
//! stopped (and started again), cut from its network (a real disconnect, not through the
//! proxy), its memory limit lowered, or its CPU throttled. The mechanisms and their reverts are
//! the container backend's own ([`crate::docker::faults`]); this kind aims them at the lab's
//! database container (`target = "database"`), at a lab-file service's own container
//! (`target = "service"`) and waits, after a restart, until it serves again, or at another
//! service of the lab file's compose file by its name there (`target = "db"`).

use serde::{Deserialize, Serialize};

use super::disk::parse_bytes;
use super::{FaultError, FaultKind};
use crate::docker::faults::{ContainerFault, Injected};
use crate::lab::Lab;

/// Which container: `"database"`, `"service"`, or any other name for a service of the lab
/// file's compose file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerTarget {
    Database,
    /// A lab-file service that runs as a container (`image`, `build` or `compose`).
    Service,
    /// A service of the lab file's compose file (`compose`), by its name there.
    Compose(String),
}

impl ContainerTarget {
    fn as_str(&self) -> &str {
        match self {
            ContainerTarget::Database => "database",
            ContainerTarget::Service => "service",
            ContainerTarget::Compose(name) => name,
        }
    }
}

impl Serialize for ContainerTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ContainerTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match name.as_str() {
            "database" => ContainerTarget::Database,
            "service" => ContainerTarget::Service,
            "" => return Err(serde::de::Error::custom("the target is empty")),
            _ => ContainerTarget::Compose(name),
        })
    }
}

/// What happens to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pause,
    Kill,
    Stop,
    Disconnect,
    Memory,
    Cpu,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    pub target: ContainerTarget,
    pub action: Action,
    /// For `memory`: the lowered limit, like `"64MiB"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// For `cpu`: the share of one CPU it may use, like `0.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
}

/// What the revert needs: the backend's undo record, and for a restart how many times the
/// server had said it was ready before.
pub struct Held {
    injected: Injected,
    ready_before: Option<usize>,
}

const PERIOD_US: i64 = 100_000;

impl FaultKind for Container {
    const HINT: &'static str = "a container fault takes target = \"database\" | \"service\" | a service of the lab file's compose file, and action = \"pause\" | \"kill\" | \"stop\" | \"disconnect\" | \"memory\" (with memory = \"64MiB\") | \"cpu\" (with cpus = 0.1); the database must run in Docker (--backend docker), the service from a lab file's `image`, `build` or `compose`";
    const ORPHAN: &'static str = "nothing to undo: the run's containers are removed with its other resources";
    type Held = Held;

    fn validate(&self) -> Result<(), (&'static str, String)> {
        match (self.action, &self.memory, self.cpus) {
            (Action::Memory, None, _) => {
                return Err(("action", "a memory action needs `memory`, e.g. \"64MiB\"".into()));
            }
            (Action::Cpu, _, None) => {
                return Err(("action", "a cpu action needs `cpus`, e.g. 0.1".into()));
            }
            (a, Some(_), _) if a != Action::Memory => {
                return Err(("memory", "`memory` belongs to the memory action".into()));
            }
            (a, _, Some(_)) if a != Action::Cpu => {
                return Err(("cpus", "`cpus` belongs to the cpu action".into()));
            }
            _ => {}
        }
        self.fault("lab")
            .validate()
            .map_err(|e| (self.key(), e.to_string()))
    }

    /// A compose service must be one of the lab file's compose file; with a compose file, the
    /// database is one of its services too.
    fn fit(
        &mut self,
        lab: &crate::labfile::LabFile,
        _mix: &[crate::load::MixEntry],
    ) -> Result<(), (&'static str, String)> {
        let compose = match &lab.service.start {
            crate::labfile::Start::Container(c) => match &c.image {
                crate::labfile::ImageSource::Compose(source) => Some(source),
                _ => None,
            },
            _ => None,
        };
        match (&self.target, compose) {
            // The service under test by its compose name: the lab's own service, whose crash
            // and restart it records and waits for.
            (ContainerTarget::Compose(name), Some(source)) if *name == source.service => {
                self.target = ContainerTarget::Service;
                Ok(())
            }
            (ContainerTarget::Compose(name), Some(source)) if source.services.contains(name) => {
                Ok(())
            }
            (ContainerTarget::Compose(name), Some(source)) => Err((
                "target",
                format!(
                    "{} has no service `{name}`; its services: {} (or \"service\", the one under test)",
                    source.file.display(),
                    source.services.join(", ")
                ),
            )),
            (ContainerTarget::Compose(name), None) => Err((
                "target",
                format!(
                    "`{name}` is not a container of this lab: target \"database\" or \"service\"; other names are services of a lab file's compose file (`compose`), and {} has none",
                    lab.file.display()
                ),
            )),
            (ContainerTarget::Database, Some(source)) => Err((
                "target",
                format!(
                    "the lab runs no database of its own: {} has the service's dependencies, name one of them: {}",
                    source.file.display(),
                    source.dependencies().collect::<Vec<_>>().join(", ")
                ),
            )),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        let what = match self.action {
            Action::Pause => "paused".to_string(),
            Action::Kill => "killed with SIGKILL, started again after".into(),
            Action::Stop => "stopped, started again after".into(),
            Action::Disconnect => "disconnected from its network".into(),
            Action::Memory => format!(
                "its memory limited to {}",
                self.memory.as_deref().unwrap_or("?")
            ),
            Action::Cpu => format!("throttled to {} of a CPU", self.cpus.unwrap_or(0.0)),
        };
        let whose = match &self.target {
            ContainerTarget::Database => "the database's".to_string(),
            ContainerTarget::Service => "the service's".to_string(),
            ContainerTarget::Compose(name) => format!("compose service `{name}`'s"),
        };
        format!("container: {whose} container {what}")
    }

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let restarts = matches!(self.action, Action::Kill | Action::Stop);
        let compose;
        let (engine, id, network, ready_before) = match &self.target {
            ContainerTarget::Database => {
                let Some((engine, pg, network)) = lab.database_container() else {
                    return Err(FaultError::Unsupported(
                        "the lab's database is not a container: run with --backend docker".into(),
                    ));
                };
                let ready_before = if restarts {
                    Some(pg.times_ready().await.map_err(failed)?)
                } else {
                    None
                };
                (engine, pg.container.id.clone(), network, ready_before)
            }
            ContainerTarget::Service => {
                let Some((engine, container, network)) = lab.service_container() else {
                    return Err(FaultError::Unsupported(
                        "the service is not a container: give its lab file `image` or `build`"
                            .into(),
                    ));
                };
                // Its readiness is waited for after a restart; no count needed.
                (engine, container.id.clone(), network, restarts.then_some(0))
            }
            ContainerTarget::Compose(name) => {
                let Some(service) = &lab.service_container else {
                    return Err(FaultError::Unsupported(format!(
                        "`{name}` is a compose service: give the lab file `compose`"
                    )));
                };
                compose = service
                    .compose_service(name)
                    .await
                    .map_err(FaultError::Failed)?;
                (
                    &service.engine,
                    compose.0.id.clone(),
                    compose.1.clone(),
                    None,
                )
            }
        };
        let injected = crate::docker::faults::inject(engine, &id, &self.fault(&network))
            .await
            .map_err(failed)?;
        if restarts && self.target == ContainerTarget::Service {
            lab.recorder.event(
                crate::record::EventKind::TargetExit,
                format!(
                    "service's container {} {}",
                    self.describe_action(),
                    crate::record::PLANNED_EXIT
                ),
            );
        }
        *held = Some(Held {
            injected,
            ready_before,
        });
        Ok(())
    }

    async fn revert(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let Some(h) = held.as_ref() else {
            return Ok(()); // nothing was done
        };
        match &self.target {
            ContainerTarget::Compose(_) => {
                let Some((engine, _, _)) = lab.service_container() else {
                    return Err(FaultError::Failed("the service's container is gone".into()));
                };
                // The container started again is running; what it serves is for the
                // service's own checks to show.
                h.injected.revert(engine).await.map_err(failed)?;
            }
            ContainerTarget::Database => {
                let Some((engine, pg, _)) = lab.database_container() else {
                    return Err(FaultError::Failed("the database container is gone".into()));
                };
                h.injected.revert(engine).await.map_err(failed)?;
                if let Some(seen) = h.ready_before {
                    // Verified: the server in the started container accepts connections again.
                    pg.wait_ready(seen).await.map_err(failed)?;
                }
            }
            ContainerTarget::Service => {
                let Some((engine, _, _)) = lab.service_container() else {
                    return Err(FaultError::Failed("the service's container is gone".into()));
                };
                h.injected.revert(engine).await.map_err(failed)?;
                if h.ready_before.is_some() {
                    // Verified: the service in the started container is ready again.
                    lab.service_container_ready()
                        .await
                        .map_err(FaultError::Failed)?;
                }
            }
        }
        *held = None;
        Ok(())
    }
}

impl Container {
    fn describe_action(&self) -> &'static str {
        match self.action {
            Action::Kill => "killed",
            Action::Stop => "stopped",
            _ => "faulted",
        }
    }

    fn key(&self) -> &'static str {
        match self.action {
            Action::Memory => "memory",
            Action::Cpu => "cpus",
            _ => "action",
        }
    }

    /// The backend's fault, on the lab network named `network`.
    fn fault(&self, network: &str) -> ContainerFault {
        match self.action {
            Action::Pause => ContainerFault::Pause,
            Action::Kill => ContainerFault::Kill,
            Action::Stop => ContainerFault::Stop { timeout_secs: 10 },
            Action::Disconnect => ContainerFault::Disconnect {
                network: network.to_string(),
            },
            Action::Memory => ContainerFault::MemoryLimit {
                bytes: self
                    .memory
                    .as_deref()
                    .and_then(|m| parse_bytes(m).ok())
                    .map_or(0, |b| i64::try_from(b).unwrap_or(i64::MAX)),
            },
            Action::Cpu => ContainerFault::CpuQuota {
                period_us: PERIOD_US,
                quota_us: (self.cpus.unwrap_or(0.0) * PERIOD_US as f64) as i64,
            },
        }
    }
}

fn failed(e: impl std::fmt::Display) -> FaultError {
    FaultError::Failed(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Container, String> {
        let c: Container = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate().map_err(|(k, m)| format!("{k}: {m}"))?;
        Ok(c)
    }

    #[test]
    fn each_action_takes_only_its_own_parameter_and_within_the_engine_s_bounds() {
        assert!(parse("target = \"database\"\naction = \"pause\"").is_ok());
        let c = parse("target = \"database\"\naction = \"cpu\"\ncpus = 0.1").unwrap();
        assert_eq!(
            c.fault("n"),
            ContainerFault::CpuQuota {
                period_us: 100_000,
                quota_us: 10_000
            }
        );
        let err = parse("target = \"database\"\naction = \"memory\"").unwrap_err();
        assert!(err.starts_with("action:"), "{err}");
        let err = parse("target = \"database\"\naction = \"pause\"\ncpus = 0.5").unwrap_err();
        assert!(err.starts_with("cpus:"), "{err}");
        // Below the engine's smallest memory limit: refused before anything runs.
        let err = parse("target = \"database\"\naction = \"memory\"\nmemory = \"1MiB\"").unwrap_err();
        assert!(err.starts_with("memory:") && err.contains("6 MiB"), "{err}");
        let cache = parse("target = \"cache\"\naction = \"pause\"").unwrap();
        assert_eq!(cache.target, ContainerTarget::Compose("cache".into()));
        assert!(parse("target = \"\"\naction = \"pause\"").is_err());
        let service = parse("target = \"service\"\naction = \"memory\"\nmemory = \"64MiB\"").unwrap();
        assert_eq!(service.target, ContainerTarget::Service);
        assert!(service.describe().contains("the service's container"));
    }

    #[test]
    fn a_compose_service_target_is_checked_against_the_compose_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("compose.yaml"),
            "services:\n  web:\n    build: .\n  db:\n    image: pg\n",
        )
        .unwrap();
        let file = dir.path().join("fivehundred.toml");
        let compose = crate::labfile::parse(
            &file,
            "[service]\ncompose = \"compose.yaml\"\ncompose_service = \"web\"\nport = 8080\n[[request]]\npath = \"/\"\n",
        )
        .unwrap();
        let fit = |lab: &crate::labfile::LabFile, target: &str| {
            let mut c = parse(&format!("target = \"{target}\"\naction = \"pause\"")).unwrap();
            c.fit(lab, &[])
        };
        assert!(fit(&compose, "db").is_ok());
        assert!(fit(&compose, "service").is_ok());
        // The service under test by its compose name is the lab's service.
        let mut web = parse("target = \"web\"\naction = \"kill\"").unwrap();
        assert!(web.fit(&compose, &[]).is_ok());
        assert_eq!(web.target, ContainerTarget::Service);
        let (key, e) = fit(&compose, "cache").unwrap_err();
        assert_eq!(key, "target");
        assert!(e.contains("no service `cache`") && e.contains("db, web"), "{e}");
        let (_, e) = fit(&compose, "database").unwrap_err();
        assert!(e.contains("name one of them: db"), "{e}");
        // Without a compose file only the lab's own containers are targets.
        let app = crate::labfile::target_app();
        assert!(fit(app, "database").is_ok());
        let (_, e) = fit(app, "db").unwrap_err();
        assert!(e.contains("has none"), "{e}");
    }
}

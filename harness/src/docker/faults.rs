//! Faults a running container can take (Pumba's ground): pause (every process frozen, its
//! connections left open), kill or stop (and start again), a real network cut (the container
//! disconnected from a network), a lower memory limit, a CPU quota.
//!
//! [`inject`] returns an [`Injected`] that holds what its revert needs (the limits before, the
//! aliases on the network) and serialises, so a journal can keep it for a crashed run. Every
//! revert looks at the container first and does only what is still to do, so it can be
//! attempted twice (on the normal path and again by a recovery).

use bollard::models::{
    ContainerInspectResponse, ContainerUpdateBody, EndpointSettings, NetworkConnectRequest,
    NetworkDisconnectRequest,
};
use bollard::query_parameters::{KillContainerOptions, StopContainerOptions};
use serde::{Deserialize, Serialize};

use super::{DockerError, Engine};

/// The engine's smallest memory limit.
pub const MIN_MEMORY: i64 = 6 << 20;
/// The kernel's CFS period when none was set.
const DEFAULT_CPU_PERIOD: i64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ContainerFault {
    /// Freeze every process (the freezer cgroup); reverted by unpausing.
    Pause,
    /// SIGKILL the container; reverted by starting it again.
    Kill,
    /// `docker stop`: the stop signal, then SIGKILL after `timeout_secs`; reverted by starting.
    Stop { timeout_secs: u32 },
    /// Disconnect the container from `network`; reverted by connecting it with its aliases.
    Disconnect { network: String },
    /// Lower the memory limit (memory and swap) to `bytes`; reverted to the limit before.
    MemoryLimit { bytes: i64 },
    /// Allow `quota_us` of CPU time per `period_us`; reverted to the quota before.
    CpuQuota { period_us: i64, quota_us: i64 },
}

/// An injected fault and what undoes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injected {
    /// The container's id.
    pub container: String,
    pub fault: ContainerFault,
    undo: Undo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
enum Undo {
    Unpause,
    Start,
    Connect {
        network: String,
        aliases: Vec<String>,
    },
    Memory {
        memory: i64,
        swap: i64,
    },
    Cpu {
        period: i64,
        quota: i64,
    },
}

impl ContainerFault {
    /// Checks the parameters before anything touches the container.
    pub fn validate(&self) -> Result<(), DockerError> {
        let bad = |m: String| Err(DockerError::Invalid(m));
        match self {
            ContainerFault::MemoryLimit { bytes } if *bytes < MIN_MEMORY => bad(format!(
                "memory limit {bytes} bytes: the engine's smallest is {MIN_MEMORY} (6 MiB)"
            )),
            ContainerFault::CpuQuota {
                period_us,
                quota_us,
            } if !(1_000..=1_000_000).contains(period_us) || *quota_us < 1_000 => bad(format!(
                "cpu quota {quota_us}us per {period_us}us: the period must be 1000 to 1000000us and the quota at least 1000us"
            )),
            ContainerFault::Disconnect { network } if network.is_empty() => {
                bad("disconnect: the network is empty".to_owned())
            }
            _ => Ok(()),
        }
    }
}

async fn inspect(
    engine: &Engine,
    container: &str,
) -> Result<ContainerInspectResponse, DockerError> {
    engine
        .api()
        .inspect_container(container, None)
        .await
        .map_err(DockerError::api(format!("inspect container {container}")))
}

/// Injects `fault` into the container `container` (id or name).
pub async fn inject(
    engine: &Engine,
    container: &str,
    fault: &ContainerFault,
) -> Result<Injected, DockerError> {
    fault.validate()?;
    let api = engine.api();
    let before = inspect(engine, container).await?;
    let id = before.id.clone().unwrap_or_else(|| container.to_owned());
    let action = |what: &str| DockerError::api(format!("{what} container {container}"));
    let undo = match fault {
        ContainerFault::Pause => {
            api.pause_container(&id).await.map_err(action("pause"))?;
            Undo::Unpause
        }
        ContainerFault::Kill => {
            let options = KillContainerOptions {
                signal: "SIGKILL".to_owned(),
            };
            api.kill_container(&id, Some(options))
                .await
                .map_err(action("kill"))?;
            Undo::Start
        }
        ContainerFault::Stop { timeout_secs } => {
            let options = StopContainerOptions {
                t: Some(i32::try_from(*timeout_secs).unwrap_or(i32::MAX)),
                signal: None,
            };
            api.stop_container(&id, Some(options))
                .await
                .map_err(action("stop"))?;
            Undo::Start
        }
        ContainerFault::Disconnect { network } => disconnect(engine, &before, &id, network).await?,
        ContainerFault::MemoryLimit { bytes } => {
            let host = before.host_config.unwrap_or_default();
            let memory = host.memory.unwrap_or(0);
            if memory <= 0 {
                // The engine cannot lift a memory limit once set, so there would be no revert.
                return Err(DockerError::Container {
                    container: container.to_owned(),
                    message: "has no memory limit to restore after the fault; start it with one"
                        .to_owned(),
                });
            }
            let swap = host.memory_swap.filter(|s| *s != 0).unwrap_or(memory);
            update(engine, &id, Some((*bytes, *bytes)), None).await?;
            Undo::Memory { memory, swap }
        }
        ContainerFault::CpuQuota {
            period_us,
            quota_us,
        } => {
            let host = before.host_config.unwrap_or_default();
            let period = host
                .cpu_period
                .filter(|p| *p > 0)
                .unwrap_or(DEFAULT_CPU_PERIOD);
            // No quota is -1 to the kernel; 0 to the engine means "leave as it is".
            let quota = host.cpu_quota.filter(|q| *q > 0).unwrap_or(-1);
            update(engine, &id, None, Some((*period_us, *quota_us))).await?;
            Undo::Cpu { period, quota }
        }
    };
    Ok(Injected {
        container: id,
        fault: fault.clone(),
        undo,
    })
}

async fn disconnect(
    engine: &Engine,
    before: &ContainerInspectResponse,
    id: &str,
    network: &str,
) -> Result<Undo, DockerError> {
    let endpoint = before
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .and_then(|n| n.get(network));
    let Some(endpoint) = endpoint else {
        return Err(DockerError::Container {
            container: id.to_owned(),
            message: format!("is not on network {network}"),
        });
    };
    // The engine adds the short id as an alias by itself on connect.
    let aliases = endpoint
        .aliases
        .iter()
        .flatten()
        .filter(|a| !id.starts_with(a.as_str()))
        .cloned()
        .collect();
    let request = NetworkDisconnectRequest {
        container: id.to_owned(),
        force: Some(false),
    };
    engine
        .api()
        .disconnect_network(network, request)
        .await
        .map_err(DockerError::api(format!("disconnect {id} from {network}")))?;
    Ok(Undo::Connect {
        network: network.to_owned(),
        aliases,
    })
}

async fn update(
    engine: &Engine,
    id: &str,
    memory: Option<(i64, i64)>,
    cpu: Option<(i64, i64)>,
) -> Result<(), DockerError> {
    let body = ContainerUpdateBody {
        memory: memory.map(|m| m.0),
        memory_swap: memory.map(|m| m.1),
        cpu_period: cpu.map(|c| c.0),
        cpu_quota: cpu.map(|c| c.1),
        ..Default::default()
    };
    engine
        .api()
        .update_container(id, body)
        .await
        .map_err(DockerError::api(format!("update limits of container {id}")))
}

impl Injected {
    /// Undoes the fault. Looks first, so a second attempt (or one after the container was
    /// already started or unpaused by someone else) does nothing more.
    pub async fn revert(&self, engine: &Engine) -> Result<(), DockerError> {
        let api = engine.api();
        let id = self.container.as_str();
        let now = inspect(engine, id).await?;
        let state = now.state.clone().unwrap_or_default();
        match &self.undo {
            Undo::Unpause => {
                if state.paused == Some(true) {
                    api.unpause_container(id)
                        .await
                        .map_err(DockerError::api(format!("unpause container {id}")))?;
                }
            }
            Undo::Start => {
                if state.running != Some(true) {
                    api.start_container(id, None)
                        .await
                        .map_err(DockerError::api(format!("start container {id}")))?;
                }
            }
            Undo::Connect { network, aliases } => {
                let attached = now
                    .network_settings
                    .and_then(|s| s.networks)
                    .is_some_and(|n| n.contains_key(network));
                if !attached {
                    let request = NetworkConnectRequest {
                        container: id.to_owned(),
                        endpoint_config: Some(EndpointSettings {
                            aliases: Some(aliases.clone()),
                            ..Default::default()
                        }),
                    };
                    api.connect_network(network, request)
                        .await
                        .map_err(DockerError::api(format!("connect {id} to {network}")))?;
                }
            }
            Undo::Memory { memory, swap } => {
                update(engine, id, Some((*memory, *swap)), None).await?
            }
            Undo::Cpu { period, quota } => {
                update(engine, id, None, Some((*period, *quota))).await?
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_the_engine_would_refuse_are_refused_before_any_call() {
        for fault in [
            ContainerFault::MemoryLimit { bytes: 1 << 20 },
            ContainerFault::CpuQuota {
                period_us: 100,
                quota_us: 10_000,
            },
            ContainerFault::CpuQuota {
                period_us: 100_000,
                quota_us: 10,
            },
            ContainerFault::Disconnect {
                network: String::new(),
            },
        ] {
            assert!(fault.validate().is_err(), "{fault:?}");
        }
        assert!(
            ContainerFault::MemoryLimit { bytes: 64 << 20 }
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn an_injected_fault_round_trips_through_json_for_the_journal() {
        let injected = Injected {
            container: "abc".to_owned(),
            fault: ContainerFault::Disconnect {
                network: "net".to_owned(),
            },
            undo: Undo::Connect {
                network: "net".to_owned(),
                aliases: vec!["postgres".to_owned()],
            },
        };
        let json = serde_json::to_string(&injected).unwrap();
        assert_eq!(serde_json::from_str::<Injected>(&json).unwrap(), injected);
    }
}

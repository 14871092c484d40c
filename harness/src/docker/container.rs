//! A container of the lab: made only from an image that exists here (nothing is pulled),
//! labelled with its run, its ports published on 127.0.0.1 only, on a lab network where the
//! host's proxies are `host.docker.internal`, with a memory limit a fault can lower and restore.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerState, EndpointSettings, ExecConfig, HostConfig,
    NetworkingConfig, PortBinding,
};
use bollard::query_parameters::{CreateContainerOptions, LogsOptions, RemoveContainerOptions};
use futures::StreamExt;

use super::{DockerError, Engine, LabNetwork, RunId, is_not_found};

/// The memory limit a container gets unless its spec says otherwise. A limit is always set
/// because the engine cannot lift one once set: a memory fault restores this value.
pub const DEFAULT_MEMORY: i64 = 2 << 30;

/// The name containers on a lab network use for the host (the network's gateway).
pub const HOST_ALIAS: &str = "host.docker.internal";

/// What to run: the image, its environment and command, the ports to publish, its network.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// The last part of the name: `fivehundred-<run>-<what>`.
    pub what: String,
    pub image: String,
    pub env: Vec<(String, String)>,
    pub cmd: Vec<String>,
    /// Container TCP ports, each published on a free port of 127.0.0.1.
    pub ports: Vec<u16>,
    /// Container TCP ports published on the same port of 127.0.0.1 (one the caller chose free).
    pub same_ports: Vec<u16>,
    /// The lab network and the names the container answers to on it.
    pub network: Option<(LabNetwork, Vec<String>)>,
    /// The memory limit in bytes (memory + swap: the container never swaps).
    pub memory: i64,
}

impl ContainerSpec {
    pub fn new(what: &str, image: &str) -> ContainerSpec {
        ContainerSpec {
            what: what.to_owned(),
            image: image.to_owned(),
            env: Vec::new(),
            cmd: Vec::new(),
            ports: Vec::new(),
            same_ports: Vec::new(),
            network: None,
            memory: DEFAULT_MEMORY,
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn cmd<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.cmd = args.into_iter().map(Into::into).collect();
        self
    }

    pub fn port(mut self, container_port: u16) -> Self {
        self.ports.push(container_port);
        self
    }

    pub fn same_port(mut self, port: u16) -> Self {
        self.same_ports.push(port);
        self
    }

    pub fn network(mut self, network: &LabNetwork, aliases: &[&str]) -> Self {
        let aliases = aliases.iter().map(|a| (*a).to_owned()).collect();
        self.network = Some((network.clone(), aliases));
        self
    }

    pub fn memory(mut self, bytes: i64) -> Self {
        self.memory = bytes;
        self
    }
}

/// A running (or paused, or stopped) container the harness made.
#[derive(Debug, Clone)]
pub struct Container {
    engine: Engine,
    pub id: String,
    pub name: String,
    /// (container port, host port on 127.0.0.1), fixed for the container's life: a restart
    /// keeps them, so a proxy in front of one needs no update after a kill or a stop.
    ports: Vec<(u16, u16)>,
}

/// What a command run inside a container printed, and how it ended.
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub output: String,
}

impl Container {
    /// Creates and starts the container described by `spec` for `run`.
    pub async fn start(
        engine: &Engine,
        run: &RunId,
        spec: &ContainerSpec,
    ) -> Result<Container, DockerError> {
        let api = engine.api();
        // Checked here so that a missing image is an error and never a pull.
        match api.inspect_image(&spec.image).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {
                return Err(DockerError::Invalid(format!(
                    "image {} is not in the engine; it is built here, never pulled",
                    spec.image
                )));
            }
            Err(e) => return Err(DockerError::api(format!("inspect image {}", spec.image))(e)),
        }
        let name = run.name(&spec.what);
        let ports = free_ports(spec.ports.len())?;
        let mut ports: Vec<(u16, u16)> = spec.ports.iter().copied().zip(ports).collect();
        ports.extend(spec.same_ports.iter().map(|p| (*p, *p)));
        let body = create_body(run, spec, &ports);
        let created = api
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(DockerError::api(format!("create container {name}")))?;
        let container = Container {
            engine: engine.clone(),
            id: created.id,
            name,
            ports,
        };
        if let Err(e) = api.start_container(&container.id, None).await {
            let _ = container.clone().remove().await;
            return Err(DockerError::api(format!(
                "start container {}",
                container.name
            ))(e));
        }
        Ok(container)
    }

    /// A container made by another tool (a compose project), by id: its name and the ports it
    /// publishes on the host, as the engine reports them.
    pub async fn adopt(engine: &Engine, id: &str) -> Result<Container, DockerError> {
        let inspected = engine
            .api()
            .inspect_container(id, None)
            .await
            .map_err(DockerError::api(format!("inspect container {id}")))?;
        let ports = inspected
            .network_settings
            .and_then(|n| n.ports)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(key, bindings)| {
                let inside = key.split('/').next()?.parse::<u16>().ok()?;
                let host = bindings?
                    .into_iter()
                    .find_map(|b| b.host_port?.parse::<u16>().ok())?;
                Some((inside, host))
            })
            .collect();
        Ok(Container {
            engine: engine.clone(),
            id: inspected.id.unwrap_or_else(|| id.to_owned()),
            name: inspected
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            ports,
        })
    }

    /// The names of the networks the container is attached to.
    pub async fn networks(&self) -> Result<Vec<String>, DockerError> {
        let inspected = self
            .engine
            .api()
            .inspect_container(&self.id, None)
            .await
            .map_err(DockerError::api(format!("inspect container {}", self.name)))?;
        let mut names: Vec<String> = inspected
            .network_settings
            .and_then(|s| s.networks)
            .map(|n| n.into_keys().collect())
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The port on 127.0.0.1 where `container_port` is published.
    pub fn host_port(&self, container_port: u16) -> Option<u16> {
        self.ports
            .iter()
            .find(|(c, _)| *c == container_port)
            .map(|(_, h)| *h)
    }

    /// The container's state as the engine reports it (running, paused, exit code, OOM kill).
    pub async fn state(&self) -> Result<ContainerState, DockerError> {
        let inspected = self
            .engine
            .api()
            .inspect_container(&self.id, None)
            .await
            .map_err(DockerError::api(format!("inspect container {}", self.name)))?;
        Ok(inspected.state.unwrap_or_default())
    }

    /// The container's address on `network`, if it is attached to it.
    pub async fn ip_on(&self, network: &LabNetwork) -> Result<Option<Ipv4Addr>, DockerError> {
        let inspected = self
            .engine
            .api()
            .inspect_container(&self.id, None)
            .await
            .map_err(DockerError::api(format!("inspect container {}", self.name)))?;
        Ok(inspected
            .network_settings
            .and_then(|s| s.networks)
            .and_then(|mut n| n.remove(&network.name))
            .and_then(|e| e.ip_address)
            .and_then(|ip| ip.parse().ok()))
    }

    /// Runs `cmd` inside the container and waits for it.
    pub async fn exec(&self, cmd: &[&str]) -> Result<ExecOutput, DockerError> {
        let api = self.engine.api();
        let what = || format!("exec {:?} in {}", cmd, self.name);
        let exec = api
            .create_exec(
                &self.id,
                ExecConfig {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
                    ..Default::default()
                },
            )
            .await
            .map_err(DockerError::api(what()))?;
        let started = api
            .start_exec(&exec.id, Some(StartExecOptions::default()))
            .await
            .map_err(DockerError::api(what()))?;
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut out, ..
        } = started
        {
            while let Some(chunk) = out.next().await {
                let chunk = chunk.map_err(DockerError::api(what()))?;
                output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        }
        let inspected = api
            .inspect_exec(&exec.id)
            .await
            .map_err(DockerError::api(what()))?;
        Ok(ExecOutput {
            exit_code: inspected.exit_code.unwrap_or(-1),
            output,
        })
    }

    /// The container's output (stdout and stderr): the last `lines` lines, or all of it.
    pub async fn logs(&self, lines: Option<usize>) -> Result<String, DockerError> {
        let mut stream = self.engine.api().logs(
            &self.id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                tail: lines.map_or_else(|| "all".to_owned(), |n| n.to_string()),
                ..Default::default()
            }),
        );
        let mut text = String::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(DockerError::api(format!("logs of {}", self.name)))?;
            text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        Ok(text)
    }

    /// How many times `needle` occurs in the container's whole output so far.
    pub async fn count_in_logs(&self, needle: &str) -> Result<usize, DockerError> {
        Ok(self.logs(None).await?.matches(needle).count())
    }

    /// Waits until `needle` occurs in the container's output more than `seen` times (0 for its
    /// first time; after a restart, the count from before it). Fails with the container's last
    /// lines if it stops running or the time runs out.
    pub async fn wait_for_log(
        &self,
        needle: &str,
        seen: usize,
        timeout: Duration,
    ) -> Result<(), DockerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let why = loop {
            if self.count_in_logs(needle).await? > seen {
                return Ok(());
            }
            let state = self.state().await?;
            if state.running != Some(true) {
                break format!(
                    "stopped (exit code {}) before printing {needle:?}",
                    state.exit_code.unwrap_or(-1)
                );
            }
            if tokio::time::Instant::now() >= deadline {
                break format!("did not print {needle:?} within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let tail = self.logs(Some(5)).await.unwrap_or_default();
        Err(DockerError::Container {
            container: self.name.clone(),
            message: format!(
                "{why}; its last lines: {}",
                tail.trim().replace('\n', " | ")
            ),
        })
    }

    /// Sends `signal` (`SIGKILL`) to the container's main process.
    pub async fn kill(&self, signal: &str) -> Result<(), DockerError> {
        self.engine
            .api()
            .kill_container(
                &self.id,
                Some(bollard::query_parameters::KillContainerOptions {
                    signal: signal.to_owned(),
                }),
            )
            .await
            .map_err(DockerError::api(format!("kill container {}", self.name)))
    }

    /// Starts the (stopped) container again, with its ports, network and limits as they were.
    pub async fn start_again(&self) -> Result<(), DockerError> {
        self.engine
            .api()
            .start_container(&self.id, None)
            .await
            .map_err(DockerError::api(format!("start container {}", self.name)))
    }

    /// `docker stop`: the image's stop signal, then SIGKILL after `grace_secs`.
    pub async fn stop(&self, grace_secs: i32) -> Result<(), DockerError> {
        let stopped = self
            .engine
            .api()
            .stop_container(
                &self.id,
                Some(bollard::query_parameters::StopContainerOptions {
                    t: Some(grace_secs),
                    ..Default::default()
                }),
            )
            .await;
        match stopped {
            Err(e) if is_not_found(&e) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            other => other.map_err(DockerError::api(format!("stop container {}", self.name))),
        }
    }

    /// The container's output from `since_unix` (seconds) on, as it comes, each line with the
    /// engine's RFC 3339 timestamp in front; the stream ends when the container stops.
    pub fn follow_logs(
        &self,
        since_unix: i32,
    ) -> impl futures::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>>
    + Send
    + 'static {
        self.engine.api().logs(
            &self.id,
            Some(LogsOptions {
                follow: true,
                stdout: true,
                stderr: true,
                since: since_unix,
                timestamps: true,
                ..Default::default()
            }),
        )
    }

    /// Removes the container whatever its state (with its anonymous volumes).
    pub async fn remove(self) -> Result<(), DockerError> {
        let removed = self
            .engine
            .api()
            .remove_container(
                &self.id,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await;
        match removed {
            Err(e) if is_not_found(&e) => Ok(()),
            other => other.map_err(DockerError::api(format!("remove container {}", self.name))),
        }
    }
}

fn create_body(run: &RunId, spec: &ContainerSpec, ports: &[(u16, u16)]) -> ContainerCreateBody {
    let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = ports
        .iter()
        .map(|(container, host)| {
            let binding = PortBinding {
                host_ip: Some("127.0.0.1".to_owned()),
                host_port: Some(host.to_string()),
            };
            (format!("{container}/tcp"), Some(vec![binding]))
        })
        .collect();
    let mut host_config = HostConfig {
        port_bindings: Some(port_bindings),
        memory: Some(spec.memory),
        memory_swap: Some(spec.memory),
        ..Default::default()
    };
    let mut networking = None;
    if let Some((network, aliases)) = &spec.network {
        host_config.network_mode = Some(network.name.clone());
        host_config.extra_hosts = Some(vec![format!("{HOST_ALIAS}:{}", network.gateway)]);
        let endpoint = EndpointSettings {
            aliases: Some(aliases.clone()),
            ..Default::default()
        };
        networking = Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network.name.clone(), endpoint)])),
        });
    }
    ContainerCreateBody {
        image: Some(spec.image.clone()),
        labels: Some(run.labels()),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
        exposed_ports: Some(ports.iter().map(|(c, _)| format!("{c}/tcp")).collect()),
        host_config: Some(host_config),
        networking_config: networking,
        ..Default::default()
    }
}

/// Free ports on 127.0.0.1, chosen by the kernel. Chosen here rather than by the engine because
/// the engine picks a new one at each restart, and a fault restarts containers.
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>, DockerError> {
    // All bound at once so the kernel cannot hand out the same port twice.
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DockerError::io("choose a free port on 127.0.0.1"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DockerError::io("choose a free port on 127.0.0.1"))
}

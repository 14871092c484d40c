//! A lab-file service as a container of the local Docker engine (`image` or `build` in its lab
//! file): its image found or built (never pulled), a lab network of its own whose gateway is
//! where the lab's proxies listen for it, the container labelled with a run journalled before
//! it exists, `-- ARGS` after its image's command, its port published on 127.0.0.1, its output followed into the recording across
//! restarts, its readiness waited for, a crash as `docker kill` and `docker start`, and its
//! removal at the lab's teardown. A service of a compose file (`compose`) is the same once its
//! project is up: the project started by [`crate::docker::compose`], taken down at teardown.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;

use super::LabError;
use crate::docker::compose::{Project, Tool};
use crate::docker::{Container, ContainerSpec, Engine, LabNetwork, RunId};
use crate::journal::{Journal, Resource};
use crate::labfile::service::{LineSink, StartError, Stream, wait_ready};
use crate::labfile::{ComposeSource, ImageSource, Ready, Service};

/// How many of the last output lines a start error shows.
const TAIL: usize = 12;

/// The name the service answers to on its lab network.
const ALIAS: &str = "service";

/// The Docker side of a container service before its container exists: the engine, its image,
/// and the run's network (journalled).
pub(crate) struct Prepared {
    pub engine: Engine,
    pub image: String,
    pub run: RunId,
    pub network: LabNetwork,
}

/// Finds or builds the service's image, then makes the run's network for it, journalled first
/// so that `recover` removes it (and the container to come) if the harness is killed.
pub(crate) async fn prepare(
    source: &ImageSource,
    journal: &Journal,
    parts: &mut super::StartParts,
) -> Result<Prepared, LabError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        LabError(format!("the service's container: {what}: {e}"))
    };
    let engine = Engine::connect()
        .await
        .map_err(|e| failed("no Docker engine", &e))?;
    let progress = |line: &str| eprintln!("  {line}");
    let started = std::time::Instant::now();
    let image = match source {
        ImageSource::Image(name) => crate::docker::build::require(&engine, name)
            .await
            .map_err(|e| LabError(e.to_string()))?,
        ImageSource::Build(dockerfile) => {
            crate::docker::build::ensure_dockerfile(&engine, dockerfile, &progress)
                .await
                .map_err(|e| failed("cannot build its image", &e))?
        }
        ImageSource::Compose(c) => {
            return Err(failed(
                "it comes from a compose file",
                &format!("{} starts it", c.file.display()),
            ));
        }
    };
    parts.push((
        match source {
            ImageSource::Image(_) => "service image found",
            ImageSource::Build(_) | ImageSource::Compose(_) => {
                "service image found (its build context hashed)"
            }
        },
        started.elapsed(),
    ));
    let run = RunId::generate();
    journal.resource(Resource::Containers {
        run: run.as_str().to_string(),
    });
    let started = std::time::Instant::now();
    let network = LabNetwork::create(&engine, &run, "service")
        .await
        .map_err(|e| failed("cannot create its network", &e))?;
    parts.push(("service network created", started.elapsed()));
    Ok(Prepared {
        engine,
        image,
        run,
        network,
    })
}

impl Prepared {
    /// The host's address on the service's network: where the lab's proxies listen for it.
    pub fn gateway(&self) -> Ipv4Addr {
        self.network.gateway
    }

    /// Removes what this run made in the engine (on a failed start).
    pub async fn discard(self) {
        let _ = crate::docker::cleanup::remove_by_label(&self.engine, &self.run).await;
    }
}

/// A started container, before it is known to be ready.
struct Parts {
    engine: Engine,
    container: Container,
    network: LabNetwork,
    run: RunId,
    compose: Option<Project>,
    created_in: Duration,
}

/// The running service's container.
pub(crate) struct ServiceContainer {
    pub engine: Engine,
    pub container: Container,
    pub network: LabNetwork,
    run: RunId,
    /// The compose project it belongs to, when it comes from a compose file.
    compose: Option<Project>,
    container_port: u16,
    ready: Ready,
    ready_within: Duration,
    stop_grace: Duration,
    /// The host's pid of its main process while it runs (0 when unknown).
    pid: AtomicU32,
    /// Follows its output into the recording.
    logs: tokio::task::JoinHandle<()>,
    /// `http://127.0.0.1:<published port>`.
    pub base_url: String,
    /// How long its first start took: the container created and started, then ready.
    pub start_parts: [(&'static str, Duration); 2],
}

impl ServiceContainer {
    /// Creates and starts the container (`env` already rendered), follows its output into
    /// `sink` and waits until it is ready. `args` (`fivehundred run -- ARGS`) follow the
    /// image's own command (see [`crate::docker::build::ImageCommand::appended`]). On any
    /// failure what was made is removed and the error shows the container's last lines.
    pub async fn start(
        prepared: Prepared,
        service: &Service,
        spec: &crate::labfile::ContainerSpec,
        env: Vec<(String, String)>,
        args: &[String],
        listener_ports: &[u16],
        sink: LineSink,
    ) -> Result<ServiceContainer, LabError> {
        let started = std::time::Instant::now();
        let mut cs = ContainerSpec::new("service", &prepared.image)
            .port(spec.container_port)
            .network(&prepared.network, &[ALIAS]);
        cs.env = env;
        if !args.is_empty() {
            match command_with(&prepared, args).await {
                Ok(cmd) => cs.cmd = cmd,
                Err(e) => {
                    prepared.discard().await;
                    return Err(e);
                }
            }
        }
        for p in listener_ports {
            cs = cs.same_port(*p);
        }
        let container = match Container::start(&prepared.engine, &prepared.run, &cs).await {
            Ok(c) => c,
            Err(e) => {
                prepared.discard().await;
                return Err(LabError(format!(
                    "the service's container did not start: {e}"
                )));
            }
        };
        let created_in = started.elapsed();
        let Prepared {
            engine,
            run,
            network,
            ..
        } = prepared;
        let parts = Parts {
            engine,
            container,
            network,
            run,
            compose: None,
            created_in,
        };
        ServiceContainer::ready_after_start(parts, service, spec, sink).await
    }

    /// The service as a service of its compose file (`compose` in its lab file): the project
    /// started under a name of the run's own (journalled first, by the run's labels, which the
    /// override file puts on everything the project makes), its `env` over the file's, and
    /// `args` refused (a compose service's command is its file's). Taken down on any failure.
    #[allow(clippy::too_many_arguments)]
    pub async fn compose_up(
        service: &Service,
        spec: &crate::labfile::ContainerSpec,
        source: &ComposeSource,
        env: Vec<(String, String)>,
        listener_ports: &[u16],
        run_dir: &std::path::Path,
        journal: &Journal,
        sink: LineSink,
    ) -> Result<ServiceContainer, LabError> {
        let failed =
            |e: &dyn std::fmt::Display| LabError(format!("the service's compose project: {e}"));
        let engine = Engine::connect().await.map_err(|e| failed(&e))?;
        let tool = Tool::find().await.map_err(|e| failed(&e))?;
        let run = RunId::generate();
        journal.resource(Resource::Containers {
            run: run.as_str().to_string(),
        });
        let started = std::time::Instant::now();
        let host_port = match crate::docker::container::free_ports(1) {
            Ok(p) => p[0],
            Err(e) => return Err(failed(&e)),
        };
        let text = crate::docker::compose::override_file(
            source,
            &run,
            (spec.container_port, host_port),
            listener_ports,
            &env,
        );
        let path = run_dir.join("compose.override.json");
        let project = match Project::up(&engine, tool, &run, source, &path, &text).await {
            Ok(p) => p,
            Err((project, e)) => {
                let _ = project.down().await;
                let _ = crate::docker::cleanup::remove_by_label(&engine, &run).await;
                return Err(failed(&e));
            }
        };
        let found = async {
            let container = project.container(&engine, &source.service).await?;
            let networks = container.networks().await?;
            let default = format!("{}_default", project.name);
            let Some(name) = networks
                .iter()
                .find(|n| **n == default)
                .or_else(|| networks.first())
            else {
                return Err(crate::docker::DockerError::Invalid(format!(
                    "service `{}` is on no network",
                    source.service
                )));
            };
            let network = LabNetwork::find(&engine, name, name).await?;
            if container.host_port(spec.container_port).is_none() {
                return Err(crate::docker::DockerError::Invalid(format!(
                    "service `{}` does not publish port {}",
                    source.service, spec.container_port
                )));
            }
            Ok((container, network))
        }
        .await;
        let (container, network) = match found {
            Ok(f) => f,
            Err(e) => {
                let _ = project.down().await;
                let _ = crate::docker::cleanup::remove_by_label(&engine, &run).await;
                return Err(failed(&e));
            }
        };
        let parts = Parts {
            engine,
            container,
            network,
            run,
            compose: Some(project),
            created_in: started.elapsed(),
        };
        ServiceContainer::ready_after_start(parts, service, spec, sink).await
    }

    /// Follows the started container's output and waits until it is ready; removes what the
    /// run made if it is not.
    async fn ready_after_start(
        parts: Parts,
        service: &Service,
        spec: &crate::labfile::ContainerSpec,
        sink: LineSink,
    ) -> Result<ServiceContainer, LabError> {
        let Parts {
            engine,
            container,
            network,
            run,
            compose,
            created_in,
        } = parts;
        let host_port = container.host_port(spec.container_port).unwrap_or(0);
        let logs = tokio::spawn(follow(container.clone(), sink));
        let mut service = ServiceContainer {
            engine,
            container,
            network,
            run,
            compose,
            container_port: spec.container_port,
            ready: service.ready.clone(),
            ready_within: service.ready_within,
            stop_grace: spec.stop_grace,
            pid: AtomicU32::new(0),
            logs,
            base_url: format!("http://127.0.0.1:{host_port}"),
            start_parts: [
                ("service container created and started", created_in),
                ("service ready in its container", std::time::Duration::ZERO),
            ],
        };
        let started = std::time::Instant::now();
        if let Err(e) = service.wait_ready().await {
            let message = format!("the service did not start: {e}");
            service.remove().await;
            return Err(LabError(message));
        }
        service.start_parts[1].1 = started.elapsed();
        Ok(service)
    }

    /// The container of the compose service `name`, when the service came from a compose
    /// file, with the name of the network it is on (the project's default one when it is on it).
    pub async fn compose_service(&self, name: &str) -> Result<(Container, String), String> {
        let Some(project) = &self.compose else {
            return Err("the service does not come from a compose file".into());
        };
        let container = project
            .container(&self.engine, name)
            .await
            .map_err(|e| e.to_string())?;
        let networks = container.networks().await.map_err(|e| e.to_string())?;
        let default = format!("{}_default", project.name);
        let network = if networks.contains(&default) {
            default
        } else {
            networks.into_iter().next().unwrap_or_default()
        };
        Ok((container, network))
    }

    /// Waits until the (started) container is ready, and notes its main process's pid.
    pub async fn wait_ready(&self) -> Result<(), StartError> {
        // The port check goes to the container's own address: its published port on the host
        // accepts connections (the engine's proxy takes them) before the service listens.
        let ip = self.container.ip_on(&self.network).await.ok().flatten();
        let addr = match ip {
            Some(ip) => format!("{ip}:{}", self.container_port),
            None => self.base_url.trim_start_matches("http://").to_string(),
        };
        let container = self.container.clone();
        let outcome = wait_ready(
            &self.ready,
            &self.base_url,
            &addr,
            self.ready_within,
            || {
                let c = container.clone();
                async move { stopped(&c).await }
            },
        )
        .await;
        match outcome {
            Ok(()) => {
                self.refresh_pid().await;
                Ok(())
            }
            Err(e) => {
                // The engine's own record of its output: complete even if the follower lags.
                let text = self.container.logs(Some(TAIL)).await.unwrap_or_default();
                let lines = text
                    .lines()
                    .map(|l| l.trim_end().to_string())
                    .filter(|l| !l.is_empty())
                    .collect();
                Err(e.with_tail(lines))
            }
        }
    }

    /// Reads the pid of the container's main process from the engine.
    pub async fn refresh_pid(&self) {
        let pid = match self.container.state().await {
            Ok(s) if s.running == Some(true) => s.pid.and_then(|p| u32::try_from(p).ok()),
            _ => None,
        };
        self.pid.store(pid.unwrap_or(0), Ordering::SeqCst);
    }

    /// The host's pid of its main process while it runs.
    pub fn pid(&self) -> Option<u32> {
        let pid = self.pid.load(Ordering::SeqCst);
        (pid != 0 && alive(pid)).then_some(pid)
    }

    /// How it ended, once its main process is gone.
    pub fn exited(&self) -> Option<String> {
        let pid = self.pid.load(Ordering::SeqCst);
        (pid == 0 || !alive(pid)).then(|| "the container stopped".to_string())
    }

    /// Kills the container with `signal` and waits until the engine says it stopped; returns
    /// its pid and how it ended.
    pub async fn kill(&self, signal: &str, within: Duration) -> Result<(u32, String), String> {
        let pid = self.pid.load(Ordering::SeqCst);
        self.container
            .kill(signal)
            .await
            .map_err(|e| format!("cannot kill the service's container: {e}"))?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(how) = stopped(&self.container).await {
                self.pid.store(0, Ordering::SeqCst);
                return Ok((pid, how));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "the service's container did not stop of {signal} within {within:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the stopped container again (its ports, network and limits as they were) and
    /// waits until it is ready; returns its new pid.
    pub async fn restart(&self) -> Result<u32, String> {
        self.container
            .start_again()
            .await
            .map_err(|e| format!("cannot restart the service: {e}"))?;
        self.wait_ready()
            .await
            .map_err(|e| format!("cannot restart the service: {e}"))?;
        self.pid()
            .ok_or_else(|| "the restarted service's container is not running".to_string())
    }

    /// Stops it (`docker stop` with its grace), then removes it and its network.
    pub async fn stop(self) {
        let grace = i32::try_from(self.stop_grace.as_secs()).unwrap_or(i32::MAX);
        let _ = self.container.stop(grace).await;
        // Lines written while it stopped reach the recording before the follower ends.
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.remove().await;
    }

    async fn remove(self) {
        self.logs.abort();
        if let Some(project) = &self.compose {
            if let Err(e) = project.down().await {
                eprintln!("fivehundred: {e}; removing the project's containers by label");
            }
            let _ = crate::docker::cleanup::remove_by_label(&self.engine, &self.run).await;
            return;
        }
        let _ = self.container.clone().remove().await;
        let _ = self.network.remove(&self.engine).await;
        // Anything else of the run's, by its labels.
        let _ = crate::docker::cleanup::remove_by_label(&self.engine, &self.run).await;
    }
}

/// The container's command: the image's, with `args` after it.
async fn command_with(prepared: &Prepared, args: &[String]) -> Result<Vec<String>, LabError> {
    let image = crate::docker::build::command(&prepared.engine, &prepared.image)
        .await
        .map_err(|e| LabError(format!("the service's container: {e}")))?;
    image.appended(args).map_err(|e| {
        LabError(format!(
            "the service's container ({}): cannot append `{}`: {e}",
            prepared.image,
            args.join(" ")
        ))
    })
}

/// How the container ended, if it is not running (or is gone).
async fn stopped(c: &Container) -> Option<String> {
    match c.state().await {
        Ok(s) if s.running == Some(true) => None,
        Ok(s) => Some(match (s.oom_killed, s.exit_code) {
            (Some(true), _) => "killed for lack of memory (OOM)".to_string(),
            (_, Some(code)) => format!("exit code {code}"),
            _ => "stopped".to_string(),
        }),
        Err(e) => Some(e.to_string()),
    }
}

/// Whether a process runs (and is not a zombie) under `pid`.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.split_whitespace()
                .next()
                .map(|state| state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Follows the container's output into `sink`, across its stops and starts, until aborted.
/// Lines carry the engine's timestamps; after a restart the output is read again from the last
/// line's second, and lines not newer than that line are skipped (the engine's `since` counts
/// whole seconds).
async fn follow(container: Container, sink: LineSink) {
    let mut last: Option<SystemTime> = None;
    loop {
        let since = last
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(0));
        let mut stream = Box::pin(container.follow_logs(since));
        while let Some(Ok(chunk)) = stream.next().await {
            let stream_of = match chunk {
                bollard::container::LogOutput::StdErr { .. } => Stream::Stderr,
                _ => Stream::Stdout,
            };
            let bytes = chunk.into_bytes();
            let text = String::from_utf8_lossy(&bytes);
            for line in text.lines() {
                let (at, line) = split_timestamp(line);
                if let (Some(at), Some(l)) = (at, last)
                    && at <= l
                {
                    continue;
                }
                if at.is_some() {
                    last = at;
                }
                sink(stream_of, line.trim_end_matches('\r'));
            }
        }
        // The stream ends when the container stops (or on an engine error): look again soon,
        // for a restart.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `2026-01-02T03:04:05.123456789Z rest` to its time and the rest.
fn split_timestamp(line: &str) -> (Option<SystemTime>, &str) {
    match line.split_once(' ') {
        Some((ts, rest)) => match humantime::parse_rfc3339_weak(ts) {
            Ok(at) => (Some(at), rest),
            Err(_) => (None, line),
        },
        None => match humantime::parse_rfc3339_weak(line) {
            Ok(at) => (Some(at), ""),
            Err(_) => (None, line),
        },
    }
}

/// Renders the container's environment; the errors name the variable.
pub(crate) fn render_env(
    spec: &crate::labfile::ContainerSpec,
    values: &crate::labfile::Values,
) -> Result<Vec<(String, String)>, LabError> {
    spec.env
        .iter()
        .map(|(k, t)| {
            t.render(values).map(|v| (k.clone(), v)).map_err(|e| {
                LabError(format!(
                    "the service did not start: cannot fill in env `{k}`: {e}"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_timestamps_are_split_from_the_line_they_lead() {
        let (at, rest) =
            split_timestamp("2026-12-07T08:52:42.123456789Z {\"message\":\"listening\"}");
        assert!(at.is_some());
        assert_eq!(rest, "{\"message\":\"listening\"}");
        let (at, rest) = split_timestamp("no stamp here");
        assert!(at.is_none());
        assert_eq!(rest, "no stamp here");
        let (a, _) = split_timestamp("2026-12-07T08:52:42.1Z x");
        let (b, _) = split_timestamp("2026-12-07T08:52:42.12Z x");
        assert!(a < b, "fractions of different lengths compare as times");
    }

    #[test]
    fn a_missing_process_is_not_alive() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX - 1));
    }
}

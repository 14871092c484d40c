//! A lab-file service as a child process: its config files rendered into the run directory, its
//! argv run without a shell in its own process group, every output line handed to a callback,
//! a readiness wait with a deadline, and a stop with its own signal then SIGKILL. The lab fills
//! in the [`Values`]; this module knows nothing of how they were made.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::template::MissingValue;
use super::{CommandSpec, Ready, Service, Values};

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Called from the reader threads with each line the service writes.
pub type LineSink = Arc<dyn Fn(Stream, &str) + Send + Sync>;

/// How many of the last output lines a start error shows.
const TAIL: usize = 12;

/// Why a service did not start (exit 3). Each names which step failed and shows the last lines
/// the service wrote.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot fill in {what}: {source}")]
    Render { what: String, source: MissingValue },
    #[error("cannot write the config file {}: {source}", path.display())]
    Config {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run the service as user `{user}`: {reason}")]
    User { user: String, reason: String },
    #[error("the command `{program}` does not start: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("the service exited during startup ({status}){}", tail_text(tail))]
    Exited { status: String, tail: Vec<String> },
    #[error("the service's port {addr} never opened within {}{}", humantime::format_duration(*within), tail_text(tail))]
    PortNeverOpened {
        addr: String,
        within: Duration,
        tail: Vec<String>,
    },
    #[error("the service never became ready: `{check}` did not answer 2xx within {} (last: {last}){}", humantime::format_duration(*within), tail_text(tail))]
    NeverReady {
        check: String,
        within: Duration,
        last: String,
        tail: Vec<String>,
    },
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        "; it wrote nothing".to_string()
    } else {
        format!("; its last output:\n  {}", tail.join("\n  "))
    }
}

impl StartError {
    /// The error with the service's last output lines.
    pub fn with_tail(mut self, lines: Vec<String>) -> StartError {
        match &mut self {
            StartError::Exited { tail, .. }
            | StartError::PortNeverOpened { tail, .. }
            | StartError::NeverReady { tail, .. } => *tail = lines,
            _ => {}
        }
        self
    }
}

/// Waits until the service is ready as `ready` says: `addr` (`host:port`) accepts connections,
/// or the request on `base_url` answers 2xx, within `within`. `exited` says whether (and how)
/// it has stopped, which ends the wait at once. Errors carry no output lines: the caller adds
/// them with [`StartError::with_tail`].
pub async fn wait_ready<F, Fut>(
    ready: &Ready,
    base_url: &str,
    addr: &str,
    within: Duration,
    mut exited: F,
) -> Result<(), StartError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .expect("a client without TLS builds");
    let mut opened = false;
    let mut last = String::from("no answer yet");
    loop {
        if let Some(status) = exited().await {
            return Err(StartError::Exited {
                status,
                tail: Vec::new(),
            });
        }
        if !opened {
            opened = tokio::net::TcpStream::connect(addr).await.is_ok();
        }
        if opened {
            match ready {
                Ready::Port => return Ok(()),
                Ready::Http { method, path } => {
                    let method = reqwest::Method::from_bytes(method.as_bytes())
                        .unwrap_or(reqwest::Method::GET);
                    match client
                        .request(method, format!("{base_url}{path}"))
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => return Ok(()),
                        Ok(r) => last = format!("status {}", r.status().as_u16()),
                        Err(e) => last = e.to_string(),
                    }
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(match ready {
                Ready::Http { method, path } if opened => StartError::NeverReady {
                    check: format!("{method} {path}"),
                    within,
                    last,
                    tail: Vec::new(),
                },
                _ => StartError::PortNeverOpened {
                    addr: addr.to_string(),
                    within,
                    tail: Vec::new(),
                },
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running service.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    stop_signal: Signal,
    stop_grace: Duration,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// `http://host:port`.
    pub base_url: String,
    /// From the spawn to the first successful readiness check.
    pub ready_after: Duration,
    /// The config files written for this start.
    pub configs: Vec<PathBuf>,
}

impl ServiceProcess {
    /// Renders the config files into `run_dir`, starts the service and waits until it is ready.
    /// `values` must hold the service's `host` and `port` (and whatever its templates use);
    /// `{config.NAME}` is filled in here. With `data_tmpfs` (a directory and a size), the
    /// service starts in a mount namespace of its own with a private tmpfs there; with `user`
    /// (uid, gid), as that user.
    pub async fn start(
        service: &Service,
        spec: &CommandSpec,
        values: &Values,
        run_dir: &Path,
        isolation: crate::sys::Isolation,
        on_line: LineSink,
    ) -> Result<ServiceProcess, StartError> {
        let user = isolation.user;
        let mut values = values.clone();
        for (name, c) in &spec.configs {
            values.config(name, &run_dir.join(&c.file_name));
        }
        let configs = write_configs(spec, &values, run_dir, user.map(|u| u.0))?;
        let (cmd, program) = command(spec, &values, &isolation)?;
        let spawned = Instant::now();
        let mut child = pglab::proc::spawn_tied(cmd, Signal::SIGKILL)
            .map_err(|source| StartError::Spawn { program, source })?;
        let tail = read_output(&mut child, on_line);
        let host = values.get("host").unwrap_or("127.0.0.1").to_string();
        let port = values.get("port").unwrap_or("0").to_string();
        let mut process = ServiceProcess {
            child,
            stop_signal: spec.stop_signal,
            stop_grace: spec.stop_grace,
            tail,
            base_url: format!("http://{host}:{port}"),
            ready_after: Duration::ZERO,
            configs,
        };
        match process
            .wait_ready(
                &service.ready,
                &format!("{host}:{port}"),
                service.ready_within,
            )
            .await
        {
            Ok(()) => {
                process.ready_after = spawned.elapsed();
                Ok(process)
            }
            Err(e) => {
                process.stop().await;
                Err(e)
            }
        }
    }

    async fn wait_ready(
        &mut self,
        ready: &Ready,
        addr: &str,
        within: Duration,
    ) -> Result<(), StartError> {
        let base_url = self.base_url.clone();
        let child = &mut self.child;
        let outcome = wait_ready(ready, &base_url, addr, within, || {
            let status = child.try_wait().ok().flatten().map(|s| s.to_string());
            async move {
                if status.is_some() {
                    // Let the reader threads take in the last lines it wrote.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                status
            }
        })
        .await;
        outcome.map_err(|e| e.with_tail(self.tail()))
    }

    /// The last lines it wrote, oldest first.
    pub fn tail(&self) -> Vec<String> {
        self.tail.lock().unwrap().iter().cloned().collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends the stop signal to its process group, waits up to the grace period, then kills
    /// the group. Returns its exit status.
    pub async fn stop(&mut self) -> Option<ExitStatus> {
        let group = Pid::from_raw(self.child.id() as i32);
        if self.exited().is_none() {
            // A paused service cannot act on the signal.
            let _ = killpg(group, Signal::SIGCONT);
            let _ = killpg(group, self.stop_signal);
            let deadline = tokio::time::Instant::now() + self.stop_grace;
            while tokio::time::Instant::now() < deadline && self.exited().is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // Workers left in the group after the leader exited go too.
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `t` filled with `values`; `what` names it in the error.
fn render(t: &super::Template, values: &Values, what: &str) -> Result<String, StartError> {
    t.render(values).map_err(|source| StartError::Render {
        what: what.to_string(),
        source,
    })
}

/// Writes each config file into `run_dir`, readable by `owner` only; returns their paths.
fn write_configs(
    spec: &CommandSpec,
    values: &Values,
    run_dir: &Path,
    owner: Option<u32>,
) -> Result<Vec<PathBuf>, StartError> {
    let mut configs = Vec::new();
    for (name, c) in &spec.configs {
        let text = render(&c.template, values, &format!("config `{name}`"))?;
        let path = run_dir.join(&c.file_name);
        write_private(&path, &text, owner).map_err(|source| StartError::Config {
            path: path.clone(),
            source,
        })?;
        configs.push(path);
    }
    Ok(configs)
}

/// The service's command with its argv and environment filled, in a process group of its
/// own, isolated as `isolation` asks; and its program as written, for errors.
pub fn command(
    spec: &CommandSpec,
    values: &Values,
    isolation: &crate::sys::Isolation,
) -> Result<(Command, String), StartError> {
    let argv = spec
        .argv
        .iter()
        .map(|a| render(a, values, "the command"))
        .collect::<Result<Vec<_>, _>>()?;
    // A relative program with a `/` is relative to `cwd`, whatever the platform's exec does.
    let program = if argv[0].contains('/') {
        spec.cwd.join(&argv[0])
    } else {
        PathBuf::from(&argv[0])
    };
    let mut cmd = Command::new(&program);
    cmd.args(&argv[1..])
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &spec.env {
        cmd.env(k, render(v, values, &format!("env `{k}`"))?);
    }
    // Its own process group, so that the stop signal reaches the workers a server forks
    // (gunicorn, uvicorn) and not only the process we started.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if isolation.user.is_some() || isolation.tmpfs.is_some() {
        crate::sys::isolate(&mut cmd, isolation).map_err(|e| StartError::User {
            user: match isolation.user {
                Some((uid, _)) => format!("uid {uid}"),
                None => "the controller's".into(),
            },
            reason: e.to_string(),
        })?;
    }
    Ok((cmd, argv[0].clone()))
}

/// Reads the child's stdout and stderr on threads of their own: each line goes to `on_line`,
/// the last [`TAIL`] are kept.
fn read_output(child: &mut Child, on_line: LineSink) -> Arc<Mutex<VecDeque<String>>> {
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    for (stream, pipe) in [Stream::Stdout, Stream::Stderr]
        .into_iter()
        .zip(pglab::proc::output_pipes(child))
    {
        let Some(pipe) = pipe else { continue };
        let (tail, on_line) = (Arc::clone(&tail), Arc::clone(&on_line));
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).split(b'\n') {
                let Ok(line) = line else { break };
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches('\r');
                {
                    let mut t = tail.lock().unwrap();
                    if t.len() == TAIL {
                        t.pop_front();
                    }
                    t.push_back(line.to_string());
                }
                on_line(stream, line);
            }
        });
    }
    tail
}

/// A user name or uid to (uid, gid).
pub fn resolve_user(user: &str) -> Result<(u32, u32), StartError> {
    let err = |reason: String| StartError::User {
        user: user.to_string(),
        reason,
    };
    let found = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(user),
    }
    .map_err(|e| err(e.to_string()))?
    .ok_or_else(|| err("no such user on this machine".into()))?;
    if !nix::unistd::Uid::effective().is_root() && found.uid != nix::unistd::Uid::effective() {
        return Err(err("switching users needs root".into()));
    }
    Ok((found.uid.as_raw(), found.gid.as_raw()))
}

/// Writes `text` to a new file readable by its owner only (the service's user when it runs as
/// another). An old file of the same name (from an earlier start) is removed first; the new one
/// is created exclusively, so a link planted in its place is never followed.
fn write_private(path: &Path, text: &str, owner: Option<u32>) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if let Some(uid) = owner {
        std::os::unix::fs::fchown(&f, Some(uid), None)?;
    }
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests;

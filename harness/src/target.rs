//! The target: the service under test, started as a child process that follows the target
//! contract (ARCHITECTURE.md), its logs captured line by line, and a client for its admin API.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::record::{EventKind, Recorder};

/// How to start the target.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub program: PathBuf,
    /// Appended to the command line after the lab's own flags (`fivehundred run -- ARGS`).
    pub extra_args: Vec<String>,
}

/// What the lab hands the target.
#[derive(Debug, Clone)]
pub struct TargetEnv {
    pub database_url: String,
    pub payments_url: String,
    pub data_dir: PathBuf,
    pub admin_token: String,
    pub config: Option<PathBuf>,
    /// The data directory is a private tmpfs of this many bytes, mounted in the target's own
    /// mount namespace (see [`crate::sys::isolate`]).
    pub data_tmpfs: Option<u64>,
    /// Run the target as this (uid, gid) instead of as the controller.
    pub user: Option<(u32, u32)>,
}

/// What the faults of a scenario need from the way the target is started. The lab arranges it
/// before the target starts, because none of it can be changed on a running process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetNeeds {
    /// The data directory on a private tmpfs of this many bytes: a disk that can really fill.
    pub data_tmpfs: Option<u64>,
    /// The target runs as an unprivileged user: file modes do not bind root.
    pub unprivileged: bool,
    /// The target reads a configuration file that the lab writes and a fault may change.
    pub config_file: bool,
    /// The lab's own PostgreSQL runs with this `max_connections`, so that a connection
    /// exhaustion fault fills it with a few dozen sessions. (A need of the lab's database
    /// rather than of the target; it travels with these because the lab is set up from them.)
    pub max_connections: Option<u32>,
}

impl TargetNeeds {
    /// Whether this machine can start the target so; `Err` names what is missing and how to
    /// get it (the scenario is then skipped, never run without it).
    pub fn supported(&self, program: &Path) -> Result<(), String> {
        if self.data_tmpfs.is_some() {
            crate::privileges::private_tmpfs()?;
        }
        if self.unprivileged {
            crate::privileges::unprivileged_user(program)?;
        }
        Ok(())
    }

    /// Both sets of needs; the larger tmpfs.
    pub fn merge(self, other: TargetNeeds) -> TargetNeeds {
        TargetNeeds {
            data_tmpfs: self.data_tmpfs.max(other.data_tmpfs),
            unprivileged: self.unprivileged || other.unprivileged,
            config_file: self.config_file || other.config_file,
            max_connections: match (self.max_connections, other.max_connections) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// What a fault needs from the way the target is started, in words.
impl std::fmt::Display for TargetNeeds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self;
        let mut parts = Vec::new();
        if let Some(b) = n.data_tmpfs {
            parts.push(format!(
                "its data directory on a private tmpfs of {} KiB",
                b / 1024
            ));
        }
        if n.unprivileged {
            parts.push("running as an unprivileged user".to_string());
        }
        if n.config_file {
            parts.push("reading a config file the lab writes".to_string());
        }
        if let Some(c) = n.max_connections {
            parts.push(format!("the lab's PostgreSQL with max_connections = {c}"));
        }
        if parts.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// A running target process.
#[derive(Debug)]
pub struct TargetProcess {
    child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub started: Instant,
}

impl TargetProcess {
    /// Starts the target on free loopback ports and waits until `/livez` answers 200.
    pub async fn start(
        spec: &TargetSpec,
        env: &TargetEnv,
        recorder: &Arc<Recorder>,
        ready_within: Duration,
    ) -> Result<TargetProcess, String> {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse().expect("addr");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse().expect("addr");
        TargetProcess::start_on(spec, env, recorder, listen, admin, ready_within).await
    }

    /// Starts the target on the given loopback addresses and waits until `/livez` answers 200.
    /// A restart uses the addresses of the process it replaces, so that clients, probes and
    /// Prometheus find it where it was.
    pub async fn start_on(
        spec: &TargetSpec,
        env: &TargetEnv,
        recorder: &Arc<Recorder>,
        listen: SocketAddr,
        admin: SocketAddr,
        ready_within: Duration,
    ) -> Result<TargetProcess, String> {
        let mut cmd = command(spec, env, listen, admin)?;
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = pglab::proc::spawn_tied(cmd, Signal::SIGKILL).map_err(|e| {
            let how = if env.data_tmpfs.is_some() || env.user.is_some() {
                " in its own mount namespace or as another user"
            } else {
                ""
            };
            format!(
                "cannot start the target {}{how}: {e}; build it with `cargo build -p target-app` or pass --target-bin",
                spec.program.display()
            )
        })?;
        for stream in pglab::proc::output_pipes(&mut child).into_iter().flatten() {
            let recorder = recorder.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    match line {
                        Ok(l) => recorder.log_line(l),
                        Err(_) => break,
                    }
                }
            });
        }
        recorder.event(
            EventKind::TargetStart,
            match env.user {
                Some((uid, gid)) => format!(
                    "target started (pid {}, as uid {uid} gid {gid})",
                    child.id()
                ),
                None => format!("target started (pid {})", child.id()),
            },
        );
        let mut target = TargetProcess {
            child,
            listen,
            admin,
            started: Instant::now(),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + ready_within;
        loop {
            if let Ok(Some(status)) = target.child.try_wait() {
                let tail = recorder.with(|r| {
                    r.logs
                        .iter()
                        .rev()
                        .take(5)
                        .map(|l| l.line.clone())
                        .collect::<Vec<_>>()
                });
                let tail: Vec<_> = tail.into_iter().rev().collect();
                return Err(format!(
                    "the target exited during startup ({status}); its last output:\n  {}",
                    tail.join("\n  ")
                ));
            }
            let url = format!("http://{listen}/livez");
            if let Ok(r) = client
                .get(&url)
                .timeout(Duration::from_millis(500))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(target);
            }
            if Instant::now() > deadline {
                target.stop();
                return Err(format!(
                    "the target did not answer GET /livez within {}",
                    humantime::format_duration(ready_within)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(exit status)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| s.to_string())
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        pglab::proc::stop_child(&mut self.child, Signal::SIGTERM, Duration::from_secs(5));
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.listen)
    }
}

impl Drop for TargetProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The target's command line and environment under the target contract, isolated as `env`
/// asks (own mount namespace with a tmpfs data directory, another user).
pub fn command(
    spec: &TargetSpec,
    env: &TargetEnv,
    listen: SocketAddr,
    admin: SocketAddr,
) -> Result<Command, String> {
    let mut cmd = Command::new(&spec.program);
    cmd.arg("--payments-url")
        .arg(&env.payments_url)
        .arg("--data-dir")
        .arg(&env.data_dir)
        .arg("--listen")
        .arg(listen.to_string())
        .arg("--admin-listen")
        .arg(admin.to_string())
        // The token and the database URL (with its password) go by environment so they never
        // show in `ps`: a process's command line is readable by every user, its environment
        // only by its owner and root.
        .env("APP_ADMIN_TOKEN", &env.admin_token)
        .env("DATABASE_URL", &env.database_url)
        .env_remove("APP_PROTECTIONS")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(c) = &env.config {
        cmd.arg("--config").arg(c);
    }
    cmd.args(&spec.extra_args);
    let isolation = crate::sys::Isolation {
        tmpfs: env.data_tmpfs.map(|size| (env.data_dir.clone(), size)),
        user: env.user,
    };
    crate::sys::isolate(&mut cmd, &isolation)
        .map_err(|e| format!("cannot prepare the target's isolation: {e}"))?;
    Ok(cmd)
}

/// `path` as process `pid` sees it: through its root, so inside its mount namespace (where a
/// private tmpfs may be mounted over what the host sees at the same path).
pub fn seen_by(pid: u32, path: &Path) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root")).join(path.strip_prefix("/").unwrap_or(path))
}

/// A free loopback port.
pub fn free_port() -> Result<u16, String> {
    pglab::free_port().map_err(|e| format!("no free loopback port: {e}"))
}

/// A client for the target's admin listener.
#[derive(Debug, Clone)]
pub struct TargetAdmin {
    pub base: String,
    token: String,
    client: reqwest::Client,
}

impl TargetAdmin {
    pub fn new(admin: SocketAddr, token: &str) -> Self {
        Self {
            base: format!("http://{admin}"),
            token: token.to_string(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    pub async fn set_failpoint(&self, name: &str, action: &str) -> Result<(), String> {
        let r = self
            .client
            .put(format!("{}/failpoints/{name}", self.base))
            .bearer_auth(&self.token)
            .body(action.to_string())
            .send()
            .await
            .map_err(|e| format!("admin API unreachable: {e}"))?;
        if !r.status().is_success() {
            return Err(format!(
                "setting failpoint {name}: the admin API answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ));
        }
        Ok(())
    }

    pub async fn clear_failpoint(&self, name: &str) -> Result<(), String> {
        let r = self
            .client
            .delete(format!("{}/failpoints/{name}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("admin API unreachable: {e}"))?;
        if !r.status().is_success() {
            return Err(format!(
                "clearing failpoint {name}: the admin API answered {}",
                r.status()
            ));
        }
        Ok(())
    }

    /// The action a failpoint is set to, `None` when it is off.
    pub async fn failpoint(&self, name: &str) -> Result<Option<String>, String> {
        let r = self
            .client
            .get(format!("{}/failpoints", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("admin API unreachable: {e}"))?;
        let list: Vec<serde_json::Value> = r
            .json()
            .await
            .map_err(|e| format!("admin API sent an unreadable failpoint list: {e}"))?;
        Ok(list
            .iter()
            .find(|f| f.get("name").and_then(|n| n.as_str()) == Some(name))
            .and_then(|f| f.get("action").and_then(|a| a.as_str()).map(String::from)))
    }

    pub async fn metrics(&self) -> Result<String, String> {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .text()
            .await
            .map_err(|e| e.to_string())
    }
}

/// Finds the target-app binary: next to our own executable (where cargo puts every binary of
/// the workspace), after making sure it is built and current when we run from a checkout.
pub fn locate_target_app(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.exists() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("no target binary at {}", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no directory for our own executable")?;
    // Test binaries live one level down, in target/<profile>/deps.
    let dirs = [
        dir.to_path_buf(),
        dir.parent().map(Path::to_path_buf).unwrap_or_default(),
    ];
    // Under `cargo run`, build target-app first so a user never runs a stale or missing binary.
    if let (Some(cargo), Some(manifest)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) && exe.file_name().is_some_and(|n| n == "fivehundred")
    {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "target-app",
            "--bin",
            "target-app",
        ])
        .current_dir(manifest);
        if release {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run cargo to build target-app: {e}"))?;
        if !status.success() {
            return Err("building target-app failed (see the cargo output above)".into());
        }
    }
    dirs.iter()
        .map(|d| d.join("target-app"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "target-app is not built; run `cargo build -p target-app` (or use `cargo run -p fivehundred -- run`, which builds it), or pass --target-bin".into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Anyone on the machine can read a process's command line (`ps`, /proc/<pid>/cmdline); the
    /// run's database password must not be there.
    #[test]
    fn a_started_target_has_no_database_password_on_its_command_line() {
        let dir = tempfile::tempdir().unwrap();
        // A stand-in target that ignores its flags and stays up to be looked at. The `exit`
        // keeps the shell (and its command line) alive: a shell may exec its last command.
        let program = dir.path().join("target");
        std::fs::write(&program, "#!/bin/sh\nsleep 30\nexit 0\n").unwrap();
        std::fs::set_permissions(
            &program,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let spec = TargetSpec {
            program,
            extra_args: Vec::new(),
        };
        let env = TargetEnv {
            database_url: "postgres://app:s3cret-pw@127.0.0.1:5432/fivehundred_x".into(),
            payments_url: "http://127.0.0.1:1".into(),
            data_dir: dir.path().join("data"),
            admin_token: "token-123".into(),
            config: None,
            data_tmpfs: None,
            user: None,
        };
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut cmd = command(&spec, &env, addr, addr).unwrap();
        // A script just written may still be open in a thread forked meanwhile (ETXTBSY).
        let mut child = (0..50)
            .find_map(|_| match cmd.spawn() {
                Ok(c) => Some(c),
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(20));
                    None
                }
                Err(e) => panic!("cannot start the stand-in target: {e}"),
            })
            .expect("the stand-in target started");
        let pid = child.id();
        // The parent may resume before the kernel has set the new program's arguments (the
        // exec closes the descriptors that tell it, then builds the stack): wait for them.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let cmdline = loop {
            let c = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
            if !c.is_empty() || std::time::Instant::now() > deadline {
                break c;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            cmdline.contains("--payments-url"),
            "not the target: {cmdline}"
        );
        assert!(
            !cmdline.contains("s3cret-pw"),
            "password in `ps`: {cmdline}"
        );
        assert!(!cmdline.contains("token-123"), "token in `ps`: {cmdline}");
        let environ = String::from_utf8_lossy(&environ);
        assert!(
            environ.contains("DATABASE_URL=postgres://app:s3cret-pw@"),
            "the target is not given its database URL"
        );
    }
}

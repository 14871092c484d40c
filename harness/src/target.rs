//! The service under test as faults see it before and beside the lab: what a scenario's faults
//! need from the way it is started ([`TargetNeeds`]), a client for its failpoint API, the path
//! of a file as it sees it, and where target-app's binary is.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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

/// `path` as process `pid` sees it: through its root, so inside its mount namespace (where a
/// private tmpfs may be mounted over what the host sees at the same path).
pub fn seen_by(pid: u32, path: &Path) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root")).join(path.strip_prefix("/").unwrap_or(path))
}

/// A free loopback port.
pub fn free_port() -> Result<u16, String> {
    pglab::free_port().map_err(|e| format!("no free loopback port: {e}"))
}

/// A client for a service's failpoint API (fail-rs through HTTP: `GET {url}` lists,
/// `PUT {url}/NAME` sets, `DELETE {url}/NAME` clears), as its lab file's `[service.failpoints]`
/// describes it.
#[derive(Debug, Clone)]
pub struct TargetAdmin {
    pub base: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl TargetAdmin {
    pub fn new(url: String, token: Option<String>) -> Self {
        Self {
            base: url.trim_end_matches('/').to_string(),
            token,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .no_proxy()
                .build()
                .expect("a plain HTTP client builds"),
        }
    }

    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let r = self.client.request(method, url);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn set_failpoint(&self, name: &str, action: &str) -> Result<(), String> {
        let r = self
            .request(reqwest::Method::PUT, format!("{}/{name}", self.base))
            .body(action.to_string())
            .send()
            .await
            .map_err(|e| format!("the failpoint API is unreachable: {e}"))?;
        if !r.status().is_success() {
            return Err(format!(
                "setting failpoint {name}: the failpoint API answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ));
        }
        Ok(())
    }

    pub async fn clear_failpoint(&self, name: &str) -> Result<(), String> {
        let r = self
            .request(reqwest::Method::DELETE, format!("{}/{name}", self.base))
            .send()
            .await
            .map_err(|e| format!("the failpoint API is unreachable: {e}"))?;
        if !r.status().is_success() {
            return Err(format!(
                "clearing failpoint {name}: the failpoint API answered {}",
                r.status()
            ));
        }
        Ok(())
    }

    /// The action a failpoint is set to, `None` when it is off.
    pub async fn failpoint(&self, name: &str) -> Result<Option<String>, String> {
        let r = self
            .request(reqwest::Method::GET, self.base.clone())
            .send()
            .await
            .map_err(|e| format!("the failpoint API is unreachable: {e}"))?;
        let list: Vec<serde_json::Value> = r
            .json()
            .await
            .map_err(|e| format!("the failpoint API sent an unreadable list: {e}"))?;
        Ok(list
            .iter()
            .find(|f| f.get("name").and_then(|n| n.as_str()) == Some(name))
            .and_then(|f| f.get("action").and_then(|a| a.as_str()).map(String::from)))
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

//! How the other commands find the running lab: while it is up the lab keeps
//! `<state dir>/lab.json` (its control address and token, readable by its owner only), and
//! `inject`, `revert`, `halt`, `status` and `lab down` read it and talk to the lab's control API
//! over HTTP, from any terminal.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::journal::{open_state_dir, process_start_time, refused};
use crate::statedir::state_dir;

/// What the running lab tells the other commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabFile {
    pub pid: u32,
    /// With the pid, identifies the lab's process even after the pid is reused.
    pub start_time: Option<u64>,
    pub control_url: String,
    /// Needed by every request (the file is readable by its owner only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub dashboard_url: String,
    pub target_url: String,
    pub prometheus_url: String,
    pub alertmanager_url: String,
    pub record_dir: PathBuf,
    pub started_at: String,
    /// Toxiproxy's HTTP API over the lab's proxies (on loopback, without a token, as
    /// Toxiproxy's clients expect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toxiproxy_url: Option<String>,
}

const LAB_FILE: &str = "lab.json";

/// `<state dir>/lab.json`.
pub fn lab_file_path() -> PathBuf {
    state_dir().join(LAB_FILE)
}

impl LabFile {
    /// Writes the file atomically (a reader never sees half of it), mode 0600: it holds the
    /// token. The temporary file is created with `O_EXCL|O_NOFOLLOW` in the private state
    /// directory, so nothing planted under its name is written through.
    pub fn write(&self) -> std::io::Result<()> {
        let dir = open_state_dir().map_err(refused)?;
        let tmp = format!("lab.json.{}", std::process::id());
        let tmp = std::path::Path::new(&tmp);
        dir.remove_file(tmp).map_err(std::io::Error::other)?;
        let mut f = dir.create_new(tmp, 0o600).map_err(std::io::Error::other)?;
        let written = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .and_then(|bytes| f.write_all(&bytes))
            .and_then(|()| f.sync_all())
            .and_then(|()| {
                dir.rename(tmp, std::path::Path::new(LAB_FILE))
                    .map_err(std::io::Error::other)
            });
        if written.is_err() {
            let _ = dir.remove_file(tmp);
        }
        written
    }

    /// The lab file, if there is one (alive or not) and it is the caller's own: a file in a
    /// state directory that is not private, or not owned by the caller, is not read.
    pub fn read() -> Option<LabFile> {
        let file = open_state_dir()
            .ok()?
            .open_file(std::path::Path::new(LAB_FILE), nix::fcntl::OFlag::O_RDONLY)
            .ok()?;
        let meta = file.metadata().ok()?;
        if std::os::unix::fs::MetadataExt::uid(&meta) != nix::unistd::geteuid().as_raw() {
            return None;
        }
        let mut text = String::new();
        // A lab file is a few hundred bytes; more is not one the lab wrote.
        std::io::Read::read_to_string(&mut std::io::Read::take(file, 1 << 20), &mut text).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Whether the process that wrote the file still runs.
    pub fn alive(&self) -> bool {
        match (process_start_time(self.pid), self.start_time) {
            (Some(now), Some(then)) => now == then,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Removes the file if this process wrote it.
    pub fn remove_ours() {
        if LabFile::read().is_some_and(|f| f.pid == std::process::id()) {
            let _ = std::fs::remove_file(lab_file_path());
        }
    }
}

/// Whether a journal written by process `pid` is still there (journals are named
/// `<time>-<pid>-<id>.jsonl`).
fn journal_of(pid: u32) -> bool {
    let tag = format!("-{pid}-");
    std::fs::read_dir(state_dir().join("journals"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(&tag))
}

/// Why a command could not talk to the lab.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No lab is up (exit code 3).
    #[error("{0}")]
    NoLab(String),
    /// The lab did not answer (exit code 3).
    #[error("{0}")]
    Unreachable(String),
    /// The lab answered with an error; `status` 4xx is a bad request (exit code 2).
    #[error("{}", .error)]
    Refused { status: u16, error: ApiError },
}

/// The body of every error answer of the control API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// A client of the running lab's control API.
#[derive(Debug)]
pub struct Client {
    pub lab: LabFile,
    http: reqwest::Client,
}

impl Client {
    /// Finds the running lab through its file.
    pub fn connect() -> Result<Client, ClientError> {
        let path = lab_file_path();
        let lab = LabFile::read().ok_or_else(|| {
            ClientError::NoLab(format!(
                "no lab is up (there is no {}); start one with `fivehundred lab up`",
                path.display()
            ))
        })?;
        if !lab.alive() {
            // Once `recover` has dealt with the killed lab's journal, its file is only stale.
            if !journal_of(lab.pid) {
                let _ = std::fs::remove_file(&path);
                return Err(ClientError::NoLab(format!(
                    "no lab is up (the last one, pid {}, is gone and nothing of it is left to recover); start one with `fivehundred lab up`",
                    lab.pid
                )));
            }
            return Err(ClientError::NoLab(format!(
                "no lab is up: the lab that wrote {} (pid {}) is gone; run `fivehundred recover` to undo what it left behind",
                path.display(),
                lab.pid
            )));
        }
        let http = reqwest::Client::builder()
            // Long enough for a halt that retries a stubborn revert.
            .timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| ClientError::Unreachable(format!("cannot make an HTTP client: {e}")))?;
        Ok(Client { lab, http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.lab.control_url.trim_end_matches('/'))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<serde_json::Value, ClientError> {
        let req = match &self.lab.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|e| {
            ClientError::Unreachable(format!(
                "the lab at {} does not answer ({e}); it may be stopping",
                self.lab.control_url
            ))
        })?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            let error = serde_json::from_value(body.clone()).unwrap_or_else(|_| ApiError {
                error: format!("the lab answered {status}: {body}"),
                ..Default::default()
            });
            Err(ClientError::Refused {
                status: status.as_u16(),
                error,
            })
        }
    }

    pub async fn get(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.get(self.url(path))).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.send(self.http.post(self.url(path)).json(&body)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lab_file_of_a_dead_process_is_not_alive() {
        let f = LabFile {
            pid: std::process::id(),
            start_time: process_start_time(std::process::id()),
            control_url: "http://127.0.0.1:1".into(),
            token: None,
            dashboard_url: String::new(),
            target_url: String::new(),
            prometheus_url: String::new(),
            alertmanager_url: String::new(),
            record_dir: PathBuf::new(),
            started_at: String::new(),
            toxiproxy_url: None,
        };
        assert!(f.alive());
        let reused = LabFile {
            start_time: Some(1),
            ..f.clone()
        };
        assert!(!reused.alive(), "same pid, another process");
    }
}

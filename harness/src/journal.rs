//! The fault journal: an append-only file per run, written (and synced) *before* each fault is
//! injected and each lab resource is created, so that `fivehundred recover` can undo what a
//! killed run left behind. A run that ends normally deletes its journal.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Where journals live: `$FIVEHUNDRED_STATE_DIR`, else `$XDG_STATE_HOME/fivehundred`, else
/// `~/.local/state/fivehundred`.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FIVEHUNDRED_STATE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("fivehundred");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/fivehundred"),
        None => std::env::temp_dir().join("fivehundred-state"),
    }
}

/// Something a run created that must not outlive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Resource {
    /// A child process; killed on recovery if the same process (same start time) still runs.
    Process {
        pid: u32,
        what: String,
        #[serde(default)]
        start_time: Option<u64>,
    },
    /// A database made on an existing server.
    Database { admin_url: String, name: String },
    /// A directory removed on recovery.
    Dir { path: PathBuf },
    /// A cgroup made for a fault (memory pressure); removed on recovery once the processes in it
    /// are gone.
    Cgroup { path: PathBuf },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Entry {
    Start {
        pid: u32,
        start_time: Option<u64>,
        what: String,
    },
    Resource {
        resource: Resource,
    },
    /// A fault about to be injected: its parameters as they were written (for a human reading
    /// the journal), its description, and what `recover` does about it after a crash.
    Inject {
        id: u64,
        fault: serde_json::Value,
        #[serde(default)]
        describe: String,
        #[serde(default)]
        orphan: String,
    },
    Reverted {
        id: u64,
    },
}

/// A fault as the journal keeps it. The journal knows no fault kinds (it sits below them): each
/// kind says up front what is left to undo after a crash, and `recover` reports that.
#[derive(Debug, Clone)]
pub struct JournalledFault {
    pub spec: serde_json::Value,
    pub describe: String,
    pub orphan: &'static str,
}

/// The open journal of a running run.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
    next_id: Mutex<u64>,
}

impl Journal {
    /// Opens a new journal in the state directory.
    pub fn create(what: &str) -> std::io::Result<Journal> {
        let dir = state_dir().join("journals");
        fs::create_dir_all(&dir)?;
        let pid = std::process::id();
        let path = dir.join(format!(
            "{}-{pid}-{}.jsonl",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            uuid::Uuid::new_v4().simple()
        ));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        let j = Journal {
            path,
            file: Mutex::new(file),
            next_id: Mutex::new(0),
        };
        j.write(&Entry::Start {
            pid,
            start_time: process_start_time(pid),
            what: what.to_string(),
        })?;
        Ok(j)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, entry: &Entry) -> std::io::Result<()> {
        write_entry(&self.file, entry)
    }

    /// A second handle on this journal, for the lab's faults to record what they create.
    pub fn resource_log(&self) -> std::io::Result<ResourceLog> {
        let f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        Ok(ResourceLog {
            file: Mutex::new(f.try_clone()?),
        })
    }

    /// Records a resource. A journal that cannot be written is reported but does not stop the
    /// run: the resources are still torn down on every normal path.
    pub fn resource(&self, resource: Resource) {
        let resource = with_start_time(resource);
        if let Err(e) = self.write(&Entry::Resource { resource }) {
            tracing::warn!(
                "cannot write the fault journal {}: {e}",
                self.path.display()
            );
        }
    }

    /// Records a fault about to be injected; returns its id for [`Journal::reverted`]. Fails if
    /// the entry cannot be made durable: a fault that is not journalled is not injected.
    pub fn inject(&self, fault: &JournalledFault) -> std::io::Result<u64> {
        let id = {
            let mut n = self.next_id.lock().unwrap_or_else(|p| p.into_inner());
            *n += 1;
            *n
        };
        self.write(&Entry::Inject {
            id,
            fault: fault.spec.clone(),
            describe: fault.describe.clone(),
            orphan: fault.orphan.to_string(),
        })?;
        Ok(id)
    }

    /// Records that fault `id` was reverted and the revert verified.
    pub fn reverted(&self, id: u64) {
        if let Err(e) = self.write(&Entry::Reverted { id }) {
            tracing::warn!(
                "cannot write the fault journal {}: {e}",
                self.path.display()
            );
        }
    }

    /// The run ended and cleaned up after itself: the journal goes.
    pub fn finish(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Appends one entry and syncs it. Both handles on a journal append (`O_APPEND`), one line per
/// write, so their entries never interleave.
fn write_entry(file: &Mutex<File>, entry: &Entry) -> std::io::Result<()> {
    let mut line = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    line.push('\n');
    let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
    f.write_all(line.as_bytes())?;
    f.sync_data()
}

/// A process resource identified by its start time too, so that recovery never kills a
/// process that merely reused the pid.
fn with_start_time(resource: Resource) -> Resource {
    match resource {
        Resource::Process { pid, what, .. } => Resource::Process {
            pid,
            what,
            start_time: process_start_time(pid),
        },
        r => r,
    }
}

/// A handle on a run's journal that records resources only; see [`Journal::resource_log`].
#[derive(Debug)]
pub struct ResourceLog {
    file: Mutex<File>,
}

impl ResourceLog {
    /// Records a resource before it is created; an error means it must not be created.
    pub fn resource(&self, resource: Resource) -> std::io::Result<()> {
        write_entry(
            &self.file,
            &Entry::Resource {
                resource: with_start_time(resource),
            },
        )
    }
}

/// The start time of a process (clock ticks since boot, from `/proc/PID/stat`): with the pid it
/// identifies a process even after the pid has been reused.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn same_process_alive(pid: u32, start_time: Option<u64>) -> bool {
    match (process_start_time(pid), start_time) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// What `recover` did with one journal.
#[derive(Debug, Default, Serialize)]
pub struct Recovered {
    pub journal: PathBuf,
    pub actions: Vec<String>,
    pub problems: Vec<String>,
}

/// Reverts what killed runs left behind: every journal whose run is no longer alive.
/// Journals of runs still going are left alone.
pub async fn recover() -> Vec<Recovered> {
    let dir = state_dir().join("journals");
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(&dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let entries: Vec<Entry> = BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect();
        if let Some(Entry::Start {
            pid, start_time, ..
        }) = entries.first()
            && same_process_alive(*pid, *start_time)
        {
            continue;
        }
        out.push(recover_one(&path, &entries).await);
    }
    out
}

async fn recover_one(path: &Path, entries: &[Entry]) -> Recovered {
    let mut rec = Recovered {
        journal: path.to_path_buf(),
        ..Default::default()
    };
    let reverted: Vec<u64> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Reverted { id } => Some(*id),
            _ => None,
        })
        .collect();
    // Processes first (they may hold what the faults changed), then faults, then files.
    for e in entries {
        if let Entry::Resource {
            resource:
                Resource::Process {
                    pid,
                    what,
                    start_time,
                },
        } = e
            && same_process_alive(*pid, *start_time)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            rec.actions
                .push(format!("killed leftover {what} (pid {pid})"));
        }
    }
    for e in entries.iter().rev() {
        if let Entry::Inject {
            id,
            fault,
            describe,
            orphan,
        } = e
            && !reverted.contains(id)
        {
            // What a fault leaves behind lives in the run's processes, database, cgroups and
            // directories, all journalled as resources and undone here; each kind says which.
            let what = if describe.is_empty() {
                fault.to_string()
            } else {
                describe.clone()
            };
            rec.actions.push(format!("{what}: {orphan}"));
        }
    }
    for e in entries {
        match e {
            Entry::Resource {
                resource: Resource::Database { admin_url, name },
            } => match pglab::drop_database(admin_url, name).await {
                Ok(()) => rec.actions.push(format!("dropped database {name}")),
                Err(e) => rec
                    .problems
                    .push(format!("could not drop database {name}: {e}")),
            },
            // After the processes: a cgroup cannot go while anything runs in it.
            Entry::Resource {
                resource: Resource::Cgroup { path },
            } if path.exists() => {
                let p = path.clone();
                let removed = tokio::task::spawn_blocking(move || {
                    crate::cgroup::remove(&p, std::time::Duration::from_secs(5))
                })
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
                match removed {
                    Ok(()) => rec
                        .actions
                        .push(format!("removed cgroup {}", path.display())),
                    Err(e) => rec.problems.push(e),
                }
            }
            Entry::Resource {
                resource: Resource::Dir { path },
            } if path.exists() => match fs::remove_dir_all(path) {
                Ok(()) => rec.actions.push(format!("removed {}", path.display())),
                Err(e) => rec
                    .problems
                    .push(format!("could not remove {}: {e}", path.display())),
            },
            _ => {}
        }
    }
    if rec.problems.is_empty() {
        let _ = fs::remove_file(path);
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_start_time_is_readable() {
        assert!(process_start_time(std::process::id()).is_some());
        assert!(same_process_alive(
            std::process::id(),
            process_start_time(std::process::id())
        ));
        assert!(!same_process_alive(std::process::id(), Some(1)));
    }
}

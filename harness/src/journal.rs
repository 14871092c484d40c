//! The fault journal: an append-only file per run, written (and synced) *before* each fault is
//! injected and each lab resource is created, so that `fivehundred recover` can undo what a
//! killed run left behind. A run that ends normally deletes its journal.
//!
//! `recover` runs as root and kills, removes and drops what journals name, so the journals are
//! trusted only as far as they are provably the caller's own: they live in a state directory
//! private to the caller (0700, its owner, never a link), each written 0600 and created with
//! `O_EXCL|O_NOFOLLOW`; a running run holds an exclusive `flock` on its journal for as long as
//! it lives, which is how `recover` tells a live run from a dead one; and what a journal names
//! is acted on only within the bounds of [`scope`].

mod scope;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use serde::{Deserialize, Serialize};

use crate::safefs::{Dir, SafeFsError};
use crate::statedir::state_dir;

/// Journals are named `<time>-<pid>-<id>.jsonl`; one being created is `.jsonl.new` until its
/// first entry is written and its lock taken.
const EXT: &str = ".jsonl";
const NEW_EXT: &str = ".jsonl.new";

/// Held by `recover` while it acts, so two at once (two `run`s starting together) never act
/// on the same journal.
const RECOVER_LOCK: &str = "recover.lock";

/// Opens the state directory (see [`state_dir`]): created 0700 if missing, and refused if it is
/// a link, another user's, or writable by others (a `/tmp/fivehundred-state` made by someone
/// else first, planted journals and all). Its parent is the caller's own choice of place and
/// is followed as given.
pub fn open_state_dir() -> Result<Dir, SafeFsError> {
    open_state_dir_at(&state_dir())
}

fn open_state_dir_at(path: &Path) -> Result<Dir, SafeFsError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(SafeFsError::Path {
            path: path.to_path_buf(),
            why: "the state directory must be a directory below another",
        });
    };
    std::fs::create_dir_all(parent).map_err(|e| SafeFsError::Sys {
        op: "create",
        path: parent.to_path_buf(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    Dir::open_trusted(parent)?.private_subdir(Path::new(name))
}

/// `<state dir>/journals`, private like the state directory.
fn journals_dir(state: &Path) -> Result<Dir, SafeFsError> {
    open_state_dir_at(state)?.private_subdir(Path::new("journals"))
}

/// A state directory refused, as one line that says what to do.
pub fn refused(e: SafeFsError) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("{e}; remove it or point FIVEHUNDRED_STATE_DIR at a directory of your own"),
    )
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
    /// The containers, networks and volumes of a container-backend lab, all labelled with this
    /// run id; removed on recovery by that label (nothing without it is touched).
    Containers { run: String },
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
    pub spec: Box<serde_json::value::RawValue>,
    pub describe: String,
    pub orphan: &'static str,
}

/// The open journal of a running run.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// The directory it is in, for its removal by name.
    dir: Dir,
    /// Held until the run ends: the proof, for `recover`, that the run still lives.
    _lock: Flock<File>,
    /// The same open file (so the same lock), for writing.
    file: Mutex<File>,
    next_id: Mutex<u64>,
}

impl Journal {
    /// Opens a new journal in the state directory: created 0600 with `O_EXCL|O_NOFOLLOW`
    /// under a name `recover` ignores, locked, its first entry written, and only then given
    /// its name. So `recover` never sees a journal without its lock or its first entry.
    pub fn create(what: &str) -> std::io::Result<Journal> {
        Journal::create_in(&state_dir(), what)
    }

    fn create_in(state: &Path, what: &str) -> std::io::Result<Journal> {
        let dir = journals_dir(state).map_err(refused)?;
        let pid = std::process::id();
        let stem = format!(
            "{}-{pid}-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S"),
            uuid::Uuid::new_v4().simple()
        );
        let new_name = format!("{stem}{NEW_EXT}");
        let name = format!("{stem}{EXT}");
        let file = dir
            .create_new_with(Path::new(&new_name), 0o600, OFlag::O_APPEND)
            .map_err(std::io::Error::other)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| std::io::Error::from(errno))?;
        let file = Mutex::new(lock.try_clone()?);
        let started = write_entry(
            &file,
            &Entry::Start {
                pid,
                start_time: process_start_time(pid),
                what: what.to_string(),
            },
        )
        .and_then(|()| {
            dir.rename(Path::new(&new_name), Path::new(&name))
                .map_err(std::io::Error::other)
        });
        if let Err(e) = started {
            let _ = dir.remove_file(Path::new(&new_name));
            return Err(e);
        }
        Ok(Journal {
            path: dir.path().join(&name),
            dir,
            _lock: lock,
            file,
            next_id: Mutex::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, entry: &impl Serialize) -> std::io::Result<()> {
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
        // Written as the fault serialises itself (its `kind` first); read back as a value.
        #[derive(Serialize)]
        struct InjectLine<'a> {
            event: &'static str,
            id: u64,
            fault: &'a serde_json::value::RawValue,
            describe: &'a str,
            orphan: &'a str,
        }
        self.write(&InjectLine {
            event: "inject",
            id,
            fault: &fault.spec,
            describe: &fault.describe,
            orphan: fault.orphan,
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

    /// The run ended and cleaned up after itself: the journal goes (before its lock).
    pub fn finish(self) {
        if let Some(name) = self.path.file_name() {
            let _ = self.dir.remove_file(Path::new(name));
        }
    }
}

/// Appends one entry and syncs it. Both handles on a journal append (`O_APPEND`), one line per
/// write, so their entries never interleave.
fn write_entry(file: &Mutex<File>, entry: &impl Serialize) -> std::io::Result<()> {
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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process is alive and not merely a zombie waiting for its parent to reap it.
fn still_running(pid: u32, start_time: Option<u64>) -> bool {
    same_process_alive(pid, start_time)
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = s.get(s.rfind(')')? + 2..)?.to_string();
                rest.split_whitespace()
                    .next()
                    .map(|st| st != "Z" && st != "X")
            })
            .unwrap_or(false)
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

/// Reverts what killed runs left behind: every journal whose run is no longer alive (its lock
/// is free). Journals of runs still going are left alone; so is everything a journal names
/// outside what [`scope`] allows. Fails only when the state directory cannot be trusted.
pub async fn recover() -> Result<Vec<Recovered>, std::io::Error> {
    recover_in(&state_dir()).await
}

async fn recover_in(state: &Path) -> Result<Vec<Recovered>, std::io::Error> {
    let dir = journals_dir(state).map_err(refused)?;
    // Waits for a `recover` already at work: it may be undoing what this one would find.
    let guard = open_state_dir_at(state)
        .and_then(|state| lock_file(&state, Path::new(RECOVER_LOCK)))
        .map_err(refused)?;
    let _guard = tokio::task::spawn_blocking(move || Flock::lock(guard, FlockArg::LockExclusive))
        .await
        .map_err(std::io::Error::other)?
        .map_err(|(_, errno)| std::io::Error::from(errno))?;
    let mut names: Vec<_> = dir.entries().map_err(std::io::Error::other)?;
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Some(text) = name.to_str() else { continue };
        if text.ends_with(NEW_EXT) {
            remove_abandoned(&dir, &name);
            continue;
        }
        if !text.ends_with(EXT) {
            continue;
        }
        if let Some(r) = recover_journal(&dir, &name).await {
            out.push(r);
        }
    }
    Ok(out)
}

/// The file `name` in `dir` for a lock: created 0600 if missing, never through a link.
fn lock_file(dir: &Dir, name: &Path) -> Result<File, SafeFsError> {
    match dir.create_new(name, 0o600) {
        Ok(f) => Ok(f),
        Err(SafeFsError::Sys {
            errno: Errno::EEXIST,
            ..
        }) => dir.open_file(name, OFlag::O_RDONLY),
        Err(e) => Err(e),
    }
}

/// A journal whose creator died before giving it its name holds no resource (its first entry
/// comes first): removed once its lock is free.
fn remove_abandoned(dir: &Dir, name: &OsStr) {
    let Ok(file) = dir.open_file(Path::new(name), OFlag::O_RDONLY) else {
        return;
    };
    if let Ok(_lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        let _ = dir.remove_file(Path::new(name));
    }
}

/// Recovers one journal if its run is dead; `None` if it is alive (or being recovered by
/// another `recover`), or gone.
async fn recover_journal(dir: &Dir, name: &OsStr) -> Option<Recovered> {
    let path = dir.path().join(name);
    let mut rec = Recovered {
        journal: path.clone(),
        ..Default::default()
    };
    let file = match dir.open_file(Path::new(name), OFlag::O_RDONLY) {
        Ok(f) => f,
        Err(e) => {
            rec.problems.push(format!("cannot open the journal: {e}"));
            return Some(rec);
        }
    };
    if let Err(why) = scope::trusted_journal(&file) {
        rec.problems.push(format!("left alone: {why}"));
        return Some(rec);
    }
    // A live run holds this lock for as long as it lives; nothing else says "alive" as well.
    let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, Errno::EWOULDBLOCK)) => return None,
        Err((_, e)) => {
            rec.problems.push(format!("cannot lock the journal: {e}"));
            return Some(rec);
        }
    };
    // Removed by another `recover` between the listing and the lock: already done.
    if lock.metadata().map(|m| m.nlink()).unwrap_or(0) == 0 {
        return None;
    }
    let (entries, skipped) = match read_entries(&lock) {
        Ok(read) => read,
        Err(e) => {
            rec.problems.push(format!("cannot read the journal: {e}"));
            return Some(rec);
        }
    };
    // A run whose lock was lost some other way, but whose process is still there, is not dead.
    if let Some(Entry::Start {
        pid, start_time, ..
    }) = entries.first()
        && same_process_alive(*pid, *start_time)
    {
        return None;
    }
    rec.actions.extend(skipped);
    recover_entries(&mut rec, &entries).await;
    if rec.problems.is_empty() {
        // Removed while still locked: no other `recover` can take it up half done.
        if let Err(e) = dir.remove_file(Path::new(name)) {
            rec.problems.push(format!("cannot remove the journal: {e}"));
        }
    }
    Some(rec)
}

/// Every entry that parses, and a note for each line that does not (not UTF-8, not JSON, or
/// cut short by a kill mid-write): a bad line is skipped, never the end of the journal.
fn read_entries(file: &File) -> std::io::Result<(Vec<Entry>, Vec<String>)> {
    /// No journal grows near this; a larger file is not one the harness wrote.
    const MAX: u64 = 64 << 20;
    let mut bytes = Vec::new();
    file.take(MAX).read_to_end(&mut bytes)?;
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match std::str::from_utf8(line)
            .map_err(|e| e.to_string())
            .and_then(|l| serde_json::from_str::<Entry>(l).map_err(|e| e.to_string()))
        {
            Ok(e) => entries.push(e),
            Err(why) => skipped.push(format!(
                "skipped line {} of the journal, not an entry: {why}",
                i + 1
            )),
        }
    }
    Ok((entries, skipped))
}

async fn recover_entries(rec: &mut Recovered, entries: &[Entry]) {
    let reverted: Vec<u64> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Reverted { id } => Some(*id),
            _ => None,
        })
        .collect();
    // Processes first (they may hold what the faults changed), then faults, then files.
    let mut killed = Vec::new();
    for e in entries {
        if let Entry::Resource {
            resource:
                Resource::Process {
                    pid,
                    what,
                    start_time,
                },
        } = e
        {
            match scope::process(*pid, *start_time) {
                scope::Verdict::Act => {
                    let target = nix::unistd::Pid::from_raw(*pid as i32);
                    // A service the lab started leads a process group of its own: its workers
                    // go with it.
                    let leads_group = nix::unistd::getpgid(Some(target)) == Ok(target);
                    let _ = if leads_group {
                        nix::sys::signal::killpg(target, nix::sys::signal::Signal::SIGKILL)
                    } else {
                        nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL)
                    };
                    killed.push((*pid, *start_time));
                    rec.actions
                        .push(format!("killed leftover {what} (pid {pid})"));
                }
                scope::Verdict::Gone => {}
                scope::Verdict::Refuse(why) => rec
                    .actions
                    .push(format!("left {what} (pid {pid}) alone: {why}")),
            }
        }
    }
    // Dead before their files go: a process still writing into a directory being removed
    // leaves it not empty.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while killed.iter().any(|(pid, t)| still_running(*pid, *t))
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
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
        if let Entry::Resource { resource } = e {
            recover_resource(rec, resource).await;
        }
    }
}

/// Removes a run's directory. std's remove_dir_all never follows a link inside the tree it
/// removes. A file that appears meanwhile (a process of the run dying as it wrote) makes it
/// try again, a few times.
async fn remove_tree(path: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir_all(path) {
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && tries < 5 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Drops, removes what one resource entry names, if [`scope`] allows it.
async fn recover_resource(rec: &mut Recovered, resource: &Resource) {
    match resource {
        Resource::Process { .. } => {}
        Resource::Database { admin_url, name } => {
            if let Err(why) = scope::database(name) {
                rec.problems
                    .push(format!("left database {name:?} alone: {why}"));
                return;
            }
            match pglab::drop_database(admin_url, name).await {
                Ok(()) => rec.actions.push(format!("dropped database {name}")),
                Err(e) => rec
                    .problems
                    .push(format!("could not drop database {name}: {e}")),
            }
        }
        // After the processes: a cgroup cannot go while anything runs in it.
        Resource::Cgroup { path } => {
            match scope::cgroup(path) {
                scope::Verdict::Act => {}
                scope::Verdict::Gone => return,
                scope::Verdict::Refuse(why) => {
                    rec.problems
                        .push(format!("left cgroup {} alone: {why}", path.display()));
                    return;
                }
            }
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
        Resource::Containers { run } => {
            let removed = async {
                let run = crate::docker::RunId::new(run).map_err(|e| e.to_string())?;
                let engine = crate::docker::Engine::connect()
                    .await
                    .map_err(|e| e.to_string())?;
                crate::docker::cleanup::remove_by_label(&engine, &run)
                    .await
                    .map_err(|e| e.to_string())
            }
            .await;
            match removed {
                Ok(r) if r.is_empty() => {}
                Ok(r) => rec.actions.push(format!(
                    "removed run {run}'s containers {:?}, networks {:?} and volumes {:?}",
                    r.containers, r.networks, r.volumes
                )),
                Err(e) => rec
                    .problems
                    .push(format!("could not remove the containers of run {run}: {e}")),
            }
        }
        Resource::Dir { path } => match scope::dir(path) {
            scope::Verdict::Act => match remove_tree(path).await {
                Ok(()) => rec.actions.push(format!("removed {}", path.display())),
                Err(e) => rec
                    .problems
                    .push(format!("could not remove {}: {e}", path.display())),
            },
            scope::Verdict::Gone => {}
            scope::Verdict::Refuse(why) => rec
                .problems
                .push(format!("left {} alone: {why}", path.display())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn our_own_start_time_is_readable() {
        assert!(process_start_time(std::process::id()).is_some());
        assert!(same_process_alive(
            std::process::id(),
            process_start_time(std::process::id())
        ));
        assert!(!same_process_alive(std::process::id(), Some(1)));
    }

    /// Above the largest pid Linux hands out (2^22): no process has it.
    const DEAD_PID: u32 = (1 << 22) + 1;

    fn line(e: &Entry) -> String {
        serde_json::to_string(e).unwrap() + "\n"
    }

    /// A directory as a run makes one: directly in the temporary directory, named by the harness.
    fn run_dir() -> PathBuf {
        tempfile::Builder::new()
            .prefix("fivehundred-journal-test-")
            .tempdir()
            .unwrap()
            .keep()
    }

    /// A journal written by hand (as a killed run, or an attacker, would leave it).
    fn plant(state: &Path, name: &str, text: &[u8]) -> PathBuf {
        let dir = journals_dir(state).unwrap();
        let mut f = dir.create_new(Path::new(name), 0o600).unwrap();
        f.write_all(text).unwrap();
        dir.path().join(name)
    }

    fn dead_run_with_dir(dir: &Path) -> String {
        line(&Entry::Start {
            pid: DEAD_PID,
            start_time: Some(1),
            what: "test".into(),
        }) + &line(&Entry::Resource {
            resource: Resource::Dir {
                path: dir.to_path_buf(),
            },
        })
    }

    #[test]
    fn a_state_directory_another_user_made_first_is_refused_in_one_line() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("fivehundred-state");
        std::fs::create_dir(&state).unwrap();
        nix::unistd::chown(&state, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let err = Journal::create_in(&state, "test").unwrap_err().to_string();
        assert!(err.contains("owned by uid 65534"), "{err}");
        assert!(
            err.contains("FIVEHUNDRED_STATE_DIR") && !err.contains('\n'),
            "{err}"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(recover_in(&state)).is_err());
        assert!(!state.join("journals").exists(), "something was made in it");
    }

    #[test]
    fn a_state_directory_others_can_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = Journal::create_in(&state, "test").unwrap_err().to_string();
        assert!(err.contains("mode 0777"), "{err}");
    }

    #[test]
    fn a_state_directory_that_is_a_symlink_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        std::os::unix::fs::symlink(elsewhere.path(), &state).unwrap();
        assert!(Journal::create_in(&state, "test").is_err());
    }

    #[test]
    fn a_lab_torn_down_with_a_fault_unreverted_keeps_its_journal_for_recover() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        for (finish, kept) in [(false, true), (true, false)] {
            let run_dir = tmp.path().join("run");
            std::fs::create_dir_all(&run_dir).unwrap();
            let j = Journal::create_in(&state, "test").unwrap();
            let path = j.path().to_path_buf();
            rt.block_on(crate::lab::dismantle(None, &run_dir, j, finish));
            assert!(!run_dir.exists(), "the run directory goes either way");
            assert_eq!(path.exists(), kept, "finish_journal = {finish}");
        }
    }

    #[test]
    fn journals_and_their_directories_are_private_to_their_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let j = Journal::create_in(&state, "test").unwrap();
        j.resource(Resource::Database {
            admin_url: "postgres://admin:pw@127.0.0.1:1/postgres".into(),
            name: "fivehundred_00000000000000000000000000000000".into(),
        });
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("journals")), 0o700);
        assert_eq!(mode(j.path()), 0o600, "the journal holds a password");
        assert!(j.path().to_string_lossy().ends_with(EXT));
        j.finish();
        assert!(
            std::fs::read_dir(state.join("journals"))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_live_runs_journal_is_never_recovered_even_with_an_empty_first_line() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let dir = run_dir();
        // What a run's journal looks like just after a kill cut its first write short...
        let text = format!("\n{{\"event\":\"sta\n{}", dead_run_with_dir(&dir));
        let path = plant(&state, "20260101T000000-1-a.jsonl", text.as_bytes());
        // ...while the run itself still holds its lock: it lives.
        let held = Flock::lock(File::open(&path).unwrap(), FlockArg::LockExclusive).unwrap();
        let done = recover_in(&state).await.unwrap();
        assert!(done.is_empty(), "{done:?}");
        assert!(dir.exists(), "a live run's directory was removed");
        assert!(path.exists(), "a live run's journal was deleted");
        drop(held);
        let done = recover_in(&state).await.unwrap();
        assert_eq!(done.len(), 1);
        assert!(!dir.exists() && !path.exists());
    }

    #[tokio::test]
    async fn a_journal_of_a_running_run_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let dir = run_dir();
        let j = Journal::create_in(&state, "test").unwrap();
        j.resource(Resource::Dir { path: dir.clone() });
        assert!(recover_in(&state).await.unwrap().is_empty());
        assert!(dir.exists());
        j.finish();
        std::fs::remove_dir(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_non_utf8_line_is_skipped_and_reported_and_the_entries_after_it_still_count() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let (first, second) = (run_dir(), run_dir());
        let mut text = dead_run_with_dir(&first).into_bytes();
        text.extend_from_slice(b"\xff\xfe not a line\n");
        text.extend_from_slice(
            line(&Entry::Resource {
                resource: Resource::Dir {
                    path: second.clone(),
                },
            })
            .as_bytes(),
        );
        let path = plant(&state, "20260101T000000-1-b.jsonl", &text);
        let done = recover_in(&state).await.unwrap();
        assert_eq!(done.len(), 1);
        let actions = done[0].actions.join("\n");
        assert!(actions.contains("skipped line 3"), "{actions}");
        assert!(!first.exists() && !second.exists(), "{actions}");
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_journal_others_could_write_is_not_acted_on() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let dir = run_dir();
        let path = plant(
            &state,
            "20260101T000000-1-c.jsonl",
            dead_run_with_dir(&dir).as_bytes(),
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let done = recover_in(&state).await.unwrap();
        assert!(done[0].problems[0].contains("left alone"), "{done:?}");
        assert!(dir.exists());
        std::fs::remove_dir(&dir).unwrap();
    }

    #[tokio::test]
    async fn two_recovers_at_once_recover_a_journal_once() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let dirs: Vec<PathBuf> = (0..8).map(|_| run_dir()).collect();
        for (i, d) in dirs.iter().enumerate() {
            plant(
                &state,
                &format!("20260101T000000-1-{i}.jsonl"),
                dead_run_with_dir(d).as_bytes(),
            );
        }
        let (a, b) = tokio::join!(
            tokio::spawn(recover_in_owned(state.clone())),
            tokio::spawn(recover_in_owned(state.clone()))
        );
        let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
        assert_eq!(a.len() + b.len(), 8, "{a:?} {b:?}");
        assert!(a.iter().chain(&b).all(|r| r.problems.is_empty()));
        assert!(dirs.iter().all(|d| !d.exists()));
    }

    async fn recover_in_owned(state: PathBuf) -> std::io::Result<Vec<Recovered>> {
        recover_in(&state).await
    }
}

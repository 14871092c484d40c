//! File-descriptor exhaustion: the open-file limit (`RLIMIT_NOFILE`) of each of the running
//! target's processes (its process group: a pre-fork server's workers, the server a launcher
//! started) is lowered to what that process has open, plus an optional headroom, with
//! `prlimit(2)`. Its next `open`, `accept` or `connect` fails with EMFILE, as in a service that
//! leaks descriptors or was started with a low `LimitNOFILE`. Only the soft limit moves, so the
//! revert needs no privilege; it restores each limit and verifies it in `/proc/<pid>/limits`.
//!
//! The limit bounds descriptor *numbers*, not their count: a new descriptor takes the lowest
//! free number and fails only if that number is at or above the limit. So the limit is set to
//! the lowest free number, and because a descriptor that closes below it (a receipt file just
//! written, a client's connection) would open a gap that the next `open` fills, the limit then
//! follows the lowest free number down for as long as the fault lasts, as a leak would keep
//! the process full.
//!
//! It never goes below a descriptor the target keeps in reserve (an open `/dev/null`, libev's
//! and libuv's "spare descriptor"): a service closes its reserve at the limit to accept one
//! waiting connection into its slot, and answer 503 or a metrics scrape on it. A limit below
//! that slot would make the protection impossible rather than test it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

use super::{FaultError, FaultKind};
use crate::lab::Lab;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FdLimit {
    /// Descriptors left free above those open at injection. Default 0: the next one fails.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub headroom: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How often the limit follows the lowest free descriptor number down.
const FOLLOW_EVERY: Duration = Duration::from_millis(10);

/// What the fault holds until its revert: the limits to restore, process by process, and the
/// task keeping them down (stopped before they are restored).
pub struct Lowered {
    procs: Vec<Limited>,
    follower: Option<tokio::task::JoinHandle<()>>,
}

/// One process of the service whose limit was lowered, and what its limit was.
#[derive(Debug, Clone, Copy)]
struct Limited {
    pid: u32,
    /// Its start time: a later process given the same pid is not it.
    started: u64,
    soft: u64,
    hard: u64,
}

impl Drop for Lowered {
    fn drop(&mut self) {
        if let Some(task) = &self.follower {
            task.abort();
        }
    }
}

impl FaultKind for FdLimit {
    const HINT: &'static str = "an fd-limit fault takes an optional headroom = 0 (descriptors left free above those open)";
    const ORPHAN: &'static str = "nothing to undo: the limit belonged to the target process, which ended with the run";
    type Held = Lowered;

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.headroom > 1000 {
            return Err((
                "headroom",
                format!(
                    "a headroom of {} descriptors exhausts nothing",
                    self.headroom
                ),
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        match self.headroom {
            0 => "open-file limit lowered to the descriptors already open".into(),
            n => format!("open-file limit lowered to the descriptors already open + {n}"),
        }
    }

    /// Every process of the service gets the lowered limit: a pre-fork server's workers, or
    /// the server a launcher started, are what accept and open, not only the process the lab
    /// started.
    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let pids = service_pids(lab)?;
        let headroom = u64::from(self.headroom);
        let lowered = held.insert(Lowered {
            procs: Vec::new(),
            follower: None,
        });
        let mut following = lower(&pids, headroom, lowered, |note| {
            lab.recorder.event(crate::record::EventKind::Note, note)
        })?;
        lowered.follower = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(FOLLOW_EVERY).await;
                following.retain_mut(|f| f.follow(headroom));
                if following.is_empty() {
                    return; // the target is gone; the lab's checks will say so
                }
            }
        }));
        Ok(())
    }

    async fn revert(&self, _lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let Some(lowered) = held.as_mut() else {
            return Ok(()); // never lowered
        };
        if let Some(task) = lowered.follower.take() {
            task.abort();
            let _ = task.await; // no lowering may land after the restore
        }
        restore(lowered)?;
        *held = None;
        Ok(())
    }
}

/// A process whose limit follows its lowest free descriptor number down.
struct Following {
    proc: Limited,
    limit: u64,
    floor: u64,
}

impl Following {
    /// Lowers the limit to the lowest free number again if a descriptor closed below it;
    /// false once the process is gone (or its pid went to another process).
    fn follow(&mut self, headroom: u64) -> bool {
        let Limited {
            pid, started, hard, ..
        } = self.proc;
        let Ok(fds) = Descriptors::read(pid) else {
            return false;
        };
        self.floor = self.floor.max(fds.reserve_floor());
        let want = fds.limit(self.floor) + headroom;
        if want >= self.limit {
            return true;
        }
        if !same_process(pid, started) {
            return false;
        }
        if crate::sys::set_nofile_limit(pid, want, hard).is_ok() {
            self.limit = want;
        }
        true
    }
}

/// Lowers the limit of each of `pids` to the lowest free descriptor number (plus `headroom`),
/// each verified, recording each in `lowered` before it moves and telling `note` about it. A
/// process that exits meanwhile is passed over; an error if none could be lowered.
fn lower(
    pids: &[u32],
    headroom: u64,
    lowered: &mut Lowered,
    mut note: impl FnMut(String),
) -> Result<Vec<Following>, FaultError> {
    let mut following = Vec::new();
    let mut already_low = None;
    for &pid in pids {
        // With the pid, names the process: a pid reused by another process after the target
        // died has another start time, and no limit may land on it.
        let Some(started) = crate::journal::process_start_time(pid) else {
            continue; // a worker that exited meanwhile
        };
        // An error about a process that has exited meanwhile is no error: nothing to lower.
        let failed = |what: String| {
            same_process(pid, started).then_some(FaultError::Failed(what))
        };
        let fds = match Descriptors::read(pid) {
            Ok(fds) => fds,
            Err(e) => match failed(format!(
                "cannot list the descriptors of the target's pid {pid}: {e}"
            )) {
                Some(e) => return Err(e),
                None => continue,
            },
        };
        let (soft, hard) = match crate::sys::nofile_limit(pid) {
            Ok(limits) => limits,
            Err(e) => match failed(format!("prlimit on the target's pid {pid}: {e}")) {
                Some(e) => return Err(e),
                None => continue,
            },
        };
        let floor = fds.reserve_floor();
        let limit = fds.limit(floor) + headroom;
        if limit >= soft {
            already_low = Some((soft, limit));
            continue;
        }
        // Kept (before the limit moves) for the revert: the limit to restore is whatever it was.
        let proc = Limited {
            pid,
            started,
            soft,
            hard,
        };
        lowered.procs.push(proc);
        if let Err(e) = set_and_verify(pid, limit, hard) {
            if same_process(pid, started) {
                return Err(e);
            }
            lowered.procs.pop();
            continue;
        }
        note(format!(
            "prlimit --nofile={limit}:{hard} on the target's pid {pid} ({}; was {soft}, {} open), following the lowest free descriptor down",
            command_name(pid),
            fds.open.len()
        ));
        following.push(Following { proc, limit, floor });
    }
    if following.is_empty() {
        return Err(FaultError::Failed(match already_low {
            Some((soft, limit)) => format!(
                "the target's limit ({soft}) is already no more than the {limit} it would be lowered to"
            ),
            None => "the target is not running".into(),
        }));
    }
    Ok(following)
}

/// Restores each lowered process's limit, verified; a process that ended took its limit with
/// it. On failure what a retry needs stays in `lowered`.
fn restore(lowered: &mut Lowered) -> Result<(), FaultError> {
    let mut failed = None;
    lowered.procs.retain(|p| {
        if !same_process(p.pid, p.started) {
            return false;
        }
        match set_and_verify(p.pid, p.soft, p.hard) {
            Ok(()) => false,
            Err(e) => {
                failed = Some(e);
                true
            }
        }
    });
    failed.map_or(Ok(()), Err)
}

/// Whether `pid` is still the process that started at `started` (clock ticks since boot).
fn same_process(pid: u32, started: u64) -> bool {
    crate::journal::process_start_time(pid) == Some(started)
}

/// The service's processes, the one the lab started first (a container's: its main process).
fn service_pids(lab: &Lab) -> Result<Vec<u32>, FaultError> {
    let pids = lab.service_pids();
    if !pids.is_empty() {
        return Ok(pids);
    }
    lab.target_pid()
        .map(|pid| vec![pid])
        .ok_or_else(|| FaultError::Failed("the target is not running".into()))
}

/// A process's command name (`/proc/<pid>/comm`), to tell a service's processes apart.
fn command_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A process's open descriptor numbers, and which of them are kept in reserve.
#[derive(Debug, Default)]
struct Descriptors {
    open: BTreeSet<u64>,
    /// Descriptors open on `/dev/null` (a reserve, or a null standard stream).
    null: BTreeSet<u64>,
}

impl Descriptors {
    fn read(pid: u32) -> std::io::Result<Descriptors> {
        let dir = format!("/proc/{pid}/fd");
        let mut fds = Descriptors::default();
        for entry in std::fs::read_dir(&dir)? {
            let Some(n) = entry
                .ok()
                .and_then(|e| e.file_name().to_str()?.parse::<u64>().ok())
            else {
                continue;
            };
            fds.open.insert(n);
            // A descriptor closed since the listing reads as an error: it is simply not null.
            if std::fs::read_link(format!("{dir}/{n}")).is_ok_and(|p| p == *"/dev/null") {
                fds.null.insert(n);
            }
        }
        Ok(fds)
    }

    /// The lowest limit that leaves every reserve descriptor's slot usable.
    fn reserve_floor(&self) -> u64 {
        self.null.last().map_or(0, |n| n + 1)
    }

    /// The limit that lets no new descriptor in: the number the next one would get (the
    /// lowest not in use), but not below `floor`.
    fn limit(&self, floor: u64) -> u64 {
        let lowest_free = (0..).find(|n| !self.open.contains(n)).unwrap_or(0);
        lowest_free.max(floor)
    }
}

/// prlimit, verified in `/proc/<pid>/limits` (what `prlimit --pid` and operators read).
fn set_and_verify(pid: u32, soft: u64, hard: u64) -> Result<(), FaultError> {
    crate::sys::set_nofile_limit(pid, soft, hard)
        .map_err(|e| FaultError::Failed(format!("prlimit --nofile={soft}:{hard}: {e}")))?;
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .map_err(|e| FaultError::Failed(format!("cannot read /proc/{pid}/limits: {e}")))?;
    match open_files_limit(&text) {
        Some(got) if got == (soft, hard) => Ok(()),
        got => Err(FaultError::Failed(format!(
            "/proc/{pid}/limits shows Max open files {got:?} after setting {soft}:{hard}"
        ))),
    }
}

/// The `Max open files` soft and hard limits from `/proc/<pid>/limits`.
fn open_files_limit(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace().map(|v| {
        if v == "unlimited" {
            Some(libc::RLIM_INFINITY)
        } else {
            v.parse().ok()
        }
    });
    Some((values.next()??, values.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_line_of_proc_limits_is_read() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            37                   1048576              files     \n";
        assert_eq!(open_files_limit(text), Some((37, 1_048_576)));
        assert_eq!(open_files_limit("Max cpu time unlimited unlimited"), None);
    }

    fn fds(open: &[u64], null: &[u64]) -> Descriptors {
        Descriptors {
            open: open.iter().copied().collect(),
            null: null.iter().copied().collect(),
        }
    }

    #[test]
    fn the_limit_goes_to_the_lowest_free_descriptor_number() {
        assert_eq!(fds(&[0, 1, 2, 3], &[]).limit(0), 4);
        // A gap below the highest descriptor would let a new one in above the count.
        assert_eq!(fds(&[0, 1, 2, 4, 5, 9], &[]).limit(0), 3);
    }

    #[test]
    fn the_limit_stays_above_every_reserve_descriptor() {
        // The reserve at 7 is closed to accept a connection into its slot: 7 must stay usable.
        let at_limit = fds(&[0, 1, 2, 3, 4, 5, 6, 7, 8], &[0, 7]);
        assert_eq!(at_limit.reserve_floor(), 8);
        assert_eq!(at_limit.limit(at_limit.reserve_floor()), 9);
        let reserve_spent = fds(&[0, 1, 2, 3, 4, 5, 6, 8], &[0]);
        assert_eq!(reserve_spent.limit(8), 8, "the floor seen before is kept");
        assert_eq!(
            reserve_spent.limit(0),
            7,
            "without it the slot would be lost"
        );
    }

    #[test]
    fn our_own_descriptors_are_read_with_their_reserves() {
        let null = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&null) as u64;
        let fds = Descriptors::read(std::process::id()).unwrap();
        assert!(fds.open.contains(&fd) && fds.null.contains(&fd));
        assert!(fds.reserve_floor() > fd);
    }

    #[test]
    fn a_pid_whose_start_time_changed_is_not_the_same_process() {
        let me = std::process::id();
        let started = crate::journal::process_start_time(me).unwrap();
        assert!(same_process(me, started));
        assert!(
            !same_process(me, started + 1),
            "a reused pid passes for the target"
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let then = crate::journal::process_start_time(pid);
        child.wait().unwrap();
        assert!(
            then.is_none_or(|t| !same_process(pid, t)),
            "a dead process passes"
        );
    }

    #[test]
    fn every_process_given_is_lowered_and_restored_and_one_that_exited_is_passed_over() {
        let spawn = || {
            std::process::Command::new("sleep")
                .arg("30")
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let (mut a, mut b) = (spawn(), spawn());
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        gone.wait().unwrap();
        let before = crate::sys::nofile_limit(a.id()).unwrap();
        let mut lowered = Lowered {
            procs: Vec::new(),
            follower: None,
        };
        let mut notes = Vec::new();
        let following = lower(&[a.id(), gone_pid, b.id()], 0, &mut lowered, |n| {
            notes.push(n)
        })
        .unwrap();
        assert_eq!(following.len(), 2);
        assert_eq!(notes.len(), 2, "{notes:?}");
        for child in [&a, &b] {
            // Down to the few descriptors `sleep` has, the hard limit untouched.
            let (soft, hard) = crate::sys::nofile_limit(child.id()).unwrap();
            assert!(soft <= 64 && soft < before.0, "pid {}: {soft}", child.id());
            assert_eq!(hard, before.1);
        }
        restore(&mut lowered).unwrap();
        assert!(lowered.procs.is_empty());
        for child in [&a, &b] {
            assert_eq!(crate::sys::nofile_limit(child.id()).unwrap(), before);
        }
        // None left to lower: the error says so.
        let pids = [a.id(), b.id()];
        for child in [&mut a, &mut b] {
            let _ = child.kill();
            child.wait().unwrap();
        }
        let none = lower(&pids, 0, &mut lowered, |_| {}).err().unwrap();
        assert!(none.to_string().contains("not running"), "{none}");
    }

    #[test]
    fn our_own_limit_is_set_and_verified() {
        let me = std::process::id();
        let (soft, hard) = crate::sys::nofile_limit(me).unwrap();
        set_and_verify(me, soft - 1, hard).unwrap();
        set_and_verify(me, soft, hard).unwrap();
        assert_eq!(crate::sys::nofile_limit(me).unwrap(), (soft, hard));
    }
}

//! File-descriptor exhaustion: the running target's open-file limit (`RLIMIT_NOFILE`) is lowered
//! to what it has open, plus an optional headroom, with `prlimit(2)`. Its next `open`, `accept`
//! or `connect` fails with EMFILE, as in a service that leaks descriptors or was started with a
//! low `LimitNOFILE`. Only the soft limit moves, so the revert needs no privilege; it restores
//! the limit and verifies it in `/proc/<pid>/limits`.
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

/// What the fault holds until its revert: the limits to restore, and the task keeping the
/// limit down (stopped before the limit is restored).
pub struct Lowered {
    soft: u64,
    hard: u64,
    follower: Option<tokio::task::JoinHandle<()>>,
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

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let pid = target_pid(lab)?;
        // With the pid, names the process: a pid reused by another process after the target
        // died has another start time, and no limit may land on it.
        let started = crate::journal::process_start_time(pid)
            .ok_or_else(|| FaultError::Failed(format!("the target (pid {pid}) is gone")))?;
        let fds = Descriptors::read(pid).map_err(|e| {
            FaultError::Failed(format!("cannot list the target's descriptors: {e}"))
        })?;
        let (soft, hard) = crate::sys::nofile_limit(pid)
            .map_err(|e| FaultError::Failed(format!("prlimit on the target: {e}")))?;
        let headroom = u64::from(self.headroom);
        let mut floor = fds.reserve_floor();
        let lowered = fds.limit(floor) + headroom;
        if lowered >= soft {
            return Err(FaultError::Failed(format!(
                "the target's limit ({soft}) is already no more than the {lowered} it would be lowered to"
            )));
        }
        // Kept (before the limit moves) for the revert: the limit to restore is whatever it was.
        *held = Some(Lowered {
                soft,
                hard,
                follower: None,
            });
        set_and_verify(pid, lowered, hard)?;
        lab.recorder.event(
            crate::record::EventKind::Note,
            format!(
                "prlimit --nofile={lowered}:{hard} on the target (was {soft}; {} open), following the lowest free descriptor down",
                fds.open.len()
            ),
        );
        let follower = tokio::spawn(async move {
            let mut limit = lowered;
            loop {
                tokio::time::sleep(FOLLOW_EVERY).await;
                let Ok(fds) = Descriptors::read(pid) else {
                    return; // the target is gone; the lab's checks will say so
                };
                floor = floor.max(fds.reserve_floor());
                let want = fds.limit(floor) + headroom;
                if want >= limit {
                    continue;
                }
                if !same_process(pid, started) {
                    return; // the target died and its pid went to another process
                }
                if crate::sys::set_nofile_limit(pid, want, hard).is_ok() {
                    limit = want;
                }
            }
        });
        if let Some(lowered) = held.as_mut() {
            lowered.follower = Some(follower);
        }
        Ok(())
    }

    async fn revert(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let Some(lowered) = held.as_mut() else {
            return Ok(()); // never lowered
        };
        if let Some(task) = lowered.follower.take() {
            task.abort();
            let _ = task.await; // no lowering may land after the restore
        }
        let result =
            target_pid(lab).and_then(|pid| set_and_verify(pid, lowered.soft, lowered.hard));
        if result.is_ok() {
            *held = None;
        }
        // On failure what the retry needs stays held.
        result
    }
}

/// Whether `pid` is still the process that started at `started` (clock ticks since boot).
fn same_process(pid: u32, started: u64) -> bool {
    crate::journal::process_start_time(pid) == Some(started)
}

fn target_pid(lab: &Lab) -> Result<u32, FaultError> {
    lab.target_pid()
        .ok_or_else(|| FaultError::Failed("the target is not running".into()))
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
    fn our_own_limit_is_set_and_verified() {
        let me = std::process::id();
        let (soft, hard) = crate::sys::nofile_limit(me).unwrap();
        set_and_verify(me, soft - 1, hard).unwrap();
        set_and_verify(me, soft, hard).unwrap();
        assert_eq!(crate::sys::nofile_limit(me).unwrap(), (soft, hard));
    }
}

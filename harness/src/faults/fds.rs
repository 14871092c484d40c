//! File-descriptor exhaustion: the running target's open-file limit (`RLIMIT_NOFILE`) is lowered
//! to what it has open, plus an optional headroom, with `prlimit(2)`. Its next `open`, `accept`
//! or `connect` fails with EMFILE, as in a service that leaks descriptors or was started with a
//! low `LimitNOFILE`. (The limit bounds descriptor numbers, not their count: it is set to the
//! lowest number not in use, so no gap below it is left for a new descriptor.) Only the soft limit moves, so the revert needs no privilege; it restores
//! the limit and verifies it in `/proc/<pid>/limits`.

use serde::{Deserialize, Serialize};

use super::FaultError;
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

impl FdLimit {
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
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

    pub(super) fn describe(&self) -> String {
        match self.headroom {
            0 => "open-file limit lowered to the descriptors already open".into(),
            n => format!("open-file limit lowered to the descriptors already open + {n}"),
        }
    }

    pub(super) async fn inject(&self, lab: &Lab) -> Result<(), FaultError> {
        let pid = target_pid(lab)?;
        let open: std::collections::BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(|e| FaultError::Failed(format!("cannot list the target's descriptors: {e}")))?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        let (soft, hard) = crate::sys::nofile_limit(pid)
            .map_err(|e| FaultError::Failed(format!("prlimit on the target: {e}")))?;
        let lowered = lowest_free(&open) + u64::from(self.headroom);
        let open = open.len();
        if lowered >= soft {
            return Err(FaultError::Failed(format!(
                "the target's limit ({soft}) is already no more than the {lowered} it would be lowered to"
            )));
        }
        // Kept for the revert: the limit to restore is whatever it was.
        lab.held.put(&self.describe(), (soft, hard));
        set_and_verify(pid, lowered, hard)?;
        lab.recorder.event(
            crate::record::EventKind::Note,
            format!("prlimit --nofile={lowered}:{hard} on the target (was {soft}; {open} open)"),
        );
        Ok(())
    }

    pub(super) async fn revert(&self, lab: &Lab) -> Result<(), FaultError> {
        let key = self.describe();
        let Some((soft, hard)) = lab.held.take::<(u64, u64)>(&key) else {
            return Ok(()); // never lowered
        };
        let result = target_pid(lab).and_then(|pid| set_and_verify(pid, soft, hard));
        if result.is_err() {
            lab.held.put(&key, (soft, hard)); // for the retry
        }
        result
    }
}

fn target_pid(lab: &Lab) -> Result<u32, FaultError> {
    lab.target_pid()
        .ok_or_else(|| FaultError::Failed("the target is not running".into()))
}

/// The number the next new descriptor would get: the lowest one not in use.
fn lowest_free(open: &std::collections::BTreeSet<u64>) -> u64 {
    (0..).find(|n| !open.contains(n)).unwrap_or(0)
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

    #[test]
    fn the_limit_goes_to_the_lowest_free_descriptor_number() {
        assert_eq!(lowest_free(&[0, 1, 2, 3].into()), 4);
        // A gap below the highest descriptor would let a new one in above the count.
        assert_eq!(lowest_free(&[0, 1, 2, 4, 5, 9].into()), 3);
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

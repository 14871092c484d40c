//! A full disk. The target's data directory is a size-limited tmpfs mounted in the target's own
//! mount namespace when it starts (see [`TargetNeeds::data_tmpfs`]), and the harness fills it
//! through `/proc/<target pid>/root/<data dir>`, which resolves inside that namespace. The
//! ENOSPC the target meets is the kernel's own.
//!
//! Nothing is mounted on the host at any time, so nothing can be left mounted: the namespace,
//! and the tmpfs with it, ends with the target process, which dies with the controller.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use crate::lab::Lab;
use crate::safefs::{Dir, SafeFsError};
use crate::target::TargetNeeds;

/// The file the harness fills the disk with, at the top of the data directory.
pub const FILLER: &str = ".fivehundred-filler";

/// The one-byte file that checks a new file is refused.
const PROBE: &str = ".fivehundred-probe";

const DEFAULT_SIZE: u64 = 8 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskFull {
    /// Size of the data directory's tmpfs, like `"8MiB"`. Default 8 MiB: room for every
    /// receipt of a short run, and quick to fill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

impl FaultKind for DiskFull {
    const HINT: &'static str = "a disk-full fault takes an optional size = \"8MiB\" (the data directory's tmpfs)";
    const ORPHAN: &'static str = "nothing to undo: the tmpfs existed only in the target's mount namespace, which ended with the target";
    type Held = ();

    fn validate(&self) -> Result<(), (&'static str, String)> {
        match &self.size {
            None => Ok(()),
            Some(s) => match parse_bytes(s) {
                Ok(n) if (64 << 10..=1 << 30).contains(&n) => Ok(()),
                Ok(_) => Err(("size", format!("`{s}` is outside 64KiB..1GiB"))),
                Err(e) => Err(("size", e)),
            },
        }
    }

    fn describe(&self) -> String {
        format!(
            "disk full: the data directory's {} tmpfs filled",
            format_bytes(self.size())
        )
    }

    fn target_needs(&self) -> TargetNeeds {
        TargetNeeds {
            data_tmpfs: Some(self.size()),
            ..TargetNeeds::default()
        }
    }

    fn check_supported(&self) -> Result<(), String> {
        crate::privileges::private_tmpfs()
    }

    async fn inject(&self, lab: &Lab, _held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let dir = data_dir_of_target(lab)?;
        let size = self.size();
        let written = tokio::task::spawn_blocking(move || fill(&dir, size))
            .await
            .map_err(|e| FaultError::Failed(e.to_string()))??;
        lab.recorder.event(
            crate::record::EventKind::Note,
            format!(
                "wrote {} of filler; the data directory has 0 bytes free and a new write fails with ENOSPC",
                format_bytes(written)
            ),
        );
        Ok(())
    }

    async fn revert(&self, lab: &Lab, _held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let dir = data_dir_of_target(lab)?;
        let size = self.size();
        tokio::task::spawn_blocking(move || unfill(&dir, size))
            .await
            .map_err(|e| FaultError::Failed(e.to_string()))?
    }
}

impl DiskFull {
    fn size(&self) -> u64 {
        self.size
            .as_deref()
            .and_then(|s| parse_bytes(s).ok())
            .unwrap_or(DEFAULT_SIZE)
    }
}

fn failed(s: String) -> FaultError {
    FaultError::Failed(s)
}

fn fs_failed(e: SafeFsError) -> FaultError {
    FaultError::Failed(e.to_string())
}

/// The target's data directory as the target sees it: through its own root, inside its mount
/// namespace, where the tmpfs is. Opened without following links: the target's user owns it.
fn data_dir_of_target(lab: &Lab) -> Result<Dir, FaultError> {
    let pid = lab
        .target_pid()
        .ok_or_else(|| failed("the target is not running".into()))?;
    if lab.data_tmpfs.is_none() {
        return Err(failed(
            "the target was started without a tmpfs data directory; filling the host's disk is not an option".into(),
        ));
    }
    Dir::open_seen_by(pid, &lab.data_dir).map_err(fs_failed)
}

/// Writes the filler until the filesystem refuses (ENOSPC), and again until a fresh write
/// fails too: the target frees small files meanwhile (temporary receipts, readiness probes).
/// Returns the bytes written. The filler is always a file this call created: whatever the
/// target's user left under its name (a link to a host file) is removed first, never opened.
fn fill(dir: &Dir, size: u64) -> Result<u64, FaultError> {
    dir.remove_file(Path::new(FILLER)).map_err(fs_failed)?;
    let mut file = dir
        .create_new(Path::new(FILLER), 0o600)
        .map_err(|e| failed(format!("cannot create the filler: {e}")))?;
    let chunk = vec![0xa5u8; 64 << 10];
    let mut written = 0u64;
    for _ in 0..10 {
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => return Err(failed(format!("writing the filler: {e}"))),
            }
            if written > 2 * size {
                return Err(failed(format!(
                    "wrote {} into a {} tmpfs without meeting ENOSPC: this is not the lab's tmpfs",
                    format_bytes(written),
                    format_bytes(size)
                )));
            }
        }
        // Tail pages: smaller writes take what a 64 KiB one could not.
        let byte = [0xa5u8];
        while let Ok(1) = file.write(&byte) {
            written += 1;
        }
        if free_bytes(dir)? == 0 && probe_is_refused(dir) {
            return Ok(written);
        }
    }
    Err(failed(
        "the data directory keeps freeing space as it is filled".into(),
    ))
}

/// Removes the filler (by name: a link left in its place is removed, not followed) and
/// verifies that it is gone and at least half the disk is free again (the rest may hold the
/// receipts written meanwhile).
fn unfill(dir: &Dir, size: u64) -> Result<(), FaultError> {
    dir.remove_file(Path::new(FILLER))
        .map_err(|e| failed(format!("cannot remove the filler: {e}")))?;
    let free = free_bytes(dir)?;
    if dir.exists(Path::new(FILLER)) || free < size / 2 {
        return Err(failed(format!(
            "after removing the filler only {} of {} is free",
            format_bytes(free),
            format_bytes(size)
        )));
    }
    Ok(())
}

/// Whether a new one-byte file is refused with ENOSPC, as the target's next write will be.
/// Created with `O_EXCL|O_NOFOLLOW`: a link planted under the probe's name makes the probe
/// fail (and is removed), it is never written through.
fn probe_is_refused(dir: &Dir) -> bool {
    let probe = Path::new(PROBE);
    let refused = match dir.create_new(probe, 0o600) {
        Err(SafeFsError::Sys { errno, .. }) => errno == nix::errno::Errno::ENOSPC,
        Err(_) => false,
        Ok(mut f) => match f.write_all(b"1").and_then(|()| f.sync_all()) {
            Err(e) => e.raw_os_error() == Some(libc::ENOSPC),
            Ok(()) => false,
        },
    };
    let _ = dir.remove_file(probe);
    refused
}

fn free_bytes(dir: &Dir) -> Result<u64, FaultError> {
    dir.free_bytes().map_err(fs_failed)
}

/// `"8MiB"`, `"512KiB"`, `"1GiB"`, `"65536"` (bytes); `k`, `M`, `G` are binary too.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a size: write it like \"8MiB\""))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "k" | "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "`{s}`: unknown size unit `{other}` (use B, KiB, MiB or GiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// `8 MiB`, `512 KiB`, `1.5 GiB`, `100 B`.
pub fn format_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.0} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary_units() {
        assert_eq!(parse_bytes("8MiB"), Ok(8 << 20));
        assert_eq!(parse_bytes("256k"), Ok(256 << 10));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert!(parse_bytes("8 parsecs").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert_eq!(format_bytes(8 << 20), "8 MiB");
    }

    #[test]
    fn a_size_outside_the_range_is_rejected_naming_the_key() {
        let f = DiskFull {
            size: Some("1k".into()),
        };
        assert_eq!(f.validate().unwrap_err().0, "size");
    }

    #[test]
    fn a_private_tmpfs_fills_to_enospc_through_the_process_root_and_the_host_sees_no_mount() {
        // Needs the same privilege as the fault; skipped (and said so) without it.
        if let Err(why) = crate::privileges::private_tmpfs() {
            eprintln!("SKIPPED: {why}");
            return;
        }
        // The fault's own mechanism: a process with a tmpfs in its own mount namespace, filled
        // from here through /proc/<pid>/root.
        let dir = tempfile::tempdir().unwrap();
        let size = 256 << 10;
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        crate::sys::isolate(
            &mut cmd,
            &crate::sys::Isolation {
                tmpfs: Some((dir.path().to_path_buf(), size)),
                user: None,
            },
        )
        .unwrap();
        let mut child = pglab::proc::spawn_tied(cmd, nix::sys::signal::Signal::SIGKILL).unwrap();
        let view = Dir::open_seen_by(child.id(), dir.path()).unwrap();
        let result = fill(&view, size);
        let refused = probe_is_refused(&view);
        let removed = view.remove_file(Path::new(FILLER));
        let free = free_bytes(&view);
        let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(result.unwrap() > size / 2);
        assert!(refused);
        assert!(removed.unwrap());
        assert_eq!(free.unwrap(), size);
        assert!(
            !host_mounts.contains(dir.path().to_str().unwrap()),
            "the tmpfs is visible on the host"
        );
        assert!(
            !dir.path().join(FILLER).exists(),
            "the filler went to the host's disk"
        );
    }

    /// A host file standing in for `/etc/shadow`, with the contents and mode to check after.
    fn host_file() -> (tempfile::TempDir, std::path::PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let host = tempfile::tempdir().unwrap();
        let file = host.path().join("shadow");
        std::fs::write(&file, "root:$6$secret:19000::::::\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        (host, file)
    }

    fn assert_untouched(file: &Path) {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::read_to_string(file).unwrap(),
            "root:$6$secret:19000::::::\n",
            "the host file was written through the link"
        );
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
    }

    /// The attack: the target's user makes the probe's name a symlink to a host file, which a
    /// probe written by path would truncate as root.
    #[test]
    fn a_probe_file_swapped_for_a_symlink_to_a_host_file_never_writes_the_host_file() {
        let (_host, shadow) = host_file();
        let data = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&shadow, data.path().join(PROBE)).unwrap();
        let dir = Dir::open(data.path()).unwrap();
        assert!(!probe_is_refused(&dir));
        assert_untouched(&shadow);
        assert!(!data.path().join(PROBE).exists(), "the planted link stays");
    }

    /// The same with the filler's name, which a filler opened by path would append to.
    #[test]
    fn a_filler_swapped_for_a_symlink_to_a_host_file_never_writes_the_host_file() {
        let (_host, shadow) = host_file();
        let data = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&shadow, data.path().join(FILLER)).unwrap();
        let dir = Dir::open(data.path()).unwrap();
        // Not a tmpfs: the fill stops at twice the size, with an error; only its own file grew.
        assert!(fill(&dir, 64 << 10).is_err());
        assert_untouched(&shadow);
        let filler = std::fs::symlink_metadata(data.path().join(FILLER)).unwrap();
        assert!(filler.is_file(), "the filler is a file of its own");
        // Swapped again between inject and revert: the revert removes the link only.
        std::fs::remove_file(data.path().join(FILLER)).unwrap();
        std::os::unix::fs::symlink(&shadow, data.path().join(FILLER)).unwrap();
        let _ = unfill(&dir, 64 << 10);
        assert_untouched(&shadow);
        assert!(std::fs::symlink_metadata(data.path().join(FILLER)).is_err());
    }

    /// The data directory itself swapped for a link (possible where its parent is the
    /// target's): the fault refuses to open it at all.
    #[test]
    fn a_data_directory_swapped_for_a_symlink_is_refused() {
        let (host, _) = host_file();
        let parent = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(host.path(), parent.path().join("data")).unwrap();
        assert!(Dir::open_seen_by(std::process::id(), &parent.path().join("data")).is_err());
    }
}

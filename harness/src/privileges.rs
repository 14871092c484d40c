//! What this machine allows. Faults that need a privilege (a tmpfs in a mount namespace, another
//! user, a memory cgroup) ask here before the lab starts; a missing privilege skips the scenario
//! with one line naming what is missing and how to get it. Nothing is ever faked instead.
//!
//! Each answer is a pure function of facts (the effective uid, what a probe returned), so the
//! reasons can be tested on any machine; the probes themselves run once per process.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::cgroup::{self, Cgroup};

/// How to get root, said once for every reason.
const HOW: &str = "run fivehundred as root (sudo -E), or in a container started with --privileged";

/// The user a fault that needs an unprivileged target runs it as.
pub const UNPRIVILEGED_USER: &str = "nobody";

/// `Ok` for root; otherwise why `what` needs it and how to get it.
pub fn need_root(euid: u32, what: &str) -> Result<(), String> {
    if euid == 0 {
        Ok(())
    } else {
        Err(format!("root to {what} (this runs as uid {euid}); {HOW}"))
    }
}

pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// A private tmpfs in the target's own mount namespace: root, and a probe that does it for real
/// (a container can run as root and still be denied `unshare` or `mount`).
pub fn private_tmpfs() -> Result<(), String> {
    need_root(euid(), "mount a tmpfs in the target's own mount namespace")?;
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE.get_or_init(probe_private_tmpfs).clone()
}

fn probe_private_tmpfs() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("a temporary directory ({e})"))?;
    let mut cmd = std::process::Command::new("true");
    crate::sys::isolate(
        &mut cmd,
        &crate::sys::Isolation {
            tmpfs: Some((dir.path().to_path_buf(), 1 << 20)),
            user: None,
        },
    )
    .map_err(|e| format!("a private tmpfs ({e})"))?;
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("a private tmpfs (the probe exited {s})")),
        Err(e) => Err(format!(
            "permission to unshare a mount namespace and mount a tmpfs in it (the probe failed: {e}); {HOW}"
        )),
    }
}

/// The uid and gid of [`UNPRIVILEGED_USER`], when the controller may switch to it.
pub fn can_switch_user() -> Result<(u32, u32), String> {
    need_root(
        euid(),
        &format!("start the target as `{UNPRIVILEGED_USER}` (file modes do not bind root)"),
    )?;
    let user = nix::unistd::User::from_name(UNPRIVILEGED_USER)
        .ok()
        .flatten()
        .ok_or_else(|| {
            format!("a `{UNPRIVILEGED_USER}` user to run the target as; create it with `useradd --system {UNPRIVILEGED_USER}`")
        })?;
    Ok((user.uid.as_raw(), user.gid.as_raw()))
}

/// [`can_switch_user`], and that user can reach and run `program`.
pub fn unprivileged_user(program: &Path) -> Result<(u32, u32), String> {
    let ids = can_switch_user()?;
    let program = program
        .canonicalize()
        .unwrap_or_else(|_| program.to_path_buf());
    reachable_by_others(&program, 0o001)?;
    Ok(ids)
}

/// Checks that a user who is neither owner nor group can reach `path` (every directory above it
/// searchable) and has `bits` (of `o=rwx`) on it.
pub fn reachable_by_others(path: &Path, bits: u32) -> Result<(), String> {
    let modes: Vec<(PathBuf, u32)> = path
        .ancestors()
        .filter_map(|p| {
            Some((
                p.to_path_buf(),
                std::fs::metadata(p).ok()?.permissions().mode(),
            ))
        })
        .collect();
    others_can_reach(path, bits, &modes)
}

/// Pure part of [`reachable_by_others`]: `modes` holds `path` and each directory above it.
fn others_can_reach(path: &Path, bits: u32, modes: &[(PathBuf, u32)]) -> Result<(), String> {
    for (p, mode) in modes {
        let (need, what) = if p == path {
            (bits, "permission on")
        } else {
            (0o001, "search permission on the directory")
        };
        if mode & need != need {
            return Err(format!(
                "`{UNPRIVILEGED_USER}` to have {what} {} (mode {:o}); build or copy the target where every user can run it, e.g. under /usr/local/bin or /tmp",
                p.display(),
                mode & 0o7777
            ));
        }
    }
    Ok(())
}

/// The cgroup to create memory-limited children under: the controller's own memory cgroup,
/// where a probe child with a limit could be created and removed. Probed once.
pub fn memory_cgroup() -> Result<Cgroup, String> {
    static PROBE: OnceLock<Result<Cgroup, String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let parent = cgroup::memory_cgroup_of("self")
                .map_err(|e| format!("a memory cgroup ({e}); {HOW}"))?;
            let probe = parent
                .create_child(&format!("{}-probe", cgroup::child_name()), 64 << 20)
                .map_err(|e| {
                    format!(
                        "permission to create a memory-limited cgroup under {} ({e}); {HOW}, or delegate that cgroup to this user",
                        parent.path.display()
                    )
                })?;
            probe.remove(std::time::Duration::from_secs(2))?;
            Ok(parent)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_passes_and_anyone_else_is_told_what_is_missing_and_how_to_get_it() {
        assert!(need_root(0, "mount a tmpfs").is_ok());
        let why = need_root(1000, "mount a tmpfs").unwrap_err();
        assert!(why.starts_with("root to mount a tmpfs"), "{why}");
        assert!(why.contains("uid 1000"), "{why}");
        assert!(why.contains("sudo"), "{why}");
    }

    #[test]
    fn a_non_root_controller_is_refused_a_private_tmpfs_and_another_user() {
        if euid() == 0 {
            // As root both are available; the reasons are tested through `need_root` above.
            assert!(private_tmpfs().is_ok(), "{:?}", private_tmpfs());
            return;
        }
        assert!(private_tmpfs().unwrap_err().starts_with("root to mount"));
        assert!(
            unprivileged_user(Path::new("/bin/true"))
                .unwrap_err()
                .starts_with("root to start the target as `nobody`")
        );
    }

    #[test]
    fn a_binary_under_a_private_directory_is_unreachable_for_nobody() {
        let path = Path::new("/root/build/target-app");
        let modes = [
            (PathBuf::from("/root/build/target-app"), 0o755),
            (PathBuf::from("/root/build"), 0o755),
            (PathBuf::from("/root"), 0o700),
            (PathBuf::from("/"), 0o755),
        ];
        let why = others_can_reach(path, 0o001, &modes).unwrap_err();
        assert!(why.contains("/root "), "{why}");
        let mut open = modes.clone();
        open[2].1 = 0o711;
        assert!(others_can_reach(path, 0o001, &open).is_ok());
        open[0].1 = 0o750;
        assert!(others_can_reach(path, 0o001, &open).is_err());
    }
}

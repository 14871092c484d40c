//! A permission flip: the mode of a directory the target writes to is changed under it, as a
//! deploy script, a volume remount or a careless `chmod -R` would. The target runs as an
//! unprivileged user for this (see [`TargetNeeds::unprivileged`]): root ignores mode bits, so
//! against a root target the fault would do nothing. The EACCES it meets is the kernel's own.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use crate::lab::Lab;
use crate::safefs::{Dir, SafeFsError};
use crate::target::TargetNeeds;

/// Which path loses its permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PermissionPath {
    /// `<data dir>/receipts`, where the receipt files are written.
    Receipts,
    /// The data directory itself.
    DataDir,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    pub path: PermissionPath,
    /// The mode it gets, in octal: `"0500"` (read-only for its owner), `"0000"`.
    pub mode: String,
}

impl FaultKind for Permission {
    const HINT: &'static str = "a permission fault takes path = \"receipts\" | \"data-dir\" and mode = \"0500\"";
    const ORPHAN: &'static str = "nothing to undo: the mode was changed inside the run directory, which recover removes";
    type Held = u32;

    fn validate(&self) -> Result<(), (&'static str, String)> {
        match parse_mode(&self.mode) {
            // A permission flip takes rights away; setuid, setgid and sticky bits would hand
            // some out (a setuid directory is harmless, but `4777` is never what a test needs).
            Some(m) if m & 0o7000 != 0 => Err((
                "mode",
                format!(
                    "`{}` sets setuid, setgid or sticky bits; use the permission bits only, like \"0500\"",
                    self.mode
                ),
            )),
            Some(_) => Ok(()),
            None => Err((
                "mode",
                format!("`{}` is not an octal file mode like \"0500\"", self.mode),
            )),
        }
    }

    fn describe(&self) -> String {
        let what = match self.path {
            PermissionPath::Receipts => "receipts directory",
            PermissionPath::DataDir => "data directory",
        };
        format!(
            "permission flip: the {what} set to mode {:04o}",
            self.mode()
        )
    }

    fn target_needs(&self) -> TargetNeeds {
        TargetNeeds {
            unprivileged: true,
            ..TargetNeeds::default()
        }
    }

    fn check_supported(&self) -> Result<(), String> {
        crate::privileges::can_switch_user().map(drop)
    }

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let dir = self.dir(lab)?;
        let before = dir.mode().map_err(failed)?;
        // Kept for the revert: the mode to restore is whatever it was, not a guess.
        *held = Some(before);
        dir.set_mode(self.mode()).map_err(failed)?;
        lab.recorder.event(
            crate::record::EventKind::Note,
            format!(
                "chmod {:04o} {} (was {before:04o})",
                self.mode(),
                dir.path().display()
            ),
        );
        Ok(())
    }

    async fn revert(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let Some(before) = *held else {
            // Never injected (it failed before the mode was read): nothing to restore.
            return Ok(());
        };
        self.dir(lab)
            .and_then(|dir| dir.set_mode(before).map_err(failed))?;
        // Restored and verified; on failure the mode stays held for the retry.
        *held = None;
        Ok(())
    }
}

impl Permission {
    fn mode(&self) -> u32 {
        parse_mode(&self.mode).unwrap_or(0o500)
    }

    /// The directory whose mode flips, opened through the target's root without following any
    /// link: the target's user owns the data directory and may have swapped `receipts` for a
    /// symlink to a host file since the last call.
    fn dir(&self, lab: &Lab) -> Result<Dir, FaultError> {
        let pid = lab
            .target_pid()
            .ok_or_else(|| FaultError::Failed("the target is not running".into()))?;
        if lab.service_user.is_none() {
            return Err(FaultError::Failed(
                "the target runs as root, which ignores file modes: the flip would do nothing"
                    .into(),
            ));
        }
        let rel = match self.path {
            PermissionPath::Receipts => lab.data_dir.join("receipts"),
            PermissionPath::DataDir => lab.data_dir.clone(),
        };
        open_flipped(pid, &rel)
    }
}

/// `path` inside process `pid`'s root, every component opened without following links.
fn open_flipped(pid: u32, path: &Path) -> Result<Dir, FaultError> {
    Dir::open_seen_by(pid, path).map_err(failed)
}

fn failed(e: SafeFsError) -> FaultError {
    FaultError::Failed(e.to_string())
}

fn parse_mode(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("0500"), Some(0o500));
        assert_eq!(parse_mode("0o755"), Some(0o755));
        assert_eq!(parse_mode("0800"), None);
        assert_eq!(parse_mode("77777"), None);
    }

    /// The attack: the target's user owns the data directory, so between inject and revert it
    /// swaps `receipts` for a symlink to a host file. The revert must fail, not chmod the file.
    #[test]
    fn a_receipts_directory_swapped_for_a_symlink_to_a_host_file_leaves_the_host_file_alone() {
        use std::os::unix::fs::PermissionsExt;
        let host = tempfile::tempdir().unwrap();
        let passwd = host.path().join("passwd");
        std::fs::write(&passwd, "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644)).unwrap();
        let data = tempfile::tempdir().unwrap();
        let receipts = data.path().join("receipts");
        std::fs::create_dir(&receipts).unwrap();
        let me = std::process::id();

        // inject: the real directory flips to 0500.
        let dir = open_flipped(me, &receipts).unwrap();
        let before = dir.mode().unwrap();
        dir.set_mode(0o500).unwrap();
        drop(dir);
        // The swap, as the directory's owner could do it.
        std::fs::remove_dir(&receipts).unwrap();
        std::os::unix::fs::symlink(&passwd, &receipts).unwrap();
        // revert: refused, naming the link.
        let err = open_flipped(me, &receipts)
            .and_then(|d| d.set_mode(before).map_err(failed))
            .unwrap_err();
        assert!(err.to_string().contains("receipts"), "{err}");
        let mode = std::fs::metadata(&passwd).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644, "the host file's mode changed");
        assert_eq!(
            std::fs::read_to_string(&passwd).unwrap(),
            "root:x:0:0::/root:/bin/sh\n"
        );
    }

    /// The same swap one level up: the data directory itself as the link target's parent.
    #[test]
    fn a_data_directory_reached_through_a_symlinked_parent_is_refused() {
        let host = tempfile::tempdir().unwrap();
        std::fs::create_dir(host.path().join("receipts")).unwrap();
        let data = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(host.path(), data.path().join("data")).unwrap();
        assert!(open_flipped(std::process::id(), &data.path().join("data/receipts")).is_err());
    }

    #[test]
    fn modes_with_setuid_setgid_or_sticky_bits_are_refused_at_validation() {
        let flip = |mode: &str| Permission {
            path: PermissionPath::Receipts,
            mode: mode.into(),
        };
        for bad in ["4777", "2755", "1777", "0o6000"] {
            let (key, msg) = flip(bad).validate().unwrap_err();
            assert_eq!(key, "mode");
            assert!(msg.contains("setuid"), "{msg}");
        }
        assert!(flip("0500").validate().is_ok());
        assert!(flip("0000").validate().is_ok());
    }
}

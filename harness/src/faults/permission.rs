//! A permission flip: the mode of a directory the target writes to is changed under it, as a
//! deploy script, a volume remount or a careless `chmod -R` would. The target runs as an
//! unprivileged user for this (see [`TargetNeeds::unprivileged`]): root ignores mode bits, so
//! against a root target the fault would do nothing. The EACCES it meets is the kernel's own.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::FaultError;
use crate::lab::Lab;
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

impl Permission {
    pub(super) fn validate(&self) -> Result<(), (&'static str, String)> {
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

    fn mode(&self) -> u32 {
        parse_mode(&self.mode).unwrap_or(0o500)
    }

    pub(super) fn describe(&self) -> String {
        let what = match self.path {
            PermissionPath::Receipts => "receipts directory",
            PermissionPath::DataDir => "data directory",
        };
        format!(
            "permission flip: the {what} set to mode {:04o}",
            self.mode()
        )
    }

    pub(super) fn target_needs(&self) -> TargetNeeds {
        TargetNeeds {
            unprivileged: true,
            ..TargetNeeds::default()
        }
    }

    pub(super) fn check_supported(&self) -> Result<(), String> {
        super::privileges::can_switch_user().map(drop)
    }

    fn path(&self, lab: &Lab) -> Result<PathBuf, FaultError> {
        let pid = lab
            .target_pid()
            .ok_or_else(|| FaultError::Failed("the target is not running".into()))?;
        let (_, env) = lab.target_setup();
        if env.user.is_none() {
            return Err(FaultError::Failed(
                "the target runs as root, which ignores file modes: the flip would do nothing"
                    .into(),
            ));
        }
        let dir = crate::target::seen_by(pid, &env.data_dir);
        Ok(match self.path {
            PermissionPath::Receipts => dir.join("receipts"),
            PermissionPath::DataDir => dir,
        })
    }

    pub(super) async fn inject(&self, lab: &Lab) -> Result<(), FaultError> {
        let path = self.path(lab)?;
        let before = mode_of(&path)?;
        // Kept for the revert: the mode to restore is whatever it was, not a guess.
        lab.held.put(&self.describe(), before);
        set_mode(&path, self.mode())?;
        lab.recorder.event(
            crate::record::EventKind::Note,
            format!(
                "chmod {:04o} {} (was {before:04o})",
                self.mode(),
                path.display()
            ),
        );
        Ok(())
    }

    pub(super) async fn revert(&self, lab: &Lab) -> Result<(), FaultError> {
        let key = self.describe();
        let Some(before) = lab.held.take::<u32>(&key) else {
            // Never injected (it failed before the mode was read): nothing to restore.
            return Ok(());
        };
        let path = self.path(lab)?;
        if let Err(e) = set_mode(&path, before) {
            lab.held.put(&key, before); // for the retry
            return Err(e);
        }
        Ok(())
    }
}

fn parse_mode(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o7777)
}

fn mode_of(path: &std::path::Path) -> Result<u32, FaultError> {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|e| FaultError::Failed(format!("cannot read the mode of {}: {e}", path.display())))
}

/// chmod, verified by reading the mode back.
fn set_mode(path: &std::path::Path, mode: u32) -> Result<(), FaultError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| FaultError::Failed(format!("chmod {mode:04o} {}: {e}", path.display())))?;
    match mode_of(path)? {
        m if m == mode => Ok(()),
        m => Err(FaultError::Failed(format!(
            "{} has mode {m:04o} after chmod {mode:04o}",
            path.display()
        ))),
    }
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

    #[test]
    fn a_mode_change_reads_back_or_fails() {
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o500).unwrap();
        assert_eq!(mode_of(dir.path()).unwrap(), 0o500);
        set_mode(dir.path(), 0o700).unwrap();
        assert!(set_mode(&dir.path().join("gone"), 0o700).is_err());
    }
}

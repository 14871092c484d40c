//! Installs the Debian packages the lab needs (Prometheus, Alertmanager) where they are missing,
//! so the README's two commands work on a fresh machine with no other step.
//!
//! Only as root on a machine with `apt-get`; anywhere else, and with `FIVEHUNDRED_NO_INSTALL`
//! set, the caller gets one line naming what to install. Installs are serialised through a lock
//! file, because parallel tests would otherwise race for dpkg's own lock.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Where to look for the monitoring binaries instead of PATH.
pub const BIN_DIR_ENV: &str = "FIVEHUNDRED_MONITORING_BIN_DIR";

/// A binary the lab runs and the Debian package that provides it.
#[derive(Debug, Clone, Copy)]
pub struct Need {
    pub binary: &'static str,
    /// Other names the binary goes by (Debian renames `alertmanager`).
    pub aliases: &'static [&'static str],
    pub package: &'static str,
}

pub const MONITORING: &[Need] = &[
    Need {
        binary: "prometheus",
        aliases: &[],
        package: "prometheus",
    },
    Need {
        binary: "promtool",
        aliases: &[],
        package: "prometheus",
    },
    Need {
        binary: "prometheus-alertmanager",
        aliases: &["alertmanager"],
        package: "prometheus-alertmanager",
    },
];

/// Headless Chromium, for the browser tests of the HTML report and the game-day dashboard.
pub const CHROMIUM: &[Need] = &[Need {
    binary: "chromium",
    aliases: &[],
    package: "chromium",
}];

/// The peers `cargo bench -p fivehundred` measures the proxy and the load generator against.
pub const HAPROXY: &[Need] = &[Need {
    binary: "haproxy",
    aliases: &[],
    package: "haproxy",
}];

pub const SOCAT: &[Need] = &[Need {
    binary: "socat",
    aliases: &[],
    package: "socat",
}];

pub const WRK: &[Need] = &[Need {
    binary: "wrk",
    aliases: &[],
    package: "wrk",
}];

pub const HEY: &[Need] = &[Need {
    binary: "hey",
    aliases: &[],
    package: "hey",
}];

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .any(|d| d.join(name).is_file())
}

fn missing(needs: &[Need]) -> Vec<&'static str> {
    let mut pkgs: Vec<&'static str> = needs
        .iter()
        .filter(|n| !on_path(n.binary) && !n.aliases.iter().any(|a| on_path(a)))
        .map(|n| n.package)
        .collect();
    pkgs.sort_unstable();
    pkgs.dedup();
    pkgs
}

/// Makes sure every needed binary is on PATH, installing its package when this machine allows.
pub fn ensure(needs: &[Need]) -> Result<(), String> {
    let pkgs = missing(needs);
    if pkgs.is_empty() {
        return Ok(());
    }
    let list = pkgs.join(" ");
    let can_install = std::env::var_os(BIN_DIR_ENV).is_none()
        && nix::unistd::geteuid().is_root()
        && Path::new("/usr/bin/apt-get").exists()
        && std::env::var_os("FIVEHUNDRED_NO_INSTALL").is_none();
    if !can_install {
        return Err(format!(
            "{list} not installed; install with `apt-get install {list}`"
        ));
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("fivehundred-apt.lock"))
        .map_err(|e| format!("cannot open the install lock: {e}"))?;
    let _guard = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("cannot take the install lock: {e}"))?;
    // Someone else may have installed them while we waited.
    let pkgs = missing(needs);
    if pkgs.is_empty() {
        return Ok(());
    }
    let list = pkgs.join(" ");
    eprintln!("fivehundred: installing {list} from Debian's packages (one time)…");
    // The packages' scripts would start their daemons on the default ports; the lab starts
    // its own. A policy-rc.d answering 101 tells them not to.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let made_policy = !policy.exists()
        && std::fs::File::create(policy)
            .and_then(|mut f| f.write_all(b"#!/bin/sh\nexit 101\n"))
            .is_ok();
    if made_policy {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755));
    }
    let run = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
    };
    let update = run(&["update", "-q"]);
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(pkgs.iter().copied());
    let install = run(&args);
    if made_policy {
        let _ = std::fs::remove_file(policy);
    }
    match (update, install) {
        (_, Ok(s)) if s.success() && missing(needs).is_empty() => Ok(()),
        (_, Ok(s)) => Err(format!(
            "installing {list} failed ({s}); install with `apt-get install {list}`"
        )),
        (_, Err(e)) => Err(format!(
            "cannot run apt-get ({e}); install with `apt-get install {list}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_on_path_is_not_missing_and_an_absent_one_is() {
        let sh = Need {
            binary: "sh",
            aliases: &[],
            package: "dash",
        };
        let nothing = Need {
            binary: "no-such-binary-fivehundred",
            aliases: &["sh"],
            package: "x",
        };
        let absent = Need {
            binary: "no-such-binary-fivehundred",
            aliases: &[],
            package: "no-such-package",
        };
        assert!(
            missing(&[sh, nothing]).is_empty(),
            "found directly or by alias"
        );
        assert_eq!(missing(&[absent]), vec!["no-such-package"]);
    }
}

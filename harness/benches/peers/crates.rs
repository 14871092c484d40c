//! The peers from crates.io (oha, fault): found on PATH or in the bench's cache directory, or
//! installed there with `cargo install --locked` when missing. A peer that cannot be installed
//! (no network, a compile error) comes back as one line for its rows' "not measured" note.
//!
//! The cache is `$XDG_CACHE_HOME/fivehundred/bench` (else `~/.cache/fivehundred/bench`), not
//! cargo's own bin directory: the bench does not put programs on the user's PATH, and a
//! `cargo clean` of the project does not throw away a build of several minutes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// A program the bench installs from crates.io.
#[derive(Debug, Clone, Copy)]
pub struct Crate {
    /// The crate's name on crates.io.
    pub name: &'static str,
    /// The binary it installs.
    pub binary: &'static str,
}

pub const OHA: Crate = Crate {
    name: "oha",
    binary: "oha",
};

pub const FAULT: Crate = Crate {
    name: "fault-cli",
    binary: "fault",
};

/// Where the bench installs crates: `<cache>/bin/<binary>`, and each install's log.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("fivehundred").join("bench"))
}

/// The binary: on PATH, in the cache, or installed into the cache now (one progress line; cargo's
/// own output goes to a log file next to it). The answer is kept for the rest of the run, so a
/// failed install is tried once, not once per row.
pub fn ensure(c: Crate) -> Result<PathBuf, String> {
    static FOUND: Mutex<BTreeMap<&'static str, Result<PathBuf, String>>> =
        Mutex::new(BTreeMap::new());
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    found
        .entry(c.name)
        .or_insert_with(|| find_or_install(c))
        .clone()
}

fn find_or_install(c: Crate) -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(c.binary))
            .find(|f| f.is_file())
    });
    if let Some(found) = on_path {
        return Ok(found);
    }
    let root = cache_dir().ok_or("no cache directory (neither XDG_CACHE_HOME nor HOME is set)")?;
    let bin = root.join("bin").join(c.binary);
    if bin.is_file() {
        return Ok(bin);
    }
    if std::env::var_os("FIVEHUNDRED_NO_INSTALL").is_some() {
        return Err(format!(
            "{} is not installed and FIVEHUNDRED_NO_INSTALL is set; install with `cargo install --locked {}`",
            c.binary, c.name
        ));
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let log_path = root.join(format!("install-{}.log", c.name));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    eprintln!(
        "bench: {} is missing; `cargo install --locked {}` into {} (several minutes, once)…",
        c.binary,
        c.name,
        root.display()
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["install", "--locked", "--root"])
        .arg(&root)
        .arg(c.name)
        // The bench's own target directory is not the place for another project's build.
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() && bin.is_file() {
        return Ok(bin);
    }
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    Err(format!(
        "`cargo install --locked {}` failed ({}; {})",
        c.name,
        first_error(&text).unwrap_or_else(|| status.to_string()),
        log_path.display()
    ))
}

/// The first line of cargo's output that says what went wrong, for a one-line note.
fn first_error(log: &str) -> Option<String> {
    let mut lines = log.lines().map(str::trim);
    let first = lines.find(|l| l.starts_with("error"))?;
    // `error: failed to ...` is often followed by `Caused by:` and the reason on the next line.
    let cause = log
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "Caused by:")
        .nth(1)
        .filter(|c| !c.is_empty());
    Some(match cause {
        Some(c) => format!("{first}: {c}"),
        None => first.to_string(),
    })
}

/// Runs `bin --version`, for the rows' notes (`oha 1.9.0`).
pub fn version(bin: &Path) -> Option<String> {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_install_is_told_in_one_line_with_its_cause() {
        let log = "    Updating crates.io index\n\
                   error: failed to compile `oha v1.9.0`, intermediate artifacts can be found at `/tmp/x`.\n\n\
                   Caused by:\n  could not download file from 'https://static.crates.io/...'\n";
        let e = super::first_error(log).unwrap();
        assert!(
            e.starts_with("error: failed to compile `oha v1.9.0`"),
            "{e}"
        );
        assert!(e.ends_with("could not download file from 'https://static.crates.io/...'"));
        assert!(!e.contains('\n'));
        assert_eq!(super::first_error("   Compiling oha\n"), None);
    }
}

//! Where fivehundred keeps what outlives one command: the fault journals `recover` reads, the
//! game day's `lab.json`. Everything a run makes in a Docker engine is labelled with it too, so
//! that two runs with different state directories (two CI jobs on one engine) tell theirs apart.

use std::path::PathBuf;

/// `$FIVEHUNDRED_STATE_DIR`, else `$XDG_STATE_HOME/fivehundred`, else
/// `~/.local/state/fivehundred`.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("FIVEHUNDRED_STATE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("fivehundred");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/fivehundred"),
        None => std::env::temp_dir().join("fivehundred-state"),
    }
}

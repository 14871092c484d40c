//! The terminal the results go to: whether a stream gets colour, and how wide the terminal is.
//! Kept apart so the summary, `explain` and the progress display decide it the same way.

use std::io::IsTerminal;

/// Colour on a stream: only when it is a terminal and `NO_COLOR` (no-color.org) is not set.
pub fn colour(stream: &impl IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The terminal's width in columns: `COLUMNS` when set, else what `stty` reports for the
/// controlling terminal, else 100. Asking `stty` avoids an ioctl (unsafe code, which the
/// workspace denies) and a new dependency for one number.
pub fn terminal_width() -> usize {
    if let Some(c) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return c;
    }
    std::fs::File::open("/dev/tty")
        .ok()
        .and_then(|tty| {
            std::process::Command::new("stty")
                .arg("size")
                .stdin(tty)
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
        })
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
        })
        .filter(|c: &usize| *c > 0)
        .unwrap_or(100)
}

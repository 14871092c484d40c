//! Text helpers of the page: HTML escaping (everything from the recording is untrusted), cutting
//! long bodies and labels, and formatting times and numbers.

/// Longest body or log line shown before it is cut (report.json has the whole of it).
const MAX_TEXT: usize = 4096;

/// Escapes text for HTML content and attribute values. Control characters other than newline
/// and tab become U+FFFD: they are not allowed in HTML and a hostile body may carry them.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters, with an ellipsis when cut (for labels inside the drawing).
pub(super) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else if max <= 1 {
        String::new()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

/// Cuts long text at a character boundary, saying how much was left out.
pub(super) fn cut(s: &str) -> String {
    if s.len() <= MAX_TEXT {
        return s.to_string();
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… ({} more bytes in report.json)",
        &s[..end],
        s.len() - end
    )
}

pub(super) fn secs(ms: f64) -> String {
    format!("{:.1}s", ms / 1000.0)
}

pub(super) fn ms_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{}s", num(ms / 1000.0))
    } else {
        format!("{}ms", num(ms))
    }
}

/// A number without a needless fraction: `3`, `2.5`, `0.25`.
pub(super) fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

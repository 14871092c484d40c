//! Errors located in a file the user wrote (file:line:column, the offending line, a hint), and
//! the helpers that turn a byte span of a TOML text into such a location. Scenario files and lab
//! files both report through these; this module imports nothing of the harness, so either may use
//! it without depending on the other.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A file that could not be read or is invalid, located in its source.
#[derive(Debug, Clone, thiserror::Error)]
pub struct Located {
    pub file: PathBuf,
    /// 1-based line and column, when the problem is at a place in the file.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
    /// The offending source line, shown under the message.
    pub source_line: Option<String>,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, ":{l}:{c}")?;
        }
        write!(f, ": {}", self.message)?;
        if let (Some(src), Some(l), Some(c)) = (&self.source_line, self.line, self.column) {
            let gutter = l.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{l} | {src}\n{:gutter$} | {:>c$}",
                "", "", "^"
            )?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Collects the location of spans in one source text.
#[derive(Debug)]
pub struct Source<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn error(
        &self,
        span: Option<Range<usize>>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Located {
        let (line, column, source_line) = match span {
            Some(span) => {
                let start = span.start.min(self.text.len());
                let before = &self.text[..start];
                let line = before.matches('\n').count() + 1;
                let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
                let column = self.text[line_start..start].chars().count() + 1;
                let line_text = self.text[line_start..]
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                (Some(line), Some(column), Some(line_text))
            }
            None => (None, None, None),
        };
        Located {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
            hint,
            source_line,
        }
    }

    /// The span of `key = ...` inside the table that starts at `table_start` (a `[[fault]]`
    /// header or an inline table), for errors reported by a fault's own deserializer, which sees
    /// a plain table without positions.
    pub fn key_span(&self, table_start: usize, key: &str) -> Option<Range<usize>> {
        // An empty key is found everywhere and would never move the search on.
        if key.is_empty() {
            return None;
        }
        let rest = self.text.get(table_start..)?;
        let mut offset = table_start;
        for (i, line) in rest.split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if i > 0 && trimmed.starts_with('[') {
                break;
            }
            let mut search = 0;
            while let Some(pos) = line[search..].find(key) {
                let at = search + pos;
                let after = line[at + key.len()..].trim_start();
                let before_ok = at == 0
                    || !line[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-');
                if before_ok && after.starts_with('=') {
                    return Some(offset + at..offset + at + key.len());
                }
                search = at + key.len();
            }
            offset += line.len();
        }
        None
    }
}

impl Located {
    /// A file refused before it was read (too large, not a regular file, not UTF-8).
    pub fn refused(file: &Path, error: &crate::textfile::ReadError) -> Located {
        Located {
            file: file.to_path_buf(),
            line: None,
            column: None,
            message: error.to_string(),
            hint: None,
            source_line: None,
        }
    }

    /// A file that could not be read at all: no line, no column.
    pub fn unreadable(file: &Path, error: &std::io::Error) -> Located {
        Located {
            file: file.to_path_buf(),
            line: None,
            column: None,
            message: format!("cannot read the file: {error}"),
            hint: None,
            source_line: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_becomes_a_one_based_line_and_column_with_a_caret_under_it() {
        let text = "a = 1\nbb = \"x\"\n";
        let src = Source {
            file: Path::new("f.toml"),
            text,
        };
        let at = text.find("\"x\"").unwrap();
        let e = src.error(Some(at..at + 3), "bad", Some("fix it".into()));
        assert_eq!((e.line, e.column), (Some(2), Some(6)));
        let shown = e.to_string();
        assert!(shown.starts_with("f.toml:2:6: bad"), "{shown}");
        assert!(shown.contains("2 | bb = \"x\""), "{shown}");
        assert!(shown.contains("hint: fix it"), "{shown}");
    }

    #[test]
    fn key_span_finds_a_key_inside_its_table_only() {
        let text = "[a]\nkind = 1\n[b]\nkind = 2\n";
        let src = Source {
            file: Path::new("f.toml"),
            text,
        };
        let b = text.find("[b]").unwrap();
        let span = src.key_span(b, "kind").unwrap();
        assert_eq!(&text[span.clone()], "kind");
        assert!(span.start > b);
        assert_eq!(src.key_span(text.find("[a]").unwrap(), "missing"), None);
    }
}

/// A table refused at one of its keys, before any file position is known: the proxy's fault
/// tables and the HTTP stub's behaviour tables report through it, and a caller that reads
/// them from a file of its own (a scenario) turns the key into a location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct KeyError {
    /// The key at fault; `kind` for a parameter the kind needs and the table lacks.
    pub key: &'static str,
    pub message: String,
}

impl KeyError {
    pub fn new(key: &'static str, message: impl Into<String>) -> KeyError {
        KeyError {
            key,
            message: message.into(),
        }
    }

    /// `(key, message)`, with `kind` renamed to the key the caller's file names the kind under
    /// (`fault` in a scenario's `network` fault, `behaviour` in its `dependency` fault).
    pub fn located(self, kind_key: &'static str) -> (&'static str, String) {
        let key = if self.key == "kind" {
            kind_key
        } else {
            self.key
        };
        (key, self.message)
    }
}

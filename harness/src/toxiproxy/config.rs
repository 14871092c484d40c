//! The config file of `fivehundred proxy -config FILE`: Toxiproxy's (a JSON list of proxies,
//! `name, listen, upstream, enabled`), where each proxy may also list `toxics`, active from the
//! start, in the shape the API takes them. Errors point at the file, line and column of the
//! proxy or toxic at fault.

use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_json::value::RawValue;

use super::{ProxyInput, model::ToxicSpec, proxy_input};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// Reads and checks a config file; nothing is started.
pub fn load(path: &Path) -> Result<Vec<ProxyInput>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|(offset, message)| {
        let (line, column) = line_column(&text, offset);
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    })
}

/// The proxies in `text`, or the byte offset of what is wrong and why.
fn parse(text: &str) -> Result<Vec<ProxyInput>, (usize, String)> {
    let located = |e: serde_json::Error| {
        (
            offset_of_line_column(text, e.line(), e.column()),
            e.to_string(),
        )
    };
    let proxies: Vec<&RawValue> = serde_json::from_str(text).map_err(located)?;
    let mut out: Vec<ProxyInput> = Vec::new();
    for raw in proxies {
        let at = offset_in(text, raw.get());
        let value: Value = serde_json::from_str(raw.get()).map_err(located)?;
        // Toxics are read one by one first, so that a bad one is pointed at.
        if let Some(Value::Array(_)) = value.get("toxics") {
            #[derive(serde::Deserialize)]
            struct WithToxics<'a> {
                #[serde(borrow)]
                toxics: Vec<&'a RawValue>,
            }
            let with: WithToxics = serde_json::from_str(raw.get()).map_err(located)?;
            for toxic in with.toxics {
                let toxic_value: Value = serde_json::from_str(toxic.get()).map_err(located)?;
                ToxicSpec::from_json(&toxic_value)
                    .map_err(|e| (offset_in(text, toxic.get()), e.message))?;
            }
        }
        let input = proxy_input(&value).map_err(|e| (at, e.message))?;
        if out.iter().any(|p| p.name == input.name) {
            return Err((at, format!("a second proxy is named {}", input.name)));
        }
        out.push(input);
    }
    Ok(out)
}

/// Where `part` (a slice of `text`) starts in `text`.
fn offset_in(text: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(text.as_ptr() as usize)
}

fn offset_of_line_column(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + column.saturating_sub(1)).min(text.len())
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toxic_of_an_unknown_type_is_pointed_at_by_line_and_column() {
        let text = "[\n  {\"name\": \"db\", \"upstream\": \"127.0.0.1:5432\",\n   \"toxics\": [\n     {\"type\": \"lag\"}]}\n]\n";
        let (offset, message) = parse(text).unwrap_err();
        assert_eq!(line_column(text, offset), (4, 6));
        assert!(message.contains("invalid toxic type"), "{message}");
    }

    #[test]
    fn a_syntax_error_is_pointed_at_where_the_parser_stopped() {
        let text = "[\n  {\"name\": \"db\",, }\n]";
        let (offset, _) = parse(text).unwrap_err();
        assert_eq!(line_column(text, offset).0, 2);
    }

    #[test]
    fn proxies_and_their_toxics_are_read_in_order() {
        let text = r#"[{"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1",
            "toxics": [{"type": "latency", "attributes": {"latency": 10}}]},
            {"name": "b", "upstream": "127.0.0.1:2", "enabled": false}]"#;
        let proxies = parse(text).unwrap();
        assert_eq!(proxies.len(), 2);
        assert_eq!(proxies[0].toxics[0].name, "latency_downstream");
        assert!(!proxies[1].enabled);
    }
}

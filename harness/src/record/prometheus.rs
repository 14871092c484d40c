//! Prometheus text exposition: parsing a scrape into `series -> value`, and series selectors
//! (`name{label="value"}`) that pick and sum series out of a sample.

use std::collections::BTreeMap;

/// Parses Prometheus text exposition into `series -> value`. Comments and malformed lines are
/// skipped; a series key is the metric name followed by its labels sorted by name.
pub fn parse_prometheus_text(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, rest) = match line.find('{') {
            Some(open) => match line[open..].find('}') {
                Some(close) => {
                    let close = open + close;
                    let name = &line[..open];
                    let mut labels: Vec<&str> = split_labels(&line[open + 1..close]);
                    labels.sort_unstable();
                    (
                        format!("{name}{{{}}}", labels.join(",")),
                        &line[close + 1..],
                    )
                }
                None => continue,
            },
            None => match line.split_once(' ') {
                Some((name, rest)) => (name.to_string(), rest),
                None => continue,
            },
        };
        let value = rest.split_whitespace().next().and_then(|v| match v {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            v => v.parse::<f64>().ok(),
        });
        if let Some(v) = value {
            out.insert(series, v);
        }
    }
    out
}

/// Splits `a="x",b="y,z"` at the commas between labels (not those inside quoted values).
fn split_labels(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut in_quotes, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                if i > start {
                    parts.push(s[start..i].trim());
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() && !s[start..].trim().is_empty() {
        parts.push(s[start..].trim());
    }
    parts
}

/// A series selector: a metric name and label equalities that must all hold.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSelector {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

/// Parses `name` or `name{a="b",c="d"}`.
pub fn parse_series_selector(s: &str) -> Option<SeriesSelector> {
    let s = s.trim();
    let (name, labels) = match s.split_once('{') {
        Some((n, rest)) => (n, rest.strip_suffix('}')?),
        None => (s, ""),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return None;
    }
    let mut out = Vec::new();
    for part in labels.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=')?;
        let v = v.trim().strip_prefix('"')?.strip_suffix('"')?;
        out.push((k.trim().to_string(), v.to_string()));
    }
    Some(SeriesSelector {
        name: name.to_string(),
        labels: out,
    })
}

impl SeriesSelector {
    /// Whether a series key from [`crate::record::parse_prometheus_text`] matches.
    pub fn matches(&self, key: &str) -> bool {
        let (name, labels) = match key.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (key, ""),
        };
        name == self.name
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
    }

    /// The sum of every matching series in a sample.
    pub fn sum(&self, values: &BTreeMap<String, f64>) -> f64 {
        values
            .iter()
            .filter(|(k, _)| self.matches(k))
            .map(|(_, v)| *v)
            .sum()
    }
}

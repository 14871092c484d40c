//! Lab timing derived from production alert rules: every duration in a rules file (range
//! selectors, subquery steps, offsets, `for`, `keep_firing_for`) divided by one factor, so the lab
//! runs the production logic on a compressed clock instead of a hand-kept copy of it.
//!
//! This is a careful text transform, not a YAML round trip. A YAML library would drop the file's
//! comments and formatting (the lab file is read by learners next to the production one) and its
//! parse would only tell us where `expr` is, which indentation tells us just as well. The
//! transform refuses what it cannot scale safely (quoted `expr` values, functions that take a
//! time as a plain number) instead of guessing, and `promtool` checks its output in the tests.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

/// Why a rules (or rule-test) file could not be scaled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScaleError {
    /// 1-based line of the file where the problem is.
    pub line: usize,
    pub message: String,
}

/// Keys whose value is taken whole, even when it starts on the line after the key: PromQL, a
/// duration, or (`rule_files`) a list that the test scaler replaces.
const SCALAR_KEYS: &[&str] = &[
    "rule_files",
    "expr",
    "for",
    "keep_firing_for",
    "interval",
    "eval_time",
    "evaluation_interval",
];

/// Production rules → lab rules: every range selector, subquery range and step, offset, `for`,
/// `keep_firing_for` and group `interval` divided by `factor`.
///
/// Ranges never go below `floor`: `rate()` needs at least two samples in its window, so a window
/// shorter than a few scrape intervals would read as "no data" rather than as a faster clock.
/// Only ranges get a floor; a short `for` is merely strict.
///
/// Thresholds are left alone, so rules must compare counts over a window or ratios, never
/// per-second rates (see `target-app/alerts/rules.yml`).
pub fn scale_rules(yaml: &str, factor: f64, floor: Duration) -> Result<String, ScaleError> {
    check_factor(factor)?;
    let mut edits = Vec::new();
    for e in &entries(yaml, SCALAR_KEYS)? {
        match (e.key.as_str(), e.parent.as_deref()) {
            ("expr", Some("rules")) => edits.extend(scale_promql(yaml, e, factor, floor)?),
            ("for" | "keep_firing_for", Some("rules")) | ("interval", Some("groups")) => {
                edits.push(scale_field(yaml, e, factor)?)
            }
            _ => {}
        }
    }
    Ok(apply(yaml, edits))
}

/// A `promtool test rules` file → the same tests on the lab's clock: `interval`, `eval_time` and
/// `evaluation_interval` divided by `factor` (ranges in `promql_expr_test` expressions as in
/// [`scale_rules`]), and `rule_files` pointing at `rule_files`.
///
/// Sample values are left alone: with the interval between samples divided by the factor, a
/// count per window and a ratio stay what they were, which is the point. promtool's defaults for
/// `evaluation_interval` and a group's `interval` (one minute) cannot be scaled, so both must be
/// written out.
pub fn scale_rule_tests(
    yaml: &str,
    factor: f64,
    floor: Duration,
    rule_files: &[&Path],
) -> Result<String, ScaleError> {
    check_factor(factor)?;
    let entries = entries(yaml, SCALAR_KEYS)?;
    require_explicit_intervals(yaml, &entries)?;
    let mut edits = Vec::new();
    for e in &entries {
        match (e.key.as_str(), e.parent.as_deref()) {
            ("rule_files", None) => {
                let mut list = String::new();
                for path in rule_files {
                    let quoted = path.display().to_string().replace('\'', "''");
                    list.push_str(&format!("\n  - '{quoted}'"));
                }
                edits.push((e.value.clone(), list));
            }
            ("expr", Some("promql_expr_test")) => {
                edits.extend(scale_promql(yaml, e, factor, floor)?)
            }
            ("evaluation_interval", None)
            | ("interval", Some("tests"))
            | ("eval_time", Some("alert_rule_test" | "promql_expr_test")) => {
                edits.push(scale_field(yaml, e, factor)?)
            }
            _ => {}
        }
    }
    Ok(apply(yaml, edits))
}

/// The timing of one alerting rule, read from a rules file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleTiming {
    pub alert: String,
    /// How long the condition must hold before the alert fires.
    #[serde(with = "humantime_serde_ms")]
    pub for_duration: Duration,
    /// The distinct range windows in the expression, shortest first.
    #[serde(with = "humantime_serde_ms_vec")]
    pub ranges: Vec<Duration>,
}

impl RuleTiming {
    /// About how long after a clear, sustained fault starts this alert fires: the shortest window
    /// has to fill with the fault (roughly; a window needs only part of it to cross most
    /// thresholds), then the condition must hold for `for`. An estimate for reports, not a bound.
    pub fn detection_time(&self) -> Duration {
        self.for_duration + self.ranges.first().copied().unwrap_or_default()
    }
}

/// The timing of every alerting rule in a rules file, in file order. An alert defined by several
/// rules appears once per rule.
pub fn rule_timings(yaml: &str) -> Result<Vec<RuleTiming>, ScaleError> {
    let mut out: Vec<(Option<usize>, RuleTiming)> = Vec::new();
    for e in entries(yaml, SCALAR_KEYS)? {
        if e.parent.as_deref() != Some("rules") {
            continue;
        }
        if out.last().is_none_or(|(item, _)| *item != e.item) {
            out.push((
                e.item,
                RuleTiming {
                    alert: String::new(),
                    for_duration: Duration::ZERO,
                    ranges: Vec::new(),
                },
            ));
        }
        let Some((_, t)) = out.last_mut() else {
            continue;
        };
        match e.key.as_str() {
            "alert" => t.alert = unquote(strip_comment(&yaml[e.value.clone()]).trim()).to_string(),
            "for" => t.for_duration = field_duration(yaml, &e)?.1,
            "expr" => {
                for site in promql_durations(yaml, &e)? {
                    if site.kind == SiteKind::Range {
                        t.ranges.push(site.duration);
                    }
                }
                t.ranges.sort();
                t.ranges.dedup();
            }
            _ => {}
        }
    }
    // Recording rules have no alert name and no detection time.
    Ok(out
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| !t.alert.is_empty())
        .collect())
}

/// Parses a Prometheus duration: `1h30m`, `5m`, `250ms`, `0`. Units `ms s m h d w y`, largest
/// first, each at most once (a year is 365 days, as in Prometheus).
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = text;
    let mut next_unit = 0;
    let mut total: u64 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = if rest.starts_with("ms") {
            "ms"
        } else {
            rest.get(..1)?
        };
        let index = UNITS[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        total = total.checked_add(n.checked_mul(UNITS[index].1)?)?;
        rest = &rest[unit.len()..];
        next_unit = index + 1;
    }
    Some(Duration::from_millis(total))
}

/// Formats a duration the way Prometheus reads it, in the largest unit that divides it exactly:
/// `2m`, `10s`, `1500ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// `d / factor`, in whole milliseconds, never rounding a non-zero duration down to zero.
pub fn scale_duration(d: Duration, factor: f64) -> Duration {
    if d.is_zero() {
        return d;
    }
    let ms = (d.as_secs_f64() * 1000.0 / factor).round().max(1.0);
    Duration::from_millis(ms as u64)
}

fn check_factor(factor: f64) -> Result<(), ScaleError> {
    if factor.is_finite() && factor > 0.0 {
        Ok(())
    } else {
        Err(ScaleError {
            line: 0,
            message: format!("the time factor must be a positive number, not {factor}"),
        })
    }
}

/// One `key: value` of the file's block structure.
#[derive(Debug)]
struct Entry {
    key: String,
    /// The key of the mapping or sequence this entry is nested in (`rules` for a rule's `expr`),
    /// `None` at the top level. Lets `for:` in a rule be told from a label named `for`.
    parent: Option<String>,
    /// Which sequence item this entry belongs to (numbered in file order), if any: the keys of
    /// one rule share it.
    item: Option<usize>,
    /// The value: from just after `key:` to the end of its last line.
    value: Range<usize>,
}

/// Walks the YAML block structure by indentation and returns every `key: value` in it.
///
/// A key with a value on its own line (`description: >-`, `summary: text`) owns every following
/// line indented deeper than the key (a block scalar or a continued plain scalar), and those lines
/// are not searched for keys: an annotation that happens to contain `expr: ` is text. A key with
/// nothing after it opens a nested mapping or sequence, whose lines are searched, except for
/// `scalar_keys`: their value is a scalar even when it starts on the next line.
fn entries(yaml: &str, scalar_keys: &[&str]) -> Result<Vec<Entry>, ScaleError> {
    let lines = line_spans(yaml);
    let mut out = Vec::new();
    // Keys that opened a nested block, innermost last, with their columns.
    let mut parents: Vec<(usize, String)> = Vec::new();
    // The current sequence item at each key column.
    let mut items: Vec<(usize, usize)> = Vec::new();
    let mut next_item = 0;
    let mut i = 0;
    while i < lines.len() {
        let span = lines[i].clone();
        let line = &yaml[span.clone()];
        let indent = line.len() - line.trim_start_matches(' ').len();
        let body = &line[indent..];
        i += 1;
        if body.is_empty() || body.starts_with('#') || body == "---" || body == "..." {
            continue;
        }
        if body.starts_with('\t') {
            return Err(ScaleError {
                line: i,
                message: "tab in indentation; YAML indents with spaces".into(),
            });
        }
        // Skip sequence markers: `- key:`, even `- - key:`.
        let mut column = indent;
        let mut item = false;
        while let Some(rest) = line[column..].strip_prefix('-') {
            if !(rest.is_empty() || rest.starts_with(' ')) {
                break;
            }
            item = true;
            column += 1 + (rest.len() - rest.trim_start_matches(' ').len());
        }
        let after = &line[column..];
        let key_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let is_key = key_len > 0
            && after[key_len..].starts_with(':')
            && matches!(after.as_bytes().get(key_len + 1), None | Some(b' '));
        if !is_key {
            // A scalar sequence item (`- rules.yml`) or flow content: nothing to look into.
            continue;
        }
        let key = &after[..key_len];
        let value_start = span.start + column + key_len + 1;
        let inline = strip_comment(&after[key_len + 1..]).trim();
        let scalar = scalar_keys.contains(&key);
        while parents.last().is_some_and(|(c, _)| *c >= column) {
            parents.pop();
        }
        items.retain(|(c, _)| *c < column || (*c == column && !item));
        if item {
            items.push((column, next_item));
            next_item += 1;
        }
        let mut value_end = span.end;
        if !inline.is_empty() || scalar {
            // The value runs on over every deeper line (blank lines included, kept only if more
            // value follows them).
            let mut j = i;
            while j < lines.len() {
                let l = &yaml[lines[j].clone()];
                let ind = l.len() - l.trim_start_matches(' ').len();
                if l.trim().is_empty() {
                    j += 1;
                    continue;
                }
                // A sequence may sit at its parent key's own column: `rule_files:\n- a.yml`.
                let same_column_item =
                    inline.is_empty() && ind == column && l[ind..].starts_with("- ");
                if ind <= column && !same_column_item {
                    break;
                }
                value_end = lines[j].end;
                j += 1;
                i = j;
            }
        }
        out.push(Entry {
            key: key.to_string(),
            parent: parents.last().map(|(_, k)| k.clone()),
            item: items
                .last()
                .filter(|(c, _)| *c == column)
                .map(|(_, id)| *id),
            value: value_start..value_end,
        });
        if inline.is_empty() && !scalar {
            parents.push((column, key.to_string()));
        }
    }
    Ok(out)
}

/// Byte ranges of each line, without the line break.
fn line_spans(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            let end = if i > start && text.as_bytes()[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            out.push(start..end);
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push(start..text.len());
    }
    out
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].bytes().filter(|b| *b == b'\n').count() + 1
}

/// The part of a one-line YAML value before a ` #` comment.
fn strip_comment(s: &str) -> &str {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if i == 0 || s[..i].ends_with([' ', '\t']) => return &s[..i],
            _ => {}
        }
    }
    s
}

fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    s
}

/// The duration of a one-duration field, and where its text is.
fn field_duration(yaml: &str, e: &Entry) -> Result<(Range<usize>, Duration), ScaleError> {
    let text = &yaml[e.value.clone()];
    let line = line_of(yaml, e.value.start);
    let err = |message: String| ScaleError { line, message };
    if text.contains('\n') {
        return Err(err(format!("`{}` must be one duration on its line", e.key)));
    }
    let value = strip_comment(text);
    let trimmed = value.trim();
    let bare = unquote(trimmed);
    let d = parse_duration(bare).ok_or_else(|| {
        err(format!(
            "`{}: {trimmed}` is not a Prometheus duration (like 5m, 1h30m, 500ms)",
            e.key
        ))
    })?;
    let lead = value.len() - value.trim_start().len();
    let quote = (trimmed.len() - bare.len()) / 2;
    let start = e.value.start + lead + quote;
    Ok((start..start + bare.len(), d))
}

fn scale_field(yaml: &str, e: &Entry, factor: f64) -> Result<(Range<usize>, String), ScaleError> {
    let (range, d) = field_duration(yaml, e)?;
    Ok((range, format_duration(scale_duration(d, factor))))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SiteKind {
    /// `[5m]`, or the range of a subquery `[1h:1m]`.
    Range,
    /// The step of a subquery.
    Step,
    Offset,
}

#[derive(Debug)]
struct Site {
    kind: SiteKind,
    span: Range<usize>,
    duration: Duration,
}

/// Functions whose arguments include a time written as a plain number of seconds, which the
/// scaler cannot see. Rejected rather than silently left on the production clock.
const TIME_AS_NUMBER: &[(&str, &str)] = &[
    (
        "predict_linear",
        "its second argument is a number of seconds",
    ),
    ("time", "it returns seconds, compared with plain numbers"),
    (
        "timestamp",
        "it returns seconds, compared with plain numbers",
    ),
];

/// Every duration in the PromQL value of `e`, with its place in the whole text.
///
/// PromQL writes durations in three places only: inside `[...]` (range, subquery range and step)
/// and after `offset`. String literals and comments are skipped, so a regex matcher such as
/// `status=~"5[0-9]{2}"` is not mistaken for a range.
fn promql_durations(yaml: &str, e: &Entry) -> Result<Vec<Site>, ScaleError> {
    let text = &yaml[e.value.clone()];
    let base = e.value.start;
    let err = |at: usize, message: String| ScaleError {
        line: line_of(yaml, base + at),
        message,
    };
    let head = text.trim_start();
    if head.starts_with(['"', '\'']) {
        return Err(err(
            text.len() - head.len(),
            "a quoted `expr` cannot be scaled safely; write it as a plain or block scalar (`expr: |`)"
                .into(),
        ));
    }
    if head.starts_with(['&', '*', '!']) {
        return Err(err(
            text.len() - head.len(),
            "anchors, aliases and tags are not supported on `expr`".into(),
        ));
    }
    let bytes = text.as_bytes();
    let mut sites = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    // Backslash escapes exist in "..." and '...' strings, not in raw `...`.
                    i += if bytes[i] == b'\\' && q != b'`' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'[' => {
                let close = text[i..]
                    .find(']')
                    .map(|j| i + j)
                    .ok_or_else(|| err(i, "`[` without a closing `]`".into()))?;
                let inner = &text[i + 1..close];
                let mut part_start = i + 1;
                for (n, part) in inner.split(':').enumerate() {
                    let kind = match n {
                        0 => SiteKind::Range,
                        1 => SiteKind::Step,
                        _ => return Err(err(i, format!("cannot read `[{inner}]`"))),
                    };
                    let trimmed = part.trim();
                    if !trimmed.is_empty() || kind == SiteKind::Range {
                        let duration = parse_duration(trimmed).ok_or_else(|| {
                            err(i, format!("`[{inner}]`: `{trimmed}` is not a duration"))
                        })?;
                        let start = base + part_start + (part.len() - part.trim_start().len());
                        sites.push(Site {
                            kind,
                            span: start..start + trimmed.len(),
                            duration,
                        });
                    }
                    part_start += part.len() + 1;
                }
                i = close + 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
                {
                    i += 1;
                }
                let word = &text[start..i];
                let rest = &text[i..];
                let after_space = rest.trim_start_matches([' ', '\t', '\n']);
                if let Some((_, why)) = TIME_AS_NUMBER
                    .iter()
                    .find(|(f, _)| *f == word && after_space.starts_with('('))
                {
                    return Err(err(
                        start,
                        format!("`{word}()` cannot be scaled to lab time: {why}"),
                    ));
                }
                if word.eq_ignore_ascii_case("offset") && after_space.len() < rest.len() {
                    let at = i + (rest.len() - after_space.len());
                    let sign = usize::from(after_space.starts_with('-'));
                    let token: &str = after_space[sign..]
                        .split(|c: char| !c.is_ascii_alphanumeric())
                        .next()
                        .unwrap_or("");
                    // `by (offset)` names a label; an offset modifier has a duration after it.
                    if token.starts_with(|c: char| c.is_ascii_digit()) {
                        let duration = parse_duration(token)
                            .ok_or_else(|| err(at, format!("`offset {token}`: not a duration")))?;
                        let s = base + at + sign;
                        sites.push(Site {
                            kind: SiteKind::Offset,
                            span: s..s + token.len(),
                            duration,
                        });
                        i = at + sign + token.len();
                    }
                }
            }
            _ => i += 1,
        }
    }
    Ok(sites)
}

fn scale_promql(
    yaml: &str,
    e: &Entry,
    factor: f64,
    floor: Duration,
) -> Result<Vec<(Range<usize>, String)>, ScaleError> {
    Ok(promql_durations(yaml, e)?
        .into_iter()
        .map(|site| {
            let mut d = scale_duration(site.duration, factor);
            if site.kind == SiteKind::Range {
                d = d.max(floor);
            }
            (site.span, format_duration(d))
        })
        .collect())
}

/// promtool runs unstated intervals at one minute, which no factor would scale: insist they are
/// written out.
fn require_explicit_intervals(yaml: &str, entries: &[Entry]) -> Result<(), ScaleError> {
    if !entries
        .iter()
        .any(|e| e.parent.is_none() && e.key == "evaluation_interval")
    {
        return Err(ScaleError {
            line: 1,
            message: "state `evaluation_interval` explicitly: its default cannot be scaled".into(),
        });
    }
    // Test groups are the items under `tests`.
    let mut groups: Vec<(Option<usize>, usize, bool)> = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.parent.as_deref() == Some("tests"))
    {
        if groups.last().is_none_or(|(item, _, _)| *item != e.item) {
            groups.push((e.item, e.value.start, false));
        }
        if e.key == "interval"
            && let Some(g) = groups.last_mut()
        {
            g.2 = true;
        }
    }
    match groups.iter().find(|(_, _, has_interval)| !has_interval) {
        Some((_, at, _)) => Err(missing_interval(yaml, *at)),
        None => Ok(()),
    }
}

fn missing_interval(yaml: &str, at: usize) -> ScaleError {
    ScaleError {
        line: line_of(yaml, at),
        message: "this test group has no `interval`: its default cannot be scaled".into(),
    }
}

/// Applies non-overlapping edits.
fn apply(text: &str, mut edits: Vec<(Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, replacement) in edits {
        out.push_str(&text[at..range.start]);
        out.push_str(&replacement);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// Durations in reports as Prometheus writes them (`2m`), not as a struct of seconds and nanos.
mod humantime_serde_ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        super::parse_duration(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not a duration: {text}")))
    }
}

mod humantime_serde_ms_vec {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|d| super::format_duration(*d)))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let texts: Vec<String> = serde::Deserialize::deserialize(d)?;
        texts
            .iter()
            .map(|t| {
                super::parse_duration(t)
                    .ok_or_else(|| serde::de::Error::custom(format!("not a duration: {t}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("5m"), Some(300 * S));
        assert_eq!(parse_duration("1h30m"), Some(5400 * S));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_duration("1m500ms"),
            Some(Duration::from_millis(60_500))
        );
        assert_eq!(parse_duration("1d"), Some(86_400 * S));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "5", "m", "5x", "30m1h", "5m5m", "1.5m", "-5m", " 5m"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_format_in_the_largest_exact_unit() {
        assert_eq!(format_duration(120 * S), "2m");
        assert_eq!(format_duration(10 * S), "10s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(7200 * S), "2h");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn ranges_offsets_and_for_are_divided_and_the_rest_is_untouched() {
        let prod = "\
# the error rate [5m] comment stays
groups:
  - name: g
    interval: 1m
    rules:
      - alert: A
        expr: |
          sum(rate(x{status=~\"5[0-9]{2}\"}[5m])) / sum(rate(x[1h] offset 10m)) > 0.1 # [2h]
          and max_over_time(y[30m:1m]) > 0
        for: 2m
        keep_firing_for: \"10m\" # why
        labels:
          severity: page
        annotations:
          description: >-
            over [5m], for: 2m
            expr: rate(z[5m])
      - expr: rate(w[5m])
        record: w:rate5m
";
        let lab = scale_rules(prod, 30.0, 4 * S).unwrap();
        let expected = "\
# the error rate [5m] comment stays
groups:
  - name: g
    interval: 2s
    rules:
      - alert: A
        expr: |
          sum(rate(x{status=~\"5[0-9]{2}\"}[10s])) / sum(rate(x[2m] offset 20s)) > 0.1 # [2h]
          and max_over_time(y[1m:2s]) > 0
        for: 4s
        keep_firing_for: \"20s\" # why
        labels:
          severity: page
        annotations:
          description: >-
            over [5m], for: 2m
            expr: rate(z[5m])
      - expr: rate(w[10s])
        record: w:rate5m
";
        assert_eq!(lab, expected);
    }

    #[test]
    fn short_ranges_stop_at_the_floor() {
        let prod = "rules:\n  - expr: rate(x[1m]) > 0\n    for: 1m\n";
        let lab = scale_rules(prod, 60.0, 4 * S).unwrap();
        assert_eq!(lab, "rules:\n  - expr: rate(x[4s]) > 0\n    for: 1s\n");
    }

    #[test]
    fn a_plain_expr_continued_on_the_next_lines_is_scaled_whole() {
        let prod =
            "rules:\n  - alert: A\n    expr: rate(x[5m])\n      > rate(y[10m])\n    for: 5m\n";
        let lab = scale_rules(prod, 10.0, S).unwrap();
        assert_eq!(
            lab,
            "rules:\n  - alert: A\n    expr: rate(x[30s])\n      > rate(y[1m])\n    for: 30s\n"
        );
    }

    #[test]
    fn what_cannot_be_scaled_safely_is_refused_with_its_line() {
        let quoted = "rules:\n  - alert: A\n    expr: \"rate(x{a=\\\"b\\\"}[5m]) > 0\"\n";
        let e = scale_rules(quoted, 30.0, S).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("quoted"), "{e}");

        let predict = "rules:\n- alert: A\n  expr: predict_linear(x[1h], 3600) < 0\n";
        let e = scale_rules(predict, 30.0, S).unwrap_err();
        assert!(e.message.contains("predict_linear"), "{e}");

        let time = "rules:\n- alert: A\n  expr: time() - x > 300\n";
        assert!(scale_rules(time, 30.0, S).is_err());

        let bad_for = "rules:\n- alert: A\n  expr: x\n  for: soon\n";
        let e = scale_rules(bad_for, 30.0, S).unwrap_err();
        assert_eq!(e.line, 4);

        assert!(scale_rules("x: 1\n", 0.0, S).is_err());
        assert!(scale_rules("x: 1\n", f64::NAN, S).is_err());
    }

    #[test]
    fn labels_named_like_keywords_are_not_durations() {
        let prod =
            "rules:\n  - expr: sum by (offset) (x_offset_total[5m]) and on(offset) time_total\n";
        let lab = scale_rules(prod, 5.0, S).unwrap();
        assert_eq!(
            lab,
            "rules:\n  - expr: sum by (offset) (x_offset_total[1m]) and on(offset) time_total\n"
        );
    }

    #[test]
    fn rule_tests_are_moved_to_the_lab_clock_and_pointed_at_the_lab_rules() {
        let prod = "\
rule_files:
  - rules.yml
evaluation_interval: 1m
tests:
  - name: t
    interval: 1m
    input_series:
      - series: 'x{a=\"b\"}'
        values: '0+10x10'
    alert_rule_test:
      - eval_time: 10m
        alertname: A
    promql_expr_test:
      - expr: rate(x[5m])
        eval_time: 5m
";
        let lab = scale_rule_tests(prod, 30.0, 4 * S, &[Path::new("/tmp/it's/lab.yml")]).unwrap();
        let expected = "\
rule_files:
  - '/tmp/it''s/lab.yml'
evaluation_interval: 2s
tests:
  - name: t
    interval: 2s
    input_series:
      - series: 'x{a=\"b\"}'
        values: '0+10x10'
    alert_rule_test:
      - eval_time: 20s
        alertname: A
    promql_expr_test:
      - expr: rate(x[10s])
        eval_time: 10s
";
        assert_eq!(lab, expected);
    }

    #[test]
    fn rule_tests_must_state_their_intervals() {
        let no_eval = "rule_files: [r.yml]\ntests:\n  - interval: 1m\n";
        let e = scale_rule_tests(no_eval, 30.0, S, &[]).unwrap_err();
        assert!(e.message.contains("evaluation_interval"), "{e}");
        let no_group_interval = "evaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series: []\n  - name: second\n    input_series: []\n";
        let e = scale_rule_tests(no_group_interval, 30.0, S, &[]).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
    }

    #[test]
    fn rule_timings_list_for_and_windows_per_alert() {
        let rules = "\
groups:
  - name: g
    rules:
      - record: r
        expr: rate(x[1m])
      - alert: Slow
        expr: rate(x[1h]) > 0 and rate(x[5m]) > 0 and rate(y[5m]) > 0
        for: 2m
        labels:
          for: nothing
      - alert: Down
        expr: up == 0
";
        let t = rule_timings(rules).unwrap();
        assert_eq!(t.len(), 2, "{t:?}");
        assert_eq!(t[0].alert, "Slow");
        assert_eq!(t[0].for_duration, 120 * S);
        assert_eq!(t[0].ranges, vec![300 * S, 3600 * S]);
        assert_eq!(t[0].ranges.len(), 2, "duplicates removed");
        assert_eq!(t[0].detection_time(), 420 * S);
        assert_eq!(t[1].alert, "Down");
        assert_eq!(t[1].for_duration, Duration::ZERO);
        assert_eq!(t[1].detection_time(), Duration::ZERO);
    }
}

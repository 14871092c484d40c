//! What a person types to name a fault at a game day: a fault kind with `key=value` parameters
//! (`network target=database fault=down`), a named fault from the scenario catalogue (`db-down`,
//! optionally adjusted: `db-latency latency=3s`), and durations (`--for 30s`).
//!
//! Every fault is still built by [`Fault::from_table`], so a typo is reported exactly as it would
//! be in a scenario file. The only thing added here is typing: on a command line or in a form
//! every value is text, so `0.5` becomes a float and `true` a boolean before the table is handed
//! over, and a value that looks like a number but belongs in a string field is turned back.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::faults::{Fault, FaultSpecError, KINDS};
use crate::labfile::LabFile;
use crate::scenario::{self, Scenario};

/// Where a game day's named faults and its `--scenario` come from: the scenario files of a
/// directory (target-app's catalogue, or a team's own), or the generic catalogue of a lab file
/// (`lab up --lab`: `inject db-down` injects what `run --lab FILE db-down` does).
#[derive(Debug, Clone)]
pub enum Catalogue {
    Dir(PathBuf),
    Lab(Arc<LabFile>),
}

impl Catalogue {
    /// The scenario `name`. `Err` says why there is none: unknown (with the names there are),
    /// not applicable to the lab file (and why), or an invalid file.
    pub fn scenario(&self, name: &str) -> Result<Scenario, FaultInputError> {
        let unknown =
            || FaultInputError::new(format!("unknown fault `{name}`"), Some(names_hint(self)));
        match self {
            Catalogue::Dir(dir) => {
                let path = scenario::resolve(name, dir).map_err(|_| unknown())?;
                scenario::load(&path).map_err(|e| {
                    FaultInputError::new(
                        format!(
                            "the named fault `{name}` comes from a scenario that is invalid: {e}"
                        ),
                        None,
                    )
                })
            }
            Catalogue::Lab(lab) => {
                let causes = crate::catalogue::catalogue(lab);
                let cause = causes.iter().find(|c| c.name == name).ok_or_else(unknown)?;
                match &cause.applies {
                    Ok(s) => Ok((**s).clone()),
                    Err(why) => Err(FaultInputError::new(
                        format!("`{name}` does not apply to {}: {why}", lab.file.display()),
                        Some(names_hint(self)),
                    )),
                }
            }
        }
    }

    /// Every scenario that can be had, in the catalogue's order (a lab file's causes that apply).
    pub fn scenarios(&self) -> Vec<Scenario> {
        match self {
            Catalogue::Dir(dir) => scenario::catalogue_files(dir)
                .into_iter()
                .filter_map(|p| scenario::load(&p).ok())
                .collect(),
            Catalogue::Lab(lab) => crate::catalogue::catalogue(lab)
                .into_iter()
                .filter_map(|c| c.applies.ok().map(|s| *s))
                .collect(),
        }
    }
}

/// A fault that could not be built from what was typed. Carries the same key and hint as a
/// scenario file error.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaultInputError {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl std::fmt::Display for FaultInputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl FaultInputError {
    fn new(message: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            message: message.into(),
            key: None,
            hint,
        }
    }
}

impl From<FaultSpecError> for FaultInputError {
    fn from(e: FaultSpecError) -> Self {
        let message = match &e.key {
            Some(k) if !e.message.contains(&format!("`{k}`")) => format!("{k}: {}", e.message),
            _ => e.message,
        };
        Self {
            message,
            key: e.key,
            hint: e.hint,
        }
    }
}

/// Splits `key=value` words into a table of strings, in order. Keys are what scenario files
/// allow (letters, digits, `_`, `-`); a key given twice is an error rather than a silent
/// override.
pub fn parse_params(words: &[String]) -> Result<toml::Table, FaultInputError> {
    let mut table = toml::Table::new();
    for w in words {
        let Some((key, value)) = w.split_once('=') else {
            return Err(FaultInputError::new(
                format!("`{w}` is not a parameter"),
                Some("parameters are key=value, e.g. target=database fault=down".into()),
            ));
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(FaultInputError::new(
                format!("`{key}` is not a parameter name"),
                Some("parameter names are letters, digits, `_` and `-`".into()),
            ));
        }
        if table.contains_key(key) {
            return Err(FaultInputError::new(
                format!("`{key}` is given twice"),
                None,
            ));
        }
        table.insert(key.to_string(), toml::Value::String(value.to_string()));
    }
    Ok(table)
}

/// The value a piece of text most likely means: an integer, a float, a boolean, an inline table
/// or array (TOML `{ db_pool_size = 0 }`, or JSON, which the dashboard sends), else the text
/// (without surrounding quotes, which force a string: `name="42"`).
pub fn typed_value(raw: &str) -> toml::Value {
    let t = raw.trim();
    if t.starts_with('{') || t.starts_with('[') {
        if let Ok(mut doc) = toml::from_str::<toml::Table>(&format!("v = {t}"))
            && let Some(v) = doc.remove("v")
        {
            return v;
        }
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(t)
            && let Ok(v) = toml::Value::try_from(json)
        {
            return v;
        }
    }
    for q in ['"', '\''] {
        if t.len() >= 2 && t.starts_with(q) && t.ends_with(q) {
            return toml::Value::String(t[1..t.len() - 1].to_string());
        }
    }
    // Only text that starts like a number: Rust also parses "inf" and "NaN" as floats.
    let numeric_start = t
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'));
    if numeric_start {
        if let Ok(i) = t.parse::<i64>() {
            return toml::Value::Integer(i);
        }
        if let Ok(f) = t.parse::<f64>()
            && f.is_finite()
        {
            return toml::Value::Float(f);
        }
    }
    match t {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_string()),
    }
}

/// Builds a fault from a table whose values may all be text (a command line, a form): text that
/// looks like a number or a boolean is typed first; where the fault wants a string after all
/// (a failpoint named `42`), that key goes back to text and the table is tried again.
pub fn fault_from_text_table(table: &toml::Table) -> Result<Fault, FaultInputError> {
    let mut typed: toml::Table = table
        .iter()
        .map(|(k, v)| {
            let v = match v {
                toml::Value::String(s) if k != "kind" => typed_value(s),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    // Each retry turns one more key back into text, so this ends.
    for _ in 0..=typed.len() {
        match Fault::from_table(typed.clone()) {
            Ok(f) => return Ok(f),
            Err(e) => {
                let back = if e.message.contains("expected a string") {
                    // serde names the offending *value* in backticks (`integer `42``), which
                    // `from_table` may take for the key: match either against what was typed.
                    let token = e.message.split('`').nth(3).or(e.key.as_deref());
                    typed.iter().find_map(|(k, now)| {
                        let orig = table.get(k)?.as_str()?;
                        let named =
                            e.key.as_deref() == Some(k.as_str()) || token == Some(orig.trim());
                        (named && !now.is_str()).then(|| (k.clone(), orig.to_string()))
                    })
                } else {
                    None
                };
                match back {
                    Some((k, orig)) => {
                        typed.insert(k, toml::Value::String(orig));
                    }
                    None => return Err(e.into()),
                }
            }
        }
    }
    Fault::from_table(typed).map_err(Into::into)
}

/// What `inject` was asked for: a name (a fault kind or a named fault) and parameters.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaultRequest {
    /// A fault kind (`network`), a named fault from the catalogue (`db-down`), or none when
    /// the parameters carry `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Parameters; values may be text (they are typed by [`fault_from_text_table`]).
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl FaultRequest {
    /// From command-line words: `FAULT [key=value...]`, where FAULT may itself be a `key=value`.
    pub fn from_words(fault: &str, params: &[String]) -> Result<Self, FaultInputError> {
        let mut words = params.to_vec();
        let name = if fault.contains('=') {
            words.insert(0, fault.to_string());
            None
        } else {
            Some(fault.to_string())
        };
        let table = parse_params(&words)?;
        Ok(FaultRequest {
            name,
            params: table_to_json(&table),
        })
    }

    /// Resolves the request to faults, with the named faults of `catalogue`.
    pub fn resolve(&self, catalogue: &Catalogue) -> Result<Vec<NamedFault>, FaultInputError> {
        let params = json_to_table(&self.params)?;
        match self.name.as_deref() {
            None => {
                if !params.contains_key("kind") {
                    return Err(FaultInputError::new(
                        "no fault named: give a fault kind or a named fault first, or kind=...",
                        Some(names_hint(catalogue)),
                    ));
                }
                Ok(vec![NamedFault {
                    name: None,
                    fault: fault_from_text_table(&params)?,
                }])
            }
            Some(kind) if KINDS.contains(&kind) => {
                if let Some(other) = params.get("kind").and_then(|k| k.as_str())
                    && other != kind
                {
                    return Err(FaultInputError::new(
                        format!("the fault is a `{kind}` fault, but kind={other} was given too"),
                        None,
                    ));
                }
                let mut table = params.clone();
                table.insert("kind".into(), toml::Value::String(kind.to_string()));
                Ok(vec![NamedFault {
                    name: None,
                    fault: fault_from_text_table(&table)?,
                }])
            }
            Some(name) => {
                let faults = named_faults(name, catalogue)?;
                if params.is_empty() {
                    return Ok(faults);
                }
                if faults.len() != 1 {
                    return Err(FaultInputError::new(
                        format!(
                            "`{name}` has {} faults; parameters can only adjust a named fault with one",
                            faults.len()
                        ),
                        Some(format!(
                            "inject its faults one by one with a kind and parameters, e.g. `{} ...`",
                            KINDS.join(" ...` or `")
                        )),
                    ));
                }
                let mut table = fault_table(&faults[0].fault);
                for (k, v) in params {
                    table.insert(k, v);
                }
                Ok(vec![NamedFault {
                    name: Some(name.to_string()),
                    fault: fault_from_text_table(&table)?,
                }])
            }
        }
    }
}

/// A fault and the catalogue name it came from, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedFault {
    pub name: Option<String>,
    pub fault: Fault,
}

/// The faults of the scenario `name` in the catalogue: `inject db-down` injects what
/// `scenarios/db-down.toml` injects.
pub fn named_faults(name: &str, catalogue: &Catalogue) -> Result<Vec<NamedFault>, FaultInputError> {
    // A bare word only: a path would let the control API read files of the lab's choosing.
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(FaultInputError::new(
            format!("unknown fault `{name}`"),
            Some(names_hint(catalogue)),
        ));
    }
    let s = catalogue.scenario(name)?;
    if s.faults.is_empty() {
        return Err(FaultInputError::new(
            format!("the scenario `{name}` injects no fault"),
            Some(names_hint(catalogue)),
        ));
    }
    Ok(s.faults
        .into_iter()
        .map(|f| NamedFault {
            name: Some(name.to_string()),
            fault: f.fault,
        })
        .collect())
}

/// Every named fault in the catalogue with its faults, for the dashboard and hints. Scenarios
/// that do not load are left out (`fivehundred validate` reports them).
pub fn catalogue(catalogue: &Catalogue) -> Vec<(String, String, Vec<Fault>)> {
    catalogue
        .scenarios()
        .into_iter()
        .filter(|s| !s.faults.is_empty())
        .map(|s| {
            let faults = s.faults.into_iter().map(|f| f.fault).collect();
            (s.name, s.title, faults)
        })
        .collect()
}

fn names_hint(dir: &Catalogue) -> String {
    let names: Vec<String> = catalogue(dir).into_iter().map(|(n, _, _)| n).collect();
    format!(
        "a fault is a kind with parameters ({} key=value...) or a named fault ({})",
        KINDS.join(", "),
        if names.is_empty() {
            "none in the catalogue".into()
        } else {
            names.join(", ")
        }
    )
}

/// A fault as the table a scenario file would hold (`kind` and its parameters).
pub fn fault_table(fault: &Fault) -> toml::Table {
    toml::Table::try_from(fault).unwrap_or_default()
}

pub fn table_to_json(table: &toml::Table) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(table) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

fn json_to_table(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<toml::Table, FaultInputError> {
    let mut table = toml::Table::new();
    for (k, v) in map {
        let v = toml::Value::try_from(v).map_err(|e| {
            FaultInputError::new(format!("parameter `{k}` has no TOML form: {e}"), None)
        })?;
        table.insert(k.clone(), v);
    }
    Ok(table)
}

/// How long a fault may stay: `30s`, `5m`, `1h30m`. Zero is refused: a fault that reverts
/// before it is injected is a typo.
pub fn parse_for(s: &str) -> Result<Duration, String> {
    let d = scenario::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration: {e}; write e.g. 30s, 5m or 1h"))?;
    if d.is_zero() {
        return Err("a fault's deadline must be longer than zero".into());
    }
    // A week is beyond any game day; past it the deadline is most likely a typo.
    if d > Duration::from_secs(7 * 24 * 3600) {
        return Err(format!(
            "`{s}` is longer than a week; a fault's deadline is meant to catch a forgotten fault"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn catalogue_dir() -> Catalogue {
        Catalogue::Dir(std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios"))
    }

    #[test]
    fn key_value_words_become_a_table_of_text() {
        let t = parse_params(&words("target=database fault=down fraction=0.5")).unwrap();
        assert_eq!(t["target"].as_str(), Some("database"));
        assert_eq!(t["fraction"].as_str(), Some("0.5"));
        // A value may contain `=`: only the first one splits.
        let t = parse_params(&words("action=return(a=b)")).unwrap();
        assert_eq!(t["action"].as_str(), Some("return(a=b)"));
    }

    #[test]
    fn malformed_parameters_are_refused_with_a_reason() {
        assert!(
            parse_params(&words("down"))
                .unwrap_err()
                .message
                .contains("not a parameter")
        );
        assert!(
            parse_params(&words("=x"))
                .unwrap_err()
                .message
                .contains("not a parameter name")
        );
        assert!(
            parse_params(&words("a=1 a=2"))
                .unwrap_err()
                .message
                .contains("twice")
        );
    }

    #[test]
    fn text_is_typed_as_what_it_looks_like() {
        assert_eq!(typed_value("42"), toml::Value::Integer(42));
        assert_eq!(typed_value("-3"), toml::Value::Integer(-3));
        assert_eq!(typed_value("0.25"), toml::Value::Float(0.25));
        assert_eq!(typed_value("true"), toml::Value::Boolean(true));
        assert_eq!(typed_value("inf"), toml::Value::String("inf".into()));
        assert_eq!(typed_value("300ms"), toml::Value::String("300ms".into()));
        assert_eq!(typed_value("\"42\""), toml::Value::String("42".into()));
        let inline: toml::Table = toml::from_str("set = { db_pool_size = 0 }").unwrap();
        assert_eq!(typed_value("{ db_pool_size = 0 }"), inline["set"]);
        assert_eq!(typed_value(r#"{"db_pool_size":0}"#), inline["set"]);
        assert_eq!(
            typed_value("{ not toml"),
            toml::Value::String("{ not toml".into())
        );
    }

    #[test]
    fn the_explicit_form_builds_the_same_fault_as_a_scenario_table() {
        let r = FaultRequest::from_words(
            "network",
            &words("target=database fault=latency latency=300ms fraction=0.5"),
        )
        .unwrap();
        let got = r.resolve(&catalogue_dir()).unwrap();
        let want = Fault::from_table(
            toml::from_str(
                "kind='network'\ntarget='database'\nfault='latency'\nlatency='300ms'\nfraction=0.5",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            got,
            vec![NamedFault {
                name: None,
                fault: want
            }]
        );
    }

    #[test]
    fn kind_may_be_a_parameter_instead_of_the_first_word() {
        let r = FaultRequest::from_words("kind=failpoint", &words("name=get_product action=panic"))
            .unwrap();
        assert_eq!(r.name, None);
        let got = r.resolve(&catalogue_dir()).unwrap();
        assert_eq!(got[0].fault.describe(), "failpoint get_product = panic");
    }

    #[test]
    fn a_number_where_text_is_wanted_goes_back_to_text() {
        // `name` is a string field: the typed 42 is refused, then retried as "42", which
        // reaches the failpoint's own validation (the target has no failpoint of that name).
        let r = FaultRequest::from_words("failpoint", &words("name=42 action=panic")).unwrap();
        let mut got = r.resolve(&catalogue_dir()).unwrap();
        let e = got[0]
            .fault
            .fit(crate::labfile::target_app(), &[])
            .unwrap_err();
        assert!(e.message.contains("no failpoint `42`"), "{}", e.message);
    }

    #[test]
    fn a_named_fault_is_the_fault_of_its_scenario() {
        let got = FaultRequest::from_words("db-down", &[])
            .unwrap()
            .resolve(&catalogue_dir())
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name.as_deref(), Some("db-down"));
        assert_eq!(got[0].fault.describe(), "database proxy: down");
    }

    #[test]
    fn parameters_adjust_a_named_fault() {
        let got = FaultRequest::from_words("db-latency", &words("latency=3s jitter=0s"))
            .unwrap()
            .resolve(&catalogue_dir())
            .unwrap();
        assert_eq!(got[0].fault.describe(), "database proxy: latency 3s ± 0s");
    }

    #[test]
    fn mistakes_are_reported_as_in_scenario_files() {
        let e = FaultRequest::from_words("network", &words("target=database fault=dwon"))
            .unwrap()
            .resolve(&catalogue_dir())
            .unwrap_err();
        assert!(e.message.contains("dwon"), "{e}");
        assert!(e.hint.is_some());
        let e = FaultRequest::from_words("network", &words("target=database fault=down lag=1"))
            .unwrap()
            .resolve(&catalogue_dir())
            .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("lag"), "{e}");
    }

    #[test]
    fn an_unknown_name_lists_the_kinds_and_the_named_faults() {
        let e = FaultRequest::from_words("meteor", &[])
            .unwrap()
            .resolve(&catalogue_dir())
            .unwrap_err();
        let hint = e.hint.unwrap();
        assert!(
            hint.contains("network") && hint.contains("db-down"),
            "{hint}"
        );
        // Names are words, never paths.
        assert!(
            FaultRequest::from_words("../scenarios/db-down", &[])
                .unwrap()
                .resolve(&catalogue_dir())
                .is_err()
        );
    }

    #[test]
    fn deadlines_are_positive_durations() {
        assert_eq!(parse_for("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_for("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_for("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_for("0s").is_err());
        assert!(parse_for("soon").unwrap_err().contains("not a duration"));
        assert!(parse_for("30d").is_err());
    }
}

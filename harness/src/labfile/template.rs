//! Lab-file templates: text with `{name}` placeholders that the lab fills with the addresses and
//! paths it made for one run. Parsed when the lab file is read, so a misspelt placeholder is an
//! error at its line and column, never an empty string in the service's command line.
//!
//! Only `{` + a dotted name + `}` is a placeholder (`{deps.db.url}`); any other brace is text, so
//! JSON, YAML and TOML config templates need no escaping. `{{name}}` writes `{name}` literally.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Template {
    /// As written.
    text: String,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Placeholder(String),
}

impl From<Template> for String {
    fn from(t: Template) -> String {
        t.text
    }
}

/// A placeholder that is not known where it is used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown placeholder `{{{name}}}`")]
pub struct UnknownPlaceholder {
    pub name: String,
    /// Byte offset of its `{` in the template text.
    pub offset: usize,
}

/// A template rendered with values that lack one of its placeholders: a lab that did not fill
/// in what the lab file was validated against.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the lab has no value for `{{{0}}}`")]
pub struct MissingValue(pub String);

impl Template {
    /// Parses `text`; every placeholder must be one `known` accepts.
    pub fn parse(text: &str, known: &dyn Fn(&str) -> bool) -> Result<Template, UnknownPlaceholder> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        let mut consumed = 0;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            // `{{name}}`: the literal `{name}`.
            if let Some(inner) = after.strip_prefix('{')
                && let Some(close) = inner.find("}}")
                && is_name(&inner[..close])
            {
                literal.push_str(&rest[..open]);
                literal.push('{');
                literal.push_str(&inner[..close]);
                literal.push('}');
                let used = open + 2 + close + 2;
                consumed += used;
                rest = &rest[used..];
                continue;
            }
            match after.find('}').map(|close| &after[..close]) {
                Some(name) if is_name(name) => {
                    if !known(name) {
                        return Err(UnknownPlaceholder {
                            name: name.to_string(),
                            offset: consumed + open,
                        });
                    }
                    literal.push_str(&rest[..open]);
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Placeholder(name.to_string()));
                    let used = open + name.len() + 2;
                    consumed += used;
                    rest = &rest[used..];
                }
                _ => {
                    literal.push_str(&rest[..=open]);
                    consumed += open + 1;
                    rest = after;
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template {
            text: text.to_string(),
            pieces,
        })
    }

    /// Text taken as it is, with no placeholder in it (an argument the user passed).
    pub fn literal(text: &str) -> Template {
        Template {
            text: text.to_string(),
            pieces: if text.is_empty() {
                Vec::new()
            } else {
                vec![Piece::Text(text.to_string())]
            },
        }
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its placeholders, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Placeholder(n) => Some(n.as_str()),
            Piece::Text(_) => None,
        })
    }

    pub fn render(&self, values: &Values) -> Result<String, MissingValue> {
        let mut out = String::with_capacity(self.text.len());
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Placeholder(name) => out.push_str(
                    values
                        .0
                        .get(name)
                        .ok_or_else(|| MissingValue(name.clone()))?,
                ),
            }
        }
        Ok(out)
    }
}

/// `name` or `a.b.c`, each part letters, digits, `_` or `-`, starting with a letter or `_`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// What the lab made for one run, by placeholder name. Built only through these methods, so the
/// names are spelt in one place (and documented in `docs/lab-file.md`).
#[derive(Debug, Clone, Default)]
pub struct Values(BTreeMap<String, String>);

/// The address of a PostgreSQL database as the service sees it (through the lab's proxy).
#[derive(Debug, Clone)]
pub struct DbAddress {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub name: String,
}

impl DbAddress {
    /// `postgres://user:password@host:port/name`, each part percent-encoded where needed.
    pub fn url(&self) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            encode(&self.user),
            encode(&self.password),
            self.host,
            self.port,
            encode(&self.name)
        )
    }
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Values {
    /// The service's own listener, its data directory and the run's secret token.
    pub fn new(host: &str, port: u16, data_dir: &Path, token: &str) -> Values {
        let mut v = Values::default();
        v.set("host", host);
        v.set("port", &port.to_string());
        v.set("listen", &format!("{host}:{port}"));
        v.set("data_dir", &data_dir.display().to_string());
        v.set("token", token);
        v
    }

    /// The service's own listener moved to `host:port` (a second instance beside the first).
    pub fn listen_on(&mut self, host: &str, port: u16) -> &mut Values {
        self.set("host", host);
        self.set("port", &port.to_string());
        self.set("listen", &format!("{host}:{port}"));
        self
    }

    fn set(&mut self, name: &str, value: &str) {
        self.0.insert(name.to_string(), value.to_string());
    }

    /// A further listener (`listeners = ["admin"]`): `{listen.admin}`, `{port.admin}`.
    pub fn listener(&mut self, name: &str, host: &str, port: u16) -> &mut Values {
        self.set(&format!("listen.{name}"), &format!("{host}:{port}"));
        self.set(&format!("port.{name}"), &port.to_string());
        self
    }

    /// A rendered config file: `{config.NAME}`.
    pub fn config(&mut self, name: &str, path: &Path) -> &mut Values {
        self.set(&format!("config.{name}"), &path.display().to_string());
        self
    }

    /// A `postgres` dependency: `{deps.NAME.url}`, `.host`, `.port`, `.user`, `.password`,
    /// `.name`.
    pub fn postgres(&mut self, dep: &str, db: &DbAddress) -> &mut Values {
        self.set(&format!("deps.{dep}.url"), &db.url());
        self.set(&format!("deps.{dep}.host"), &db.host);
        self.set(&format!("deps.{dep}.port"), &db.port.to_string());
        self.set(&format!("deps.{dep}.user"), &db.user);
        self.set(&format!("deps.{dep}.password"), &db.password);
        self.set(&format!("deps.{dep}.name"), &db.name);
        self
    }

    /// A `tcp` dependency: `{deps.NAME.host}`, `.port`, `.addr` (`host:port`).
    pub fn tcp(&mut self, dep: &str, host: &str, port: u16) -> &mut Values {
        self.set(&format!("deps.{dep}.host"), host);
        self.set(&format!("deps.{dep}.port"), &port.to_string());
        self.set(&format!("deps.{dep}.addr"), &format!("{host}:{port}"));
        self
    }

    /// An `http` dependency: `{deps.NAME.url}` (no trailing slash), `.host`, `.port`.
    pub fn http(&mut self, dep: &str, host: &str, port: u16) -> &mut Values {
        self.set(&format!("deps.{dep}.url"), &format!("http://{host}:{port}"));
        self.set(&format!("deps.{dep}.host"), host);
        self.set(&format!("deps.{dep}.port"), &port.to_string());
        self
    }

    /// The value of one placeholder, if the lab filled it in.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// The fields each dependency kind offers, as `{deps.NAME.FIELD}`.
pub const POSTGRES_FIELDS: &[&str] = &["url", "host", "port", "user", "password", "name"];
pub const TCP_FIELDS: &[&str] = &["host", "port", "addr"];
pub const HTTP_FIELDS: &[&str] = &["url", "host", "port"];

#[cfg(test)]
mod tests {
    use super::*;

    fn any(_: &str) -> bool {
        true
    }

    #[test]
    fn placeholders_are_filled_and_other_braces_are_text() {
        let t = Template::parse(r#"{"url": "{deps.db.url}", "n": {x}}"#, &any).unwrap();
        let mut v = Values::new("127.0.0.1", 8080, Path::new("/d"), "t");
        v.postgres(
            "db",
            &DbAddress {
                host: "127.0.0.1".into(),
                port: 5,
                user: "u".into(),
                password: "p@ss".into(),
                name: "app".into(),
            },
        );
        v.set("x", "1");
        assert_eq!(
            t.render(&v).unwrap(),
            r#"{"url": "postgres://u:p%40ss@127.0.0.1:5/app", "n": 1}"#
        );
    }

    #[test]
    fn a_doubled_brace_writes_a_placeholder_literally() {
        let t = Template::parse("a {{listen}} b {port}", &any).unwrap();
        let v = Values::new("127.0.0.1", 9, Path::new("/d"), "t");
        assert_eq!(t.render(&v).unwrap(), "a {listen} b 9");
        assert_eq!(t.placeholders().collect::<Vec<_>>(), vec!["port"]);
    }

    #[test]
    fn an_unknown_placeholder_is_reported_at_its_offset() {
        let e = Template::parse("--db={deps.db.ulr}", &|n| n == "deps.db.url").unwrap_err();
        assert_eq!(e.name, "deps.db.ulr");
        assert_eq!(e.offset, 5);
    }

    #[test]
    fn rendering_without_a_value_names_the_placeholder() {
        let t = Template::parse("{listen.admin}", &any).unwrap();
        let v = Values::new("127.0.0.1", 9, Path::new("/d"), "t");
        assert_eq!(
            t.render(&v).unwrap_err(),
            MissingValue("listen.admin".into())
        );
    }
}

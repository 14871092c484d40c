//! Toxiproxy's JSON shapes for toxics (`name, type, stream, toxicity, attributes`) and their
//! translation to the proxy's [`Toxic`]s: every Toxiproxy type with its attributes in its units
//! (milliseconds, KB/s, microseconds for the slicer's delay), and the types only fivehundred
//! makes (`http_response`, `postgres_*`).
//!
//! A toxic keeps its attributes as a complete JSON object (every attribute of its type, missing
//! ones at their defaults, as Toxiproxy shows them); an update merges the given attributes onto
//! it and translates the whole again, so a bad update changes nothing.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::ApiError;
use crate::proxy::{HttpAnswer, PgToxic, Stream, Toxic, ToxicKind};

/// Every toxic type, with its attributes and their defaults.
const TYPES: &[(&str, &[(&str, AttrDefault)])] = &[
    ("noop", &[]),
    ("latency", &[("latency", Int), ("jitter", Int)]),
    ("bandwidth", &[("rate", Int)]),
    ("slow_close", &[("delay", Int)]),
    ("timeout", &[("timeout", Int)]),
    ("reset_peer", &[("timeout", Int)]),
    (
        "slicer",
        &[
            ("average_size", Int),
            ("size_variation", Int),
            ("delay", Int),
        ],
    ),
    ("limit_data", &[("bytes", Int)]),
    (
        "http_response",
        &[
            ("status", Status),
            ("body", Text),
            ("content_type", ContentType),
            ("delay", Int),
            ("abort", Bool),
        ],
    ),
    (
        "postgres_error",
        &[
            ("sqlstate", SqlState),
            ("message", PgMessage),
            ("match", Text),
        ],
    ),
    ("postgres_stall", &[("match", Text), ("duration", Int)]),
    ("postgres_too_many_clients", &[]),
];

/// The kind and default of an attribute.
#[derive(Debug, Clone, Copy)]
enum AttrDefault {
    Int,
    Bool,
    Text,
    Status,
    ContentType,
    SqlState,
    PgMessage,
}
use AttrDefault::*;

impl AttrDefault {
    fn value(self) -> Value {
        match self {
            Int => json!(0),
            Bool => json!(false),
            Text => json!(""),
            Status => json!(500),
            ContentType => json!("text/plain"),
            SqlState => json!("XX000"),
            PgMessage => json!("error injected by the fault proxy"),
        }
    }
}

/// The toxic type names, for error messages and docs.
pub fn type_names() -> Vec<&'static str> {
    TYPES.iter().map(|(name, _)| *name).collect()
}

/// A toxic as the API shows and stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToxicSpec {
    pub name: String,
    pub type_name: String,
    pub stream: Stream,
    pub toxicity: f64,
    /// Every attribute of the type.
    pub attributes: Map<String, Value>,
}

impl ToxicSpec {
    /// Reads a toxic from a create request (or a config file): `type` is required; `name`
    /// defaults to `<type>_<stream>`, `stream` to downstream, `toxicity` to 1.
    pub fn from_json(body: &Value) -> Result<ToxicSpec, ApiError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ApiError::bad_body("a toxic is a JSON object"))?;
        let type_name = match obj.get("type") {
            Some(Value::String(t)) => t.clone(),
            None => return Err(ApiError::invalid_toxic_type()),
            Some(other) => {
                return Err(ApiError::bad_body(&format!(
                    "`type` {other} is not a string"
                )));
            }
        };
        // `direction` is what noxious-client sends for `stream`.
        let stream = match obj.get("stream").or_else(|| obj.get("direction")) {
            None => Stream::Downstream,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("upstream") => Stream::Upstream,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("downstream") => Stream::Downstream,
            Some(Value::String(s)) if s.is_empty() => Stream::Downstream,
            Some(_) => return Err(ApiError::invalid_stream()),
        };
        let name = match obj.get("name") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(n)) => n.clone(),
            Some(other) => {
                return Err(ApiError::bad_body(&format!(
                    "`name` {other} is not a string"
                )));
            }
        };
        let name = if name.is_empty() {
            format!("{type_name}_{}", stream.as_str())
        } else {
            name
        };
        let toxicity = toxicity(obj.get("toxicity"))?.unwrap_or(1.0);
        let Some((_, attrs)) = TYPES.iter().find(|(t, _)| *t == type_name) else {
            return Err(ApiError::invalid_toxic_type());
        };
        let mut attributes: Map<String, Value> = attrs
            .iter()
            .map(|(key, default)| (key.to_string(), default.value()))
            .collect();
        merge(&mut attributes, obj.get("attributes"))?;
        let spec = ToxicSpec {
            name,
            type_name,
            stream,
            toxicity,
            attributes,
        };
        spec.to_toxic()?;
        Ok(spec)
    }

    /// The toxic after an update request: given attributes and `toxicity` change, the rest
    /// (name, type, stream) stays.
    pub fn updated(&self, body: &Value) -> Result<ToxicSpec, ApiError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ApiError::bad_body("a toxic is a JSON object"))?;
        let mut next = self.clone();
        if let Some(t) = toxicity(obj.get("toxicity"))? {
            next.toxicity = t;
        }
        merge(&mut next.attributes, obj.get("attributes"))?;
        next.to_toxic()?;
        Ok(next)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_name,
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": self.attributes,
        })
    }

    /// The toxic as a line of a log or a status: `toxic NAME on PROXY: TYPE STREAM (attributes)`,
    /// and the share of connections when it is not all of them.
    pub fn describe(&self, proxy: &str) -> String {
        let attrs: Vec<String> = self
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" ({})", attrs.join(", "))
        };
        let share = if self.toxicity < 1.0 {
            format!(" on {}% of connections", self.toxicity * 100.0)
        } else {
            String::new()
        };
        format!(
            "toxic {} on {proxy}: {} {}{attrs}{share}",
            self.name,
            self.type_name,
            self.stream.as_str()
        )
    }

    /// The proxy's form of this toxic.
    pub fn to_toxic(&self) -> Result<Toxic, ApiError> {
        let a = Attrs {
            type_name: &self.type_name,
            map: &self.attributes,
        };
        let ms = |key| a.int(key).map(Duration::from_millis);
        let kind = match self.type_name.as_str() {
            // A noop toxic passes bytes unchanged: a latency of nothing.
            "noop" => ToxicKind::Latency {
                latency: Duration::ZERO,
                jitter: Duration::ZERO,
            },
            "latency" => ToxicKind::Latency {
                latency: ms("latency")?,
                jitter: ms("jitter")?,
            },
            // Toxiproxy's KB is 1000 bytes.
            "bandwidth" => ToxicKind::Bandwidth {
                bytes_per_sec: a.int("rate")?.saturating_mul(1000),
            },
            "slow_close" => ToxicKind::SlowClose {
                delay: ms("delay")?,
            },
            "timeout" => ToxicKind::Timeout {
                timeout: ms("timeout")?,
            },
            "reset_peer" => ToxicKind::ResetPeer {
                timeout: ms("timeout")?,
            },
            "slicer" => ToxicKind::Slicer {
                average_size: a.size("average_size")?,
                size_variation: a.size("size_variation")?,
                delay: Duration::from_micros(a.int("delay")?),
            },
            "limit_data" => ToxicKind::LimitData {
                bytes: a.int("bytes")?,
            },
            "http_response" => ToxicKind::Http(HttpAnswer {
                status: a.status()?,
                body: a.text("body")?,
                content_type: a.text("content_type")?,
                delay: ms("delay")?,
                abort: a.bool("abort")?,
            }),
            "postgres_error" => ToxicKind::Postgres(PgToxic::Error {
                sqlstate: a.sqlstate()?,
                message: a.text("message")?,
                matches: a.text("match")?,
            }),
            "postgres_stall" => ToxicKind::Postgres(PgToxic::Stall {
                matches: a.text("match")?,
                duration: ms("duration")?,
            }),
            "postgres_too_many_clients" => ToxicKind::Postgres(PgToxic::TooManyClients),
            _ => return Err(ApiError::invalid_toxic_type()),
        };
        Ok(Toxic {
            name: self.name.clone(),
            stream: self.stream,
            toxicity: self.toxicity,
            kind,
        })
    }
}

fn toxicity(value: Option<&Value>) -> Result<Option<f64>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => Ok(Some(t)),
            _ => Err(ApiError::bad_body(&format!(
                "`toxicity` must be a number between 0 and 1, got {v}"
            ))),
        },
    }
}

/// Merges given attributes onto a complete set; attributes the type does not have are
/// ignored, as Go's JSON decoding ignores them.
fn merge(attributes: &mut Map<String, Value>, given: Option<&Value>) -> Result<(), ApiError> {
    match given {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(given)) => {
            for (key, value) in given {
                if let Some(slot) = attributes.get_mut(key) {
                    *slot = value.clone();
                }
            }
            Ok(())
        }
        Some(other) => Err(ApiError::bad_body(&format!(
            "`attributes` must be an object, got {other}"
        ))),
    }
}

/// Typed access to a toxic's attributes, with Toxiproxy's "bad request body" on a wrong type.
struct Attrs<'a> {
    type_name: &'a str,
    map: &'a Map<String, Value>,
}

impl Attrs<'_> {
    fn wrong(&self, key: &str, what: &str) -> ApiError {
        let got = self.map.get(key).cloned().unwrap_or(Value::Null);
        ApiError::bad_body(&format!(
            "attribute `{key}` of a {} toxic must be {what}, got {got}",
            self.type_name
        ))
    }

    fn int(&self, key: &str) -> Result<u64, ApiError> {
        self.map
            .get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| self.wrong(key, "a whole number of at least 0"))
    }

    fn size(&self, key: &str) -> Result<usize, ApiError> {
        usize::try_from(self.int(key)?).map_err(|_| self.wrong(key, "a smaller number"))
    }

    fn bool(&self, key: &str) -> Result<bool, ApiError> {
        self.map
            .get(key)
            .and_then(Value::as_bool)
            .ok_or_else(|| self.wrong(key, "true or false"))
    }

    fn text(&self, key: &str) -> Result<String, ApiError> {
        self.map
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| self.wrong(key, "a string"))
    }

    fn status(&self) -> Result<u16, ApiError> {
        self.int("status")
            .ok()
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| self.wrong("status", "an HTTP status between 100 and 599"))
    }

    fn sqlstate(&self) -> Result<String, ApiError> {
        let code = self.text("sqlstate")?;
        if code.len() == 5
            && code
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            Ok(code)
        } else {
            Err(self.wrong(
                "sqlstate",
                "five digits or capital letters (e.g. \"40001\")",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toxic_without_name_or_stream_is_a_downstream_toxic_named_after_its_type() {
        let spec = ToxicSpec::from_json(&json!({"type": "latency", "attributes": {"latency": 5}}))
            .unwrap();
        assert_eq!(spec.name, "latency_downstream");
        assert_eq!(spec.toxicity, 1.0);
        assert_eq!(spec.attributes["jitter"], json!(0));
    }

    #[test]
    fn attributes_of_the_wrong_type_are_a_bad_request() {
        let err = ToxicSpec::from_json(&json!({"type": "latency", "attributes": {"latency": "x"}}))
            .unwrap_err();
        assert_eq!(err.status, 400);
        assert!(
            err.message.starts_with("bad request body"),
            "{}",
            err.message
        );
    }

    #[test]
    fn an_update_keeps_the_attributes_it_does_not_name() {
        let spec = ToxicSpec::from_json(
            &json!({"type": "latency", "attributes": {"latency": 5, "jitter": 2}}),
        )
        .unwrap();
        let next = spec
            .updated(&json!({"attributes": {"latency": 9}}))
            .unwrap();
        assert_eq!(next.attributes["latency"], json!(9));
        assert_eq!(next.attributes["jitter"], json!(2));
    }

    #[test]
    fn a_toxic_describes_itself_with_its_proxy_attributes_and_share() {
        let spec = ToxicSpec::from_json(&json!({"name": "slow", "type": "latency",
            "stream": "upstream", "toxicity": 0.25, "attributes": {"latency": 200}}))
        .unwrap();
        assert_eq!(
            spec.describe("database"),
            "toxic slow on database: latency upstream (jitter=0, latency=200) on 25% of connections"
        );
        let all = ToxicSpec::from_json(&json!({"type": "postgres_too_many_clients"})).unwrap();
        assert_eq!(
            all.describe("db"),
            "toxic postgres_too_many_clients_downstream on db: postgres_too_many_clients downstream"
        );
    }
}

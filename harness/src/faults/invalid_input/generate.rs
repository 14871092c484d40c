//! What is generated: from each [`Template`] (a request the scenario sends), requests that keep
//! its shape and vary what a client controls. Each path placeholder and query value becomes a
//! hostile segment (huge, negative and fractional numbers, empty-ish, unicode, dot segments,
//! raw bytes, very long), percent-encoded; a JSON body loses members, gets members of the wrong
//! type, numbers beyond every integer and float range, extra members, or is cut short or
//! replaced by text that is not JSON; the content type and the `Idempotency-Key` (when the
//! request sends one) turn odd.
//!
//! Every choice is a proptest strategy that shrinks first to the request as the load renders it
//! (see `kept.rs`), so shrinking walks a failing request back to the one the scenario sends,
//! and the smallest failure differs from it only where it must.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::strategy::Union;

use super::kept::kept_or;
use super::template::{Part, Template};

/// One generated request.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The request line it was generated from: `POST /widgets`.
    pub line: String,
    pub method: reqwest::Method,
    /// Path and query, percent-encoded as sent.
    pub path: String,
    pub content_type: Option<String>,
    pub idempotency_key: Option<String>,
    /// The request's own headers, as the load renders them.
    pub headers: Vec<(String, String)>,
    pub body: Option<Body>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A JSON object of these members, each value a raw JSON text (so that numbers beyond
    /// what `serde_json` holds can be sent as written).
    Members(Vec<(String, String)>),
    /// Any text, usually not JSON at all.
    Raw(String),
}

impl Body {
    pub fn text(&self) -> String {
        match self {
            Body::Members(members) => {
                let inner: Vec<String> = members
                    .iter()
                    .map(|(k, v)| format!("{}:{v}", json_string(k)))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
            Body::Raw(text) => text.clone(),
        }
    }
}

pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Everything but RFC 3986's unreserved characters is percent-encoded, so any generated value
/// is a valid path segment or query value (the target decodes it back).
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Generated {
    /// The route it is recorded under: its request line, marked as generated.
    pub fn route(&self) -> String {
        format!("{} (generated)", self.line)
    }

    pub fn headers(&self) -> BTreeMap<String, String> {
        let mut h: BTreeMap<String, String> = self.headers.iter().cloned().collect();
        if let Some(ct) = &self.content_type {
            h.insert("content-type".into(), ct.clone());
        }
        if let Some(k) = &self.idempotency_key {
            h.insert("idempotency-key".into(), k.clone());
        }
        h
    }

    pub fn body(&self) -> Option<String> {
        self.body.as_ref().map(Body::text)
    }

    /// One line for humans: `POST /widgets [idempotency-key: ""] {"size":-1}`.
    pub fn show(&self) -> String {
        let mut s = format!("{} {}", self.method, self.path);
        for (k, v) in self.headers() {
            s.push_str(&format!(" [{k}: {v:?}]"));
        }
        if let Some(b) = self.body() {
            let b: String = b.chars().take(300).collect();
            s.push_str(&format!(" {b}"));
        }
        s
    }
}

/// Requests varied from every template, each drawn as often as its entry's weight says (twice
/// that for one with a body: there is more to vary). `templates` is not empty.
pub fn requests(templates: &[Template]) -> impl Strategy<Value = Generated> + use<> {
    let weighted: Vec<(u32, BoxedStrategy<Generated>)> = templates
        .iter()
        .map(|t| {
            let weight = t.weight.max(1);
            let weight = if t.body.is_some() {
                weight.saturating_mul(2)
            } else {
                weight
            };
            (weight, request(t))
        })
        .collect();
    Union::new_weighted(weighted)
}

/// Requests varied from one template.
pub fn request(t: &Template) -> BoxedStrategy<Generated> {
    let path: Vec<BoxedStrategy<String>> = t
        .path
        .iter()
        .map(|p| match p {
            Part::Text(text) => Just(text.clone()).boxed(),
            Part::Param(rendered) => segment(rendered.clone()).boxed(),
        })
        .collect();
    let query: Vec<BoxedStrategy<Option<String>>> = t
        .query
        .iter()
        .map(|(name, value)| query_pair(name.clone(), value.clone()).boxed())
        .collect();
    let extra = prop::option::weighted(0.1, ("[a-z_]{1,12}", hostile()))
        .prop_map(|extra| extra.map(|(name, value)| format!("{name}={value}")));
    let extra = if t.query.is_empty() {
        Just(None).boxed()
    } else {
        extra.boxed()
    };
    let content_type = match (&t.body, &t.content_type) {
        (Some(_), Some(ct)) => content_type(ct.clone()).boxed(),
        _ => Just(t.content_type.clone()).boxed(),
    };
    let key = if t.idempotency_key {
        idempotency_key().boxed()
    } else {
        Just(None).boxed()
    };
    let body = match &t.body {
        Some(rendered) => body(rendered).prop_map(Some).boxed(),
        None => Just(None).boxed(),
    };
    let (line, method, headers) = (t.line.clone(), t.method.clone(), t.headers.clone());
    (path, (query, extra), content_type, key, body)
        .prop_map(
            move |(path, (query, extra), content_type, idempotency_key, body)| {
                let pairs: Vec<String> = query.into_iter().flatten().chain(extra).collect();
                let mut path = path.concat();
                if !pairs.is_empty() {
                    path.push('?');
                    path.push_str(&pairs.join("&"));
                }
                Generated {
                    line: line.clone(),
                    method: method.clone(),
                    path,
                    content_type,
                    idempotency_key,
                    headers: headers.clone(),
                    body,
                }
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Paths and queries.

/// A path placeholder: as rendered, or hostile.
fn segment(rendered: String) -> impl Strategy<Value = String> {
    kept_or(
        rendered.clone(),
        prop_oneof![
            2 => Just(rendered),
            6 => hostile(),
        ],
    )
}

/// A query pair: as rendered, with a hostile value, or left out.
fn query_pair(name: String, value: Option<String>) -> impl Strategy<Value = Option<String>> {
    let kept = match &value {
        Some(v) => format!("{name}={v}"),
        None => name.clone(),
    };
    kept_or(
        Some(kept.clone()),
        prop_oneof![
            3 => Just(Some(kept)),
            4 => hostile().prop_map(move |v| Some(format!("{name}={v}"))),
            1 => Just(None),
        ],
    )
}

/// A hostile path segment or query value, percent-encoded.
fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => hostile_text().prop_map(|s| encode(s.as_bytes())),
        // Bytes, not always UTF-8 once decoded.
        1 => prop::collection::vec(any::<u8>(), 1..6).prop_map(|b| encode(&b)),
    ]
}

fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => (0i64..=20).prop_map(|n| n.to_string()),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "-?[1-9][0-9]{19,30}",
        1 => "-?[0-9]{1,4}\\.[0-9]{1,4}",
        1 => "[1-9]e[1-9][0-9]{1,3}",
        1 => prop::sample::select(&["", " ", "-0", "+1", "null", "NaN", "%", "{}", "[]"][..])
            .prop_map(String::from),
        1 => prop::sample::select(&[".", "..", "../..", "../etc/passwd", "a/b"][..])
            .prop_map(String::from),
        1 => "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        2 => any::<String>().prop_map(|s| s.chars().take(30).collect()),
        1 => "[a-z0-9]{300,1200}",
    ]
}

// ---------------------------------------------------------------------------------------------
// Bodies.

/// A rendered body, varied: a JSON object member by member, other JSON as a whole, text left as
/// it is; then any of them cut short, or replaced by text that is not JSON.
fn body(rendered: &str) -> impl Strategy<Value = Body> + use<> {
    let (kept, whole) = match serde_json::from_str::<serde_json::Value>(rendered) {
        Ok(serde_json::Value::Object(map)) => {
            let kept = map.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
            (Body::Members(kept), members(map).boxed())
        }
        Ok(v) => (
            Body::Raw(rendered.to_string()),
            prop_oneof![4 => like(&v), 2 => value()]
                .prop_map(Body::Raw)
                .boxed(),
        ),
        Err(_) => {
            let kept = Body::Raw(rendered.to_string());
            (kept.clone(), Just(kept).boxed())
        }
    };
    kept_or(kept, prop_oneof![
        8 => whole.clone(),
        // Truncated, as a client cut off mid-body sends it.
        1 => (whole, any::<prop::sample::Index>()).prop_map(|(body, cut)| {
            let text = body.text();
            let at = cut.index(text.len().max(1));
            Body::Raw(text.chars().take(at).collect())
        }),
        1 => any::<String>().prop_map(|s| Body::Raw(s.chars().take(60).collect())),
    ])
}

/// Each member kept, varied within its type, given a value of another type, or dropped; now
/// and then one more member.
fn members(
    map: serde_json::Map<String, serde_json::Value>,
) -> impl Strategy<Value = Body> + use<> {
    let each: Vec<BoxedStrategy<Option<(String, String)>>> = map
        .into_iter()
        .map(|(name, v)| {
            let kept = Some((name.clone(), v.to_string()));
            kept_or(kept, member(name, like(&v).boxed())).boxed()
        })
        .collect();
    let extra = prop::option::weighted(0.1, ("[a-z_]{1,12}", value()));
    (each, extra).prop_map(|(each, extra)| {
        Body::Members(each.into_iter().flatten().chain(extra).collect())
    })
}

fn member(
    name: String,
    typical: BoxedStrategy<String>,
) -> impl Strategy<Value = Option<(String, String)>> {
    let other = name.clone();
    prop_oneof![
        6 => typical.prop_map(move |v| Some((name.clone(), v))),
        2 => value().prop_map(move |v| Some((other.clone(), v))),
        1 => Just(None),
    ]
}

/// A value of the same JSON type as `v`, as text: `v` itself first.
fn like(v: &serde_json::Value) -> BoxedStrategy<String> {
    use serde_json::Value;
    let same = v.to_string();
    match v {
        Value::Number(n) => {
            let text = n.to_string();
            let negated = match text.strip_prefix('-') {
                Some(positive) => positive.to_string(),
                None => format!("-{text}"),
            };
            prop_oneof![
                4 => Just(same),
                1 => Just(negated),
                5 => number(),
            ]
            .boxed()
        }
        Value::String(s) => {
            let (long, odd) = (s.clone(), s.clone());
            prop_oneof![
                4 => Just(same),
                1 => "[a-z]{240,300}".prop_map(move |pad| json_string(&format!("{pad}{long}"))),
                1 => "\\PC{1,20}".prop_map(move |u| json_string(&format!("{u}{odd}"))),
                4 => string(),
            ]
            .boxed()
        }
        Value::Bool(b) => prop_oneof![3 => Just(same), 1 => Just((!b).to_string())].boxed(),
        Value::Null => Just(same).boxed(),
        Value::Array(_) | Value::Object(_) => prop_oneof![
            4 => Just(same),
            1 => Just(if v.is_array() { "[]" } else { "{}" }.to_string()),
        ]
        .boxed(),
    }
}

/// A JSON number as text: small, any 64-bit integer, zero, beyond every integer range,
/// fractional, or with an exponent beyond every float.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (1i64..=20).prop_map(|n| n.to_string()),
        3 => any::<i64>().prop_map(|n| n.to_string()),
        1 => Just("0".to_string()),
        1 => "-?[1-9][0-9]{19,40}",
        1 => "-?[0-9]{1,4}\\.[0-9]{1,4}",
        1 => "[1-9]e[1-9][0-9]{1,3}",
    ]
}

/// A JSON string as text: unicode, control characters, short, empty-ish, very long.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>().prop_map(|s| s.chars().take(40).collect()),
        1 => "[a-z@ ]{0,12}",
        1 => "[a-z]{240,300}",
        1 => "\\PC{1,20}@\\PC{1,20}",
    ]
    .prop_map(|s: String| json_string(&s))
}

/// Any JSON value as text, of any type.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => number(),
        3 => string(),
        1 => prop::sample::select(&["null", "true", "false", "[]", "{}", "[1,2]", "{\"a\":1}"][..])
            .prop_map(String::from),
    ]
}

// ---------------------------------------------------------------------------------------------
// Headers.

fn content_type(rendered: String) -> impl Strategy<Value = Option<String>> {
    let charset = format!("{rendered}; charset=utf-8");
    kept_or(
        Some(rendered.clone()),
        prop_oneof![
            8 => Just(Some(rendered)),
            1 => Just(Some(charset)),
            1 => Just(None),
            1 => Just(Some("text/plain".to_string())),
            1 => "[a-z]{1,10}/[a-z+.-]{1,12}".prop_map(Some),
        ],
    )
}

fn idempotency_key() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => "[0-9a-f]{8}-[0-9a-f]{4}".prop_map(Some),
        2 => Just(None),
        1 => Just(Some(String::new())),
        1 => "[!-~]{1,40}".prop_map(Some),
        1 => "[!-~]{250,300}".prop_map(Some),
    ]
}

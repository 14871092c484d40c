//! An OpenAPI 3 document (JSON) read into requests for the invalid-input cause: each operation
//! becomes a request the generator starts from (its path parameters drawn from their schemas,
//! its required query parameters filled, its JSON body built from the body schema), so the
//! hostile variants reach every operation the service documents, not only the ones the lab
//! file's load sends.
//!
//! Only what a valid request needs is read: `paths`, each operation's `parameters` (path and
//! required query, with the path item's own), `requestBody`'s `application/json` schema, and
//! `$ref`s into `#/components`. Anything else in the document is left alone.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::load::{MixEntry, Param};

/// How deep a body schema is followed (nested objects, arrays, `$ref`s): a recursive schema
/// stops here with `null`.
const MAX_DEPTH: usize = 6;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

/// The document's operations as requests, in path order. `Err` says what is wrong with it,
/// with a JSON syntax error's line and column.
pub fn requests(text: &str) -> Result<Vec<MixEntry>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        format!(
            "not an OpenAPI document in JSON: {e} (a YAML document must be converted to JSON first)"
        )
    })?;
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    if !version.starts_with('3') {
        return Err(format!(
            "`openapi` is {:?}: only OpenAPI 3 documents are read",
            doc.get("openapi").unwrap_or(&Value::Null)
        ));
    }
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("the document has no `paths`")?;
    let mut out = Vec::new();
    for (path, item) in paths {
        if !path.starts_with('/') {
            return Err(format!("`{path}` in `paths` does not start with /"));
        }
        let shared = item.get("parameters").and_then(Value::as_array);
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            out.push(operation(&doc, path, method, op, shared)?);
        }
    }
    if out.is_empty() {
        return Err("the document describes no operation".into());
    }
    Ok(out)
}

/// One operation as a request.
fn operation(
    doc: &Value,
    path: &str,
    method: &str,
    op: &Value,
    shared: Option<&Vec<Value>>,
) -> Result<MixEntry, String> {
    let mut params = BTreeMap::new();
    let mut query = Vec::new();
    let own = op.get("parameters").and_then(Value::as_array);
    for p in shared.into_iter().chain(own).flatten() {
        let p = resolve(doc, p, 0);
        let (Some(name), Some(place)) = (
            p.get("name").and_then(Value::as_str),
            p.get("in").and_then(Value::as_str),
        ) else {
            continue;
        };
        let schema = p.get("schema").map(|s| resolve(doc, s, 0));
        let key = placeholder(name);
        match place {
            "path" => {
                params.insert(key, param(schema));
            }
            "query" if p.get("required").and_then(Value::as_bool) == Some(true) => {
                query.push(format!("{name}={{{key}}}"));
                params.insert(key, param(schema));
            }
            _ => {}
        }
    }
    // Every `{name}` of the path needs a value even when the document forgot to declare it.
    let mut path_template = String::new();
    for segment in path.split('/').skip(1) {
        path_template.push('/');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => {
                let key = placeholder(name);
                params
                    .entry(key.clone())
                    .or_insert(Param::Value("1".into()));
                path_template.push_str(&format!("{{{key}}}"));
            }
            None => path_template.push_str(segment),
        }
    }
    if !query.is_empty() {
        path_template.push('?');
        path_template.push_str(&query.join("&"));
    }
    let body = op
        .get("requestBody")
        .map(|b| resolve(doc, b, 0))
        .and_then(|b| b.pointer("/content/application~1json/schema").cloned())
        .map(|schema| example(doc, &schema, 0).to_string());
    let mut headers = BTreeMap::new();
    if body.is_some() {
        headers.insert("content-type".to_string(), "application/json".to_string());
    }
    Ok(MixEntry {
        weight: 1,
        request: format!("{} {path_template}", method.to_ascii_uppercase()),
        params,
        body,
        idempotency_key: None,
        retry_same_key: 0,
        headers,
        capture: BTreeMap::new(),
    })
}

/// A parameter name as a placeholder: letters, digits and `_` only.
fn placeholder(name: &str) -> String {
    let mut key: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        key.insert(0, '_');
    }
    key
}

/// A generator for a parameter of this schema: an integer drawn in its range, one of its
/// `enum`, its example, or a plain word.
fn param(schema: Option<Value>) -> Param {
    let Some(s) = schema else {
        return Param::Value("x".into());
    };
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        let words: Vec<String> = values.iter().map(plain).collect();
        if !words.is_empty() {
            return Param::OneOf(words);
        }
    }
    if let Some(e) = s.get("example") {
        return Param::Value(plain(e));
    }
    match s.get("type").and_then(Value::as_str) {
        Some("integer") | Some("number") => {
            let low = s.get("minimum").and_then(Value::as_i64).unwrap_or(1);
            let high = s
                .get("maximum")
                .and_then(Value::as_i64)
                .unwrap_or(low.saturating_add(99));
            Param::Uniform([low, high.max(low)])
        }
        Some("boolean") => Param::OneOf(vec!["true".into(), "false".into()]),
        _ if s.get("format").and_then(Value::as_str) == Some("uuid") => Param::Uuid,
        _ => Param::Value("x".into()),
    }
}

/// A JSON value as it goes in a URL: strings without their quotes.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `v`, or what its `$ref` points at inside the document.
fn resolve(doc: &Value, v: &Value, depth: usize) -> Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) if depth < MAX_DEPTH => match r.strip_prefix('#') {
            Some(pointer) => doc
                .pointer(pointer)
                .map(|t| resolve(doc, t, depth + 1))
                .unwrap_or(Value::Null),
            None => Value::Null,
        },
        Some(_) => Value::Null,
        None => v.clone(),
    }
}

/// A valid value of `schema`: its example or default, else one built from its type (every
/// property of an object, one item of an array).
fn example(doc: &Value, schema: &Value, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return Value::Null;
    }
    let s = resolve(doc, schema, depth);
    if let Some(e) = s.get("example").or_else(|| s.get("default")) {
        return e.clone();
    }
    if let Some(first) = s
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(first) = s.get(key).and_then(Value::as_array) {
            if key == "allOf" {
                let mut merged = serde_json::Map::new();
                for part in first {
                    if let Value::Object(m) = example(doc, part, depth + 1) {
                        merged.extend(m);
                    }
                }
                return Value::Object(merged);
            }
            if let Some(one) = first.first() {
                return example(doc, one, depth + 1);
            }
        }
    }
    let kind = s.get("type").and_then(Value::as_str).unwrap_or_else(|| {
        if s.get("properties").is_some() {
            "object"
        } else {
            "string"
        }
    });
    match kind {
        "object" => {
            let mut m = serde_json::Map::new();
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (name, p) in props {
                    m.insert(name.clone(), example(doc, p, depth + 1));
                }
            }
            Value::Object(m)
        }
        "array" => match s.get("items") {
            Some(items) => Value::Array(vec![example(doc, items, depth + 1)]),
            None => Value::Array(Vec::new()),
        },
        "integer" => Value::from(s.get("minimum").and_then(Value::as_i64).unwrap_or(1)),
        "number" => Value::from(1.5),
        "boolean" => Value::Bool(true),
        _ => Value::String(match s.get("format").and_then(Value::as_str) {
            Some("email") => "user@example.com".into(),
            Some("date-time") => "2026-01-01T00:00:00Z".into(),
            Some("date") => "2026-01-01".into(),
            Some("uuid") => "00000000-0000-4000-8000-000000000000".into(),
            _ => "x".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PETS: &str = r##"{
      "openapi": "3.0.3",
      "info": {"title": "pets", "version": "1"},
      "paths": {
        "/pets": {
          "get": {"parameters": [
            {"name": "limit", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 1, "maximum": 50}},
            {"name": "tag", "in": "query", "schema": {"type": "string"}}
          ]},
          "post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewPet"}}}}}
        },
        "/pets/{pet-id}": {
          "parameters": [{"name": "pet-id", "in": "path", "required": true, "schema": {"type": "integer"}}],
          "get": {},
          "delete": {}
        }
      },
      "components": {"schemas": {
        "NewPet": {"type": "object", "properties": {
          "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0},
          "email": {"type": "string", "format": "email"},
          "kind": {"enum": ["cat", "dog"]}, "tags": {"type": "array", "items": {"type": "string"}},
          "owner": {"$ref": "#/components/schemas/Owner"}
        }},
        "Owner": {"type": "object", "properties": {"id": {"type": "integer", "example": 7}}}
      }}
    }"##;

    #[test]
    fn each_operation_becomes_a_request_with_its_parameters_and_body() {
        let r = requests(PETS).unwrap();
        let lines: Vec<&str> = r.iter().map(|m| m.request.as_str()).collect();
        assert_eq!(
            lines,
            [
                "GET /pets?limit={limit}",
                "POST /pets",
                "GET /pets/{pet_id}",
                "DELETE /pets/{pet_id}"
            ]
        );
        assert_eq!(r[0].params["limit"], Param::Uniform([1, 50]));
        assert!(!r[0].params.contains_key("tag"), "optional query left out");
        let body: Value = serde_json::from_str(r[1].body.as_deref().unwrap()).unwrap();
        assert_eq!(body["name"], "x");
        assert_eq!(body["age"], 0);
        assert_eq!(body["email"], "user@example.com");
        assert_eq!(body["kind"], "cat");
        assert_eq!(body["tags"], serde_json::json!(["x"]));
        assert_eq!(body["owner"]["id"], 7);
        assert_eq!(r[1].headers["content-type"], "application/json");
        assert_eq!(r[2].params["pet_id"], Param::Uniform([1, 100]));
    }

    #[test]
    fn a_document_that_is_not_openapi_3_json_is_refused_saying_why() {
        let e = requests("openapi: 3.0.0\n").unwrap_err();
        assert!(e.contains("YAML") && e.contains("line 1"), "{e}");
        let e = requests(r#"{"swagger": "2.0", "paths": {}}"#).unwrap_err();
        assert!(e.contains("only OpenAPI 3"), "{e}");
        let e = requests(r#"{"openapi": "3.1.0", "paths": {}}"#).unwrap_err();
        assert!(e.contains("no operation"), "{e}");
        let e = requests(r#"{"openapi": "3.1.0", "paths": {"pets": {"get": {}}}}"#).unwrap_err();
        assert!(e.contains("does not start with /"), "{e}");
    }

    #[test]
    fn a_recursive_schema_ends_instead_of_looping() {
        let doc = r##"{"openapi": "3.0.0", "paths": {"/t": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}}}},
          "components": {"schemas": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}}}}}"##;
        let r = requests(doc).unwrap();
        let body = r[0].body.as_deref().unwrap();
        let depth = body.matches("next").count();
        assert!((1..=MAX_DEPTH + 1).contains(&depth), "{body}");
    }
}

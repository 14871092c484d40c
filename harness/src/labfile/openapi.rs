//! An OpenAPI 3 document (JSON or YAML) read into requests for the invalid-input cause: each
//! operation becomes a request the generator starts from (its path parameters drawn from their
//! schemas, its required query parameters filled, its JSON body built from the body schema), so
//! the hostile variants reach every operation the service documents, not only the ones the lab
//! file's load sends.
//!
//! Only what a valid request needs is read: `paths`, each operation's `parameters` (path and
//! required query, with the path item's own), `requestBody`'s `application/json` schema, and
//! `$ref`s into `#/components`. Anything else in the document is left alone.
//!
//! A document is JSON or YAML by its name (`.json`, `.yaml`, `.yml`); another name is read as
//! JSON and, when that fails, as YAML. Either way it becomes one `serde_json::Value`, so the
//! reading below does not know which it was. A syntax error names the document's line and
//! column, `file:line:column:`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::load::{MixEntry, Param};

/// How deep a body schema is followed (nested objects, arrays, `$ref`s): a recursive schema
/// stops here with `null`.
const MAX_DEPTH: usize = 6;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch"];

/// The operations of the document `text`, read from `path`, as requests, in path order. `Err`
/// says what is wrong with it, beginning with the file's name (and a syntax error's line and
/// column).
pub fn requests(path: &Path, text: &str) -> Result<Vec<MixEntry>, String> {
    let doc = parse(path, text)?;
    operations(&doc).map_err(|e| format!("{}: {e}", path.display()))
}

/// How a document is written, told by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Json,
    Yaml,
    /// Neither name: JSON is tried, then YAML.
    Either,
}

impl Syntax {
    fn of(path: &Path) -> Syntax {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext.eq_ignore_ascii_case("json") {
            Syntax::Json
        } else if ext.eq_ignore_ascii_case("yaml") || ext.eq_ignore_ascii_case("yml") {
            Syntax::Yaml
        } else {
            Syntax::Either
        }
    }
}

/// The document as one JSON value, whichever it is written in.
fn parse(path: &Path, text: &str) -> Result<Value, String> {
    match Syntax::of(path) {
        Syntax::Json => from_json(path, text, "not valid JSON: "),
        Syntax::Yaml => from_yaml(path, text, "not valid YAML: "),
        Syntax::Either => from_json(path, text, "").or_else(|as_json| {
            from_yaml(path, text, "").map_err(|as_yaml| {
                format!(
                    "{} is neither JSON nor YAML (its name ends in none of .json, .yaml, .yml, \
                     so both were tried): as JSON, {as_json}; as YAML, {as_yaml}",
                    path.display()
                )
            })
        }),
    }
}

/// A JSON document, or `file:line:column: {label}what is wrong`.
fn from_json(path: &Path, text: &str, label: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| {
        let (line, column) = (e.line(), e.column());
        format!(
            "{}:{line}:{column}: {label}{}",
            path.display(),
            without_position(e.to_string(), line, column)
        )
    })
}

/// A YAML document with its aliases and merge keys (`<<: *base`) resolved, or
/// `file:line:column: {label}what is wrong` (`file:` for an error without a position, such as a
/// merge of a scalar). Expanding aliases stops at a limit, so an alias bomb is an error, not a
/// hang.
pub(super) fn from_yaml(path: &Path, text: &str, label: &str) -> Result<Value, String> {
    let error = |e: yaml_serde::Error| match e.location() {
        Some(at) => format!(
            "{}:{}:{}: {label}{}",
            path.display(),
            at.line(),
            at.column(),
            without_position(e.to_string(), at.line(), at.column())
        ),
        None => format!("{}: {label}{e}", path.display()),
    };
    let mut doc: yaml_serde::Value = yaml_serde::from_str(text).map_err(error)?;
    doc.apply_merge().map_err(error)?;
    // Keys that YAML reads as numbers or booleans (`201:` under `responses`) become strings.
    serde_json::to_value(doc).map_err(|e| format!("{}: {label}{e}", path.display()))
}

/// A parser's message without the position the caller already puts in front (the position of
/// its context, as in "while parsing a block mapping at line 2 column 3", stays).
fn without_position(message: String, line: usize, column: usize) -> String {
    message.replacen(&format!(" at line {line} column {column}"), "", 1)
}

/// The operations of a parsed document.
fn operations(doc: &Value) -> Result<Vec<MixEntry>, String> {
    if !doc.is_object() {
        return Err(format!(
            "not an OpenAPI document: it is {}, not a mapping with `openapi` and `paths`",
            kind(doc)
        ));
    }
    let version = match doc.get("openapi") {
        Some(Value::String(s)) => s.clone(),
        // YAML reads `openapi: 3.1` as a number.
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    if !version.starts_with('3') {
        return Err(format!(
            "`openapi` is {}: only OpenAPI 3 documents are read",
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
            out.push(operation(doc, path, method, op, shared)?);
        }
    }
    if out.is_empty() {
        return Err("the document describes no operation".into());
    }
    Ok(out)
}

/// What a JSON value is, for a message.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
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

    /// PETS in YAML, as such documents are usually written: block style, unquoted keys, a
    /// response code as a key, comments.
    const PETS_YAML: &str = r##"# the pets API
openapi: 3.0.3
info:
  title: pets
  version: "1"
paths:
  /pets:
    get:
      parameters:
        - name: limit
          in: query
          required: true
          schema: {type: integer, minimum: 1, maximum: 50}
        - name: tag
          in: query
          schema:
            type: string
    post:
      requestBody:
        content:
          application/json:
            schema:
              $ref: "#/components/schemas/NewPet"
      responses:
        201:
          description: created
  /pets/{pet-id}:
    parameters:
      - name: pet-id
        in: path
        required: true
        schema:
          type: integer
    get: {}
    delete: {}
components:
  schemas:
    NewPet:
      type: object
      properties:
        name: {type: string}
        age: {type: integer, minimum: 0}
        email: {type: string, format: email}
        kind:
          enum: [cat, dog]
        tags:
          type: array
          items: {type: string}
        owner:
          $ref: '#/components/schemas/Owner'
    Owner:
      type: object
      properties:
        id:
          type: integer
          example: 7
"##;

    fn json(text: &str) -> Result<Vec<MixEntry>, String> {
        requests(Path::new("/lab/api.json"), text)
    }

    fn yaml(text: &str) -> Result<Vec<MixEntry>, String> {
        requests(Path::new("/lab/api.yaml"), text)
    }

    #[test]
    fn each_operation_becomes_a_request_with_its_parameters_and_body() {
        let r = json(PETS).unwrap();
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
    fn the_same_document_in_yaml_and_in_json_gives_the_same_requests() {
        let from_json = json(PETS).unwrap();
        assert_eq!(yaml(PETS_YAML).unwrap(), from_json);
        // `.yml` is YAML too, and a name that is neither is read by its content.
        assert_eq!(
            requests(Path::new("api.YML"), PETS_YAML).unwrap(),
            from_json
        );
        assert_eq!(
            requests(Path::new("openapi"), PETS_YAML).unwrap(),
            from_json
        );
        assert_eq!(requests(Path::new("openapi"), PETS).unwrap(), from_json);
        // JSON is YAML: a JSON document named .yaml reads the same.
        assert_eq!(yaml(PETS).unwrap(), from_json);
    }

    #[test]
    fn yaml_anchors_and_aliases_are_followed() {
        let doc = r##"openapi: "3.1.0"
x-shared:
  id: &id
    name: id
    in: path
    required: true
    schema: {type: integer, minimum: 5, maximum: 9}
  item: &item
    type: object
    properties:
      name: {type: string, example: widget}
paths:
  /items/{id}:
    parameters: [*id]
    put:
      requestBody:
        content:
          application/json:
            schema: *item
  /items/{id}/copy:
    post:
      parameters:
        - *id
      requestBody:
        content:
          application/json:
            schema:
              <<: *item
              description: the same item, merged
"##;
        let r = yaml(doc).unwrap();
        let lines: Vec<&str> = r.iter().map(|m| m.request.as_str()).collect();
        assert_eq!(lines, ["PUT /items/{id}", "POST /items/{id}/copy"]);
        for m in &r {
            assert_eq!(m.params["id"], Param::Uniform([5, 9]), "{}", m.request);
            assert_eq!(
                m.body.as_deref(),
                Some(r#"{"name":"widget"}"#),
                "{}",
                m.request
            );
        }
    }

    #[test]
    fn a_yaml_syntax_error_names_the_documents_line_and_column() {
        let e = yaml("openapi: 3.0.0\npaths:\n  /a:\n    get: {}\n   post: {}\n").unwrap_err();
        assert!(e.starts_with("/lab/api.yaml:5:4: not valid YAML: "), "{e}");
        // The position is given once, at the front.
        assert!(!e.contains("line 5 column 4"), "{e}");
        let e = yaml("openapi: 3.0.0\npaths: [\n").unwrap_err();
        assert!(e.contains("/lab/api.yaml:3:1: "), "{e}");
        let e = yaml("openapi: 3.0.0\npaths:\n  /a: *nowhere\n").unwrap_err();
        assert!(
            e.contains("/lab/api.yaml:3:7: ") && e.contains("unknown anchor"),
            "{e}"
        );
    }

    #[test]
    fn a_json_syntax_error_names_the_documents_line_and_column() {
        let e = json("{\"openapi\": \"3.0.0\",\n  \"paths\": [}").unwrap_err();
        assert!(e.starts_with("/lab/api.json:2:13: not valid JSON: "), "{e}");
        assert!(!e.contains("line 2 column 13"), "{e}");
        // A YAML document named .json is JSON's error, not read as YAML.
        let e = json(PETS_YAML).unwrap_err();
        assert!(e.starts_with("/lab/api.json:1:1: not valid JSON: "), "{e}");
    }

    #[test]
    fn a_document_that_is_neither_json_nor_yaml_is_refused_saying_so() {
        let e = requests(
            Path::new("/lab/api.txt"),
            "{\"openapi\": \"3.0.0\",\n  \"paths\": {]}",
        )
        .unwrap_err();
        assert!(
            e.starts_with("/lab/api.txt is neither JSON nor YAML"),
            "{e}"
        );
        assert!(
            e.contains("as JSON, /lab/api.txt:2:13: ") && e.contains("as YAML, /lab/api.txt:2:"),
            "{e}"
        );
        // YAML that is a plain string, not a mapping.
        let e = requests(Path::new("/lab/api.txt"), "just some words\n").unwrap_err();
        assert!(
            e.contains("not an OpenAPI document: it is a string, not a mapping"),
            "{e}"
        );
        let e = yaml("").unwrap_err();
        assert!(
            e.contains("/lab/api.yaml: not an OpenAPI document: it is empty"),
            "{e}"
        );
    }

    #[test]
    fn a_yaml_alias_bomb_is_refused_instead_of_expanded() {
        // Nine levels of nine aliases each: 9^9 copies of "lol" if expanded.
        let mut doc = String::from("openapi: 3.0.0\na: &a [lol]\n");
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g", "h", "i", "j"])
        {
            doc.push_str(&format!(
                "{name}: &{name} [{}]\n",
                vec![format!("*{prev}"); 9].join(", ")
            ));
        }
        doc.push_str("paths: {/x: {get: {}}}\n");
        let started = std::time::Instant::now();
        let e = yaml(&doc).unwrap_err();
        assert!(e.contains("repetition limit exceeded"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_document_that_is_not_openapi_3_is_refused_saying_why() {
        let e = json(r#"{"swagger": "2.0", "paths": {}}"#).unwrap_err();
        assert!(e.contains("only OpenAPI 3"), "{e}");
        let e = yaml("swagger: \"2.0\"\npaths: {}\n").unwrap_err();
        assert!(
            e.starts_with("/lab/api.yaml: `openapi` is null: only OpenAPI 3"),
            "{e}"
        );
        let e = json(r#"{"openapi": "3.1.0", "paths": {}}"#).unwrap_err();
        assert!(e.contains("no operation"), "{e}");
        let e = json(r#"{"openapi": "3.1.0", "paths": {"pets": {"get": {}}}}"#).unwrap_err();
        assert!(e.contains("does not start with /"), "{e}");
        let e = json("[1, 2]").unwrap_err();
        assert!(e.contains("it is a list, not a mapping"), "{e}");
        // `openapi: 3.1` unquoted is a number in YAML: still version 3.
        assert_eq!(
            yaml("openapi: 3.1\npaths: {/x: {get: {}}}\n")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_recursive_schema_ends_instead_of_looping() {
        let doc = r##"{"openapi": "3.0.0", "paths": {"/t": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}}}},
          "components": {"schemas": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}}}}}"##;
        let r = json(doc).unwrap();
        let body = r[0].body.as_deref().unwrap();
        let depth = body.matches("next").count();
        assert!((1..=MAX_DEPTH + 1).contains(&depth), "{body}");
    }
}

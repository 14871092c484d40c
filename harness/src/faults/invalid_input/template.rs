//! What the generator varies, read from the scenario's requests: each mix entry rendered once,
//! as the load generator sends it (its built-in defaults and parameters filled in), then split
//! along its request line: the path at each `{param}`, the query into its pairs, the headers
//! the load adds (`content-type`, `idempotency-key`) apart from the entry's own, and the body.
//!
//! Rendering through the load's own preview means the generator starts from requests the service
//! really receives, whatever the service: nothing here knows any route.

use std::collections::BTreeMap;

use crate::load::{LoadPlan, MixEntry, Param};

/// A piece of a path: text of the request line, or a placeholder with the value the load
/// rendered for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Param(String),
}

/// One mix entry, rendered and split.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The request line as the load records it: `POST /widgets`.
    pub line: String,
    pub method: reqwest::Method,
    /// The mix entry's weight.
    pub weight: u32,
    pub path: Vec<Part>,
    /// The query's pairs as rendered; a pair without `=` has no value.
    pub query: Vec<(String, Option<String>)>,
    /// The `content-type` the load sends with it, if any.
    pub content_type: Option<String>,
    /// The load sends an `Idempotency-Key` with it.
    pub idempotency_key: bool,
    /// The entry's own headers, rendered.
    pub headers: Vec<(String, String)>,
    /// The body, rendered.
    pub body: Option<String>,
}

impl Template {
    /// Whether there is anything to vary: a path placeholder, a query, a body or a key.
    pub fn varies(&self) -> bool {
        self.path.iter().any(|p| matches!(p, Part::Param(_)))
            || !self.query.is_empty()
            || self.body.is_some()
            || self.idempotency_key
    }
}

/// Renders each entry of `mix` once, drawing its values with `seed`.
pub fn templates(mix: &[MixEntry], seed: u64) -> Result<Vec<Template>, String> {
    mix.iter().map(|m| template(m, seed)).collect()
}

fn template(m: &MixEntry, seed: u64) -> Result<Template, String> {
    let bad = |reason: String| format!("request {:?}: {reason}", m.request);
    // The entry alone, once: a value captured from another request's answer is not there to
    // be read, and is drawn as the load draws it while its pool is empty (a UUID).
    let mut one = m.clone();
    one.weight = 1;
    one.retry_same_key = 0;
    one.capture.clear();
    for p in one.params.values_mut() {
        if matches!(p, Param::Captured(_)) {
            *p = Param::Uuid;
        }
    }
    let mut plan = LoadPlan::new("http://127.0.0.1:1", 1.0, vec![one]);
    plan.requests = Some(1);
    plan.seed = seed;
    let rendered = plan
        .preview(1)
        .map_err(|e| bad(e.to_string()))?
        .pop()
        .ok_or_else(|| bad("the load renders nothing for it".into()))?;
    let method = reqwest::Method::from_bytes(rendered.method.as_bytes())
        .map_err(|_| bad(format!("`{}` is not an HTTP method", rendered.method)))?;
    let path_template = rendered
        .route
        .split_once(' ')
        .map_or("", |(_, route)| route)
        .split('?')
        .next()
        .unwrap_or("");
    let (path, query) = match rendered.path.split_once('?') {
        Some((path, query)) => (path, query),
        None => (rendered.path.as_str(), ""),
    };
    let mut headers: BTreeMap<String, String> = rendered.headers;
    Ok(Template {
        path: split_path(path_template, path).unwrap_or_else(|| vec![Part::Text(path.into())]),
        query: split_query(query),
        content_type: headers.remove("content-type"),
        idempotency_key: headers.remove("idempotency-key").is_some(),
        headers: headers.into_iter().collect(),
        body: rendered.body,
        method,
        weight: m.weight,
        line: rendered.route,
    })
}

/// Splits `rendered` along `template`'s placeholders: each takes the rendered text up to the
/// template's next text. `None` when the two do not line up.
pub fn split_path(template: &str, rendered: &str) -> Option<Vec<Part>> {
    let mut parts = Vec::new();
    let (mut template, mut rendered) = (template, rendered);
    while let Some(open) = template.find('{') {
        let (text, after) = template.split_at(open);
        rendered = rendered.strip_prefix(text)?;
        if !text.is_empty() {
            parts.push(Part::Text(text.into()));
        }
        template = &after[after.find('}')? + 1..];
        let next = &template[..template.find('{').unwrap_or(template.len())];
        let end = match (next.is_empty(), template.is_empty()) {
            (true, true) => rendered.len(),
            // Two placeholders side by side: the second takes it all.
            (true, false) => 0,
            (false, _) => rendered.find(next)?,
        };
        parts.push(Part::Param(rendered[..end].into()));
        rendered = &rendered[end..];
    }
    if template != rendered {
        return None;
    }
    if !template.is_empty() {
        parts.push(Part::Text(template.into()));
    }
    Some(parts)
}

fn split_query(query: &str) -> Vec<(String, Option<String>)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (name.into(), Some(value.into())),
            None => (pair.into(), None),
        })
        .collect()
}

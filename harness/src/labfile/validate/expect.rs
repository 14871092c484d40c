//! `[expect]`: what "responds correctly" means for the service: its error format, whether a 503
//! says when to retry, what an error body must never show, and how a stale answer is marked.

use std::str::FromStr;

use super::Validator;
use crate::labfile::raw::{RawExpect, RawStored};
use crate::labfile::{ErrorFormat, LabFileError, ServiceExpect, Stored};

impl Validator<'_> {
    pub(super) fn expect(&self, e: RawExpect) -> Result<ServiceExpect, LabFileError> {
        let errors = match e.errors.as_ref().map(|v| (v.get_ref().as_str(), v.span())) {
            None | Some(("problem+json", _)) => ErrorFormat::ProblemJson,
            Some(("any", _)) => ErrorFormat::Any,
            Some(("json", span)) => {
                if e.error_fields.is_empty() {
                    return Err(self.err(
                        span,
                        "errors = \"json\" needs the fields every error body has",
                        "add error_fields = [\"error\"]",
                    ));
                }
                ErrorFormat::Json {
                    fields: e.error_fields.iter().map(|f| f.get_ref().clone()).collect(),
                }
            }
            Some((other, span)) => {
                return Err(self.err(
                    span,
                    format!("unknown error format `{other}`"),
                    "\"problem+json\" (RFC 9457), \"json\" with error_fields, or \"any\"",
                ));
            }
        };
        if !matches!(errors, ErrorFormat::Json { .. })
            && let Some(f) = e.error_fields.first()
        {
            return Err(self.err(f.span(), "error_fields only apply to errors = \"json\"", ""));
        }
        let mut leak_patterns = Vec::new();
        for p in &e.leak_patterns {
            if let Err(err) = regex::Regex::new(p.get_ref()) {
                let first = err.to_string();
                let first = first.lines().last().unwrap_or("").trim().to_string();
                return Err(self.err(
                    p.span(),
                    format!("`{}` is not a regular expression: {first}", p.get_ref()),
                    "the syntax is Rust's `regex` crate's; in TOML, '...' strings need no escaping",
                ));
            }
            leak_patterns.push(p.get_ref().clone());
        }
        let stale_header = match &e.stale_header {
            None => None,
            Some(h) => match h.get_ref().split_once(':') {
                Some((n, v))
                    if http::HeaderName::from_str(n.trim()).is_ok() && !v.trim().is_empty() =>
                {
                    Some((n.trim().to_ascii_lowercase(), v.trim().to_string()))
                }
                _ => {
                    return Err(self.err(
                        h.span(),
                        format!("`{}` is not `name: value`", h.get_ref()),
                        "stale_header = \"x-cache: stale\"",
                    ));
                }
            },
        };
        let stored = e
            .stored
            .as_ref()
            .map(|s| self.stored(s.get_ref()))
            .transpose()?;
        Ok(ServiceExpect {
            errors,
            retry_after: e.retry_after.unwrap_or(true),
            leak_patterns,
            stale_routes: e
                .stale_routes
                .iter()
                .map(|r| r.get_ref().split_whitespace().collect::<Vec<_>>().join(" "))
                .collect(),
            stale_header,
            stored,
            invariants: e.invariants.iter().map(|q| q.get_ref().clone()).collect(),
        })
    }

    /// `[expect.stored]`: a request line, the answer's id field, and SQL identifiers.
    fn stored(&self, s: &RawStored) -> Result<Stored, LabFileError> {
        let request = s.request.get_ref().split_whitespace().collect::<Vec<_>>();
        if request.len() != 2 || !request[1].starts_with('/') {
            return Err(self.err(
                s.request.span(),
                format!("`{}` is not a request line", s.request.get_ref()),
                "request = \"POST /items\", as in a [[request]]",
            ));
        }
        for ident in [Some(&s.table), s.column.as_ref()].into_iter().flatten() {
            if !is_sql_identifier(ident.get_ref()) {
                return Err(self.err(
                    ident.span(),
                    format!("`{}` is not a plain SQL name", ident.get_ref()),
                    "letters, digits and `_`, not starting with a digit (a schema may come first: `app.items`)",
                ));
            }
        }
        Ok(Stored {
            request: request.join(" "),
            id: s.id.as_ref().map_or("id".into(), |i| i.get_ref().clone()),
            table: s.table.get_ref().clone(),
            column: s
                .column
                .as_ref()
                .map_or("id".into(), |c| c.get_ref().clone()),
        })
    }
}

/// `name` or `schema.name`, each part letters, digits and `_` not starting with a digit: safe to
/// quote into SQL.
fn is_sql_identifier(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

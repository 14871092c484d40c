//! `[expect]`: what "responds correctly" means for the service: its error format, whether a 503
//! says when to retry, what an error body must never show, and how a stale answer is marked.

use std::str::FromStr;

use super::Validator;
use crate::labfile::raw::RawExpect;
use crate::labfile::{ErrorFormat, LabFileError, ServiceExpect};

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
        })
    }
}

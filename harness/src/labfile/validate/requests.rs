//! `[[request]]`: the lab file's request mix, each request checked on its own and then the
//! whole mix compiled by the load generator, whose refusals are reported at the request named.

use std::str::FromStr;

use toml::Spanned;

use super::{Validator, is_name};
use crate::labfile::LabFileError;
use crate::labfile::raw::RawRequest;
use crate::load::{LoadPlan, MixEntry};

impl Validator<'_> {
    pub(super) fn requests(
        &self,
        raw: &[Spanned<RawRequest>],
        rate: f64,
    ) -> Result<Vec<MixEntry>, LabFileError> {
        let mut mix = Vec::new();
        for r in raw {
            mix.push(self.request(r)?);
        }
        // The generator compiles the whole mix (captures link requests to each other); what it
        // refuses is reported at the request it names.
        if !mix.is_empty() {
            let mut plan = LoadPlan::new("http://127.0.0.1:1", rate, mix.clone());
            plan.requests = Some(1);
            let preview = plan.preview(8 * mix.len() as u64);
            match preview {
                Err(e) => {
                    let named = match &e {
                        crate::load::LoadError::BadRequest { request, .. } => {
                            mix.iter().position(|m| &m.request == request)
                        }
                        _ => None,
                    };
                    let span = raw[named.unwrap_or(0)].span();
                    return Err(self.err(
                        span,
                        e.to_string(),
                        "docs/lab-file.md describes requests",
                    ));
                }
                Ok(drawn) => {
                    for d in drawn {
                        let Some(body) = &d.body else { continue };
                        if serde_json::from_str::<serde_json::Value>(body).is_err() {
                            let i = mix.iter().position(|m| m.request == d.route).unwrap_or(0);
                            let span = raw[i].get_ref().body.as_ref().map(|b| b.span());
                            return Err(self.err(
                                span.unwrap_or(raw[i].span()),
                                format!(
                                    "the body of `{}` is not JSON once filled in: {body}",
                                    d.route
                                ),
                                "string placeholders need quotes around them: \"name\": \"{name}\"",
                            ));
                        }
                    }
                }
            }
        }
        Ok(mix)
    }

    fn request(&self, r: &Spanned<RawRequest>) -> Result<MixEntry, LabFileError> {
        let q = r.get_ref();
        let method = match &q.method {
            None => "GET".to_string(),
            Some(m) => {
                let up = m.get_ref().to_ascii_uppercase();
                if http::Method::from_str(&up).is_err() || up.contains(char::is_whitespace) {
                    return Err(self.err(
                        m.span(),
                        format!("`{}` is not an HTTP method", m.get_ref()),
                        "",
                    ));
                }
                up
            }
        };
        let path = q.path.get_ref();
        if !path.starts_with('/') || path.contains(char::is_whitespace) {
            return Err(self.err(
                q.path.span(),
                format!("`{path}` is not a path"),
                "a path starts with `/` and has no spaces: \"/items/{id}\"",
            ));
        }
        let weight = match &q.weight {
            Some(w) if *w.get_ref() == 0 => {
                return Err(self.err(
                    w.span(),
                    "a request with weight 0 is never sent",
                    "remove it, or give it a positive weight",
                ));
            }
            Some(w) => *w.get_ref(),
            None => 1,
        };
        let mut entry = MixEntry::new(weight, format!("{method} {path}"));
        entry.params = q
            .params
            .iter()
            .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()))
            .collect();
        entry.body = q.body.as_ref().map(|b| b.get_ref().clone());
        // `idempotency_key` unset means no key here: lab-file requests get no target-app
        // defaults.
        entry.idempotency_key = Some(q.idempotency_key.unwrap_or(false));
        for (k, v) in &q.headers {
            if http::HeaderName::from_str(k.get_ref()).is_err() {
                return Err(self.err(
                    k.span(),
                    format!("`{}` is not a header name", k.get_ref()),
                    "",
                ));
            }
            entry
                .headers
                .insert(k.get_ref().to_ascii_lowercase(), v.get_ref().clone());
        }
        for (pool, field) in &q.capture {
            if !is_name(pool.get_ref()) {
                return Err(self.err(
                    pool.span(),
                    format!("`{}` is not a capture name", pool.get_ref()),
                    "",
                ));
            }
            entry
                .capture
                .insert(pool.get_ref().clone(), field.get_ref().clone());
        }
        Ok(entry)
    }
}

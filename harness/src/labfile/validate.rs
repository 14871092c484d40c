//! From the raw lab file to [`LabFile`]: every check that types alone do not make (one of
//! `command` and `url`, placeholders that exist where they are used, files that exist, regular
//! expressions that compile, requests the load generator accepts), each error at the place in
//! the file it is about.
//!
//! This file holds the entry point, the shared helpers (located errors, templates, durations,
//! paths) and the file as a whole; `scope.rs` which placeholders exist where, `service.rs` and
//! `command.rs` the `[service]` table, `deps.rs` the dependencies, `expect.rs` the service's
//! `[expect]`, `requests.rs` the request mix.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawLabFile, RawLoad, Str};
use super::*;
use crate::located::Source;

mod command;
mod container;
mod deps;
mod expect;
mod requests;
mod scope;
mod service;

use scope::{Context, Scope};

pub fn parse(path: &Path, text: &str) -> Result<LabFile, LabFileError> {
    let src = Source { file: path, text };
    let raw: RawLabFile = toml::from_str(text).map_err(|e| {
        let message = e.message().to_string();
        let hint = if message.starts_with("unknown field") {
            Some("check the spelling; docs/lab-file.md lists every key".into())
        } else if message.starts_with("missing field") {
            Some("docs/lab-file.md says which keys each table needs".into())
        } else {
            None
        };
        src.error(e.span(), message, hint)
    })?;
    let dir = match path.parent() {
        Some(d) if d.as_os_str().is_empty() => PathBuf::from("."),
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let v = Validator {
        src: &src,
        dir: &dir,
        scope: Scope::default(),
    };
    v.lab(raw)
}

struct Validator<'a> {
    src: &'a Source<'a>,
    dir: &'a Path,
    scope: Scope,
}

fn is_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Validator<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>, hint: &str) -> LabFileError {
        let hint = (!hint.is_empty()).then(|| hint.to_string());
        self.src.error(Some(span), message, hint)
    }

    fn template(&self, value: &Str, ctx: Context) -> Result<Template, LabFileError> {
        Template::parse(value.get_ref(), &|n| self.scope.known(ctx, n)).map_err(|e| {
            // Point at the placeholder itself: find it in the source text of the value.
            let span = value.span();
            let raw = &self.src.text[span.clone()];
            let needle = format!("{{{}}}", e.name);
            let at = raw
                .find(&needle)
                .map(|i| span.start + i..span.start + i + needle.len())
                .unwrap_or(span);
            let allowed = self.scope.listing(ctx);
            let hint = if allowed.is_empty() {
                "no placeholder is available here".to_string()
            } else {
                format!("available here: {allowed}")
            };
            self.err(at, e.to_string(), &hint)
        })
    }

    fn duration(&self, value: &Str) -> Result<Duration, LabFileError> {
        humantime::parse_duration(value.get_ref().trim()).map_err(|e| {
            self.err(
                value.span(),
                format!("`{}` is not a duration: {e}", value.get_ref()),
                "write durations like \"250ms\", \"5s\" or \"2m\"",
            )
        })
    }

    /// A path relative to the lab file's directory that must exist.
    fn existing(&self, value: &Str, what: &str) -> Result<PathBuf, LabFileError> {
        let p = self.dir.join(value.get_ref());
        if p.exists() {
            Ok(p)
        } else {
            Err(self.err(
                value.span(),
                format!("no {what} at {}", p.display()),
                "paths are relative to the lab file's directory",
            ))
        }
    }

    fn http_path(&self, value: &Str, what: &str) -> Result<String, LabFileError> {
        let p = value.get_ref();
        if p.starts_with('/') && !p.contains(char::is_whitespace) {
            Ok(p.clone())
        } else {
            Err(self.err(
                value.span(),
                format!("`{p}` is not a path for {what}"),
                "write a path such as \"/readyz\"",
            ))
        }
    }

    fn lab(mut self, raw: RawLabFile) -> Result<LabFile, LabFileError> {
        // Names first: templates anywhere may refer to any of them.
        self.declare_names(&raw)?;
        let service_span = raw.service.span();
        let service = self.service(raw.service.into_inner(), service_span)?;
        if matches!(service.start, Start::Url(_))
            && let Some((name, _)) = raw.deps.iter().next()
        {
            return Err(self.err(
                name.span(),
                "a service given by `url` cannot be pointed at the lab's dependencies",
                "give [service] a `command` so the lab starts it with the dependencies' addresses, or remove [deps]",
            ));
        }
        if let Start::Container(c) = &service.start
            && let crate::labfile::ImageSource::Compose(compose) = &c.image
            && let Some((name, _)) = raw.deps.iter().next()
        {
            return Err(self.err(
                name.span(),
                format!(
                    "a service from a compose file has its dependencies there: {} starts them",
                    compose.file.display()
                ),
                "remove [deps]; container faults name the compose services (target = \"db\")",
            ));
        }
        let mut deps = BTreeMap::new();
        for (name, dep) in raw.deps {
            let d = self.dependency(name.get_ref(), dep)?;
            deps.insert(name.into_inner(), d);
        }
        let expect = self.expect(raw.expect)?;
        let alerts = raw
            .alerts
            .as_ref()
            .map(|a| self.existing(a, "alert rules file"))
            .transpose()?;
        let openapi = match &raw.openapi {
            None => Vec::new(),
            Some(doc) => {
                let file = self.existing(doc, "OpenAPI document")?;
                let text = crate::textfile::read_capped(&file)
                    .map_err(|e| self.err(doc.span(), format!("{}: {e}", file.display()), ""))?;
                super::openapi::requests(&file, &text).map_err(|e| {
                    self.err(
                        doc.span(),
                        e,
                        "an OpenAPI 3 document in JSON or YAML, such as a service's /openapi.json",
                    )
                })?
            }
        };
        let load = self.load_defaults(raw.load.as_ref())?;
        let requests = self.requests(&raw.request, load.rate)?;
        for route in &expect.stale_routes {
            if !requests.iter().any(|r| &r.request == route) {
                let span = self.src.text.find(route.as_str()).unwrap_or(0);
                return Err(self.err(
                    span..span + route.len(),
                    format!("`{route}` is not one of the lab file's requests"),
                    "stale_routes are written like the requests, `GET /path/{id}`",
                ));
            }
        }
        Ok(LabFile {
            file: self.src.file.to_path_buf(),
            service,
            deps,
            expect,
            alerts,
            load,
            requests,
            openapi,
        })
    }

    /// Puts the names of the dependencies, listeners and config files in scope.
    fn declare_names(&mut self, raw: &RawLabFile) -> Result<(), LabFileError> {
        for (name, dep) in &raw.deps {
            if !is_name(name.get_ref()) {
                return Err(self.err(
                    name.span(),
                    format!("`{}` is not a dependency name", name.get_ref()),
                    "use letters, digits, `_` and `-`, starting with a letter",
                ));
            }
            let kind = match dep.get_ref().kind.get_ref().as_str() {
                "postgres" => DepKind::Postgres,
                "tcp" => DepKind::Tcp,
                "http" => DepKind::Http,
                other => {
                    return Err(self.err(
                        dep.get_ref().kind.span(),
                        format!("unknown dependency kind `{other}`"),
                        "the kinds are postgres, tcp and http",
                    ));
                }
            };
            self.scope.deps.insert(name.get_ref().clone(), kind);
        }
        let service = raw.service.get_ref();
        self.scope.container =
            service.image.is_some() || service.build.is_some() || service.compose.is_some();
        for l in &service.listeners {
            if !is_name(l.get_ref()) {
                return Err(self.err(
                    l.span(),
                    format!("`{}` is not a listener name", l.get_ref()),
                    "use letters, digits, `_` and `-`, such as \"admin\"",
                ));
            }
            self.scope.listeners.push(l.get_ref().clone());
        }
        for name in service.config.keys() {
            if !is_name(name.get_ref()) {
                return Err(self.err(
                    name.span(),
                    format!("`{}` is not a config file name", name.get_ref()),
                    "use letters, digits, `_` and `-`",
                ));
            }
            self.scope.configs.push(name.get_ref().clone());
        }
        Ok(())
    }

    /// `[load]`: the rate and timeout scenarios run this service's requests at.
    fn load_defaults(&self, load: Option<&RawLoad>) -> Result<LoadDefaults, LabFileError> {
        Ok(match load {
            None => LoadDefaults {
                rate: 20.0,
                timeout: Duration::from_secs(5),
            },
            Some(l) => {
                let rate = l.rate.as_ref().map(|r| (*r.get_ref(), r.span()));
                if let Some((r, span)) = &rate
                    && !(*r > 0.0 && *r <= 5000.0)
                {
                    return Err(self.err(
                        span.clone(),
                        format!("rate {r} is out of range"),
                        "the rate is in requests per second, between 0 and 5000",
                    ));
                }
                LoadDefaults {
                    rate: rate.map(|r| r.0).unwrap_or(20.0),
                    timeout: l
                        .timeout
                        .as_ref()
                        .map(|t| self.duration(t))
                        .transpose()?
                        .unwrap_or(Duration::from_secs(5)),
                }
            }
        })
    }
}

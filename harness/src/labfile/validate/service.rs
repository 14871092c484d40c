//! `[service]`: how the lab starts the service (`command.rs`) or where it already runs (`url`),
//! how it tells it is ready, its health and metrics endpoints, its failpoints and its logs.

use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use super::{Context, Validator};
use crate::labfile::raw::{RawService, Str};
use crate::labfile::{Failpoints, LabFileError, LogFormat, Logs, Ready, Service, Start};

impl Validator<'_> {
    pub(super) fn service(
        &self,
        s: RawService,
        span: Range<usize>,
    ) -> Result<Service, LabFileError> {
        let start = self.start(&s, span)?;
        let ready = match &s.ready {
            None => Ready::Port,
            Some(r) if r.get_ref() == "port" => Ready::Port,
            Some(r) => {
                let line: Vec<&str> = r.get_ref().split_whitespace().collect();
                match line.as_slice() {
                    [method @ ("GET" | "HEAD"), path] if path.starts_with('/') => Ready::Http {
                        method: method.to_string(),
                        path: path.to_string(),
                    },
                    _ => {
                        return Err(self.err(
                            r.span(),
                            format!("`{}` is not a readiness check", r.get_ref()),
                            "write \"GET /health\" (any 2xx answer means ready) or \"port\" (the port accepts connections)",
                        ));
                    }
                }
            }
        };
        let metrics = s
            .metrics
            .as_ref()
            .map(|m| {
                if !(m.get_ref().starts_with('/') || m.get_ref().starts_with("http://")) {
                    return Err(self.err(
                        m.span(),
                        format!("`{}` is neither a path nor an http:// URL", m.get_ref()),
                        "write \"/metrics\", or \"http://{listen.admin}/metrics\" for another listener",
                    ));
                }
                self.template(m, Context::Service)
            })
            .transpose()?;
        let failpoints = s
            .failpoints
            .as_ref()
            .map(|f| {
                let f = f.get_ref();
                Ok::<_, LabFileError>(Failpoints {
                    url: self.template(&f.url, Context::Service)?,
                    token: f
                        .token
                        .as_ref()
                        .map(|t| self.template(t, Context::Service))
                        .transpose()?,
                    names: f.names.iter().map(|n| n.get_ref().clone()).collect(),
                })
            })
            .transpose()?;
        let protections = s
            .protections
            .as_ref()
            .map(|p| {
                let p = p.get_ref();
                if !p.off.get_ref().iter().any(|a| a.get_ref().contains("{name}")) {
                    return Err(self.err(
                        p.off.span(),
                        "`off` never says which protection: none of its arguments has `{name}`",
                        "off = [\"--disable\", \"{name}\"]: appended to the command with `{name}` the protection",
                    ));
                }
                let strings = |v: &[Str]| v.iter().map(|a| a.get_ref().clone()).collect();
                Ok(crate::labfile::Protections {
                    names: strings(&p.names),
                    on: strings(&p.on),
                    off: strings(p.off.get_ref()),
                })
            })
            .transpose()?;
        Ok(Service {
            start,
            ready,
            ready_within: s
                .ready_within
                .as_ref()
                .map(|d| self.duration(d))
                .transpose()?
                .unwrap_or(Duration::from_secs(30)),
            readiness: s
                .readiness
                .as_ref()
                .map(|p| self.http_path(p, "readiness"))
                .transpose()?,
            liveness: s
                .liveness
                .as_ref()
                .map(|p| self.http_path(p, "liveness"))
                .transpose()?,
            metrics,
            logs: self.logs(&s)?,
            failpoints,
            protections,
        })
    }

    /// How the service runs: a `command` the lab starts, a `url` where it already runs (with
    /// none of the keys only a started service has), or a container from an `image` or a
    /// `build` (with none of the keys only a process has).
    fn start(&self, s: &RawService, span: Range<usize>) -> Result<Start, LabFileError> {
        let given: Vec<(&str, Range<usize>)> = [
            ("command", s.command.as_ref().map(|v| v.span())),
            ("url", s.url.as_ref().map(|v| v.span())),
            ("image", s.image.as_ref().map(|v| v.span())),
            ("build", s.build.as_ref().map(|v| v.span())),
            ("compose", s.compose.as_ref().map(|v| v.span())),
        ]
        .into_iter()
        .filter_map(|(k, at)| Some((k, at?)))
        .collect();
        match given.as_slice() {
            [] => {
                return Err(self.err(
                    span,
                    "[service] says neither how to start it nor where it runs",
                    "add command = [\"program\", \"arg\"], url = \"http://127.0.0.1:8000\", image = \"name:tag\", build = \"Dockerfile\" or compose = \"compose.yaml\"",
                ));
            }
            [(first, _), (second, at), ..] => {
                return Err(self.err(
                    at.clone(),
                    format!(
                        "a service has one of `command`, `url`, `image`, `build` and `compose`, not both `{first}` and `{second}`"
                    ),
                    "`command` for a process the lab starts, `url` for one already running, `image` or `build` for a container, `compose` for a service of a compose file",
                ));
            }
            [_] => {}
        }
        if s.compose.is_none()
            && let Some(name) = &s.compose_service
        {
            return Err(self.err(
                name.span(),
                "`compose_service` names a service of the compose file in `compose`",
                "add compose = \"compose.yaml\", or remove it",
            ));
        }
        if s.container_port.is_some()
            && s.image.is_none()
            && s.build.is_none()
            && s.compose.is_none()
        {
            let at = s.container_port.as_ref().map(|p| p.span()).unwrap_or(span);
            return Err(self.err(
                at,
                "`container_port` only applies to a container service",
                "remove it, or run the service from an `image` or a `build`",
            ));
        }
        Ok(match (&s.command, &s.url) {
            (None, Some(url)) => {
                let only_started = [
                    ("cwd", s.cwd.as_ref().map(|v| v.span())),
                    ("port", s.port.as_ref().map(|v| v.span())),
                    ("stop_signal", s.stop_signal.as_ref().map(|v| v.span())),
                    ("stop_grace", s.stop_grace.as_ref().map(|v| v.span())),
                    ("user", s.user.as_ref().map(|v| v.span())),
                    ("env", s.env.keys().next().map(|k| k.span())),
                    ("listeners", s.listeners.first().map(|k| k.span())),
                    ("config", s.config.keys().next().map(|k| k.span())),
                ];
                if let Some((key, Some(at))) = only_started.into_iter().find(|(_, s)| s.is_some()) {
                    return Err(self.err(
                        at,
                        format!("`{key}` only applies to a service the lab starts"),
                        "remove it, or replace `url` with a `command`",
                    ));
                }
                Start::Url(self.service_url(url)?)
            }
            (Some(command), None) => Start::Command(Box::new(self.command(s, command)?)),
            _ => Start::Container(Box::new(self.container(s)?)),
        })
    }

    fn service_url(&self, url: &Str) -> Result<String, LabFileError> {
        let bad = |why: &str| {
            self.err(
                url.span(),
                format!("`{}` cannot be the service's URL: {why}", url.get_ref()),
                "write http://127.0.0.1:PORT; the load generator only talks to this machine",
            )
        };
        let uri: http::Uri = url.get_ref().parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// is supported"));
        }
        let host = uri.host().unwrap_or("").trim_matches(['[', ']']);
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(bad("not a loopback address"));
        }
        Ok(url.get_ref().trim_end_matches('/').to_string())
    }

    fn logs(&self, s: &RawService) -> Result<Logs, LabFileError> {
        let mut logs = Logs::default();
        let Some(l) = &s.logs else {
            return Ok(logs);
        };
        let l = l.get_ref();
        logs.format = match l.format.get_ref().as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                return Err(self.err(
                    l.format.span(),
                    format!("unknown log format `{other}`"),
                    "\"json\" (one JSON object per line) or \"text\"",
                ));
            }
        };
        for (value, slot) in [
            (&l.request_id_header, &mut logs.request_id_header),
            (&l.request_id_field, &mut logs.request_id_field),
            (&l.message_field, &mut logs.message_field),
            (&l.level_field, &mut logs.level_field),
        ] {
            if let Some(v) = value {
                if v.get_ref().trim().is_empty() {
                    return Err(self.err(v.span(), "this name is empty", ""));
                }
                *slot = v.get_ref().clone();
            }
        }
        let header_span = || {
            l.request_id_header
                .as_ref()
                .map(|h| h.span())
                .unwrap_or(0..0)
        };
        match http::HeaderName::from_str(&logs.request_id_header) {
            Err(_) => {
                return Err(self.err(
                    header_span(),
                    format!("`{}` is not a header name", logs.request_id_header),
                    "",
                ));
            }
            Ok(name) if crate::load::frames_answers(name.as_str()) => {
                return Err(self.err(
                    header_span(),
                    format!(
                        "`{}` frames the answer; it cannot carry request ids",
                        logs.request_id_header
                    ),
                    "the header the service puts each request's id in, e.g. \"x-correlation-id\"",
                ));
            }
            // Header names are case-insensitive: kept in lower case, as records keep headers.
            Ok(name) => logs.request_id_header = name.as_str().to_string(),
        }
        if logs.format == LogFormat::Text
            && let Some(f) = l
                .request_id_field
                .as_ref()
                .or(l.message_field.as_ref())
                .or(l.level_field.as_ref())
        {
            return Err(self.err(
                f.span(),
                "log field names only apply to JSON logs",
                "set format = \"json\", or remove the field names",
            ));
        }
        Ok(logs)
    }
}

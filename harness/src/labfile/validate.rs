//! From the raw lab file to [`LabFile`]: every check that types alone do not make (one of
//! `command` and `url`, placeholders that exist where they are used, files that exist, regular
//! expressions that compile, requests the load generator accepts), each error at the place in
//! the file it is about.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use toml::Spanned;

use super::raw::{RawDep, RawExpect, RawLabFile, RawRequest, RawService, Str};
use super::template::{HTTP_FIELDS, POSTGRES_FIELDS, TCP_FIELDS};
use super::*;
use crate::load::{LoadPlan, MixEntry};
use crate::located::Source;

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

/// The placeholder names a lab file makes available.
#[derive(Default)]
struct Scope {
    listeners: Vec<String>,
    configs: Vec<String>,
    deps: BTreeMap<String, DepKind>,
}

/// Which placeholders a template may use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// The service's command, environment and config files: everything.
    Start,
    /// URLs the lab itself calls on the service (metrics, failpoints): its addresses and token.
    Service,
    /// A dependency's setup command: the dependencies and the data directory.
    Setup,
}

impl Scope {
    fn known(&self, ctx: Context, name: &str) -> bool {
        let parts: Vec<&str> = name.split('.').collect();
        let service = match parts.as_slice() {
            ["host" | "port" | "listen" | "token"] => true,
            ["listen" | "port", l] => self.listeners.iter().any(|x| x == l),
            _ => false,
        };
        let deps = match parts.as_slice() {
            ["deps", dep, field] => match self.deps.get(*dep) {
                Some(DepKind::Postgres) => POSTGRES_FIELDS.contains(field),
                Some(DepKind::Tcp) => TCP_FIELDS.contains(field),
                Some(DepKind::Http) => HTTP_FIELDS.contains(field),
                None => false,
            },
            _ => false,
        };
        let data_dir = name == "data_dir";
        let config =
            matches!(parts.as_slice(), ["config", c] if self.configs.iter().any(|x| x == c));
        match ctx {
            Context::Start => service || deps || data_dir || config,
            Context::Service => service,
            Context::Setup => deps || data_dir,
        }
    }

    /// What a template in `ctx` may use, for the hint.
    fn listing(&self, ctx: Context) -> String {
        let mut names: Vec<String> = Vec::new();
        if ctx != Context::Setup {
            names.extend(["{listen}", "{host}", "{port}", "{token}"].map(String::from));
            for l in &self.listeners {
                names.push(format!("{{listen.{l}}}"));
                names.push(format!("{{port.{l}}}"));
            }
        }
        if ctx != Context::Service {
            names.push("{data_dir}".into());
            for (dep, kind) in &self.deps {
                let fields = match kind {
                    DepKind::Postgres => POSTGRES_FIELDS,
                    DepKind::Tcp => TCP_FIELDS,
                    DepKind::Http => HTTP_FIELDS,
                };
                names.extend(fields.iter().map(|f| format!("{{deps.{dep}.{f}}}")));
            }
        }
        if ctx == Context::Start {
            names.extend(self.configs.iter().map(|c| format!("{{config.{c}}}")));
        }
        names.join(", ")
    }
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
        let load = match &raw.load {
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
        };
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
        })
    }

    fn service(&self, s: RawService, span: Range<usize>) -> Result<Service, LabFileError> {
        let start = match (&s.command, &s.url) {
            (Some(_), Some(url)) => {
                return Err(self.err(
                    url.span(),
                    "a service has a `command` or a `url`, not both",
                    "`command` for a service the lab starts, `url` for one already running",
                ));
            }
            (None, None) => {
                return Err(self.err(
                    span,
                    "[service] says neither how to start it nor where it runs",
                    "add command = [\"program\", \"arg\"] or url = \"http://127.0.0.1:8000\"",
                ));
            }
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
            (Some(command), None) => Start::Command(Box::new(self.command(&s, command)?)),
        };
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

    fn command(
        &self,
        s: &RawService,
        command: &Spanned<Vec<Str>>,
    ) -> Result<CommandSpec, LabFileError> {
        if command.get_ref().is_empty() || command.get_ref()[0].get_ref().trim().is_empty() {
            return Err(self.err(
                command.span(),
                "the command is empty",
                "command = [\"program\", \"arg\", ...]: the program and its arguments, no shell",
            ));
        }
        let argv = command
            .get_ref()
            .iter()
            .map(|a| self.template(a, Context::Start))
            .collect::<Result<Vec<_>, _>>()?;
        let cwd = match &s.cwd {
            Some(c) => {
                let p = self.existing(c, "directory")?;
                if !p.is_dir() {
                    return Err(self.err(
                        c.span(),
                        format!("{} is not a directory", p.display()),
                        "",
                    ));
                }
                p
            }
            None => self.dir.to_path_buf(),
        };
        let mut env = BTreeMap::new();
        for (k, v) in &s.env {
            if k.get_ref().is_empty() || k.get_ref().contains(['=', '\0']) {
                return Err(self.err(
                    k.span(),
                    format!("`{}` is not an environment variable name", k.get_ref()),
                    "",
                ));
            }
            env.insert(k.get_ref().clone(), self.template(v, Context::Start)?);
        }
        let mut configs = BTreeMap::new();
        for (name, c) in &s.config {
            configs.insert(name.get_ref().clone(), self.config(name, c)?);
        }
        let stop_signal = match &s.stop_signal {
            None => Signal::SIGTERM,
            Some(sig) => {
                let name = sig.get_ref().trim().to_ascii_uppercase();
                let name = if name.starts_with("SIG") {
                    name
                } else {
                    format!("SIG{name}")
                };
                Signal::from_str(&name).map_err(|_| {
                    self.err(
                        sig.span(),
                        format!("`{}` is not a signal", sig.get_ref()),
                        "write a signal name such as \"SIGTERM\" or \"SIGINT\"",
                    )
                })?
            }
        };
        if let Some(p) = &s.port
            && *p.get_ref() == 0
        {
            return Err(self.err(
                p.span(),
                "port 0 is not a fixed port",
                "leave `port` out and use {port} or {listen}: the lab then picks a free port",
            ));
        }
        if let Some(u) = &s.user
            && u.get_ref().trim().is_empty()
        {
            return Err(self.err(u.span(), "the user is empty", "a user name or a uid"));
        }
        Ok(CommandSpec {
            argv,
            cwd,
            env,
            port: s.port.as_ref().map(|p| *p.get_ref()),
            listeners: self.scope.listeners.clone(),
            configs,
            stop_signal,
            stop_grace: s
                .stop_grace
                .as_ref()
                .map(|d| self.duration(d))
                .transpose()?
                .unwrap_or(Duration::from_secs(10)),
            user: s.user.as_ref().map(|u| u.get_ref().trim().to_string()),
        })
    }

    fn config(
        &self,
        name: &Str,
        c: &Spanned<super::raw::RawConfig>,
    ) -> Result<ConfigFile, LabFileError> {
        let raw = c.get_ref();
        let template = match (&raw.template, &raw.text) {
            (Some(path), None) => {
                let file = self.existing(path, "config template")?;
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    self.err(
                        path.span(),
                        format!("cannot read {}: {e}", file.display()),
                        "",
                    )
                })?;
                Template::parse(&text, &|n| self.scope.known(Context::Start, n)).map_err(|e| {
                    // The error is in the template file: say where in it.
                    let before = &text[..e.offset];
                    let line = before.matches('\n').count() + 1;
                    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                    self.err(
                        path.span(),
                        format!("{}:{line}:{column}: {e}", file.display()),
                        &format!("available here: {}", self.scope.listing(Context::Start)),
                    )
                })?
            }
            (None, Some(text)) => self.template(text, Context::Start)?,
            _ => {
                return Err(self.err(
                    c.span(),
                    format!(
                        "config `{}` needs one of `template` (a file) and `text`",
                        name.get_ref()
                    ),
                    "template = \"config.toml.in\", or text = \"\"\"...\"\"\"",
                ));
            }
        };
        let file_name = match &raw.file {
            Some(f) => {
                let n = f.get_ref();
                if n.is_empty() || n.contains('/') || n == "." || n == ".." {
                    return Err(self.err(
                        f.span(),
                        format!("`{n}` is not a file name"),
                        "a plain file name: the file is written into the run directory",
                    ));
                }
                n.clone()
            }
            None => raw
                .template
                .as_ref()
                .and_then(|t| Path::new(t.get_ref()).file_name())
                .map(|n| n.to_string_lossy().trim_end_matches(".in").to_string())
                .unwrap_or_else(|| name.get_ref().clone()),
        };
        Ok(ConfigFile {
            template,
            file_name,
        })
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
        if http::HeaderName::from_str(&logs.request_id_header).is_err() {
            let span = l
                .request_id_header
                .as_ref()
                .map(|h| h.span())
                .unwrap_or(0..0);
            return Err(self.err(
                span,
                format!("`{}` is not a header name", logs.request_id_header),
                "",
            ));
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

    fn dependency(&self, name: &str, dep: Spanned<RawDep>) -> Result<Dependency, LabFileError> {
        let kind = self.scope.deps[name];
        let d = dep.get_ref();
        let only = |key: &str, span: Option<Range<usize>>, kinds: &str| match span {
            Some(span) => Err(self.err(
                span,
                format!(
                    "`{key}` is for {kinds} dependencies; `{name}` is {}",
                    d.kind.get_ref()
                ),
                "docs/lab-file.md lists the keys of each kind",
            )),
            None => Ok(()),
        };
        if kind != DepKind::Postgres {
            only(
                "database",
                d.database.as_ref().map(|v| v.span()),
                "postgres",
            )?;
            only(
                "setup_sql",
                d.setup_sql.as_ref().map(|v| v.span()),
                "postgres",
            )?;
            only(
                "setup_command",
                d.setup_command.as_ref().map(|v| v.span()),
                "postgres",
            )?;
            only(
                "setup_env",
                d.setup_env.keys().next().map(|k| k.span()),
                "postgres",
            )?;
        }
        if kind == DepKind::Postgres {
            only(
                "upstream",
                d.upstream.as_ref().map(|v| v.span()),
                "tcp and http",
            )?;
        }
        if kind != DepKind::Http {
            only("answer", d.answer.as_ref().map(|v| v.span()), "http")?;
        }
        match kind {
            DepKind::Postgres => {
                let database = match &d.database {
                    Some(db) if is_name(db.get_ref()) => db.get_ref().clone(),
                    Some(db) => {
                        return Err(self.err(
                            db.span(),
                            format!("`{}` is not a database name", db.get_ref()),
                            "letters, digits, `_` and `-`, starting with a letter",
                        ));
                    }
                    None => name.to_string(),
                };
                let setup = match (&d.setup_sql, &d.setup_command) {
                    (Some(_), Some(cmd)) => {
                        return Err(self.err(
                            cmd.span(),
                            "a database is set up by `setup_sql` or `setup_command`, not both",
                            "",
                        ));
                    }
                    (Some(files), None) => Setup::Sql(
                        files
                            .get_ref()
                            .iter()
                            .map(|f| self.existing(f, "SQL file"))
                            .collect::<Result<_, _>>()?,
                    ),
                    (None, Some(cmd)) => {
                        if cmd.get_ref().is_empty() {
                            return Err(self.err(cmd.span(), "the setup command is empty", ""));
                        }
                        let mut env = BTreeMap::new();
                        for (k, v) in &d.setup_env {
                            env.insert(k.get_ref().clone(), self.template(v, Context::Setup)?);
                        }
                        Setup::Command {
                            argv: cmd
                                .get_ref()
                                .iter()
                                .map(|a| self.template(a, Context::Setup))
                                .collect::<Result<_, _>>()?,
                            env,
                        }
                    }
                    (None, None) => {
                        if let Some(k) = d.setup_env.keys().next() {
                            return Err(self.err(
                                k.span(),
                                "`setup_env` without a `setup_command`",
                                "",
                            ));
                        }
                        Setup::None
                    }
                };
                Ok(Dependency::Postgres { database, setup })
            }
            DepKind::Tcp => {
                let Some(up) = &d.upstream else {
                    return Err(self.err(
                        dep.span(),
                        format!("tcp dependency `{name}` has no `upstream`"),
                        "upstream = \"127.0.0.1:6379\": where the real service listens",
                    ));
                };
                if up.get_ref().parse::<std::net::SocketAddr>().is_err()
                    && !up.get_ref().rsplit_once(':').is_some_and(|(h, p)| {
                        !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)
                    })
                {
                    return Err(self.err(
                        up.span(),
                        format!("`{}` is not host:port", up.get_ref()),
                        "upstream = \"127.0.0.1:6379\"",
                    ));
                }
                Ok(Dependency::Tcp {
                    upstream: up.get_ref().clone(),
                })
            }
            DepKind::Http => match (&d.upstream, &d.answer) {
                (Some(up), None) => {
                    let ok = up.get_ref().starts_with("http://")
                        && up.get_ref().parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
                    if !ok {
                        return Err(self.err(
                            up.span(),
                            format!("`{}` is not an http:// URL", up.get_ref()),
                            "upstream = \"http://127.0.0.1:9000\"",
                        ));
                    }
                    Ok(Dependency::Http(HttpDep::Upstream(
                        up.get_ref().trim_end_matches('/').to_string(),
                    )))
                }
                (None, Some(answers)) => Ok(Dependency::Http(HttpDep::Canned(
                    answers
                        .get_ref()
                        .iter()
                        .map(|a| self.answer(a))
                        .collect::<Result<_, _>>()?,
                ))),
                (Some(up), Some(_)) => Err(self.err(
                    up.span(),
                    format!("http dependency `{name}` has both an `upstream` and canned answers"),
                    "proxy a real upstream, or let the lab answer with [[deps.NAME.answer]], not both",
                )),
                (None, None) => Err(self.err(
                    dep.span(),
                    format!("http dependency `{name}` has neither an `upstream` nor answers"),
                    "upstream = \"http://127.0.0.1:9000\", or [[deps.NAME.answer]] tables",
                )),
            },
        }
    }

    fn answer(&self, a: &Spanned<super::raw::RawAnswer>) -> Result<CannedAnswer, LabFileError> {
        let r = a.get_ref();
        let line: Vec<&str> = r.request.get_ref().split_whitespace().collect();
        let (method, path) = match line.as_slice() {
            [m, p] if p.starts_with('/') && http::Method::from_str(m).is_ok() => (*m, *p),
            _ => {
                return Err(self.err(
                    r.request.span(),
                    format!("`{}` is not a request", r.request.get_ref()),
                    "write \"POST /charges\"; `{name}` matches one path segment, a final `*` the rest",
                ));
            }
        };
        let status = match &r.status {
            Some(s) if (100..=599).contains(s.get_ref()) => *s.get_ref(),
            Some(s) => {
                return Err(self.err(
                    s.span(),
                    format!("{} is not an HTTP status", s.get_ref()),
                    "",
                ));
            }
            None => 200,
        };
        let mut headers = BTreeMap::new();
        for (k, v) in &r.headers {
            if http::HeaderName::from_str(k.get_ref()).is_err() {
                return Err(self.err(
                    k.span(),
                    format!("`{}` is not a header name", k.get_ref()),
                    "",
                ));
            }
            if http::HeaderValue::from_str(v.get_ref()).is_err() {
                return Err(self.err(v.span(), "this header value holds control characters", ""));
            }
            headers.insert(k.get_ref().to_ascii_lowercase(), v.get_ref().clone());
        }
        Ok(CannedAnswer {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            status,
            headers,
            body: r
                .body
                .as_ref()
                .map(|b| b.get_ref().clone())
                .unwrap_or_default(),
        })
    }

    fn expect(&self, e: RawExpect) -> Result<ServiceExpect, LabFileError> {
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

    fn requests(
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

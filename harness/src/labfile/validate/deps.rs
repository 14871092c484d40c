//! `[deps.NAME]`: the service's dependencies, each of one kind (postgres, tcp, http) with only
//! that kind's keys: a database and how it is set up, a real upstream to proxy, or canned answers.

use std::collections::BTreeMap;
use std::ops::Range;
use std::str::FromStr;

use toml::Spanned;

use super::{Context, Validator, is_name};
use crate::labfile::raw::{RawAnswer, RawDep};
use crate::labfile::{CannedAnswer, DepKind, Dependency, HttpDep, LabFileError, Setup};

impl Validator<'_> {
    pub(super) fn dependency(
        &self,
        name: &str,
        dep: Spanned<RawDep>,
    ) -> Result<Dependency, LabFileError> {
        let kind = self.scope.deps[name];
        self.only_keys_of_kind(name, kind, dep.get_ref())?;
        match kind {
            DepKind::Postgres => self.postgres_dep(name, dep.get_ref()),
            DepKind::Tcp => self.tcp_dep(name, &dep),
            DepKind::Http => self.http_dep(name, &dep),
        }
    }

    /// Refuses a key of another kind of dependency than `kind`.
    fn only_keys_of_kind(&self, name: &str, kind: DepKind, d: &RawDep) -> Result<(), LabFileError> {
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
        Ok(())
    }

    /// A postgres dependency: its database's name and how it is set up.
    fn postgres_dep(&self, name: &str, d: &RawDep) -> Result<Dependency, LabFileError> {
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
                    return Err(self.err(k.span(), "`setup_env` without a `setup_command`", ""));
                }
                Setup::None
            }
        };
        Ok(Dependency::Postgres { database, setup })
    }

    /// A tcp dependency: the real service's host:port.
    fn tcp_dep(&self, name: &str, dep: &Spanned<RawDep>) -> Result<Dependency, LabFileError> {
        let d = dep.get_ref();
        let Some(up) = &d.upstream else {
            return Err(self.err(
                dep.span(),
                format!("tcp dependency `{name}` has no `upstream`"),
                "upstream = \"127.0.0.1:6379\": where the real service listens",
            ));
        };
        if up.get_ref().parse::<std::net::SocketAddr>().is_err()
            && !up
                .get_ref()
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
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

    /// An http dependency: a real upstream to proxy, or answers the lab gives itself.
    fn http_dep(&self, name: &str, dep: &Spanned<RawDep>) -> Result<Dependency, LabFileError> {
        let d = dep.get_ref();
        match (&d.upstream, &d.answer) {
            (Some(up), None) => {
                let ok = up.get_ref().starts_with("http://")
                    && up
                        .get_ref()
                        .parse::<http::Uri>()
                        .is_ok_and(|u| u.host().is_some());
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
        }
    }

    fn answer(&self, a: &Spanned<RawAnswer>) -> Result<CannedAnswer, LabFileError> {
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
            delay: r
                .delay
                .as_ref()
                .map(|d| self.duration(d))
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

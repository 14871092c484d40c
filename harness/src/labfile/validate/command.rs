//! A service the lab starts: its command line, working directory, environment, config files
//! written from templates, stop signal and grace, and the user it runs as.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use toml::Spanned;

use super::{Context, Validator};
use crate::labfile::raw::{RawConfig, RawService, Str};
use crate::labfile::{CommandSpec, ConfigFile, LabFileError, Reload, Template};

impl Validator<'_> {
    pub(super) fn command(
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
            Some(sig) => self.signal(sig)?,
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

    fn config(&self, name: &Str, c: &Spanned<RawConfig>) -> Result<ConfigFile, LabFileError> {
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
        let reload = match &raw.reload {
            None => None,
            Some(r) => {
                let series = |s: &Str| {
                    crate::record::parse_series_selector(s.get_ref()).ok_or_else(|| {
                        self.err(
                            s.span(),
                            format!("`{}` is not a series selector", s.get_ref()),
                            "a metric name with optional labels: app_config_reloads_total{result=\"failure\"}",
                        )
                    })?;
                    Ok::<_, LabFileError>(s.get_ref().clone())
                };
                let r = r.get_ref();
                Some(Reload {
                    signal: match &r.signal {
                        None => Signal::SIGHUP,
                        Some(sig) => self.signal(sig)?,
                    },
                    failures: series(&r.failures)?,
                    successes: series(&r.successes)?,
                    last_ok: r.last_ok.as_ref().map(series).transpose()?,
                })
            }
        };
        Ok(ConfigFile {
            template,
            file_name,
            reload,
        })
    }

    /// A signal by name, with or without `SIG`.
    fn signal(&self, sig: &Str) -> Result<Signal, LabFileError> {
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
        })
    }
}

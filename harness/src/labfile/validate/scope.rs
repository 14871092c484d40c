//! Which `{placeholder}` names a lab file makes available, and where: the service's command
//! may use everything, the URLs the lab calls only the service's own addresses, a dependency's
//! setup command only the dependencies and the data directory.

use std::collections::BTreeMap;

use crate::labfile::DepKind;
use crate::labfile::template::{HTTP_FIELDS, POSTGRES_FIELDS, TCP_FIELDS};

/// The placeholder names a lab file makes available.
#[derive(Default)]
pub(super) struct Scope {
    pub(super) listeners: Vec<String>,
    pub(super) configs: Vec<String>,
    pub(super) deps: BTreeMap<String, DepKind>,
    /// The service runs in a container: it has no `{data_dir}` and no config files of the
    /// lab's (both are files on this machine).
    pub(super) container: bool,
}

/// Which placeholders a template may use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Context {
    /// The service's command, environment and config files: everything.
    Start,
    /// URLs the lab itself calls on the service (metrics, failpoints): its addresses and token.
    Service,
    /// A dependency's setup command: the dependencies and the data directory.
    Setup,
}

impl Scope {
    pub(super) fn known(&self, ctx: Context, name: &str) -> bool {
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
        let data_dir = name == "data_dir" && !self.container;
        let config = !self.container
            && matches!(parts.as_slice(), ["config", c] if self.configs.iter().any(|x| x == c));
        match ctx {
            Context::Start => service || deps || data_dir || config,
            Context::Service => service,
            Context::Setup => deps || data_dir,
        }
    }

    /// What a template in `ctx` may use, for the hint.
    pub(super) fn listing(&self, ctx: Context) -> String {
        let mut names: Vec<String> = Vec::new();
        if ctx != Context::Setup {
            names.extend(["{listen}", "{host}", "{port}", "{token}"].map(String::from));
            for l in &self.listeners {
                names.push(format!("{{listen.{l}}}"));
                names.push(format!("{{port.{l}}}"));
            }
        }
        if ctx != Context::Service {
            if !self.container {
                names.push("{data_dir}".into());
            }
            for (dep, kind) in &self.deps {
                let fields = match kind {
                    DepKind::Postgres => POSTGRES_FIELDS,
                    DepKind::Tcp => TCP_FIELDS,
                    DepKind::Http => HTTP_FIELDS,
                };
                names.extend(fields.iter().map(|f| format!("{{deps.{dep}.{f}}}")));
            }
        }
        if ctx == Context::Start && !self.container {
            names.extend(self.configs.iter().map(|c| format!("{{config.{c}}}")));
        }
        names.join(", ")
    }
}

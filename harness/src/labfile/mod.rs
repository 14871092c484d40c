//! Lab files (`fivehundred.toml`): how to start the service under test, its dependencies, what
//! "responds correctly" means for it, its alert rules and its requests. Read raw with positions
//! (`raw`), then validated into [`LabFile`] (`validate`); nothing starts on an invalid file and
//! every error points at file:line:column. Every key is documented in `docs/lab-file.md`.
//!
//! - `template`: the `{placeholder}` templates and the [`Values`] a lab fills them with.
//! - `validate`: raw to validated, with the checks that need more than types.
//! - `service`: starts, watches and stops a lab-file service process.
//! - `init`: `fivehundred init`, a probed starter lab file.

// A `LabFileError` carries the source line it points at, which makes it large; it is built once
// per invalid file and never on a hot path.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Serialize;

use crate::load::MixEntry;
pub use crate::located::Located as LabFileError;

mod compose;
pub mod init;
mod openapi;
mod raw;
pub mod service;
pub mod template;
mod validate;

pub use service::ServiceProcess;
pub use template::{DbAddress, Template, Values};

/// The name looked for in the current directory when no `--lab` is given.
pub const FILE_NAME: &str = "fivehundred.toml";

/// A validated lab file.
#[derive(Debug, Clone, Serialize)]
pub struct LabFile {
    /// Where it was read from; relative paths in it are relative to its directory.
    pub file: PathBuf,
    pub service: Service,
    /// By name, as `{deps.NAME...}` and scenario files' `target = "NAME"` refer to them.
    pub deps: BTreeMap<String, Dependency>,
    pub expect: ServiceExpect,
    /// A Prometheus rules file, run by the lab's Prometheus.
    pub alerts: Option<PathBuf>,
    pub load: LoadDefaults,
    /// The request mix, in the load generator's own terms.
    pub requests: Vec<MixEntry>,
    /// Every operation of the service's OpenAPI document (`openapi`), as requests the
    /// invalid-input cause starts from besides `requests`.
    pub openapi: Vec<MixEntry>,
}

impl LabFile {
    /// Where the service puts each request's id: `[service.logs]`'s header (lower case, as
    /// records keep it) and log field.
    pub fn request_ids(&self) -> crate::record::RequestIds {
        crate::record::RequestIds {
            header: self.service.logs.request_id_header.to_ascii_lowercase(),
            field: self.service.logs.request_id_field.clone(),
            level: self.service.logs.level_field.clone(),
        }
    }

    /// The service's program, for what the machine's checks need to know of it.
    pub fn program(&self) -> PathBuf {
        match &self.service.start {
            Start::Command(c) => c
                .argv
                .first()
                .map(|t| {
                    let p = PathBuf::from(t.as_str());
                    if p.components().count() > 1 {
                        c.cwd.join(p)
                    } else {
                        p
                    }
                })
                .unwrap_or_default(),
            Start::Url(_) | Start::Container(_) => PathBuf::new(),
        }
    }

    /// The lab file with its command's program replaced by `program` (`--target-bin`). `Err`
    /// when the service is not started by a command.
    pub fn with_program(&self, program: &Path) -> Result<LabFile, String> {
        let mut lab = self.clone();
        match &mut lab.service.start {
            Start::Command(c) => {
                let path = program
                    .canonicalize()
                    .unwrap_or_else(|_| program.to_path_buf());
                c.argv[0] = Template::literal(&path.display().to_string());
                Ok(lab)
            }
            Start::Url(_) | Start::Container(_) => Err(format!(
                "{}: the service is not started by a command, so there is no program to replace",
                self.file.display()
            )),
        }
    }

    /// Whether the service is told where its data directory is: the disk and permission causes
    /// need that.
    pub fn uses_data_dir(&self) -> bool {
        match &self.service.start {
            Start::Command(c) => c
                .templates()
                .any(|t| t.placeholders().any(|p| p == "data_dir")),
            // A container has no `{data_dir}`: its files are the container's own.
            Start::Url(_) | Start::Container(_) => false,
        }
    }

    /// Dependencies of one kind, by name.
    pub fn deps_of(&self, kind: DepKind) -> impl Iterator<Item = &str> {
        self.deps
            .iter()
            .filter(move |(_, d)| d.kind() == kind)
            .map(|(n, _)| n.as_str())
    }

    /// Whether some template hands the service this dependency: a dependency the service is
    /// never told about cannot be faulted meaningfully.
    pub fn mentions_dep(&self, name: &str) -> bool {
        let prefix = format!("deps.{name}.");
        match &self.service.start {
            Start::Command(c) => c
                .templates()
                .any(|t| t.placeholders().any(|p| p.starts_with(&prefix))),
            Start::Container(c) => c
                .env
                .values()
                .any(|t| t.placeholders().any(|p| p.starts_with(&prefix))),
            Start::Url(_) => false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub start: Start,
    pub ready: Ready,
    /// How long the service may take to become ready.
    #[serde(with = "crate::duration_serde")]
    pub ready_within: Duration,
    /// A path answering 2xx while the service can serve, non-2xx (503) while a dependency fails.
    pub readiness: Option<String>,
    /// A path answering 2xx while the process is alive.
    pub liveness: Option<String>,
    /// Prometheus text: a path on the service's listener, or a URL template.
    pub metrics: Option<Template>,
    pub logs: Logs,
    /// The fail-rs admin API, when the service offers one.
    pub failpoints: Option<Failpoints>,
    /// Protections the service can switch off, for scenarios that name the one they test.
    pub protections: Option<Protections>,
}

/// The service's protections: their names (a scenario's `protection`), and the arguments that,
/// appended to its command, keep them all on (`on`) or turn one off (`off`, where `{name}` is
/// the protection). `explain` runs a scenario both ways.
#[derive(Debug, Clone, Serialize)]
pub struct Protections {
    pub names: Vec<String>,
    pub on: Vec<String>,
    pub off: Vec<String>,
}

impl Protections {
    /// The arguments that turn `name` off.
    pub fn off_args(&self, name: &str) -> Vec<String> {
        self.off.iter().map(|a| a.replace("{name}", name)).collect()
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// The lab starts it.
    Command(Box<CommandSpec>),
    /// It already runs here; the lab only sends it requests.
    Url(String),
    /// A container of the local Docker engine, from an image that exists there or one built
    /// from a Dockerfile.
    Container(Box<ContainerSpec>),
}

/// A service the lab runs as a container.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerSpec {
    pub image: ImageSource,
    /// Its environment (templates; the dependencies' addresses are ones the container reaches).
    pub env: BTreeMap<String, Template>,
    /// The port the service listens on inside the container, published on a free port of
    /// 127.0.0.1 for the load and the health checks.
    pub container_port: u16,
    /// Further listeners: each gets a free port number, the same inside the container and on
    /// 127.0.0.1.
    pub listeners: Vec<String>,
    /// How long `docker stop` waits after the image's stop signal before SIGKILL.
    #[serde(with = "crate::duration_serde")]
    pub stop_grace: Duration,
}

/// Where a container service's image comes from. Neither is ever pulled from a registry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    /// `name:tag`, which must already exist in the engine.
    Image(String),
    /// A Dockerfile (absolute), built with its directory as the context and tagged by the
    /// context's content hash.
    Build(PathBuf),
    /// A service of a compose file, started with the rest of its project.
    Compose(ComposeSource),
}

/// A compose file as the lab reads it: the service under test and the names the lab's override
/// file labels (every service, and the networks and volumes the file declares itself).
#[derive(Debug, Clone, Serialize)]
pub struct ComposeSource {
    /// Absolute; its directory is the project directory.
    pub file: PathBuf,
    /// The service under test (`compose_service`).
    pub service: String,
    /// Every service of the file, by name.
    pub services: Vec<String>,
    /// The networks the file declares that are not `external`.
    pub networks: Vec<String>,
    /// The named volumes the file declares that are not `external`.
    pub volumes: Vec<String>,
    /// Its `version`, when it has one (an override file must say the same).
    pub version: Option<String>,
}

impl ComposeSource {
    /// The services other than the one under test: its dependencies.
    pub fn dependencies(&self) -> impl Iterator<Item = &str> {
        self.services
            .iter()
            .filter(|s| **s != self.service)
            .map(String::as_str)
    }
}

/// The port a container service listens on when the lab file names none.
pub const DEFAULT_CONTAINER_PORT: u16 = 8080;

#[derive(Debug, Clone, Serialize)]
pub struct CommandSpec {
    /// argv; the first is the program (looked up in `PATH` when it has no `/`). No shell.
    pub argv: Vec<Template>,
    /// Absolute.
    pub cwd: PathBuf,
    /// Added to the lab's own environment.
    pub env: BTreeMap<String, Template>,
    /// A port the service always listens on (it cannot be told another); otherwise the lab
    /// picks a free one and hands it over as `{port}` / `{listen}`.
    pub port: Option<u16>,
    /// Further listeners the lab picks ports for: `{listen.NAME}`, `{port.NAME}`.
    pub listeners: Vec<String>,
    /// Rendered into the run directory before the start, mode 0600: `{config.NAME}`.
    pub configs: BTreeMap<String, ConfigFile>,
    #[serde(serialize_with = "signal_name")]
    pub stop_signal: Signal,
    #[serde(with = "crate::duration_serde")]
    pub stop_grace: Duration,
    /// A user name or uid to run it as.
    pub user: Option<String>,
}

fn signal_name<S: serde::Serializer>(s: &Signal, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

impl CommandSpec {
    /// The command with `args` appended as they are (`fivehundred run -- ARGS`).
    pub fn with_args(&self, args: &[String]) -> CommandSpec {
        let mut spec = self.clone();
        spec.argv.extend(args.iter().map(|a| Template::literal(a)));
        spec
    }

    /// Every template the service is started with.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.argv
            .iter()
            .chain(self.env.values())
            .chain(self.configs.values().map(|c| &c.template))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigFile {
    pub template: Template,
    /// The file name in the run directory.
    pub file_name: String,
    /// How the running service takes a changed file, when it can.
    pub reload: Option<Reload>,
}

/// A config file the service re-reads on a signal, and the metrics (series selectors) that say
/// how each reload went: what the config fault's `change = "reload"` sends and judges.
#[derive(Debug, Clone, Serialize)]
pub struct Reload {
    #[serde(serialize_with = "signal_name")]
    pub signal: Signal,
    /// Counts reloads the service refused.
    pub failures: String,
    /// Counts reloads the service applied.
    pub successes: String,
    /// 1 while the last reload succeeded, 0 after a failed one (what an alert reads).
    pub last_ok: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ready {
    /// The listener accepts connections.
    Port,
    /// This request answers 2xx.
    Http { method: String, path: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Logs {
    pub format: LogFormat,
    pub request_id_header: String,
    pub request_id_field: String,
    pub message_field: String,
    pub level_field: String,
}

impl Default for Logs {
    fn default() -> Logs {
        Logs {
            format: LogFormat::Text,
            request_id_header: "x-request-id".into(),
            request_id_field: "request_id".into(),
            message_field: "message".into(),
            level_field: "level".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    Text,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failpoints {
    /// The failpoint collection: `GET` lists, `PUT {url}/{name}` sets, `DELETE` clears.
    pub url: Template,
    /// Sent as `Authorization: Bearer`.
    pub token: Option<Template>,
    /// The failpoints it has, when listed: scenarios may name only these.
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DepKind {
    Postgres,
    Tcp,
    Http,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Dependency {
    /// Provided by the lab (an ephemeral cluster or `--database-url`), set up before the start.
    Postgres {
        /// The database name [default: the dependency's name].
        database: String,
        setup: Setup,
    },
    /// A TCP service the user runs, proxied.
    Tcp { upstream: String },
    /// Proxied in front of a real upstream, or served by the lab from canned answers.
    Http(HttpDep),
}

impl Dependency {
    pub fn kind(&self) -> DepKind {
        match self {
            Dependency::Postgres { .. } => DepKind::Postgres,
            Dependency::Tcp { .. } => DepKind::Tcp,
            Dependency::Http(_) => DepKind::Http,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Setup {
    None,
    /// Run in order, each in one transaction.
    Sql(Vec<PathBuf>),
    /// Run in the lab file's directory with `env`; must exit 0.
    Command {
        argv: Vec<Template>,
        env: BTreeMap<String, Template>,
    },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpDep {
    /// `http://host:port`, proxied.
    Upstream(String),
    /// Served by the lab; the first answer whose request matches is sent.
    Canned(Vec<CannedAnswer>),
}

#[derive(Debug, Clone, Serialize)]
pub struct CannedAnswer {
    pub method: String,
    /// Segments written `{name}` match any one segment; `*` at the end matches the rest.
    pub path: String,
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// How long the lab waits before it answers: a real provider's own time.
    pub delay: Duration,
}

impl CannedAnswer {
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if !self.method.eq_ignore_ascii_case(method) {
            return false;
        }
        let path = path.split('?').next().unwrap_or(path);
        let mut want = self.path.split('/');
        let mut got = path.split('/');
        loop {
            match (want.next(), got.next()) {
                (Some("*"), _) => return true,
                (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') && !g.is_empty() => {}
                (Some(w), Some(g)) if w == g => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}

/// What "responds correctly" means for this service.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceExpect {
    pub errors: ErrorFormat,
    /// 503 answers must carry `Retry-After`.
    pub retry_after: bool,
    /// Regular expressions a 5xx body must not match, on top of the built-in leak patterns.
    pub leak_patterns: Vec<String>,
    /// Routes (`GET /items/{id}`) that may serve stale data while a dependency fails.
    pub stale_routes: Vec<String>,
    /// The header (name, value) that marks a stale answer.
    pub stale_header: Option<(String, String)>,
    /// What a 2xx answer acknowledges and where it must then be stored (the data-integrity
    /// check: every acknowledged record stored exactly once).
    pub stored: Option<Stored>,
    /// SQL queries returning one boolean, each true after every run (read-only, with a
    /// statement timeout).
    pub invariants: Vec<String>,
}

/// Every 2xx answer to `request` acknowledges a record named by the answer's `id` field; after
/// the run, `table` must hold exactly one row whose `column` (as text) is that id. `table` and
/// `column` are SQL identifiers (checked, then quoted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stored {
    pub request: String,
    pub id: String,
    pub table: String,
    pub column: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorFormat {
    /// `application/problem+json` with `status` equal to the HTTP status (RFC 9457).
    ProblemJson,
    /// A JSON object with these fields.
    Json { fields: Vec<String> },
    /// Anything.
    Any,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadDefaults {
    /// Requests per second of the steady load.
    pub rate: f64,
    #[serde(with = "crate::duration_serde")]
    pub timeout: Duration,
}

/// Reads and validates a lab file.
pub fn load(path: &Path) -> Result<LabFile, LabFileError> {
    // Capped and regular files only, as scenario files: a symlink to /dev/zero is refused.
    let text = crate::textfile::read_capped(path).map_err(|e| LabFileError::refused(path, &e))?;
    parse(path, &text)
}

/// Validates lab-file text; `path` is used in messages and relative paths are resolved against
/// its directory.
pub fn parse(path: &Path, text: &str) -> Result<LabFile, LabFileError> {
    validate::parse(path, text)
}

/// The lab file to use: `explicit` (`--lab PATH`), else `fivehundred.toml` in `dir`.
pub fn find(explicit: Option<&Path>, dir: &Path) -> Result<PathBuf, String> {
    match explicit {
        Some(p) if p.is_file() => Ok(p.to_path_buf()),
        Some(p) => Err(format!("no lab file at {}", p.display())),
        None => {
            let p = dir.join(FILE_NAME);
            if p.is_file() {
                Ok(p)
            } else {
                Err(format!(
                    "no {FILE_NAME} in {}; give one with --lab PATH, or write one with `fivehundred init -- COMMAND ARGS...`",
                    dir.display()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests;

/// target-app's own lab file, the lab of the built-in catalogue: the scenarios in `scenarios/`
/// name its requests, protections and failpoints. Embedded, so it is there wherever the binary
/// runs; its relative paths resolve against the checkout this binary was built from.
pub fn target_app() -> &'static std::sync::Arc<LabFile> {
    static LAB: std::sync::OnceLock<std::sync::Arc<LabFile>> = std::sync::OnceLock::new();
    LAB.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target-app/fivehundred.toml");
        let lab = parse(&path, include_str!("../../../target-app/fivehundred.toml"))
            .unwrap_or_else(|e| panic!("target-app's own lab file is invalid: {e}"));
        std::sync::Arc::new(lab)
    })
}

//! `fivehundred init`: starts the user's command once, finds the port it opens (from the
//! sockets its processes hold, or the `{port}` it was given), asks the usual health and metrics
//! paths, stops it, and writes a commented starter lab file that validates as written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The paths asked, in the order they are preferred for each role.
pub const PROBED_PATHS: &[&str] = &[
    "/health", "/healthz", "/readyz", "/ready", "/livez", "/metrics", "/",
];

/// `fivehundred init`.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Probe a service that already runs here instead of starting a command.
    #[arg(long, conflicts_with = "command")]
    pub url: Option<String>,
    /// Where to write the lab file.
    #[arg(long, short = 'o', default_value = super::FILE_NAME)]
    pub out: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
    /// How long the command may take to open a port.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// The service's command, after `--`; `{port}` in it is filled with a free port.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Runs `fivehundred init`; returns what to print.
pub async fn run(args: InitArgs) -> Result<String, InitError> {
    let opts = InitOptions {
        command: args.command,
        url: args.url,
        out: args.out,
        force: args.force,
        wait: args.wait,
    };
    let probe = init(&opts).await?;
    let mut found = Vec::new();
    if let Some(p) = probe.port {
        found.push(format!(
            "port {p}{}",
            if probe.told_port {
                " (given as {port})"
            } else {
                " (fixed)"
            }
        ));
    }
    for (path, status) in &probe.answers {
        if let Some(s) = status {
            found.push(format!("{path} {s}"));
        }
    }
    Ok(format!(
        "wrote {} ({}); check it with `fivehundred validate --lab {}`",
        opts.out.display(),
        found.join(", "),
        opts.out.display()
    ))
}

#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The service's argv; `{port}` or `{listen}` in it are filled with a free port.
    pub command: Vec<String>,
    /// Or an already-running service.
    pub url: Option<String>,
    /// Where to write the lab file.
    pub out: PathBuf,
    pub force: bool,
    /// How long to wait for the command to open a port.
    pub wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error(
        "give the service's command after `--` (fivehundred init -- python3 -m http.server {{port}}) or --url"
    )]
    Nothing,
    #[error("the command `{program}` does not start: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("the command exited before it opened a port ({status}); its last output:\n  {tail}")]
    Exited { status: String, tail: String },
    #[error("the command opened no TCP port within {}; its last output:\n  {tail}", humantime::format_duration(*within))]
    NoPort { within: Duration, tail: String },
    #[error("{url} does not answer: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the starter lab file does not validate (a bug in init): {0}")]
    Invalid(String),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl InitError {
    /// Bad usage (exit 2) rather than a service that would not start (exit 3).
    pub fn is_usage(&self) -> bool {
        matches!(self, InitError::Exists(_) | InitError::Nothing)
    }
}

/// What the probe found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probe {
    /// The port the service listened on.
    pub port: Option<u16>,
    /// The command was given the port through `{port}`/`{listen}` (else it is fixed).
    pub told_port: bool,
    /// Other ports its processes listened on.
    pub other_ports: Vec<u16>,
    /// Each probed path and its status (`None`: no HTTP answer).
    pub answers: BTreeMap<String, Option<u16>>,
    /// `/metrics` answered Prometheus text.
    pub prometheus: bool,
}

impl Probe {
    fn ok(&self, path: &str) -> bool {
        matches!(self.answers.get(path), Some(Some(200..=299)))
    }
}

/// Probes and writes the lab file; returns what was found.
pub async fn init(opts: &InitOptions) -> Result<Probe, InitError> {
    if opts.out.exists() && !opts.force {
        return Err(InitError::Exists(opts.out.clone()));
    }
    let probe = match (&opts.url, opts.command.is_empty()) {
        (Some(url), _) => probe_url(url.trim_end_matches('/')).await?,
        (None, false) => probe_command(&opts.command, opts.wait).await?,
        (None, true) => return Err(InitError::Nothing),
    };
    let text = starter(opts, &probe);
    super::parse(&opts.out, &text).map_err(|e| InitError::Invalid(e.to_string()))?;
    std::fs::write(&opts.out, text).map_err(|source| InitError::Write {
        path: opts.out.clone(),
        source,
    })?;
    Ok(probe)
}

fn fills_port(arg: &str) -> bool {
    arg.contains("{port}") || arg.contains("{listen}")
}

async fn probe_command(command: &[String], wait: Duration) -> Result<Probe, InitError> {
    let told_port = command.iter().any(|a| fills_port(a));
    let port = if told_port {
        Some(pglab::free_port().map_err(|source| InitError::Spawn {
            program: command[0].clone(),
            source,
        })?)
    } else {
        None
    };
    let argv: Vec<String> = command
        .iter()
        .map(|a| match port {
            Some(p) => a
                .replace("{port}", &p.to_string())
                .replace("{listen}", &format!("127.0.0.1:{p}")),
            None => a.clone(),
        })
        .collect();
    let mut probed = Probed::spawn(&argv)?;
    let mut ports = probed.wait_for_ports(port, wait).await?;
    // A server may open its listeners one after the other: give the rest a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    if port.is_none() {
        ports.extend(listening_ports(probed.child.id()));
    }
    let probe = probe_ports(&ports, port, told_port).await;
    probed.stop();
    Ok(probe)
}

/// What the ports answer. The service's port: the one of `{port}`, else the first that
/// answers HTTP (else the first open one); the rest are other ports.
async fn probe_ports(ports: &BTreeSet<u16>, port: Option<u16>, told_port: bool) -> Probe {
    let mut probe = Probe {
        told_port,
        ..Probe::default()
    };
    for p in ports {
        let answers = ask(&format!("http://127.0.0.1:{p}")).await;
        if probe.port.is_none() && answers.0.values().any(Option::is_some) {
            probe.port = Some(*p);
            probe.answers = answers.0;
            probe.prometheus = answers.1;
        } else {
            probe.other_ports.push(*p);
        }
    }
    if probe.port.is_none() {
        probe.port = port.or_else(|| ports.iter().next().copied());
        probe.other_ports.retain(|p| Some(*p) != probe.port);
    }
    probe
}

/// The command being probed, in a process group of its own, and the last lines it wrote.
struct Probed {
    child: std::process::Child,
    tail: Arc<Mutex<Vec<String>>>,
}

impl Probed {
    /// Starts `argv` with its output read on threads of their own, the last ten lines kept.
    fn spawn(argv: &[String]) -> Result<Probed, InitError> {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child =
            pglab::proc::spawn_tied(cmd, Signal::SIGKILL).map_err(|source| InitError::Spawn {
                program: argv[0].clone(),
                source,
            })?;
        let tail = Arc::new(Mutex::new(Vec::<String>::new()));
        for pipe in pglab::proc::output_pipes(&mut child).into_iter().flatten() {
            let tail = Arc::clone(&tail);
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut t = tail.lock().unwrap();
                    t.push(line);
                    let n = t.len();
                    if n > 10 {
                        t.drain(..n - 10);
                    }
                }
            });
        }
        Ok(Probed { child, tail })
    }

    fn tail_text(&self) -> String {
        self.tail.lock().unwrap().join("\n  ")
    }

    fn group(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Waits until the command listens: on `port` when it was given one, else on whatever
    /// ports its processes hold. An exit, or no port within `wait`, is an error.
    async fn wait_for_ports(
        &mut self,
        port: Option<u16>,
        wait: Duration,
    ) -> Result<BTreeSet<u16>, InitError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut ports: BTreeSet<u16> = BTreeSet::new();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = killpg(self.group(), Signal::SIGKILL);
                return Err(InitError::Exited {
                    status: status.to_string(),
                    tail: self.tail_text(),
                });
            }
            match port {
                Some(p) => {
                    if tokio::net::TcpStream::connect(("127.0.0.1", p))
                        .await
                        .is_ok()
                    {
                        ports.insert(p);
                    }
                }
                None => ports.extend(listening_ports(self.child.id())),
            }
            if !ports.is_empty() {
                return Ok(ports);
            }
            if tokio::time::Instant::now() >= deadline {
                self.stop();
                return Err(InitError::NoPort {
                    within: wait,
                    tail: self.tail_text(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM to its group, up to two seconds to exit, then SIGKILL.
    fn stop(&mut self) {
        let group = self.group();
        let _ = killpg(group, Signal::SIGTERM);
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn probe_url(url: &str) -> Result<Probe, InitError> {
    let (answers, prometheus) = ask(url).await;
    if answers.values().all(Option::is_none) {
        return Err(InitError::Unreachable {
            url: url.to_string(),
            reason: "no path answered HTTP".into(),
        });
    }
    Ok(Probe {
        answers,
        prometheus,
        ..Probe::default()
    })
}

/// Asks every probed path; returns the statuses and whether `/metrics` is Prometheus text.
async fn ask(base: &str) -> (BTreeMap<String, Option<u16>>, bool) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .no_proxy()
        .build()
        .expect("a client without TLS builds");
    let mut answers = BTreeMap::new();
    let mut prometheus = false;
    for path in PROBED_PATHS {
        let status = match client.get(format!("{base}{path}")).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                if *path == "/metrics" && r.status().is_success() {
                    let body = r.text().await.unwrap_or_default();
                    prometheus = body
                        .lines()
                        .any(|l| l.starts_with("# TYPE ") || l.starts_with("# HELP "));
                }
                Some(status)
            }
            Err(_) => None,
        };
        answers.insert(path.to_string(), status);
    }
    (answers, prometheus)
}

/// TCP ports in LISTEN state held by `root` or any of its descendants, from `/proc`.
pub fn listening_ports(root: u32) -> BTreeSet<u16> {
    let mut inodes = BTreeSet::new();
    for pid in descendants(root) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && let Some(inode) = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
            {
                inodes.insert(inode.to_string());
            }
        }
    }
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is column 1 (`ADDR:PORT` in hex), st column 3 (`0A` = LISTEN),
            // inode column 9.
            if cols.len() > 9
                && cols[3] == "0A"
                && inodes.contains(cols[9])
                && let Some((_, port)) = cols[1].rsplit_once(':')
                && let Ok(port) = u16::from_str_radix(port, 16)
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// `root` and every process below it.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: the fields after the last `)`.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
            && let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok())
        {
            parent_of.push((pid, ppid));
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    out
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The starter lab file: what the probe found set, the rest as commented examples.
pub fn starter(opts: &InitOptions, probe: &Probe) -> String {
    let mut t = String::new();
    t.push_str(
        "# fivehundred lab file: the service under test, its dependencies, what \"responds\n\
         # correctly\" means for it, and its requests. Every key is described in docs/lab-file.md.\n\
         # Written by `fivehundred init`; check it with `fivehundred validate --lab ",
    );
    t.push_str(&opts.out.display().to_string());
    t.push_str("`.\n\n[service]\n");
    match &opts.url {
        Some(url) => {
            t.push_str(
                "# A service that already runs: only the faults that need no control of its\n",
            );
            t.push_str("# process apply (`fivehundred list` says which).\n");
            t.push_str(&format!("url = {}\n", quote(url.trim_end_matches('/'))));
        }
        None => {
            t.push_str("# argv, no shell. Placeholders the lab fills: {port}, {listen} (127.0.0.1:PORT),\n");
            t.push_str("# {data_dir}, {deps.NAME.url} and more (docs/lab-file.md).\n");
            let argv: Vec<String> = opts.command.iter().map(|a| quote(a)).collect();
            t.push_str(&format!("command = [{}]\n", argv.join(", ")));
            if !probe.told_port
                && let Some(p) = probe.port
            {
                t.push_str(
                    "# The command was not told a port: it always listens on this one. If it can\n",
                );
                t.push_str(
                    "# be told, pass {port} in `command` or `env` instead and remove this line.\n",
                );
                t.push_str(&format!("port = {p}\n"));
            }
            if !probe.other_ports.is_empty() {
                let others: Vec<String> = probe.other_ports.iter().map(u16::to_string).collect();
                t.push_str(&format!(
                    "# It also listened on {}: name such listeners with listeners = [\"admin\"]\n\
                     # and pass {{listen.admin}} to it.\n",
                    others.join(", ")
                ));
            }
            t.push_str("# cwd = \".\"                 # relative to this file\n");
            t.push_str("# env = { DATABASE_URL = \"{deps.db.url}\" }\n");
        }
    }
    let ready = ["/health", "/healthz", "/readyz", "/ready", "/livez"]
        .into_iter()
        .find(|p| probe.ok(p));
    match ready {
        Some(p) => t.push_str(&format!("ready = \"GET {p}\"\n")),
        None => t.push_str(
            "# No health path answered 2xx: the service counts as up once its port opens.\n\
             ready = \"port\"\n",
        ),
    }
    t.push_str("ready_within = \"30s\"\n");
    match ["/readyz", "/ready", "/healthz", "/health"]
        .into_iter()
        .find(|p| probe.ok(p))
    {
        Some(p) => t.push_str(&format!("readiness = \"{p}\"\n")),
        None => t.push_str("# readiness = \"/readyz\"      # 503 while a dependency fails\n"),
    }
    match ["/livez", "/healthz", "/health"]
        .into_iter()
        .find(|p| probe.ok(p))
    {
        Some(p) => t.push_str(&format!("liveness = \"{p}\"\n")),
        None => t.push_str("# liveness = \"/livez\"        # 200 while the process is alive\n"),
    }
    if probe.prometheus {
        t.push_str("metrics = \"/metrics\"\n");
    } else {
        t.push_str("# metrics = \"/metrics\"       # Prometheus text (none found at /metrics)\n");
    }
    if opts.url.is_none() {
        t.push_str("# stop_signal = \"SIGTERM\"\n# stop_grace = \"10s\"\n# user = \"nobody\"\n");
    }
    t.push_str(
        "\n# [service.logs]\n# format = \"json\"             # or \"text\"\n\
         # request_id_header = \"x-request-id\"\n# request_id_field = \"request_id\"\n",
    );
    if opts.url.is_none() {
        t.push_str(
            "\n# Dependencies, by name. The lab provides PostgreSQL and proxies every dependency.\n\
             # [deps.db]\n# kind = \"postgres\"\n# setup_sql = [\"schema.sql\"]\n\
             #\n# [deps.cache]\n# kind = \"tcp\"\n# upstream = \"127.0.0.1:6379\"\n",
        );
    }
    t.push_str(
        "\n[expect]\n\
         # What a correct error answer looks like: \"problem+json\", \"json\" (with\n\
         # error_fields = [\"error\"]) or \"any\".\n\
         errors = \"any\"\n\
         retry_after = true\n\
         # leak_patterns = ['(?i)internal server error: .*']\n",
    );
    t.push_str("\n# The load: weighted requests with generated values.\n[load]\nrate = 20\n\n");
    let root_ok = matches!(probe.answers.get("/"), Some(Some(s)) if *s < 500);
    if root_ok {
        t.push_str("[[request]]\nmethod = \"GET\"\npath = \"/\"\nweight = 1\n");
    } else {
        let path = ready.unwrap_or("/");
        t.push_str(&format!(
            "[[request]]\nmethod = \"GET\"\npath = \"{path}\"\nweight = 1\n"
        ));
    }
    t.push_str(
        "\n# [[request]]\n# method = \"POST\"\n# path = \"/items\"\n\
         # body = '{\"name\": \"item-{seq}\", \"size\": {size}}'\n\
         # params = { size = { uniform = [1, 10] } }\n# capture = { item = \"id\" }\n\
         #\n# [[request]]\n# path = \"/items/{id}\"\n# params = { id = { captured = \"item\" } }\n",
    );
    t
}

/// Where `fivehundred init` writes by default.
pub fn default_out(dir: &Path) -> PathBuf {
    dir.join(super::FILE_NAME)
}

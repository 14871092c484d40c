//! A lab around a service described by a lab file: its dependencies behind the lab's fault
//! proxies (the run's PostgreSQL, a user's TCP or HTTP upstream, canned HTTP answers the lab
//! serves), the service started with every placeholder filled, its output recorded, and real
//! Prometheus and Alertmanager when it has metrics and alert rules.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{HOST, Health, Lab, LabBase, LabError, LabOptions};
use crate::journal::{Journal, Resource};
use crate::labfile::service::{LineSink, Stream};
use crate::labfile::{CommandSpec, DbAddress, Dependency, HttpDep, LabFile, Setup, Start, Values};
use crate::monitoring::Monitoring;
use crate::proxy::Proxy;
use crate::record::Recorder;
use crate::stub::HttpStub;
use crate::target::{TargetAdmin, TargetNeeds};

impl Lab {
    /// Starts the lab-file service on top of what every lab has (see [`Lab::start_with`]).
    pub(super) async fn start_service(
        opts: &LabOptions,
        needs: &TargetNeeds,
        mut base: LabBase,
        journal: &Journal,
        recorder: Arc<Recorder>,
    ) -> Result<Lab, LabError> {
        let lab_file = &*opts.lab_file;
        let user = service_user(lab_file, needs, &base.run_dir, &base.data_dir)?;
        let mut stubs = BTreeMap::new();
        let mut service_container = None;
        let mut service_start = None;
        let (service, base_url, values) = match &lab_file.service.start {
            Start::Url(url) => (None, url.trim_end_matches('/').to_string(), None),
            Start::Container(spec) => {
                let (c, lab_values) =
                    start_container(spec, opts, &mut base, &mut stubs, journal, &recorder).await?;
                let base_url = c.base_url.clone();
                service_container = Some(c);
                (None, base_url, Some(lab_values))
            }
            Start::Command(spec) => {
                let spec = spec.with_args(&opts.extra_args);
                if needs.config_file && spec.configs.is_empty() {
                    return Err(LabError(format!(
                        "a config fault rewrites the file the service reads: {} names none (`[service.config.NAME]`)",
                        lab_file.file.display()
                    )));
                }
                let mut values = service_values(&spec, &base)?;
                let loopback = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
                let wiring = std::time::Instant::now();
                wire_dependencies(
                    lab_file,
                    opts.seed,
                    &mut base,
                    &mut values,
                    &mut stubs,
                    loopback,
                )
                .await?;
                base.parts
                    .push(("dependencies' proxies started", wiring.elapsed()));
                let rec = recorder.clone();
                let sink: LineSink =
                    Arc::new(move |_: Stream, line: &str| rec.log_line(line.to_string()));
                let mut start = super::process::ServiceStart {
                    service: lab_file.service.clone(),
                    spec,
                    values,
                    sink,
                };
                let isolation = crate::sys::Isolation {
                    tmpfs: needs.data_tmpfs.map(|size| (base.data_dir.clone(), size)),
                    user,
                };
                let process = start_on_free_ports(&mut start, &base.run_dir, isolation).await?;
                base.parts
                    .push(("service spawned and ready", process.ready_after));
                journal.resource(Resource::Process {
                    pid: process.pid(),
                    what: "service".into(),
                    start_time: crate::journal::process_start_time(process.pid()),
                });
                recorder.event(
                    crate::record::EventKind::TargetStart,
                    match user {
                        Some((uid, gid)) => format!(
                            "service started (pid {}, as uid {uid} gid {gid})",
                            process.pid()
                        ),
                        None => format!("service started (pid {})", process.pid()),
                    },
                );
                let base_url = process.base_url.clone();
                let values = start.values.clone();
                service_start = Some(start);
                (Some(process), base_url, Some(values))
            }
        };
        let LabBase {
            run_dir,
            data_dir,
            db,
            database_url,
            proxies,
            mut parts,
            ..
        } = base;
        let metrics_url = service_metrics_url(lab_file, values.as_ref(), &base_url);
        let admin = failpoints_client(lab_file, values.as_ref())?;
        let monitoring_started = std::time::Instant::now();
        let monitoring =
            start_service_monitoring(lab_file, metrics_url.as_deref(), &run_dir, &recorder).await?;
        if monitoring.is_some() {
            parts.push((
                "Prometheus and Alertmanager started",
                monitoring_started.elapsed(),
            ));
        }
        Ok(Lab {
            lab_file: opts.lab_file.clone(),
            run_dir,
            data_dir,
            db,
            database_url,
            proxies,
            http_stubs: stubs,
            service: Mutex::new(service),
            service_container,
            service_start,
            admin,
            metrics_url,
            health: Health {
                liveness: lab_file.service.liveness.clone(),
                readiness: lab_file.service.readiness.clone(),
            },
            data_tmpfs: needs.data_tmpfs,
            service_user: user,
            base_url,
            recorder,
            monitoring: Mutex::new(monitoring),
            seed: opts.seed,
            resource_log: journal.resource_log().ok(),
            fault_checks: Mutex::new(Vec::new()),
            start_parts: parts,
        })
    }
}

/// Starts the service. A port the lab picked can be taken by another process between the pick
/// and the service's bind: a service that exits saying its address is in use is started again
/// on new ports (when the lab file fixes none), twice at most.
async fn start_on_free_ports(
    start: &mut super::process::ServiceStart,
    run_dir: &Path,
    isolation: crate::sys::Isolation,
) -> Result<crate::labfile::ServiceProcess, LabError> {
    let mut tries = 0;
    loop {
        match start.start(run_dir, isolation.clone()).await {
            Ok(p) => return Ok(p),
            Err(e)
                if tries < 2
                    && start.spec.port.is_none()
                    && e.to_string()
                        .to_ascii_lowercase()
                        .contains("address already in use") =>
            {
                tries += 1;
                start.values.listen_on(HOST, free_port()?);
                for name in start.spec.listeners.clone() {
                    start.values.listener(&name, HOST, free_port()?);
                }
            }
            Err(e) => return Err(LabError(format!("the service did not start: {e}"))),
        }
    }
}

/// The user the service runs as, when not as the controller: its lab file's `user`, or, when a
/// fault needs file modes to bind it (`needs.unprivileged`), an unprivileged user of this
/// machine. Either way the data directory becomes that user's and the run directory searchable
/// (not readable) by it, for its config files.
fn service_user(
    lab_file: &LabFile,
    needs: &TargetNeeds,
    run_dir: &Path,
    data_dir: &Path,
) -> Result<Option<(u32, u32)>, LabError> {
    let named = match &lab_file.service.start {
        Start::Command(spec) => spec.user.clone(),
        Start::Url(_) | Start::Container(_) => None,
    };
    let user = match named {
        Some(name) => Some(
            crate::labfile::service::resolve_user(&name).map_err(|e| LabError(e.to_string()))?,
        ),
        None if needs.unprivileged => {
            if !matches!(lab_file.service.start, Start::Command(_)) {
                return Err(LabError(
                    "file modes bind only a service the lab starts as a command".into(),
                ));
            }
            // Checked before the run too (and the scenario skipped); this is the last word.
            Some(crate::privileges::unprivileged_user(&lab_file.program()).map_err(LabError)?)
        }
        None => None,
    };
    if needs.unprivileged && user.is_none_or(|(uid, _)| uid == 0) {
        return Err(LabError(
            "file modes do not bind a service that runs as root: give it a `user` in the lab file"
                .into(),
        ));
    }
    if let Some(ids) = user {
        hand_over(run_dir, data_dir, ids)?;
    }
    Ok(user)
}

/// The client of the service's failpoint API, its URL and token filled in.
fn failpoints_client(
    lab_file: &LabFile,
    values: Option<&Values>,
) -> Result<Option<TargetAdmin>, LabError> {
    let (Some(fp), Some(values)) = (&lab_file.service.failpoints, values) else {
        return Ok(None);
    };
    let render = |t: &crate::labfile::Template| {
        t.render(values)
            .map_err(|e| LabError(format!("the failpoint API: {e}")))
    };
    Ok(Some(TargetAdmin::new(
        render(&fp.url)?,
        fp.token.as_ref().map(render).transpose()?,
    )))
}

/// What the service's templates are filled with before its dependencies: its port (a free one
/// unless the lab file fixes it), a free port for each listener, its data directory and the
/// admin token.
fn service_values(spec: &CommandSpec, base: &LabBase) -> Result<Values, LabError> {
    let port = match spec.port {
        Some(p) => p,
        None => free_port()?,
    };
    let mut values = Values::new(HOST, port, &base.data_dir, &base.admin_token);
    for name in &spec.listeners {
        values.listener(name, HOST, free_port()?);
    }
    Ok(values)
}

/// Each dependency in `values` as the service reaches it: through a fault proxy listening on
/// `listen` (loopback for a process, the gateway of its network for a container), kept in
/// `base.proxies` under the dependency's name. The run's database stands for every postgres
/// dependency (its proxy moves from `database` to the first one's name, and to `listen`), and
/// the user's setup runs on it first. `stubs` gets the stubs that serve canned HTTP answers.
async fn wire_dependencies(
    lab_file: &LabFile,
    seed: u64,
    base: &mut LabBase,
    values: &mut Values,
    stubs: &mut BTreeMap<String, HttpStub>,
    listen: IpAddr,
) -> Result<(), LabError> {
    let host = listen.to_string();
    let mut db_proxy = base.proxies.remove("database");
    if let Some(old) = &db_proxy
        && old.local_addr().ip() != listen
    {
        // The same upstream and seed, where the service reaches it; the old one stops when
        // dropped.
        let moved = Proxy::start(SocketAddr::new(listen, 0), old.upstream(), seed)
            .await
            .map_err(|e| LabError(format!("cannot start the database proxy on {listen}: {e}")))?;
        base.proxied_url =
            pglab::replace_host_port(&base.database_url, &moved.local_addr().to_string());
        db_proxy = Some(moved);
    }
    for (name, dep) in &lab_file.deps {
        match dep {
            Dependency::Postgres { setup, .. } => {
                let Some(proxy) = &db_proxy else {
                    return Err(LabError("the lab has no database".into()));
                };
                values.postgres(name, &db_address(&base.proxied_url, Some(proxy))?);
                let direct = db_address(&base.database_url, None)?;
                // On a task of its own, with owned values: sqlx's executor bounds would
                // otherwise make this future not `Send` for every lifetime.
                let dir = lab_file
                    .file
                    .parent()
                    .unwrap_or(Path::new("."))
                    .to_path_buf();
                let setup_task = tokio::spawn(run_setup(
                    setup.clone(),
                    name.clone(),
                    direct,
                    base.database_url.clone(),
                    dir,
                ));
                setup_task
                    .await
                    .map_err(|e| LabError(format!("setup: {e}")))??;
            }
            Dependency::Tcp { upstream } => {
                let proxy = proxy_to(upstream, seed, name, listen).await?;
                values.tcp(name, &host, proxy.local_addr().port());
                base.proxies.insert(name.clone(), proxy);
            }
            Dependency::Http(http) => {
                // The lab's stub answers for it (its canned answers, or its real upstream's
                // passed on), so that a dependency fault can make it fail as HTTP does; the
                // fault proxy in front breaks the path to it.
                let stub = match http {
                    HttpDep::Canned(answers) => HttpStub::start(answers.clone()).await,
                    HttpDep::Upstream(url) => HttpStub::forward(url).await,
                }
                .map_err(|e| LabError(format!("cannot serve the dependency {name}: {e}")))?;
                let proxy = proxy_to(&stub.addr().to_string(), seed, name, listen).await?;
                stubs.insert(name.clone(), stub);
                values.http(name, &host, proxy.local_addr().port());
                base.proxies.insert(name.clone(), proxy);
            }
        }
    }
    if let (Some(proxy), Some(name)) = (
        db_proxy,
        lab_file.deps_of(crate::labfile::DepKind::Postgres).next(),
    ) {
        base.proxies.insert(name.to_string(), proxy);
    }
    Ok(())
}

/// The service as a container: its image and network first (journalled), the dependencies'
/// proxies on the network's gateway, the container with its environment rendered for that
/// side and `opts.extra_args` after the image's command. Returns it and the values the lab's
/// own URLs (metrics, failpoints) are filled with, which are its addresses on this machine.
async fn start_container(
    spec: &crate::labfile::ContainerSpec,
    opts: &LabOptions,
    base: &mut LabBase,
    stubs: &mut BTreeMap<String, HttpStub>,
    journal: &Journal,
    recorder: &Arc<Recorder>,
) -> Result<(super::container::ServiceContainer, Values), LabError> {
    let lab_file = &*opts.lab_file;
    if let crate::labfile::ImageSource::Compose(source) = &spec.image {
        return start_compose(spec, source, opts, base, journal, recorder).await;
    }
    let prepared = super::container::prepare(&spec.image, journal, &mut base.parts).await?;
    let gateway = IpAddr::V4(prepared.gateway());
    let wiring = std::time::Instant::now();
    let wired = async {
        // Inside, the service listens on every address of its own: the published port reaches
        // it there. A further listener has the same port number inside and on 127.0.0.1.
        let mut values = Values::new(
            "0.0.0.0",
            spec.container_port,
            &base.data_dir,
            &base.admin_token,
        );
        let mut ports = Vec::new();
        for name in &spec.listeners {
            let port = free_port()?;
            values.listener(name, "0.0.0.0", port);
            ports.push(port);
        }
        wire_dependencies(lab_file, opts.seed, base, &mut values, stubs, gateway).await?;
        let env = super::container::render_env(spec, &values)?;
        Ok::<_, LabError>((env, ports))
    }
    .await;
    let (env, ports) = match wired {
        Ok(w) => w,
        Err(e) => {
            prepared.discard().await;
            return Err(e);
        }
    };
    base.parts
        .push(("dependencies' proxies started", wiring.elapsed()));
    let rec = recorder.clone();
    let sink: LineSink = Arc::new(move |_: Stream, line: &str| rec.log_line(line.to_string()));
    let c = super::container::ServiceContainer::start(
        prepared,
        &lab_file.service,
        spec,
        env,
        &opts.extra_args,
        &ports,
        sink,
    )
    .await?;
    base.parts.extend(c.start_parts);
    recorder.event(
        crate::record::EventKind::TargetStart,
        match (c.pid(), opts.extra_args.is_empty()) {
            (Some(pid), true) => format!(
                "service started (container {}, pid {pid})",
                c.container.name
            ),
            (None, true) => format!("service started (container {})", c.container.name),
            (pid, false) => format!(
                "service started (container {}{}), `{}` after its image's command",
                c.container.name,
                pid.map(|p| format!(", pid {p}")).unwrap_or_default(),
                opts.extra_args.join(" ")
            ),
        },
    );
    let lab_values = host_values(&c, spec, &ports, base);
    Ok((c, lab_values))
}

/// The values the lab's own URLs are filled with for a container service: its published port
/// and listeners on this machine.
fn host_values(
    c: &super::container::ServiceContainer,
    spec: &crate::labfile::ContainerSpec,
    ports: &[u16],
    base: &LabBase,
) -> Values {
    let host_port = c
        .base_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut values = Values::new(HOST, host_port, &base.data_dir, &base.admin_token);
    for (name, port) in spec.listeners.iter().zip(ports) {
        values.listener(name, HOST, *port);
    }
    values
}

/// The service as a service of its compose file, with the rest of the project: its `env`
/// rendered for the inside of its container (it has no dependencies of the lab's: the compose
/// file has them). Returns it and the values the lab's own URLs are filled with.
async fn start_compose(
    spec: &crate::labfile::ContainerSpec,
    source: &crate::labfile::ComposeSource,
    opts: &LabOptions,
    base: &mut LabBase,
    journal: &Journal,
    recorder: &Arc<Recorder>,
) -> Result<(super::container::ServiceContainer, Values), LabError> {
    if !opts.extra_args.is_empty() {
        return Err(LabError(format!(
            "`{}` cannot be appended to a compose service's command: {} says it",
            opts.extra_args.join(" "),
            source.file.display()
        )));
    }
    let mut values = Values::new(
        "0.0.0.0",
        spec.container_port,
        &base.data_dir,
        &base.admin_token,
    );
    let mut ports = Vec::new();
    for name in &spec.listeners {
        let port = free_port()?;
        values.listener(name, "0.0.0.0", port);
        ports.push(port);
    }
    let env = super::container::render_env(spec, &values)?;
    let rec = recorder.clone();
    let sink: LineSink = Arc::new(move |_: Stream, line: &str| rec.log_line(line.to_string()));
    let c = super::container::ServiceContainer::compose_up(
        &opts.lab_file.service,
        spec,
        source,
        env,
        &ports,
        &base.run_dir,
        journal,
        sink,
    )
    .await?;
    base.parts.extend(c.start_parts);
    recorder.event(
        crate::record::EventKind::TargetStart,
        format!(
            "service started (compose service `{}`, container {})",
            source.service, c.container.name
        ),
    );
    let lab_values = host_values(&c, spec, &ports, base);
    Ok((c, lab_values))
}

/// Where the service's Prometheus metrics are read: its `metrics` template filled (as written,
/// for a service that is only a URL), a path taken as one on `base_url`.
fn service_metrics_url(
    lab_file: &LabFile,
    values: Option<&Values>,
    base_url: &str,
) -> Option<String> {
    lab_file.service.metrics.as_ref().and_then(|t| {
        let text = match values {
            Some(v) => t.render(v).ok()?,
            None => t.as_str().to_string(),
        };
        Some(if text.starts_with('/') {
            format!("{base_url}{text}")
        } else {
            text
        })
    })
}

/// The lab's Prometheus and Alertmanager, when the service has both metrics and alert rules.
async fn start_service_monitoring(
    lab_file: &LabFile,
    metrics_url: Option<&str>,
    run_dir: &Path,
    recorder: &Arc<Recorder>,
) -> Result<Option<Monitoring>, LabError> {
    match (&lab_file.alerts, metrics_url) {
        (Some(rules), Some(url)) => {
            // Prometheus scrapes `/metrics` on the metrics URL's host and port.
            Ok(Some(
                super::start_monitoring(run_dir, &host_port(url), rules, recorder).await?,
            ))
        }
        _ => Ok(None),
    }
}

impl Lab {
    /// Of the dependencies named in `faulted`, those that no connection ever came to through
    /// the lab's proxy, with the proxy's address: a service that ignores the address it was
    /// given (a hard-coded host, a config file the templates do not reach) would make every
    /// fault on that dependency test nothing. A dependency no fault acts on may go unused (a
    /// scenario whose requests never reach it).
    pub fn unused_dependencies(&self, faulted: &[&str]) -> Vec<(String, String)> {
        if matches!(self.lab_file.service.start, Start::Url(_)) {
            return Vec::new();
        }
        self.lab_file
            .deps
            .keys()
            .filter(|name| faulted.contains(&name.as_str()))
            .filter_map(|name| {
                let proxy = self.proxies.get(name)?;
                (proxy.stats().accepted == 0)
                    .then(|| (name.clone(), proxy.local_addr().to_string()))
            })
            .collect()
    }
}

/// Makes the data directory the service's own when it runs as another user (`{data_dir}` is
/// where it may write), and the run directory, where its config files are, searchable but not
/// readable by others.
fn hand_over(run_dir: &Path, data_dir: &Path, (uid, gid): (u32, u32)) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o711))
        .and_then(|()| std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)))
        .and_then(|()| {
            nix::unistd::chown(
                data_dir,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(std::io::Error::from)
        })
        .map_err(|e| {
            LabError(format!(
                "cannot hand {} to uid {uid}: {e}",
                data_dir.display()
            ))
        })
}

/// `host:port` of an `http://host:port/path` URL.
fn host_port(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

fn free_port() -> Result<u16, LabError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| LabError(format!("cannot find a free port: {e}")))
}

/// The database as the service sees it (through `proxy`), or as it is.
fn db_address(db_url: &str, proxy: Option<&Proxy>) -> Result<DbAddress, LabError> {
    let url = reqwest::Url::parse(db_url)
        .map_err(|e| LabError(format!("the run's database URL does not parse: {e}")))?;
    let decode = |s: &str| percent_decode(s).unwrap_or_else(|| s.to_string());
    Ok(DbAddress {
        host: match proxy {
            Some(p) => p.local_addr().ip().to_string(),
            None => url.host_str().unwrap_or("127.0.0.1").to_string(),
        },
        port: match proxy {
            Some(p) => p.local_addr().port(),
            None => url.port().unwrap_or(5432),
        },
        user: decode(url.username()),
        password: decode(url.password().unwrap_or_default()),
        name: decode(url.path().trim_start_matches('/')),
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A fault proxy on `listen` in front of `upstream` (`host:port`).
async fn proxy_to(
    upstream: &str,
    seed: u64,
    name: &str,
    listen: IpAddr,
) -> Result<Proxy, LabError> {
    let addr = tokio::net::lookup_host(upstream.to_string())
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            LabError(format!(
                "the dependency {name}: cannot resolve its upstream {upstream}"
            ))
        })?;
    Proxy::start(
        SocketAddr::new(listen, 0),
        addr,
        // Each proxy draws its own: the seed and the dependency's name.
        name.bytes()
            .fold(seed, |h, b| h.rotate_left(5) ^ u64::from(b)),
    )
    .await
    .map_err(|e| LabError(format!("cannot start the proxy for {name}: {e}")))
}

/// The user's setup of a postgres dependency, on the run's database (not through the proxy).
async fn run_setup(
    setup: Setup,
    name: String,
    direct: DbAddress,
    database_url: String,
    dir: PathBuf,
) -> Result<(), LabError> {
    use sqlx::Connection;
    match setup {
        Setup::None => Ok(()),
        Setup::Sql(files) => {
            let mut conn = sqlx::PgConnection::connect(&database_url)
                .await
                .map_err(|e| LabError(format!("setup: cannot connect to the database: {e}")))?;
            for file in &files {
                let sql = std::fs::read_to_string(file)
                    .map_err(|e| LabError(format!("setup: cannot read {}: {e}", file.display())))?;
                // One transaction per file, in one simple query: all of it or none.
                let whole = format!("BEGIN;\n{sql}\n;COMMIT;");
                sqlx::Executor::execute(&mut conn, whole.as_str())
                    .await
                    .map_err(|e| LabError(format!("setup: {} failed: {e}", file.display())))?;
            }
            Ok(())
        }
        Setup::Command { argv, env } => {
            let (argv, env) = render_setup(&argv, &env, &name, &direct)?;
            let Some((program, args)) = argv.split_first() else {
                return Err(LabError("setup command is empty".into()));
            };
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args)
                .env("DATABASE_URL", &database_url)
                .envs(env)
                .current_dir(&dir);
            let out = cmd
                .output()
                .await
                .map_err(|e| LabError(format!("setup command {program}: {e}")))?;
            if !out.status.success() {
                let tail: Vec<&str> = std::str::from_utf8(&out.stderr)
                    .unwrap_or_default()
                    .lines()
                    .rev()
                    .take(5)
                    .collect();
                return Err(LabError(format!(
                    "setup command {program} failed ({}): {}",
                    out.status,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )));
            }
            Ok(())
        }
    }
}

/// Environment variables, in order.
type Env = Vec<(String, String)>;

/// The setup command's argv and environment with `{deps.NAME...}` filled (done before any
/// await: a closure over the values must not live across one).
fn render_setup(
    argv: &[crate::labfile::Template],
    env: &BTreeMap<String, crate::labfile::Template>,
    name: &str,
    direct: &DbAddress,
) -> Result<(Vec<String>, Env), LabError> {
    let mut values = Values::default();
    values.postgres(name, direct);
    let render = |t: &crate::labfile::Template| {
        t.render(&values)
            .map_err(|e| LabError(format!("setup command: {e}")))
    };
    let argv = argv.iter().map(render).collect::<Result<Vec<_>, _>>()?;
    let env = env
        .iter()
        .map(|(k, v)| Ok((k.clone(), render(v)?)))
        .collect::<Result<Vec<_>, LabError>>()?;
    Ok((argv, env))
}

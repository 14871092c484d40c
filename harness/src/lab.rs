//! The lab: everything one run needs, owned by the harness and torn down by it, whatever the exit
//! path. A database (an ephemeral cluster, or a fresh database on an existing server), a fault
//! proxy in front of it, the payments dependency behind its own proxy, and the target process.
//!
//! Labs share nothing: each has its own ports, directory and database, so several run at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::journal::{Journal, Resource, ResourceLog};
use crate::labfile::{DepKind, LabFile, ServiceProcess};
use crate::monitoring::{Monitoring, MonitoringOptions};
use crate::payments::PaymentsStub;
use crate::proxy::Proxy;
use crate::record::{EventKind, Recorder};
use crate::target::{TargetAdmin, TargetEnv, TargetNeeds, TargetProcess, TargetSpec};

/// The lab could not be set up; the message says what to do. Exit code 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LabError(pub String);

#[derive(Debug, Clone)]
pub struct LabOptions {
    pub target: TargetSpec,
    /// A service described by a lab file, started instead of target-app.
    pub service: Option<Arc<LabFile>>,
    /// An existing server to make a fresh database on, instead of an ephemeral cluster.
    pub database_url: Option<String>,
    /// Where the lab's own PostgreSQL runs.
    pub backend: Backend,
    pub seed: u64,
}

impl LabOptions {
    /// The lab file of the service under test: the one given, else target-app's.
    pub fn lab_file(&self) -> &LabFile {
        self.service
            .as_deref()
            .unwrap_or_else(|| crate::labfile::target_app())
    }
}

/// Where the lab runs what it starts itself: processes on this machine, or containers of the
/// Docker engine (the database, for now).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    #[default]
    Process,
    Docker,
}

/// Which of the lab's proxies a network fault acts on, by name: `database` and `payments` in
/// target-app's lab, a dependency's name in a lab file's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProxyTarget(pub String);

impl std::fmt::Display for ProxyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The paths the lab samples for health.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub liveness: Option<String>,
    pub readiness: Option<String>,
}

/// What every lab has before its service starts.
pub(crate) struct LabBase {
    pub run_dir: PathBuf,
    pub data_dir: PathBuf,
    pub db: Database,
    pub database_url: String,
    /// The database URL through its fault proxy (empty without a database).
    pub proxied_url: String,
    pub proxies: BTreeMap<String, Proxy>,
    pub payments: PaymentsStub,
    /// The payments stub's URL through its fault proxy.
    pub payments_url: String,
    pub admin_token: String,
    pub user: Option<(u32, u32)>,
    pub config: Option<PathBuf>,
}

impl LabBase {
    /// The run's data directory (handed to an unprivileged target, when a fault needs one), its
    /// config file (when a fault changes it), its database behind a fault proxy (unless a lab
    /// file names no PostgreSQL), and the payments stub behind another.
    async fn start(
        opts: &LabOptions,
        needs: &TargetNeeds,
        run_dir: PathBuf,
        journal: &Journal,
    ) -> Result<LabBase, LabError> {
        let data_dir = run_dir.join("data");
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| LabError(format!("cannot create {}: {e}", data_dir.display())))?;
        let user = if needs.unprivileged {
            Some(unprivileged_dirs(
                &opts.target.program,
                &run_dir,
                &data_dir,
            )?)
        } else {
            None
        };
        let config = if needs.config_file {
            Some(write_lab_config(&run_dir)?)
        } else {
            None
        };

        let wants_db = opts
            .service
            .as_ref()
            .is_none_or(|s| s.deps_of(DepKind::Postgres).next().is_some());
        let (db, database_url, db_proxy) = if wants_db {
            let (db, url, proxy) = start_database(opts, needs, journal).await?;
            (db, url, Some(proxy))
        } else {
            (Database::None, String::new(), None)
        };
        let proxied_url = db_proxy
            .as_ref()
            .map(|p| pglab::replace_host_port(&database_url, &p.local_addr().to_string()))
            .unwrap_or_default();

        let payments = PaymentsStub::start(opts.seed)
            .await
            .map_err(|e| LabError(format!("cannot start the payments stub: {e}")))?;
        let payments_proxy = Proxy::start(
            "127.0.0.1:0".parse().expect("addr"),
            payments.addr(),
            opts.seed ^ 0x5041_594d,
        )
        .await
        .map_err(|e| LabError(format!("cannot start the payments proxy: {e}")))?;

        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        let mut proxies = BTreeMap::new();
        if let Some(p) = db_proxy {
            proxies.insert("database".to_string(), p);
        }
        let payments_url = format!("http://{}", payments_proxy.local_addr());
        proxies.insert("payments".to_string(), payments_proxy);
        Ok(LabBase {
            run_dir,
            data_dir,
            db,
            database_url,
            proxied_url,
            proxies,
            payments,
            payments_url,
            admin_token,
            user,
            config,
        })
    }
}

/// A running lab.
pub struct Lab {
    pub run_dir: PathBuf,
    pub data_dir: PathBuf,
    pub(crate) db: Database,
    /// Direct URL of the run's database, bypassing the proxy (for the harness's own queries).
    pub database_url: String,
    /// The fault proxies, by the name network faults use.
    pub(crate) proxies: BTreeMap<String, Proxy>,
    pub payments: PaymentsStub,
    pub(crate) spec: TargetSpec,
    pub(crate) env: TargetEnv,
    pub(crate) target: Mutex<Option<TargetProcess>>,
    /// A service started from a lab file, instead of target-app.
    pub(crate) service: Mutex<Option<ServiceProcess>>,
    /// A lab-file service that runs as a container (`image` or `build`).
    pub(crate) service_container: Option<container::ServiceContainer>,
    /// How to start the lab-file service again after a crash.
    service_start: Option<process::ServiceStart>,
    pub(crate) admin: Option<TargetAdmin>,
    /// Where the service's Prometheus metrics are read, if it has any.
    pub metrics_url: Option<String>,
    /// The liveness and readiness paths the lab samples, if the service has them.
    pub health: Health,
    /// What the lab serves for the service's http dependencies (stopped with the lab).
    canned: Vec<tokio::task::JoinHandle<()>>,
    pub base_url: String,
    pub recorder: Arc<Recorder>,
    monitoring: Mutex<Option<Monitoring>>,
    /// The run's seed, for faults that draw (extra load, generated input).
    pub seed: u64,
    /// A handle on the run's journal, for what faults create outside the lab's processes (a
    /// cgroup, a helper process): journalled before it exists, like the lab's own resources.
    resource_log: Option<ResourceLog>,
    /// Checks that faults made of what they observed themselves, added to the scenario's.
    fault_checks: Mutex<Vec<crate::verdict::CheckResult>>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("run_dir", &self.run_dir)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Lab {
    /// Starts every piece, recording each resource in the journal before it exists, so a killed
    /// run can be cleaned up by `fivehundred recover`.
    pub async fn start(
        opts: &LabOptions,
        run_dir: PathBuf,
        journal: &Journal,
        recorder: Arc<Recorder>,
    ) -> Result<Lab, LabError> {
        Lab::start_with(opts, &TargetNeeds::default(), run_dir, journal, recorder).await
    }

    /// [`Lab::start`], with the target started as the scenario's faults need (a tmpfs data
    /// directory, an unprivileged user, a config file).
    pub async fn start_with(
        opts: &LabOptions,
        needs: &TargetNeeds,
        run_dir: PathBuf,
        journal: &Journal,
        recorder: Arc<Recorder>,
    ) -> Result<Lab, LabError> {
        let base = LabBase::start(opts, needs, run_dir, journal).await?;
        if let Some(lab_file) = &opts.service {
            // Boxed as `dyn Future + Send`: the service's start holds closures over borrowed
            // values, and erasing its type here keeps callers' futures provably `Send`.
            let start: std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<Lab, LabError>> + Send + '_>,
            > = Box::pin(Lab::start_service(
                opts, lab_file, needs, base, journal, recorder,
            ));
            return start.await;
        }
        Lab::start_target_app(opts, needs, base, journal, recorder).await
    }

    /// Starts target-app on top of what every lab has, and the monitoring that runs its rules.
    async fn start_target_app(
        opts: &LabOptions,
        needs: &TargetNeeds,
        base: LabBase,
        journal: &Journal,
        recorder: Arc<Recorder>,
    ) -> Result<Lab, LabError> {
        let LabBase {
            run_dir,
            data_dir,
            db,
            database_url,
            proxied_url,
            proxies,
            payments,
            payments_url,
            admin_token,
            user,
            config,
        } = base;
        let env = TargetEnv {
            database_url: proxied_url,
            payments_url,
            data_dir: data_dir.clone(),
            admin_token: admin_token.clone(),
            config,
            data_tmpfs: needs.data_tmpfs,
            user,
        };
        let target = TargetProcess::start(&opts.target, &env, &recorder, Duration::from_secs(30))
            .await
            .map_err(LabError)?;
        journal.resource(Resource::Process {
            pid: target.pid(),
            what: "target".into(),
            start_time: None,
        });
        let admin = Some(TargetAdmin::new(target.admin, &admin_token));
        let base_url = target.base_url();
        let target_admin_addr = target.admin;
        // Real Prometheus and Alertmanager, running the target's own rules on the lab's clock.
        // Without them the alert checks cannot be honest, so a missing stack stops the run.
        let monitoring = start_monitoring(
            &run_dir,
            &target.admin.to_string(),
            &crate::monitoring::alert_rules_file(),
            &recorder,
        )
        .await?;
        Ok(Lab {
            run_dir,
            data_dir,
            db,
            database_url,
            proxies,
            payments,
            spec: opts.target.clone(),
            env,
            target: Mutex::new(Some(target)),
            service: Mutex::new(None),
            service_container: None,
            service_start: None,
            admin,
            metrics_url: Some(format!("http://{}/metrics", target_admin_addr)),
            health: Health {
                liveness: Some("/livez".into()),
                readiness: Some("/readyz".into()),
            },
            canned: Vec::new(),
            base_url,
            recorder,
            monitoring: Mutex::new(Some(monitoring)),
            seed: opts.seed,
            resource_log: journal.resource_log().ok(),
            fault_checks: Mutex::new(Vec::new()),
        })
    }

    /// The fault proxy named `which`, if the lab has one.
    pub fn proxy(&self, which: &ProxyTarget) -> Option<&Proxy> {
        self.proxies.get(&which.0)
    }

    /// The names of the lab's fault proxies.
    pub fn proxy_names(&self) -> Vec<String> {
        self.proxies.keys().cloned().collect()
    }

    /// The PostgreSQL postmaster's pid, when the lab runs its own cluster.
    pub fn postgres_pid(&self) -> Option<u32> {
        match &self.db {
            Database::Ephemeral(c) => c.pid(),
            Database::Existing { .. } | Database::Container { .. } | Database::None => None,
        }
    }

    /// Whether the lab's PostgreSQL is its own (a cluster or a container it started), not a
    /// server shared with others (`--database-url`).
    pub fn owns_database(&self) -> bool {
        matches!(self.db, Database::Ephemeral(_) | Database::Container { .. })
    }

    /// The target's admin API (metrics, failpoints), when it offers one.
    pub fn target_admin(&self) -> Option<&TargetAdmin> {
        self.admin.as_ref()
    }

    /// The target's pid while it runs.
    pub fn target_pid(&self) -> Option<u32> {
        if let Some(c) = &self.service_container {
            return c.pid();
        }
        if let Some(s) = self.service.lock().ok()?.as_mut() {
            return s.exited().is_none().then(|| s.pid());
        }
        let mut guard = self.target.lock().ok()?;
        let t = guard.as_mut()?;
        t.exited().is_none().then(|| t.pid())
    }

    /// Whether the target process has exited (and how), without waiting.
    pub fn target_exit(&self) -> Option<String> {
        if let Some(c) = &self.service_container {
            return c.exited();
        }
        if let Some(s) = self.service.lock().ok()?.as_mut() {
            return s.exited().map(|status| status.to_string());
        }
        let mut guard = self.target.lock().ok()?;
        guard.as_mut().and_then(|t| t.exited())
    }

    /// The target's spec and environment, for faults that restart it.
    pub fn target_setup(&self) -> (&TargetSpec, &TargetEnv) {
        (&self.spec, &self.env)
    }

    /// Journals something a fault is about to create outside the lab's processes, so that
    /// `fivehundred recover` can remove it if the run is killed. Fails if it cannot be made
    /// durable: what is not journalled must not be created.
    pub fn journal_resource(&self, resource: Resource) -> Result<(), String> {
        match &self.resource_log {
            Some(log) => log
                .resource(resource)
                .map_err(|e| format!("cannot journal it: {e}")),
            None => Err("the run's journal cannot be written".into()),
        }
    }

    /// Takes the target process out of the lab (a fault that kills it owns it until then).
    pub fn take_target(&self) -> Option<TargetProcess> {
        self.target.lock().ok().and_then(|mut t| t.take())
    }

    /// Puts a (restarted) target process in the lab.
    pub fn put_target(&self, target: TargetProcess) {
        if let Ok(mut slot) = self.target.lock() {
            *slot = Some(target);
        }
    }

    /// Adds a check made by a fault from what it observed (evaluated with the others).
    pub fn record_check(&self, check: crate::verdict::CheckResult) {
        if let Ok(mut c) = self.fault_checks.lock() {
            c.push(check);
        }
    }

    pub(crate) fn take_fault_checks(&self) -> Vec<crate::verdict::CheckResult> {
        self.fault_checks
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    /// The URLs of the lab's Prometheus and Alertmanager, while they run.
    pub fn monitoring_urls(&self) -> Option<(String, String)> {
        let guard = self.monitoring.lock().ok()?;
        let m = guard.as_ref()?;
        Some((
            m.prometheus_url().to_string(),
            m.alertmanager_url().to_string(),
        ))
    }

    /// Copies the alert notifications received so far into the recording, each also as an
    /// event on the timeline. Idempotent: only new notifications are added.
    pub fn collect_alerts(&self) {
        let notes = match self.monitoring.lock() {
            Ok(g) => g.as_ref().map(|m| m.notifications()).unwrap_or_default(),
            Err(_) => return,
        };
        self.recorder.with(|r| {
            for n in notes.into_iter().skip(r.alerts.len()) {
                let (kind, verb) = match n.status {
                    crate::monitoring::AlertStatus::Firing => (EventKind::AlertFiring, "firing"),
                    crate::monitoring::AlertStatus::Resolved => {
                        (EventKind::AlertResolved, "resolved")
                    }
                };
                r.events.push(crate::record::Event {
                    at_ms: n.at_ms,
                    kind,
                    detail: format!("{} {verb}", n.alert),
                });
                r.alerts.push(n);
            }
        });
    }

    /// Stops everything and removes the run's database. Safe to call more than once.
    pub async fn stop(&mut self) {
        self.collect_alerts();
        let monitoring = self.monitoring.lock().ok().and_then(|mut m| m.take());
        if let Some(m) = monitoring {
            tokio::task::block_in_place(|| drop(m.stop()));
        }
        for task in self.canned.drain(..) {
            task.abort();
        }
        let service = self.service.lock().ok().and_then(|mut s| s.take());
        if let Some(mut s) = service {
            s.stop().await;
            self.recorder
                .event(EventKind::TargetExit, "service stopped by the lab");
        }
        if let Some(c) = self.service_container.take() {
            c.stop().await;
            self.recorder.event(
                EventKind::TargetExit,
                "service's container stopped by the lab",
            );
        }
        let target = self.target.lock().ok().and_then(|mut t| t.take());
        if let Some(mut t) = target {
            tokio::task::block_in_place(|| t.stop());
            self.recorder
                .event(EventKind::TargetExit, "target stopped by the lab");
        }
        // The proxies and the payments stub stop when the lab is dropped.
        if let Database::Existing { admin_url, name } = &self.db {
            let _ = pglab::drop_database(admin_url, name).await;
        }
        if let Database::Container { pg, engine, run } = &self.db {
            let _ = pg.container.clone().remove().await;
            // Then everything else of the run, by its labels: its network.
            let _ = crate::docker::cleanup::remove_by_label(engine, run).await;
        }
        if let Database::Ephemeral(_) = &self.db {
            // Dropping the cluster stops the server and removes its files.
            let db = std::mem::replace(
                &mut self.db,
                Database::Existing {
                    admin_url: String::new(),
                    name: String::new(),
                },
            );
            tokio::task::block_in_place(|| drop(db));
        }
    }
}

/// The lab's teardown, on every way out of a scenario run or a game day: stops its processes
/// (when it got as far as starting), removes its run directory, and closes its journal when
/// `finish_journal`. A fault left unreverted keeps the journal, for `fivehundred recover`.
pub async fn dismantle(lab: Option<Lab>, run_dir: &Path, journal: Journal, finish_journal: bool) {
    if let Some(mut lab) = lab {
        lab.stop().await;
        drop(lab);
    }
    let _ = std::fs::remove_dir_all(run_dir);
    if finish_journal {
        journal.finish();
    }
}

/// The lab's Prometheus scraping `target` (`host:port`) with `rules` on the lab's clock, and
/// its Alertmanager; what each alert would take to detect in production goes in the recording.
async fn start_monitoring(
    run_dir: &Path,
    target: &str,
    rules: &Path,
    recorder: &Arc<Recorder>,
) -> Result<Monitoring, LabError> {
    let monitoring = Monitoring::start(MonitoringOptions::new(
        run_dir.to_path_buf(),
        target.to_string(),
        rules.to_path_buf(),
        recorder.start,
    ))
    .await
    .map_err(|e| LabError(format!("cannot start the lab's monitoring: {e}")))?;
    let production: BTreeMap<String, f64> = monitoring
        .alert_names()
        .into_iter()
        .filter_map(|a| {
            let d = monitoring.production_detection_time(&a)?;
            Some((a, d.as_secs_f64()))
        })
        .collect();
    recorder.with(|r| r.production_detection_s = production);
    Ok(monitoring)
}

/// The configuration file the lab starts the target with, when a fault may change it. It sets
/// what the lab relies on anyway, so that a fault's change is the only difference.
pub const LAB_CONFIG: &str = "# Written by fivehundred for this run; a config fault rewrites it and sends SIGHUP.\n\
request_deadline = \"5s\"\n\
outbox_retry_interval = \"1s\"\n";

fn write_lab_config(run_dir: &Path) -> Result<PathBuf, LabError> {
    use std::os::unix::fs::PermissionsExt;
    let path = run_dir.join("target.toml");
    std::fs::write(&path, LAB_CONFIG)
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)))
        .map_err(|e| LabError(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// An unprivileged target must reach its data directory (and own it) and its config file: the
/// run directory becomes searchable, not readable, by others. Returns the user's uid and gid.
fn unprivileged_dirs(
    program: &Path,
    run_dir: &Path,
    data_dir: &Path,
) -> Result<(u32, u32), LabError> {
    use std::os::unix::fs::PermissionsExt;
    // Checked before the run too (and the scenario skipped); this is the last word.
    let (uid, gid) = crate::privileges::unprivileged_user(program).map_err(LabError)?;
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
                "cannot hand {} to the unprivileged target: {e}",
                data_dir.display()
            ))
        })?;
    Ok((uid, gid))
}

mod container;
mod database;
mod process;
mod service;

use database::{Database, start_database};

pub use process::Killed;

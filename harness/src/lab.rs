//! The lab: everything one run needs, owned by the harness and torn down by it, whatever the exit
//! path. A database (an ephemeral cluster, a fresh database on an existing server, or a
//! container), a fault proxy in front of it, and the service its lab file describes with its
//! other dependencies (`lab/service.rs`): target-app is started from its own lab file like any
//! other service.
//!
//! Labs share nothing: each has its own ports, directory and database, so several run at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::journal::{Journal, Resource, ResourceLog};
use crate::labfile::{DepKind, LabFile, ServiceProcess};
use crate::monitoring::{Monitoring, MonitoringOptions};
use crate::proxy::Proxy;
use crate::record::{EventKind, Recorder};
use crate::stub::HttpStub;
use crate::target::{TargetAdmin, TargetNeeds};

/// Where the lab serves what it starts for the service, and where the service listens.
const HOST: &str = "127.0.0.1";

/// The lab could not be set up; the message says what to do. Exit code 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LabError(pub String);

#[derive(Debug, Clone)]
pub struct LabOptions {
    /// The service under test and its dependencies: target-app's own lab file unless `--lab`
    /// names another.
    pub lab_file: Arc<LabFile>,
    /// Appended to the service's command (`fivehundred run -- ARGS`, `explain`'s protection
    /// arguments).
    pub extra_args: Vec<String>,
    /// An existing server to make a fresh database on, instead of an ephemeral cluster.
    pub database_url: Option<String>,
    /// Where the lab's own PostgreSQL runs.
    pub backend: Backend,
    pub seed: u64,
}

impl LabOptions {
    /// The lab file of the service under test.
    pub fn lab_file(&self) -> &LabFile {
        &self.lab_file
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

/// Which of the lab's proxies a network fault acts on: a dependency's name in the lab file
/// (`database` and `payments` in target-app's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProxyTarget(pub String);

impl std::fmt::Display for ProxyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How long each part of a lab's start took, in the order they ran: the database, the
/// service's image and network (a container), its dependencies' proxies, the service started
/// and ready, monitoring. What `cargo bench` shows of where a lab's start goes.
pub type StartParts = Vec<(&'static str, std::time::Duration)>;

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
    pub admin_token: String,
    /// How long each part took so far.
    pub parts: StartParts,
}

impl LabBase {
    /// The run's data directory and its database behind a fault proxy (unless the lab file
    /// names no PostgreSQL).
    async fn start(
        opts: &LabOptions,
        needs: &TargetNeeds,
        run_dir: PathBuf,
        journal: &Journal,
    ) -> Result<LabBase, LabError> {
        let data_dir = run_dir.join("data");
        std::fs::create_dir_all(&data_dir)
            .map_err(|e| LabError(format!("cannot create {}: {e}", data_dir.display())))?;
        let wants_db = opts.lab_file.deps_of(DepKind::Postgres).next().is_some();
        let mut parts = StartParts::new();
        let (db, database_url, db_proxy) = if wants_db {
            let (db, url, proxy) = start_database(opts, needs, journal, &mut parts).await?;
            (db, url, Some(proxy))
        } else {
            (Database::None, String::new(), None)
        };
        let proxied_url = db_proxy
            .as_ref()
            .map(|p| pglab::replace_host_port(&database_url, &p.local_addr().to_string()))
            .unwrap_or_default();
        let mut proxies = BTreeMap::new();
        if let Some(p) = db_proxy {
            proxies.insert("database".to_string(), p);
        }
        Ok(LabBase {
            run_dir,
            data_dir,
            db,
            database_url,
            proxied_url,
            proxies,
            admin_token: uuid::Uuid::new_v4().simple().to_string(),
            parts,
        })
    }
}

/// A running lab.
pub struct Lab {
    /// What it was started from.
    pub lab_file: Arc<LabFile>,
    pub run_dir: PathBuf,
    pub data_dir: PathBuf,
    pub(crate) db: Database,
    /// Direct URL of the run's database, bypassing the proxy (for the harness's own queries).
    pub database_url: String,
    /// The fault proxies, by the name network faults use.
    pub(crate) proxies: BTreeMap<String, Proxy>,
    /// The http dependencies the lab serves from canned answers, by name.
    pub(crate) http_stubs: BTreeMap<String, HttpStub>,
    /// The service, when the lab runs it as a process.
    pub(crate) service: Mutex<Option<ServiceProcess>>,
    /// The service, when it runs as a container (`image` or `build`).
    pub(crate) service_container: Option<container::ServiceContainer>,
    /// How to start the service again after a crash.
    service_start: Option<process::ServiceStart>,
    /// The service's failpoint API, when its lab file names one.
    pub(crate) admin: Option<TargetAdmin>,
    /// Where the service's Prometheus metrics are read, if it has any.
    pub metrics_url: Option<String>,
    /// The liveness and readiness paths the lab samples, if the service has them.
    pub health: Health,
    /// The data directory is a private tmpfs of this many bytes (made at each start).
    pub data_tmpfs: Option<u64>,
    /// The (uid, gid) the service runs as, when not as the controller.
    pub service_user: Option<(u32, u32)>,
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
    /// How long each part of its start took.
    start_parts: StartParts,
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

    /// [`Lab::start`], with the service started as the scenario's faults need (a tmpfs data
    /// directory, an unprivileged user, a config file).
    pub async fn start_with(
        opts: &LabOptions,
        needs: &TargetNeeds,
        run_dir: PathBuf,
        journal: &Journal,
        recorder: Arc<Recorder>,
    ) -> Result<Lab, LabError> {
        // What the load notes of every answer, and where readers of the recording look.
        recorder.with(|r| r.request_ids = opts.lab_file.request_ids());
        let base = LabBase::start(opts, needs, run_dir, journal).await?;
        // Boxed as `dyn Future + Send`: the service's start holds closures over borrowed
        // values, and erasing its type here keeps callers' futures provably `Send`.
        let start: std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Lab, LabError>> + Send + '_>,
        > = Box::pin(Lab::start_service(opts, needs, base, journal, recorder));
        start.await
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

    /// The service's failpoint API, when its lab file names one.
    pub fn target_admin(&self) -> Option<&TargetAdmin> {
        self.admin.as_ref()
    }

    /// The http dependency `name`'s stub, when the lab serves it.
    pub fn http_stub(&self, name: &str) -> Option<&HttpStub> {
        self.http_stubs.get(name)
    }

    /// How long each part of the lab's start took, in the order they ran.
    pub fn start_parts(&self) -> &[(&'static str, std::time::Duration)] {
        &self.start_parts
    }

    /// How long the running service took from its spawn to its first successful readiness
    /// check, when the lab started it as a process: the part of the lab's start that is the
    /// service's own.
    pub fn service_ready_after(&self) -> Option<std::time::Duration> {
        self.service
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.ready_after))
    }

    /// The service's Prometheus metrics, as text.
    pub async fn read_metrics(&self) -> Result<String, String> {
        let url = self
            .metrics_url
            .as_deref()
            .ok_or("the service has no metrics URL in its lab file")?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let r = client.get(url).send().await.map_err(|e| e.to_string())?;
        if !r.status().is_success() {
            return Err(format!("{url} answered {}", r.status()));
        }
        r.text().await.map_err(|e| e.to_string())
    }

    /// The target's pid while it runs.
    pub fn target_pid(&self) -> Option<u32> {
        if let Some(c) = &self.service_container {
            return c.pid();
        }
        let mut guard = self.service.lock().ok()?;
        let s = guard.as_mut()?;
        s.exited().is_none().then(|| s.pid())
    }

    /// Whether the target process has exited (and how), without waiting.
    pub fn target_exit(&self) -> Option<String> {
        if let Some(c) = &self.service_container {
            return c.exited();
        }
        let mut guard = self.service.lock().ok()?;
        guard
            .as_mut()
            .and_then(|s| s.exited().map(|status| status.to_string()))
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
        for (_, stub) in std::mem::take(&mut self.http_stubs) {
            stub.stop().await;
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
        // The proxies stop when the lab is dropped.
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

mod container;
mod database;
mod process;
mod service;

use database::{Database, start_database};

pub use process::Killed;

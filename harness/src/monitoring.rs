//! Real Prometheus and Alertmanager for the lab: Prometheus scrapes the target with the target's
//! own alert rules (on a compressed clock, derived from the production rules by [`scale_rules`]),
//! Alertmanager routes every alert to a webhook the harness serves, and the webhook records each
//! notification with the moment it arrived.
//!
//! # Layout
//!
//! - [`rules`]: production rules → lab rules (and their promtool tests), rule timings.
//! - [`webhook`]: the webhook and the [`AlertNotification`] records.
//! - this file: finding the binaries, writing their configuration, running them.
//!
//! Both servers come from Debian's packages (`prometheus`, `prometheus-alertmanager`), installed
//! on first use where the machine allows it ([`crate::install`]). Otherwise a missing binary is a
//! [`MonitoringError::Missing`] naming the command to run, which the `fivehundred` binary maps to
//! exit code 3, so a missing monitoring stack can never turn alert checks into passes.
//! `FIVEHUNDRED_MONITORING_BIN_DIR` points at other builds of the three binaries; only that
//! directory is searched then, and nothing is installed.

pub mod rules;
pub mod webhook;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

pub use rules::{
    RuleTiming, ScaleError, format_duration, parse_duration, rule_timings, scale_rule_tests,
    scale_rules,
};
pub use webhook::{AlertNotification, AlertStatus};

use webhook::Webhook;

/// What to install when the monitoring binaries are missing (Debian package names).
pub const INSTALL_HINT: &str = "apt-get install prometheus prometheus-alertmanager";

/// How much faster the lab's clock runs than production's, by default: `for: 2m` becomes 4s and
/// `rate(x[5m])` becomes `rate(x[10s])`, so a scenario's fault phase of tens of seconds covers
/// what production would take minutes to see.
pub const DEFAULT_TIME_SCALE: f64 = 30.0;

/// Why the monitoring stack could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MonitoringError {
    #[error("monitoring needs {missing}, not found on PATH; install with `{INSTALL_HINT}`")]
    Missing { missing: String },
    #[error("deriving lab alert rules from {}: {source}", path.display())]
    Rules {
        path: PathBuf,
        #[source]
        source: ScaleError,
    },
    #[error("invalid monitoring option: {0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} {problem}; its log is {} (last line: {last_line})", log.display())]
    NotReady {
        what: &'static str,
        problem: String,
        log: PathBuf,
        last_line: String,
    },
}

impl MonitoringError {
    /// The stack is not installed (the harness exits 3 on this), as opposed to failing to run.
    pub fn is_missing(&self) -> bool {
        matches!(self, MonitoringError::Missing { .. })
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> MonitoringError {
    let what = what.into();
    move |source| MonitoringError::Io { what, source }
}

/// Where the three binaries are.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub prometheus: PathBuf,
    /// Debian names it `prometheus-alertmanager`; upstream `alertmanager`.
    pub alertmanager: PathBuf,
    pub promtool: PathBuf,
}

impl Binaries {
    /// Looks on PATH (and `/usr/bin`, `/usr/local/bin`, where the packages put them, in case PATH
    /// is minimal). Names everything missing at once.
    pub fn find() -> Result<Self, MonitoringError> {
        // Installs the packages where this machine allows it; otherwise the error below names
        // what is missing and how to install it.
        if let Err(e) = crate::install::ensure(crate::install::MONITORING) {
            tracing::debug!("{e}");
        }
        let prometheus = find_binary(&["prometheus"]);
        let alertmanager = find_binary(&["prometheus-alertmanager", "alertmanager"]);
        let promtool = find_binary(&["promtool"]);
        match (prometheus, alertmanager, promtool) {
            (Some(prometheus), Some(alertmanager), Some(promtool)) => Ok(Self {
                prometheus,
                alertmanager,
                promtool,
            }),
            (p, a, t) => {
                let missing: Vec<&str> = [
                    (p.is_none(), "prometheus"),
                    (a.is_none(), "alertmanager"),
                    (t.is_none(), "promtool"),
                ]
                .into_iter()
                .filter_map(|(gone, name)| gone.then_some(name))
                .collect();
                Err(MonitoringError::Missing {
                    missing: missing.join(", "),
                })
            }
        }
    }
}

/// `promtool` alone, for checking and testing rules without running the servers.
pub fn find_promtool() -> Result<PathBuf, MonitoringError> {
    if let Err(e) = crate::install::ensure(crate::install::MONITORING) {
        tracing::debug!("{e}");
    }
    find_binary(&["promtool"]).ok_or_else(|| MonitoringError::Missing {
        missing: "promtool".into(),
    })
}

/// The production alert rules the lab's Prometheus runs (on a faster clock):
/// `$FIVEHUNDRED_ALERT_RULES`, else target-app's, next to the scenario catalogue.
pub fn alert_rules_file() -> PathBuf {
    if let Some(p) = std::env::var_os("FIVEHUNDRED_ALERT_RULES") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from("target-app/alerts/rules.yml");
    if local.is_file() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target-app/alerts/rules.yml")
}

pub use crate::install::BIN_DIR_ENV;

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dirs: Vec<PathBuf> = match std::env::var_os(BIN_DIR_ENV) {
        Some(dir) => vec![PathBuf::from(dir)],
        None => {
            let path = std::env::var_os("PATH").unwrap_or_default();
            std::env::split_paths(&path)
                .chain(["/usr/bin".into(), "/usr/local/bin".into()])
                .collect()
        }
    };
    names.iter().find_map(|name| {
        dirs.iter().map(|d| d.join(name)).find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// How to run the lab's monitoring. [`MonitoringOptions::new`] fills every timing with a lab
/// default: 1s scrape and evaluation, [`DEFAULT_TIME_SCALE`], Alertmanager grouping of 1s and
/// repeats every 10s, 30s to become ready.
#[derive(Debug, Clone)]
pub struct MonitoringOptions {
    /// The run's directory; everything is written under `<run_dir>/monitoring/`.
    pub run_dir: PathBuf,
    /// `host:port` of the target's admin listener; Prometheus scrapes `/metrics` there.
    pub target: String,
    /// The production rules file (for target-app, `target-app/alerts/rules.yml`).
    pub rules_file: PathBuf,
    /// The instant the run started: notification times are offsets from it.
    pub run_start: Instant,
    /// Production durations are divided by this (see [`scale_rules`]).
    pub time_scale: f64,
    pub scrape_interval: Duration,
    pub evaluation_interval: Duration,
    /// How long Alertmanager waits to batch a new alert group's first notification.
    pub group_wait: Duration,
    /// How long it waits before notifying a change in a group (a resolution, a new alert).
    pub group_interval: Duration,
    /// How often it repeats a notification for alerts still firing. Not 1s like the others: a
    /// repeat says nothing new, and every second it would bury the timeline in duplicates.
    pub repeat_interval: Duration,
    /// How long each server gets to answer `/-/ready`.
    pub ready_timeout: Duration,
    /// The scrape job's name: the `job` label every alert carries.
    pub job_name: String,
}

impl MonitoringOptions {
    pub fn new(
        run_dir: impl Into<PathBuf>,
        target: impl Into<String>,
        rules_file: impl Into<PathBuf>,
        run_start: Instant,
    ) -> Self {
        Self {
            run_dir: run_dir.into(),
            target: target.into(),
            rules_file: rules_file.into(),
            run_start,
            time_scale: DEFAULT_TIME_SCALE,
            scrape_interval: Duration::from_secs(1),
            evaluation_interval: Duration::from_secs(1),
            group_wait: Duration::from_secs(1),
            group_interval: Duration::from_secs(1),
            repeat_interval: Duration::from_secs(10),
            ready_timeout: Duration::from_secs(30),
            job_name: "target".into(),
        }
    }

    /// The shortest range a lab rule may use: four scrape intervals. `rate()` needs two samples
    /// in its window; with only two intervals' worth, scrape jitter sometimes leaves one, and the
    /// alert would flicker for a reason production never sees.
    pub fn range_floor(&self) -> Duration {
        self.scrape_interval * 4
    }

    fn validate(&self) -> Result<(), MonitoringError> {
        let bad = |m: String| Err(MonitoringError::Invalid(m));
        let target_ok = self
            .target
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            && !self.target.contains(['/', ' ']);
        if !target_ok {
            return bad(format!("target `{}` is not host:port", self.target));
        }
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return bad(format!("time scale {} is not positive", self.time_scale));
        }
        for (name, d) in [
            ("scrape interval", self.scrape_interval),
            ("evaluation interval", self.evaluation_interval),
            ("group_wait", self.group_wait),
            ("group_interval", self.group_interval),
            ("repeat_interval", self.repeat_interval),
        ] {
            if d < Duration::from_millis(100) {
                return bad(format!("{name} {d:?} is below 100ms"));
            }
        }
        Ok(())
    }
}

/// The running Prometheus + Alertmanager + webhook. Dropping it (or [`Monitoring::stop`]) stops
/// both servers; their files stay in the run directory for the report.
#[derive(Debug)]
pub struct Monitoring {
    prometheus: Option<Child>,
    alertmanager: Option<Child>,
    prometheus_url: String,
    alertmanager_url: String,
    webhook: Webhook,
    dir: PathBuf,
    time_scale: f64,
    production: Vec<RuleTiming>,
    lab: Vec<RuleTiming>,
}

impl Monitoring {
    /// Derives the lab rules, starts the webhook, then Alertmanager, then Prometheus (so its
    /// first alerts have somewhere to go), and waits until both answer `/-/ready`.
    pub async fn start(opts: MonitoringOptions) -> Result<Self, MonitoringError> {
        opts.validate()?;
        let bins = Binaries::find()?;

        let production_text = fs::read_to_string(&opts.rules_file)
            .map_err(io_err(format!("reading {}", opts.rules_file.display())))?;
        let rules_err = |source| MonitoringError::Rules {
            path: opts.rules_file.clone(),
            source,
        };
        let lab_text = scale_rules(&production_text, opts.time_scale, opts.range_floor())
            .map_err(rules_err)?;
        let production = rule_timings(&production_text).map_err(rules_err)?;
        let lab = rule_timings(&lab_text).map_err(rules_err)?;

        let run_dir = std::path::absolute(&opts.run_dir)
            .map_err(io_err(format!("resolving {}", opts.run_dir.display())))?;
        let dir = run_dir.join("monitoring");
        fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        let lab_rules = dir.join("rules.lab.yml");
        let header = format!(
            "# Derived by fivehundred from {} with every duration divided by {}.\n# Edit the production file, not this one.\n",
            opts.rules_file.display(),
            opts.time_scale
        );
        write(&lab_rules, &(header + &lab_text))?;

        let webhook = Webhook::start(opts.run_start)
            .await
            .map_err(io_err("starting the alert webhook on 127.0.0.1"))?;

        let mut monitoring = Monitoring {
            prometheus: None,
            alertmanager: None,
            prometheus_url: String::new(),
            alertmanager_url: String::new(),
            webhook,
            dir: dir.clone(),
            time_scale: opts.time_scale,
            production,
            lab,
        };

        let am_config = dir.join("alertmanager.yml");
        write(
            &am_config,
            &alertmanager_yml(&opts, &monitoring.webhook.url()),
        )?;
        let am_data = fresh_dir(&dir.join("alertmanager-data"))?;
        let (am, am_port) = start_server(
            "alertmanager",
            &dir.join("alertmanager.log"),
            opts.ready_timeout,
            |port| {
                let mut cmd = Command::new(&bins.alertmanager);
                cmd.arg(format!("--config.file={}", am_config.display()))
                    .arg(format!("--storage.path={}", am_data.display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    // No cluster: it would bind port 9094 on every interface, and two labs
                    // running side by side would collide on it.
                    .arg("--cluster.listen-address=");
                cmd
            },
        )
        .await?;
        monitoring.alertmanager = Some(am);
        monitoring.alertmanager_url = format!("http://127.0.0.1:{am_port}");

        let prom_config = dir.join("prometheus.yml");
        write(
            &prom_config,
            &prometheus_yml(&opts, &lab_rules, &format!("127.0.0.1:{am_port}")),
        )?;
        let prom_data = fresh_dir(&dir.join("prometheus-data"))?;
        // Prometheus looks back 5m for an instant vector's last sample; on the lab's clock that
        // is minutes of a vanished series still counting. Scaled like everything else.
        let lookback = rules::scale_duration(Duration::from_secs(300), opts.time_scale)
            .max(opts.range_floor());
        let resend = opts.evaluation_interval.max(Duration::from_secs(1));
        let (prom, prom_port) = start_server(
            "prometheus",
            &dir.join("prometheus.log"),
            opts.ready_timeout,
            |port| {
                let mut cmd = Command::new(&bins.prometheus);
                cmd.arg(format!("--config.file={}", prom_config.display()))
                    .arg(format!("--storage.tsdb.path={}", prom_data.display()))
                    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                    .arg(format!(
                        "--query.lookback-delta={}",
                        format_duration(lookback)
                    ))
                    // Re-send firing alerts to Alertmanager often (default 1m): if the first
                    // send is lost, the lab must not wait a production minute for the next.
                    .arg(format!(
                        "--rules.alert.resend-delay={}",
                        format_duration(resend)
                    ));
                cmd
            },
        )
        .await?;
        monitoring.prometheus = Some(prom);
        monitoring.prometheus_url = format!("http://127.0.0.1:{prom_port}");
        Ok(monitoring)
    }

    /// `http://127.0.0.1:<port>` of Prometheus (its UI and API).
    pub fn prometheus_url(&self) -> &str {
        &self.prometheus_url
    }

    /// `http://127.0.0.1:<port>` of Alertmanager.
    pub fn alertmanager_url(&self) -> &str {
        &self.alertmanager_url
    }

    /// Where the configuration, lab rules, data and logs are: `<run_dir>/monitoring`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The factor the lab's rules were derived with.
    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }

    /// Every alert notification received so far, in arrival order.
    pub fn notifications(&self) -> Vec<AlertNotification> {
        self.webhook.inbox.snapshot()
    }

    /// Waits until a notification for `alert` with `status` arrives at or after `after_ms` (run
    /// offset), or `timeout` passes.
    pub async fn wait_for(
        &self,
        alert: &str,
        status: AlertStatus,
        after_ms: f64,
        timeout: Duration,
    ) -> Option<AlertNotification> {
        let deadline = tokio::time::Instant::now() + timeout;
        let inbox = &self.webhook.inbox;
        loop {
            // Registered before looking, so an arrival between the look and the wait still wakes.
            let arrived = inbox.arrived().notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(n) = inbox
                .snapshot()
                .into_iter()
                .find(|n| n.alert == alert && n.status == status && n.at_ms >= after_ms)
            {
                return Some(n);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }

    /// The timing of `alert` in the production rules; where several rules define it, the one
    /// that would fire first.
    pub fn production_timing(&self, alert: &str) -> Option<&RuleTiming> {
        fastest(&self.production, alert)
    }

    /// Roughly how long production Prometheus would take to fire `alert` on a clear fault:
    /// its `for` plus its shortest window (see [`RuleTiming::detection_time`]).
    pub fn production_detection_time(&self, alert: &str) -> Option<Duration> {
        self.production_timing(alert)
            .map(RuleTiming::detection_time)
    }

    /// The same estimate for the lab's derived rule.
    pub fn lab_detection_time(&self, alert: &str) -> Option<Duration> {
        fastest(&self.lab, alert).map(RuleTiming::detection_time)
    }

    /// Every alert name the rules define, in file order.
    pub fn alert_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for t in &self.production {
            if !names.contains(&t.alert) {
                names.push(t.alert.clone());
            }
        }
        names
    }

    /// Stops Prometheus, then Alertmanager, then the webhook, and returns everything received.
    pub fn stop(mut self) -> Vec<AlertNotification> {
        self.shutdown();
        self.notifications()
    }

    fn shutdown(&mut self) {
        // Prometheus first: stopped after Alertmanager, it would log failed sends.
        for child in [self.prometheus.take(), self.alertmanager.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            pglab::proc::stop_child(&mut child, Signal::SIGTERM, Duration::from_secs(5));
        }
        self.webhook.stop();
    }
}

impl Drop for Monitoring {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn fastest<'a>(timings: &'a [RuleTiming], alert: &str) -> Option<&'a RuleTiming> {
    timings
        .iter()
        .filter(|t| t.alert == alert)
        .min_by_key(|t| t.detection_time())
}

fn write(path: &Path, text: &str) -> Result<(), MonitoringError> {
    fs::write(path, text).map_err(io_err(format!("writing {}", path.display())))
}

/// An empty directory at `path`: old data would bring back a previous run's series and alert
/// state. Only ever called on the data directories this module owns inside the run directory.
fn fresh_dir(path: &Path) -> Result<PathBuf, MonitoringError> {
    if path.exists() {
        fs::remove_dir_all(path).map_err(io_err(format!("clearing {}", path.display())))?;
    }
    fs::create_dir_all(path).map_err(io_err(format!("creating {}", path.display())))?;
    Ok(path.to_path_buf())
}

/// A YAML single-quoted string.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn prometheus_yml(opts: &MonitoringOptions, rules: &Path, alertmanager: &str) -> String {
    let scrape = format_duration(opts.scrape_interval);
    format!(
        "# Written by fivehundred for one lab run.
global:
  scrape_interval: {scrape}
  scrape_timeout: {scrape}
  evaluation_interval: {eval}
rule_files:
  - {rules}
alerting:
  alertmanagers:
    - static_configs:
        - targets: [{alertmanager}]
scrape_configs:
  - job_name: {job}
    metrics_path: /metrics
    static_configs:
      - targets: [{target}]
",
        eval = format_duration(opts.evaluation_interval),
        rules = quote(&rules.display().to_string()),
        alertmanager = quote(alertmanager),
        job = quote(&opts.job_name),
        target = quote(&opts.target),
    )
}

fn alertmanager_yml(opts: &MonitoringOptions, webhook_url: &str) -> String {
    format!(
        "# Written by fivehundred for one lab run: every alert to the harness's webhook.
route:
  receiver: harness
  # '...' groups by every label: each alert is its own group, so one alert's timing never
  # waits on another's.
  group_by: ['...']
  group_wait: {wait}
  group_interval: {interval}
  repeat_interval: {repeat}
receivers:
  - name: harness
    webhook_configs:
      - url: {url}
        send_resolved: true
",
        wait = format_duration(opts.group_wait),
        interval = format_duration(opts.group_interval),
        repeat = format_duration(opts.repeat_interval),
        url = quote(webhook_url),
    )
}

/// Starts a server on a free loopback port and waits for `/-/ready`. The port is free when
/// chosen but another process may take it first; then the server exits with "address already in
/// use" and is started again on another port.
async fn start_server(
    what: &'static str,
    log: &Path,
    ready_timeout: Duration,
    command: impl Fn(u16) -> Command,
) -> Result<(Child, u16), MonitoringError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = pglab::free_port().map_err(io_err("finding a free port"))?;
        let log_file =
            fs::File::create(log).map_err(io_err(format!("creating {}", log.display())))?;
        let log_err = log_file
            .try_clone()
            .map_err(io_err(format!("opening {}", log.display())))?;
        let mut cmd = command(port);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log_file))
            .stderr(Stdio::from(log_err));
        let mut child = pglab::proc::spawn_tied(cmd, Signal::SIGTERM)
            .map_err(io_err(format!("starting {what}")))?;
        match wait_ready(what, &mut child, port, log, ready_timeout).await {
            Ok(()) => return Ok((child, port)),
            Err(e) => {
                pglab::proc::stop_child(&mut child, Signal::SIGTERM, Duration::from_secs(5));
                let taken =
                    fs::read_to_string(log).is_ok_and(|l| l.contains("address already in use"));
                if !(taken && attempt < 3) {
                    return Err(e);
                }
            }
        }
    }
}

async fn wait_ready(
    what: &'static str,
    child: &mut Child,
    port: u16,
    log: &Path,
    timeout: Duration,
) -> Result<(), MonitoringError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .map_err(|e| MonitoringError::Io {
            what: "building an HTTP client".into(),
            source: io::Error::other(e),
        })?;
    let url = format!("http://127.0.0.1:{port}/-/ready");
    let deadline = Instant::now() + timeout;
    let not_ready = |problem: String| MonitoringError::NotReady {
        what,
        problem,
        log: log.to_path_buf(),
        last_line: fs::read_to_string(log)
            .ok()
            .and_then(|l| {
                l.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "(empty)".into()),
    };
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(not_ready(format!("exited ({status}) before it was ready")));
        }
        if let Ok(resp) = client.get(&url).send().await
            && resp.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(not_ready(format!(
                "did not answer {url} within {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The production rules and tests of target-app, from this crate's directory.
    fn alerts_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target-app/alerts")
    }

    /// promtool, or a test failure with one line saying what to install. Never a skip: CI installs
    /// it, and a missing tool must not read as passing rules.
    fn promtool() -> PathBuf {
        find_promtool().unwrap_or_else(|e| panic!("{e}"))
    }

    fn run_promtool(args: &[&std::ffi::OsStr]) {
        let out = Command::new(promtool()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {:?} failed:\n{}{}",
            args,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The lab's defaults: what `Monitoring::start` derives with unless told otherwise.
    fn lab_defaults() -> MonitoringOptions {
        MonitoringOptions::new("unused", "127.0.0.1:1", "unused", Instant::now())
    }

    #[test]
    fn the_production_rules_pass_their_promtool_tests() {
        let tests = alerts_dir().join("rules.test.yml");
        run_promtool(&["test".as_ref(), "rules".as_ref(), tests.as_os_str()]);
    }

    /// "What is tested is what would run in production": the derived lab rules are valid, and
    /// the production unit tests, moved to the lab's clock by the same factor, pass against them.
    #[test]
    fn the_derived_lab_rules_pass_the_production_tests_on_the_lab_clock() {
        let dir = tempfile::tempdir().unwrap();
        let prod_rules = fs::read_to_string(alerts_dir().join("rules.yml")).unwrap();
        let prod_tests = fs::read_to_string(alerts_dir().join("rules.test.yml")).unwrap();
        let defaults = lab_defaults();
        // The default factor, and a harsher one (each one-minute sample of the tests becomes one
        // second, the lab's scrape interval).
        for factor in [defaults.time_scale, 60.0] {
            let floor = defaults.range_floor();
            let lab_rules = dir.path().join(format!("rules.lab.{factor}.yml"));
            fs::write(&lab_rules, scale_rules(&prod_rules, factor, floor).unwrap()).unwrap();
            run_promtool(&["check".as_ref(), "rules".as_ref(), lab_rules.as_os_str()]);

            let lab_tests = dir.path().join(format!("rules.lab.{factor}.test.yml"));
            let scaled = scale_rule_tests(&prod_tests, factor, floor, &[&lab_rules]).unwrap();
            fs::write(&lab_tests, scaled).unwrap();
            run_promtool(&["test".as_ref(), "rules".as_ref(), lab_tests.as_os_str()]);
        }
    }

    #[test]
    fn every_production_alert_has_a_detection_time_and_a_lab_twin() {
        let text = fs::read_to_string(alerts_dir().join("rules.yml")).unwrap();
        let prod = rule_timings(&text).unwrap();
        let d = lab_defaults();
        let lab =
            rule_timings(&scale_rules(&text, d.time_scale, d.range_floor()).unwrap()).unwrap();
        assert!(prod.len() >= 14, "{prod:?}");
        assert_eq!(
            prod.iter().map(|t| &t.alert).collect::<Vec<_>>(),
            lab.iter().map(|t| &t.alert).collect::<Vec<_>>()
        );
        let error_rate = prod.iter().find(|t| t.alert == "HighErrorRate").unwrap();
        assert_eq!(error_rate.for_duration, Duration::from_secs(120));
        assert_eq!(
            error_rate.ranges.first().copied(),
            Some(Duration::from_secs(300))
        );
        for (p, l) in prod.iter().zip(&lab) {
            assert!(l.detection_time() < p.detection_time(), "{p:?} vs {l:?}");
        }
    }

    #[test]
    fn a_missing_binary_is_named_with_the_command_that_installs_it() {
        let e = MonitoringError::Missing {
            missing: "prometheus, alertmanager".into(),
        };
        let line = e.to_string();
        assert!(e.is_missing());
        assert!(!line.contains('\n'));
        assert!(
            line.contains("apt-get install prometheus prometheus-alertmanager"),
            "{line}"
        );
    }

    #[test]
    fn generated_configuration_quotes_what_it_is_given() {
        let mut o = lab_defaults();
        o.job_name = "it's".into();
        let y = prometheus_yml(&o, Path::new("/run dir/rules.lab.yml"), "127.0.0.1:9");
        assert!(y.contains("job_name: 'it''s'"), "{y}");
        assert!(y.contains("- '/run dir/rules.lab.yml'"), "{y}");
        assert!(y.contains("scrape_interval: 1s"), "{y}");
        let a = alertmanager_yml(&o, "http://127.0.0.1:5/alerts");
        assert!(a.contains("send_resolved: true"), "{a}");
        assert!(a.contains("group_wait: 1s"), "{a}");
    }

    #[test]
    fn options_reject_a_target_that_is_not_host_port() {
        for target in ["127.0.0.1", "http://127.0.0.1:9/metrics", ":9", "h:port"] {
            let mut o = lab_defaults();
            o.target = target.into();
            assert!(o.validate().is_err(), "{target}");
        }
        assert!(lab_defaults().validate().is_ok());
    }

    /// A metrics endpoint whose one gauge the test sets.
    async fn flag_exporter(flag: Arc<AtomicU64>) -> std::net::SocketAddr {
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let flag = flag.clone();
                async move {
                    format!(
                        "# TYPE lab_flag gauge\nlab_flag {}\n",
                        flag.load(Ordering::SeqCst)
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }

    /// The whole path for real: exporter → Prometheus (lab rules derived from a production rule)
    /// → Alertmanager → webhook, firing and then resolving.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_alert_fires_and_resolves_through_real_prometheus_and_alertmanager() {
        let started = Instant::now();
        let flag = Arc::new(AtomicU64::new(0));
        let target = flag_exporter(flag.clone()).await;

        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.yml");
        // Production timing: the flag must have been up for a whole minute, then 30s more.
        // On the lab clock (x30, floor 4 scrapes of 500ms): `[2s]` → `[2s]`, `for: 1s`.
        fs::write(
            &rules,
            "groups:
  - name: test
    rules:
      - alert: FlagRaised
        expr: min_over_time(lab_flag[1m]) > 0
        for: 30s
        labels:
          severity: warning
        annotations:
          summary: the flag is up
",
        )
        .unwrap();
        let mut opts = MonitoringOptions::new(dir.path(), target.to_string(), &rules, started);
        opts.scrape_interval = Duration::from_millis(500);
        opts.evaluation_interval = Duration::from_millis(500);
        let monitoring = Monitoring::start(opts)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            monitoring.production_detection_time("FlagRaised"),
            Some(Duration::from_secs(90))
        );
        assert!(monitoring.dir().join("rules.lab.yml").is_file());

        // Quiet while the flag is down.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            monitoring.notifications().is_empty(),
            "{:?}",
            monitoring.notifications()
        );

        flag.store(1, Ordering::SeqCst);
        let raised_ms = started.elapsed().as_secs_f64() * 1000.0;
        let fired = monitoring
            .wait_for(
                "FlagRaised",
                AlertStatus::Firing,
                raised_ms,
                Duration::from_secs(25),
            )
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no firing notification; got {:?}",
                    monitoring.notifications()
                )
            });
        assert_eq!(fired.labels["severity"], "warning");
        assert_eq!(fired.labels["job"], "target");
        assert_eq!(fired.annotations["summary"], "the flag is up");
        assert!(fired.starts_at.is_some());

        flag.store(0, Ordering::SeqCst);
        let lowered_ms = started.elapsed().as_secs_f64() * 1000.0;
        let resolved = monitoring
            .wait_for(
                "FlagRaised",
                AlertStatus::Resolved,
                lowered_ms,
                Duration::from_secs(25),
            )
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no resolved notification; got {:?}",
                    monitoring.notifications()
                )
            });
        assert_eq!(resolved.fingerprint, fired.fingerprint);
        assert!(resolved.ends_at.is_some());

        let prometheus_url = monitoring.prometheus_url().to_string();
        let all = monitoring.stop();
        assert!(all.iter().all(|n| n.alert == "FlagRaised"), "{all:?}");
        // Stopped means stopped: nothing answers on Prometheus's port any more.
        let gone = reqwest::Client::new()
            .get(format!("{prometheus_url}/-/ready"))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        assert!(gone.is_err(), "Prometheus still answers after stop");
        eprintln!(
            "fired {:.1}s after the flag rose, resolved {:.1}s after it fell; whole test {:.1}s",
            (fired.at_ms - raised_ms) / 1000.0,
            (resolved.at_ms - lowered_ms) / 1000.0,
            started.elapsed().as_secs_f64()
        );
    }
}

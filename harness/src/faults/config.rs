//! Configuration errors, both ways a service meets them.
//!
//! - `change = "reload"`: the lab's configuration file is rewritten with bad settings and the
//!   target is sent SIGHUP. It must keep its last good configuration, say so in a log line that
//!   names the bad key, and count the failure (`app_config_reloads_total{result="failure"}`,
//!   `app_config_last_reload_successful 0`), which is what ConfigReloadFailed alerts on. The
//!   revert writes the good file back, sends SIGHUP again, and verifies the reload succeeded.
//! - `change = "start"`: a second instance of the target is started with the bad settings, as a
//!   deploy or a restart would. It must exit non-zero naming the key and never answer a request.
//!
//! Both judge what the target did and record it as a check of their own (`config-reload`,
//! `refuses-bad-start`), with the log lines and exit status as evidence: no protection switch
//! of target-app covers this, so these checks are what fails when a service gets it wrong.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{FaultError, FaultKind};
use crate::lab::Lab;
use crate::labfile::{LabFile, Reload, Start};
use crate::verdict::{CheckResult, Evidence, Verdict};
use crate::record::{EventKind, LogRecord, Phase};
use crate::target::TargetNeeds;

/// How long the target gets to act on a SIGHUP, or to refuse a bad start.
const REACT_WITHIN: Duration = Duration::from_secs(5);
const START_WITHIN: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfigChange {
    /// Rewrite the running target's file and send SIGHUP.
    Reload,
    /// Start a second instance with the bad file.
    Start,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub change: ConfigChange,
    /// Settings written over the lab's good configuration, e.g.
    /// `{ breaker_failure_threshold = 0 }`.
    pub set: toml::Table,
    /// The key the target's error must name, so an operator knows what to fix.
    pub names: String,
}

impl FaultKind for Config {
    const HINT: &'static str = "a config fault takes change = \"reload\" | \"start\", set = { key = value, ... } and names = \"<the key the error must name>\"";
    const ORPHAN: &'static str = "nothing to undo: the config files are in the run directory, which recover removes";
    type Held = String;

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.set.is_empty() {
            return Err(("set", "`set` changes nothing".into()));
        }
        if !self.set.contains_key(&self.names) {
            return Err((
                "names",
                format!(
                    "`{}` is not one of the keys in `set` ({})",
                    self.names,
                    self.set.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The service must read a config file the lab writes, and for a reload, say in its lab
    /// file how it takes one (`reload = { signal, failures, successes, last_ok }`).
    fn fit(
        &mut self,
        lab: &LabFile,
        _mix: &[crate::load::MixEntry],
    ) -> Result<(), (&'static str, String)> {
        let first = match &lab.service.start {
            Start::Command(c) => c.configs.values().next(),
            Start::Url(_) | Start::Container(_) => None,
        };
        match (first, self.change) {
            (None, _) => Err((
                "kind",
                format!(
                    "{} names no config file the lab writes for the service (`[service.config.NAME]`)",
                    lab.file.display()
                ),
            )),
            (Some(c), ConfigChange::Reload) if c.reload.is_none() => Err((
                "change",
                format!(
                    "{} does not say how the service reloads `{}`: add `reload = {{ signal = \"SIGHUP\", failures = \"...\", successes = \"...\" }}` to its config, or use change = \"start\"",
                    lab.file.display(),
                    c.file_name
                ),
            )),
            _ => Ok(()),
        }
    }

    fn describe(&self) -> String {
        match self.change {
            ConfigChange::Reload => format!("bad config reloaded (SIGHUP): {}", self.settings()),
            ConfigChange::Start => format!("a second target started with {}", self.settings()),
        }
    }

    fn target_needs(&self) -> TargetNeeds {
        TargetNeeds {
            config_file: true,
            ..TargetNeeds::default()
        }
    }

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let path = config_path(lab)?;
        let good = std::fs::read_to_string(&path)
            .map_err(|e| FaultError::Failed(format!("cannot read {}: {e}", path.display())))?;
        let bad = self.bad_text(&good)?;
        match self.change {
            ConfigChange::Reload => {
                *held = Some(good);
                self.reload(lab, &path, &bad).await
            }
            ConfigChange::Start => self.start(lab, &path, &bad).await,
        }
    }

    async fn revert(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let path = config_path(lab)?;
        match self.change {
            ConfigChange::Start => {
                let bad = bad_start_path(&path);
                match std::fs::remove_file(&bad) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(FaultError::Failed(format!(
                        "cannot remove {}: {e}",
                        bad.display()
                    ))),
                }
            }
            ConfigChange::Reload => {
                // Nothing held: the injection failed before it read, so before it wrote.
                let Some(good) = held.take() else {
                    return Ok(());
                };
                let result = restore(lab, &path, &good).await;
                if result.is_err() {
                    *held = Some(good); // for the retry
                }
                result
            }
        }
    }
}

impl Config {
    fn settings(&self) -> String {
        self.set
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The lab's file with `set` written over it.
    fn bad_text(&self, good: &str) -> Result<String, FaultError> {
        let mut table: toml::Table = toml::from_str(good)
            .map_err(|e| FaultError::Failed(format!("the lab's config file is not TOML: {e}")))?;
        for (k, v) in &self.set {
            table.insert(k.clone(), v.clone());
        }
        Ok(format!(
            "# Written by fivehundred: {}\n{}",
            self.describe(),
            toml::to_string(&table).map_err(|e| FaultError::Failed(e.to_string()))?
        ))
    }

    async fn reload(&self, lab: &Lab, path: &Path, bad: &str) -> Result<(), FaultError> {
        let reload = reload_of(lab)?;
        let before = Reloads::read(lab, reload).await?;
        let logs_before = lab.recorder.with(|r| r.logs.len());
        write_config(path, bad)?;
        hangup(lab, reload)?;
        let deadline = Instant::now() + REACT_WITHIN;
        let mut after = before;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            after = Reloads::read(lab, reload).await?;
            if after.failures > before.failures || after.successes > before.successes {
                break;
            }
        }
        // Let the log line that goes with the counter arrive through the pipe.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let logs: Vec<LogRecord> = lab
            .recorder
            .with(|r| r.logs.iter().skip(logs_before).cloned().collect());
        lab.record_check(judge_reload(&self.names, reload, &before, &after, &logs));
        Ok(())
    }

    async fn start(&self, lab: &Lab, good_path: &Path, bad: &str) -> Result<(), FaultError> {
        let bad_path = bad_start_path(good_path);
        write_config(&bad_path, bad)?;
        let (mut child, listen) = lab.spawn_second(&bad_path).map_err(FaultError::Failed)?;
        lab.recorder.event(
            EventKind::Note,
            format!(
                "started a second target (pid {}) with {}",
                child.id(),
                self.settings()
            ),
        );
        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers = capture(&mut child, &lines);
        let deadline = Instant::now() + START_WITHIN;
        let mut seen = StartSeen::default();
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break Some(status);
            }
            let connect = tokio::net::TcpStream::connect(listen);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(100), connect).await {
                seen.served = true;
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if status.is_none() {
            seen.still_running = true;
            pglab::proc::stop_child(
                &mut child,
                nix::sys::signal::Signal::SIGKILL,
                Duration::from_secs(2),
            );
        }
        seen.exit = status.map(|s| s.to_string());
        seen.code = status.and_then(|s| s.code());
        let _ = tokio::task::spawn_blocking(move || {
            for r in readers {
                let _ = r.join();
            }
        })
        .await;
        seen.lines = lines.lock().map(|l| l.clone()).unwrap_or_default();
        let at_ms = lab.recorder.now_ms();
        lab.recorder.event(
            EventKind::Note,
            format!(
                "the second target {}; its last line: {}",
                seen.exit
                    .as_deref()
                    .map(|s| format!("exited ({s})"))
                    .unwrap_or_else(|| format!(
                        "was still running after {}s and was killed",
                        START_WITHIN.as_secs()
                    )),
                seen.lines.last().map(String::as_str).unwrap_or("(none)")
            ),
        );
        lab.record_check(judge_start(&self.names, &seen, at_ms));
        Ok(())
    }
}

/// Writes the good file back, sends SIGHUP, and verifies the file and that the target reports
/// its last reload as successful (`app_config_last_reload_successful 1`).
async fn restore(lab: &Lab, path: &Path, good: &str) -> Result<(), FaultError> {
    write_config(path, good)?;
    if std::fs::read_to_string(path).ok().as_deref() != Some(good) {
        return Err(FaultError::Failed(format!(
            "{} does not read back as the good configuration",
            path.display()
        )));
    }
    let reload = reload_of(lab)?;
    hangup(lab, reload)?;
    let deadline = Instant::now() + REACT_WITHIN;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = Reloads::read(lab, reload).await?;
        if now.last_ok == Some(1.0) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(FaultError::Failed(format!(
                "the target did not accept the restored configuration within {}s (app_config_last_reload_successful = {:?})",
                REACT_WITHIN.as_secs(),
                now.last_ok
            )));
        }
    }
}

/// The service's (first) config file, as the lab rendered it.
fn config_path(lab: &Lab) -> Result<PathBuf, FaultError> {
    lab.config_paths().into_iter().next().ok_or_else(|| {
        FaultError::Failed("the service was started without a configuration file".into())
    })
}

fn bad_start_path(good: &Path) -> PathBuf {
    good.with_file_name("target-bad-start.toml")
}

/// Replaces the file whole (temporary file + rename), so the target never reads half of it;
/// readable by an unprivileged target.
fn write_config(path: &Path, text: &str) -> Result<(), FaultError> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| FaultError::Failed(format!("cannot write {}: {e}", path.display())))
}

/// How the service reloads its (first) config file, from its lab file.
fn reload_of(lab: &Lab) -> Result<&Reload, FaultError> {
    match &lab.lab_file.service.start {
        Start::Command(c) => c.configs.values().next().and_then(|c| c.reload.as_ref()),
        Start::Url(_) | Start::Container(_) => None,
    }
    .ok_or_else(|| {
        FaultError::Failed("the lab file does not say how the service reloads its config".into())
    })
}

/// Sends the service the signal that makes it re-read its config.
fn hangup(lab: &Lab, reload: &Reload) -> Result<(), FaultError> {
    let pid = lab
        .target_pid()
        .ok_or_else(|| FaultError::Failed("the service is not running".into()))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), reload.signal).map_err(|e| {
        FaultError::Failed(format!(
            "cannot send {} to the service: {e}",
            reload.signal
        ))
    })
}

/// Reads the child's stdout and stderr, line by line, into `lines`.
fn capture(
    child: &mut std::process::Child,
    lines: &Arc<Mutex<Vec<String>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    use std::io::BufRead;
    let streams: Vec<Box<dyn std::io::Read + Send>> = pglab::proc::output_pipes(child)
    .into_iter()
    .flatten()
    .collect();
    streams
        .into_iter()
        .map(|s| {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(s).lines().map_while(Result::ok) {
                    if let Ok(mut l) = lines.lock() {
                        l.push(line);
                    }
                }
            })
        })
        .collect()
}

/// The target's reload counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reloads {
    pub failures: f64,
    pub successes: f64,
    /// `app_config_last_reload_successful`, when exported.
    pub last_ok: Option<f64>,
}

impl Reloads {
    async fn read(lab: &Lab, reload: &Reload) -> Result<Reloads, FaultError> {
        let text = lab.read_metrics().await.map_err(|e| {
            FaultError::Failed(format!("cannot read the service's metrics: {e}"))
        })?;
        Ok(Reloads::parse(&text, reload))
    }

    pub fn parse(text: &str, reload: &Reload) -> Reloads {
        let values = crate::record::parse_prometheus_text(text);
        let sum = |s: &str| {
            crate::record::parse_series_selector(s)
                .map(|sel| sel.sum(&values))
                .unwrap_or(0.0)
        };
        Reloads {
            failures: sum(&reload.failures),
            successes: sum(&reload.successes),
            last_ok: reload.last_ok.as_deref().map(sum),
        }
    }
}

fn check(name: &str, verdict: Verdict, summary: String, evidence: Vec<Evidence>) -> CheckResult {
    CheckResult {
        name: name.into(),
        phase: Some(Phase::Fault),
        verdict,
        summary,
        evidence,
    }
}

/// Error and warning lines that name `key`.
fn naming<'a>(logs: &'a [LogRecord], key: &str) -> Vec<&'a LogRecord> {
    logs.iter()
        .filter(|l| {
            let level = l.field("level").unwrap_or("ERROR").to_ascii_uppercase();
            (level == "ERROR" || level == "WARN") && l.line.contains(key)
        })
        .collect()
}

/// The `config-reload` check: after SIGHUP with an invalid file, the target counted a failed
/// reload (not a successful one), reports its last reload as unsuccessful, and logged an error
/// naming the bad key. That the service *kept its last good configuration* shows in the
/// scenario's status checks: the invalid file also carries a setting that would shed every
/// request if it were applied.
pub fn judge_reload(
    key: &str,
    reload: &Reload,
    before: &Reloads,
    after: &Reloads,
    logs: &[LogRecord],
) -> CheckResult {
    const NAME: &str = "config-reload";
    let named = naming(logs, key);
    let evidence = vec![
        Evidence::Metric {
            series: reload.failures.clone(),
            before: before.failures,
            after: after.failures,
        },
        Evidence::Logs {
            lines: if named.is_empty() {
                logs.iter().rev().take(5).rev().cloned().collect()
            } else {
                named.iter().map(|l| (*l).clone()).collect()
            },
        },
    ];
    let fail = |summary: String| check(NAME, Verdict::Fail, summary, evidence.clone());
    if after.successes > before.successes {
        return fail(format!(
            "the target accepted the invalid file (a successful reload was counted): it now runs with a bad `{key}`"
        ));
    }
    if after.failures <= before.failures {
        return fail(format!(
            "no failed reload was counted within {}s of {}: {} did not move",
            REACT_WITHIN.as_secs(),
            reload.signal,
            reload.failures
        ));
    }
    if let Some(series) = &reload.last_ok
        && after.last_ok != Some(0.0)
    {
        return fail(format!(
            "{series} is {:?}, not 0: an alert on it cannot fire",
            after.last_ok
        ));
    }
    if named.is_empty() {
        return fail(format!(
            "the failed reload was counted, but no error line names `{key}`: an operator cannot tell what to fix"
        ));
    }
    check(
        NAME,
        Verdict::Pass,
        format!("the invalid file was rejected, counted, and logged naming `{key}`"),
        evidence,
    )
}

/// What a second start with a bad setting did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StartSeen {
    /// How it exited (`exit status: 1`), `None` if it was still running at the deadline.
    pub exit: Option<String>,
    /// Its exit code, `None` for a signal or still running.
    pub code: Option<i32>,
    pub still_running: bool,
    /// Its public listener accepted a connection at some point.
    pub served: bool,
    /// Everything it wrote.
    pub lines: Vec<String>,
}

/// The `refuses-bad-start` check: the instance exited non-zero, never accepted a connection,
/// and said which key is wrong.
pub fn judge_start(key: &str, seen: &StartSeen, at_ms: f64) -> CheckResult {
    const NAME: &str = "refuses-bad-start";
    let logs: Vec<LogRecord> = seen
        .lines
        .iter()
        .map(|l| LogRecord {
            at_ms,
            json: serde_json::from_str(l)
                .ok()
                .filter(serde_json::Value::is_object),
            line: l.clone(),
        })
        .collect();
    let evidence = vec![
        Evidence::Note {
            text: match &seen.exit {
                Some(s) => format!("the second instance exited: {s}"),
                None => format!(
                    "the second instance was still running after {}s",
                    START_WITHIN.as_secs()
                ),
            },
        },
        Evidence::Logs {
            lines: logs.iter().rev().take(5).rev().cloned().collect(),
        },
    ];
    let fail = |summary: String| check(NAME, Verdict::Fail, summary, evidence.clone());
    if seen.still_running {
        return fail(format!(
            "the target started with a bad `{key}` and was still running after {}s{}",
            START_WITHIN.as_secs(),
            if seen.served {
                ", serving requests"
            } else {
                ""
            }
        ));
    }
    if seen.served {
        return fail(format!(
            "the target served requests with a bad `{key}` before it exited: half-configured"
        ));
    }
    match seen.code {
        Some(0) => {
            return fail(format!(
                "the target exited 0 with a bad `{key}`: a deploy would look successful"
            ));
        }
        None => {
            return fail(format!(
                "the target died ({}) instead of refusing the bad `{key}`",
                seen.exit.as_deref().unwrap_or("no exit status")
            ));
        }
        Some(_) => {}
    }
    if !seen.lines.iter().any(|l| l.contains(key)) {
        return fail(format!(
            "the target refused to start but never named `{key}`: an operator cannot tell what to fix"
        ));
    }
    check(
        NAME,
        Verdict::Pass,
        format!(
            "the target refused to start ({}), named `{key}`, and never served",
            seen.exit.as_deref().unwrap_or_default()
        ),
        evidence,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(line: &str) -> LogRecord {
        LogRecord {
            at_ms: 0.0,
            json: serde_json::from_str(line).ok(),
            line: line.into(),
        }
    }

    const REJECTED: &str = r#"{"level":"ERROR","message":"config reload failed, keeping the last good configuration","error":"config file /x/target.toml: invalid setting `breaker_failure_threshold`: must be at least 1"}"#;

    /// target-app's, from its lab file.
    fn reload() -> Reload {
        let Start::Command(c) = &crate::labfile::target_app().service.start else {
            panic!("target-app is started by a command")
        };
        c.configs["tunables"].reload.clone().expect("target-app reloads its tunables")
    }

    fn reloads(failures: f64, successes: f64, last_ok: f64) -> Reloads {
        Reloads {
            failures,
            successes,
            last_ok: Some(last_ok),
        }
    }

    #[test]
    fn a_rejected_reload_that_names_the_key_passes() {
        let c = judge_reload(
            "breaker_failure_threshold",
            &reload(),
            &reloads(0.0, 0.0, 1.0),
            &reloads(1.0, 0.0, 0.0),
            &[log(REJECTED)],
        );
        assert_eq!(c.verdict, Verdict::Pass, "{}", c.summary);
    }

    #[test]
    fn a_reload_that_applies_the_invalid_file_fails() {
        let c = judge_reload(
            "breaker_failure_threshold",
            &reload(),
            &reloads(0.0, 0.0, 1.0),
            &reloads(0.0, 1.0, 1.0),
            &[],
        );
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(
            c.summary.contains("accepted the invalid file"),
            "{}",
            c.summary
        );
    }

    #[test]
    fn a_reload_that_is_not_counted_or_not_explained_fails() {
        let key = "breaker_failure_threshold";
        let silent = judge_reload(
            key,
            &reload(),
            &reloads(0.0, 0.0, 1.0),
            &reloads(0.0, 0.0, 1.0),
            &[],
        );
        assert_eq!(silent.verdict, Verdict::Fail);
        assert!(
            silent.summary.contains("no failed reload"),
            "{}",
            silent.summary
        );
        let stale_gauge = judge_reload(
            key,
            &reload(),
            &reloads(0.0, 0.0, 1.0),
            &reloads(1.0, 0.0, 1.0),
            &[log(REJECTED)],
        );
        assert_eq!(stale_gauge.verdict, Verdict::Fail);
        let vague = log(r#"{"level":"ERROR","message":"config reload failed"}"#);
        let unnamed = judge_reload(
            key,
            &reload(),
            &reloads(0.0, 0.0, 1.0),
            &reloads(1.0, 0.0, 0.0),
            &[vague],
        );
        assert_eq!(unnamed.verdict, Verdict::Fail);
        assert!(
            unnamed.summary.contains("no error line names"),
            "{}",
            unnamed.summary
        );
    }

    fn refused() -> StartSeen {
        StartSeen {
            exit: Some("exit status: 1".into()),
            code: Some(1),
            still_running: false,
            served: false,
            lines: vec![
                r#"{"level":"ERROR","message":"exiting on error","error":"invalid setting `db_pool_size`: must be at least 1"}"#.into(),
            ],
        }
    }

    #[test]
    fn a_start_refused_naming_the_key_passes() {
        let c = judge_start("db_pool_size", &refused(), 0.0);
        assert_eq!(c.verdict, Verdict::Pass, "{}", c.summary);
    }

    #[test]
    fn a_start_that_serves_exits_zero_or_says_nothing_fails() {
        let key = "db_pool_size";
        let running = StartSeen {
            exit: None,
            code: None,
            still_running: true,
            served: true,
            lines: vec![r#"{"message":"listening"}"#.into()],
        };
        assert!(
            judge_start(key, &running, 0.0)
                .summary
                .contains("still running")
        );
        let half = StartSeen {
            served: true,
            ..refused()
        };
        assert!(
            judge_start(key, &half, 0.0)
                .summary
                .contains("half-configured")
        );
        let zero = StartSeen {
            code: Some(0),
            ..refused()
        };
        assert!(judge_start(key, &zero, 0.0).summary.contains("exited 0"));
        let mute = StartSeen {
            lines: vec!["error".into()],
            ..refused()
        };
        assert!(judge_start(key, &mute, 0.0).summary.contains("never named"));
        for seen in [running, half, zero, mute] {
            assert_eq!(judge_start(key, &seen, 0.0).verdict, Verdict::Fail);
        }
    }

    #[test]
    fn the_bad_file_is_the_good_one_with_the_settings_over_it() {
        let f = Config {
            change: ConfigChange::Reload,
            set: toml::from_str("max_rss_bytes = 1\nbreaker_failure_threshold = 0").unwrap(),
            names: "breaker_failure_threshold".into(),
        };
        let good = "request_deadline = \"5s\"\noutbox_retry_interval = \"1s\"\n";
        let bad: toml::Table = toml::from_str(&f.bad_text(good).unwrap()).unwrap();
        assert_eq!(bad["max_rss_bytes"].as_integer(), Some(1));
        assert_eq!(bad["request_deadline"].as_str(), Some("5s"));
    }

    #[test]
    fn the_named_key_must_be_one_that_is_set() {
        let f = Config {
            change: ConfigChange::Start,
            set: toml::from_str("db_pool_size = 0").unwrap(),
            names: "db_pool".into(),
        };
        assert_eq!(f.validate().unwrap_err().0, "names");
    }
}

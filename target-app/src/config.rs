//! Configuration: flags with env fallbacks, fixed for the life of the process, and the TOML
//! tunables file, re-read on SIGHUP.
//!
//! Both are parsed, then validated into typed values before anything runs; an error names the
//! key it is about and never echoes a secret. A reload that fails keeps the last good tunables.
//!
//! Which tunables change live: the ones read per request or per tick (`request_deadline`,
//! `payments_timeout`, `cache_ttl`, `breaker_*`, `max_rss_bytes`, `max_memory_fraction`,
//! `concurrency_limit`, `outbox_retry_interval`).
//! The others are baked into the connection pool at startup (`db_*`); a reload that changes
//! them logs that a restart is needed.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use clap::Parser;
use serde::Deserialize;
use sqlx::postgres::PgConnectOptions;

use crate::AppState;
use crate::protections::{self, Protections};

/// Command-line flags; each one falls back to an environment variable.
#[derive(Parser)]
#[command(
    name = "target-app",
    version,
    about = "A small shop API that shows every cause of HTTP 500 and how a service should handle it"
)]
pub struct Args {
    /// PostgreSQL URL (never logged)
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Public listener
    #[arg(long, env = "APP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Admin listener: /metrics and the failpoint API. Keep it on loopback.
    #[arg(long, env = "APP_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Where receipts are written (`<data-dir>/receipts/<order id>.json`)
    #[arg(long, env = "APP_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Base URL of the payments service; orders call `POST <url>/charges`
    #[arg(long, env = "APP_PAYMENTS_URL")]
    pub payments_url: String,
    /// Bearer token for the failpoint API; without one the API is off (never logged)
    #[arg(long, env = "APP_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// TOML file of tunables, re-read on SIGHUP
    #[arg(long, env = "APP_CONFIG")]
    pub config: Option<PathBuf>,
    #[arg(long, env = "APP_PROTECTIONS", default_value = "all", help = protections::help())]
    pub protections: Protections,
}

/// A string that must never reach a log line or an error message.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The validated startup configuration.
pub struct Config {
    /// Holds the password: not `Debug`-printed anywhere.
    pub database: PgConnectOptions,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub payments_url: reqwest::Url,
    pub admin_token: Option<Secret>,
    pub config_path: Option<PathBuf>,
    pub protections: Protections,
    pub tunables: Tunables,
}

/// Why a configuration was rejected. Every variant names the key or file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid setting `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    // toml's message quotes the offending line, so it names the key and where it is.
    #[error("config file {}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("config file {}: {source}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<ConfigError>,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl Config {
    pub fn from_args(args: Args) -> Result<Config, ConfigError> {
        // The URL holds the password, so neither it nor sqlx's parse error (which may quote it)
        // goes into the message.
        let database = PgConnectOptions::from_str(&args.database_url).map_err(|_| {
            invalid(
                "database-url",
                "not a valid postgres:// URL (value not shown: it may hold a password)",
            )
        })?;
        let payments_url = reqwest::Url::parse(&args.payments_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| invalid("payments-url", "expected an http:// or https:// URL"))?;
        let admin_token = match args.admin_token {
            Some(t) if t.trim().is_empty() => {
                return Err(invalid("admin-token", "must not be empty"));
            }
            t => t.map(Secret),
        };
        let tunables = match &args.config {
            Some(path) => Tunables::load(path)?,
            None => Tunables::default(),
        };
        Ok(Config {
            database,
            listen: args.listen,
            admin_listen: args.admin_listen,
            data_dir: args.data_dir,
            payments_url,
            admin_token,
            config_path: args.config,
            protections: args.protections,
            tunables,
        })
    }
}

/// The knobs of the TOML file, validated. Durations are written like `"2s"` or `"250ms"`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tunables {
    /// Connections in the pool. Restart to change.
    pub db_pool_size: u32,
    /// PostgreSQL `statement_timeout` (with `timeouts`). Restart to change.
    pub db_statement_timeout: Duration,
    /// PostgreSQL `lock_timeout` (with `timeouts`). Restart to change.
    pub db_lock_timeout: Duration,
    /// How long a request waits for a pooled connection (with `timeouts`). Restart to change.
    pub db_acquire_timeout: Duration,
    /// A request still running after this answers 503 (with `timeouts`).
    pub request_deadline: Duration,
    /// Whole-call timeout of a payments request (with `timeouts`).
    pub payments_timeout: Duration,
    /// How long a catalogue entry is fresh. `0s` always reads the database, keeping the last
    /// answer only as a stale fallback.
    pub cache_ttl: Duration,
    /// Consecutive failures that open a circuit breaker.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker fails fast before it lets one probe through.
    pub breaker_open_for: Duration,
    /// Requests in flight on the shop routes before more are shed (with `load-shed`). Restart
    /// to change.
    pub concurrency_limit: usize,
    /// Resident memory above which shop requests are shed (with `load-shed`).
    pub max_rss_bytes: u64,
    /// Share of the memory cgroup's limit above which shop requests are shed (with
    /// `load-shed`): the cgroup's working set, shared with whatever else runs in it, is what
    /// the OOM killer acts on. No effect without a cgroup limit.
    pub max_memory_fraction: f64,
    /// Pause between two passes of the receipt worker, and so between retries of a receipt.
    pub outbox_retry_interval: Duration,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            db_pool_size: 10,
            db_statement_timeout: Duration::from_secs(2),
            db_lock_timeout: Duration::from_secs(1),
            // sqlx's default is 30 s: far longer than any client waits.
            db_acquire_timeout: Duration::from_secs(2),
            request_deadline: Duration::from_secs(5),
            payments_timeout: Duration::from_secs(2),
            cache_ttl: Duration::from_secs(5),
            breaker_failure_threshold: 5,
            breaker_open_for: Duration::from_secs(5),
            concurrency_limit: 64,
            max_rss_bytes: 512 * 1024 * 1024,
            max_memory_fraction: 0.9,
            outbox_retry_interval: Duration::from_secs(1),
        }
    }
}

/// The file as written: every key optional, durations still text.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTunables {
    db_pool_size: Option<u32>,
    db_statement_timeout: Option<String>,
    db_lock_timeout: Option<String>,
    db_acquire_timeout: Option<String>,
    request_deadline: Option<String>,
    payments_timeout: Option<String>,
    cache_ttl: Option<String>,
    breaker_failure_threshold: Option<u32>,
    breaker_open_for: Option<String>,
    concurrency_limit: Option<usize>,
    max_rss_bytes: Option<u64>,
    max_memory_fraction: Option<f64>,
    outbox_retry_interval: Option<String>,
}

/// A duration from the file; `allow_zero` only where zero means something.
fn duration(
    key: &'static str,
    raw: Option<String>,
    default: Duration,
    allow_zero: bool,
) -> Result<Duration, ConfigError> {
    let Some(text) = raw else {
        return Ok(default);
    };
    let d = humantime::parse_duration(&text).map_err(|e| {
        invalid(
            key,
            format!("{e}: expected a duration such as \"2s\" or \"250ms\", got {text:?}"),
        )
    })?;
    if d.is_zero() && !allow_zero {
        return Err(invalid(key, "must be greater than zero"));
    }
    if d > Duration::from_secs(3600) {
        return Err(invalid(key, "must be at most 1h"));
    }
    Ok(d)
}

fn at_least<T: PartialOrd + fmt::Display>(
    key: &'static str,
    raw: Option<T>,
    default: T,
    min: T,
) -> Result<T, ConfigError> {
    match raw {
        Some(v) if v < min => Err(invalid(key, format!("must be at least {min}, got {v}"))),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

impl Tunables {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Tunables, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Tunables::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.to_owned(),
                source,
            },
            e => ConfigError::InFile {
                path: path.to_owned(),
                source: Box::new(e),
            },
        })
    }

    /// Parses and validates TOML text. Unknown keys are an error: a typo must not silently
    /// leave a default in force.
    pub fn parse(text: &str) -> Result<Tunables, ConfigError> {
        let raw: RawTunables = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::new(),
            source,
        })?;
        let d = Tunables::default();
        Ok(Tunables {
            db_pool_size: at_least("db_pool_size", raw.db_pool_size, d.db_pool_size, 1)?,
            db_statement_timeout: duration(
                "db_statement_timeout",
                raw.db_statement_timeout,
                d.db_statement_timeout,
                false,
            )?,
            db_lock_timeout: duration(
                "db_lock_timeout",
                raw.db_lock_timeout,
                d.db_lock_timeout,
                false,
            )?,
            db_acquire_timeout: duration(
                "db_acquire_timeout",
                raw.db_acquire_timeout,
                d.db_acquire_timeout,
                false,
            )?,
            request_deadline: duration(
                "request_deadline",
                raw.request_deadline,
                d.request_deadline,
                false,
            )?,
            payments_timeout: duration(
                "payments_timeout",
                raw.payments_timeout,
                d.payments_timeout,
                false,
            )?,
            cache_ttl: duration("cache_ttl", raw.cache_ttl, d.cache_ttl, true)?,
            breaker_failure_threshold: at_least(
                "breaker_failure_threshold",
                raw.breaker_failure_threshold,
                d.breaker_failure_threshold,
                1,
            )?,
            breaker_open_for: duration(
                "breaker_open_for",
                raw.breaker_open_for,
                d.breaker_open_for,
                false,
            )?,
            concurrency_limit: at_least(
                "concurrency_limit",
                raw.concurrency_limit,
                d.concurrency_limit,
                1,
            )?,
            max_rss_bytes: at_least("max_rss_bytes", raw.max_rss_bytes, d.max_rss_bytes, 1)?,
            max_memory_fraction: match raw.max_memory_fraction {
                Some(f) if !(f > 0.0 && f <= 1.0) => {
                    return Err(invalid(
                        "max_memory_fraction",
                        format!("must be above 0 and at most 1, got {f}"),
                    ));
                }
                Some(f) => f,
                None => d.max_memory_fraction,
            },
            outbox_retry_interval: duration(
                "outbox_retry_interval",
                raw.outbox_retry_interval,
                d.outbox_retry_interval,
                false,
            )?,
        })
    }

    /// The keys whose new value only takes effect at the next start.
    fn restart_only_changes(&self, new: &Tunables) -> Vec<&'static str> {
        [
            ("db_pool_size", self.db_pool_size != new.db_pool_size),
            (
                "db_statement_timeout",
                self.db_statement_timeout != new.db_statement_timeout,
            ),
            (
                "db_lock_timeout",
                self.db_lock_timeout != new.db_lock_timeout,
            ),
            (
                "db_acquire_timeout",
                self.db_acquire_timeout != new.db_acquire_timeout,
            ),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
    }
}

/// The tunables in force. Readers take a cheap `Arc` clone and never hold the lock across an
/// `.await`; a reload swaps the whole `Arc`, so a request sees one consistent set.
#[derive(Debug)]
pub struct LiveTunables(RwLock<Arc<Tunables>>);

impl LiveTunables {
    pub fn new(t: Tunables) -> Self {
        LiveTunables(RwLock::new(Arc::new(t)))
    }

    pub fn get(&self) -> Arc<Tunables> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, t: Tunables) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(t);
    }
}

/// Re-reads the config file (SIGHUP). On error the last good tunables stay in force; either
/// way the outcome is logged and counted.
pub fn reload(state: &AppState) -> Result<(), ConfigError> {
    let Some(path) = &state.config_path else {
        tracing::info!("config reload requested, but no --config file is set: nothing to do");
        return Ok(());
    };
    let m = &state.metrics;
    match Tunables::load(path) {
        Ok(new) => {
            let restart_only = state.tunables.get().restart_only_changes(&new);
            if !restart_only.is_empty() {
                tracing::warn!(keys = ?restart_only, "config reloaded, but these keys only take effect at restart");
            }
            state.tunables.set(new);
            m.config_reloads.with_label_values(&["success"]).inc();
            m.config_last_reload_successful.set(1);
            tracing::info!(path = %path.display(), "config reloaded");
            Ok(())
        }
        Err(e) => {
            m.config_reloads.with_label_values(&["failure"]).inc();
            m.config_last_reload_successful.set(0);
            tracing::error!(error = %e, "config reload failed, keeping the last good configuration");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        assert_eq!(Tunables::parse("").unwrap(), Tunables::default());
    }

    #[test]
    fn durations_are_humantime_strings() {
        let t = Tunables::parse("db_statement_timeout = \"250ms\"\ncache_ttl = \"0s\"").unwrap();
        assert_eq!(t.db_statement_timeout, Duration::from_millis(250));
        assert_eq!(t.cache_ttl, Duration::ZERO);
    }

    #[test]
    fn a_bad_duration_names_its_key() {
        let err = Tunables::parse("db_lock_timeout = \"soon\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`db_lock_timeout`"), "{err}");
        let err = Tunables::parse("request_deadline = \"0s\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`request_deadline`"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_rejected_naming_it() {
        let err = Tunables::parse("cache_tll = \"1s\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cache_tll"), "{err}");
    }

    #[test]
    fn a_memory_fraction_outside_0_to_1_names_its_key() {
        assert_eq!(
            Tunables::parse("max_memory_fraction = 0.8")
                .unwrap()
                .max_memory_fraction,
            0.8
        );
        for bad in ["0.0", "1.5", "-1.0"] {
            let err = Tunables::parse(&format!("max_memory_fraction = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("`max_memory_fraction`"), "{err}");
        }
    }

    #[test]
    fn a_zero_pool_names_its_key() {
        let err = Tunables::parse("db_pool_size = 0").unwrap_err().to_string();
        assert!(err.contains("`db_pool_size`"), "{err}");
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "Secret(***)");
    }
}

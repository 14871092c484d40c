//! target-app: a small shop API written as a model of how a service should fail.
//!
//! It is the sample every fivehundred scenario runs against. Each protection against a cause
//! of HTTP 500 can be switched off (`--protections`), so that the failure it prevents can be
//! seen, tested and alerted on.
//!
//! # Layout
//!
//! - [`config`]: flags with env fallbacks, the TOML tunables file, SIGHUP reload.
//! - [`protections`]: the `--protections` set; each protection and what it guards.
//! - [`error`]: [`AppError`](error::AppError), the one place an error becomes a problem+json
//!   response.
//! - [`http`]: the public router and its middleware (request id, the one error log line,
//!   catch-panic, deadline, load shedding); one module per feature: `products`, `orders`,
//!   `health`.
//! - [`admin`]: the admin listener: `/metrics` and the API that sets [`failpoints`].
//! - [`metrics`]: every metric the service exports.
//! - The dependencies and what protects against their failure: [`db`] (pool, timeouts,
//!   migrations, error kinds, schema check), [`breaker`] (circuit breaker), [`cache`] (the
//!   catalogue cache and its stale fallback), [`payments`] (the payments client), [`outbox`]
//!   (receipts and their supervised worker).
//! - [`panics`]: panic reports with backtraces, for catch-panic and the worker supervisor.
//! - [`memory`]: how close the process (and its memory cgroup) is to its limit, for shedding.
//!
//! [`App::build`] connects, migrates and binds; [`App::run`] serves until the shutdown future
//! resolves. `main.rs` only parses flags, sets up logging and maps the result to an exit code.

pub mod admin;
pub mod breaker;
pub mod cache;
pub mod config;
pub mod db;
pub mod error;
pub mod failpoints;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod outbox;
pub mod panics;
pub mod payments;
pub mod protections;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::breaker::Breaker;
use crate::cache::Cache;
use crate::config::{Config, LiveTunables, Secret};
use crate::http::listener::{AtLimit, Shedding};
use crate::http::products::Product;
use crate::metrics::Metrics;
use crate::payments::Payments;
use crate::protections::{Protection, Protections};

pub use crate::http::app;

/// What every handler and task shares.
pub struct AppState {
    pub pool: PgPool,
    pub protections: Protections,
    /// The tunables in force; swapped by a config reload.
    pub tunables: LiveTunables,
    /// The file to re-read on SIGHUP.
    pub config_path: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub admin_token: Option<Secret>,
    pub metrics: Metrics,
    pub db_breaker: Breaker,
    pub payments: Payments,
    /// The product list, under a single key.
    pub catalogue: Cache<(), Vec<Product>>,
    /// Single products by id (as text: see `http::products::show`).
    pub products: Cache<String, Product>,
    /// Wakes the receipt worker when an order was placed, instead of waiting for its next pass.
    pub outbox_notify: Notify,
    /// Shop requests in flight, against `concurrency_limit` (with `load-shed`).
    pub shop_in_flight: AtomicUsize,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("applying migrations failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot bind {what} {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A service that is connected, migrated and bound, ready to [`run`](App::run).
pub struct App {
    state: Arc<AppState>,
    listener: TcpListener,
    admin_listener: TcpListener,
}

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

impl App {
    pub async fn build(config: Config) -> Result<App, StartupError> {
        panics::install_hook();
        let metrics = Metrics::new();
        let pool = db::pool(config.database, &config.tunables, config.protections);
        db::migrate(&pool).await?;
        // If this fails, /readyz reports the data directory; the service still starts.
        if let Err(e) = std::fs::create_dir_all(outbox::receipts_dir(&config.data_dir)) {
            tracing::warn!(errno = outbox::errno_label(&e), error = %e, "cannot create the receipts directory");
        }

        let bind = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartupError::Bind { what, addr, source })
        };
        let listener = bind("--listen", config.listen).await?;
        let admin_listener = bind("--admin-listen", config.admin_listen).await?;

        let db_breaker = Breaker::new(
            "database",
            metrics.circuit_state.with_label_values(&["database"]),
        );
        let payments_breaker = Breaker::new(
            "payments",
            metrics.circuit_state.with_label_values(&["payments"]),
        );
        let state = Arc::new(AppState {
            pool,
            protections: config.protections,
            tunables: LiveTunables::new(config.tunables),
            config_path: config.config_path,
            data_dir: config.data_dir,
            admin_token: config.admin_token,
            db_breaker,
            payments: Payments::new(&config.payments_url, payments_breaker),
            metrics,
            catalogue: Cache::new(),
            products: Cache::new(),
            outbox_notify: Notify::new(),
            shop_in_flight: AtomicUsize::new(0),
        });
        Ok(App {
            state,
            listener,
            admin_listener,
        })
    }

    /// The bound public address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves both listeners, the receipt worker and SIGHUP reloads until `shutdown`
    /// resolves; then stops accepting, lets in-flight requests finish (up to 10 s) and
    /// returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let App {
            state,
            listener,
            admin_listener,
        } = self;
        let stop = CancellationToken::new();
        // Registered before `listening` is logged: whoever sends SIGHUP as soon as it sees that
        // line must not kill the process with the signal's default action.
        let hangups = signal(SignalKind::hangup())?;
        tracing::info!(
            listen = %listener.local_addr()?,
            admin_listen = %admin_listener.local_addr()?,
            protections = %state.protections,
            "listening"
        );

        let mut tasks = tokio::task::JoinSet::new();
        if state.protections.on(Protection::Outbox) {
            tasks.spawn(outbox::supervise(state.clone(), stop.clone()));
        }
        tasks.spawn(http::health::refresh_periodically(
            state.clone(),
            stop.clone(),
        ));
        tasks.spawn(reload_on_sighup(state.clone(), hangups, stop.clone()));
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                shutdown.await;
                stop.cancel();
            });
        }

        let public = axum::serve(
            Shedding::new(
                listener,
                if state.protections.on(Protection::LoadShed) {
                    AtLimit::Refuse
                } else {
                    AtLimit::Wait
                },
            ),
            app(state.clone()).into_make_service_with_connect_info::<http::listener::Admission>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned());
        // The admin listener serves even when the process is out of descriptors: the metrics
        // that say so must get out.
        let admin = axum::serve(
            Shedding::new(admin_listener, AtLimit::Serve),
            admin::router(state.clone())
                .layer(axum::middleware::from_fn(http::close_on_reserve))
                .into_make_service_with_connect_info::<http::listener::Admission>(),
        )
        .with_graceful_shutdown(stop.clone().cancelled_owned());
        let serving = async { tokio::try_join!(public.into_future(), admin.into_future()) };
        let drain_limit = async {
            stop.cancelled().await;
            tokio::time::sleep(DRAIN_LIMIT).await;
        };
        tokio::select! {
            result = serving => { result?; }
            () = drain_limit => tracing::warn!("in-flight requests still running after the drain limit; exiting anyway"),
        }
        stop.cancel();
        tasks.shutdown().await;
        state.pool.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Re-reads the config file on every SIGHUP (see [`config::reload`]).
async fn reload_on_sighup(state: Arc<AppState>, mut hangups: Signal, stop: CancellationToken) {
    loop {
        tokio::select! {
            Some(()) = hangups.recv() => { let _ = config::reload(&state); }
            _ = stop.cancelled() => return,
        }
    }
}

/// JSON lines on stdout, the event's fields at the top level next to `timestamp`, `level` and
/// `message`. `RUST_LOG` overrides the default `info`.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stdout)
        .init();
}

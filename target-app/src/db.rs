//! The database: the pool and its timeouts, migrations, how errors are classified, the breaker
//! around every call, and the schema check behind readiness.

use std::future::Future;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::AppState;
use crate::breaker;
use crate::config::Tunables;
use crate::error::AppError;
use crate::protections::{Protection, Protections};

/// The migrations in `migrations/`, embedded in the binary.
///
/// A database that already has a newer migration (applied by a newer binary, or by the
/// harness's bad-migration fault) is not a startup error: the service starts, and readiness
/// reports the mismatch.
fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!();
    migrator.set_ignore_missing(true);
    migrator
}

/// The schema version this binary is written against: its newest migration.
pub fn expected_schema_version() -> i64 {
    migrator().iter().map(|m| m.version).max().unwrap_or(0)
}

/// The columns the queries in this crate use; a migration that renames or drops one breaks
/// the service even when the version number looks right.
const EXPECTED_COLUMNS: &[(&str, &str)] = &[
    ("products", "id"),
    ("products", "name"),
    ("products", "price_cents"),
    ("products", "stock"),
    ("orders", "id"),
    ("orders", "product_id"),
    ("orders", "quantity"),
    ("orders", "customer_email"),
    ("orders", "amount_cents"),
    ("orders", "idempotency_key"),
    ("orders", "created_at"),
    ("outbox", "id"),
    ("outbox", "order_id"),
    ("outbox", "payload"),
    ("outbox", "attempts"),
    ("outbox", "last_error"),
];

/// A lazy pool: connections are opened on first use, so a database that is down at that
/// moment shows up as request errors, not as a process that cannot start.
pub fn pool(options: PgConnectOptions, t: &Tunables, protections: Protections) -> PgPool {
    let options = options.application_name("target-app");
    let (options, acquire_timeout) = if protections.on(Protection::Timeouts) {
        // Server-side limits, set per connection at startup: a query stuck on a lock or on a
        // slow plan is cancelled by PostgreSQL itself (SQLSTATE 55P03 / 57014).
        let options = options.options([
            (
                "statement_timeout",
                t.db_statement_timeout.as_millis().to_string(),
            ),
            ("lock_timeout", t.db_lock_timeout.as_millis().to_string()),
        ]);
        (options, t.db_acquire_timeout)
    } else {
        // What an unhardened service gets: no server-side limits, and a request that waits
        // for a connection effectively forever.
        (options, Duration::from_secs(600))
    };
    PgPoolOptions::new()
        .max_connections(t.db_pool_size)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options)
}

/// Applies the embedded migrations (under an advisory lock, so instances may race).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    migrator().run(pool).await
}

/// The `kind` label of `app_db_errors_total`.
pub fn error_kind(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::PoolTimedOut => "pool_timeout",
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => "connection",
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("57014") => "statement_timeout",
            Some("55P03") => "lock_timeout",
            Some("53300") => "too_many_connections",
            Some("42703") => "undefined_column",
            Some("23502") => "not_null_violation",
            // admin_shutdown, crash_shutdown, cannot_connect_now, and class 08 (connection
            // exception): the server went away under us.
            Some("57P01" | "57P02" | "57P03") => "connection",
            Some(code) if code.starts_with("08") => "connection",
            _ => "other",
        },
        _ => "other",
    }
}

/// Whether an error of this kind means the database is unavailable or overloaded (a 503,
/// and a failure for the breaker), as opposed to a bug or a bad request (a 500).
pub fn is_unavailable(kind: &str) -> bool {
    matches!(
        kind,
        "pool_timeout"
            | "connection"
            | "statement_timeout"
            | "lock_timeout"
            | "too_many_connections"
    )
}

/// Runs one unit of database work: behind the database circuit breaker (with
/// `circuit-breaker`), counting its errors by kind. Only unavailability counts against the
/// breaker; a constraint violation means the database is up and answering.
pub async fn call<T>(
    state: &AppState,
    work: impl Future<Output = Result<T, AppError>>,
) -> Result<T, AppError> {
    let breaker_on = state.protections.on(Protection::CircuitBreaker);
    let settings = breaker::Settings::from(&*state.tunables.get());
    if breaker_on {
        state.db_breaker.check(settings)?;
    }
    let result = work.await;
    let unavailable = match &result {
        Err(AppError::Db(e)) => {
            let kind = error_kind(e);
            state.metrics.db_errors.with_label_values(&[kind]).inc();
            is_unavailable(kind)
        }
        _ => false,
    };
    if breaker_on {
        state.db_breaker.record(!unavailable, settings);
    }
    result
}

impl From<&Tunables> for breaker::Settings {
    fn from(t: &Tunables) -> Self {
        breaker::Settings {
            failure_threshold: t.breaker_failure_threshold,
            open_for: t.breaker_open_for,
        }
    }
}

/// Whether the database schema is the one this binary expects: every migration applied
/// successfully, the newest one being ours, and every column we query present. The `Err`
/// text goes into /readyz, so it names versions and columns but never quotes an SQL error.
pub async fn check_schema(pool: &PgPool) -> Result<(), String> {
    let versions: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .map_err(|e| format!("cannot read the migrations table ({})", error_kind(&e)))?;
    if let Some((v, _)) = versions.iter().find(|(_, ok)| !ok) {
        return Err(format!("migration {v} failed part-way"));
    }
    let applied = versions.last().map(|(v, _)| *v).unwrap_or(0);
    let expected = expected_schema_version();
    if applied != expected {
        return Err(format!(
            "schema is at migration {applied}, this binary expects {expected}"
        ));
    }
    let present: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name IN ('products', 'orders', 'outbox')",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| format!("cannot read the columns ({})", error_kind(&e)))?;
    let missing: Vec<String> = EXPECTED_COLUMNS
        .iter()
        .filter(|(t, c)| !present.iter().any(|(pt, pc)| pt == t && pc == c))
        .map(|(t, c)| format!("{t}.{c}"))
        .collect();
    if !missing.is_empty() {
        return Err(format!("missing columns: {}", missing.join(", ")));
    }
    Ok(())
}

//! The harness's own PostgreSQL sessions for the database faults: direct to the server (never
//! through the fault proxy, which may be broken on purpose), named by `application_name` so that
//! `pg_stat_activity` shows who holds what, and every step bounded in time.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use super::FaultError;

/// How long one step of a database fault (connect, a statement) may take before the fault gives
/// up: the fault schedule must never hang on the database it is breaking.
pub const STEP: Duration = Duration::from_secs(10);

/// `application_name` of every session a database fault opens; `pg_stat_activity` shows it.
pub fn application_name(fault: &str) -> String {
    format!("fivehundred-{fault}")
}

pub fn options(url: &str, fault: &str) -> Result<PgConnectOptions, FaultError> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| FaultError::Failed(format!("the lab's database URL does not parse: {e}")))?
        .application_name(&application_name(fault))
        // The harness's statements are its own business; keep the server log for the target's.
        .disable_statement_logging())
}

pub async fn connect(url: &str, fault: &str) -> Result<PgConnection, FaultError> {
    let opts = options(url, fault)?;
    bounded("connecting to the database", opts.connect())
        .await?
        .map_err(|e| FaultError::Failed(format!("cannot connect to the database: {e}")))
}

/// Runs one step within [`STEP`].
pub async fn bounded<T>(what: &str, step: impl Future<Output = T>) -> Result<T, FaultError> {
    tokio::time::timeout(STEP, step)
        .await
        .map_err(|_| FaultError::Failed(format!("{what} took longer than {STEP:?}")))
}

/// Runs `count_sql` (one `count(*)`, with `binds` as $1, $2, ...) on a fresh session until it
/// answers 0, for at most `within`: a revert's verification, since the server acts on a closed
/// session a moment after the client closed it. `Ok(n)` is the last count (0 when verified).
pub async fn count_until_zero(
    url: &str,
    within: Duration,
    count_sql: &str,
    binds: &[&str],
) -> Result<i64, FaultError> {
    use sqlx::Connection;
    let mut conn = connect(url, "verify").await?;
    let deadline = tokio::time::Instant::now() + within;
    let result = loop {
        let mut query = sqlx::query_scalar::<_, i64>(count_sql);
        for b in binds {
            query = query.bind(*b);
        }
        let n = match bounded("verifying", query.fetch_one(&mut conn)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => break Err(FaultError::Failed(format!("verifying: {e}"))),
            Err(e) => break Err(e),
        };
        if n == 0 || tokio::time::Instant::now() >= deadline {
            break Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = conn.close().await;
    result
}

/// Whether `s` is a plain lower-case SQL identifier (what the faults accept for table and
/// column names, so that nothing a scenario says is ever spliced into SQL unchecked).
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_pass() {
        for good in ["orders", "customer_email", "_x1"] {
            assert!(is_identifier(good), "{good}");
        }
        for bad in ["", "Orders", "1x", "orders; drop table x", "a-b", "\"q\""] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }
}

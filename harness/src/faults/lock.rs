//! Lock contention: the harness holds a real table lock in an open transaction, on its own
//! session straight to PostgreSQL, for as long as the fault lasts. Every statement of the target
//! that needs a conflicting lock waits for it, as behind a long batch job, a report or a
//! forgotten `BEGIN` in a console; `lock_timeout` is what stops the wait.

use serde::{Deserialize, Serialize};
use sqlx::{Connection, Executor};

use super::{FaultError, FaultKind};
use super::pg;
use crate::lab::Lab;

/// PostgreSQL's table lock modes, weakest first (`LOCK TABLE ... IN <mode> MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockMode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

impl LockMode {
    /// As written in `LOCK TABLE`.
    fn sql(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// As `pg_locks.mode` shows it.
    fn pg_locks_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The table to lock, in the run's database.
    pub table: String,
    /// Default `access-exclusive`: conflicts with everything, even plain reads.
    #[serde(default = "default_mode")]
    pub mode: LockMode,
}

fn default_mode() -> LockMode {
    LockMode::AccessExclusive
}

/// The `application_name` of the session that holds the lock.
const SESSION: &str = "lock";

/// The open transaction that holds the lock, kept in the lab until the revert.
pub struct HeldLock {
    conn: sqlx::PgConnection,
}

impl FaultKind for Lock {
    const HINT: &'static str = "a lock fault takes table = \"orders\" and optionally mode = \"access-exclusive\" | \"exclusive\" | \"share\" | \"row-exclusive\" | ...";
    const ORPHAN: &'static str = "nothing to undo: the lock's transaction was rolled back by PostgreSQL when the run's session closed";
    type Held = HeldLock;

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !pg::is_identifier(&self.table) {
            return Err((
                "table",
                format!("`{}` is not a plain table name", self.table),
            ));
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "lock table {} in {} mode, in an open transaction",
            self.table,
            self.mode.sql().to_lowercase()
        )
    }

    async fn inject(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        let mut conn = pg::connect(&lab.database_url, SESSION).await?;
        let sql_error = |e: sqlx::Error| FaultError::Failed(format!("taking the lock: {e}"));
        pg::bounded("BEGIN", conn.execute("BEGIN"))
            .await?
            .map_err(sql_error)?;
        // The target's own transactions hold conflicting locks for milliseconds; wait for them,
        // but not for ever (a lock that cannot be had is a failed injection, not a hang).
        pg::bounded(
            "SET lock_timeout",
            conn.execute("SET LOCAL lock_timeout = '5s'"),
        )
        .await?
        .map_err(sql_error)?;
        let lock = format!(
            "LOCK TABLE {} IN {} MODE",
            pglab::quote_ident(&self.table),
            self.mode.sql()
        );
        pg::bounded("LOCK TABLE", conn.execute(lock.as_str()))
            .await?
            .map_err(sql_error)?;
        // Verify from the server's side: the lock is granted to this session.
        let granted: i64 = pg::bounded(
            "reading pg_locks",
            sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                 WHERE l.pid = pg_backend_pid() AND c.relname = $1 AND l.mode = $2 AND l.granted",
            )
            .bind(&self.table)
            .bind(self.mode.pg_locks_name())
            .fetch_one(&mut conn),
        )
        .await?
        .map_err(sql_error)?;
        if granted == 0 {
            return Err(FaultError::Failed(format!(
                "pg_locks does not show the {} lock on {} as granted",
                self.mode.pg_locks_name(),
                self.table
            )));
        }
        *held = Some(HeldLock { conn });
        Ok(())
    }

    /// Rolls the transaction back and closes its session, then checks from a fresh session that
    /// no session of ours holds any lock on the table any more.
    async fn revert(&self, lab: &Lab, held: &mut Option<Self::Held>) -> Result<(), FaultError> {
        if let Some(HeldLock { mut conn }) = held.take() {
            // If the rollback fails, closing (or dropping) the session still ends the
            // transaction on the server; the verification below is what counts.
            let _ = pg::bounded("ROLLBACK", conn.execute("ROLLBACK")).await;
            let _ = pg::bounded("closing the session", conn.close()).await;
        }
        let left = pg::count_until_zero(
            &lab.database_url,
            std::time::Duration::from_secs(5),
            "SELECT count(*) FROM pg_locks l
             JOIN pg_class c ON c.oid = l.relation
             JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE c.relname = $1 AND a.application_name = $2",
            &[&self.table, &pg::application_name(SESSION)],
        )
        .await?;
        if left == 0 {
            Ok(())
        } else {
            Err(FaultError::Failed(format!(
                "pg_locks still shows a lock of ours on {}",
                self.table
            )))
        }
    }
}

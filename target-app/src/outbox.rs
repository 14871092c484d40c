//! Receipts: the transactional outbox and the supervised worker that drains it to disk.
//!
//! With `outbox` on, an order's receipt is queued in the `outbox` table in the order's own
//! transaction, and written to `<data-dir>/receipts/<order id>.json` by a background worker
//! that retries until the disk cooperates: a full or read-only disk delays receipts, it never
//! fails an order. With `outbox` off the handler writes the file itself after the commit, and a
//! disk error turns an order that *was* placed into a 500.
//!
//! Delivery is at least once: if two instances drain the same row, both write the same file,
//! which is harmless because the name is the order id and the write is atomic (temp + rename).

use std::io;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::FutureExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::AppError;
use crate::protections::Protection;
use crate::{AppState, db, failpoints, panics};

/// Queues the receipt of `order_id`, inside the caller's transaction.
pub async fn enqueue(
    tx: &mut sqlx::PgConnection,
    order_id: Uuid,
    payload: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO outbox (order_id, payload) VALUES ($1, $2)")
        .bind(order_id)
        .bind(payload)
        .execute(tx)
        .await?;
    Ok(())
}

pub fn receipts_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("receipts")
}

/// Writes one receipt file atomically, counting a failure by errno.
pub async fn write_receipt(state: &AppState, order_id: Uuid, payload: &Value) -> io::Result<()> {
    let dir = receipts_dir(&state.data_dir);
    let path = dir.join(format!("{order_id}.json"));
    let tmp = dir.join(format!("{order_id}.json.tmp"));
    let bytes = serde_json::to_vec_pretty(payload).expect("a JSON value serializes");
    let result = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(&tmp, &bytes).await?;
        // A reader never sees half a receipt: the name appears only once the content is whole.
        tokio::fs::rename(&tmp, &path).await
    }
    .await;
    if let Err(e) = &result {
        let _ = tokio::fs::remove_file(&tmp).await;
        state
            .metrics
            .disk_write_errors
            .with_label_values(&[errno_label(e)])
            .inc();
    }
    result
}

/// The `errno` label of `app_disk_write_errors_total`.
pub fn errno_label(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => "ENOSPC",
        Some(libc::EACCES) | Some(libc::EPERM) => "EACCES",
        Some(libc::EROFS) => "EROFS",
        Some(libc::EMFILE) | Some(libc::ENFILE) => "EMFILE",
        _ => "other",
    }
}

/// Runs the receipt worker until `shutdown`, restarting it after a panic: a bug in one
/// receipt must not silently stop every later one.
///
/// With `catch-panic` off the worker runs unsupervised, as background work spawned and
/// forgotten: a panic ends its task, the process keeps serving, and nothing but Rust's note on
/// stderr says that receipts stopped (no restart, no metric, no alert).
pub async fn supervise(state: Arc<AppState>, shutdown: CancellationToken) {
    if !state.protections.on(Protection::CatchPanic) {
        worker(&state, &shutdown).await;
        return;
    }
    loop {
        let run = AssertUnwindSafe(worker(&state, &shutdown))
            .catch_unwind()
            .await;
        let Err(payload) = run else {
            return; // shut down
        };
        // Caught on the thread that panicked, so the hook's backtrace is still here.
        let report = panics::report(&*payload);
        state.metrics.panics.with_label_values(&["task"]).inc();
        state
            .metrics
            .worker_restarts
            .with_label_values(&["receipts"])
            .inc();
        tracing::error!(
            worker = "receipts",
            error = %report,
            backtrace = %report.backtrace,
            "worker panicked, restarting it"
        );
        // Do not spin if it panics on every pass.
        let pause = state.tunables.get().outbox_retry_interval;
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One pass every `outbox_retry_interval`, or sooner when an order was just placed.
async fn worker(state: &AppState, shutdown: &CancellationToken) {
    loop {
        if let Err(e) = drain(state).await {
            tracing::warn!(worker = "receipts", error = %e.chain(), "receipt pass failed, will retry");
        }
        let pause = state.tunables.get().outbox_retry_interval;
        tokio::select! {
            _ = state.outbox_notify.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Writes what is queued, oldest first; stops at the first failure, since the next receipt
/// would almost surely meet the same full or read-only disk.
async fn drain(state: &AppState) -> Result<(), AppError> {
    failpoints::check("receipt_worker")?;
    let batch: Vec<(i64, Uuid, Value, i32)> = db::call(state, async {
        Ok(sqlx::query_as(
            "SELECT id, order_id, payload, attempts FROM outbox ORDER BY id LIMIT 100",
        )
        .fetch_all(&state.pool)
        .await?)
    })
    .await?;
    for (id, order_id, payload, attempts) in batch {
        match write_receipt(state, order_id, &payload).await {
            Ok(()) => {
                db::call(state, async {
                    sqlx::query("DELETE FROM outbox WHERE id = $1")
                        .bind(id)
                        .execute(&state.pool)
                        .await?;
                    Ok(())
                })
                .await?;
            }
            Err(e) => {
                tracing::warn!(
                    worker = "receipts",
                    %order_id,
                    attempts = attempts + 1,
                    errno = errno_label(&e),
                    error = %e,
                    "receipt write failed, will retry"
                );
                db::call(state, async {
                    sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(e.to_string())
                    .execute(&state.pool)
                    .await?;
                    Ok(())
                })
                .await?;
                break;
            }
        }
    }
    let backlog: i64 = db::call(state, async {
        Ok(sqlx::query_scalar("SELECT count(*) FROM outbox")
            .fetch_one(&state.pool)
            .await?)
    })
    .await?;
    state.metrics.outbox_backlog.set(backlog);
    Ok(())
}

//! PostgreSQL-aware toxics: the proxy reads the PostgreSQL wire protocol (version 3) on the
//! connections these toxics take, enough to answer a query with an `ErrorResponse` carrying a
//! chosen SQLSTATE, to hold a query before it reaches the server, or to refuse the session at
//! startup with the server's own "too many clients" (53300). No proxy offers these; they are
//! the database faults a client library's error handling most needs to meet.
//!
//! What is understood of the protocol: the startup packet (an `SSLRequest` or `GSSENCRequest`
//! is answered "no", so the session runs in clear through the proxy), then typed messages both
//! ways. Client messages are grouped into batches that end with `Sync` or a simple `Query`; a
//! batch whose SQL (from `Query`, from `Parse`, or from the statement a `Bind` names) contains a
//! toxic's `match` text is held or answered by the proxy. An injected error is written only when
//! every earlier batch has had its `ReadyForQuery`, so it never lands inside another answer, and
//! it ends with `ReadyForQuery` carrying the transaction status the server last reported.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Mutex, watch};

use super::{ConnId, Shared};

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
/// Larger startup packets are not PostgreSQL's (the server's own limit is 10000 bytes).
const MAX_STARTUP: usize = 10_000;
/// Larger messages are passed on but never held whole for matching.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// A PostgreSQL-aware toxic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgToxic {
    /// Queries whose SQL contains `matches` (every query when empty) get an `ErrorResponse`
    /// with this SQLSTATE and message instead of reaching the server.
    Error {
        sqlstate: String,
        message: String,
        matches: String,
    },
    /// Queries whose SQL contains `matches` are held `duration` before they reach the server
    /// (until the toxic is removed when zero).
    Stall { matches: String, duration: Duration },
    /// New sessions are refused at startup with `FATAL 53300 sorry, too many clients already`,
    /// as a server at `max_connections` refuses them.
    TooManyClients,
}

pub(super) async fn serve(mut client: TcpStream, conn: ConnId, shared: &Shared) {
    let _ = client.set_nodelay(true);
    let Some(startup) = read_startup(&mut client).await else {
        return;
    };
    if shared
        .postgres_toxics(conn)
        .iter()
        .any(|t| matches!(t, PgToxic::TooManyClients))
    {
        let refusal = error_response("FATAL", "53300", "sorry, too many clients already");
        let _ = client.write_all(&refusal).await;
        let _ = client.shutdown().await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(shared.upstream).await else {
        let _ = client.set_zero_linger();
        return;
    };
    let _ = upstream.set_nodelay(true);
    if upstream.write_all(&startup).await.is_err() {
        return;
    }
    let cancel = u32::from_be_bytes([startup[4], startup[5], startup[6], startup[7]]);
    if cancel == CANCEL_REQUEST {
        // A cancel request has no session behind it: pass it on and let the server close.
        let _ = upstream.read(&mut [0u8; 1]).await;
        return;
    }
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let client_write = Arc::new(Mutex::new(client_write));
    // Batches sent to the server whose `ReadyForQuery` has not come back yet, and the
    // transaction status byte of the last one that did.
    let (pending_tx, pending_rx) = watch::channel(Pending {
        batches: 0,
        status: b'I',
        ready: false,
    });
    let down = downstream(upstream_read, Arc::clone(&client_write), &pending_tx);
    let up = upstream_side(
        client_read,
        upstream_write,
        client_write,
        &pending_tx,
        pending_rx,
        conn,
        shared,
    );
    tokio::select! {
        _ = down => {}
        _ = up => {}
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    batches: u64,
    status: u8,
    /// The first `ReadyForQuery` has come: authentication is over and queries may be matched.
    ready: bool,
}

/// Reads the startup packet, answering "no" to encryption requests; `None` when the client
/// left or sent something else.
async fn read_startup(client: &mut TcpStream) -> Option<Vec<u8>> {
    loop {
        let len = client.read_u32().await.ok()? as usize;
        if !(8..=MAX_STARTUP).contains(&len) {
            return None;
        }
        let mut packet = vec![0u8; len];
        packet[..4].copy_from_slice(&(len as u32).to_be_bytes());
        client.read_exact(&mut packet[4..]).await.ok()?;
        let code = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            client.write_all(b"N").await.ok()?;
            continue;
        }
        return Some(packet);
    }
}

/// Server to client: passed on whole messages at a time, so that an injected answer never
/// lands inside one, counting `ReadyForQuery`s.
async fn downstream(
    mut from: OwnedReadHalf,
    to: Arc<Mutex<OwnedWriteHalf>>,
    pending: &watch::Sender<Pending>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut whole = 0;
        while let Some(len) = message_len(&buf[whole..]) {
            let msg = &buf[whole..whole + len];
            if msg[0] == b'Z' && len >= 6 {
                let status = msg[5];
                pending.send_modify(|p| {
                    p.batches = p.batches.saturating_sub(1);
                    p.status = status;
                    p.ready = true;
                });
            }
            whole += len;
        }
        if whole > 0 {
            let mut w = to.lock().await;
            if w.write_all(&buf[..whole]).await.is_err() {
                return;
            }
            drop(w);
            buf.drain(..whole);
        } else if buf.len() > MAX_MESSAGE {
            // One huge message (a large row): pass it on as it comes, nothing to inject into.
            if to.lock().await.write_all(&buf).await.is_err() {
                return;
            }
            buf.clear();
        }
    }
}

/// Client to server: whole batches at a time, each checked against the toxics first.
async fn upstream_side(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    client: Arc<Mutex<OwnedWriteHalf>>,
    pending_tx: &watch::Sender<Pending>,
    mut pending: watch::Receiver<Pending>,
    conn: ConnId,
    shared: &Shared,
) {
    let mut statements: HashMap<Vec<u8>, String> = HashMap::new();
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut batch_end = 0;
    let mut batch_sql: Vec<String> = Vec::new();
    loop {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(len) = message_len(&buf[batch_end..]) {
            let msg = &buf[batch_end..batch_end + len];
            batch_end += len;
            let role = note_message(msg, &mut statements, &mut batch_sql);
            if role == Role::InBatch {
                continue;
            }
            let batch: Vec<u8> = buf.drain(..batch_end).collect();
            batch_end = 0;
            let sql = std::mem::take(&mut batch_sql);
            let ready = pending.borrow().ready;
            // Only a whole batch is matched; what a `Flush` sends ahead is passed on.
            let toxic = if ready && role == Role::EndsBatch {
                first_match(&shared.postgres_toxics(conn), &sql)
            } else {
                None
            };
            match toxic {
                Some(PgToxic::Error {
                    sqlstate, message, ..
                }) => {
                    // Wait for the answers to earlier batches, then answer this one.
                    if pending.wait_for(|p| p.batches == 0).await.is_err() {
                        return;
                    }
                    let status = pending.borrow().status;
                    let mut answer = error_response("ERROR", &sqlstate, &message);
                    answer.extend_from_slice(&[b'Z', 0, 0, 0, 5, status]);
                    if client.lock().await.write_all(&answer).await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(PgToxic::Stall { matches, duration }) => {
                    stall(shared, conn, &matches, duration).await;
                }
                _ => {}
            }
            if role == Role::EndsBatch {
                pending_tx.send_modify(|p| p.batches += 1);
            }
            if to.write_all(&batch).await.is_err() {
                return;
            }
        }
    }
}

/// Where a client message stands in a batch of queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Part of an extended-protocol batch still open.
    InBatch,
    /// Ends a batch (`Sync`, `Query`): the server answers it with one `ReadyForQuery`.
    EndsBatch,
    /// Outside any batch (authentication, COPY data, `Terminate`), or a `Flush`, after which
    /// the client waits for answers before its `Sync`: passed on at once, with what came before.
    Alone,
}

/// Notes the SQL a client message runs and says where it stands.
fn note_message(
    msg: &[u8],
    statements: &mut HashMap<Vec<u8>, String>,
    batch_sql: &mut Vec<String>,
) -> Role {
    let body = &msg[5..];
    match msg[0] {
        b'Q' => {
            batch_sql.push(cstr(body).0);
            Role::EndsBatch
        }
        b'P' => {
            let (name, rest) = cstr_bytes(body);
            let (sql, _) = cstr(rest);
            statements.insert(name.to_vec(), sql.clone());
            batch_sql.push(sql);
            Role::InBatch
        }
        b'B' => {
            let (_portal, rest) = cstr_bytes(body);
            let (statement, _) = cstr_bytes(rest);
            if let Some(sql) = statements.get(statement) {
                batch_sql.push(sql.clone());
            }
            Role::InBatch
        }
        b'C' => {
            // Close of a statement: forget its SQL.
            if body.first() == Some(&b'S') {
                statements.remove(cstr_bytes(&body[1..]).0);
            }
            Role::InBatch
        }
        b'D' | b'E' => Role::InBatch,
        b'S' => Role::EndsBatch,
        _ => Role::Alone,
    }
}

fn first_match(toxics: &[PgToxic], sql: &[String]) -> Option<PgToxic> {
    toxics
        .iter()
        .find(|t| match t {
            PgToxic::Error { matches, .. } | PgToxic::Stall { matches, .. } => {
                !sql.is_empty() && sql.iter().any(|q| q.contains(matches.as_str()))
            }
            PgToxic::TooManyClients => false,
        })
        .cloned()
}

/// Holds a batch `duration`, or while a matching stall applies when zero.
async fn stall(shared: &Shared, conn: ConnId, matches: &str, duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
        return;
    }
    let mut state = shared.state.subscribe();
    loop {
        let still = shared.postgres_toxics(conn).iter().any(
            |t| matches!(t, PgToxic::Stall { matches: m, duration } if m == matches && duration.is_zero()),
        );
        if !still || state.changed().await.is_err() {
            return;
        }
    }
}

/// The length of the first complete typed message in `buf`.
fn message_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    let total = len.checked_add(1)?;
    (len >= 4 && buf.len() >= total).then_some(total)
}

fn cstr_bytes(buf: &[u8]) -> (&[u8], &[u8]) {
    match buf.iter().position(|&b| b == 0) {
        Some(i) => (&buf[..i], &buf[i + 1..]),
        None => (buf, &[]),
    }
}

fn cstr(buf: &[u8]) -> (String, &[u8]) {
    let (s, rest) = cstr_bytes(buf);
    (String::from_utf8_lossy(s).into_owned(), rest)
}

/// An `ErrorResponse` message.
fn error_response(severity: &str, sqlstate: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (code, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', sqlstate),
        (b'M', message),
    ] {
        fields.push(code);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut msg = vec![b'E'];
    msg.extend_from_slice(&((fields.len() + 4) as u32).to_be_bytes());
    msg.extend_from_slice(&fields);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_response_carries_its_sqlstate_and_a_length_that_covers_it() {
        let msg = error_response("ERROR", "40001", "could not serialize");
        assert_eq!(msg[0], b'E');
        assert_eq!(message_len(&msg), Some(msg.len()));
        assert!(msg.windows(6).any(|w| w == b"C40001"));
    }

    #[test]
    fn a_bind_is_matched_by_the_sql_its_statement_was_parsed_with() {
        let mut statements = HashMap::new();
        let mut sql = Vec::new();
        let parse = [b"P\0\0\0\0s1\0select 1 from orders\0\0\0".as_slice()].concat();
        assert_eq!(
            note_message(&parse, &mut statements, &mut sql),
            Role::InBatch
        );
        sql.clear();
        let bind = b"B\0\0\0\0\0s1\0\0\0".to_vec();
        assert_eq!(
            note_message(&bind, &mut statements, &mut sql),
            Role::InBatch
        );
        assert_eq!(sql, vec!["select 1 from orders".to_string()]);
        let sync = note_message(b"S\0\0\0\x04", &mut statements, &mut sql);
        assert_eq!(sync, Role::EndsBatch);
    }
}

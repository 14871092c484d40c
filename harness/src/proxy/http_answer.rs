//! The `http_response` toxic: for an HTTP upstream, the proxy answers requests itself (a chosen
//! status and body, after a delay) or closes the connection without an answer, which Toxiproxy,
//! a TCP proxy only, cannot do. The upstream is not contacted for the connections it takes.
//!
//! Requests are read with `httparse` and their bodies skipped by `Content-Length`; a chunked
//! request body is not parsed, so the connection is closed after answering it. Keep-alive
//! connections get one answer per request.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest request head read before giving up on the connection.
const MAX_HEAD: usize = 64 * 1024;

/// What the proxy answers instead of the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
    pub content_type: String,
    /// Waited before answering (or before closing, with `abort`).
    pub delay: Duration,
    /// Close the connection instead of answering, as a server that crashed mid-request.
    pub abort: bool,
}

/// The end of a request head, and whether the connection may be kept after answering it.
struct Head {
    len: usize,
    body: usize,
    keep_alive: bool,
}

pub(super) async fn serve(mut client: TcpStream, answer: &HttpAnswer) {
    let _ = client.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let head = loop {
            match parse_head(&buf) {
                Ok(Some(head)) => break head,
                Ok(None) if buf.len() < MAX_HEAD => {}
                _ => return,
            }
            let mut chunk = [0u8; 4096];
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        // Skip the body: what is in the buffer already, then the rest from the socket.
        let in_buf = buf.len() - head.len;
        let mut left = head.body.saturating_sub(in_buf);
        buf.drain(..head.len + head.body.min(in_buf));
        while left > 0 {
            let mut chunk = [0u8; 4096];
            match client.read(&mut chunk[..left.min(4096)]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left -= n,
            }
        }
        if !answer.delay.is_zero() {
            tokio::time::sleep(answer.delay).await;
        }
        if answer.abort {
            return;
        }
        let reason = http::StatusCode::from_u16(answer.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Unknown");
        let connection = if head.keep_alive {
            "keep-alive"
        } else {
            "close"
        };
        let response = format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n{}",
            answer.status,
            answer.content_type,
            answer.body.len(),
            answer.body
        );
        if client.write_all(response.as_bytes()).await.is_err() || !head.keep_alive {
            let _ = client.shutdown().await;
            return;
        }
    }
}

/// `Ok(None)` while the head is incomplete; `Err` when it is not HTTP.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = req.parse(buf)? else {
        return Ok(None);
    };
    let mut body = 0;
    let mut keep_alive = req.version == Some(1);
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value).to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("content-length") {
            body = value.trim().parse().unwrap_or(0);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
            keep_alive = false;
        } else if h.name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.contains("close");
        }
    }
    Ok(Some(Head {
        len,
        body,
        keep_alive,
    }))
}

//! The fast local HTTP server every load generator (ours, wrk, hey) is measured against: hyper's
//! HTTP/1.1 server on a two-thread runtime, in a process of its own (the bench runs itself with
//! `--serve-http`), so that it competes for the CPU the same way whoever drives it.
//!
//! It answers like target-app's hot paths, with a JSON body, `content-type` and an
//! `x-request-id`: GET with 200 and a product, POST with 201 and an order id.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};

use crate::tools::Proc;

pub const FLAG: &str = "--serve-http";

/// Starts the server process; returns it and its address.
pub fn spawn() -> Result<(Proc, SocketAddr), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .arg(FLAG)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the HTTP server: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("the HTTP server said {line:?}"))?;
    Ok((proc, addr))
}

/// The server's own main: serves until killed.
pub fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("listening {}", listener.local_addr().expect("addr"));
        let ids = Arc::new(AtomicU64::new(1));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let ids = Arc::clone(&ids);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<_>| {
                    let id = ids.fetch_add(1, Ordering::Relaxed);
                    answer(req, id)
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    id: u64,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let post = req.method() == Method::POST;
    // Read the request body whole, as a real service does.
    req.into_body().collect().await?;
    let (status, body) = if post {
        (
            StatusCode::CREATED,
            Bytes::from(format!("{{\"id\":\"{id:032x}\",\"status\":\"created\"}}")),
        )
    } else {
        (
            StatusCode::OK,
            Bytes::from_static(
                b"{\"id\":7,\"name\":\"bench product\",\"price_cents\":1299,\"stock\":42}",
            ),
        )
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-request-id", format!("{id:032x}"))
        .body(Full::new(body))
        .expect("a valid response"))
}

//! fault (crates.io `fault-cli`), a fault-injection proxy, as a peer of ours: passing TCP through
//! unchanged, with a fixed delay on every answer and with a bandwidth limit. Installed from
//! crates.io where missing (`crates.rs`).
//!
//! fault 1.x takes one "Run" document (`fault run FILE`, JSON or YAML): its proxies (name,
//! protocol, listen, upstream) and phases, each with an ordered chain of faults per proxy; a phase
//! without a duration stays until fault is stopped. Its `latency` fault delays only the first
//! traffic of a connection; the per-operation delay that matches our `latency` toxic is its
//! `jitter` fault with equal minimum and maximum and probability 1, so that is what is compared.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::tools::{self, Proc};

/// How the rows describe fault's setup.
pub const ABOUT: &str = "fault 1.x's TCP proxy (`fault run FILE`), an empty fault chain";

/// What fault's proxy does to the bytes it passes.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Nothing.
    Pass,
    /// A fixed delay on every read of the answers (`to-client`): once per round trip.
    Latency(Duration),
    /// At most this many bytes a second from the client to the server (`to-upstream`).
    Bandwidth(u64),
}

impl Shape {
    /// The fault chain, as fault's Run document spells it.
    fn faults(self) -> serde_json::Value {
        match self {
            Shape::Pass => json!([]),
            Shape::Latency(d) => {
                let ms = d.as_secs_f64() * 1000.0;
                json!([{
                    "type": "jitter", "flow": "to-client",
                    "min_delay_ms": ms, "max_delay_ms": ms, "probability": 1.0
                }])
            }
            Shape::Bandwidth(bytes_per_second) => json!([{
                "type": "bandwidth", "flow": "to-upstream", "bytes_per_second": bytes_per_second
            }]),
        }
    }

    /// The chain, for the rows' notes.
    pub fn describe(self) -> String {
        format!("fault chain `{}`", self.faults())
    }
}

/// fault's Run document: one TCP proxy and one phase that lasts until fault is stopped.
fn run_document(listen: SocketAddr, upstream: SocketAddr, shape: Shape) -> serde_json::Value {
    json!({
        "schema_version": 1,
        "name": "fivehundred bench",
        "proxies": [{
            "name": "bench", "protocol": "tcp",
            "listen": listen.to_string(), "upstream": upstream.to_string()
        }],
        "phases": [{
            "name": "steady",
            "proxies": [{ "proxy": "bench", "faults": shape.faults() }]
        }]
    })
}

/// fault's proxy from `listen` to `upstream`, doing `shape`, once it accepts connections.
pub fn proxy(
    bin: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    shape: Shape,
) -> Result<Proc, String> {
    // The document is read at start; the file goes when this returns.
    let mut doc = tempfile::Builder::new()
        .suffix(".json")
        .tempfile()
        .map_err(|e| format!("no file for fault's run document: {e}"))?;
    doc.write_all(run_document(listen, upstream, shape).to_string().as_bytes())
        .map_err(|e| format!("cannot write fault's run document: {e}"))?;
    // Its log goes to a file without a name (gone when closed), read if it does not start: a pipe
    // nobody reads would stall it once full.
    let mut log = tempfile::tempfile().map_err(|e| format!("no log file for fault: {e}"))?;
    let child = Command::new(bin)
        .args(["run", "--color", "never"])
        .arg(doc.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log.try_clone().map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot start fault: {e}"))?;
    let mut p = Proc(child);
    tools::wait_listening(listen, &mut p).map_err(|e| {
        use std::io::{Read, Seek};
        let mut text = String::new();
        let _ = log.rewind().and_then(|()| log.read_to_string(&mut text));
        let why = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default();
        format!("fault {e} {why}").trim().to_string()
    })?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_run_document_has_one_tcp_proxy_and_the_shapes_chain() {
        let doc = super::run_document(
            "127.0.0.1:9001".parse().unwrap(),
            "127.0.0.1:9002".parse().unwrap(),
            super::Shape::Latency(std::time::Duration::from_millis(10)),
        );
        assert_eq!(doc["schema_version"], 1);
        assert_eq!(doc["proxies"][0]["listen"], "127.0.0.1:9001");
        assert_eq!(doc["proxies"][0]["upstream"], "127.0.0.1:9002");
        let fault = &doc["phases"][0]["proxies"][0]["faults"][0];
        assert_eq!(fault["type"], "jitter");
        assert_eq!(fault["flow"], "to-client");
        assert_eq!(fault["min_delay_ms"], 10.0);
        assert_eq!(fault["max_delay_ms"], 10.0);
        let bw = super::Shape::Bandwidth(10_000_000).faults();
        assert_eq!(bw[0]["bytes_per_second"], 10_000_000);
        assert_eq!(bw[0]["flow"], "to-upstream");
        assert_eq!(super::Shape::Pass.faults(), serde_json::json!([]));
    }
}

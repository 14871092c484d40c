//! `fivehundred proxy`: a drop-in `toxiproxy-server`. It takes toxiproxy-server's flags as it
//! spells them (`-host`, `-port`, `-config FILE`, `-seed N`, with one dash) and also with two
//! dashes, serves the API until SIGINT or SIGTERM, then stops every proxy it started.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Registry, ToxiproxyApi, config};

/// The command line of `fivehundred proxy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerArgs {
    pub host: String,
    pub port: u16,
    pub config: Option<PathBuf>,
    pub seed: u64,
}

impl Default for ServerArgs {
    /// Toxiproxy's defaults: `localhost:8474`.
    fn default() -> Self {
        ServerArgs {
            host: "localhost".into(),
            port: 8474,
            config: None,
            seed: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad flags or a bad config file: nothing was started.
    #[error("{0}")]
    Usage(String),
    /// The API or a proxy of the config file could not start.
    #[error("{0}")]
    Start(String),
}

pub const USAGE: &str =
    "usage: fivehundred proxy [-host HOST] [-port PORT] [-config FILE] [-seed N]
  Serves Toxiproxy's HTTP API (default localhost:8474) over fivehundred's fault proxy.
  -config FILE  a JSON list of proxies (Toxiproxy's format); each may list `toxics`,
                active from the start";

/// Reads toxiproxy-server's flags: `-flag value`, `-flag=value`, and the same with `--`.
pub fn parse_args(args: &[String]) -> Result<ServerArgs, ServerError> {
    let mut out = ServerArgs::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let flag = arg.trim_start_matches('-');
        if flag.len() == arg.len() {
            return Err(ServerError::Usage(format!(
                "unexpected argument {arg:?}\n{USAGE}"
            )));
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        if matches!(name, "h" | "help") {
            return Err(ServerError::Usage(USAGE.to_string()));
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i).cloned().ok_or_else(|| {
                    ServerError::Usage(format!("flag -{name} needs a value\n{USAGE}"))
                })?
            }
        };
        let number = |what: &str| {
            ServerError::Usage(format!("-{name} takes {what}, got {value:?}\n{USAGE}"))
        };
        match name {
            "host" => out.host = value.clone(),
            "port" => out.port = value.parse().map_err(|_| number("a port number"))?,
            "config" => out.config = Some(PathBuf::from(&value)),
            "seed" => out.seed = value.parse().map_err(|_| number("a whole number"))?,
            _ => return Err(ServerError::Usage(format!("unknown flag {arg}\n{USAGE}"))),
        }
        i += 1;
    }
    Ok(out)
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> Result<(), ServerError> {
    let proxies = match &args.config {
        Some(path) => config::load(path).map_err(|e| ServerError::Usage(e.to_string()))?,
        None => Vec::new(),
    };
    let registry = Arc::new(Registry::new(args.seed));
    let api = ToxiproxyApi::new(Arc::clone(&registry));
    let addr = resolve(&args.host, args.port).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServerError::Start(format!("cannot listen on {addr}: {e}")))?;
    let count = proxies.len();
    if count > 0 {
        registry.populate(proxies).await.map_err(|e| {
            ServerError::Start(format!(
                "cannot start the proxies of the config file: {}",
                e.message
            ))
        })?;
    }
    let local = listener
        .local_addr()
        .map_err(|e| ServerError::Start(e.to_string()))?;
    println!("Toxiproxy API on http://{local} ({count} proxies from the config file)");
    let served = api.serve(listener, shutdown_signal()).await;
    registry.shutdown().await;
    served.map_err(|e| ServerError::Start(format!("the API stopped: {e}")))
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, ServerError> {
    tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ServerError::Usage(format!("-host {host:?} does not resolve")))
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn toxiproxy_server_flags_are_read_with_one_dash_or_two() {
        let a = parse_args(&args(&[
            "-host",
            "0.0.0.0",
            "--port=9000",
            "-config",
            "p.json",
        ]))
        .unwrap();
        assert_eq!(a.host, "0.0.0.0");
        assert_eq!(a.port, 9000);
        assert_eq!(a.config, Some(PathBuf::from("p.json")));
    }

    #[test]
    fn an_unknown_flag_or_a_bad_port_is_a_usage_error() {
        assert!(parse_args(&args(&["-verbose", "1"])).is_err());
        assert!(parse_args(&args(&["-port", "http"])).is_err());
        assert!(parse_args(&args(&["-port"])).is_err());
    }
}

//! The running lab's front door: the lab file other terminals find it by, the control API and
//! dashboard served on the bound address, and the banner printed once it is up.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::super::api::{Access, open_url, router};
use super::super::client::LabFile;
use super::super::control::GameDay;
use super::super::session::Sessions;
use super::args::LabUpArgs;

/// What [`serve`] hands back: the lab file, the first one-time dashboard link, the server's task
/// and what stops it.
pub(super) type Served = (
    LabFile,
    String,
    tokio::task::JoinHandle<()>,
    CancellationToken,
);

/// Writes the lab file and serves the control API until `stop` is cancelled.
pub(super) async fn serve(
    gd: &Arc<GameDay>,
    listener: tokio::net::TcpListener,
    record_dir: &Path,
) -> Result<Served, String> {
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the control address: {e}"))?;
    // Any local user or process can reach a loopback port too: a token is required always, made
    // here and kept in the lab file (readable by its owner), which the commands read it from.
    let token = Sessions::new_token();
    // Commands on this machine reach the lab on loopback even when it listens everywhere.
    let local = if bound.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), bound.port())
    } else {
        bound
    };
    let control_url = format!("http://{local}");
    // No secret in this address: the browser gets in through a one-time link (see `print_banner`).
    let dashboard_url = format!("{control_url}/");
    let (prometheus_url, alertmanager_url) = gd.lab.monitoring_urls().unwrap_or_default();
    // Toxiproxy's API over the lab's proxies, on loopback only: its clients send no token.
    let toxiproxy = crate::toxiproxy::ToxiproxyApi::new(gd.toxiproxy.clone())
        .spawn(SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), 0))
        .await
        .map_err(|e| format!("cannot serve Toxiproxy's API: {e}"))?;
    let pid = std::process::id();
    let info = LabFile {
        pid,
        start_time: crate::journal::process_start_time(pid),
        control_url,
        token: Some(token.clone()),
        dashboard_url,
        target_url: gd.lab.base_url.clone(),
        prometheus_url,
        alertmanager_url,
        record_dir: record_dir.to_path_buf(),
        started_at: gd
            .started_wall
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        toxiproxy_url: Some(format!("http://{toxiproxy}")),
    };
    info.write().map_err(|e| {
        format!(
            "cannot write {}: {e}",
            super::super::client::lab_file_path().display()
        )
    })?;
    let sessions = Sessions::new(token);
    let first_link = open_url(&info.control_url, &sessions.mint());
    let access = Access {
        sessions,
        loopback: bound.ip().is_loopback(),
    };
    let app = router(gd.clone(), info.clone(), access);
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!("the control API stopped: {e}");
        }
    });
    Ok((info, first_link, server, stop))
}

/// What the lab's terminal shows once it is up: how to reach it, what it runs, what stops it.
pub(super) fn print_banner(gd: &GameDay, info: &LabFile, first_link: &str, args: &LabUpArgs) {
    let s = &gd.settings;
    println!("fivehundred lab is up (seed {})", s.seed);
    println!("  dashboard     {first_link}   (opens once; `fivehundred lab open` prints another)");
    if !args.listen.ip().is_loopback() {
        println!(
            "  listening on  {} (port {})",
            args.listen.ip(),
            info.control_url.rsplit(':').next().unwrap_or("?")
        );
    }
    println!(
        "  token         in {} (the commands read it there; scripts send Authorization: Bearer TOKEN)",
        super::super::client::lab_file_path().display()
    );
    println!("  target        {}", info.target_url);
    println!("  prometheus    {}", info.prometheus_url);
    println!("  alertmanager  {}", info.alertmanager_url);
    if let Some(url) = &info.toxiproxy_url {
        println!(
            "  toxiproxy     {url}   (Toxiproxy's API over the lab's proxies; `halt` removes its toxics)"
        );
    }
    println!(
        "  load          {}",
        if s.rate > 0.0 {
            format!("{} requests/s, open loop", s.rate)
        } else {
            "none (--rate 0)".into()
        }
    );
    if let Some(sc) = &s.scenario {
        println!(
            "  scenario      {} (its checks are evaluated on the record)",
            sc.name
        );
    }
    println!(
        "  deadlines     every fault reverts by itself after {} unless `inject --for` says otherwise",
        humantime::format_duration(s.default_for)
    );
    if !s.aborts.is_empty() {
        println!(
            "  abort if      {}",
            s.aborts
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" or ")
        );
    }
    println!(
        "  record        {} (written when the lab stops)",
        info.record_dir.display()
    );
    println!(
        "From another terminal: `fivehundred inject db-down --for 30s`, `fivehundred status`, `fivehundred halt`."
    );
    println!("Ctrl-C stops the lab: every fault is reverted, then the record is written.");
}

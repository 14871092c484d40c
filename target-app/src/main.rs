//! The `target-app` binary: flags, logging, [`App`], exit code. Everything else is in the
//! library, where the tests can reach it.

use std::process::ExitCode;

use clap::Parser;
use target_app::App;
use target_app::config::{Args, Config};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> ExitCode {
    // A bad flag or env value exits here with code 2 and a message naming the flag.
    let args = Args::parse();
    target_app::init_logging();
    let result = async {
        let config = Config::from_args(args)?;
        let shutdown = terminated()?;
        App::build(config).await?.run(shutdown).await?;
        anyhow::Ok(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "exiting on error");
            ExitCode::FAILURE
        }
    }
}

/// A future that resolves on SIGTERM (an orchestrator stopping us) or SIGINT (Ctrl-C). The
/// handlers are installed now, not when the future is first polled, so a signal that arrives
/// during startup is not met by its default action (dying with a signal instead of exit 0).
fn terminated() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutdown signal received, draining");
    })
}

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
        App::build(config).await?.run(terminated()).await?;
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

/// Resolves on SIGTERM (an orchestrator stopping us) or SIGINT (Ctrl-C).
async fn terminated() {
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutdown signal received, draining");
}

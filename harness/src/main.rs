//! The `fivehundred` binary: parse the command line, set up logging, run, exit with its code.

use clap::Parser;

fn main() {
    // The memory-pressure fault's hog is this binary, re-executed with its orders in the
    // environment (see `faults::memory`); it never reaches the command line.
    if let Some(code) = fivehundred::faults::memory_hog_main() {
        std::process::exit(code);
    }
    // clap exits with code 2 on bad usage, which is what `fivehundred` promises.
    let cli = fivehundred::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIVEHUNDRED_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(fivehundred::cli::EXIT_LAB);
        }
    };
    let code = runtime.block_on(fivehundred::cli::main(cli));
    // Do not wait for stray blocking tasks (log readers of a killed target) at exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::exit(code);
}

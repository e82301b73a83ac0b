use std::io::IsTerminal;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = slatefs::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,slatedb=warn,zerofs_nfsserve=warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: files, pipes and Kubernetes logs get
        // plain text (NO_COLOR turns them off at a terminal too).
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
        .init();
    slatefs::admin::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("slatefs: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(slatefs::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slatefs: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

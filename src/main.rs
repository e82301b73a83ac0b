use std::io::IsTerminal;

use clap::Parser;

/// glibc gives a process up to 8 malloc arenas per core, and memory freed in one stays
/// reserved there: under the server's many tokio and SlateDB threads that fragmentation was
/// about 80 MiB of the base RSS (docs/memory.md). One arena per core keeps allocation
/// parallel; `MALLOC_ARENA_MAX` in the environment still decides when it is set.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2);
        // Before any thread starts: arenas are created as threads first allocate.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, cores.min(i32::MAX as usize) as i32) };
    }
}

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
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

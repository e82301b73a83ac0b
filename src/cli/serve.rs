//! `slatefs serve`: opens the store and the catalog, serves NFS and the admin API, and on
//! SIGTERM or SIGINT flushes every dataset before it exits.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::catalog::Registry;
use crate::config::{Config, DurabilityMode};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Config file (TOML, or YAML by extension); flags override it.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Object store URL: file:///DIR, file://./DIR, s3://BUCKET/PREFIX, gs://…, az://…
    /// [default: file://./slatefs-data]
    #[arg(long)]
    pub store: Option<String>,
    /// Address for NFSv3 and MOUNT (one TCP port) [default: 127.0.0.1:2049]
    #[arg(long)]
    pub nfs_listen: Option<String>,
    /// Admin API address: unix:///PATH or tcp://HOST:PORT (TCP needs [admin] token_file)
    /// [default: unix socket admin.sock beside local data, else /run/slatefs/admin.sock]
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// sync: reply only once a change is durable in the object store.
    /// async: reply at once, flush every durability.flush_interval_ms and on COMMIT.
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityMode>,
    /// Inject object-store faults (testing only), e.g. `latency=5ms,outage-file=/tmp/down`:
    /// see src/store/faults.rs for the syntax.
    #[arg(long, value_name = "SPEC")]
    pub inject_faults: Option<String>,
}

impl ServeArgs {
    pub fn config(&self) -> Result<Config> {
        let mut config = Config::load(self.config.as_deref())?;
        if let Some(url) = &self.store {
            config.storage.url = url.clone();
        }
        if let Some(listen) = &self.nfs_listen {
            config.nfs.listen = listen.clone();
        }
        if let Some(listen) = &self.admin_listen {
            config.admin.listen = Some(listen.clone());
        }
        if let Some(mode) = self.durability {
            config.durability.mode = mode;
        }
        config.validate()?;
        Ok(config)
    }
}

/// The admin address a server listens on (and a CLI connects to) when none is configured.
pub fn default_admin_address(store: &Store) -> String {
    match store.local_dir() {
        Some(dir) => format!("unix://{}", dir.join("admin.sock").display()),
        None => "unix:///run/slatefs/admin.sock".to_string(),
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let config = args.config()?;
    let mut store = Store::open_checked(&config.storage).await?;
    if let Some(spec) = &args.inject_faults {
        tracing::warn!("injecting object-store faults: {spec}");
        store = store.with_faults(crate::store::faults::parse_spec(spec)?);
    }
    let registry = Registry::open(store.clone(), &config).await.context("cannot open the catalog")?;
    let handle_key = store.secret("nfs-handle-key").await.context("cannot load the file-handle key")?;

    let shutdown = CancellationToken::new();
    let capacity_store = store.clone();
    let adapter = crate::nfs::adapter(
        registry.clone(),
        handle_key,
        config.nfs.hide_snapshot_dir,
        Box::new(move || capacity_store.capacity()),
    );
    let nfs = crate::nfs::start(adapter, &config.nfs.listen, shutdown.clone()).await?;
    let admin_listen = config.admin.listen.clone().unwrap_or_else(|| default_admin_address(&store));
    let token = match &config.admin.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the admin token file {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let admin = crate::admin::server::AdminListener::bind(&admin_listen, token).await?;
    let admin_addr = admin.addr().to_string();
    let admin_stop = shutdown.clone();
    let admin_task = tokio::spawn(admin.run(registry.clone(), async move { admin_stop.cancelled().await }));
    tracing::info!(
        store = %config.storage.url,
        nfs = %nfs.local_addr,
        admin = %admin_addr,
        durability = ?config.durability.mode,
        "slatefs serving"
    );

    wait_for_signal().await?;
    tracing::info!("shutting down: flushing every dataset");
    shutdown.cancel();
    if let Ok(Err(e)) = admin_task.await {
        tracing::warn!("admin API: {e:#}");
    }
    registry.shutdown().await;
    let requests = store.request_stats();
    tracing::info!("object store requests this run: {requests}");
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

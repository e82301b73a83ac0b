//! `slatefs serve`: opens the store and the catalog, serves NFS and the admin API, and on
//! SIGTERM or SIGINT flushes every dataset before it exits.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::admin::server::AdminListener;
use crate::admin::tls::{check_listener, ServerTls};
use crate::admin::AdminAddr;
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
    /// Admin API address: unix:///PATH or tcp://HOST:PORT (TCP needs [admin] token_file, and
    /// tls_cert_file + tls_key_file unless on loopback)
    /// [default: unix socket admin.sock beside local data, else /run/slatefs/admin.sock]
    #[arg(long)]
    pub admin_listen: Option<String>,
    /// sync: reply only once a change is durable in the object store.
    /// async: reply at once, flush every durability.flush_interval_ms and on COMMIT.
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityMode>,
    /// This server's name among the servers sharing the store ([cluster] name; default: the
    /// host name).
    #[arg(long, env = "SLATEFS_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Serve the internal channel on HOST:PORT and share datasets with the other servers of
    /// the store, one owner per dataset ([cluster] listen; see docs/ownership.md).
    #[arg(long, env = "SLATEFS_CLUSTER_LISTEN")]
    pub cluster_listen: Option<String>,
    /// The address other servers reach the internal channel at ([cluster] advertise).
    #[arg(long, env = "SLATEFS_CLUSTER_ADVERTISE")]
    pub cluster_advertise: Option<String>,
    /// Inject object-store faults (testing only), e.g. `latency=5ms,outage-file=/tmp/down`:
    /// see src/store/faults.rs for the syntax.
    #[arg(long, value_name = "SPEC")]
    pub inject_faults: Option<String>,
    /// Serve Prometheus metrics (`GET /metrics`) on HOST:PORT ([metrics] listen).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
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
        if let Some(name) = &self.cluster_name {
            config.cluster.name = Some(name.clone());
        }
        if let Some(listen) = &self.cluster_listen {
            config.cluster.listen = Some(listen.clone());
        }
        if let Some(advertise) = &self.cluster_advertise {
            config.cluster.advertise = Some(advertise.clone());
        }
        if let Some(listen) = &self.metrics_listen {
            config.metrics.listen = Some(listen.clone());
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

/// Everything `serve` may refuse in its configuration, read and checked before the store is
/// touched: a refused start must not have created a catalog, a default dataset or even the
/// store's directory.
struct Checked {
    token: Option<String>,
    tls: Option<ServerTls>,
    web_tokens: Option<crate::web::Tokens>,
}

fn check(config: &Config) -> Result<Checked> {
    config
        .nfs
        .listen
        .parse::<std::net::SocketAddr>()
        .with_context(|| format!("invalid NFS listen address {:?}", config.nfs.listen))?;
    let addr = AdminAddr::from_config(config)?;
    let token = config.admin.token_file.as_deref().map(crate::admin::read_token).transpose()?;
    let tls = ServerTls::from_config(&config.admin)?;
    check_listener(&addr, token.is_some(), tls.is_some())?;
    match &addr {
        AdminAddr::Unix(path) => {
            if tls.is_some() {
                tracing::warn!("[admin] tls_cert_file is not used: the admin API listens on unix://{}", path.display());
            }
            // Opening the catalog would fence the running server's catalog writer.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!("another server is already listening on the admin socket {}", path.display());
            }
        }
        AdminAddr::Tcp(_) => {}
    }
    if let (Some(_), Some(path)) = (&config.cluster.listen, &config.cluster.secret_file) {
        read_cluster_secret(path)?;
    }
    let web_tokens = crate::web::check(&config.web)?;
    Ok(Checked { token, tls, web_tokens })
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let config = args.config()?;
    let checked = check(&config)?;
    // Everything the store creates on a local disk (object_store's LocalFileSystem, the read
    // cache) is the datasets' data or the handle key: private to this user. The store's
    // directory itself is made 0700 as well (`store::private`).
    // SAFETY: umask only sets the process's file-creation mask.
    unsafe { libc::umask(0o077) };
    let mut store = Store::open_checked(&config.storage).await?;
    if let Some(spec) = &args.inject_faults {
        tracing::warn!("injecting object-store faults: {spec}");
        store = store.with_faults(crate::store::faults::parse_spec(spec)?);
    }
    let shutdown = CancellationToken::new();
    let cluster = match config.cluster.listen.as_deref() {
        Some(listen) => Some(join_cluster(&config, &store, listen, shutdown.clone()).await?),
        None => None,
    };
    let registry = Registry::open_with(store.clone(), &config, cluster.clone())
        .await
        .context("cannot open the catalog")?;
    let handle_key = store.secret("nfs-handle-key").await.context("cannot load the file-handle key")?;

    let capacity_store = store.clone();
    let adapter = crate::nfs::adapter(
        registry.clone(),
        handle_key,
        config.nfs.hide_snapshot_dir,
        Box::new(move || capacity_store.capacity()),
    );
    let limits = crate::nfs::Limits::from_config(&config.nfs)?;
    let nfs = crate::nfs::start(adapter, &config.nfs.listen, limits, shutdown.clone(), cluster.clone()).await?;
    let admin_listen = config.admin.listen.clone().unwrap_or_else(|| default_admin_address(&store));
    let admin = AdminListener::bind_with(&admin_listen, checked.token, checked.tls).await?;
    let admin_addr = admin.addr().to_string();
    let admin_stop = shutdown.clone();
    let admin_task = tokio::spawn(admin.run(registry.clone(), async move { admin_stop.cancelled().await }));
    let metrics_addr = match &config.metrics.listen {
        Some(listen) => {
            let listener = crate::metrics::http::MetricsListener::bind(listen).await?;
            let addr = listener.local_addr()?;
            let page_registry = registry.clone();
            let render: crate::metrics::http::RenderFn = std::sync::Arc::new(move || {
                let r = page_registry.clone();
                Box::pin(async move { crate::metrics::server_page::render(&r).await })
            });
            listener.spawn(render, shutdown.clone());
            addr.to_string()
        }
        None => "off".to_string(),
    };
    let web_task = match (&config.web.listen, checked.web_tokens) {
        (Some(listen), Some(tokens)) => {
            let web = crate::web::WebListener::bind(listen, tokens).await?;
            let stop = shutdown.clone();
            Some(tokio::spawn(web.run(registry.clone(), async move { stop.cancelled().await })))
        }
        _ => None,
    };
    // The catalog owner runs the snapshot policies (docs/policies.md).
    let policies = (!registry.is_reader())
        .then(|| tokio::spawn(crate::policy::runner::run(std::sync::Arc::downgrade(&registry), shutdown.clone())));
    tracing::info!(
        store = %config.storage.url,
        nfs = %nfs.local_addr,
        admin = %admin_addr,
        metrics = %metrics_addr,
        durability = ?config.durability.mode,
        "slatefs serving"
    );

    wait_for_signal().await?;
    tracing::info!("shutting down: flushing every dataset");
    if let Some(c) = &cluster {
        c.release_all().await;
    }
    shutdown.cancel();
    if let Some(task) = policies {
        let _ = task.await;
        tracing::debug!("shutting down: snapshot policies stopped");
    }
    if let Ok(Err(e)) = admin_task.await {
        tracing::warn!("admin API: {e:#}");
    }
    tracing::debug!("shutting down: admin API stopped");
    if let Some(Ok(Err(e))) = match web_task {
        Some(t) => Some(t.await),
        None => None,
    } {
        tracing::warn!("web console: {e:#}");
    }
    tracing::debug!("shutting down: closing the datasets and the catalog");
    registry.shutdown().await;
    let requests = store.request_stats();
    tracing::info!("object store requests this run: {requests}");
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Binds the internal channel, loads the cluster secret and starts serving other servers.
async fn join_cluster(
    config: &Config,
    store: &Store,
    listen: &str,
    shutdown: CancellationToken,
) -> Result<std::sync::Arc<crate::cluster::Cluster>> {
    let secret = match &config.cluster.secret_file {
        Some(path) => read_cluster_secret(path)?,
        None => store.secret("cluster-key").await.context("cannot load the cluster secret from the store")?,
    };
    let listener = crate::cluster::service::bind(listen).await?;
    let bound = listener.local_addr()?;
    let address = match &config.cluster.advertise {
        Some(a) => a.clone(),
        None => bound.to_string(),
    };
    let me = crate::cluster::Member {
        name: config.cluster.server_name(),
        address,
        incarnation: rand::random(),
    };
    tracing::info!(name = %me.name, internal = %bound, advertise = %me.address, "joining the cluster of this store");
    let handoff_after = std::time::Duration::from_millis(config.cluster.handoff_after_ms);
    let cluster = crate::cluster::Cluster::new(me, store, &secret, handoff_after);
    crate::cluster::service::start(cluster.clone(), listener, async move { shutdown.cancelled().await })?;
    Ok(cluster)
}

/// The cluster secret from a file only its owner can read (like an ssh key): any bytes,
/// hashed to the 32-byte key every server must share.
fn read_cluster_secret(path: &std::path::Path) -> Result<[u8; 32]> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read the cluster secret file {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "the cluster secret file {} is readable by others (mode {mode:03o}): run chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    let text = std::fs::read(path).with_context(|| format!("cannot read the cluster secret file {}", path.display()))?;
    let trimmed = text.trim_ascii();
    if trimmed.len() < 16 {
        anyhow::bail!("the cluster secret in {} is shorter than 16 bytes", path.display());
    }
    Ok(*blake3::hash(trimmed).as_bytes())
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

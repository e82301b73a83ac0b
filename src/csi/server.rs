//! Runs the CSI plugin: Identity always, Controller and/or Node by `--mode`, on one unix socket.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio_stream::wrappers::UnixListenerStream;

use super::admin_backend::AdminBackend;
use super::backend::Backend;
use super::controller::ControllerService;
use super::identity::IdentityService;
use super::mounter::SystemMounter;
use super::node::NodeService;
use super::params::Served;
use super::proto::controller_server::ControllerServer;
use super::proto::identity_server::IdentityServer;
use super::proto::node_server::NodeServer;
use super::transport;
use crate::admin::server::AdminListener;
use crate::admin::tls::ClientTls;
use crate::admin::AdminAddr;
use crate::catalog::Registry;
use crate::config::{CatalogRole, Config};
use crate::store::Store;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Identity + Controller (the Deployment).
    Controller,
    /// Identity + Node (the DaemonSet).
    Node,
    /// Everything in one process (tests, single-machine setups).
    All,
}

impl Mode {
    pub fn controller(self) -> bool {
        matches!(self, Mode::Controller | Mode::All)
    }
    pub fn node(self) -> bool {
        matches!(self, Mode::Node | Mode::All)
    }
}

pub struct PluginOptions {
    pub mode: Mode,
    pub endpoint: PathBuf,
    pub node_id: Option<String>,
    pub driver_name: String,
    /// The admin API to use; `None`: the config's `[admin] listen` (or its default).
    pub admin: Option<AdminAddr>,
    /// NFS server `(host, port)` the node mounts from; `None`: from the config's `[nfs] listen`.
    pub nfs_server: Option<(String, u16)>,
    pub config: Config,
    /// `HOST:PORT` of the `/metrics` page of the CSI RPCs; `None`: no page.
    pub metrics_listen: Option<String>,
}

/// `HOST:PORT` (`[v6]:PORT` too).
pub fn parse_host_port(s: &str) -> Result<(String, u16)> {
    let (host, port) = s.rsplit_once(':').with_context(|| format!("{s:?} is not HOST:PORT"))?;
    let port: u16 = port.parse().with_context(|| format!("bad port in {s:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("{s:?} has no host");
    }
    Ok((host.to_string(), port))
}

/// Where the node's kernel reaches the local dataset server: the `[nfs] listen` address, with
/// a wildcard listen address replaced by loopback.
pub fn nfs_server_from_config(config: &Config) -> Result<(String, u16)> {
    let (host, port) = parse_host_port(&config.nfs.listen)
        .with_context(|| format!("[nfs] listen = {:?}", config.nfs.listen))?;
    let host = match host.as_str() {
        "0.0.0.0" | "" => "127.0.0.1".to_string(),
        "::" => "::1".to_string(),
        _ => host,
    };
    Ok((host, port))
}

/// Whether this controller runs the catalog owner itself: `--mode controller`, no `--admin`, no
/// `[admin] listen` in the config, and `[catalog] role = "owner"`. The rule is static on
/// purpose: deciding by whether some admin address answers at start-up would race with a
/// `slatefs serve` that starts a moment later, and two catalog owners fence each other.
pub fn runs_catalog_in_process(opts: &PluginOptions) -> bool {
    opts.mode == Mode::Controller
        && opts.admin.is_none()
        && opts.config.admin.listen.as_deref().is_none_or(|l| l.trim().is_empty())
        && opts.config.catalog.role == CatalogRole::Owner
}

pub async fn run(opts: PluginOptions, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let config = &opts.config;
    let stop = CancellationToken::new();
    // Bound first: a taken or bad address refuses the start before anything else happens.
    let metrics_listener = match &opts.metrics_listen {
        Some(l) => Some(crate::metrics::http::MetricsListener::bind(l).await?),
        None => None,
    };
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        });
    }

    // The catalog owner in this process, on a private socket beside the CSI socket.
    let mut owner: Option<(Arc<Registry>, tokio::task::JoinHandle<Result<()>>)> = None;
    let admin_addr = if runs_catalog_in_process(&opts) {
        let store = Store::open(&config.storage)?;
        store.check_format().await?;
        let registry = Registry::open(store, config).await.context("cannot open the catalog")?;
        let sock = opts.endpoint.with_file_name("slatefs-catalog-admin.sock");
        let listener = AdminListener::bind(&format!("unix://{}", sock.display()), None).await?;
        let addr = listener.addr().clone();
        let s = stop.clone();
        let task = tokio::spawn({
            let registry = registry.clone();
            async move { listener.run(registry, async move { s.cancelled().await }).await }
        });
        tracing::info!(admin = %addr, "running the catalog owner in this process (no admin address configured)");
        owner = Some((registry, task));
        addr
    } else {
        match &opts.admin {
            Some(a) => a.clone(),
            None => AdminAddr::from_config(config)?,
        }
    };
    let (token, tls) = match (&config.admin.token_file, &owner) {
        (token_file, None) => (
            token_file.as_deref().map(crate::admin::read_token).transpose()?,
            ClientTls::from_config(&config.admin)?,
        ),
        (_, Some(_)) => (None, None),
    };
    let backend: Arc<dyn Backend> = Arc::new(AdminBackend::with_tls(&admin_addr, token.as_deref(), tls.as_ref())?);
    tracing::info!(admin = %admin_addr, mode = ?opts.mode, "slatefs csi starting");

    let identity = IdentityService {
        driver_name: opts.driver_name.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        backends: vec![backend.clone()],
    };

    let controller = if opts.mode.controller() {
        // Only to report a local store's free space (GetCapacity); no database is opened.
        let store = if config.storage.url.trim().starts_with("file://") {
            Store::open(&config.storage).ok()
        } else {
            None
        };
        let served = Served::from_config(config);
        Some(ControllerServer::new(ControllerService::new(backend.clone(), served, store)))
    } else {
        None
    };

    let node = if opts.mode.node() {
        let node_id = opts
            .node_id
            .clone()
            .filter(|n| !n.is_empty())
            .context("--node-id is required for the node service")?;
        let (host, port) = match &opts.nfs_server {
            Some(hp) => hp.clone(),
            None => nfs_server_from_config(config)?,
        };
        tracing::info!(node_id = %node_id, nfs = %format!("{host}:{port}"), "node service");
        Some(NodeServer::new(NodeService::new(
            node_id,
            backend.clone(),
            Arc::new(SystemMounter::default()),
            host,
            port,
        )))
    } else {
        None
    };

    let counters = Arc::new(crate::metrics::csi::CsiCounters::default());
    if let Some(listener) = metrics_listener {
        tracing::info!(metrics = %listener.local_addr()?, "serving CSI metrics");
        let page = counters.clone();
        let render: crate::metrics::http::RenderFn = Arc::new(move || {
            let page = page.page();
            Box::pin(async move { page })
        });
        listener.spawn(render, stop.clone());
    }
    let listener = transport::bind_unix(&opts.endpoint)?;
    tracing::info!(endpoint = %opts.endpoint.display(), "serving CSI");
    let s = stop.clone();
    let result = tonic::transport::Server::builder()
        .layer(crate::metrics::csi::CsiMetricsLayer::new(counters))
        .add_service(IdentityServer::new(identity))
        .add_optional_service(controller)
        .add_optional_service(node)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move { s.cancelled().await })
        .await;
    let _ = std::fs::remove_file(&opts.endpoint);
    if let Some((registry, task)) = owner {
        stop.cancel();
        let _ = task.await;
        registry.shutdown().await;
    }
    result.context("CSI server")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(parse_host_port("127.0.0.1:20490").unwrap(), ("127.0.0.1".into(), 20490));
        assert_eq!(parse_host_port("[::1]:7").unwrap(), ("::1".into(), 7));
        assert!(parse_host_port("nohost").is_err());
        assert!(parse_host_port(":1").is_err());
        let mut c = Config::default();
        c.nfs.listen = "0.0.0.0:2049".into();
        assert_eq!(nfs_server_from_config(&c).unwrap(), ("127.0.0.1".into(), 2049));
    }
}

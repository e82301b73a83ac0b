//! The HTTP listener of a `/metrics` page (axum): `GET /metrics` answers the page a render
//! function builds at that moment; every other path is 404. Used by `slatefs serve`
//! (`[metrics] listen`) and by the CSI plugin (`--metrics-listen`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

pub type RenderFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

pub struct MetricsListener {
    listener: tokio::net::TcpListener,
}

impl MetricsListener {
    /// Binds `HOST:PORT` (port 0: any free port; see [`MetricsListener::local_addr`]).
    pub async fn bind(listen: &str) -> Result<MetricsListener> {
        let addr: SocketAddr = listen.parse().with_context(|| format!("invalid metrics listen address {listen:?} (expected HOST:PORT)"))?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen for metrics on {addr}"))?;
        Ok(MetricsListener { listener })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `stop` is cancelled.
    pub fn spawn(self, render: RenderFn, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let app = axum::Router::new().route(
            "/metrics",
            get(move || {
                let render = render.clone();
                async move { ([(header::CONTENT_TYPE, super::families::CONTENT_TYPE)], render().await).into_response() }
            }),
        );
        tokio::spawn(async move {
            let served = axum::serve(self.listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
            if let Err(e) = served {
                tracing::warn!("metrics listener: {e}");
            }
        })
    }
}

/// A `MetricsListener` from the configuration's `[metrics] listen`, checked before anything
/// else starts, so that a bad or taken address refuses the start.
pub fn parse_listen(listen: &str) -> Result<SocketAddr> {
    listen.parse().with_context(|| format!("[metrics] listen {listen:?}: expected HOST:PORT"))
}

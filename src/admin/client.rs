//! The admin API client (used by `slatefs dataset …`, and by tests).

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use tonic::codegen::http::Uri;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use super::proto::admin_client::AdminClient as Raw;
use super::AdminAddr;

/// Adds `authorization: Bearer <token>` to every call when a token is configured.
#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for BearerToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

pub type AdminClient = Raw<InterceptedService<Channel, BearerToken>>;

/// Connects to a running server's admin API.
pub async fn connect(addr: &AdminAddr, token: Option<&str>) -> Result<AdminClient> {
    let bearer = match token {
        Some(t) => Some(
            format!("Bearer {t}")
                .parse::<MetadataValue<_>>()
                .context("the admin token must be printable ASCII")?,
        ),
        None => None,
    };
    let channel = match addr {
        AdminAddr::Unix(path) => {
            let path = path.clone();
            // The URI is not used: the connector always dials the socket.
            Endpoint::try_from("http://localhost")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
                }))
                .await
        }
        AdminAddr::Tcp(hp) => Endpoint::from_shared(format!("http://{hp}"))?.connect().await,
    }
    .with_context(|| format!("cannot reach the slatefs admin API at {addr} (is `slatefs serve` running?)"))?;
    Ok(Raw::with_interceptor(channel, BearerToken(bearer)))
}

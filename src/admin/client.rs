//! The admin API client (used by `slatefs dataset …`, and by tests).

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use tonic::codegen::http::Uri;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use super::proto::admin_client::AdminClient as Raw;
use super::tls::ClientTls;
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

/// Connects to a running server's admin API (plain HTTP/2 on TCP: see [`connect_with`]).
pub async fn connect(addr: &AdminAddr, token: Option<&str>) -> Result<AdminClient> {
    connect_with(addr, token, None).await
}

/// Connects to a running server's admin API, over TLS on TCP when `tls` is given.
pub async fn connect_with(addr: &AdminAddr, token: Option<&str>, tls: Option<&ClientTls>) -> Result<AdminClient> {
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
        AdminAddr::Tcp(hp) => super::tls::tcp_endpoint(hp, tls)?.connect().await,
    }
    .with_context(|| {
        // A TLS server drops a plain-text client during the handshake: say what may be missing.
        let hint = match (addr, tls) {
            (AdminAddr::Tcp(_), None) => "; if it serves TLS, set [admin] tls_ca_file",
            _ => "",
        };
        format!("cannot reach the slatefs admin API at {addr} (is `slatefs serve` running?{hint})")
    })?;
    Ok(Raw::with_interceptor(channel, BearerToken(bearer)))
}

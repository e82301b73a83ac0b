//! gRPC plumbing shared by the CSI server, `slatefs csi call` and the admin-API backend: unix
//! socket endpoints, lazily connected channels, the bearer-token interceptor.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Request, Status};

/// A CSI endpoint: `unix:///path`, `unix:/path` (kubelet's spelling) or a bare absolute path.
pub fn parse_unix_endpoint(s: &str) -> Result<PathBuf> {
    let s = s.trim();
    let path = if let Some(p) = s.strip_prefix("unix://") {
        p
    } else if let Some(p) = s.strip_prefix("unix:") {
        p
    } else {
        s
    };
    if !path.starts_with('/') {
        bail!("endpoint {s:?} must be unix:///absolute/path.sock");
    }
    Ok(PathBuf::from(path))
}

/// A channel to a unix socket, connected on first use (and reconnected after failures), so a
/// peer that is not up yet is an error of the call, not of start-up.
pub fn unix_channel(path: &Path) -> Channel {
    let path = path.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
}

/// A lazily connected channel to `host:port`, over TLS when `tls` is given.
pub fn tcp_channel(host_port: &str, tls: Option<&crate::admin::tls::ClientTls>) -> Result<Channel> {
    Ok(crate::admin::tls::tcp_endpoint(host_port, tls)?.connect_lazy())
}

/// Adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone, Default)]
pub struct BearerToken(pub Option<MetadataValue<tonic::metadata::Ascii>>);

impl BearerToken {
    pub fn new(token: Option<&str>) -> Result<BearerToken> {
        match token {
            None => Ok(BearerToken(None)),
            Some(t) => Ok(BearerToken(Some(
                format!("Bearer {t}").parse().context("the admin token is not valid ASCII")?,
            ))),
        }
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// Binds a unix socket for a gRPC server, replacing a stale socket file (a left-over of a
/// killed process) but refusing to replace anything that is not a socket.
pub fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!("{} exists and is not a socket", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale socket {}", path.display()))?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    tokio::net::UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(parse_unix_endpoint("unix:///csi/csi.sock").unwrap(), PathBuf::from("/csi/csi.sock"));
        assert_eq!(parse_unix_endpoint("unix:/csi/csi.sock").unwrap(), PathBuf::from("/csi/csi.sock"));
        assert_eq!(parse_unix_endpoint("/csi/csi.sock").unwrap(), PathBuf::from("/csi/csi.sock"));
        assert!(parse_unix_endpoint("tcp://1.2.3.4:5").is_err());
        assert!(parse_unix_endpoint("unix://relative").is_err());
    }
}

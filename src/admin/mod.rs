//! The admin gRPC API (`proto/slatefs.proto`, package `slatefs.admin.v1`): the server that
//! `slatefs serve` runs beside NFS, and the client `slatefs dataset …` uses.
//!
//! Addresses: `unix:///path/admin.sock` (the default; a stale socket file is replaced) or
//! `tcp://host:port`. A TCP listener is refused without a bearer token, and without TLS unless
//! it is on loopback (`tls.rs`); when a token is set, every call must carry
//! `authorization: Bearer <token>`, whatever the transport.

pub mod client;
pub mod policies;
pub mod server;
pub mod store_access;
pub mod tls;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::catalog::CatalogError;
use crate::config::Config;

#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("slatefs.admin.v1");
}

/// Where the admin API listens when neither the config nor the command line says: beside the
/// data for a local store, else under /run.
pub const DEFAULT_REMOTE_SOCKET: &str = "/run/slatefs/admin.sock";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAddr {
    Unix(PathBuf),
    Tcp(String),
}

impl std::fmt::Display for AdminAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminAddr::Unix(p) => write!(f, "unix://{}", p.display()),
            AdminAddr::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl AdminAddr {
    /// `unix:///abs/path`, `tcp://host:port`, or a bare absolute path (a unix socket).
    pub fn parse(s: &str) -> Result<AdminAddr> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix://") {
            if path.is_empty() {
                bail!("admin address {s:?} names no socket path");
            }
            return Ok(AdminAddr::Unix(PathBuf::from(path)));
        }
        if let Some(hp) = s.strip_prefix("tcp://") {
            if !hp.contains(':') {
                bail!("admin address {s:?} needs a port: tcp://host:port");
            }
            return Ok(AdminAddr::Tcp(hp.to_string()));
        }
        if s.starts_with('/') {
            return Ok(AdminAddr::Unix(PathBuf::from(s)));
        }
        bail!("admin address {s:?} must be unix:///path or tcp://host:port")
    }

    /// The address from the config, or the default for its store (`<local dir>/admin.sock`
    /// for `file://` stores, else /run/slatefs/admin.sock).
    pub fn from_config(config: &Config) -> Result<AdminAddr> {
        if let Some(listen) = config.admin.listen.as_deref().filter(|l| !l.trim().is_empty()) {
            return AdminAddr::parse(listen);
        }
        Ok(AdminAddr::Unix(default_socket(config)?))
    }
}

/// `<dir>/admin.sock` for a `file://` store (resolved like `Store::open` does, without
/// creating the directory), else /run/slatefs/admin.sock.
fn default_socket(config: &Config) -> Result<PathBuf> {
    let Some(rest) = config.storage.url.trim().strip_prefix("file://") else {
        return Ok(PathBuf::from(DEFAULT_REMOTE_SOCKET));
    };
    let dir = PathBuf::from(if rest.is_empty() { "." } else { rest });
    let dir = if dir.is_absolute() { dir } else { std::env::current_dir()?.join(dir) };
    let dir = dir.canonicalize().unwrap_or(dir);
    Ok(dir.join("admin.sock"))
}

/// Reads a bearer token file (surrounding whitespace ignored; empty is an error). A file group
/// or others may read is refused ([`tls::check_private`]).
pub fn read_token(path: &Path) -> Result<String> {
    tls::check_private(path, "admin token file")?;
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
    let token = token.trim().to_string();
    if token.is_empty() {
        bail!("admin token file {} is empty", path.display());
    }
    Ok(token)
}

impl From<CatalogError> for tonic::Status {
    fn from(e: CatalogError) -> Self {
        use tonic::Code;
        let code = match &e {
            CatalogError::InvalidArgument(_) => Code::InvalidArgument,
            CatalogError::NotFound(_) => Code::NotFound,
            CatalogError::AlreadyExists(_) => Code::AlreadyExists,
            CatalogError::FailedPrecondition(_) => Code::FailedPrecondition,
            CatalogError::ResourceExhausted(_) => Code::ResourceExhausted,
            CatalogError::Unavailable(_) | CatalogError::StoreUnreachable(_) => Code::Unavailable,
            CatalogError::Internal(_) => Code::Internal,
        };
        tonic::Status::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(AdminAddr::parse("unix:///a/b.sock").unwrap(), AdminAddr::Unix("/a/b.sock".into()));
        assert_eq!(AdminAddr::parse("/a/b.sock").unwrap(), AdminAddr::Unix("/a/b.sock".into()));
        assert_eq!(AdminAddr::parse("tcp://127.0.0.1:9").unwrap(), AdminAddr::Tcp("127.0.0.1:9".into()));
        assert!(AdminAddr::parse("tcp://127.0.0.1").is_err());
        assert!(AdminAddr::parse("http://x:1").is_err());
        assert!(AdminAddr::parse("unix://").is_err());
        let mut c = Config::default();
        c.storage.url = "s3://bucket/x".into();
        assert_eq!(AdminAddr::from_config(&c).unwrap(), AdminAddr::Unix(DEFAULT_REMOTE_SOCKET.into()));
        let dir = tempfile::tempdir().unwrap();
        c.storage.url = format!("file://{}", dir.path().display());
        assert_eq!(
            AdminAddr::from_config(&c).unwrap(),
            AdminAddr::Unix(dir.path().canonicalize().unwrap().join("admin.sock"))
        );
        c.admin.listen = Some("tcp://[::1]:7".into());
        assert_eq!(AdminAddr::from_config(&c).unwrap(), AdminAddr::Tcp("[::1]:7".into()));
    }
}

//! What keeps the admin API's secrets secret: TLS on TCP listeners (rustls with aws-lc-rs, the
//! provider SlateDB's and kube's HTTP clients already use, so the process carries one crypto
//! library), the rule for which listeners need it, and the file-permission check for the token
//! and the TLS key.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use super::AdminAddr;
use crate::config::AdminConfig;

/// A client that connects and then says nothing holds a handshake slot no longer than this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Makes aws-lc-rs the process's rustls provider. With more than one provider compiled in
/// (dependencies choose features too), rustls would refuse to pick one and TLS set-up would
/// panic; installing ours first settles it. Idempotent.
pub fn install_crypto_provider() {
    // An error means one is installed already, which is all we need.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Refuses a secret file that group or others may read or change, as ssh does with keys: a
/// token anyone on the machine can read authenticates anyone.
pub fn check_private(path: &Path, what: &str) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read the {what} {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        bail!(
            "the {what} {} is accessible by other users (mode {mode:04o}); refusing to use it: \
             run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Whether a `host:port` is on loopback only, where no one else on the network can listen in.
pub fn is_loopback(host_port: &str) -> bool {
    if let Ok(sa) = host_port.parse::<SocketAddr>() {
        return sa.ip().is_loopback();
    }
    let host = host_port.rsplit_once(':').map(|(h, _)| h).unwrap_or(host_port);
    host.eq_ignore_ascii_case("localhost")
}

/// The admin listener rules, checked before the server touches its store: a TCP listener
/// needs a token, and TLS unless it is on loopback (the token would cross the network in
/// clear).
pub fn check_listener(addr: &AdminAddr, has_token: bool, has_tls: bool) -> Result<()> {
    let AdminAddr::Tcp(hp) = addr else { return Ok(()) };
    if !has_token {
        bail!(
            "refusing to serve the admin API on {addr} without a token: set [admin] token_file, or listen on a unix socket"
        );
    }
    if !has_tls && !is_loopback(hp) {
        bail!(
            "refusing to serve the admin API on {addr} without TLS: its token would cross the network in clear. \
             Set [admin] tls_cert_file and tls_key_file, listen on loopback (tcp://127.0.0.1:PORT), or on a unix socket"
        );
    }
    Ok(())
}

/// A server's certificate and key, read and checked (PEM, the key matches the certificate,
/// the key file is private) before anything else happens.
#[derive(Clone)]
pub struct ServerTls {
    identity: Identity,
    pub cert_file: PathBuf,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("cert_file", &self.cert_file).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// `[admin] tls_cert_file` and `tls_key_file`: both or neither.
    pub fn from_config(admin: &AdminConfig) -> Result<Option<ServerTls>> {
        match (&admin.tls_cert_file, &admin.tls_key_file) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => ServerTls::load(cert, key).map(Some),
            (Some(_), None) => bail!("[admin] tls_cert_file is set without tls_key_file: TLS needs both"),
            (None, Some(_)) => bail!("[admin] tls_key_file is set without tls_cert_file: TLS needs both"),
        }
    }

    pub fn load(cert_file: &Path, key_file: &Path) -> Result<ServerTls> {
        install_crypto_provider();
        check_private(key_file, "TLS key file")?;
        let cert_pem = std::fs::read(cert_file)
            .with_context(|| format!("cannot read the TLS certificate file {}", cert_file.display()))?;
        let key_pem =
            std::fs::read(key_file).with_context(|| format!("cannot read the TLS key file {}", key_file.display()))?;
        let certs = parse_certs(&cert_pem, cert_file)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            anyhow::anyhow!("TLS key file {}: no PEM private key in it ({e})", key_file.display())
        })?;
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        rustls::sign::CertifiedKey::from_der(certs, key, &provider).map_err(|e| {
            anyhow::anyhow!(
                "TLS key file {} does not go with the certificate {}: {e}",
                key_file.display(),
                cert_file.display()
            )
        })?;
        Ok(ServerTls { identity: Identity::from_pem(cert_pem, key_pem), cert_file: cert_file.to_path_buf() })
    }

    pub(crate) fn tonic_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity.clone()).timeout(HANDSHAKE_TIMEOUT)
    }
}

/// What a client trusts to sign the server's certificate.
#[derive(Clone)]
pub struct ClientTls {
    ca: Certificate,
    pub ca_file: PathBuf,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("ca_file", &self.ca_file).finish_non_exhaustive()
    }
}

impl ClientTls {
    /// `[admin] tls_ca_file`, else the server's own `tls_cert_file` (a CLI on the server's
    /// machine with the server's config trusts the server's self-signed certificate); `None`:
    /// clients speak plain HTTP/2 (to a loopback server).
    pub fn from_config(admin: &AdminConfig) -> Result<Option<ClientTls>> {
        match admin.tls_ca_file.as_ref().or(admin.tls_cert_file.as_ref()) {
            Some(path) => ClientTls::load(path).map(Some),
            None => Ok(None),
        }
    }

    pub fn load(ca_file: &Path) -> Result<ClientTls> {
        install_crypto_provider();
        let pem = std::fs::read(ca_file)
            .with_context(|| format!("cannot read the TLS CA file {}", ca_file.display()))?;
        parse_certs(&pem, ca_file)?;
        Ok(ClientTls { ca: Certificate::from_pem(pem), ca_file: ca_file.to_path_buf() })
    }

    pub(crate) fn tonic_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(self.ca.clone())
    }
}

fn parse_certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("TLS certificate file {}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("TLS certificate file {} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// A channel to a TCP admin address: `https` with `tls`, else plain HTTP/2.
pub(crate) fn tcp_endpoint(host_port: &str, tls: Option<&ClientTls>) -> Result<tonic::transport::Endpoint> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let ep = tonic::transport::Endpoint::from_shared(format!("{scheme}://{host_port}"))
        .with_context(|| format!("bad admin address {host_port:?}"))?;
    match tls {
        Some(t) => ep
            .tls_config(t.tonic_config())
            .with_context(|| format!("TLS settings for {host_port} (CA file {})", t.ca_file.display())),
        None => Ok(ep),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback() {
        for lo in ["127.0.0.1:1", "127.9.9.9:1", "[::1]:7", "localhost:9", "LOCALHOST:9"] {
            assert!(is_loopback(lo), "{lo}");
        }
        for other in ["0.0.0.0:1", "[::]:1", "10.1.2.3:4", "example.com:5", "localhost.evil.com:1"] {
            assert!(!is_loopback(other), "{other}");
        }
    }

    #[test]
    fn listener_rules() {
        let tcp = |s: &str| AdminAddr::Tcp(s.into());
        assert!(check_listener(&AdminAddr::Unix("/x.sock".into()), false, false).is_ok());
        assert!(check_listener(&tcp("127.0.0.1:1"), false, false).unwrap_err().to_string().contains("without a token"));
        assert!(check_listener(&tcp("127.0.0.1:1"), true, false).is_ok());
        assert!(check_listener(&tcp("0.0.0.0:1"), true, false).unwrap_err().to_string().contains("without TLS"));
        assert!(check_listener(&tcp("0.0.0.0:1"), true, true).is_ok());
        assert!(check_listener(&tcp("0.0.0.0:1"), false, true).is_err());
    }

    #[test]
    fn private_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "t").unwrap();
        for (mode, ok) in [(0o600, true), (0o400, true), (0o700, true), (0o644, false), (0o640, false), (0o604, false), (0o620, false)] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let r = check_private(&p, "admin token file");
            assert_eq!(r.is_ok(), ok, "{mode:o}: {r:?}");
            if let Err(e) = r {
                let e = e.to_string();
                assert!(e.contains(&format!("chmod 600 {}", p.display())) && e.contains(&format!("{mode:04o}")), "{e}");
            }
        }
        assert!(check_private(&dir.path().join("missing"), "admin token file").is_err());
    }
}

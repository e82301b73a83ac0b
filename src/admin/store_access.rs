//! CheckStoreAccess: proves that credentials other than the server's own (a StorageClass's CSI
//! secret) may use the server's store, by running the store's start-up checks
//! (`store::probe`: list, write, conditional writes, delete) with a client built from them.
//!
//! The client gets every setting of the server's own store (bucket, prefix, endpoint, region,
//! path style, plain HTTP) except the credentials, and none of the environment's credentials:
//! a secret missing its session token must fail, not borrow the server's. It retries nothing
//! and times out in seconds, so a refusal is answered at once with its cause. The credentials
//! are dropped when the call returns.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ClientConfigKey, ClientOptions, ObjectStore, RetryConfig};
use tonic::Status;

use crate::config::StorageConfig;
use crate::store::{probe, Store};

/// S3 credentials from a CSI secret. `Debug` shows none of them.
#[derive(Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials")
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn same_url(a: &str, b: &str) -> bool {
    a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/')
}

/// Checks `creds` against the store of `storage` (`store_url`, when not empty, must name it).
pub async fn check(storage: &StorageConfig, store_url: &str, creds: &S3Credentials) -> Result<(), Status> {
    let url = storage.url.trim();
    if !store_url.is_empty() && !same_url(store_url, url) {
        return Err(Status::invalid_argument(format!(
            "store {store_url:?} is not this server's store {url:?}: one slatefs installation serves one store"
        )));
    }
    if creds.access_key_id.is_empty() || creds.secret_access_key.is_empty() {
        return Err(Status::invalid_argument("an access key id and a secret access key are both required"));
    }
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    match scheme {
        "s3" => {}
        "file" => {
            return Err(Status::invalid_argument(format!(
                "the store {url:?} is a local directory: it takes no credentials, so a secret for it is a mistake"
            )))
        }
        _ => {
            return Err(Status::invalid_argument(format!(
                "credentials from CSI secrets are S3 keys; the store {url:?} is not on S3"
            )))
        }
    }
    let os = s3_client(bucket, storage, creds)
        .map_err(|e| Status::invalid_argument(format!("cannot build an S3 client for {url:?}: {e}")))?;
    let store = Store::from_parts(os, Path::from(prefix), None, url);
    probe::probe(&store).await.map_err(|e| classify(&format!("{e:#}")))
}

/// The checks' messages name the cause; the code follows it.
fn classify(msg: &str) -> Status {
    let text = format!("checking the CSI secret's credentials: {msg}");
    if msg.contains("rejected the credentials") {
        Status::permission_denied(text)
    } else if msg.contains("cannot reach") {
        Status::unavailable(text)
    } else {
        Status::failed_precondition(text)
    }
}

/// An S3 client with the server's settings and `creds`.
fn s3_client(bucket: &str, cfg: &StorageConfig, creds: &S3Credentials) -> object_store::Result<Arc<dyn ObjectStore>> {
    // Settings the server may have taken from the environment (its own client is built
    // `from_env`), without the environment's credentials.
    let env = AmazonS3Builder::from_env();
    let mut b = AmazonS3Builder::new().with_bucket_name(bucket);
    for key in [
        AmazonS3ConfigKey::Region,
        AmazonS3ConfigKey::Endpoint,
        AmazonS3ConfigKey::VirtualHostedStyleRequest,
    ] {
        if let Some(v) = env.get_config_value(&key) {
            b = b.with_config(key, v);
        }
    }
    if let Some(endpoint) = &cfg.endpoint {
        b = b.with_endpoint(endpoint);
    }
    if let Some(region) = &cfg.region {
        b = b.with_region(region);
    }
    let mut client = ClientOptions::new().with_timeout(TIMEOUT).with_connect_timeout(TIMEOUT / 3);
    if let Some(allow) = cfg.allow_http {
        client = client.with_allow_http(allow);
    } else if let Some(v) = env.get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)) {
        client = client.with_allow_http(v == "true");
    }
    if let Some(path_style) = cfg.path_style {
        b = b.with_virtual_hosted_style_request(!path_style);
    }
    b = b
        .with_access_key_id(&creds.access_key_id)
        .with_secret_access_key(&creds.secret_access_key)
        .with_client_options(client)
        .with_retry(RetryConfig { max_retries: 0, retry_timeout: TIMEOUT, ..Default::default() });
    if let Some(t) = &creds.session_token {
        b = b.with_token(t);
    }
    Ok(Arc::new(b.build()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> S3Credentials {
        S3Credentials {
            access_key_id: "AKIDSECRETISH".into(),
            secret_access_key: "very-secret-value".into(),
            session_token: Some("session-secret".into()),
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!("{:?}", creds());
        for secret in ["AKIDSECRETISH", "very-secret-value", "session-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[tokio::test]
    async fn refuses_without_sending_anything() {
        let mut cfg = StorageConfig { url: "file:///tmp/x".into(), ..Default::default() };
        let e = check(&cfg, "", &creds()).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        assert!(e.message().contains("takes no credentials"), "{e}");
        cfg.url = "s3://bucket/p".into();
        let e = check(&cfg, "s3://other/p", &creds()).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
        let mut c = creds();
        c.secret_access_key.clear();
        assert_eq!(check(&cfg, "s3://bucket/p/", &c).await.unwrap_err().code(), tonic::Code::InvalidArgument);
        cfg.url = "gs://bucket/p".into();
        assert_eq!(check(&cfg, "", &creds()).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn codes_follow_the_cause() {
        assert_eq!(classify("the object store at s3://b rejected the credentials (x)").code(), tonic::Code::PermissionDenied);
        assert_eq!(classify("cannot reach the object store at s3://b").code(), tonic::Code::Unavailable);
        assert_eq!(classify("the bucket of s3://b does not exist").code(), tonic::Code::FailedPrecondition);
    }
}

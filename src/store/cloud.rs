//! S3, GCS and Azure backends through object_store, configured from the environment and the
//! `[storage]` section.
//!
//! Each store gets two clients with the same settings: the one everything uses (object_store's
//! own HTTP retries on, under SlateDB's unbounded retry layer), and a probe client with no
//! retries and short timeouts, so that the start-up checks (`probe.rs`) answer in seconds
//! with the real cause (connection refused, 403, no such bucket) instead of retrying it for
//! minutes.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use object_store::{
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    azure::{AzureConfigKey, MicrosoftAzureBuilder},
    gcp::{GoogleCloudStorageBuilder, GoogleConfigKey},
    ClientConfigKey, ObjectStore, RetryConfig,
};

use crate::config::StorageConfig;

/// A backend and its no-retry twin for start-up checks.
pub struct CloudStores {
    pub main: Arc<dyn ObjectStore>,
    pub probe: Arc<dyn ObjectStore>,
}

/// How long one start-up check request may take (connect: a third of it).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

fn probe_retry() -> RetryConfig {
    RetryConfig { max_retries: 0, retry_timeout: PROBE_TIMEOUT, ..Default::default() }
}

/// (key, value) client settings of the probe client, applied with `with_config` so that the
/// other client options (allow-http, proxies from the environment) stay as configured.
fn probe_client() -> [(ClientConfigKey, String); 2] {
    [
        (ClientConfigKey::Timeout, format!("{}s", PROBE_TIMEOUT.as_secs())),
        (ClientConfigKey::ConnectTimeout, format!("{}s", PROBE_TIMEOUT.as_secs() / 3)),
    ]
}

pub fn build(scheme: &str, bucket: &str, cfg: &StorageConfig) -> Result<Arc<dyn ObjectStore>> {
    Ok(build_with_probe(scheme, bucket, cfg)?.main)
}

pub fn build_with_probe(scheme: &str, bucket: &str, cfg: &StorageConfig) -> Result<CloudStores> {
    let stores = match scheme {
        "s3" => {
            let b = s3_builder(bucket, cfg)?;
            CloudStores {
                probe: Arc::new(
                    probe_client()
                        .into_iter()
                        .fold(b.clone().with_retry(probe_retry()), |b, (k, v)| {
                            b.with_config(AmazonS3ConfigKey::Client(k), v)
                        })
                        .build()
                        .context("invalid S3 settings")?,
                ),
                main: Arc::new(b.build().context("invalid S3 settings")?),
            }
        }
        "gs" => {
            let b = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
            CloudStores {
                probe: Arc::new(
                    probe_client()
                        .into_iter()
                        .fold(b.clone().with_retry(probe_retry()), |b, (k, v)| {
                            b.with_config(GoogleConfigKey::Client(k), v)
                        })
                        .build()
                        .context("invalid GCS settings")?,
                ),
                main: Arc::new(b.build().context("invalid GCS settings")?),
            }
        }
        _ => {
            let b = MicrosoftAzureBuilder::from_env().with_container_name(bucket);
            CloudStores {
                probe: Arc::new(
                    probe_client()
                        .into_iter()
                        .fold(b.clone().with_retry(probe_retry()), |b, (k, v)| {
                            b.with_config(AzureConfigKey::Client(k), v)
                        })
                        .build()
                        .context("invalid Azure settings")?,
                ),
                main: Arc::new(b.build().context("invalid Azure settings")?),
            }
        }
    };
    Ok(stores)
}

fn s3_builder(bucket: &str, cfg: &StorageConfig) -> Result<AmazonS3Builder> {
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &cfg.endpoint {
        b = b.with_endpoint(endpoint);
    }
    if let Some(region) = &cfg.region {
        b = b.with_region(region);
    }
    if let Some(allow) = cfg.allow_http {
        b = b.with_allow_http(allow);
    }
    if let Some(path_style) = cfg.path_style {
        b = b.with_virtual_hosted_style_request(!path_style);
    }
    if let Some(file) = &cfg.credentials_file {
        let creds = read_credentials_file(file)?;
        if let Some(v) = creds.get("access_key_id") {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = creds.get("secret_access_key") {
            b = b.with_secret_access_key(v);
        }
        if let Some(v) = creds.get("session_token") {
            b = b.with_token(v);
        }
    }
    Ok(b)
}

fn read_credentials_file(
    path: &std::path::Path,
) -> Result<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read credentials file {}", path.display()))?;
    let mut out = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            anyhow::bail!("{}:{}: expected `key = value`", path.display(), n + 1);
        };
        out.insert(k.trim().to_lowercase().replace("aws_", ""), v.trim().trim_matches('"').to_string());
    }
    Ok(out)
}

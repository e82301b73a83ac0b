//! S3, GCS and Azure backends through object_store, configured from the environment and the
//! `[storage]` section.

use std::sync::Arc;

use anyhow::{Context, Result};
use object_store::{
    aws::AmazonS3Builder, azure::MicrosoftAzureBuilder, gcp::GoogleCloudStorageBuilder,
    ObjectStore,
};

use crate::config::StorageConfig;

pub fn build(scheme: &str, bucket: &str, cfg: &StorageConfig) -> Result<Arc<dyn ObjectStore>> {
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" => {
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
            Arc::new(b.build().context("invalid S3 settings")?)
        }
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .build()
                .context("invalid GCS settings")?,
        ),
        _ => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .build()
                .context("invalid Azure settings")?,
        ),
    };
    Ok(store)
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

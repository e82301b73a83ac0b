//! What the S3 end-to-end suites (s3_e2e.rs, s3_outage.rs) share: a `slatefs serve` config
//! for a test S3 server, and bounds on client calls that may hang.
//! Expects the `server` module (support/server.rs, which brings support/s3.rs) at the crate root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::server::s3::S3Server;
use crate::server::ServerOptions;

pub const PREFIX: &str = "e2e";

/// A config file body for `s3://<bucket>/<prefix>` on `s3`, credentials in a file under `dir`,
/// with more `[storage]` lines and more sections.
pub fn s3_config(s3: &S3Server, dir: &Path, storage_extra: &str, rest: &str) -> String {
    let creds = s3.write_credentials_file(dir, &s3.access_key, &s3.secret_key);
    s3_config_with(s3, &s3.bucket, &creds, storage_extra, rest)
}

pub fn s3_config_with(s3: &S3Server, bucket: &str, creds: &Path, storage_extra: &str, rest: &str) -> String {
    format!(
        "[storage]\nurl = \"s3://{bucket}/{PREFIX}\"\nendpoint = \"{}\"\nregion = \"{}\"\n\
         allow_http = true\npath_style = true\ncredentials_file = \"{}\"\n{storage_extra}\n{rest}\n",
        s3.endpoint,
        s3.region,
        creds.display()
    )
}

pub fn s3_server_opts(s3: &S3Server, config: String, extra_args: &[&str]) -> ServerOptions {
    ServerOptions {
        store_url: Some(format!("s3://{}/{PREFIX}", s3.bucket)),
        config: Some(config),
        extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        // Keep the AWS SDK-style environment out of the picture: the config file decides.
        env: vec![
            ("AWS_ACCESS_KEY_ID".into(), String::new()),
            ("AWS_SECRET_ACCESS_KEY".into(), String::new()),
        ],
        ..Default::default()
    }
}

/// Files under `dir`, recursively, relative to it.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

/// Bounds a client call that may hang (a killed or fenced server, a store outage).
pub async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs}s"))
}

//! The configuration file shared by `slatefs serve`, `slatefs dataset …` and `slatefs csi`.
//! TOML by default, YAML when the file name ends in `.yaml`/`.yml`. Unknown keys are an error
//! that names the key, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub const DEFAULT_STORE_URL: &str = "file://./slatefs-data";
pub const DEFAULT_NFS_LISTEN: &str = "127.0.0.1:2049";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub storage: StorageConfig,
    pub nfs: NfsConfig,
    pub admin: AdminConfig,
    pub durability: DurabilityConfig,
    pub catalog: CatalogConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CatalogRole {
    /// This process writes the catalog (standalone `serve`, the CSI controller).
    #[default]
    Owner,
    /// This process follows a catalog another process writes (dataset servers on nodes).
    Reader,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    pub role: CatalogRole,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `file:///abs/dir`, `file://./relative/dir`, `s3://bucket/prefix`, `gs://…`, `az://…`.
    pub url: String,
    /// S3-compatible endpoint, e.g. `http://127.0.0.1:9000` (empty: AWS).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Send plain-HTTP requests (only for endpoints on a private network).
    pub allow_http: Option<bool>,
    /// Path-style (`endpoint/bucket/key`) instead of virtual-hosted-style requests.
    pub path_style: Option<bool>,
    /// A file with `key = value` lines (`access_key_id`, `secret_access_key`, `session_token`).
    pub credentials_file: Option<PathBuf>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: DEFAULT_STORE_URL.to_string(),
            endpoint: None,
            region: None,
            allow_http: None,
            path_style: None,
            credentials_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NfsConfig {
    pub listen: String,
    /// Hide `.snapshots` from READDIR (it stays reachable by name).
    pub hide_snapshot_dir: bool,
}

impl Default for NfsConfig {
    fn default() -> Self {
        NfsConfig { listen: DEFAULT_NFS_LISTEN.to_string(), hide_snapshot_dir: false }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `unix:///path/admin.sock` or `tcp://host:port` (TCP requires a token). Empty: a unix
    /// socket beside the local data (`<dir>/admin.sock`), or `/run/slatefs/admin.sock` for
    /// remote stores.
    pub listen: Option<String>,
    /// File holding the bearer token required on a TCP listener.
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    /// A reply to a mutating call is sent only once the change is durable in the object store.
    #[default]
    Sync,
    /// Replies are sent at once; changes are flushed every `flush_interval_ms` and on COMMIT.
    Async,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DurabilityConfig {
    pub mode: DurabilityMode,
    /// In async mode: the longest a change waits before it is flushed.
    pub flush_interval_ms: u64,
}

impl Default for DurabilityConfig {
    fn default() -> Self {
        DurabilityConfig { mode: DurabilityMode::Sync, flush_interval_ms: 100 }
    }
}

impl Config {
    /// Reads `path`, or returns the defaults when no file is given.
    pub fn load(path: Option<&Path>) -> Result<Config> {
        let Some(path) = path else { return Ok(Config::default()) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let config: Config = match ext {
            "yaml" | "yml" => serde_yaml::from_str(text)
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?,
            _ => toml::from_str(text)
                .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        if self.storage.url.is_empty() {
            bail!("storage.url must not be empty");
        }
        if self.durability.flush_interval_ms == 0 {
            bail!("durability.flush_interval_ms must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = Config::parse("[storage]\nurl = \"file:///x\"\nurll = 1\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("urll"), "{err}");
        let err = Config::parse("nfs:\n  lisen: x\n", Path::new("c.yaml")).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn toml_and_yaml_agree() {
        let t = Config::parse(
            "[storage]\nurl = \"file:///d\"\n[nfs]\nlisten = \"127.0.0.1:1\"\n[durability]\nmode = \"async\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let y = Config::parse(
            "storage:\n  url: file:///d\nnfs:\n  listen: 127.0.0.1:1\ndurability:\n  mode: async\n",
            Path::new("c.yml"),
        )
        .unwrap();
        assert_eq!(t.storage.url, y.storage.url);
        assert_eq!(t.nfs.listen, y.nfs.listen);
        assert_eq!(t.durability.mode, DurabilityMode::Async);
        assert_eq!(y.durability.mode, DurabilityMode::Async);
    }
}

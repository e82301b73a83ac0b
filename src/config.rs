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
    pub cluster: ClusterConfig,
    pub metrics: MetricsConfig,
    pub web: WebConfig,
    pub maintenance: MaintenanceConfig,
}

/// `[metrics]`: the Prometheus `/metrics` page of `slatefs serve` (docs/metrics.md). Off
/// unless `listen` is set. The CSI plugin has its own (`slatefs csi --metrics-listen`), so
/// that a config file shared by a node's server and plugin does not make both bind one port.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `HOST:PORT` of the HTTP listener serving `GET /metrics`.
    pub listen: Option<String>,
}

/// `[web]`: the web console and its JSON API (docs/web.md). Off unless `listen` is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// `HOST:PORT` of the HTTP listener (plain HTTP: loopback or behind a TLS proxy).
    pub listen: Option<String>,
    /// The bearer token that may do everything (required with `listen`; mode 0600).
    pub token_file: Option<PathBuf>,
    /// A second token that may only look (GET requests); mode 0600 as well.
    pub readonly_token_file: Option<PathBuf>,
}

impl WebConfig {
    pub fn validate(&self) -> Result<()> {
        let Some(listen) = &self.listen else {
            if self.token_file.is_some() || self.readonly_token_file.is_some() {
                bail!("web.token_file and web.readonly_token_file need web.listen");
            }
            return Ok(());
        };
        if listen.parse::<std::net::SocketAddr>().is_err()
            && !listen.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
        {
            bail!("web.listen {listen:?}: expected HOST:PORT");
        }
        if self.token_file.is_none() {
            bail!("web.listen needs web.token_file: the console is never served without a token");
        }
        Ok(())
    }
}

/// `[maintenance]`: SlateDB's background work on every open database (compaction and garbage
/// collection), and how long a dataset nobody uses stays open. What each costs and why the
/// defaults are what they are: docs/object-storage.md, "Collection and polling".
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaintenanceConfig {
    /// How often garbage collection runs on each open dataset.
    pub gc_interval_ms: u64,
    /// Objects younger than this are never collected (a write or compaction may still be
    /// publishing them); at least twice a dataset's manifest poll (1 s).
    pub gc_min_age_ms: u64,
    /// How often an open dataset's compactor looks for work.
    pub compaction_poll_ms: u64,
    /// A dataset (or snapshot) no call has used for this long is closed; its next call opens
    /// it again. 0: never closed.
    pub idle_close_ms: u64,
    /// How often the catalog's writer and compactor look at the store while nothing changes
    /// (its collection runs every 10 of these, keeping objects 5 of these).
    pub catalog_poll_ms: u64,
    /// A dataset whose tables stayed the same this long (no flush, no compaction) while two or
    /// more of them exist has them merged into one, which is what lets removed data leave the
    /// store (docs/data-path.md, "Collection and space"). 0: never. Keep it below
    /// `idle_close_ms`: a closed dataset's compactor does not run.
    pub collect_quiet_ms: u64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            gc_interval_ms: 60_000,
            gc_min_age_ms: 60_000,
            compaction_poll_ms: 5_000,
            idle_close_ms: 60_000,
            catalog_poll_ms: 300_000,
            collect_quiet_ms: 10_000,
        }
    }
}

impl MaintenanceConfig {
    pub fn validate(&self) -> Result<()> {
        for (key, value, least) in [
            ("maintenance.gc_interval_ms", self.gc_interval_ms, 100),
            ("maintenance.gc_min_age_ms", self.gc_min_age_ms, 2_000),
            ("maintenance.compaction_poll_ms", self.compaction_poll_ms, 100),
            ("maintenance.catalog_poll_ms", self.catalog_poll_ms, 1_000),
        ] {
            if value < least {
                bail!("{key} must be at least {least}");
            }
        }
        // A closed dataset's compactor does not run, so a quiet time at or past the idle close
        // would never merge, and removed data would stay in the store.
        if self.idle_close_ms > 0 && self.collect_quiet_ms >= self.idle_close_ms {
            bail!(
                "maintenance.collect_quiet_ms ({}) must be below maintenance.idle_close_ms ({}): \
                 a closed dataset is not merged, so removed data would stay in the store \
                 (or set collect_quiet_ms = 0 to never merge)",
                self.collect_quiet_ms,
                self.idle_close_ms
            );
        }
        Ok(())
    }
}

/// `[cluster]`: several servers sharing one store, one owner per dataset (docs/ownership.md).
/// Off unless `listen` is set: a server alone serves every dataset itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This server's name in ownership records and logs. Default: the host name.
    pub name: Option<String>,
    /// The internal channel (`HOST:PORT`) other servers forward calls to.
    pub listen: Option<String>,
    /// The address other servers reach `listen` at, when it differs (e.g. `0.0.0.0:7400`
    /// behind a node address). Default: `listen`.
    pub advertise: Option<String>,
    /// A file holding the cluster's shared secret (mode 0600). Default: a secret kept in the
    /// store (`secrets/cluster-key`), which every server with access to the store shares.
    pub secret_file: Option<PathBuf>,
    /// How long an owner's own clients must leave a dataset alone before it hands the dataset
    /// to the one other server still using it.
    pub handoff_after_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { name: None, listen: None, advertise: None, secret_file: None, handoff_after_ms: 5000 }
    }
}

impl ClusterConfig {
    pub fn enabled(&self) -> bool {
        self.listen.is_some()
    }

    /// The configured name, or the host name.
    pub fn server_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        match (rc, std::str::from_utf8(&buf[..end])) {
            (0, Ok(h)) if !h.is_empty() => h.to_string(),
            _ => "slatefs".to_string(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(n) = &self.name {
            if n.is_empty() || n.len() > 253 || !n.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_')) {
                bail!("cluster.name {n:?}: use 1-253 letters, digits, '.', '-' or '_'");
            }
        }
        for (key, v) in [("cluster.listen", &self.listen), ("cluster.advertise", &self.advertise)] {
            if let Some(a) = v {
                if a.parse::<std::net::SocketAddr>().is_err() && !a.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) {
                    bail!("{key} {a:?}: expected HOST:PORT");
                }
            }
        }
        if self.advertise.is_some() && self.listen.is_none() {
            bail!("cluster.advertise needs cluster.listen");
        }
        let unspecified = self
            .listen
            .as_deref()
            .and_then(|l| l.parse::<std::net::SocketAddr>().ok())
            .is_some_and(|a| a.ip().is_unspecified());
        if unspecified && self.advertise.is_none() {
            bail!("cluster.listen {:?} is not an address other servers can reach: set cluster.advertise", self.listen.as_deref().unwrap_or(""));
        }
        Ok(())
    }
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
    /// A local directory for the read cache of object-store stores (SST parts on disk), shared
    /// by every dataset this process serves; unset: no read cache. Ignored for `file://`.
    pub cache_dir: Option<PathBuf>,
    /// The most the read cache may hold: bytes, or with a unit (`512MiB`, `20GiB`, `1GB`;
    /// `Ki`/`KiB`… are powers of 1024, `K`/`KB`… powers of 1000). Default 16GiB.
    pub cache_size: Option<String>,
    /// The in-memory cache of SST blocks, indexes and filters, shared by every dataset this
    /// process serves: bytes or with a unit. Default 512MiB.
    pub memory_cache_size: Option<String>,
    /// How long a call that needs the object store (a durability wait) waits before it answers
    /// "try again later" (NFS3ERR_JUKEBOX; the NFS client retries by itself). Default 5000.
    pub unavailable_after_ms: Option<u64>,
    /// After the object store has been unreachable this long, calls that need it fail with an
    /// I/O error (NFS3ERR_IO) instead of JUKEBOX. 0: never (JUKEBOX for as long as it lasts).
    /// Default 300000 (5 min).
    pub io_error_after_ms: Option<u64>,
    /// `file://` stores: free space on the disk below which changes that need space answer
    /// NFS3ERR_NOSPC (removes go on until a quarter of it is left); bytes or with a unit.
    /// Default 256MiB, at most a tenth of the disk. See `store::space`.
    pub space_reserve: Option<String>,
    /// How SST blocks (file data, metadata and the WAL) are compressed in the store: `lz4`
    /// (default), `zstd`, `snappy` or `none`. Each block records its codec, so a store written
    /// with one setting stays readable with any other; a change applies to what is written
    /// (and compacted) from then on.
    pub compression: Option<String>,
    /// Memory each dataset being written may hold for changes not yet in the store's sorted
    /// tables (its memtable and the ones waiting to be written); writers wait beyond it.
    /// Bytes or with a unit; at least 16MiB. Default 192MiB. See docs/memory.md.
    pub write_buffer_size: Option<String>,
    /// Layout of datasets created from now on: 1 (default) stores every write as whole chunks;
    /// 2 stores writes of up to half a chunk as patches merged into the chunk (opt-in: every
    /// server of the store needs 2 set to open such datasets). Existing datasets keep the
    /// layout they were made in. See docs/data-path.md.
    pub dataset_format: Option<u8>,
}

/// The codecs `[storage] compression` accepts, in the order `--help` and errors list them.
pub const COMPRESSION_CHOICES: &str = "lz4, zstd, snappy, none";

impl StorageConfig {
    /// `[storage] dataset_format`, checked: the layout new datasets are made in.
    pub fn new_dataset_format(&self) -> Result<u8> {
        use crate::fs::codec::{DATA_WHOLE_CHUNKS, NEWEST_DATA_FORMAT};
        match self.dataset_format {
            None => Ok(DATA_WHOLE_CHUNKS),
            Some(f) if (DATA_WHOLE_CHUNKS..=NEWEST_DATA_FORMAT).contains(&f) => Ok(f),
            Some(f) => anyhow::bail!(
                "[storage] dataset_format = {f} is not a layout this slatefs makes; use \
                 {DATA_WHOLE_CHUNKS} (whole chunks, the default) or {NEWEST_DATA_FORMAT} (patches)"
            ),
        }
    }

    /// `[storage] compression` as SlateDB's codec (`None`: stored uncompressed).
    pub fn compression_codec(&self) -> Result<Option<slatedb::config::CompressionCodec>> {
        use slatedb::config::CompressionCodec;
        match self.compression.as_deref().unwrap_or("lz4").trim().to_ascii_lowercase().as_str() {
            "lz4" => Ok(Some(CompressionCodec::Lz4)),
            "zstd" => Ok(Some(CompressionCodec::Zstd)),
            "snappy" => Ok(Some(CompressionCodec::Snappy)),
            "none" => Ok(None),
            other => anyhow::bail!(
                "[storage] compression = {other:?} is not a codec slatefs offers; use one of {COMPRESSION_CHOICES}"
            ),
        }
    }
}

/// Default `[storage] memory_cache_size`: the SST cache shared by every dataset of a process.
pub const DEFAULT_MEMORY_CACHE_BYTES: u64 = 512 << 20;

/// Default `[storage] write_buffer_size`: unflushed changes per dataset being written.
pub const DEFAULT_WRITE_BUFFER_BYTES: u64 = 192 << 20;

/// Parses a size (see [`crate::size`]): `1048576`, `512KiB`, `64MiB`, `20GiB`, `1GB`.
pub fn parse_size(s: &str) -> Result<u64> {
    Ok(crate::size::parse_size(s)?)
}

impl StorageConfig {
    /// `memory_cache_size` in bytes (default 512 MiB).
    pub fn memory_cache_size_bytes(&self) -> Result<u64> {
        match &self.memory_cache_size {
            Some(s) => parse_size(s).context("storage.memory_cache_size"),
            None => Ok(DEFAULT_MEMORY_CACHE_BYTES),
        }
    }

    /// `write_buffer_size` in bytes (default [`DEFAULT_WRITE_BUFFER_BYTES`], at least 16 MiB).
    pub fn write_buffer_size_bytes(&self) -> Result<u64> {
        let bytes = match &self.write_buffer_size {
            Some(s) => parse_size(s).context("storage.write_buffer_size")?,
            None => DEFAULT_WRITE_BUFFER_BYTES,
        };
        if bytes < 16 << 20 {
            bail!("storage.write_buffer_size must be at least 16MiB");
        }
        Ok(bytes)
    }

    /// `space_reserve` in bytes; `None`: the default of `store::space`.
    pub fn space_reserve_bytes(&self) -> Result<Option<u64>> {
        self.space_reserve.as_deref().map(|s| parse_size(s).context("storage.space_reserve")).transpose()
    }

    /// `cache_size` in bytes (default 16 GiB).
    pub fn cache_size_bytes(&self) -> Result<u64> {
        match &self.cache_size {
            Some(s) => parse_size(s).context("storage.cache_size"),
            None => Ok(16 << 30),
        }
    }
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
            cache_dir: None,
            cache_size: None,
            memory_cache_size: None,
            unavailable_after_ms: None,
            io_error_after_ms: None,
            space_reserve: None,
            compression: None,
            write_buffer_size: None,
            dataset_format: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NfsConfig {
    pub listen: String,
    /// Hide `.snapshots` from READDIR (it stays reachable by name).
    pub hide_snapshot_dir: bool,
    /// Connections served at once; one more is closed as soon as it is accepted. Default 1024.
    pub max_connections: usize,
    /// The most memory all connections together hold for RPC records still arriving: bytes,
    /// or with a unit. Each connection's first 64 KiB of a record are its own, beyond that
    /// records wait for this budget. Default 128MiB, at least 16MiB.
    pub record_memory: Option<String>,
    /// How long a record may take from its first byte to its last before the server closes
    /// the connection. Default 30000.
    pub record_timeout_ms: u64,
}

pub const DEFAULT_RECORD_MEMORY_BYTES: u64 = 128 << 20;
/// Room for several records of the largest size (a 4 MiB record) to arrive at once.
pub const MIN_RECORD_MEMORY_BYTES: u64 = 16 << 20;

impl NfsConfig {
    /// `record_memory` in bytes.
    pub fn record_memory_bytes(&self) -> Result<u64> {
        let bytes = match &self.record_memory {
            Some(s) => parse_size(s).context("nfs.record_memory")?,
            None => DEFAULT_RECORD_MEMORY_BYTES,
        };
        if bytes < MIN_RECORD_MEMORY_BYTES {
            bail!("nfs.record_memory must be at least 16MiB (records of up to 4 MiB must fit)");
        }
        Ok(bytes)
    }
}

impl Default for NfsConfig {
    fn default() -> Self {
        NfsConfig {
            listen: DEFAULT_NFS_LISTEN.to_string(),
            hide_snapshot_dir: false,
            max_connections: 1024,
            record_memory: None,
            record_timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `unix:///path/admin.sock` or `tcp://host:port` (TCP requires a token). Empty: a unix
    /// socket beside the local data (`<dir>/admin.sock`), or `/run/slatefs/admin.sock` for
    /// remote stores.
    pub listen: Option<String>,
    /// File holding the bearer token required on a TCP listener (and sent by clients). It
    /// must not be readable by group or others (`chmod 600`), as ssh insists for keys.
    pub token_file: Option<PathBuf>,
    /// PEM certificate (chain) the server presents on a TCP listener. TLS is required on any
    /// TCP address but loopback. Clients without `tls_ca_file` trust this certificate.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`; like the token, not readable by group or others.
    pub tls_key_file: Option<PathBuf>,
    /// PEM certificate(s) a client (`slatefs dataset`, the CSI plugin) trusts to sign the
    /// server's certificate; setting it (or `tls_cert_file`) makes clients use TLS on TCP.
    pub tls_ca_file: Option<PathBuf>,
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
        self.storage.cache_size_bytes()?;
        self.storage.memory_cache_size_bytes()?;
        self.storage.write_buffer_size_bytes()?;
        if self.storage.unavailable_after_ms == Some(0) {
            bail!("storage.unavailable_after_ms must be at least 1");
        }
        self.nfs.record_memory_bytes()?;
        if self.nfs.max_connections == 0 {
            bail!("nfs.max_connections must be at least 1");
        }
        if self.nfs.record_timeout_ms == 0 {
            bail!("nfs.record_timeout_ms must be at least 1");
        }
        if self.durability.flush_interval_ms == 0 {
            bail!("durability.flush_interval_ms must be at least 1");
        }
        self.cluster.validate()?;
        if let Some(l) = &self.metrics.listen {
            crate::metrics::http::parse_listen(l)?;
        }
        self.web.validate()?;
        self.maintenance.validate()?;
        self.storage.compression_codec()?;
        self.storage.new_dataset_format()?;
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
    fn sizes() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("20 GiB").unwrap(), 20 << 30);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("GiB").is_err());
        let c = Config::parse(
            "[storage]\nurl = \"s3://b/p\"\ncache_dir = \"/var/cache/slatefs\"\ncache_size = \"2GiB\"\nunavailable_after_ms = 1000\nio_error_after_ms = 0\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(c.storage.cache_size_bytes().unwrap(), 2 << 30);
        assert_eq!(c.storage.io_error_after_ms, Some(0));
        let err = Config::parse("[storage]\ncache_size = \"lots\"\n", Path::new("c.toml")).unwrap_err();
        assert!(format!("{err:#}").contains("cache_size"), "{err:#}");
    }

    #[test]
    fn dataset_format_defaults_to_whole_chunks_and_refuses_unknown_layouts() {
        let format = |text: &str| Config::parse(text, Path::new("c.toml")).and_then(|c| c.storage.new_dataset_format());
        assert_eq!(format("").unwrap(), crate::fs::codec::DATA_WHOLE_CHUNKS);
        assert_eq!(format("[storage]\ndataset_format = 2\n").unwrap(), crate::fs::codec::DATA_PATCHABLE);
        for bad in ["0", "3"] {
            let err = format!("{:#}", format(&format!("[storage]\ndataset_format = {bad}\n")).unwrap_err());
            assert!(err.contains("dataset_format") && err.contains("use 1"), "{err}");
        }
    }

    #[test]
    fn nfs_limits() {
        let c = Config::parse(
            "[nfs]\nmax_connections = 10\nrecord_memory = \"32MiB\"\nrecord_timeout_ms = 500\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!((c.nfs.max_connections, c.nfs.record_timeout_ms), (10, 500));
        assert_eq!(c.nfs.record_memory_bytes().unwrap(), 32 << 20);
        assert_eq!(Config::default().nfs.record_memory_bytes().unwrap(), DEFAULT_RECORD_MEMORY_BYTES);
        for (bad, key) in [
            ("max_connections = 0", "max_connections"),
            ("record_timeout_ms = 0", "record_timeout_ms"),
            ("record_memory = \"1MiB\"", "record_memory"),
            ("record_memory = \"lots\"", "record_memory"),
        ] {
            let err = Config::parse(&format!("[nfs]\n{bad}\n"), Path::new("c.toml")).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{bad}: {err:#}");
        }
    }

    #[test]
    fn metrics_listen() {
        let c = Config::parse("[metrics]\nlisten = \"127.0.0.1:9100\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.metrics.listen.as_deref(), Some("127.0.0.1:9100"));
        assert_eq!(Config::default().metrics.listen, None);
        let err = Config::parse("[metrics]\nlisten = \"everywhere\"\n", Path::new("c.toml")).unwrap_err();
        assert!(format!("{err:#}").contains("[metrics] listen"), "{err:#}");
        let err = Config::parse("[metrics]\nlistn = \"x\"\n", Path::new("c.toml")).unwrap_err();
        assert!(format!("{err:#}").contains("listn"), "{err:#}");
    }

    #[test]
    fn web_needs_a_token() {
        let c = Config::parse("[web]\nlisten = \"127.0.0.1:8080\"\ntoken_file = \"/t\"\n", Path::new("c.toml")).unwrap();
        assert_eq!(c.web.listen.as_deref(), Some("127.0.0.1:8080"));
        for (bad, key) in [
            ("listen = \"127.0.0.1:8080\"", "token_file"),
            ("listen = \"nowhere\"\ntoken_file = \"/t\"", "web.listen"),
            ("token_file = \"/t\"", "need web.listen"),
        ] {
            let err = Config::parse(&format!("[web]\n{bad}\n"), Path::new("c.toml")).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{bad}: {err:#}");
        }
    }

    #[test]
    fn quiet_merge_must_come_before_the_idle_close() {
        let err = Config::parse("[maintenance]\nidle_close_ms = 2000\n", Path::new("c.toml")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("collect_quiet_ms (10000) must be below maintenance.idle_close_ms (2000)"), "{msg}");
        for ok in [
            "[maintenance]\nidle_close_ms = 2000\ncollect_quiet_ms = 1000\n",
            "[maintenance]\nidle_close_ms = 2000\ncollect_quiet_ms = 0\n",
            "[maintenance]\nidle_close_ms = 0\ncollect_quiet_ms = 600000\n",
        ] {
            Config::parse(ok, Path::new("c.toml")).unwrap();
        }
    }

    #[test]
    fn maintenance_intervals() {
        let c = Config::parse(
            "[maintenance]\ngc_interval_ms = 500\ngc_min_age_ms = 2000\nidle_close_ms = 0\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!((c.maintenance.gc_interval_ms, c.maintenance.idle_close_ms), (500, 0));
        assert_eq!(c.maintenance.catalog_poll_ms, 300_000);
        for (bad, key) in [
            ("gc_min_age_ms = 1000", "gc_min_age_ms"),
            ("gc_interval_ms = 0", "gc_interval_ms"),
            ("catalog_poll_ms = 10", "catalog_poll_ms"),
            ("gc_every = 1", "gc_every"),
        ] {
            let err = Config::parse(&format!("[maintenance]\n{bad}\n"), Path::new("c.toml")).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{bad}: {err:#}");
        }
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

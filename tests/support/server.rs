//! Starts real `slatefs serve` processes for integration tests: free ports, a temporary store,
//! kill -9, clean stop and restart on the same ports and store.
//!
//! `SLATEFS_TEST_STORE=s3` runs every server whose options name no store on S3 instead: a real
//! S3 server (tests/support/s3.rs) in this process, one per such server, and a `[storage]`
//! section with its endpoint and a credentials file put in front of the config file. A
//! second server given the first one's `store_url` (and a config without `[storage]`) gets
//! the same S3 settings and keeps the S3 server alive as long as it runs.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

#[path = "s3.rs"]
pub mod s3;

/// A test S3 server and the `[storage]` section that reaches it.
struct S3Store {
    _server: s3::S3Server,
    _dir: tempfile::TempDir,
    storage_toml: String,
    config: slatefs::config::StorageConfig,
}

/// S3 stores by URL, so that a second server on the same store finds its settings.
static S3_STORES: Mutex<Vec<(String, Weak<S3Store>)>> = Mutex::new(Vec::new());

fn start_s3_store() -> (String, Arc<S3Store>) {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3_blocking(&dir.path().join("s3"), s3::ServerOptions::default());
    // A prefix of its own per S3 server: a second server on "the same store" is matched to
    // its S3 server by URL, and tests run in parallel.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let prefix = format!("slatefs-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let cfg = server.storage_config(&prefix, dir.path());
    let storage_toml = format!(
        "[storage]\nurl = \"{}\"\nendpoint = \"{}\"\nregion = \"{}\"\nallow_http = true\npath_style = true\ncredentials_file = \"{}\"\n",
        cfg.url,
        server.endpoint,
        server.region,
        cfg.credentials_file.as_ref().unwrap().display()
    );
    let url = cfg.url.clone();
    let store = Arc::new(S3Store { _server: server, _dir: dir, storage_toml, config: cfg });
    let mut all = S3_STORES.lock().unwrap();
    all.retain(|(_, w)| w.strong_count() > 0);
    all.push((url.clone(), Arc::downgrade(&store)));
    (url, store)
}

fn find_s3_store(url: &str) -> Option<Arc<S3Store>> {
    S3_STORES.lock().unwrap().iter().find(|(u, _)| u == url).and_then(|(_, w)| w.upgrade())
}

/// The `slatefs` executable: this build's, or `SLATEFS_BIN` when set (scripts/bench.sh runs a
/// private copy, since target/ may be rebuilt while a benchmark runs).
pub fn binary() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| std::env::var("SLATEFS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_slatefs").to_string()))
}

/// SIGTERM, then wait up to a minute for a clean exit (SIGKILL after that); returns whether
/// the process exited successfully.
pub fn terminate(mut child: Child) -> bool {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// `--durability` value; sync when unset.
    pub durability: Option<String>,
    /// Store URL; a `file://` directory inside the test dir when unset.
    pub store_url: Option<String>,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// A config file body written to `<dir>/config.toml` and passed with `-c`.
    pub config: Option<String>,
    /// `--admin-listen` (and `Server::admin`); a unix socket in the test dir when unset.
    pub admin: Option<String>,
    /// More keys of the `[storage]` section (`unavailable_after_ms = 300`), on whichever store
    /// the server runs: a config naming `[storage]` itself gets no S3 store under an S3 run.
    pub storage_keys: Option<String>,
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub nfs_port: u16,
    pub admin: String,
    pub store_url: String,
    opts: ServerOptions,
    child: Option<Child>,
    starts: u32,
    /// The S3 server under an S3 run (`SLATEFS_TEST_STORE=s3`).
    s3: Option<Arc<S3Store>>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(ServerOptions::default())
    }

    pub fn start_with(mut opts: ServerOptions) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let has_storage = opts.config.as_deref().is_some_and(|c| c.contains("[storage]"));
        let mut s3_store = None;
        let store_url = match &opts.store_url {
            Some(url) => {
                if url.starts_with("s3://") && !has_storage {
                    s3_store = find_s3_store(url);
                }
                url.clone()
            }
            None if s3::StoreKind::from_env() == s3::StoreKind::S3 && !has_storage => {
                let (url, store) = start_s3_store();
                s3_store = Some(store);
                url
            }
            None => format!("file://{}", dir.path().join("data").display()),
        };
        let storage_keys = opts.storage_keys.as_deref().unwrap_or("");
        if let Some(store) = &s3_store {
            opts.config =
                Some(format!("{}{storage_keys}\n{}", store.storage_toml, opts.config.as_deref().unwrap_or("")));
        } else if !storage_keys.is_empty() {
            assert!(!has_storage, "storage_keys and a config with [storage]: put the keys in the config");
            opts.config = Some(format!("[storage]\n{storage_keys}\n{}", opts.config.as_deref().unwrap_or("")));
        }
        let admin =
            opts.admin.clone().unwrap_or_else(|| format!("unix://{}", dir.path().join("admin.sock").display()));
        let mut s = Server { dir, nfs_port: free_port(), admin, store_url, opts, child: None, starts: 0, s3: s3_store };
        s.spawn();
        s
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `[storage]` settings that reach this server's store (its S3 server under an S3 run),
    /// for a test that looks at the store itself. `None` for a store the test configured
    /// itself in the config file or with a URL this module did not start.
    pub fn storage_config(&self) -> Option<slatefs::config::StorageConfig> {
        match &self.s3 {
            Some(s3) => Some(s3.config.clone()),
            None if self.store_url.starts_with("file://") => Some(slatefs::config::StorageConfig {
                url: self.store_url.clone(),
                ..Default::default()
            }),
            None => None,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("serve-{}.log", self.starts))
    }

    /// Everything every start of this server wrote to stderr.
    pub fn logs(&self) -> String {
        (1..=self.starts)
            .map(|n| std::fs::read_to_string(self.dir.path().join(format!("serve-{n}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path()).unwrap();
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .arg("--store")
            .arg(&self.store_url)
            .arg("--nfs-listen")
            .arg(format!("127.0.0.1:{}", self.nfs_port))
            .arg("--admin-listen")
            .arg(&self.admin);
        if let Some(d) = &self.opts.durability {
            cmd.arg("--durability").arg(d);
        }
        if let Some(body) = &self.opts.config {
            let path = self.dir.path().join("config.toml");
            std::fs::write(&path, body).unwrap();
            cmd.arg("-c").arg(path);
        }
        cmd.args(&self.opts.extra_args)
            .envs(self.opts.env.iter().cloned())
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info,slatedb=warn,zerofs_nfsserve=warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        self.child = Some(cmd.spawn().expect("cannot start slatefs serve"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("slatefs serve exited with {status} during start-up:\n{}", self.logs());
            }
            // `serve` logs this line once every listener (NFS and admin) is bound.
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            if log.contains("slatefs serving") && TcpStream::connect(("127.0.0.1", self.nfs_port)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "slatefs serve did not become ready:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        match self.child.take() {
            Some(child) => terminate(child),
            None => true,
        }
    }

    /// Starts the server again on the same ports and store.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the server first");
        self.spawn();
    }

    /// Runs the `slatefs` binary with these args against this server's admin socket.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary()).args(args).output().expect("cannot run slatefs")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        // A failing test takes its server's log with it otherwise (the temp dir goes).
        if std::thread::panicking() {
            let logs = self.logs();
            let tail: Vec<&str> = logs.lines().rev().take(60).collect();
            eprintln!("--- last lines of the slatefs serve log (port {}) ---", self.nfs_port);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

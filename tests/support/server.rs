//! Starts real `slatefs serve` processes for integration tests: free ports, a temporary store,
//! kill -9, clean stop and restart on the same ports and store.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_slatefs")
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
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub nfs_port: u16,
    pub admin: String,
    pub store_url: String,
    opts: ServerOptions,
    child: Option<Child>,
    starts: u32,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(ServerOptions::default())
    }

    pub fn start_with(opts: ServerOptions) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store_url = opts
            .store_url
            .clone()
            .unwrap_or_else(|| format!("file://{}", dir.path().join("data").display()));
        let admin = format!("unix://{}", dir.path().join("admin.sock").display());
        let mut s = Server { dir, nfs_port: free_port(), admin, store_url, opts, child: None, starts: 0 };
        s.spawn();
        s
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
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
        let Some(mut child) = self.child.take() else { return true };
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
    }
}

//! Starts a real `slatefs csi` process next to a real `slatefs serve` (see server.rs) and hands
//! out tonic clients on its unix socket.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slatefs::csi::proto::controller_client::ControllerClient;
use slatefs::csi::proto::identity_client::IdentityClient;
use slatefs::csi::proto::node_client::NodeClient;
use slatefs::csi::transport;
use tonic::transport::Channel;

use super::server::{binary, Server};

pub struct Plugin {
    pub dir: tempfile::TempDir,
    pub endpoint: PathBuf,
    child: Option<Child>,
}

impl Plugin {
    /// `slatefs csi --mode all` against `server`: its admin socket, its NFS port, its store.
    pub fn start(server: &Server) -> Plugin {
        Plugin::start_with(server, "all", &server.admin, &[])
    }

    pub fn start_with(server: &Server, mode: &str, admin: &str, extra: &[&str]) -> Plugin {
        Plugin::start_configured(server, mode, admin, "", extra)
    }

    /// [`Plugin::start_with`] with more config after the `[storage]` section (e.g. `[admin]`).
    pub fn start_configured(server: &Server, mode: &str, admin: &str, more_config: &str, extra: &[&str]) -> Plugin {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = dir.path().join("csi.sock");
        let config = dir.path().join("csi.toml");
        std::fs::write(&config, format!("[storage]\nurl = \"{}\"\n{more_config}", server.store_url)).unwrap();
        let log = std::fs::File::create(dir.path().join("csi.log")).unwrap();
        let child = Command::new(binary())
            .args(["csi", "--mode", mode, "--node-id", "test-node"])
            .arg("--endpoint")
            .arg(format!("unix://{}", endpoint.display()))
            .arg("-c")
            .arg(&config)
            .arg("--admin")
            .arg(admin)
            .arg("--nfs-server")
            .arg(format!("127.0.0.1:{}", server.nfs_port))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("cannot start slatefs csi");
        let mut p = Plugin { dir, endpoint, child: Some(child) };
        p.wait_ready();
        p
    }

    /// `slatefs csi --mode controller` with no admin address configured: it runs the catalog
    /// owner in-process on the store `storage` names (no `slatefs serve` at all).
    pub fn start_in_process_controller(storage: &slatefs::config::StorageConfig) -> Plugin {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = dir.path().join("csi.sock");
        let config = dir.path().join("csi.toml");
        let storage = toml::to_string(storage).expect("storage config as TOML");
        std::fs::write(&config, format!("[storage]\n{storage}\n[catalog]\nrole = \"owner\"\n")).unwrap();
        let log = std::fs::File::create(dir.path().join("csi.log")).unwrap();
        let child = Command::new(binary())
            .args(["csi", "--mode", "controller"])
            .arg("--endpoint")
            .arg(format!("unix://{}", endpoint.display()))
            .arg("-c")
            .arg(&config)
            .env("RUST_LOG", "info,slatedb=warn")
            // The config file decides the store's credentials, not the environment.
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("cannot start slatefs csi");
        let mut p = Plugin { dir, endpoint, child: Some(child) };
        p.wait_ready();
        p
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> bool {
        match self.child.take() {
            Some(child) => crate::server::terminate(child),
            None => true,
        }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        // A connection, not the socket file: the file appears at bind(), before listen(), and
        // a client in between is refused.
        while std::os::unix::net::UnixStream::connect(&self.endpoint).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("slatefs csi exited with {status}:\n{}", self.logs());
            }
            assert!(Instant::now() < deadline, "slatefs csi did not create its socket:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("csi.log")).unwrap_or_default()
    }

    pub fn channel(&self) -> Channel {
        transport::unix_channel(&self.endpoint)
    }

    pub fn identity(&self) -> IdentityClient<Channel> {
        IdentityClient::new(self.channel())
    }

    pub fn controller(&self) -> ControllerClient<Channel> {
        ControllerClient::new(self.channel())
    }

    pub fn node(&self) -> NodeClient<Channel> {
        NodeClient::new(self.channel())
    }

    /// `slatefs csi call --endpoint … ARGS`.
    pub fn call(&self, args: &[&str]) -> std::process::Output {
        Command::new(binary())
            .args(["csi", "call", "--endpoint"])
            .arg(format!("unix://{}", self.endpoint.display()))
            .args(args)
            .output()
            .expect("cannot run slatefs csi call")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        self.kill9();
        // A failing test takes the plugin's log with it otherwise (the temp dir goes).
        if std::thread::panicking() {
            eprintln!("--- slatefs csi ({}) exited: {exited:?}; its log ---", self.endpoint.display());
            for line in self.logs().lines().rev().take(40).collect::<Vec<_>>().into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

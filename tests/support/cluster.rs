//! Three real `slatefs serve` processes on one store, as the ownership design expects them
//! (docs/ownership.md): `owner` owns the catalog, `node-a` and `node-b` follow it; all three
//! share one cluster secret and serve any dataset, each dataset written by one of them.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::server::{free_port, Server, ServerOptions};

pub const NAMES: [&str; 3] = ["owner", "node-a", "node-b"];

pub struct Trio {
    pub servers: Vec<Server>,
    pub secret_dir: tempfile::TempDir,
    pub internal_ports: Vec<u16>,
}

pub struct TrioOptions {
    pub durability: &'static str,
    pub handoff_after_ms: u64,
    /// Environment given to every server of the trio (e.g. the policy clock file).
    pub env: Vec<(String, String)>,
}

impl Default for TrioOptions {
    fn default() -> Self {
        TrioOptions { durability: "sync", handoff_after_ms: 5000, env: Vec::new() }
    }
}

/// The secret every server of the trio reads (its file is 0600, as `serve` requires).
pub const SECRET: &str = "trio-test-secret-0123456789abcdef";

impl Trio {
    pub fn start(opts: TrioOptions) -> Trio {
        let secret_dir = tempfile::tempdir().unwrap();
        let secret = secret_dir.path().join("cluster.secret");
        std::fs::write(&secret, SECRET).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let internal_ports: Vec<u16> = NAMES.iter().map(|_| free_port()).collect();
        let mut servers: Vec<Server> = Vec::new();
        for (i, name) in NAMES.iter().enumerate() {
            let role = if i == 0 { "owner" } else { "reader" };
            let config = format!(
                "[catalog]\nrole = \"{role}\"\n[cluster]\nname = \"{name}\"\nlisten = \"127.0.0.1:{}\"\nsecret_file = \"{}\"\nhandoff_after_ms = {}\n",
                internal_ports[i],
                secret.display(),
                opts.handoff_after_ms
            );
            let store_url = servers.first().map(|s| s.store_url.clone());
            servers.push(Server::start_with(ServerOptions {
                durability: Some(opts.durability.into()),
                store_url,
                config: Some(config),
                env: opts.env.clone(),
                ..Default::default()
            }));
        }
        Trio { servers, secret_dir, internal_ports }
    }

    pub fn by_name(&self, name: &str) -> &Server {
        &self.servers[NAMES.iter().position(|n| *n == name).unwrap()]
    }

    pub fn index(name: &str) -> usize {
        NAMES.iter().position(|n| *n == name).unwrap()
    }

    /// `slatefs dataset ARGS` against server `i`'s admin API; panics with the logs on failure.
    pub fn dataset(&self, i: usize, args: &[&str]) -> String {
        let s = &self.servers[i];
        let mut full = vec!["dataset", "--admin", s.admin.as_str()];
        full.extend_from_slice(args);
        let out = s.cli(&full);
        assert!(
            out.status.success(),
            "slatefs dataset {args:?} on {}: {}\n{}",
            NAMES[i],
            String::from_utf8_lossy(&out.stderr),
            self.all_logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server that owns dataset `name` now, as the catalog owner reports it.
    pub fn owner_of(&self, name: &str) -> Option<String> {
        let out = self.dataset(0, &["info", name, "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["owner"].as_str().map(str::to_string)
    }

    /// Waits until `cond` holds (checked every 100 ms), for at most a minute.
    pub fn wait_for(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", self.all_logs());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn all_logs(&self) -> String {
        self.servers
            .iter()
            .zip(NAMES)
            .map(|(s, n)| format!("===== {n}\n{}", s.logs()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Log lines of any server that say a writer was fenced or taken over.
    pub fn fencing_lines(&self) -> Vec<String> {
        self.all_logs()
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("fenced") || l.contains("opened it for writing") || l.contains("took its writer over")
            })
            .map(str::to_string)
            .collect()
    }
}

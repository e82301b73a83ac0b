//! The S3 side of the benchmark: the tests' S3 server (tests/support/s3_test_server.rs, s3s +
//! s3s-fs on a local directory) as a process on 127.0.0.1, and the request counts it keeps
//! (`GET /_requests`), read before and after each workload so the same counter applies to
//! slatefs and ZeroFS.

use crate::servers::{free_port, Proc};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Request classes as the server counts them, in table order.
pub const CLASSES: &[&str] = &["put", "get", "head", "list", "delete", "post", "other"];

/// Requests received, by class, plus `bytes_in` / `bytes_out` (object bytes up and down).
#[derive(Clone, Debug, Default)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    pub fn get(&self, k: &str) -> u64 {
        self.0.get(k).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        CLASSES.iter().map(|c| self.get(c)).sum()
    }

    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts(self.0.iter().map(|(k, v)| (k.clone(), v.saturating_sub(earlier.get(k)))).collect())
    }

    pub fn add(&mut self, other: &Counts) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }

    /// `PUT=3 GET=10 … up 1.0 MB down 2.0 MB`, for the log.
    pub fn line(&self) -> String {
        let mut s: Vec<String> = CLASSES.iter().filter(|c| self.get(c) > 0).map(|c| format!("{}={}", c.to_uppercase(), self.get(c))).collect();
        if s.is_empty() {
            s.push("no requests".into());
        }
        format!("{} (up {:.1} MB, down {:.1} MB)", s.join(" "), self.get("bytes_in") as f64 / 1e6, self.get("bytes_out") as f64 / 1e6)
    }
}

pub struct S3Server {
    pub proc: Proc,
    pub endpoint: String,
    pub port: u16,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

/// Starts `bin` (the s3_test_server example) over `dir` and waits for its endpoint line.
pub fn start(bin: &Path, dir: &Path) -> Result<S3Server> {
    std::fs::create_dir_all(dir)?;
    let port = free_port();
    let log = dir.join("s3.log");
    let f = std::fs::File::create(&log)?;
    let child = Command::new(bin)
        .arg("--dir")
        .arg(dir.join("objects"))
        .arg("--port")
        .arg(port.to_string())
        // Closing its stdin stops it cleanly and makes it print its final counts.
        .arg("--exit-on-stdin-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::from(f.try_clone()?))
        .stderr(Stdio::from(f))
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut proc = Proc { name: "s3 server".into(), child, log: log.clone() };
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.starts_with("S3 endpoint=")) {
            break l.to_string();
        }
        if let Some(st) = proc.child.try_wait()? {
            bail!("S3 server exited ({st}) during start-up:\n{}", proc.log_tail());
        }
        if Instant::now() > deadline {
            bail!("S3 server printed no endpoint line within 30 s:\n{}", proc.log_tail());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let field = |k: &str| -> Result<String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
            .ok_or_else(|| anyhow!("no {k}= in the S3 server's line: {line}"))
    };
    Ok(S3Server {
        endpoint: field("endpoint")?,
        port,
        bucket: field("bucket")?,
        access_key: field("access_key")?,
        secret_key: field("secret_key")?,
        region: field("region")?,
        proc,
    })
}

impl S3Server {
    /// The counts so far (one HTTP request, not itself counted).
    pub fn counts(&self) -> Result<Counts> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).context("connect to the S3 server for its counts")?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"GET /_requests HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)?;
        let (head, body) = resp.split_once("\r\n\r\n").ok_or_else(|| anyhow!("bad counts response: {resp:?}"))?;
        if !head.starts_with("HTTP/1.1 200") {
            bail!("counts request answered {}", head.lines().next().unwrap_or(""));
        }
        Ok(Counts(serde_json::from_str(body).with_context(|| format!("counts body {body:?}"))?))
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.proc.log.parent().unwrap().join("objects")
    }

    /// Closes stdin (a clean exit with a last counts line in its log), then waits up to 10 s.
    pub fn stop(&mut self) {
        drop(self.proc.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.proc.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.proc.stop();
    }

    /// The `[storage]` section that puts slatefs on `s3://bucket/prefix` of this server, with
    /// an on-disk read cache of `cache_gib`.
    pub fn slatefs_storage(&self, dir: &Path, prefix: &str, cache_gib: f64) -> Result<String> {
        let creds = dir.join("s3-credentials");
        std::fs::write(&creds, format!("[default]\naccess_key_id = {}\nsecret_access_key = {}\n", self.access_key, self.secret_key))?;
        std::fs::create_dir_all(dir.join("cache"))?;
        Ok(format!(
            "[storage]\nurl = \"s3://{}/{prefix}\"\nendpoint = \"{}\"\nregion = \"{}\"\nallow_http = true\npath_style = true\n\
             credentials_file = \"{}\"\ncache_dir = \"{}\"\ncache_size = \"{}MiB\"\n",
            self.bucket,
            self.endpoint,
            self.region,
            creds.display(),
            dir.join("cache").display(),
            (cache_gib * 1024.0) as u64
        ))
    }

    /// ZeroFS 0.19.1's `[storage]` + `[aws]` sections for `s3://bucket/prefix` (its `[aws]`
    /// keys become object_store's `aws_*` options).
    pub fn zerofs_storage(&self, prefix: &str) -> String {
        format!(
            "[storage]\nurl = \"s3://{}/{prefix}\"\nencryption_password = \"nfsbench-password\"\n\n\
             [aws]\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nendpoint = \"{}\"\nregion = \"{}\"\nallow_http = \"true\"\n",
            self.bucket, self.access_key, self.secret_key, self.endpoint, self.region
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

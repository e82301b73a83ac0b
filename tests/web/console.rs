//! A `slatefs serve` with the web console on, and an HTTP client for its API: bearer, cookie
//! and raw requests (the raw ones for paths an HTTP library would normalise).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::nfs::Client;
use crate::server::{free_port, Server, ServerOptions};

#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie { session: &'a str, csrf: Option<&'a str> },
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
    }
}

pub struct Console {
    pub server: Server,
    pub port: u16,
    pub base: String,
    pub token: String,
    pub ro_token: String,
    tokens: tempfile::TempDir,
    http: reqwest::Client,
}

impl Console {
    pub fn start() -> Console {
        Console::start_with_env(Vec::new())
    }

    /// A console whose server has `env` set (e.g. the policy clock, SLATEFS_TEST_CLOCK_FILE).
    pub fn start_with_env(env: Vec<(String, String)>) -> Console {
        let tokens = tempfile::tempdir().unwrap();
        let token = format!("admin-{:032x}", rand::random::<u128>());
        let ro_token = format!("ro-{:032x}", rand::random::<u128>());
        let write = |name: &str, value: &str| {
            let p = tokens.path().join(name);
            std::fs::write(&p, format!("{value}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            p
        };
        let (admin_file, ro_file) = (write("web-token", &token), write("web-ro-token", &ro_token));
        let port = free_port();
        let config = format!(
            "[web]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{}\"\nreadonly_token_file = \"{}\"\n",
            admin_file.display(),
            ro_file.display()
        );
        let server = Server::start_with(ServerOptions { config: Some(config), env, ..Default::default() });
        assert!(server.logs().contains(&format!("web console listening on http://127.0.0.1:{port}")), "{}", server.logs());
        Console {
            server,
            port,
            base: format!("http://127.0.0.1:{port}"),
            token,
            ro_token,
            tokens,
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>, auth: Auth<'_>) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        match auth {
            Auth::None => {}
            Auth::Bearer(t) => req = req.header("authorization", format!("Bearer {t}")),
            Auth::Cookie { session, csrf } => {
                req = req.header("cookie", format!("other=1; slatefs_session={session}"));
                if let Some(c) = csrf {
                    req = req.header("x-csrf-token", c);
                }
            }
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.unwrap().to_vec();
        Resp { status, headers, body }
    }

    pub async fn bearer(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.call(method, path, body, Auth::Bearer(&self.token)).await
    }

    /// Logs in like the page; checks the cookie's attributes; returns (session, CSRF token).
    pub async fn login(&self, token: &str) -> (String, String) {
        let r = self.call("POST", "/api/v1/login", Some(json!({ "token": token })), Auth::None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let cookie = r.header("set-cookie");
        let attrs: Vec<&str> = cookie.split(';').map(str::trim).collect();
        assert!(attrs.contains(&"HttpOnly") && attrs.contains(&"SameSite=Strict"), "{cookie}");
        let session = attrs[0].strip_prefix("slatefs_session=").unwrap().to_string();
        assert!(session.len() >= 64, "{cookie}");
        (session, r.json()["csrf_token"].as_str().unwrap().to_string())
    }

    pub async fn snapshot_names(&self, dataset: &str) -> Vec<String> {
        let r = self.bearer("GET", &format!("/api/v1/datasets/{dataset}/snapshots"), None).await.json();
        r["snapshots"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
    }

    /// A GET sent byte for byte as given (no URL normalisation); returns status and body.
    pub fn raw_get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.token
        )
        .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        (status, body)
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Writes files over NFS, snapshots them, changes the live dataset, then has
/// tests/web/browser.py drive the page; checks over NFS and the API what the page did.
pub async fn browser_test() {
    let missing: Vec<&str> = [("chromium", "chromium"), ("chromedriver", "chromium-driver")]
        .into_iter()
        .filter(|(bin, _)| !Command::new("sh").args(["-c", &format!("command -v {bin}")]).output().unwrap().status.success())
        .map(|(_, pkg)| pkg)
        .collect();
    let python = std::env::var("SLATEFS_PYTHON").unwrap_or_else(|_| "python3".into());
    let selenium = Command::new(&python).args(["-c", "import selenium"]).output().is_ok_and(|o| o.status.success());
    assert!(
        missing.is_empty() && selenium,
        "the browser test needs apt-get install -y chromium chromium-driver and pip install selenium (missing: {missing:?}, selenium: {selenium}); scripts/test.sh installs them"
    );

    // The policy clock: the page draws which snapshots the policy made.
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("clock");
    std::fs::write(&clock, "1772445570000").unwrap(); // 2026-03-02T09:59:30Z
    let c = Console::start_with_env(vec![("SLATEFS_TEST_CLOCK_FILE".into(), clock.display().to_string())]);
    let mut nfs = Client::mount(c.server.nfs_port, "/").await.unwrap();
    let root = nfs.root.clone();
    let reports = nfs.mkdir(&root, b"reports", 0o755).await.unwrap();
    let q1 = nfs.create(&reports, b"q1.txt", 0o644).await.unwrap();
    nfs.write(&q1, 0, b"quarter one: written before the snapshot\n").await.unwrap();
    let draft = nfs.create(&reports, b"draft.txt", 0o644).await.unwrap();
    nfs.write(&draft, 0, b"first draft\n").await.unwrap();
    let r = c.bearer("POST", "/api/v1/datasets/root/snapshots", Some(json!({ "name": "monday" }))).await;
    assert_eq!(r.status, 201, "{}", r.text());
    nfs.write(&draft, 0, b"second draft, rewritten after monday\n").await.unwrap();
    let added = nfs.create(&reports, b"q2.txt", 0o644).await.unwrap();
    nfs.write(&added, 0, b"quarter two\n").await.unwrap();
    let policy = json!({ "every": "1h", "keep_last": 24, "prefix": "hourly" });
    let r = c.bearer("PUT", "/api/v1/datasets/root/policy", Some(policy)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    std::fs::write(&clock, "1772445610000").unwrap(); // 10:00:10Z: the 10:00 slot is due
    let by_policy = "hourly-20260302-100000z";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !c.snapshot_names("root").await.iter().any(|n| n == by_policy) {
        assert!(std::time::Instant::now() < deadline, "the policy took no snapshot");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // The names people know, recorded as the CSI controller records them (admin API).
    {
        use slatefs::admin::proto::{set_kubernetes_ref_request::Object, KubernetesRef, SetKubernetesRefRequest};
        let addr = slatefs::admin::AdminAddr::parse(&c.server.admin).unwrap();
        let mut admin = slatefs::admin::client::connect(&addr, None).await.unwrap();
        for (object, name, content) in
            [(Object::Dataset("root".into()), "orders-db", "pvc-0f3c"), (Object::Snapshot("monday".into()), "orders-monday", "snapcontent-9")]
        {
            let r#ref = Some(KubernetesRef { namespace: "shop".into(), name: name.into(), content: content.into() });
            admin.set_kubernetes_ref(SetKubernetesRefRequest { object: Some(object), r#ref }).await.unwrap();
        }
    }

    let shots = target_dir().join("web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/web/browser.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .env("SLATEFS_WEB_URL", &c.base)
        .env("SLATEFS_WEB_TOKEN", &c.token)
        .env("SLATEFS_WEB_SCREENSHOTS", &shots)
        .env("SLATEFS_WEB_POLICY_SNAPSHOT", by_policy)
        .output()
        .await
        .unwrap();
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser.py failed:\n{log}");
    println!("{log}");

    // What the page did, seen over NFS and through the API.
    let restored = nfs.walk("reports/draft.txt").await.unwrap();
    assert_eq!(nfs.read_all(&restored).await.unwrap(), b"first draft\n", "restored by the page (replace)");
    assert_eq!(c.snapshot_names("root").await, vec!["monday", by_policy], "the page took ui-snap and deleted it");
    let root_info = c.bearer("GET", "/api/v1/datasets/root", None).await.json();
    assert_eq!(root_info["quota_bytes"], 2u64 << 30, "set by the page: {root_info}");
    let p = c.bearer("GET", "/api/v1/datasets/root/policy", None).await.json();
    assert_eq!(p["policy"]["paused"], true, "paused by the page: {p}");
    // The clone the page made holds the snapshot's files, and the policy the page gave it.
    let mut copy = Client::mount(c.server.nfs_port, "/monday-copy").await.unwrap();
    let draft_copy = copy.walk("reports/draft.txt").await.unwrap();
    assert_eq!(copy.read_all(&draft_copy).await.unwrap(), b"first draft\n");
    let p = c.bearer("GET", "/api/v1/datasets/monday-copy/policy", None).await.json()["policy"].clone();
    let got = (p["every_seconds"].as_u64(), p["retention"]["keep_daily"].as_u64(), p["paused"].as_bool(), p["prefix"].as_str());
    assert_eq!(got, (Some(86400), Some(7), Some(true), Some("copy")), "{p}");
    for name in ["login", "datasets", "snapshot", "compare", "restored", "cloned"] {
        assert!(shots.join(format!("{name}.png")).exists(), "screenshot {name}.png");
    }
}

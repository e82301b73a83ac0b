//! The runnable example of docs/ownership.md: the three config files in docs/ownership/,
//! started exactly as they are, serve one dataset through both node servers.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nfs::{pattern, Client};

const DIR: &str = "/tmp/slatefs-cluster";
const SERVERS: [(&str, u16); 3] = [("owner", 12049), ("node-a", 12050), ("node-b", 12051)];

struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            for (name, _) in SERVERS {
                eprintln!("===== {name}\n{}", std::fs::read_to_string(format!("{DIR}/{name}.log")).unwrap_or_default());
            }
        }
    }
}

fn config(name: &str) -> String {
    format!("{}/docs/ownership/{name}.toml", env!("CARGO_MANIFEST_DIR"))
}

fn cli(args: &[&str]) -> String {
    let mut full = vec!["dataset", "-c"];
    let owner = config("owner");
    full.push(&owner);
    full.extend_from_slice(args);
    let out = Command::new(server::binary()).args(&full).output().unwrap();
    assert!(out.status.success(), "slatefs dataset {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_three_server_example_runs() {
    if std::env::var("SLATEFS_TEST_STORE").as_deref() == Ok("s3") {
        // The example is a local store by design; the S3 runs cover the same code in cluster.rs.
        return;
    }
    let _ = std::fs::remove_dir_all(DIR);
    std::fs::create_dir_all(DIR).unwrap();
    let secret = format!("{DIR}/secret");
    std::fs::write(&secret, "an example secret, long enough").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut running = Running(Vec::new());
    for (name, port) in SERVERS {
        let log = std::fs::File::create(format!("{DIR}/{name}.log")).unwrap();
        running.0.push(
            Command::new(server::binary())
                .args(["serve", "-c", &config(name)])
                .env("RUST_LOG", "info,slatedb=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "{name} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    cli(&["create", "shared"]);
    let mount = |port: u16| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Client::mount(port, "/shared").await {
                Ok(c) => return c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "mount through {port}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    let mut a = mount(12050).await;
    let mut b = mount(12051).await;
    let root = a.root.clone();
    let f = a.create(&root, b"greeting", 0o644).await.unwrap();
    a.write(&f, 0, &pattern(1, 5000)).await.unwrap();
    let g = b.lookup(&root, b"greeting").await.unwrap();
    assert_eq!(b.read_all(&g).await.unwrap(), pattern(1, 5000));
    let info: serde_json::Value = serde_json::from_str(&cli(&["info", "shared", "-o", "json"])).unwrap();
    assert_eq!(info["owner"], "node-a", "{info}");
    cli(&["snapshot", "shared", "monday", "--readonly"]);
    // node-a dies; node-b takes the dataset over and keeps serving the same handle.
    let _ = running.0[1].kill();
    let _ = running.0[1].wait();
    assert_eq!(b.read_all(&g).await.unwrap(), pattern(1, 5000));
    let info: serde_json::Value = serde_json::from_str(&cli(&["info", "shared", "-o", "json"])).unwrap();
    assert_eq!(info["owner"], "node-b", "{info}");
}

//! rollbackbench: how long `slatefs dataset rollback` takes on a small and a large dataset
//! (docs/rollback.md says O(1) in the data size; this measures it). One real `slatefs serve`
//! on a local store (tests/support/server.rs), filled over NFSv3 (the `nfs3_client` crate).
//! For each size: fill a dataset, take a read-only snapshot, change 1 MiB, then roll back
//! `--rounds` times (a 1 MiB change before each), timing each `slatefs dataset rollback`
//! process from start to exit and the first READ of the dataset after it. Prints a markdown
//! table; asserts nothing about time.
//!
//!   cargo bench --bench rollbackbench -- [--sizes-mib 1,1024] [--rounds 5]

#[path = "../../tests/support/nfs.rs"]
mod nfs;
#[path = "../../tests/support/server.rs"]
mod server;

use std::time::{Duration, Instant};

use nfs::{pattern, Client};
use server::Server;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned()).unwrap_or_else(|| default.to_string())
}

fn cli(server: &Server, args: &[&str]) {
    let mut full = vec!["dataset", "--admin", server.admin.as_str()];
    full.extend_from_slice(args);
    let out = server.cli(&full);
    assert!(out.status.success(), "slatefs dataset {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

async fn write_file(c: &mut Client, name: &str, mib: usize, seed: u64) {
    let root = c.root.clone();
    let f = match c.lookup(&root, name.as_bytes()).await {
        Ok(f) => f,
        Err(_) => c.create(&root, name.as_bytes(), 0o644).await.unwrap(),
    };
    let chunk = pattern(seed, 1 << 20);
    for i in 0..mib {
        c.write(&f, (i << 20) as u64, &chunk).await.unwrap();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = arg("--sizes-mib", "1,1024").split(',').map(|s| s.parse().expect("--sizes-mib")).collect();
    let rounds: usize = arg("--rounds", "5").parse().expect("--rounds");
    let server = Server::start();
    println!("| dataset size | fill (s) | rollback, median of {rounds} (ms) | min–max (ms) | first READ after (ms) |");
    println!("|---|---|---|---|---|");
    for mib in sizes {
        let name = format!("bench-{mib}m");
        cli(&server, &["create", &name]);
        let mut c = Client::mount(server.nfs_port, &format!("/{name}")).await.unwrap();
        let fill = Instant::now();
        write_file(&mut c, "data", mib, 1).await;
        let fill = fill.elapsed();
        cli(&server, &["snapshot", &name, "base", "--readonly"]);
        let (mut times, mut reads) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            write_file(&mut c, "change", 1, 100 + round as u64).await;
            let t = Instant::now();
            cli(&server, &["rollback", &name, "base"]);
            times.push(t.elapsed());
            let t = Instant::now();
            let f = c.walk("data").await.unwrap();
            let (data, _) = c.read(&f, 0, 4096).await.unwrap();
            reads.push(t.elapsed());
            assert_eq!(data, pattern(1, 1 << 20)[..4096], "the rolled-back data");
            assert!(c.walk("change").await.is_err(), "the change made after the snapshot is gone");
        }
        let (lo, hi) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
        println!(
            "| {mib} MiB | {:.1} | {} | {}–{} | {} |",
            fill.as_secs_f64(),
            ms(median(times)),
            ms(lo),
            ms(hi),
            ms(median(reads))
        );
        drop(c);
        cli(&server, &["delete-snapshot", "base"]);
        cli(&server, &["delete", &name]);
    }
}

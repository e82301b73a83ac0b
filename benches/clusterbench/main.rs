//! clusterbench: what many servers on one store cost (docs/ownership.md), with three real
//! `slatefs serve` processes — the catalog owner `owner` and the node servers `node-a` and
//! `node-b`, started by tests/support/cluster.rs exactly as the cluster tests start them — and
//! NFSv3 clients (the `nfs3_client` crate) on 127.0.0.1. Prints markdown tables; every figure is
//! measured in this run. Not a test: it asserts nothing about time.
//!
//!   cargo bench --bench clusterbench -- [--s3] [--only hop,two,failover,latency] [--out FILE]
//!
//! `--s3` puts the store on the tests' S3 server (tests/support/s3.rs, in this process), the way
//! the tests do under `SLATEFS_TEST_STORE=s3`. scripts/bench.sh cluster runs it on a private
//! copy of the binaries.
//!
//! 1. hop: the same workloads through the dataset's owner and through a server forwarding to it.
//! 2. two: two servers writing one dataset (one client on each) against one server, two clients.
//! 3. failover: clients writing through a non-owner while the owner is killed -9.
//! 4. latency: small FILE_SYNC writes through a node's server, with a read-only snapshot taken by
//!    the catalog owner every few seconds, against none.

#[path = "../nfsbench/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "../../tests/support/cluster.rs"]
mod cluster;
mod failover;
mod hop;
mod latency;
#[path = "../../tests/support/server.rs"]
mod server;
mod stats;

use anyhow::{bail, Result};
use clap::Parser;
use cluster::{Trio, TrioOptions};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

pub const OWNER: usize = 1; // node-a: the dataset owner in sections 1, 2 and 4
pub const FORWARDER: usize = 2; // node-b

#[derive(Parser, Debug, Clone)]
#[command(about = "Many slatefs servers on one store: the cost of a hop, two writers, failover, latency under snapshots")]
pub struct Args {
    /// Run on the tests' S3 server instead of a local (file://) store.
    #[arg(long)]
    pub s3: bool,
    /// Comma-separated sections: hop, two, failover, latency.
    #[arg(long, default_value = "hop,two,failover,latency")]
    pub only: String,
    /// Runs per figure in sections 1 and 2 (the median is printed), and phases of each kind in 4.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Requests in flight per client (one connection each).
    #[arg(long, default_value_t = 4)]
    pub inflight: usize,
    /// Sequential write size, MiB (1 MiB WRITEs).
    #[arg(long, default_value_t = 64)]
    pub seq_mib: u64,
    /// Seconds of 4 KiB random writes per run.
    #[arg(long, default_value_t = 2.0)]
    pub rand_secs: f64,
    /// Small files created per run.
    #[arg(long, default_value_t = 400)]
    pub creates: usize,
    /// Seconds of GETATTR/LOOKUP per run.
    #[arg(long, default_value_t = 2.0)]
    pub meta_secs: f64,
    /// Seconds per run of section 2.
    #[arg(long, default_value_t = 3.0)]
    pub two_secs: f64,
    /// Failover rounds.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Seconds of writes per latency phase.
    #[arg(long, default_value_t = 8.0)]
    pub lat_secs: f64,
    /// Seconds between snapshots in the latency phase with snapshots.
    #[arg(long, default_value_t = 2.0)]
    pub snap_every: f64,
    /// Also write the tables (markdown) to this file.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    pub bench: bool,
}

pub fn log(msg: &str) {
    eprintln!("[clusterbench {}] {msg}", chrono::Local::now().format("%H:%M:%S"));
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// The endpoint of dataset `name` on server `i`.
pub fn endpoint(trio: &Trio, i: usize, name: &str) -> client::Endpoint {
    let port = trio.servers[i].nfs_port;
    client::Endpoint { nfs_port: port, mount_port: port, export: format!("/{name}") }
}

/// Creates dataset `name` on the catalog owner and makes server `i` its owner: the first server
/// to use a dataset claims it, so one WRITE through `i` does it.
pub fn create_owned_by(rt: &tokio::runtime::Runtime, trio: &Trio, name: &str, i: usize) -> Result<()> {
    trio.dataset(0, &["create", name]);
    rt.block_on(async {
        // A catalog reader sees a new dataset on its next look at the catalog.
        let mut c = client::connect_wait(&endpoint(trio, i, name), Duration::from_secs(30)).await?;
        let root = c.root_nfs_fh3();
        let f = client::create(&mut c, &root, "claim", false).await?;
        client::write(&mut c, &f, 0, b"claimed", nfs3_types::nfs3::stable_how::FILE_SYNC).await
    })?;
    expect_owner(trio, name, i)
}

pub fn expect_owner(trio: &Trio, name: &str, i: usize) -> Result<()> {
    match trio.owner_of(name) {
        Some(o) if o == cluster::NAMES[i] => Ok(()),
        other => bail!("dataset {name} is owned by {other:?}, expected {}", cluster::NAMES[i]),
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    let sections: Vec<&str> = a.only.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    for s in &sections {
        if !["hop", "two", "failover", "latency"].contains(s) {
            bail!("unknown section {s}; known: hop, two, failover, latency");
        }
    }
    if a.runs == 0 || a.inflight == 0 || a.rounds == 0 {
        bail!("--runs, --inflight and --rounds must be at least 1");
    }
    // tests/support/server.rs picks the store from the environment, as the tests do.
    std::env::set_var("SLATEFS_TEST_STORE", if a.s3 { "s3" } else { "local" });
    let store = if a.s3 { "the tests' S3 server (s3s + s3s-fs in the benchmark process)" } else { "a local file:// store" };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    let started = chrono::Local::now();
    let load_start = loadavg();
    log(&format!("starting three servers on {store} (load {load_start})"));
    let t0 = Instant::now();
    // No handoff during the run: sections 1–3 need the owner to stay where it was put while
    // only the forwarding server's clients are busy (docs/ownership.md, "Ownership moves").
    let mut trio = Trio::start(TrioOptions { durability: "sync", handoff_after_ms: 3_600_000, ..Default::default() });

    let mut md = String::new();
    writeln!(md, "### {} store, {}", if a.s3 { "S3" } else { "Local" }, started.format("%Y-%m-%d %H:%M"))?;
    writeln!(md)?;
    writeln!(
        md,
        "Three `slatefs serve` (durability `sync`, `handoff_after_ms` = 1 h so that no owner moves during a section) on {store}; `owner` is the catalog owner, `node-a` and `node-b` catalog readers. Each client is {} connections with one request in flight each. Load average at start: {load_start}.",
        a.inflight
    )?;
    writeln!(md)?;
    let on = |s: &str| sections.contains(&s);
    if on("hop") {
        md.push_str(&hop::hop_section(&a, &rt, &trio)?);
    }
    if on("two") {
        md.push_str(&hop::two_section(&a, &rt, &trio)?);
    }
    let latency = if on("latency") { latency::section(&a, &rt, &trio)? } else { String::new() };
    // Run last (it kills and restarts servers), printed in its place.
    if on("failover") {
        md.push_str(&failover::section(&a, &rt, &mut trio)?);
    }
    md.push_str(&latency);
    let claims = trio.all_logs().matches("taking ownership of dataset").count();
    writeln!(
        md,
        "Load average at the end: {}; {:.0} s in all. In the servers' logs: {claims} ownership claims (one per dataset at its first use, one per failover round), {} lines about fencing.",
        loadavg(),
        t0.elapsed().as_secs_f64(),
        trio.fencing_lines().len()
    )?;
    writeln!(md)?;
    println!("{md}");
    if let Some(out) = &a.out {
        std::fs::write(out, &md)?;
    }
    // Every process first: the catalog owner's directory holds the store, and removing it
    // (slow on a disk that discards) must not happen under servers still using it.
    for s in trio.servers.iter_mut() {
        s.kill9();
    }
    log("removing the store");
    drop(trio);
    Ok(())
}

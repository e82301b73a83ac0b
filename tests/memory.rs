//! The memory bound of docs/memory.md: a real `slatefs serve` in `async` mode (writes are
//! acknowledged from memory, the case that buffers most), two datasets written at once by real
//! NFSv3 clients faster than the store takes them, then read back. The server's peak RSS
//! (VmHWM) must stay within its configured caches, its record memory, one write buffer per
//! busy dataset and the documented base.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;

use server::{Server, ServerOptions};

const MEMORY_CACHE_MIB: u64 = 32;
const WRITE_BUFFER_MIB: u64 = 32;
/// `[nfs] record_memory`'s default.
const RECORD_MEMORY_MIB: u64 = slatefs::config::DEFAULT_RECORD_MEMORY_BYTES >> 20;
/// What docs/memory.md gives for everything else (code, runtime, SlateDB's compaction and
/// manifests, connections): measured at 235-250 MiB under nfsbench's workloads.
const BASE_MIB: u64 = 256;
const FILE_BYTES: usize = 160 << 20;
const WRITE: usize = 1 << 20;

fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

async fn write_file(port: u16, export: String, name: &'static [u8], seed: u64) {
    let mut c = nfs::Client::mount(port, &export).await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, name, 0o644).await.unwrap();
    let data = nfs::pattern(seed, FILE_BYTES);
    for (i, part) in data.chunks(WRITE).enumerate() {
        c.write_unstable(&f, (i * WRITE) as u64, part).await.unwrap();
    }
    c.commit(&f).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn busy_datasets_stay_within_the_documented_memory_bound() {
    let server = Server::start_with(ServerOptions {
        durability: Some("async".into()),
        storage_keys: Some(format!(
            "memory_cache_size = \"{MEMORY_CACHE_MIB}MiB\"\nwrite_buffer_size = \"{WRITE_BUFFER_MIB}MiB\""
        )),
        ..Default::default()
    });
    for name in ["a", "b"] {
        let out = server.cli(&["dataset", "--admin", &server.admin, "create", name]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Two writers per dataset, each on its own connection.
    let mut writers = Vec::new();
    for (i, (export, name)) in
        [("/a", b"one" as &[u8]), ("/a", b"two"), ("/b", b"one"), ("/b", b"two")].into_iter().enumerate()
    {
        writers.push(tokio::spawn(write_file(server.nfs_port, export.to_string(), name, i as u64)));
    }
    for w in writers {
        w.await.unwrap();
    }
    // Reading back goes through the block cache and read-ahead; it must hold what was written.
    let mut c = nfs::Client::mount(server.nfs_port, "/a").await.unwrap();
    let root = c.root.clone();
    let f = c.lookup(&root, b"two").await.unwrap();
    let back = c.read_all(&f).await.unwrap();
    assert!(back == nfs::pattern(1, FILE_BYTES), "file a/two read back different bytes");

    let peak = peak_rss_mib(server.pid());
    let bound = MEMORY_CACHE_MIB + RECORD_MEMORY_MIB + 2 * WRITE_BUFFER_MIB + BASE_MIB;
    eprintln!("peak RSS {peak} MiB; bound {bound} MiB");
    assert!(
        peak <= bound,
        "peak RSS {peak} MiB over the documented bound of {bound} MiB \
         (caches {MEMORY_CACHE_MIB} + records {RECORD_MEMORY_MIB} + 2 x {WRITE_BUFFER_MIB} + {BASE_MIB})"
    );
}

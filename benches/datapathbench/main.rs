//! The candidates of docs/data-path.md, measured below NFS: what a sequential write of file
//! data costs in time, bytes uploaded and requests, on a local store and on the tests' S3
//! server, for each way of storing it.
//!
//! Variants (`--variants`):
//! - `current`: the engine as it is (slatefs::fs over one SlateDB with its WAL, today's settings);
//! - `l0-256m`: the same with 256 MiB memtables (fewer, larger L0 tables);
//! - `trivial-move`: `current` plus SlateDB's trivial moves (a compaction of tables whose key
//!   ranges do not overlap only rewrites the manifest);
//! - `no-wal`: the engine on a SlateDB without WAL, so a durable write is a memtable flush to
//!   an L0 table (candidate 2's data database), with trivial moves;
//! - `segments`: candidate 1's floor: the writes in flight are gathered into one immutable
//!   object per group (one PUT), and a pointer record per group is made durable in a SlateDB
//!   with its WAL.
//!
//! Every variant writes `--mib` MiB in 1 MiB writes, 16 in flight, each acknowledged only once
//! durable (`sync`), then waits `--settle` seconds for compaction and closes. Requests and
//! bytes are the store's own counters (the accounting layer under SlateDB); on S3 the S3
//! server's counter is printed too.

#[path = "../nfsbench/client.rs"]
#[allow(dead_code)]
mod client;
#[path = "../nfsbench/s3.rs"]
#[allow(dead_code)]
mod s3;
#[path = "../nfsbench/servers.rs"]
#[allow(dead_code)]
mod servers;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use object_store::{ObjectStoreExt, PutPayload};
use slatefs::config::{Config, DurabilityMode};
use slatefs::fs::perm::Caller;
use slatefs::fs::codec::Kind;
use slatefs::fs::{Filesystem, FsOptions, NewNode};
use slatefs::store::Store;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, Mutex};

#[derive(Parser)]
#[command(about = "Sequential-write cost of each data-path candidate (docs/data-path.md)")]
struct Args {
    #[arg(long, default_value = "current,l0-256m,trivial-move,no-wal,segments")]
    variants: String,
    /// local, s3 or both (comma-separated).
    #[arg(long, default_value = "local,s3")]
    stores: String,
    /// MiB written per variant.
    #[arg(long, default_value_t = 1024)]
    mib: u64,
    /// Writes in flight.
    #[arg(long, default_value_t = 16)]
    inflight: usize,
    /// Seconds to let compaction run after the write before closing.
    #[arg(long, default_value_t = 20)]
    settle: u64,
    #[arg(long, default_value = "target/release/examples/s3_test_server")]
    s3_server: PathBuf,
    /// Work directory (stores). Default /var/tmp/datapathbench-PID.
    #[arg(long)]
    work: Option<PathBuf>,
    /// `[storage] compression` of the store (lz4, zstd, snappy, none; comma-separated to run each).
    #[arg(long, default_value = "lz4")]
    compression: String,
    /// What the writes hold: `random` (incompressible) or `json` (log lines, about 3x with lz4).
    #[arg(long, default_value = "random")]
    data: String,
    #[arg(long, hide = true)]
    bench: bool,
}

/// 1 MiB of what `--data` names.
fn write_buffer(data: &str) -> Result<Vec<u8>> {
    let mut i = 7u64;
    let mut next = move || {
        i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        i
    };
    Ok(match data {
        "random" => (0..1 << 17).flat_map(|_| next().to_le_bytes()).collect(),
        "json" => {
            let mut out = Vec::with_capacity((1 << 20) + 256);
            while out.len() < 1 << 20 {
                let i = next();
                out.extend_from_slice(
                    format!(
                        "{{\"ts\":\"2026-12-06T08:{:02}:{:02}.{:03}Z\",\"level\":\"{}\",\"request_id\":\"{i:016x}\",\"latency_ms\":{}}}\n",
                        (i >> 8) % 60,
                        (i >> 16) % 60,
                        (i >> 24) % 1000,
                        ["info", "warn", "debug"][(i >> 40) as usize % 3],
                        (i >> 32) % 900
                    )
                    .as_bytes(),
                );
            }
            out.truncate(1 << 20);
            out
        }
        other => bail!("unknown --data {other} (random or json)"),
    })
}

fn log(msg: &str) {
    eprintln!("[datapathbench {}] {msg}", chrono::Local::now().format("%H:%M:%S"));
}

fn dir_bytes(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            n += if md.is_dir() { dir_bytes(&e.path()) } else { md.len() };
        }
    }
    n
}

struct Figures {
    mbps: f64,
    up: u64,
    down: u64,
    requests: u64,
    puts: u64,
    held: u64,
    server: Option<String>,
}

fn settings_for(variant: &str, local: bool) -> Result<slatedb::config::Settings> {
    let mut s = slatefs::store::dataset_settings(Duration::from_millis(100), local);
    let trivial = |s: &mut slatedb::config::Settings| {
        if let Some(c) = s.compactor_options.as_mut() {
            c.enable_trivial_move = true;
        }
    };
    match variant {
        "current" | "segments" => {}
        "l0-256m" => {
            s.l0_sst_size_bytes = 256 << 20;
            s.max_unflushed_bytes = 512 << 20;
        }
        "trivial-move" => trivial(&mut s),
        "no-wal" => {
            s.wal_enabled = false;
            trivial(&mut s);
        }
        other => bail!("unknown variant {other}"),
    }
    Ok(s)
}

/// The engine's own write path: `inflight` tasks writing 1 MiB each at the next offset.
async fn write_through_engine(fs: Arc<Filesystem>, total: u64, inflight: usize, data: &str) -> Result<()> {
    let caller = Caller::root();
    let file = fs.create(&caller, slatefs::fs::ROOT_INO, b"big", NewNode::new(Kind::File, 0o644)).await.context("create")?;
    let ino = file.ino;
    let next = Arc::new(AtomicU64::new(0));
    let buf: Arc<Vec<u8>> = Arc::new(write_buffer(data)?);
    let mut tasks = Vec::new();
    for _ in 0..inflight {
        let (fs, next, buf, caller) = (fs.clone(), next.clone(), buf.clone(), caller.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let off = next.fetch_add(1 << 20, Ordering::Relaxed);
                if off >= total {
                    return Ok::<_, anyhow::Error>(());
                }
                fs.write(&caller, ino, off, &buf).await.map_err(|e| anyhow::anyhow!("write at {off}: {e:?}"))?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    fs.flush().await.map_err(|e| anyhow::anyhow!("flush: {e:?}"))?;
    Ok(())
}

/// Candidate 1's floor: writers hand their bytes to a group; one flusher turns each group into
/// one object and one durable pointer record, then acknowledges every writer of the group.
async fn write_segments(store: &Store, db: slatedb::Db, total: u64, inflight: usize) -> Result<()> {
    type Pending = Vec<(Vec<u8>, oneshot::Sender<()>)>;
    let pending: Arc<Mutex<Pending>> = Arc::new(Mutex::new(Vec::new()));
    let wake = Arc::new(tokio::sync::Notify::new());
    let done = Arc::new(AtomicU64::new(0));
    let flusher = {
        let (pending, wake, done, os, db) = (pending.clone(), wake.clone(), done.clone(), store.object_store().clone(), db.clone());
        let root = store.path("segments");
        tokio::spawn(async move {
            let mut seq = 0u64;
            while done.load(Ordering::Acquire) < total {
                let group: Pending = std::mem::take(&mut *pending.lock().await);
                if group.is_empty() {
                    wake.notified().await;
                    continue;
                }
                let mut body = Vec::with_capacity(group.iter().map(|g| g.0.len()).sum());
                for (b, _) in &group {
                    body.extend_from_slice(b);
                }
                seq += 1;
                let len = body.len() as u64;
                os.put(&root.clone().join(format!("{seq:020}")), PutPayload::from(Bytes::from(body))).await?;
                let pointer = format!("segment {seq} {len}");
                db.put(format!("ptr/{seq:020}").as_bytes(), pointer.as_bytes()).await?;
                db.flush().await?;
                done.fetch_add(len, Ordering::AcqRel);
                for (_, ack) in group {
                    let _ = ack.send(());
                }
            }
            Ok::<_, anyhow::Error>(())
        })
    };
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..inflight {
        let (pending, wake, next) = (pending.clone(), wake.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let off = next.fetch_add(1 << 20, Ordering::Relaxed);
                if off >= total {
                    return;
                }
                let (tx, rx) = oneshot::channel();
                pending.lock().await.push((vec![(off >> 20) as u8; 1 << 20], tx));
                wake.notify_one();
                let _ = rx.await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    flusher.await??;
    Ok(())
}

async fn run(variant: &str, store: &Store, args: &Args, held_dir: Option<&Path>, s3: Option<&s3::S3Server>) -> Result<Figures> {
    let local = store.is_local();
    let settings = settings_for(variant, local)?;
    let path = store.path(&format!("bench/{variant}"));
    let before = store.request_stats();
    let server_before = match s3 {
        Some(s) => Some(s.counts()?),
        None => None,
    };
    let db = store.open_db(&path, settings).await?;
    let total = args.mib << 20;
    let t = Instant::now();
    if variant == "segments" {
        write_segments(store, db.clone(), total, args.inflight).await?;
    } else {
        let fs = Filesystem::open(db.clone(), FsOptions { durability: DurabilityMode::Sync, ..FsOptions::default() })
            .await
            .map_err(|e| anyhow::anyhow!("open: {e:?}"))?;
        write_through_engine(fs, total, args.inflight, &args.data).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    db.close().await?;
    let after = store.request_stats();
    let held = match (held_dir, s3) {
        (Some(d), _) => dir_bytes(&d.join("bench").join(variant)) + dir_bytes(&d.join("segments")),
        (None, Some(s)) => dir_bytes(&s.objects_dir()),
        _ => 0,
    };
    let server = match (s3, server_before) {
        (Some(s), Some(b)) => Some(s.counts()?.since(&b).line()),
        _ => None,
    };
    Ok(Figures {
        mbps: total as f64 / 1e6 / secs,
        up: after.bytes_up - before.bytes_up,
        down: after.bytes_down - before.bytes_down,
        requests: after.requests() - before.requests(),
        puts: after.put - before.put,
        held,
        server,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let work = args.work.clone().unwrap_or_else(|| PathBuf::from(format!("/var/tmp/datapathbench-{}", std::process::id())));
    std::fs::create_dir_all(&work)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let variants: Vec<&str> = args.variants.split(',').map(str::trim).filter(|v| !v.is_empty()).collect();
    let mut rows = Vec::new();
    write_buffer(&args.data)?;
    let codecs: Vec<&str> = args.compression.split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
    let runs: Vec<(&str, String)> =
        variants.iter().flat_map(|v| codecs.iter().map(move |c| (*v, c.to_string()))).collect();
    for kind in args.stores.split(',').map(str::trim) {
        for (v, codec) in &runs {
            let label = if codecs.len() > 1 { format!("{v} {codec}") } else { v.to_string() };
            let v = &label;
            let variant = label.split(' ').next().unwrap_or_default();
            let dir = work.join(format!("{kind}-{}", label.replace(' ', "-")));
            std::fs::create_dir_all(&dir)?;
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            log(&format!("{kind} {v}: start (load {})", load.trim()));
            let result = match kind {
                "local" => {
                    let conf = dir.join("config.toml");
                    std::fs::write(&conf, format!("[storage]\nurl = \"file://{}\"\n", dir.join("store").display()))?;
                    let mut cfg = Config::load(Some(&conf))?;
                    cfg.storage.compression = Some(codec.clone());
                    let store = Store::open(&cfg.storage)?;
                    rt.block_on(run(variant, &store, &args, Some(&dir.join("store")), None))
                }
                "s3" => {
                    let server = s3::start(&args.s3_server, &dir.join("s3"))?;
                    let conf = dir.join("config.toml");
                    std::fs::write(&conf, server.slatefs_storage(&dir, "bench", 0.0)?.replace("cache_size = \"0MiB\"\n", ""))?;
                    let mut cfg = Config::load(Some(&conf))?;
                    cfg.storage.cache_dir = None;
                    cfg.storage.compression = Some(codec.clone());
                    let store = Store::open(&cfg.storage)?;
                    rt.block_on(run(variant, &store, &args, None, Some(&server)))
                }
                other => bail!("unknown store kind {other}"),
            };
            match result {
                Ok(f) => {
                    log(&format!("{kind} {v}: {:.0} MB/s, up {} MB, {} requests", f.mbps, f.up / 1_000_000, f.requests));
                    rows.push((kind.to_string(), v.to_string(), f));
                }
                Err(e) => log(&format!("{kind} {v}: failed: {e:#}")),
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    let written = (args.mib << 20) as f64;
    println!(
        "\n{} MiB of {} data in 1 MiB writes, {} in flight, each durable before its reply; compression {}; {} s of compaction after; load at end: {}\n",
        args.mib,
        args.data,
        args.inflight,
        args.compression,
        args.settle,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    println!("| store | variant | MB/s | uploaded (× written) | downloaded MB | requests per MiB | PUTs | held at the end (× written) |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (kind, v, f) in &rows {
        println!(
            "| {kind} | {v} | {:.0} | {:.0} MB ({:.2}×) | {:.0} | {:.3} | {} | {:.0} MB ({:.2}×) |",
            f.mbps,
            f.up as f64 / 1e6,
            f.up as f64 / written,
            f.down as f64 / 1e6,
            f.requests as f64 / args.mib as f64,
            f.puts,
            f.held as f64 / 1e6,
            f.held as f64 / written
        );
    }
    for (kind, v, f) in &rows {
        if let Some(line) = &f.server {
            println!("\nS3 server's count, {kind} {v}: {line}");
        }
    }
    Ok(())
}

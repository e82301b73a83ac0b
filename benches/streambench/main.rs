//! Streaming reads of data that is not in memory, memory held, and space held: slatefs on a
//! local store against nfs-ganesha and the disk itself.
//!
//! For each target: write `--files` files of `--file-mib` each (16 in flight), stop the
//! server, drop the kernel's page cache, start it again, and read every file sequentially:
//! first one stream (the files one after another, `--stream-inflight` READs in flight), then,
//! after another restart and drop, one stream per file at once. Prints MB/s, the server's peak
//! RSS in each phase and the bytes its store holds on disk. Needs root (drop_caches); ganesha
//! only in the private namespace scripts/bench.sh sets up (`scripts/bench.sh stream`).

#[path = "../nfsbench/client.rs"]
mod client;
#[path = "../nfsbench/servers.rs"]
mod servers;

use anyhow::{bail, Context, Result};
use clap::Parser;
use client::{Conn, Endpoint};
use nfs3_types::nfs3::{nfs_fh3, stable_how};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Cold sequential reads, memory and space: slatefs against nfs-ganesha and the disk")]
struct Args {
    /// Comma-separated: disk, slatefs-sync, slatefs-async, ganesha.
    #[arg(long, default_value = "disk,slatefs-sync,ganesha")]
    targets: String,
    /// Files written and read back.
    #[arg(long, default_value_t = 16)]
    files: usize,
    /// Size of each file, MiB.
    #[arg(long, default_value_t = 64)]
    file_mib: u64,
    /// READ and WRITE size, KiB (capped by the server's rtmax/wtmax).
    #[arg(long, default_value_t = 1024)]
    req_kib: u64,
    /// READs in flight in the single-stream phase.
    #[arg(long, default_value_t = 1)]
    stream_inflight: usize,
    #[arg(long, default_value = "target/release/slatefs")]
    slatefs: String,
    #[arg(long, default_value = "ganesha.nfsd")]
    ganesha: String,
    /// A slatefs config file to start slatefs with (its `[storage]` url is overridden).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Work directory, on the disk being measured. Default /var/tmp/streambench-PID.
    #[arg(long)]
    work: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn log(msg: &str) {
    eprintln!("[streambench {}] {msg}", chrono::Local::now().format("%H:%M:%S"));
}

fn drop_page_cache() -> Result<()> {
    unsafe { libc::sync() };
    std::fs::write("/proc/sys/vm/drop_caches", "3").context("drop the page cache (needs root)")
}

fn dir_bytes(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                n += dir_bytes(&e.path());
            } else {
                use std::os::unix::fs::MetadataExt;
                n += md.blocks() * 512;
            }
        }
    }
    n
}

/// Peak resident set (VmHWM) of a process.
fn peak_rss(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

struct Row {
    target: String,
    write: f64,
    one_stream: f64,
    many_streams: f64,
    rss_mib: [f64; 3],
    store_mib: f64,
}

/// A server that can be stopped and started again on the same data.
enum Server {
    Slatefs { bin: PathBuf, dir: PathBuf, mode: String, config: Option<PathBuf>, s: Option<servers::Slatefs> },
    Ganesha { bin: PathBuf, dir: PathBuf, g: Option<servers::Ganesha> },
}

impl Server {
    fn start(&mut self) -> Result<(Endpoint, u32)> {
        match self {
            Server::Slatefs { bin, dir, mode, config, s } => {
                let started = match config {
                    Some(c) => {
                        let body = std::fs::read_to_string(&*c)?;
                        let url = format!("file://{}", dir.join("store").display());
                        servers::start_slatefs_on(bin, dir, mode, Some((&url, &body)))?
                    }
                    None => servers::start_slatefs(bin, dir, mode)?,
                };
                let out = (started.ep.clone(), started.proc.pid());
                *s = Some(started);
                Ok(out)
            }
            Server::Ganesha { bin, dir, g } => {
                let started = servers::start_ganesha(bin, dir)?;
                let out = (started.ep.clone(), started.proc.pid());
                *g = Some(started);
                Ok(out)
            }
        }
    }

    fn stop(&mut self) {
        match self {
            Server::Slatefs { s, .. } => drop(s.take()),
            Server::Ganesha { g, .. } => drop(g.take()),
        }
    }

    fn store_dir(&self) -> PathBuf {
        match self {
            Server::Slatefs { dir, .. } => dir.join("store"),
            Server::Ganesha { dir, .. } => dir.join("export"),
        }
    }
}

async fn files(c: &mut Conn, n: usize, create: bool) -> Result<Vec<nfs_fh3>> {
    let root = c.root_nfs_fh3();
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("stream-{i:02}");
        out.push(if create { client::create(c, &root, &name, false).await? } else { client::lookup(c, &root, &name).await?.0 });
    }
    Ok(out)
}

async fn write_all(ep: &Endpoint, a: &Args) -> Result<f64> {
    let mut c = client::connect_wait(ep, Duration::from_secs(30)).await?;
    let fhs = Arc::new(files(&mut c, a.files, true).await?);
    let size = a.file_mib << 20;
    let req = a.req_kib << 10;
    let buf: Arc<Vec<u8>> = Arc::new((0..req).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect());
    let t = Instant::now();
    let conns = client::pool(ep, 16).await?;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let total = size * a.files as u64;
    client::par(conns, |mut cn, _| {
        let (next, buf, fhs) = (next.clone(), buf.clone(), fhs.clone());
        async move {
            loop {
                let at = next.fetch_add(req, std::sync::atomic::Ordering::Relaxed);
                if at >= total {
                    return Ok(cn);
                }
                let (file, off) = ((at / size) as usize, at % size);
                client::write(&mut cn, &fhs[file], off, &buf[..req.min(size - off) as usize], stable_how::UNSTABLE).await?;
            }
        }
    })
    .await?;
    for f in fhs.iter() {
        client::commit(&mut c, f).await?;
    }
    Ok(total as f64 / 1e6 / t.elapsed().as_secs_f64())
}

/// Reads file `fh` from start to end with `inflight` READs outstanding on `conns`.
async fn read_file(conns: Vec<Conn>, fh: nfs_fh3, size: u64, req: u64) -> Result<Vec<Conn>> {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    client::par(conns, |mut cn, _| {
        let (next, fh) = (next.clone(), fh.clone());
        async move {
            loop {
                let off = next.fetch_add(req, std::sync::atomic::Ordering::Relaxed);
                if off >= size {
                    return Ok(cn);
                }
                client::read(&mut cn, &fh, off, req.min(size - off) as u32).await?;
            }
        }
    })
    .await
}

async fn read_one_stream(ep: &Endpoint, a: &Args) -> Result<f64> {
    let mut c = client::connect_wait(ep, Duration::from_secs(30)).await?;
    let fhs = files(&mut c, a.files, false).await?;
    let (size, req) = (a.file_mib << 20, a.req_kib << 10);
    let mut conns = client::pool(ep, a.stream_inflight).await?;
    let t = Instant::now();
    for fh in fhs {
        conns = read_file(conns, fh, size, req).await?;
    }
    Ok((size * a.files as u64) as f64 / 1e6 / t.elapsed().as_secs_f64())
}

async fn read_many_streams(ep: &Endpoint, a: &Args) -> Result<f64> {
    let mut c = client::connect_wait(ep, Duration::from_secs(30)).await?;
    let fhs = files(&mut c, a.files, false).await?;
    let (size, req) = (a.file_mib << 20, a.req_kib << 10);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for fh in fhs {
        let conns = client::pool(ep, 1).await?;
        tasks.push(tokio::spawn(read_file(conns, fh, size, req)));
    }
    for t in tasks {
        t.await??;
    }
    Ok((size * a.files as u64) as f64 / 1e6 / t.elapsed().as_secs_f64())
}

fn run_server(rt: &tokio::runtime::Runtime, target: &str, mut server: Server, a: &Args) -> Result<Row> {
    let (ep, pid) = server.start()?;
    let write = rt.block_on(write_all(&ep, a))?;
    let rss_write = peak_rss(pid);
    log(&format!("{target}: wrote at {write:.0} MB/s, peak RSS {} MiB", rss_write >> 20));
    server.stop();
    drop_page_cache()?;
    let (ep, pid) = server.start()?;
    let one = rt.block_on(read_one_stream(&ep, a))?;
    let rss_one = peak_rss(pid);
    log(&format!("{target}: one stream {one:.0} MB/s, peak RSS {} MiB", rss_one >> 20));
    server.stop();
    drop_page_cache()?;
    let (ep, pid) = server.start()?;
    let many = rt.block_on(read_many_streams(&ep, a))?;
    let rss_many = peak_rss(pid);
    log(&format!("{target}: {} streams {many:.0} MB/s, peak RSS {} MiB", a.files, rss_many >> 20));
    server.stop();
    let store = dir_bytes(&server.store_dir()) as f64 / 1048576.0;
    let mib = |b: u64| b as f64 / 1048576.0;
    Ok(Row {
        target: target.into(),
        write,
        one_stream: one,
        many_streams: many,
        rss_mib: [mib(rss_write), mib(rss_one), mib(rss_many)],
        store_mib: store,
    })
}

/// The disk itself: the same files written and read with plain file I/O.
fn run_disk(dir: &Path, a: &Args) -> Result<Row> {
    use std::io::{Read, Write};
    std::fs::create_dir_all(dir)?;
    let (size, req) = ((a.file_mib << 20) as usize, (a.req_kib << 10) as usize);
    let buf: Vec<u8> = (0..req).map(|i| (i as u64).wrapping_mul(2654435761) as u8).collect();
    let t = Instant::now();
    for i in 0..a.files {
        let mut f = std::fs::File::create(dir.join(format!("stream-{i:02}")))?;
        for _ in 0..size / req {
            f.write_all(&buf)?;
        }
        f.sync_all()?;
    }
    let total = (size * a.files) as f64 / 1e6;
    let write = total / t.elapsed().as_secs_f64();
    drop_page_cache()?;
    let read = |i: usize| -> Result<()> {
        let mut f = std::fs::File::open(dir.join(format!("stream-{i:02}")))?;
        let mut b = vec![0u8; req];
        while f.read(&mut b)? > 0 {}
        Ok(())
    };
    let t = Instant::now();
    for i in 0..a.files {
        read(i)?;
    }
    let one = total / t.elapsed().as_secs_f64();
    drop_page_cache()?;
    let t = Instant::now();
    std::thread::scope(|s| -> Result<()> {
        let hs: Vec<_> = (0..a.files).map(|i| s.spawn(move || read(i))).collect();
        for h in hs {
            h.join().map_err(|_| anyhow::anyhow!("reader thread panicked"))??;
        }
        Ok(())
    })?;
    let many = total / t.elapsed().as_secs_f64();
    Ok(Row { target: "disk".into(), write, one_stream: one, many_streams: many, rss_mib: [0.0; 3], store_mib: dir_bytes(dir) as f64 / 1048576.0 })
}

fn main() -> Result<()> {
    let a = Args::parse();
    let work = a.work.clone().unwrap_or_else(|| PathBuf::from(format!("/var/tmp/streambench-{}", std::process::id())));
    std::fs::create_dir_all(&work)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    log(&format!("load at start: {}", load.trim()));
    let mut rows = Vec::new();
    for t in a.targets.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let dir = work.join(t);
        let row = match t {
            "disk" => run_disk(&dir, &a),
            "slatefs-sync" | "slatefs-async" => {
                let bin = servers::which(&a.slatefs).context("slatefs binary")?;
                let mode = t.trim_start_matches("slatefs-").to_string();
                run_server(&rt, t, Server::Slatefs { bin, dir: dir.clone(), mode, config: a.config.clone(), s: None }, &a)
            }
            "ganesha" => {
                let Some(bin) = servers::which(&a.ganesha) else {
                    log("ganesha: not installed, skipped");
                    continue;
                };
                run_server(&rt, t, Server::Ganesha { bin, dir: dir.clone(), g: None }, &a)
            }
            other => bail!("unknown target {other}"),
        };
        match row {
            Ok(r) => rows.push(r),
            Err(e) => log(&format!("{t}: failed: {e:#}")),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let total_mib = a.file_mib * a.files as u64;
    println!(
        "\n{} files × {} MiB ({} MiB), {} KiB requests; single stream with {} READ(s) in flight; load at end: {}",
        a.files,
        a.file_mib,
        total_mib,
        a.req_kib,
        a.stream_inflight,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    println!("\n| target | write MB/s | cold read, 1 stream MB/s | cold read, {} streams MB/s | peak RSS write / 1 / {} MiB | store on disk MiB (× data) |", a.files, a.files);
    println!("|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} | {:.0} ({:.2}×) |",
            r.target,
            r.write,
            r.one_stream,
            r.many_streams,
            r.rss_mib[0],
            r.rss_mib[1],
            r.rss_mib[2],
            r.store_mib,
            r.store_mib / total_mib as f64
        );
    }
    Ok(())
}

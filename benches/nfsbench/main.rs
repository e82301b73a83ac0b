//! nfsbench: slatefs against its peers over NFSv3 (the `nfs3_client` crate on 127.0.0.1), plus
//! snapshot/clone/CSI latency and idle memory of slatefs. Prints markdown tables; every figure is
//! measured in this run. Not a test: it asserts nothing about time.
//!
//!   cargo bench --bench nfsbench -- [--quick] [--stores local|s3|all] [--targets disk,slatefs-sync,…]
//!
//! The `-s3` targets run slatefs (sync, async) and ZeroFS on the tests' S3 server, started as a
//! process (`cargo build --release --example s3_test_server`), one fresh server per target; the
//! server counts every request it receives, and the tables give them per workload.
//!
//! nfs-ganesha needs rpcbind, so it only runs inside a private network + mount namespace:
//! `scripts/bench.sh` runs the whole benchmark (servers and client) in one.

mod client;
mod report;
mod s3;
mod servers;
mod slatefs_only;
mod workloads;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use report::{Cell, ReqRow, Report};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use workloads::{Params, ROWS};

const ALL_TARGETS: &[&str] =
    &["disk", "slatefs-sync", "slatefs-async", "ganesha", "zerofs", "slatefs-sync-s3", "slatefs-async-s3", "zerofs-s3"];

#[derive(Parser, Debug)]
#[command(about = "NFSv3 benchmark: slatefs against nfs-ganesha, ZeroFS and the disk")]
struct Args {
    /// About 10x smaller sizes everywhere (a smoke run).
    #[arg(long)]
    quick: bool,
    /// Comma-separated: disk, slatefs-sync, slatefs-async, ganesha, zerofs (local stores),
    /// slatefs-sync-s3, slatefs-async-s3, zerofs-s3 (on the tests' S3 server).
    #[arg(long, default_value = "disk,slatefs-sync,slatefs-async,ganesha,zerofs,slatefs-sync-s3,slatefs-async-s3,zerofs-s3")]
    targets: String,
    /// Which of --targets to run: local, s3 (the -s3 ones; also skips the snapshot and memory
    /// workloads, which use a local store) or all.
    #[arg(long, default_value = "all", value_parser = ["local", "s3", "all"])]
    stores: String,
    /// The tests' S3 server executable (`cargo build --release --example s3_test_server`).
    #[arg(long, default_value = "target/release/examples/s3_test_server")]
    s3_server: String,
    /// On-disk read cache of slatefs and of ZeroFS on S3, GiB each.
    #[arg(long, default_value_t = 2.0)]
    s3_cache_gib: f64,
    /// Work directory (stores, exports); on the disk being measured. Default /var/tmp/nfsbench-PID.
    #[arg(long)]
    work: Option<PathBuf>,
    /// Keep the work directory afterwards.
    #[arg(long)]
    keep: bool,
    #[arg(long, default_value = "target/release/slatefs")]
    slatefs: String,
    #[arg(long, default_value = "zerofs")]
    zerofs: String,
    #[arg(long, default_value = "ganesha.nfsd")]
    ganesha: String,
    /// Sequential file size in MiB (default 1024; --quick 100).
    #[arg(long)]
    file_mib: Option<u64>,
    #[arg(long, default_value_t = 1024)]
    seq_req_kib: u64,
    #[arg(long, default_value_t = 16)]
    seq_inflight: usize,
    #[arg(long, default_value_t = 32)]
    rand_inflight: usize,
    /// Seconds per random-I/O phase (default 10; --quick 2).
    #[arg(long)]
    rand_secs: Option<f64>,
    /// Seconds to wait after the sequential phases before the random writes, so that the
    /// compaction of the sequential file is not measured as part of them (default 0).
    #[arg(long, default_value_t = 0.0)]
    rand_settle_secs: f64,
    /// Files in the metadata workload (default 10000; --quick 1000).
    #[arg(long)]
    meta_files: Option<usize>,
    #[arg(long, default_value_t = 16)]
    meta_inflight: usize,
    /// Small files (default 5000; --quick 500).
    #[arg(long)]
    small_files: Option<usize>,
    #[arg(long, default_value_t = 50)]
    small_dirs: usize,
    #[arg(long, default_value_t = 4096)]
    small_size: usize,
    #[arg(long, default_value_t = 16)]
    small_inflight: usize,
    /// Dataset sizes for snapshot/clone latency, MiB (default 1,100,1024; --quick 1,10,100).
    #[arg(long)]
    snap_mib: Option<String>,
    /// Repetitions per snapshot/clone/CSI latency (the median is printed).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Seconds to wait after filling a dataset before timing its snapshots (0: at once, the
    /// snapshot then also pays for flushing what the fill left in memory).
    #[arg(long, default_value_t = 0.0)]
    snap_settle: f64,
    /// Open-dataset counts for the memory workload.
    #[arg(long, default_value = "1,10,100")]
    mem_counts: String,
    #[arg(long)]
    skip_snap: bool,
    #[arg(long)]
    skip_mem: bool,
    /// Extra `[storage]` config lines for the slatefs servers (local and S3 stores), e.g.
    /// `write_buffer_size = "64MiB"` (newline-separated).
    #[arg(long, default_value = "")]
    slatefs_storage: String,
    /// Also write the tables (markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn log(msg: &str) {
    eprintln!("[nfsbench {}] {msg}", chrono::Local::now().format("%H:%M:%S"));
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{:.0}", v)
    } else if v >= 10.0 {
        format!("{:.1}", v)
    } else {
        format!("{:.2}", v)
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    let _ = servers::SLATEFS_STORAGE_EXTRA.set(a.slatefs_storage.replace("\\n", "\n"));
    let q = a.quick;
    let p = Params {
        file_size: a.file_mib.unwrap_or(if q { 100 } else { 1024 }) << 20,
        seq_req: a.seq_req_kib << 10,
        seq_inflight: a.seq_inflight,
        rand_inflight: a.rand_inflight,
        rand_time: Duration::from_secs_f64(a.rand_secs.unwrap_or(if q { 2.0 } else { 10.0 })),
        rand_settle: Duration::from_secs_f64(a.rand_settle_secs),
        meta_files: a.meta_files.unwrap_or(if q { 1000 } else { 10_000 }),
        meta_inflight: a.meta_inflight,
        small_files: a.small_files.unwrap_or(if q { 500 } else { 5000 }),
        small_dirs: a.small_dirs,
        small_size: a.small_size,
        small_inflight: a.small_inflight,
    };
    let snap_mib: Vec<u64> = a
        .snap_mib
        .clone()
        .unwrap_or_else(|| if q { "1,10,100".into() } else { "1,100,1024".into() })
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .context("--snap-mib")?;
    let mem_counts: Vec<usize> = a.mem_counts.split(',').map(|s| s.trim().parse()).collect::<Result<_, _>>().context("--mem-counts")?;
    let mut targets: Vec<String> = a.targets.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    for t in &targets {
        if !ALL_TARGETS.contains(&t.as_str()) {
            bail!("unknown target {t}; known: {}", ALL_TARGETS.join(","));
        }
    }
    targets.retain(|t| match a.stores.as_str() {
        "local" => !t.ends_with("-s3"),
        "s3" => t.ends_with("-s3"),
        _ => true,
    });
    if targets.is_empty() {
        bail!("no target of --targets {} is in --stores {}", a.targets, a.stores);
    }
    let work = a.work.clone().unwrap_or_else(|| PathBuf::from(format!("/var/tmp/nfsbench-{}", std::process::id())));
    std::fs::create_dir_all(&work)?;
    let work = work.canonicalize()?;
    let slatefs_bin = servers::which(&a.slatefs).map(|p| p.canonicalize().unwrap_or(p));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    let started = chrono::Local::now();
    let mut rep = Report { md: String::new() };
    let mut results = report::Results::new();
    let mut reqs: BTreeMap<String, Vec<ReqRow>> = BTreeMap::new();
    let mut loads: Vec<(String, String)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // ---------------------------------------------------------------- workloads 1–4
    for t in &targets {
        let dir = work.join(t);
        let load = loadavg();
        log(&format!("=== {t} (load {load}) ==="));
        let r = if t.ends_with("-s3") {
            let mut rows = Vec::new();
            let r = run_s3_target(&a, &rt, t, &dir, &p, slatefs_bin.as_deref(), &mut notes, &mut rows);
            if !rows.is_empty() {
                reqs.insert(t.clone(), rows);
            }
            r
        } else {
            run_local_target(&a, &rt, t, &dir, &p, slatefs_bin.as_deref(), &mut notes)
        };
        let row = results.entry(t.clone()).or_default();
        match r {
            Ok(figs) => {
                for (k, v) in figs {
                    row.insert(k, Cell::Val(v));
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                log(&format!("{t}: FAILED: {msg}"));
                let short = msg.lines().next().unwrap_or("").to_string();
                let short = if short.starts_with("missing") { short } else { format!("failed: {short}") };
                notes.push(format!("{t}: {short}"));
                for (k, _) in ROWS {
                    row.entry(k).or_insert(Cell::Missing(if short.starts_with("missing") { "missing".into() } else { "failed".into() }));
                }
            }
        }
        loads.push((t.clone(), format!("{load} → {}", loadavg())));
        if !a.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    // ---------------------------------------------------------------- tables
    let (fs, fa) = (p.file_size >> 20, p.rand_time.as_secs_f64());
    rep.line(&format!("## Run {} ({})", started.format("%Y-%m-%d %H:%M"), if q { "--quick" } else { "full size" }));
    rep.line("");
    rep.line(&format!(
        "Sizes: sequential file {fs} MiB in {} KiB requests, {} in flight; random 4 KiB for {fa} s per phase, {} in flight; \
         metadata {} files in one directory, {} in flight; small files {} × {} B across {} directories, {} in flight.",
        p.seq_req >> 10, p.seq_inflight, p.rand_inflight, p.meta_files, p.meta_inflight, p.small_files, p.small_size, p.small_dirs, p.small_inflight
    ));
    if targets.iter().any(|t| t.ends_with("-s3")) {
        rep.line("");
        rep.line(&format!(
            "`-s3` columns: the tests' S3 server (s3s + s3s-fs over a directory on the same disk, one process on 127.0.0.1, \
             a fresh one per column); slatefs and ZeroFS each with a {} GiB on-disk read cache.",
            a.s3_cache_gib
        ));
    }
    rep.line("");
    report::workloads(&mut rep, &targets, &results);
    rep.line("Load average (1/5/15 min) before → after each column: ");
    for (t, l) in &loads {
        rep.line(&format!("- {t}: {l}"));
    }
    rep.line("");
    let missed = report::ratios(&mut rep, &targets, &results);
    report::requests(&mut rep, &targets, &reqs);

    // ---------------------------------------------------------------- workloads 5 and 6
    // Workloads 5 and 6 run on a local store: not part of an S3-only run.
    if a.stores != "s3" && (!a.skip_snap || !a.skip_mem) {
        match slatefs_bin.clone() {
            None => rep.line(&format!("Snapshot/CSI/memory: missing (no slatefs binary at {})", a.slatefs)),
            Some(bin) => {
                if !a.skip_snap {
                    log(&format!("=== snapshots and clones (load {}) ===", loadavg()));
                    match slatefs_only::snapshots(&rt, &bin, &work.join("snap"), &snap_mib, &p, a.reps, a.snap_settle) {
                        Ok(lines) => lines.iter().for_each(|l| rep.line(l)),
                        Err(e) => rep.line(&format!("Snapshot/clone/CSI workload failed: {e:#}")),
                    }
                    rep.line("");
                    if !a.keep {
                        let _ = std::fs::remove_dir_all(work.join("snap"));
                    }
                }
                if !a.skip_mem {
                    log(&format!("=== memory (load {}) ===", loadavg()));
                    match slatefs_only::memory(&rt, &bin, &work.join("mem"), &mem_counts) {
                        Ok(lines) => lines.iter().for_each(|l| rep.line(l)),
                        Err(e) => rep.line(&format!("Memory workload failed: {e:#}")),
                    }
                    rep.line("");
                    if !a.keep {
                        let _ = std::fs::remove_dir_all(work.join("mem"));
                    }
                }
            }
        }
    }

    rep.line("### Goals missed in workloads 1–4");
    rep.line("");
    if missed.is_empty() {
        rep.line("- none (of those with figures for both sides)");
    }
    for m in &missed {
        rep.line(&format!("- {m}"));
    }
    rep.line("");
    rep.line("### Notes from this run");
    rep.line("");
    for n in &notes {
        rep.line(&format!("- {n}"));
    }
    rep.line(&format!("- finished {} (load {})", chrono::Local::now().format("%H:%M:%S"), loadavg()));
    if let Some(out) = &a.out {
        std::fs::write(out, &rep.md)?;
    }
    if !a.keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}

/// An NFS server under test, whichever it is.
struct Running {
    proc: servers::Proc,
    ep: client::Endpoint,
    _rpcbind: Option<servers::Proc>,
}

/// Workloads 1–4 on the disk or on a server with a local store.
fn run_local_target(
    a: &Args,
    rt: &tokio::runtime::Runtime,
    t: &str,
    dir: &Path,
    p: &Params,
    slatefs: Option<&Path>,
    notes: &mut Vec<String>,
) -> Result<workloads::Figures> {
    let lg = |m: &str| log(&format!("{t}: {m}"));
    let mut s = match t {
        "disk" => return workloads::disk_all(dir, p, &lg),
        "slatefs-sync" | "slatefs-async" => {
            let bin = slatefs.ok_or_else(|| anyhow!("missing: no slatefs binary at {}", a.slatefs))?;
            let s = servers::start_slatefs(bin, dir, t.trim_start_matches("slatefs-"))?;
            Running { proc: s.proc, ep: s.ep, _rpcbind: None }
        }
        "ganesha" => {
            let bin = servers::which(&a.ganesha).ok_or_else(|| anyhow!("missing: {} not installed", a.ganesha))?;
            let g = servers::start_ganesha(&bin, dir).map_err(|e| anyhow!("missing: {e:#}"))?;
            Running { proc: g.proc, ep: g.ep, _rpcbind: Some(g._rpcbind) }
        }
        "zerofs" => {
            let bin = servers::which(&a.zerofs).ok_or_else(|| anyhow!("missing: {} not installed", a.zerofs))?;
            let z = servers::start_zerofs(&bin, dir).map_err(|e| anyhow!("missing: {e:#}"))?;
            Running { proc: z.proc, ep: z.ep, _rpcbind: None }
        }
        _ => unreachable!(),
    };
    let r = rt.block_on(workloads::nfs_all(&s.ep, p, &lg, &|_, _| {}));
    stop_server(t, &mut s.proc, notes);
    r.map_err(|e| anyhow!("{e:#}\n{}", s.proc.log_tail()))
}

/// Notes the server's RSS after the workloads, then stops it and notes how long that took.
fn stop_server(t: &str, proc: &mut servers::Proc, notes: &mut Vec<String>) {
    let rss = servers::rss_bytes(proc.pid()).unwrap_or(0);
    let peak = servers::peak_rss_bytes(proc.pid()).unwrap_or(0);
    notes.push(format!("{t}: server RSS after workloads 1–4: {} MiB (peak {} MiB)", rss >> 20, peak >> 20));
    let st = Instant::now();
    proc.stop();
    notes.push(format!("{t}: SIGTERM to exit took {:.1} s (20 s limit, then SIGKILL)", st.elapsed().as_secs_f64()));
}

/// Workloads 1–4 on slatefs or ZeroFS over a fresh S3 server, with the requests it received
/// during start-up, each row and shutdown in `rows`.
#[allow(clippy::too_many_arguments)]
fn run_s3_target(
    a: &Args,
    rt: &tokio::runtime::Runtime,
    t: &str,
    dir: &Path,
    p: &Params,
    slatefs: Option<&Path>,
    notes: &mut Vec<String>,
    rows: &mut Vec<ReqRow>,
) -> Result<workloads::Figures> {
    let lg = |m: &str| log(&format!("{t}: {m}"));
    let s3bin = servers::which(&a.s3_server).ok_or_else(|| anyhow!("missing: no S3 test server at {} (cargo build --release --example s3_test_server)", a.s3_server))?;
    let mut s3srv = s3::start(&s3bin, &dir.join("s3"))?;
    let base = s3srv.counts()?;
    let prefix = t;
    let mut proc = match t {
        "slatefs-sync-s3" | "slatefs-async-s3" => {
            let bin = slatefs.ok_or_else(|| anyhow!("missing: no slatefs binary at {}", a.slatefs))?;
            let url = format!("s3://{}/{prefix}", s3srv.bucket);
            let config = s3srv.slatefs_storage(dir, prefix, a.s3_cache_gib)?;
            let durability = t.trim_start_matches("slatefs-").trim_end_matches("-s3");
            let s = servers::start_slatefs_on(bin, dir, durability, Some((&url, &config)))?;
            Running { proc: s.proc, ep: s.ep, _rpcbind: None }
        }
        "zerofs-s3" => {
            let bin = servers::which(&a.zerofs).ok_or_else(|| anyhow!("missing: {} not installed", a.zerofs))?;
            let z = servers::start_zerofs_on(&bin, dir, &s3srv.zerofs_storage(prefix), a.s3_cache_gib)?;
            Running { proc: z.proc, ep: z.ep, _rpcbind: None }
        }
        _ => unreachable!(),
    };
    let up = s3srv.counts()?;
    lg(&format!("S3 during start-up: {}", up.since(&base).line()));
    rows.push(ReqRow { row: "start-up".into(), counts: up.since(&base), units: None });
    let last = RefCell::new(up);
    let marked = RefCell::new(Vec::new());
    let mark = |row: &'static str, units: f64| match s3srv.counts() {
        Ok(now) => {
            let d = now.since(&last.borrow());
            lg(&format!("S3 during {row}: {}", d.line()));
            marked.borrow_mut().push(ReqRow { row: row.into(), counts: d, units: Some(units) });
            *last.borrow_mut() = now;
        }
        Err(e) => lg(&format!("cannot read the S3 server's counts after {row}: {e:#}")),
    };
    let r = rt.block_on(workloads::nfs_all(&proc.ep, p, &lg, &mark));
    rows.extend(marked.into_inner());
    stop_server(t, &mut proc.proc, notes);
    let end = s3srv.counts()?;
    let down = end.since(&last.into_inner());
    lg(&format!("S3 during shutdown: {}", down.line()));
    rows.push(ReqRow { row: "shutdown".into(), counts: down, units: None });
    let (files, bytes) = du(&s3srv.objects_dir());
    notes.push(format!("{t}: {files} objects, {:.1} MB in the bucket at the end", bytes as f64 / 1e6));
    s3srv.stop();
    r.map_err(|e| anyhow!("{e:#}\n{}\nS3 server:\n{}", proc.proc.log_tail(), s3srv.proc.log_tail()))
}

/// Files and bytes under `dir` (s3s-fs keeps each object as a file, plus small metadata files).
fn du(dir: &Path) -> (u64, u64) {
    let (mut n, mut b) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => {
                    n += 1;
                    b += m.len();
                }
                Err(_) => {}
            }
        }
    }
    (n, b)
}

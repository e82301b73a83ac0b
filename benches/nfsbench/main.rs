//! nfsbench: slatefs against its peers over NFSv3 (the `nfs3_client` crate on 127.0.0.1), plus
//! snapshot/clone/CSI latency and idle memory of slatefs. Prints markdown tables; every figure is
//! measured in this run. Not a test: it asserts nothing about time.
//!
//!   cargo bench --bench nfsbench -- [--quick] [--targets disk,slatefs-sync,slatefs-async,ganesha,zerofs]
//!
//! nfs-ganesha needs rpcbind, so it only runs inside a private network + mount namespace:
//! `scripts/bench.sh` runs the whole benchmark (servers and client) in one.

mod client;
mod servers;
mod workloads;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use client::Endpoint;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use workloads::{Params, ROWS};

const ALL_TARGETS: &[&str] = &["disk", "slatefs-sync", "slatefs-async", "ganesha", "zerofs"];

#[derive(Parser, Debug)]
#[command(about = "NFSv3 benchmark: slatefs against nfs-ganesha, ZeroFS and the disk")]
struct Args {
    /// About 10x smaller sizes everywhere (a smoke run).
    #[arg(long)]
    quick: bool,
    /// Comma-separated: disk, slatefs-sync, slatefs-async, ganesha, zerofs.
    #[arg(long, default_value = "disk,slatefs-sync,slatefs-async,ganesha,zerofs")]
    targets: String,
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
    /// Also write the tables (markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

enum Cell {
    Val(f64),
    Missing(String),
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn run_cli(bin: &Path, args: &[&str]) -> Result<(Duration, String)> {
    let t = Instant::now();
    let out = Command::new(bin).args(args).output().with_context(|| format!("run {bin:?}"))?;
    let d = t.elapsed();
    if !out.status.success() {
        bail!("{} {}: {}{}", bin.display(), args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    Ok((d, String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn find_key(v: &serde_json::Value, key: &str) -> Option<String> {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(serde_json::Value::String(s)) = m.get(key) {
                return Some(s.clone());
            }
            m.values().find_map(|x| find_key(x, key))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

struct Report {
    md: String,
}

impl Report {
    fn line(&mut self, s: &str) {
        println!("{s}");
        self.md.push_str(s);
        self.md.push('\n');
    }
}

fn main() -> Result<()> {
    let a = Args::parse();
    let q = a.quick;
    let p = Params {
        file_size: a.file_mib.unwrap_or(if q { 100 } else { 1024 }) << 20,
        seq_req: a.seq_req_kib << 10,
        seq_inflight: a.seq_inflight,
        rand_inflight: a.rand_inflight,
        rand_time: Duration::from_secs_f64(a.rand_secs.unwrap_or(if q { 2.0 } else { 10.0 })),
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
    let targets: Vec<String> = a.targets.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    for t in &targets {
        if !ALL_TARGETS.contains(&t.as_str()) {
            bail!("unknown target {t}; known: {}", ALL_TARGETS.join(","));
        }
    }
    let work = a.work.clone().unwrap_or_else(|| PathBuf::from(format!("/var/tmp/nfsbench-{}", std::process::id())));
    std::fs::create_dir_all(&work)?;
    let work = work.canonicalize()?;
    let slatefs_bin = servers::which(&a.slatefs).map(|p| p.canonicalize().unwrap_or(p));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;

    let started = chrono::Local::now();
    let mut rep = Report { md: String::new() };
    let mut results: BTreeMap<String, BTreeMap<&'static str, Cell>> = BTreeMap::new();
    let mut loads: Vec<(String, String)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // ---------------------------------------------------------------- workloads 1–4
    for t in &targets {
        let dir = work.join(t);
        let load = loadavg();
        log(&format!("=== {t} (load {load}) ==="));
        let lg = |m: &str| log(&format!("{t}: {m}"));
        let r: Result<workloads::Figures> = (|| match t.as_str() {
            "disk" => workloads::disk_all(&dir, &p, &lg),
            "slatefs-sync" | "slatefs-async" => {
                let bin = slatefs_bin.clone().ok_or_else(|| anyhow!("missing: no slatefs binary at {}", a.slatefs))?;
                let mut s = servers::start_slatefs(&bin, &dir, t.trim_start_matches("slatefs-"))?;
                let r = rt.block_on(workloads::nfs_all(&s.ep, &p, &lg));
                let rss = servers::rss_bytes(s.proc.pid()).unwrap_or(0);
                notes.push(format!("{t}: server RSS after workloads 1–4: {} MiB", rss >> 20));
                let st = Instant::now();
                s.proc.stop();
                notes.push(format!("{t}: SIGTERM to exit took {:.1} s (20 s limit, then SIGKILL)", st.elapsed().as_secs_f64()));
                r.map_err(|e| anyhow!("{e:#}\n{}", s.proc.log_tail()))
            }
            "ganesha" => {
                let bin = servers::which(&a.ganesha).ok_or_else(|| anyhow!("missing: {} not installed", a.ganesha))?;
                let mut g = servers::start_ganesha(&bin, &dir).map_err(|e| anyhow!("missing: {e:#}"))?;
                let r = rt.block_on(workloads::nfs_all(&g.ep, &p, &lg));
                let rss = servers::rss_bytes(g.proc.pid()).unwrap_or(0);
                notes.push(format!("{t}: server RSS after workloads 1–4: {} MiB", rss >> 20));
                g.proc.stop();
                r.map_err(|e| anyhow!("{e:#}\n{}", g.proc.log_tail()))
            }
            "zerofs" => {
                let bin = servers::which(&a.zerofs).ok_or_else(|| anyhow!("missing: {} not installed", a.zerofs))?;
                let mut z = servers::start_zerofs(&bin, &dir).map_err(|e| anyhow!("missing: {e:#}"))?;
                let r = rt.block_on(workloads::nfs_all(&z.ep, &p, &lg));
                let rss = servers::rss_bytes(z.proc.pid()).unwrap_or(0);
                notes.push(format!("{t}: server RSS after workloads 1–4: {} MiB", rss >> 20));
                z.proc.stop();
                r.map_err(|e| anyhow!("{e:#}\n{}", z.proc.log_tail()))
            }
            _ => unreachable!(),
        })();
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
    rep.line("");
    rep.line("### Workloads 1–4 (higher is better)");
    rep.line("");
    let mut hdr = "| workload | unit |".to_string();
    let mut sep = "|---|---|".to_string();
    for t in &targets {
        write!(hdr, " {t} |").unwrap();
        sep.push_str("---:|");
    }
    rep.line(&hdr);
    rep.line(&sep);
    let val = |t: &str, k: &str| -> Option<f64> {
        match results.get(t).and_then(|r| r.get(k)) {
            Some(Cell::Val(v)) => Some(*v),
            _ => None,
        }
    };
    for (k, unit) in ROWS {
        let mut l = format!("| {k} | {unit} |");
        for t in &targets {
            match results.get(t.as_str()).and_then(|r| r.get(k)) {
                Some(Cell::Val(v)) => write!(l, " {} |", fmt_num(*v)).unwrap(),
                Some(Cell::Missing(m)) => write!(l, " {m} |").unwrap(),
                None => l.push_str(" — |"),
            }
        }
        rep.line(&l);
    }
    rep.line("");
    rep.line("Load average (1/5/15 min) before → after each column: ");
    for (t, l) in &loads {
        rep.line(&format!("- {t}: {l}"));
    }
    rep.line("");

    // Ratios and goals.
    let ratio = |a: &str, b: &str, k: &str| -> Option<f64> { Some(val(a, k)? / val(b, k)?) };
    let cell = |r: Option<f64>| r.map(|x| format!("{x:.2}")).unwrap_or_else(|| "n/a".into());
    let goal = |r: Option<f64>, need: f64| match r {
        Some(x) if x >= need => "met",
        Some(_) => "**missed**",
        None => "n/a",
    };
    rep.line("### Ratios slatefs/peer and goals");
    rep.line("");
    rep.line("| workload | async/ganesha (goal ≥1) | async/zerofs (goal ≥2) | sync/zerofs (goal ≥1) | async/disk | sync/disk | seq: async/disk (goal ≥0.5) |");
    rep.line("|---|---:|---:|---:|---:|---:|---:|");
    let mut missed = Vec::new();
    for (k, _) in ROWS {
        let ag = ratio("slatefs-async", "ganesha", k);
        let az = ratio("slatefs-async", "zerofs", k);
        let sz = ratio("slatefs-sync", "zerofs", k);
        let ad = ratio("slatefs-async", "disk", k);
        let sd = ratio("slatefs-sync", "disk", k);
        let seq = k.starts_with("seq");
        for (name, r, need) in [("async ≥ ganesha", ag, 1.0), ("async ≥ 2× zerofs", az, 2.0), ("sync ≥ zerofs", sz, 1.0)] {
            if goal(r, need) == "**missed**" {
                missed.push(format!("{k}: {name} ({:.2})", r.unwrap()));
            }
        }
        if seq && goal(ad, 0.5) == "**missed**" {
            missed.push(format!("{k}: async ≥ 0.5× disk ({:.2})", ad.unwrap()));
        }
        rep.line(&format!(
            "| {k} | {} {} | {} {} | {} {} | {} | {} | {} |",
            cell(ag),
            goal(ag, 1.0),
            cell(az),
            goal(az, 2.0),
            cell(sz),
            goal(sz, 1.0),
            cell(ad),
            cell(sd),
            if seq { format!("{} {}", cell(ad), goal(ad, 0.5)) } else { "".into() }
        ));
    }
    rep.line("");

    // ---------------------------------------------------------------- workloads 5 and 6
    if !a.skip_snap || !a.skip_mem {
        match slatefs_bin.clone() {
            None => rep.line(&format!("Snapshot/CSI/memory: missing (no slatefs binary at {})", a.slatefs)),
            Some(bin) => {
                if !a.skip_snap {
                    log(&format!("=== snapshots and clones (load {}) ===", loadavg()));
                    match snapshots(&rt, &bin, &work.join("snap"), &snap_mib, &p, a.reps, a.snap_settle) {
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
                    match memory(&rt, &bin, &work.join("mem"), &mem_counts) {
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

/// Workload 5: snapshot / clone latency through the CLI at several dataset sizes, and CSI
/// CreateVolume / CreateSnapshot / CreateVolume-from-snapshot through the CSI socket.
fn snapshots(rt: &tokio::runtime::Runtime, bin: &Path, dir: &Path, sizes: &[u64], p: &Params, reps: usize, settle: f64) -> Result<Vec<String>> {
    let mut s = servers::start_slatefs(bin, dir, "sync")?;
    let admin = s.admin.clone();
    let cli = |args: &[&str]| -> Result<Duration> {
        let mut v = vec!["dataset", "--admin", admin.as_str()];
        v.extend_from_slice(args);
        run_cli(bin, &v).map(|x| x.0)
    };
    let mut out = vec![
        format!("### Snapshot and clone latency (slatefs, sync; CLI wall time, median of {reps}; timed {})", if settle > 0.0 { format!("{settle} s after the fill") } else { "right after the fill".into() }),
        String::new(),
        "| dataset size | fill (MB/s) | snapshot --readonly (ms) | clone from snapshot (ms) | writable snapshot (ms) |".into(),
        "|---:|---:|---:|---:|---:|".into(),
    ];
    let mut firsts = Vec::new();
    for &mib in sizes {
        let ds = format!("snap{mib}m");
        cli(&["create", &ds])?;
        let ep = Endpoint { export: format!("/{ds}"), ..s.ep.clone() };
        let fill = rt.block_on(workloads::nfs_fill(&ep, "data", mib << 20, p.seq_req, p.seq_inflight))?;
        std::thread::sleep(Duration::from_secs_f64(settle));
        let (mut sn, mut cl, mut ws) = (vec![], vec![], vec![]);
        for r in 0..reps {
            let snap = format!("{ds}-s{r}");
            sn.push(ms(cli(&["snapshot", "--readonly", &ds, &snap])?));
            let c = format!("{ds}-c{r}");
            // A snapshot is named SOURCE@NAME in exports; the admin API may take either form.
            let t = match cli(&["clone", &format!("{ds}@{snap}"), &c]) {
                Ok(t) => t,
                Err(e1) => cli(&["clone", &snap, &c]).map_err(|e2| anyhow!("clone: {e1:#} / {e2:#}"))?,
            };
            cl.push(ms(t));
            ws.push(ms(cli(&["snapshot", &ds, &format!("{ds}-w{r}")])?));
        }
        log(&format!("snapshots of {mib} MiB: snapshot {sn:.1?} clone {cl:.1?} writable {ws:.1?}"));
        let row = (median(sn), median(cl), median(ws));
        firsts.push((mib, row));
        out.push(format!(
            "| {mib} MiB | {} | {} | {} | {} |",
            fmt_num((mib << 20) as f64 / 1e6 / fill.as_secs_f64()),
            fmt_num(row.0),
            fmt_num(row.1),
            fmt_num(row.2)
        ));
    }
    let floor: Vec<f64> = (0..reps).map(|_| cli(&["list"]).map(ms)).collect::<Result<_>>()?;
    out.push(String::new());
    out.push(format!(
        "CLI floor (`slatefs dataset list`: process start + admin connect + one call): {} ms median. \
         Goals: every figure < 50 ms; largest/smallest within 1.5x.",
        fmt_num(median(floor))
    ));
    if let (Some(small), Some(big)) = (firsts.first(), firsts.last()) {
        let worst = firsts.iter().map(|(_, r)| r.0.max(r.1).max(r.2)).fold(0.0, f64::max);
        out.push(format!(
            "- under 50 ms at every size: {} (worst {} ms)",
            if worst < 50.0 { "met" } else { "**missed**" },
            fmt_num(worst)
        ));
        for (name, a, b) in [("snapshot", small.1 .0, big.1 .0), ("clone", small.1 .1, big.1 .1), ("writable snapshot", small.1 .2, big.1 .2)] {
            out.push(format!(
                "- {name} {} MiB / {} MiB = {:.2}: {}",
                big.0,
                small.0,
                b / a,
                if b / a <= 1.5 { "met" } else { "**missed**" }
            ));
        }
    }
    out.push(String::new());

    // CSI through the gRPC socket.
    let sock = dir.join("csi.sock");
    let endpoint = format!("unix://{}", sock.display());
    let mut csi = servers::Proc::spawn(
        "slatefs csi",
        Command::new(bin).args(["csi", "--mode", "all", "--endpoint", &endpoint, "--node-id", "bench", "--admin", &admin]).env("RUST_LOG", "warn"),
        dir.join("csi.log"),
    )?;
    let call = |args: &[&str]| -> Result<(Duration, String)> {
        let mut v = vec!["csi", "call", "--endpoint", endpoint.as_str()];
        v.extend_from_slice(args);
        run_cli(bin, &v)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if call(&["probe"]).is_ok() {
            break;
        }
        if let Some(st) = csi.child.try_wait()? {
            bail!("slatefs csi exited ({st}):\n{}", csi.log_tail());
        }
        if Instant::now() > deadline {
            bail!("slatefs csi did not answer a probe:\n{}", csi.log_tail());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (mut cv, mut cs, mut cr, mut pr) = (vec![], vec![], vec![], vec![]);
    for r in 0..reps {
        let vol = format!("pvc-bench-{r}");
        cv.push(ms(call(&["create-volume", &vol, "--size", "1Gi"])?.0));
        let (t, o) = call(&["create-snapshot", "--source-volume-id", &vol, &format!("snap-bench-{r}")])?;
        cs.push(ms(t));
        let v: serde_json::Value = serde_json::from_str(&o).with_context(|| format!("create-snapshot output: {o}"))?;
        let id = find_key(&v, "snapshot_id").ok_or_else(|| anyhow!("no snapshot_id in {o}"))?;
        cr.push(ms(call(&["create-volume", &format!("pvc-restored-{r}"), "--size", "1Gi", "--from-snapshot", &id])?.0));
        pr.push(ms(call(&["probe"])?.0));
    }
    log(&format!("csi: create-volume {cv:.1?} create-snapshot {cs:.1?} from-snapshot {cr:.1?} probe {pr:.1?}"));
    csi.stop();
    s.proc.stop();
    out.push("### CSI latency (slatefs csi --mode all, `slatefs csi call` wall time, median of reps)".into());
    out.push(String::new());
    out.push("| CreateVolume (ms) | CreateSnapshot (ms) | CreateVolume from snapshot (ms) | Probe = CLI floor (ms) |".into());
    out.push("|---:|---:|---:|---:|".into());
    out.push(format!("| {} | {} | {} | {} |", fmt_num(median(cv)), fmt_num(median(cs)), fmt_num(median(cr)), fmt_num(median(pr))));
    Ok(out)
}

/// Workload 6: resident set size of `slatefs serve` with N datasets open (mounted, one GETATTR)
/// and idle.
fn memory(rt: &tokio::runtime::Runtime, bin: &Path, dir: &Path, counts: &[usize]) -> Result<Vec<String>> {
    let mut s = servers::start_slatefs(bin, dir, "async")?;
    let pid = s.proc.pid();
    let max = counts.iter().copied().max().unwrap_or(0);
    std::thread::sleep(Duration::from_secs(2));
    let start_rss = servers::rss_bytes(pid)?;
    // Open the default dataset's export too, as the baseline "server running" figure.
    let mut out = vec![
        "### Memory: slatefs serve RSS with N datasets open and idle".to_string(),
        String::new(),
        "| datasets open | RSS (MiB) | per dataset over baseline (MiB) |".into(),
        "|---:|---:|---:|".into(),
        format!("| 0 (just started) | {:.1} | |", start_rss as f64 / 1048576.0),
    ];
    for i in 0..max {
        run_cli(bin, &["dataset", "--admin", &s.admin, "create", &format!("m{i:03}")])?;
    }
    std::thread::sleep(Duration::from_secs(2));
    let created = servers::rss_bytes(pid)?;
    out.push(format!("| 0 ({max} created, none mounted) | {:.1} | |", created as f64 / 1048576.0));
    let mut conns = Vec::new();
    let mut opened = 0;
    let mut res = Vec::new();
    for &n in counts {
        rt.block_on(async {
            while opened < n {
                let ep = Endpoint { export: format!("/m{opened:03}"), ..s.ep.clone() };
                let mut c = client::connect(&ep).await?;
                let root = c.root_nfs_fh3();
                client::getattr(&mut c, &root).await?;
                conns.push(c);
                opened += 1;
            }
            anyhow::Ok(())
        })?;
        std::thread::sleep(Duration::from_secs(3));
        let rss = servers::rss_bytes(pid)?;
        res.push((n, rss));
        log(&format!("memory: {n} open → {} MiB", rss >> 20));
        out.push(format!(
            "| {n} | {:.1} | {:.2} |",
            rss as f64 / 1048576.0,
            (rss as f64 - start_rss as f64) / 1048576.0 / n.max(1) as f64
        ));
    }
    drop(conns);
    s.proc.stop();
    if let Some((n, rss)) = res.iter().find(|(n, _)| *n == 100).or(res.last()) {
        out.push(String::new());
        out.push(format!(
            "- {n} idle open datasets under 1 GiB resident: {} ({:.0} MiB)",
            if *rss < (1 << 30) { "met" } else { "**missed**" },
            *rss as f64 / 1048576.0
        ));
    }
    Ok(out)
}

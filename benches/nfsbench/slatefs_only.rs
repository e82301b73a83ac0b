//! Workloads 5 and 6, slatefs only: snapshot / clone / CSI latency and idle memory.

use crate::client::{self, Endpoint};
use crate::workloads::{self, Params};
use crate::{fmt_num, log, servers};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

pub fn run_cli(bin: &Path, args: &[&str]) -> Result<(Duration, String)> {
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

/// Workload 5: snapshot / clone latency through the CLI at several dataset sizes, and CSI
/// CreateVolume / CreateSnapshot / CreateVolume-from-snapshot through the CSI socket.
pub fn snapshots(rt: &tokio::runtime::Runtime, bin: &Path, dir: &Path, sizes: &[u64], p: &Params, reps: usize, settle: f64) -> Result<Vec<String>> {
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
pub fn memory(rt: &tokio::runtime::Runtime, bin: &Path, dir: &Path, counts: &[usize]) -> Result<Vec<String>> {
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

//! Workloads 5 and 6, slatefs only: snapshot / clone / CSI latency and idle memory.

use crate::client::{self, Endpoint};
use crate::workloads::{self, Params};
use crate::{fmt_num, log, servers};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use slatefs::admin::proto as admin_proto;
use slatefs::csi::proto as csi_proto;

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

/// Runs one gRPC call to completion: its wall time in ms and its response.
fn rpc_timed<T>(
    rt: &tokio::runtime::Runtime,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<(f64, T)> {
    let t = Instant::now();
    let r = rt.block_on(call).map_err(|s| anyhow!("{:?}: {}", s.code(), s.message()))?;
    Ok((ms(t.elapsed()), r.into_inner()))
}

fn rpc_time<T>(
    rt: &tokio::runtime::Runtime,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<f64> {
    rpc_timed(rt, call).map(|x| x.0)
}

/// A 1 GiB filesystem volume, optionally restored from a snapshot.
fn csi_create_volume(name: &str, snapshot_id: Option<String>) -> csi_proto::CreateVolumeRequest {
    use csi_proto::volume_capability::{access_mode::Mode, AccessMode, AccessType, MountVolume};
    csi_proto::CreateVolumeRequest {
        name: name.to_string(),
        capacity_range: Some(csi_proto::CapacityRange { required_bytes: 1 << 30, limit_bytes: 0 }),
        volume_capabilities: vec![csi_proto::VolumeCapability {
            access_type: Some(AccessType::Mount(MountVolume::default())),
            access_mode: Some(AccessMode { mode: Mode::SingleNodeWriter as i32 }),
        }],
        volume_content_source: snapshot_id.map(|id| csi_proto::VolumeContentSource {
            r#type: Some(csi_proto::volume_content_source::Type::Snapshot(
                csi_proto::volume_content_source::SnapshotSource { snapshot_id: id },
            )),
        }),
        ..Default::default()
    }
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
    // The same calls from a client that stays connected (as the CSI controller is): the
    // server's own latency, without a process start per call.
    let mut rpc = rt.block_on(slatefs::admin::client::connect(&slatefs::admin::AdminAddr::parse(&admin)?, None))?;
    let mut out = vec![
        format!("### Snapshot and clone latency (slatefs, sync; median of {reps}; timed {})", if settle > 0.0 { format!("{settle} s after the fill") } else { "right after the fill".into() }),
        String::new(),
        "Each figure is `admin gRPC call / CLI wall time`: the call from a client that stays connected, \
         then the `slatefs dataset` command (process start and connect included).".into(),
        String::new(),
        "| dataset size | fill (MB/s) | snapshot --readonly (ms) | clone from snapshot (ms) | writable snapshot (ms) | first snapshot after the fill (ms) |".into(),
        "|---:|---:|---:|---:|---:|---:|".into(),
    ];
    let mut firsts = Vec::new();
    for &mib in sizes {
        let ds = format!("snap{mib}m");
        cli(&["create", &ds])?;
        let ep = Endpoint { export: format!("/{ds}"), ..s.ep.clone() };
        let fill = rt.block_on(workloads::nfs_fill(&ep, "data", mib << 20, p.seq_req, p.seq_inflight))?;
        std::thread::sleep(Duration::from_secs_f64(settle));
        let first = rpc_time(rt, rpc.create_snapshot(admin_proto::CreateSnapshotRequest {
            source: ds.clone(),
            name: format!("{ds}-first"),
            readonly: true,
        }))?;
        let (mut sn, mut cl, mut ws) = (vec![], vec![], vec![]);
        let (mut rsn, mut rcl, mut rws) = (vec![], vec![], vec![]);
        for r in 0..reps {
            let snap = format!("{ds}-rs{r}");
            rsn.push(rpc_time(rt, rpc.create_snapshot(admin_proto::CreateSnapshotRequest { source: ds.clone(), name: snap.clone(), readonly: true }))?);
            rcl.push(rpc_time(rt, rpc.clone_snapshot(admin_proto::CloneSnapshotRequest { snapshot: snap, name: format!("{ds}-rc{r}") }))?);
            rws.push(rpc_time(rt, rpc.create_snapshot(admin_proto::CreateSnapshotRequest { source: ds.clone(), name: format!("{ds}-rw{r}"), readonly: false }))?);
        }
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
        log(&format!("snapshots of {mib} MiB: first {first:.1} ms; rpc: snapshot {rsn:.1?} clone {rcl:.1?} writable {rws:.1?}; cli: snapshot {sn:.1?} clone {cl:.1?} writable {ws:.1?}"));
        let row = (median(rsn), median(rcl), median(rws), first);
        firsts.push((mib, row));
        out.push(format!(
            "| {mib} MiB | {} | {} / {} | {} / {} | {} / {} | {} |",
            fmt_num((mib << 20) as f64 / 1e6 / fill.as_secs_f64()),
            fmt_num(row.0),
            fmt_num(median(sn)),
            fmt_num(row.1),
            fmt_num(median(cl)),
            fmt_num(row.2),
            fmt_num(median(ws)),
            fmt_num(first)
        ));
    }
    let floor: Vec<f64> = (0..reps).map(|_| cli(&["list"]).map(ms)).collect::<Result<_>>()?;
    out.push(String::new());
    out.push(format!(
        "CLI floor (`slatefs dataset list`: process start + admin connect + one call): {} ms median. \
         Goals (on the gRPC figures and the first snapshot): every figure < 50 ms; largest/smallest within 1.5x.",
        fmt_num(median(floor))
    ));
    if let (Some(small), Some(big)) = (firsts.first(), firsts.last()) {
        let worst = firsts.iter().map(|(_, r)| r.0.max(r.1).max(r.2).max(r.3)).fold(0.0, f64::max);
        out.push(format!(
            "- under 50 ms at every size: {} (worst {} ms)",
            if worst < 50.0 { "met" } else { "**missed**" },
            fmt_num(worst)
        ));
        for (name, a, b) in [
            ("snapshot", small.1 .0, big.1 .0),
            ("clone", small.1 .1, big.1 .1),
            ("writable snapshot", small.1 .2, big.1 .2),
            ("first snapshot after the fill", small.1 .3, big.1 .3),
        ] {
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
    let channel = {
        // The lazy channel spawns its connection task on the runtime it is created in.
        let _in_runtime = rt.enter();
        slatefs::csi::transport::unix_channel(&sock)
    };
    let mut ctl = csi_proto::controller_client::ControllerClient::new(channel);
    let (mut gv, mut gs, mut gr) = (vec![], vec![], vec![]);
    for r in 0..reps {
        let vol = format!("pvc-grpc-{r}");
        let (t, v) = rpc_timed(rt, ctl.create_volume(csi_create_volume(&vol, None)))?;
        gv.push(t);
        let vol_id = v.volume.map(|v| v.volume_id).ok_or_else(|| anyhow!("CreateVolume returned no volume"))?;
        let (t, s) = rpc_timed(rt, ctl.create_snapshot(csi_proto::CreateSnapshotRequest {
            source_volume_id: vol_id,
            name: format!("snap-grpc-{r}"),
            ..Default::default()
        }))?;
        gs.push(t);
        let snap_id = s.snapshot.map(|s| s.snapshot_id).ok_or_else(|| anyhow!("CreateSnapshot returned no snapshot"))?;
        gr.push(rpc_timed(rt, ctl.create_volume(csi_create_volume(&format!("pvc-grpc-restored-{r}"), Some(snap_id))))?.0);
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
    log(&format!("csi grpc: create-volume {gv:.1?} create-snapshot {gs:.1?} from-snapshot {gr:.1?}"));
    log(&format!("csi cli: create-volume {cv:.1?} create-snapshot {cs:.1?} from-snapshot {cr:.1?} probe {pr:.1?}"));
    csi.stop();
    s.proc.stop();
    out.push(format!("### CSI latency (slatefs csi --mode all in front of slatefs serve, median of {reps})"));
    out.push(String::new());
    out.push("| client | CreateVolume (ms) | CreateSnapshot (ms) | CreateVolume from snapshot (ms) | Probe (ms) |".into());
    out.push("|---|---:|---:|---:|---:|".into());
    out.push(format!("| gRPC on the CSI socket, connected once (as the external-provisioner) | {} | {} | {} | |", fmt_num(median(gv)), fmt_num(median(gs)), fmt_num(median(gr))));
    out.push(format!("| `slatefs csi call` (a process per call) | {} | {} | {} | {} |", fmt_num(median(cv)), fmt_num(median(cs)), fmt_num(median(cr)), fmt_num(median(pr))));
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

//! Section 4: latency of small FILE_SYNC writes through a node's server (the dataset's owner),
//! with a read-only snapshot asked of the catalog owner every few seconds, against none. The
//! catalog owner does not take the writer: it asks the owner to flush and checkpoint.

use crate::client::{self, Endpoint};
use crate::cluster::Trio;
use crate::stats::{ms, percentile, rate};
use crate::{create_owned_by, endpoint, expect_owner, log, server, Args, OWNER};
use anyhow::Result;
use nfs3_types::nfs3::stable_how;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;
/// Blocks per writer's file: writes cycle over them, so the file stays small.
const BLOCKS: u64 = 256;

struct Phase {
    latencies: Vec<Duration>,
    elapsed: Duration,
    errors: Vec<String>,
    /// Each snapshot's duration as the CLI saw it, or its error.
    snapshots: Vec<Result<Duration, String>>,
}

async fn writer(ep: Endpoint, name: String, start: Instant, deadline: Instant) -> Result<(Vec<Duration>, Vec<String>)> {
    let mut c = client::connect_wait(&ep, Duration::from_secs(30)).await?;
    let root = c.root_nfs_fh3();
    let f = client::create(&mut c, &root, &name, true).await?;
    let buf = vec![7u8; BLOCK];
    let (mut lat, mut errors) = (Vec::new(), Vec::new());
    tokio::time::sleep_until(start.into()).await;
    let mut block = 0u64;
    while Instant::now() < deadline {
        let t = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(10), client::write(&mut c, &f, (block % BLOCKS) * BLOCK as u64, &buf, stable_how::FILE_SYNC)).await;
        match r {
            Ok(Ok(())) => lat.push(t.elapsed()),
            // An NFS error (JUKEBOX, say) leaves the connection usable; a lost reply does not.
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(_) => anyhow::bail!("a write got no reply within 10 s"),
        }
        block += 1;
    }
    Ok((lat, errors))
}

/// Runs `slatefs dataset snapshot` on the catalog owner every `every` from `start` until
/// `deadline`.
fn snapshotter(admin: String, tag: String, start: Instant, deadline: Instant, every: Duration) -> Vec<Result<Duration, String>> {
    let mut out = Vec::new();
    for k in 1.. {
        let at = start + every * k;
        if at >= deadline {
            break;
        }
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let t = Instant::now();
        let snap = format!("{tag}-{k}");
        let r = std::process::Command::new(server::binary())
            .args(["dataset", "--admin", &admin, "snapshot", "snap", &snap, "--readonly"])
            .output();
        out.push(match r {
            Ok(o) if o.status.success() => Ok(t.elapsed()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            Err(e) => Err(e.to_string()),
        });
    }
    out
}

fn phase(a: &Args, rt: &tokio::runtime::Runtime, trio: &Trio, snapshots: bool, tag: &str) -> Result<Phase> {
    let start = Instant::now() + Duration::from_secs(2);
    let deadline = start + Duration::from_secs_f64(a.lat_secs);
    let ep = endpoint(trio, OWNER, "snap");
    let jobs: Vec<_> = (0..a.inflight).map(|w| rt.spawn(writer(ep.clone(), format!("{tag}-w{w}"), start, deadline))).collect();
    let snapper = snapshots.then(|| {
        let (admin, tag, every) = (trio.servers[0].admin.clone(), tag.to_string(), Duration::from_secs_f64(a.snap_every));
        std::thread::spawn(move || snapshotter(admin, tag, start, deadline, every))
    });
    let mut latencies = Vec::new();
    let mut errors = Vec::new();
    for j in jobs {
        let (l, e) = rt.block_on(j)??;
        latencies.extend(l);
        errors.extend(e);
    }
    let elapsed = start.elapsed();
    let snapshots = snapper.map(|t| t.join().expect("snapshot thread")).unwrap_or_default();
    Ok(Phase { latencies, elapsed, errors, snapshots })
}

pub fn section(a: &Args, rt: &tokio::runtime::Runtime, trio: &Trio) -> Result<String> {
    create_owned_by(rt, trio, "snap", OWNER)?;
    // Alternating phases, pooled per kind: neither kind always runs on the fuller dataset.
    let mut none = Phase { latencies: Vec::new(), elapsed: Duration::ZERO, errors: Vec::new(), snapshots: Vec::new() };
    let mut with = Phase { latencies: Vec::new(), elapsed: Duration::ZERO, errors: Vec::new(), snapshots: Vec::new() };
    for run in 0..a.runs {
        for (snaps, into) in [(false, &mut none), (true, &mut with)] {
            log(&format!("latency: run {}, {} (load {})", run + 1, if snaps { "with snapshots" } else { "no snapshots" }, crate::loadavg()));
            let p = phase(a, rt, trio, snaps, &format!("run{run}-{}", if snaps { "snaps" } else { "plain" }))?;
            into.latencies.extend(p.latencies);
            into.elapsed += p.elapsed;
            into.errors.extend(p.errors);
            into.snapshots.extend(p.snapshots);
        }
    }
    none.latencies.sort();
    with.latencies.sort();
    // Snapshots are taken by the owner at the catalog owner's request: the writer stays put.
    expect_owner(trio, "snap", OWNER)?;

    let mut md = String::new();
    writeln!(md, "#### 4. Write latency with a snapshot every {} s, against none", a.snap_every)?;
    writeln!(md)?;
    writeln!(
        md,
        "Dataset `snap`, owned by `node-a`; {} connections write 4 KiB FILE_SYNC blocks through `node-a`, one request in flight each, for {} s per phase; {} phases of each kind, alternating, pooled. With snapshots, `slatefs dataset snapshot snap NAME --readonly` runs against the catalog owner (`owner`) every {} s, which asks `node-a` to flush and checkpoint. Latency is per WRITE, as the client sees it.",
        a.inflight, a.lat_secs, a.runs, a.snap_every
    )?;
    writeln!(md)?;
    writeln!(md, "| phase | writes | writes/s | p50, ms | p99, ms | max, ms | writes answered with an error |")?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---|")?;
    for (name, p) in [("no snapshots", &none), (&*format!("a snapshot every {} s", a.snap_every), &with)] {
        let l = &p.latencies;
        let errs = if p.errors.is_empty() { "0".to_string() } else { format!("{}: {}", p.errors.len(), p.errors[0]) };
        writeln!(
            md,
            "| {name} | {} | {:.0} | {} | {} | {} | {errs} |",
            l.len(),
            rate(l.len() as u64, p.elapsed),
            ms(percentile(l, 50.0)),
            ms(percentile(l, 99.0)),
            ms(l.last().copied().unwrap_or_default())
        )?;
    }
    writeln!(md)?;
    let mut took: Vec<Duration> = with.snapshots.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    took.sort();
    let failed: Vec<&String> = with.snapshots.iter().filter_map(|r| r.as_ref().err()).collect();
    writeln!(
        md,
        "Snapshots: {} taken, {} failed{}; each took (the CLI's whole run, process start included) median {} ms, max {} ms.",
        took.len(),
        failed.len(),
        failed.first().map(|e| format!(" (first: {e})")).unwrap_or_default(),
        ms(percentile(&took, 50.0)),
        ms(took.last().copied().unwrap_or_default())
    )?;
    writeln!(md)?;
    Ok(md)
}

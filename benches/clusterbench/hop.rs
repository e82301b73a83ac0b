//! Sections 1 and 2: the cost of a hop (the same workloads through the dataset's owner and
//! through a server forwarding to it), and two servers writing one dataset against one.

use crate::client::{self, Conn, Endpoint};
use crate::cluster::{Trio, NAMES};
use crate::stats::{self, rate, spread};
use crate::{create_owned_by, endpoint, expect_owner, log, Args, FORWARDER, OWNER};
use anyhow::{bail, Result};
use nfs3_types::nfs3::{nfs_fh3, stable_how};
use rand::{Rng, RngCore, SeedableRng};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKLOADS: [(&str, &str); 4] = [
    ("seq write, 1 MiB WRITEs", "MB/s"),
    ("4 KiB random writes", "ops/s"),
    ("create (small files)", "ops/s"),
    ("GETATTR + LOOKUP", "ops/s"),
];

fn random_buf(len: usize, seed: u64) -> Arc<Vec<u8>> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    Arc::new(v)
}

/// The four workloads of section 1 in a directory of their own; one figure each.
async fn workloads(ep: &Endpoint, a: &Args, tag: &str) -> Result<[f64; 4]> {
    let mut c = client::connect_wait(ep, Duration::from_secs(30)).await?;
    let root = c.root_nfs_fh3();
    let top = client::mkdir(&mut c, &root, tag).await?;
    let n = a.inflight;

    // Sequential write: UNSTABLE 1 MiB WRITEs from every connection, then COMMIT, as a
    // kernel client writes a big file (in `sync` mode each WRITE is durable before its reply).
    let file = client::create(&mut c, &top, "seq", false).await?;
    let size = a.seq_mib << 20;
    let buf = random_buf(1 << 20, 1);
    let next = Arc::new(AtomicU64::new(0));
    let conns = client::pool(ep, n).await?;
    let t = Instant::now();
    let conns = client::par(conns, |mut cn, _| {
        let (next, buf, file) = (next.clone(), buf.clone(), file.clone());
        async move {
            loop {
                let off = next.fetch_add(1 << 20, Ordering::Relaxed);
                if off >= size {
                    return Ok(cn);
                }
                let len = (1u64 << 20).min(size - off) as usize;
                client::write(&mut cn, &file, off, &buf[..len], stable_how::UNSTABLE).await?;
            }
        }
    })
    .await?;
    client::commit(&mut c, &file).await?;
    let seq = size as f64 / 1e6 / t.elapsed().as_secs_f64();
    let got = client::getattr(&mut c, &file).await?.size;
    if got != size {
        bail!("after the sequential write the file has {got} bytes, not {size}");
    }

    // 4 KiB random writes into that file for a fixed time.
    let blocks = size / 4096;
    let buf = random_buf(4096, 2);
    let ops = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let deadline = t + Duration::from_secs_f64(a.rand_secs);
    let conns = client::par(conns, |mut cn, i| {
        let (ops, buf, file) = (ops.clone(), buf.clone(), file.clone());
        async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(100 + i as u64);
            while Instant::now() < deadline {
                let off = rng.gen_range(0..blocks) * 4096;
                client::write(&mut cn, &file, off, &buf, stable_how::UNSTABLE).await?;
                ops.fetch_add(1, Ordering::Relaxed);
            }
            Ok(cn)
        }
    })
    .await?;
    client::commit(&mut c, &file).await?;
    let rand_ops = rate(ops.load(Ordering::Relaxed), t.elapsed());

    // Creates of empty files (GUARDED) in one directory.
    let dir = client::mkdir(&mut c, &top, "files").await?;
    let made: Arc<Mutex<Vec<(String, nfs_fh3)>>> = Arc::default();
    let next = Arc::new(AtomicU64::new(0));
    let total = a.creates as u64;
    let t = Instant::now();
    let conns = client::par(conns, |mut cn, _| {
        let (next, dir, made) = (next.clone(), dir.clone(), made.clone());
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok(cn);
                }
                let name = format!("f{i:06}");
                let h = client::create(&mut cn, &dir, &name, true).await?;
                made.lock().unwrap().push((name, h));
            }
        }
    })
    .await?;
    let creates = rate(total, t.elapsed());

    // GETATTR of a file and LOOKUP of a name, alternately, on what was just created.
    let made = Arc::new(std::mem::take(&mut *made.lock().unwrap()));
    let ops = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let deadline = t + Duration::from_secs_f64(a.meta_secs);
    client::par(conns, |mut cn, i| {
        let (ops, dir, made) = (ops.clone(), dir.clone(), made.clone());
        async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(300 + i as u64);
            while Instant::now() < deadline {
                let (name, h) = &made[rng.gen_range(0..made.len())];
                client::getattr(&mut cn, h).await?;
                client::lookup(&mut cn, &dir, name).await?;
                ops.fetch_add(2, Ordering::Relaxed);
            }
            Ok(cn)
        }
    })
    .await?;
    let meta = rate(ops.load(Ordering::Relaxed), t.elapsed());
    Ok([seq, rand_ops, creates, meta])
}

pub fn hop_section(a: &Args, rt: &tokio::runtime::Runtime, trio: &Trio) -> Result<String> {
    create_owned_by(rt, trio, "hop", OWNER)?;
    // figs[path][workload][run]; path 0 = through the owner, 1 = through the forwarder.
    let mut figs = vec![vec![Vec::new(); WORKLOADS.len()]; 2];
    for run in 0..a.runs {
        // Alternate which path goes first, so that neither always runs on a warmer dataset.
        let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for path in order {
            let server = [OWNER, FORWARDER][path];
            let tag = format!("run{run}-{}", NAMES[server]);
            log(&format!("hop: run {} through {} (load {})", run + 1, NAMES[server], crate::loadavg()));
            let f = rt.block_on(workloads(&endpoint(trio, server, "hop"), a, &tag))?;
            log(&format!("hop: {f:.1?}"));
            for (w, v) in f.iter().enumerate() {
                figs[path][w].push(*v);
            }
            // The figures through node-b mean "forwarded" only if node-a still owns it.
            expect_owner(trio, "hop", OWNER)?;
        }
    }
    let mut md = String::new();
    writeln!(md, "#### 1. The cost of a hop: through the owner and through a forwarding server")?;
    writeln!(md)?;
    writeln!(
        md,
        "Dataset `hop`, owned by `node-a` throughout (checked after every run). The same client workloads through `node-a` itself and through `node-b`, which forwards every call to `node-a`. Median (min–max) of {} runs; sequential {} MiB in 1 MiB UNSTABLE WRITEs + COMMIT, random 4 KiB UNSTABLE WRITEs for {} s + COMMIT, {} GUARDED CREATEs, GETATTR and LOOKUP alternately for {} s; {} requests in flight.",
        a.runs, a.seq_mib, a.rand_secs, a.creates, a.meta_secs, a.inflight
    )?;
    writeln!(md)?;
    writeln!(md, "| workload | unit | through the owner (node-a) | through node-b (forwarded) | forwarded / owner |")?;
    writeln!(md, "|---|---|---:|---:|---:|")?;
    for (w, (name, unit)) in WORKLOADS.iter().enumerate() {
        let (o, f) = (&figs[0][w], &figs[1][w]);
        writeln!(md, "| {name} | {unit} | {} | {} | {:.2} |", spread(o), spread(f), stats::median(f) / stats::median(o))?;
    }
    writeln!(md)?;
    Ok(md)
}

/// Small files (CREATE + one 4 KiB FILE_SYNC WRITE each) in directory `dir` from `inflight`
/// connections until `deadline`; returns the files written.
async fn small_files(ep: Endpoint, inflight: usize, dir: String, start: Instant, deadline: Instant) -> Result<u64> {
    let mut c = client::connect_wait(&ep, Duration::from_secs(30)).await?;
    let root = c.root_nfs_fh3();
    let dir = client::mkdir(&mut c, &root, &dir).await?;
    let conns: Vec<Conn> = client::pool(&ep, inflight).await?;
    let buf = random_buf(4096, 4);
    let files = Arc::new(AtomicU64::new(0));
    // Both clients begin together, whatever their set-up cost.
    tokio::time::sleep_until(start.into()).await;
    client::par(conns, |mut cn, i| {
        let (files, buf, dir) = (files.clone(), buf.clone(), dir.clone());
        async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let f = client::create(&mut cn, &dir, &format!("c{i}-{n}"), true).await?;
                client::write(&mut cn, &f, 0, &buf, stable_how::FILE_SYNC).await?;
                files.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            Ok(cn)
        }
    })
    .await?;
    Ok(files.load(Ordering::Relaxed))
}

/// Two clients at once on servers `servers`; returns each client's files and the elapsed time.
fn two_clients(a: &Args, rt: &tokio::runtime::Runtime, trio: &Trio, servers: [usize; 2], tag: &str) -> Result<([u64; 2], Duration)> {
    let start = Instant::now() + Duration::from_secs(2);
    let deadline = start + Duration::from_secs_f64(a.two_secs);
    let (x, y) = rt.block_on(async {
        let [j0, j1] = [0, 1].map(|k| {
            let ep = endpoint(trio, servers[k], "two");
            tokio::spawn(small_files(ep, a.inflight, format!("{tag}-client{k}-{}", NAMES[servers[k]]), start, deadline))
        });
        (j0.await, j1.await)
    });
    let elapsed = start.elapsed();
    Ok(([x??, y??], elapsed))
}

pub fn two_section(a: &Args, rt: &tokio::runtime::Runtime, trio: &Trio) -> Result<String> {
    create_owned_by(rt, trio, "two", OWNER)?;
    const SETUPS: [(&str, [usize; 2]); 2] =
        [("one server (node-a, the owner), two clients on it", [OWNER, OWNER]), ("two servers: one client on node-a (owner), one on node-b (forwards)", [OWNER, FORWARDER])];
    // totals[setup][run], per_client[setup][client][run], all in files/s.
    let mut totals = vec![Vec::new(); 2];
    let mut per_client = vec![vec![Vec::new(); 2]; 2];
    for run in 0..a.runs {
        let order = if run % 2 == 0 { [0, 1] } else { [1, 0] };
        for s in order {
            log(&format!("two: run {} setup {} (load {})", run + 1, s + 1, crate::loadavg()));
            let (files, d) = two_clients(a, rt, trio, SETUPS[s].1, &format!("run{run}-setup{s}"))?;
            log(&format!("two: {files:?} files in {d:.2?}"));
            totals[s].push(rate(files[0] + files[1], d));
            for k in 0..2 {
                per_client[s][k].push(rate(files[k], d));
            }
            expect_owner(trio, "two", OWNER)?;
        }
    }
    let mut md = String::new();
    writeln!(md, "#### 2. Two servers writing one dataset against one server")?;
    writeln!(md)?;
    writeln!(
        md,
        "Dataset `two`, owned by `node-a`. Each client writes small files in a directory of its own (GUARDED CREATE + one 4 KiB FILE_SYNC WRITE: 2 NFS calls a file) for {} s, both clients at once, {} requests in flight each. Median (min–max) of {} runs.",
        a.two_secs, a.inflight, a.runs
    )?;
    writeln!(md)?;
    writeln!(md, "| setup | total files/s | total NFS calls/s | first client, files/s | second client, files/s |")?;
    writeln!(md, "|---|---:|---:|---:|---:|")?;
    for (s, (name, _)) in SETUPS.iter().enumerate() {
        let calls: Vec<f64> = totals[s].iter().map(|v| v * 2.0).collect();
        writeln!(md, "| {name} | {} | {} | {} | {} |", spread(&totals[s]), spread(&calls), spread(&per_client[s][0]), spread(&per_client[s][1]))?;
    }
    writeln!(md)?;
    writeln!(md, "Two servers / one server (total, medians): {:.2}.", stats::median(&totals[1]) / stats::median(&totals[0]))?;
    writeln!(md)?;
    Ok(md)
}

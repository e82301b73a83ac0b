//! Section 3: failover time. Clients write through a server that forwards to the dataset's
//! owner; the owner is killed -9; the forwarding server finds nothing listening, claims the
//! dataset and serves. Timed from the kill to the first write answered after it.

use crate::client::{self, Endpoint};
use crate::cluster::{Trio, NAMES};
use crate::stats::{self, ms};
use crate::{create_owned_by, endpoint, expect_owner, log, Args, FORWARDER, OWNER};
use anyhow::{bail, Result};
use nfs3_types::nfs3::stable_how;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A write that takes longer than this counts as lost with its connection (nfs3_client does
/// not notice a closed connection by itself), and the writer reconnects.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const BLOCK: usize = 4096;

#[derive(Default)]
struct Shared {
    /// When the owner's process was reaped: a write sent after this cannot be answered by it.
    /// (A reply received after it can: one the owner sent just before dying, still on its
    /// way through the forwarder.)
    reaped: Option<Instant>,
    /// The first reply to a write sent after `reaped`.
    first_reply: Option<Instant>,
    longest: Duration,
    errors: Vec<String>,
    /// Per writer: blocks acknowledged (written in order from offset 0).
    acked: Vec<u64>,
}

async fn writer(ep: Endpoint, name: String, w: usize, shared: Arc<Mutex<Shared>>, stop: Arc<AtomicBool>) -> Result<()> {
    let buf = vec![w as u8 + 1; BLOCK];
    let mut c = client::connect_wait(&ep, Duration::from_secs(30)).await?;
    let root = c.root_nfs_fh3();
    let f = client::create(&mut c, &root, &name, true).await?;
    let mut block = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let r = tokio::time::timeout(CALL_TIMEOUT, client::write(&mut c, &f, block * BLOCK as u64, &buf, stable_how::FILE_SYNC)).await;
        let got = Instant::now();
        let failed = {
            let mut s = shared.lock().unwrap();
            s.longest = s.longest.max(got - sent);
            match r {
                Ok(Ok(())) => {
                    block += 1;
                    s.acked[w] = block;
                    if s.reaped.is_some_and(|t| sent > t) && s.first_reply.is_none() {
                        s.first_reply = Some(got);
                    }
                    false
                }
                Ok(Err(e)) => {
                    s.errors.push(format!("{e:#}"));
                    true
                }
                Err(_) => {
                    s.errors.push(format!("no reply within {CALL_TIMEOUT:?}"));
                    true
                }
            }
        };
        if failed {
            // The connection may be out of step after a failed call: start a new one.
            c = client::connect_wait(&ep, Duration::from_secs(30)).await?;
        }
    }
    Ok(())
}

struct Round {
    victim: usize,
    survivor: usize,
    first: Duration,
    reap: Duration,
    longest: Duration,
    errors: Vec<String>,
}

fn one_round(a: &Args, rt: &tokio::runtime::Runtime, trio: &mut Trio, victim: usize, survivor: usize, round: usize) -> Result<Round> {
    expect_owner(trio, "ha", victim)?;
    let shared = Arc::new(Mutex::new(Shared { acked: vec![0; a.inflight], ..Default::default() }));
    let stop = Arc::new(AtomicBool::new(false));
    let ep = endpoint(trio, survivor, "ha");
    let jobs: Vec<_> = (0..a.inflight)
        .map(|w| rt.spawn(writer(ep.clone(), format!("r{round}-w{w}"), w, shared.clone(), stop.clone())))
        .collect();
    // Let every writer get going through the forwarder first.
    let warm = Instant::now() + Duration::from_secs(30);
    while shared.lock().unwrap().acked.iter().any(|n| *n < 20) {
        if Instant::now() > warm || jobs.iter().any(|j| j.is_finished()) {
            stop.store(true, Ordering::Relaxed);
            for j in jobs {
                rt.block_on(j)??;
            }
            bail!("the writers through {} did not get going", NAMES[survivor]);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = Instant::now();
    trio.servers[victim].kill9();
    shared.lock().unwrap().reaped = Some(Instant::now());
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        if shared.lock().unwrap().first_reply.is_some() || Instant::now() > give_up {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // A little more writing on the new owner, then stop.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for j in jobs {
        rt.block_on(j)??;
    }
    let s = std::mem::take(&mut *shared.lock().unwrap());
    let (Some(first), Some(reaped)) = (s.first_reply, s.reaped) else {
        bail!("no write was answered within 60 s of killing {}\n{}", NAMES[victim], trio.all_logs());
    };
    expect_owner(trio, "ha", survivor)?;
    // Every acknowledged block is there on the new owner (the tests check this in depth).
    rt.block_on(async {
        let mut c = client::connect_wait(&ep, Duration::from_secs(30)).await?;
        let root = c.root_nfs_fh3();
        for (w, n) in s.acked.iter().enumerate() {
            let (f, _) = client::lookup(&mut c, &root, &format!("r{round}-w{w}")).await?;
            let size = client::getattr(&mut c, &f).await?.size;
            if size < n * BLOCK as u64 {
                bail!("writer {w}: {n} blocks acknowledged but the file has {size} bytes");
            }
        }
        anyhow::Ok(())
    })?;
    Ok(Round { victim, survivor, first: first - killed, reap: reaped - killed, longest: s.longest, errors: s.errors })
}

pub fn section(a: &Args, rt: &tokio::runtime::Runtime, trio: &mut Trio) -> Result<String> {
    create_owned_by(rt, trio, "ha", OWNER)?;
    let (mut victim, mut survivor) = (OWNER, FORWARDER);
    let mut rounds = Vec::new();
    for round in 0..a.rounds {
        log(&format!("failover: round {} kills {} (load {})", round + 1, NAMES[victim], crate::loadavg()));
        let r = one_round(a, rt, trio, victim, survivor, round)?;
        log(&format!("failover: first write answered {:?} after the kill", r.first));
        rounds.push(r);
        // Back as an ordinary server: it forwards to the new owner, and is the next victim's
        // forwarder.
        trio.servers[victim].restart();
        std::mem::swap(&mut victim, &mut survivor);
    }
    let mut md = String::new();
    writeln!(md, "#### 3. Failover: the owner killed -9 while clients write through another server")?;
    writeln!(md)?;
    writeln!(
        md,
        "Dataset `ha`. {} connections write 4 KiB FILE_SYNC blocks, one request in flight each, through the server that forwards to the owner; after at least 20 acknowledged writes each, the owner is killed -9 (then restarted, and the roles swap for the next round). \"First write\": from the kill to the first reply to a write sent after the killed process was reaped (so answered by the new owner; a reply received earlier may be one the old owner sent just before dying). \"Longest write\": the longest any one write waited in the round, including the writes in flight at the kill, which the forwarder retried on the new owner. \"Reaped\": from the kill to the end of waitpid. Every round checks afterwards that the forwarder owns the dataset and that every acknowledged block is there.",
        a.inflight
    )?;
    writeln!(md)?;
    writeln!(md, "| round | killed owner | new owner | first write, ms | longest write, ms | reaped, ms | writes answered with an error |")?;
    writeln!(md, "|---:|---|---|---:|---:|---:|---|")?;
    for (i, r) in rounds.iter().enumerate() {
        let errs = if r.errors.is_empty() { "0".to_string() } else { format!("{}: {}", r.errors.len(), r.errors[0]) };
        writeln!(md, "| {} | {} | {} | {} | {} | {} | {errs} |", i + 1, NAMES[r.victim], NAMES[r.survivor], ms(r.first), ms(r.longest), ms(r.reap))?;
    }
    writeln!(md)?;
    let col = |f: fn(&Round) -> Duration| -> Vec<f64> { rounds.iter().map(|r| f(r).as_secs_f64() * 1000.0).collect() };
    writeln!(md, "| over {} rounds | min, ms | median, ms | max, ms |", rounds.len())?;
    writeln!(md, "|---|---:|---:|---:|")?;
    for (name, v) in [("kill → first write", col(|r| r.first)), ("longest write", col(|r| r.longest))] {
        writeln!(md, "| {name} | {} | {} | {} |", stats::num(stats::min(&v)), stats::num(stats::median(&v)), stats::num(stats::max(&v)))?;
    }
    writeln!(md)?;
    Ok(md)
}

//! policybench: what snapshot policies cost (docs/policies.md), in one process over a local
//! store: the catalog and dataset of a real `Registry`, the same calls the policy runner makes.
//! Prints a markdown table; every figure is measured in this run. Not a test.
//!
//!   cargo bench --bench policybench -- [--snapshots 1000] [--dir DIR]
//!
//! 1. A policy snapshot (intent record, checkpoint, the snapshot and policy records in one
//!    batch) of a dataset with 1 MiB written since the last one, timed for each of N snapshots
//!    (median, p90, max; and the first vs the last 100, to see whether the count matters).
//! 2. A prune on a dataset holding N policy snapshots: the retention rules over N snapshots,
//!    then deleting the one they drop (its checkpoint and record) and rewriting the policy
//!    record; also the object-store requests it sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slatefs::catalog::{PolicySettings, Registry, RetentionRecord, ScheduleRecord};
use slatefs::config::{Config, StorageConfig};
use slatefs::fs::{Caller, Kind, NewNode, ROOT_INO};
use slatefs::store::Store;

const MIN: u64 = 60_000;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9), *v.last().unwrap())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = arg("--snapshots").map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let dir = match arg("--dir") {
        Some(d) => std::path::PathBuf::from(d),
        None => tempfile::tempdir()?.keep(),
    };
    let storage = StorageConfig { url: format!("file://{}", dir.join("data").display()), ..Default::default() };
    let config = Config { storage: storage.clone(), ..Config::default() };
    let store = Store::open(&storage)?;
    let reg: Arc<Registry> = Registry::open(store.clone(), &config).await?;
    let ds = reg.create_dataset("bench", None).await?;
    let settings = PolicySettings {
        prefix: None,
        schedule: ScheduleRecord::Every { seconds: 60 },
        retention: RetentionRecord { keep_last: n as u32 + 1, ..Default::default() },
        paused: true, // the bench makes the runner's calls itself
        skip_unchanged: false,
    };
    reg.set_policy("bench", settings.clone(), 0).await?;

    let fs = reg.filesystem(ds.id).await?;
    let c = Caller::root();
    let ino = fs.create(&c, ROOT_INO, b"f", NewNode::new(Kind::File, 0o644)).await?.ino;
    let chunk = vec![7u8; 1 << 20];
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        fs.write(&c, ino, ((i % 64) as u64) << 20, &chunk).await?;
        let t = Instant::now();
        reg.policy_snapshot(ds.id, (i as u64 + 1) * MIN, None).await?;
        times.push(t.elapsed());
    }
    let (p50, p90, max) = stats(times.clone());
    let (first, _, _) = stats(times[..100.min(n)].to_vec());
    let (last, _, _) = stats(times[n.saturating_sub(100)..].to_vec());

    // Prune one: keep the newest n - 1.
    reg.set_policy("bench", PolicySettings { retention: RetentionRecord { keep_last: n as u32 - 1, ..Default::default() }, ..settings }, 0).await?;
    let before = store.request_stats();
    let t = Instant::now();
    let rec = reg.policy("bench")?.record;
    let keep = slatefs::policy::retention::keep(&rec.snapshots, &rec.retention, n as u64 * MIN, None);
    let rules = t.elapsed();
    let remove: Vec<u64> = rec.snapshots.iter().map(|s| s.0).filter(|id| !keep.contains(id)).collect();
    let pruned = reg.policy_prune(ds.id, &remove).await?;
    let prune = t.elapsed();
    let after = store.request_stats();
    assert_eq!(pruned.len(), 1);

    println!("| {n} policy snapshots of a dataset, local store | time |");
    println!("| --- | --- |");
    println!("| policy snapshot (1 MiB written since the last), median / p90 / max | {} / {} / {} |", ms(p50), ms(p90), ms(max));
    println!("| median of the first 100 / the last 100 | {} / {} |", ms(first), ms(last));
    println!("| prune of 1 of {n}: the retention rules alone | {:.3} ms |", rules.as_secs_f64() * 1000.0);
    println!("| prune of 1 of {n}: rules, checkpoint and record deleted, policy record rewritten | {} |", ms(prune));
    println!(
        "| object-store requests of that prune | {} PUT, {} GET, {} LIST, {} DELETE |",
        after.put - before.put,
        after.get - before.get,
        after.list - before.list,
        after.delete - before.delete
    );
    println!("| policy record size with {n} snapshots | {} bytes |", rec.encode().len());
    reg.shutdown().await;
    Ok(())
}

//! Snapshot policies (docs/policies.md) through a real `slatefs serve` and the `slatefs
//! dataset policy` CLI, with the policy clock moved by the tests (SLATEFS_TEST_CLOCK_FILE):
//! a simulated week of GFS retention checked by name, skip-when-unchanged, the catch-up rule
//! after a restart, hand-made snapshots and clones across pruning, failures reported and
//! retried, bad input refused, and no policy left behind by a crash in a dataset's deletion.
//! `SLATEFS_TEST_STORE=s3` runs every test on a real S3 server (tests/support/server.rs).

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use server::{Server, ServerOptions};

const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

struct Env {
    server: Server,
    clock: PathBuf,
    /// Holds the clock file (removed with it).
    _clock_dir: Option<tempfile::TempDir>,
}

fn ms(rfc3339: &str) -> u64 {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis() as u64
}

/// The snapshot name a slot gets, written out independently of the server's formatting.
fn name_at(prefix: &str, slot: u64) -> String {
    let t = Utc.timestamp_millis_opt(slot as i64).unwrap();
    format!("{prefix}-{}z", t.format("%Y%m%d-%H%M%S"))
}

impl Env {
    fn start(start_ms: u64, storage_keys: Option<String>, extra_args: Vec<String>) -> Env {
        let clock_dir = tempfile::tempdir().unwrap();
        let clock = clock_dir.path().join("clock");
        std::fs::write(&clock, start_ms.to_string()).unwrap();
        let server = Server::start_with(ServerOptions {
            env: vec![("SLATEFS_TEST_CLOCK_FILE".into(), clock.display().to_string())],
            storage_keys,
            extra_args,
            ..Default::default()
        });
        Env { server, clock, _clock_dir: Some(clock_dir) }
    }

    /// A server on the store of `other`, by the same clock, crashing at `crash_at` if given.
    fn on_store_of(other: &Env, crash_at: Option<&str>) -> Env {
        let mut env = vec![("SLATEFS_TEST_CLOCK_FILE".to_string(), other.clock.display().to_string())];
        if let Some(point) = crash_at {
            env.push(("SLATEFS_CRASH_AT".into(), point.into()));
        }
        let server = Server::start_with(ServerOptions {
            env,
            store_url: Some(other.server.store_url.clone()),
            ..Default::default()
        });
        Env { server, clock: other.clock.clone(), _clock_dir: None }
    }

    /// Waits for the server to abort at a crash point.
    fn crashed(&mut self, point: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.server.logs().contains(&format!("SLATEFS_CRASH_AT={point}")) {
            assert!(Instant::now() < deadline, "{point} was not reached:\n{}", self.server.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
        self.server.kill9();
    }

    fn cli(&self, args: &[&str]) -> Out {
        let mut all = vec!["dataset", "--admin", &self.server.admin];
        all.extend_from_slice(args);
        let o = self.server.cli(&all);
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
        o.stdout
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    fn policy(&self, dataset: &str) -> Value {
        self.json(&["policy", "show", dataset])["policies"][0].clone()
    }

    /// Moves the policy clock and waits until the runner has made a pass at that time (and,
    /// when `settled` says so, until the policy shows the run done).
    fn set_clock(&self, t: u64) {
        std::fs::write(&self.clock, t.to_string()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.json(&["policy", "show"]);
            if v["evaluated_unix_ms"].as_u64() == Some(t) {
                return;
            }
            assert!(Instant::now() < deadline, "the policy runner never evaluated at {t}: {v}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn snapshots(&self, dataset: &str) -> Vec<String> {
        let v = self.json(&["list-snapshots", dataset]);
        let mut names: Vec<String> =
            v.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
        names.sort();
        names
    }

    async fn write(&self, dataset: &str, file: &str, data: &[u8]) {
        let mut c = nfs::Client::mount(self.server.nfs_port, &format!("/{dataset}")).await.unwrap();
        let root = c.root.clone();
        let fh = match c.lookup(&root, file.as_bytes()).await {
            Ok(fh) => fh,
            Err(_) => c.create(&root, file.as_bytes(), 0o644).await.unwrap(),
        };
        c.write(&fh, 0, data).await.unwrap();
    }

    async fn read(&self, export: &str, file: &str) -> Vec<u8> {
        let mut c = nfs::Client::mount(self.server.nfs_port, export).await.unwrap();
        let fh = c.walk(file).await.unwrap();
        c.read_all(&fh).await.unwrap()
    }
}

/// What a policy with `keep_hourly`/`keep_daily` keeps of snapshots taken at `slots`, worked
/// out on the names alone: the newest name of each of the most recent hours ("YYYYMMDD-HH")
/// and days ("YYYYMMDD"), and the newest of all.
fn expected(prefix: &str, slots: &[u64], keep_hourly: usize, keep_daily: usize) -> BTreeSet<String> {
    let mut names: Vec<String> = slots.iter().map(|&s| name_at(prefix, s)).collect();
    names.sort();
    names.reverse();
    let stamp = |n: &String| n[prefix.len() + 1..].to_string();
    let mut keep = BTreeSet::new();
    for (count, width) in [(keep_hourly, 11), (keep_daily, 8)] {
        let mut seen: Vec<String> = Vec::new();
        for n in &names {
            let bucket = stamp(n)[..width].to_string();
            if seen.len() == count {
                break;
            }
            if !seen.contains(&bucket) {
                seen.push(bucket);
                keep.insert(n.clone());
            }
        }
    }
    keep.insert(names[0].clone());
    keep
}

#[tokio::test(flavor = "multi_thread")]
async fn a_simulated_week_keeps_what_the_rules_say() {
    let t0 = ms("2026-01-05T00:00:30Z");
    let env = Env::start(t0, None, vec![]);
    env.ok(&["create", "wk"]);
    env.write("wk", "f", b"first version").await;
    env.ok(&["snapshot", "wk", "by-hand", "--readonly"]);
    env.ok(&["policy", "set", "wk", "--every", "1m", "--keep-hourly", "24", "--keep-daily", "7"]);

    // A jump is one run (the catch-up rule), for the latest minute slot at or before the clock.
    let mut clocks = Vec::new();
    let mut t = ms("2026-01-05T00:01:00Z");
    while t < ms("2026-01-11T12:00:00Z") {
        clocks.push(t);
        t += 2 * HOUR;
    }
    let mut t = ms("2026-01-11T12:00:00Z");
    while t < ms("2026-01-11T23:40:00Z") {
        clocks.push(t + 20 * 1000); // 20 s past the slot: named for the slot
        t += 20 * MIN;
    }
    for m in 0..6 {
        clocks.push(ms("2026-01-11T23:40:00Z") + m * MIN);
    }
    let slots: Vec<u64> = clocks.iter().map(|c| c / MIN * MIN).collect();

    let mut first_name = None;
    for (i, &c) in clocks.iter().enumerate() {
        env.set_clock(c);
        if i == 0 {
            // Clone the policy's first snapshot; the policy prunes it later.
            let name = name_at("wk", slots[0]);
            assert_eq!(env.snapshots("wk"), vec!["by-hand".to_string(), name.clone()]);
            env.ok(&["clone", &name, "wk-restored"]);
            first_name = Some(name);
            env.write("wk", "f", b"second version").await;
        }
    }
    let want = expected("wk", &slots, 24, 7);
    let mut want_all: Vec<String> = want.iter().cloned().collect();
    want_all.push("by-hand".into());
    want_all.sort();
    assert_eq!(env.snapshots("wk"), want_all, "after {} runs", clocks.len());
    // 24 hours (the last 12 of Jan 11 at 20-minute steps, 6 earlier ones of Jan 11 and 6 of
    // Jan 10 at 2-hour steps) and the newest of Jan 5 to 9 (Jan 10's is among the hours).
    assert_eq!(want.len(), 24 + 5);

    let p = env.policy("wk");
    assert_eq!(p["last_run_unix_ms"].as_u64(), Some(*slots.last().unwrap()));
    assert_eq!(p["next_run_unix_ms"].as_u64(), Some(slots.last().unwrap() + MIN));
    let listed: BTreeSet<String> =
        p["snapshots"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    assert_eq!(listed, want);

    // The pruned first snapshot is gone from every listing, but its clone still reads it.
    let first = first_name.unwrap();
    assert!(!env.snapshots("wk").contains(&first));
    assert_eq!(env.read("/wk-restored", "f").await, b"first version");
    assert_eq!(env.read("/wk@by-hand", "f").await, b"first version");
    // A kept policy snapshot is an ordinary one: exported, and under .snapshots/.
    let newest = name_at("wk", *slots.last().unwrap());
    assert_eq!(env.read(&format!("/wk@{newest}"), "f").await, b"second version");
    assert_eq!(env.read("/wk", &format!(".snapshots/{newest}/f")).await, b"second version");
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_datasets_get_no_snapshots_and_a_restart_catches_up_once() {
    let t0 = ms("2026-03-01T10:00:10Z");
    let mut env = Env::start(t0, None, vec![]);
    env.ok(&["create", "idle"]);
    env.ok(&["create", "busy"]);
    env.write("idle", "f", b"x").await;
    env.ok(&["policy", "set", "idle", "--every", "1m", "--keep-last", "50", "--skip-unchanged"]);
    env.ok(&["policy", "set", "busy", "--every", "1m", "--keep-last", "50", "--prefix", "b"]);

    env.set_clock(t0 + MIN);
    let first = name_at("idle", ms("2026-03-01T10:01:00Z"));
    assert_eq!(env.snapshots("idle"), vec![first.clone()]);
    for m in 2..12 {
        env.set_clock(t0 + m * MIN);
    }
    // Ten more runs: each one recorded, none taken for the idle dataset.
    assert_eq!(env.snapshots("idle"), vec![first.clone()]);
    assert_eq!(env.policy("idle")["last_run_unix_ms"].as_u64(), Some(ms("2026-03-01T10:11:00Z")));
    assert_eq!(env.snapshots("busy").len(), 11);
    env.write("idle", "f", b"y").await;
    env.set_clock(t0 + 12 * MIN);
    assert_eq!(env.snapshots("idle"), vec![first, name_at("idle", ms("2026-03-01T10:12:00Z"))]);

    // The server is down for an hour: one catch-up snapshot, for the latest slot.
    assert!(env.server.stop());
    std::fs::write(&env.clock, (t0 + 72 * MIN).to_string()).unwrap();
    env.server.restart();
    env.set_clock(t0 + 72 * MIN);
    // The write sequence number survives the restart: still unchanged, still two.
    assert_eq!(env.snapshots("idle").len(), 2);
    assert_eq!(env.policy("idle")["last_run_unix_ms"].as_u64(), Some(ms("2026-03-01T11:12:00Z")));
    let busy = env.snapshots("busy");
    assert_eq!(busy.len(), 13, "{busy:?}");
    assert_eq!(busy.last().unwrap(), &name_at("b", ms("2026-03-01T11:12:00Z")));
    assert_eq!(busy[busy.len() - 2], name_at("b", ms("2026-03-01T10:12:00Z")));
    env.set_clock(t0 + 73 * MIN);
    assert_eq!(env.snapshots("busy").len(), 14);

    // Paused: nothing; resumed: the latest slot, once.
    env.ok(&["policy", "pause", "busy"]);
    assert!(env.policy("busy")["next_run_unix_ms"].is_null());
    env.set_clock(t0 + 80 * MIN);
    assert_eq!(env.snapshots("busy").len(), 14);
    env.ok(&["policy", "resume", "busy"]);
    env.set_clock(t0 + 80 * MIN + 1);
    assert_eq!(env.snapshots("busy").len(), 15);

    // Cleared: the snapshots stay, as hand-made ones; no more are taken.
    env.ok(&["policy", "clear", "busy"]);
    env.set_clock(t0 + 90 * MIN);
    assert_eq!(env.snapshots("busy").len(), 15);
    let o = env.cli(&["policy", "show", "busy"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("no snapshot policy"), "{}", o.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_runs_are_reported_and_retried() {
    let t0 = ms("2026-05-01T08:00:00Z");
    let down_dir = tempfile::tempdir().unwrap();
    let down = down_dir.path().join("store-down");
    let env = Env::start(
        t0,
        Some("unavailable_after_ms = 300\n".into()),
        vec!["--inject-faults".into(), format!("outage-file={}", down.display())],
    );
    env.ok(&["create", "d"]);
    env.ok(&["policy", "set", "d", "--every", "1m", "--keep-last", "5"]);
    // A hand-made snapshot holding the next slot's name: that slot fails, the next one runs.
    env.ok(&["snapshot", "d", &name_at("d", t0 + MIN), "--readonly"]);
    env.set_clock(t0 + MIN);
    let p = env.policy("d");
    assert!(p["last_error"].as_str().unwrap().contains("already exists"), "{p}");
    env.set_clock(t0 + 2 * MIN);
    let p = env.policy("d");
    assert!(p["last_error"].is_null(), "{p}");
    assert_eq!(p["snapshots"].as_array().unwrap().len(), 1);

    // The store away: the run fails, is reported, and is retried until the store is back.
    std::fs::write(&down, b"").unwrap();
    // The fault layer looks at the outage file at most every 100 ms: past that, every request
    // sees the store down, so the run below cannot slip through before the outage starts.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&env.clock, (t0 + 3 * MIN).to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let error = loop {
        let p = env.policy("d");
        if let Some(e) = p["last_error"].as_str() {
            break e.to_string();
        }
        assert!(Instant::now() < deadline, "no failure reported: {p}");
        std::thread::sleep(Duration::from_millis(100));
    };
    std::fs::remove_file(&down).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let p = env.policy("d");
        if p["last_run_unix_ms"].as_u64() == Some(t0 + 3 * MIN) && p["last_error"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "never retried after {error:?}: {p}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let names = env.snapshots("d");
    assert!(names.contains(&name_at("d", t0 + 3 * MIN)), "{names:?}");
    assert_eq!(names.len(), 3, "{names:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_schedules_and_retention_are_refused_and_change_nothing() {
    let env = Env::start(ms("2026-01-01T00:00:00Z"), None, vec![]);
    env.ok(&["create", "d"]);
    env.ok(&["policy", "set", "d", "--cron", "0 3 * * *", "--tz", "Europe/Paris", "--keep-daily", "7"]);
    let before = env.policy("d");
    assert_eq!(before["schedule"], "cron \"0 3 * * *\" Europe/Paris");
    // 03:00 in Paris is 02:00 UTC in winter.
    assert_eq!(before["next_run_unix_ms"].as_u64(), Some(ms("2026-01-01T02:00:00Z")));
    for (args, says) in [
        (vec!["--every", "5s", "--keep-last", "1"], "15m, 1h"),
        (vec!["--cron", "61 * * * *", "--keep-last", "1"], "5 fields"),
        (vec!["--cron", "@daily", "--tz", "Mars/Olympus", "--keep-last", "1"], "IANA"),
        (vec!["--every", "1h"], "--keep-last"),
        (vec!["--every", "1h", "--keep-last", "0"], "0"),
        (vec!["--every", "1h", "--max-age", "soon"], "30d"),
        (vec!["--every", "1h", "--cron", "@daily", "--keep-last", "1"], "cannot be used with"),
    ] {
        let mut all = vec!["policy", "set", "d"];
        all.extend_from_slice(&args);
        let o = env.cli(&all);
        assert_eq!(o.code, 2, "{args:?}: {}", o.stderr);
        assert!(o.stderr.contains(says), "{args:?}: {}", o.stderr);
    }
    let o = env.cli(&["policy", "set", "nope", "--every", "1h", "--keep-last", "1"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("does not exist"), "{}", o.stderr);
    assert_eq!(env.policy("d"), before);

    // The admin API checks the same things for any client.
    let mut c = slatefs::admin::client::connect(&slatefs::admin::AdminAddr::parse(&env.server.admin).unwrap(), None)
        .await
        .unwrap();
    let bad = slatefs::admin::proto::SetPolicyRequest {
        dataset: "d".into(),
        every: "1h".into(),
        ..Default::default()
    };
    let e = c.set_policy(bad).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("--keep-last"), "{}", e.message());
    assert_eq!(env.policy("d"), before);

    // Prefixes are names, and two policies cannot share one.
    env.ok(&["create", "e"]);
    let o = env.cli(&["policy", "set", "e", "--every", "1h", "--keep-last", "1", "--prefix", "d"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("already names its snapshots"), "{}", o.stderr);
    let o = env.cli(&["policy", "set", "e", "--every", "1h", "--keep-last", "1", "--prefix", "Bad/Name"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("[a-z0-9._-]"), "{}", o.stderr);

    // The table forms read as a person expects.
    let table = env.ok(&["policy", "show"]);
    assert!(table.starts_with("DATASET"), "{table}");
    assert!(table.contains("7 daily"), "{table}");
    let details = env.ok(&["policy", "show", "d"]);
    assert!(details.contains("names:         d-YYYYMMDD-HHMMSSz"), "{details}");

    // Deleting the dataset deletes its policy.
    env.ok(&["delete", "d"]);
    let v = env.json(&["policy", "show"]);
    assert!(v["policies"].as_array().unwrap().is_empty(), "{v}");
}

/// kill -9 in the middle of a policy snapshot and of a prune: after a restart the slot that was
/// not finished is taken once, nothing is left half-made, and the policy forgets what it pruned.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_in_a_run_leaves_one_snapshot_per_slot() {
    let t0 = ms("2026-07-01T00:00:00Z");
    let mut first = Env::start(t0, None, vec![]);
    first.ok(&["create", "d"]);
    first.ok(&["policy", "set", "d", "--every", "1m", "--keep-last", "1"]);
    assert!(first.server.stop());

    for (point, clock, want) in [
        ("policy-snapshot.after-checkpoint", t0 + MIN, vec![name_at("d", t0 + MIN)]),
        ("policy-prune.after-intent", t0 + 2 * MIN, vec![name_at("d", t0 + 2 * MIN)]),
    ] {
        // Started before the slot (a crash during start-up would look like a failed start).
        std::fs::write(&first.clock, (clock - MIN).to_string()).unwrap();
        let mut crashing = Env::on_store_of(&first, Some(point));
        std::fs::write(&first.clock, clock.to_string()).unwrap();
        crashing.crashed(point);
        let normal = Env::on_store_of(&first, None);
        normal.set_clock(clock);
        assert_eq!(normal.snapshots("d"), want, "after a crash at {point}");
        let mut normal = normal;
        assert!(normal.server.stop());
    }
    let last = Env::on_store_of(&first, None);
    last.set_clock(t0 + 3 * MIN);
    assert_eq!(last.snapshots("d"), vec![name_at("d", t0 + 3 * MIN)]);
    let p = last.policy("d");
    assert_eq!(p["snapshots"], serde_json::json!([name_at("d", t0 + 3 * MIN)]));
}

/// kill -9 between a dataset's deletion and its policy's: the next start sweeps the policy
/// record left behind, so a new dataset of the same name can have a policy with the same
/// snapshot names, and the deleted dataset's policy never runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_while_deleting_a_dataset_leaves_no_policy_behind() {
    let t0 = ms("2026-09-01T00:00:00Z");
    let mut first = Env::start(t0, None, vec![]);
    first.ok(&["create", "gone"]);
    first.ok(&["policy", "set", "gone", "--every", "1m", "--keep-last", "2"]);
    first.set_clock(t0 + MIN);
    assert_eq!(first.snapshots("gone"), vec![name_at("gone", t0 + MIN)]);
    assert!(first.server.stop());

    let point = "delete.after-intent";
    let mut crashing = Env::on_store_of(&first, Some(point));
    let o = crashing.cli(&["delete", "gone"]);
    assert_ne!(o.code, 0, "the delete must not finish: {}", o.stdout);
    crashing.crashed(point);

    let after = Env::on_store_of(&first, None);
    let v = after.json(&["policy", "show"]);
    assert!(v["policies"].as_array().unwrap().is_empty(), "{v}");
    // The deleted dataset's snapshot outlives it; the name and its prefix are free again.
    after.ok(&["create", "gone"]);
    after.ok(&["policy", "set", "gone", "--every", "1m", "--keep-last", "2"]);
    after.set_clock(t0 + 2 * MIN);
    let names: Vec<String> = after.json(&["list-snapshots", "gone"]).as_array().unwrap().iter()
        .map(|s| s["name"].as_str().unwrap().to_string()).collect();
    assert!(names.contains(&name_at("gone", t0 + 2 * MIN)), "{names:?}");
    let p = after.policy("gone");
    assert_eq!(p["snapshots"], serde_json::json!([name_at("gone", t0 + 2 * MIN)]), "{p}");
    assert!(after.server.logs().contains("removed the snapshot policy of deleted dataset"), "{}", after.server.logs());
}

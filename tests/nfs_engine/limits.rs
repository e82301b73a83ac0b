//! What a peer may make the server hold before it is anybody: connections, bytes of records
//! still arriving, the time such a record may take, and log lines about connections the server
//! closed. Included by tests/nfs_engine.rs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::nfs::*;
use super::raw_rpc::{self, accepted, Args, Cred, Raw};
use super::server::{Server, ServerOptions};

const LAST: u32 = 1 << 31;

fn server_with(nfs: &str) -> Server {
    Server::start_with(ServerOptions { config: Some(format!("[nfs]\n{nfs}")), ..Default::default() })
}

/// The server's resident set, from /proc.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

/// Whether the server closes `s` within `secs` (end of stream or a reset).
async fn closed_within(s: &mut TcpStream, secs: u64) -> bool {
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(Duration::from_secs(secs), s.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
}

fn null_call(xid: u32) -> Vec<u8> {
    raw_rpc::nfs_call(xid, 0, Cred::Unix { uid: 0, gid: 0 }, &Args::default())
}

/// Whether a NULL call on a new connection is answered.
async fn served(port: u16, xid: u32) -> bool {
    let mut r = Raw::connect(port).await;
    r.send(&null_call(xid)).await;
    r.recv_within(10).await.is_some_and(|rep| accepted(&rep) == (xid, 0, &[][..]))
}

fn warn_lines(server: &Server, about: &str) -> usize {
    server.logs().lines().filter(|l| l.contains("WARN") && l.contains(about)).count()
}

/// At most one line per 10 s per kind of event (and the first at once), however many events.
fn warn_bound(since: Instant) -> usize {
    since.elapsed().as_secs() as usize / 10 + 2
}

/// 300 connections each announce a 4 MiB record and send its first MiB, then stall. They get
/// the connection's free 64 KiB each and share the 16 MiB budget; the rest stays in the kernel's
/// socket buffers or with the clients. Before the budget, the server read it all: 300 MiB more.
/// Meanwhile a normal client is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_hold_bounded_memory_and_clients_are_served() {
    const CONNECTIONS: usize = 300;
    const SENT: usize = 1 << 20;
    let server = server_with("record_memory = \"16MiB\"\n");
    let port = server.nfs_port;
    let pid = server.pid();
    let mut c = Client::mount(port, "/").await.unwrap();
    let root = c.root.clone();
    let at_start = rss_mib(pid);

    let sent = Arc::new(AtomicU64::new(0));
    let mut slow = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let sent = sent.clone();
        slow.push(tokio::spawn(async move {
            s.write_all(&(LAST | (4 << 20)).to_be_bytes()).await.unwrap();
            let chunk = vec![0x5au8; 64 * 1024];
            for _ in 0..SENT / chunk.len() {
                if s.write_all(&chunk).await.is_err() {
                    return;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            std::future::pending::<()>().await;
        }));
    }
    // Until neither what the clients got out nor the server's memory has moved for 3 s.
    let (mut peak, mut last_sent, mut last_rss, mut quiet) = (0f64, 0, 0f64, 0);
    let deadline = Instant::now() + Duration::from_secs(180);
    while quiet < 12 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (now_sent, rss) = (sent.load(Ordering::Relaxed), rss_mib(pid));
        peak = peak.max(rss);
        quiet = if now_sent == last_sent && rss < last_rss + 1.0 { quiet + 1 } else { 0 };
        (last_sent, last_rss) = (now_sent, rss.max(last_rss));
    }
    eprintln!(
        "RSS {at_start:.0} MiB at start, peak {peak:.0} MiB with {CONNECTIONS} slow connections; \
         {} MiB left the clients",
        last_sent >> 20
    );

    // A normal client is served meanwhile: its calls fit the connection's free part.
    let f = c.create(&root, b"meanwhile", 0o644).await.unwrap();
    let data = pattern(7, 32 * 1024);
    c.write(&f, 0, &data).await.unwrap();
    assert_eq!(c.read_all(&f).await.unwrap(), data);
    assert!(c.readdir_all(&root).await.unwrap().contains(&b"meanwhile".to_vec()));
    let mut fresh = Client::mount(port, "/").await.unwrap();
    assert_eq!(fresh.lookup(&root, b"meanwhile").await.unwrap(), f);
    peak = peak.max(rss_mib(pid));

    assert!(peak < 150.0, "the server grew to {peak:.0} MiB RSS (from {at_start:.0}) for {CONNECTIONS} stalled records");
    for t in slow {
        t.abort();
    }
}

/// A record that does not finish in `record_timeout_ms` costs its connection, and the budget it
/// held comes back; an idle connection is not timed, and a record that takes a little while but
/// finishes is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_record_closes_its_connection_after_the_timeout() {
    let server = server_with("record_memory = \"16MiB\"\nrecord_timeout_ms = 2000\n");
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let root = c.root.clone();
    let mut idle = Raw::connect(port).await;
    let started = Instant::now();

    // A record of 1000 bytes of which 10 arrive; and 20 records of 4 MiB with 1 MiB sent, more
    // than the whole budget.
    let mut stalled = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stalled.write_all(&(LAST | 1000).to_be_bytes()).await.unwrap();
    stalled.write_all(&[0u8; 10]).await.unwrap();
    let mut hogs = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(&(LAST | (4 << 20)).to_be_bytes()).await.unwrap();
        let chunk = vec![1u8; 1 << 20];
        // The server stops reading once the budget is spent; the kernel buffers the rest.
        let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(&chunk)).await;
        hogs.push(s);
    }

    assert!(closed_within(&mut stalled, 60).await, "the stalled record's connection stays open");
    for (i, s) in hogs.iter_mut().enumerate() {
        assert!(closed_within(s, 60).await, "hog {i} stays open");
    }
    // The idle connection was never timed and still serves.
    idle.send(&null_call(41)).await;
    let rep = idle.recv_within(10).await.expect("the idle connection still answers");
    assert_eq!(accepted(&rep).0, 41);
    // A call sent in two pieces, well within the timeout, is answered.
    let call = null_call(42);
    let mut r = Raw::connect(port).await;
    r.send(&call[..10]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    r.send(&call[10..]).await;
    assert_eq!(accepted(&r.recv_within(10).await.expect("a slow but complete call is answered")).0, 42);
    // The budget the closed connections held is back: a 1 MiB WRITE needs most of it.
    let f = c.create(&root, b"after", 0o644).await.unwrap();
    let big = pattern(3, 1 << 20);
    let wrote = tokio::time::timeout(Duration::from_secs(30), c.write(&f, 0, &big)).await;
    assert_eq!(wrote.expect("a 1 MiB WRITE waits for a budget that never comes back"), Ok(1 << 20));
    assert_eq!(c.read_all(&f).await.unwrap(), big);

    let lines = warn_lines(&server, "still unfinished");
    assert!((1..=warn_bound(started)).contains(&lines), "{lines} WARN lines for 21 stalled records:\n{}", server.logs());
}

/// Connections that send what is not ONC RPC are closed, and a flood of them is a handful of
/// log lines whose counts of the ones not logged add up to every connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_closed_for_garbage_are_logged_with_a_rate_limit() {
    const BAD: usize = 200;
    let server = Server::start();
    let port = server.nfs_port;
    let started = Instant::now();
    let garbage = |i: u32| {
        // A well-framed record whose message type is REPLY: nobody to answer.
        let mut rec = (LAST | 8).to_be_bytes().to_vec();
        rec.extend_from_slice(&i.to_be_bytes());
        rec.extend_from_slice(&1u32.to_be_bytes());
        rec
    };
    for i in 0..BAD {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(&garbage(i as u32)).await.unwrap();
        assert!(closed_within(&mut s, 30).await, "connection {i} stays open after garbage");
    }
    let lines = warn_lines(&server, "not an RPC call");
    assert!((1..=warn_bound(started)).contains(&lines), "{lines} WARN lines for {BAD} bad connections:\n{}", server.logs());

    // One more once the interval has passed is logged, with the count of those held back.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(&garbage(9999)).await.unwrap();
    assert!(closed_within(&mut s, 30).await);
    let logs = server.logs();
    let logged: Vec<&str> = logs.lines().filter(|l| l.contains("WARN") && l.contains("not an RPC call")).collect();
    let held_back: usize = logged
        .iter()
        .filter_map(|l| l.split("(and ").nth(1)?.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(logged.len() + held_back, BAD + 1, "every bad connection is logged or counted:\n{logs}");
    assert!(served(port, 1).await, "the server still serves");
}

/// `max_connections`: one more connection is closed as it arrives, and served again once a
/// place is free; the refusals are logged with a rate limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed() {
    const MAX: usize = 20;
    let server = server_with(&format!("max_connections = {MAX}\n"));
    let port = server.nfs_port;
    let started = Instant::now();
    let mut open = Vec::new();
    for i in 0..MAX {
        let mut r = Raw::connect(port).await;
        let rep = r.roundtrip(&null_call(i as u32)).await;
        assert_eq!(accepted(&rep).0, i as u32);
        open.push(r);
    }
    for i in 0..50 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let _ = s.write_all(&null_call(100 + i)).await;
        assert!(closed_within(&mut s, 10).await, "connection {} over the limit of {MAX} was served", MAX + 1 + i as usize);
    }
    // The ones admitted go on.
    let rep = open[0].roundtrip(&null_call(200)).await;
    assert_eq!(accepted(&rep).0, 200);
    // A place frees when a connection ends (the server notices the end of stream).
    drop(open.pop());
    let mut ok = false;
    for attempt in 0..100 {
        if served(port, 300 + attempt).await {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "no connection is served after one of the {MAX} closed");
    let lines = warn_lines(&server, "connections in use");
    assert!((1..=warn_bound(started)).contains(&lines), "{lines} WARN lines for 50 refusals:\n{}", server.logs());
}

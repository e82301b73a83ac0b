//! Workloads 1–4, once over NFS (the `nfs3_client` crate) and once on a local directory
//! (std::fs, the disk's own figure). Every figure is a rate measured around the work itself.

use crate::client::{self, Conn, Endpoint};
use anyhow::{bail, Context, Result};
use nfs3_types::nfs3::{nfs_fh3, stable_how};
use rand::{Rng, RngCore, SeedableRng};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Params {
    pub file_size: u64,
    pub seq_req: u64,
    pub seq_inflight: usize,
    pub rand_inflight: usize,
    pub rand_time: Duration,
    pub rand_settle: Duration,
    pub meta_files: usize,
    pub meta_inflight: usize,
    pub small_files: usize,
    pub small_dirs: usize,
    pub small_size: usize,
    pub small_inflight: usize,
}

/// One measured figure: name of the row and value.
pub type Figures = Vec<(&'static str, f64)>;

pub const ROWS: &[(&str, &str)] = &[
    ("seq write", "MB/s"),
    ("seq read", "MB/s"),
    ("4k rand write", "ops/s"),
    ("4k rand read", "ops/s"),
    ("create", "ops/s"),
    ("stat", "ops/s"),
    ("list", "entries/s"),
    ("delete", "ops/s"),
    ("small write", "files/s"),
    ("small read", "files/s"),
];

fn random_buf(len: usize, seed: u64) -> Arc<Vec<u8>> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    Arc::new(v)
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

// ---------------------------------------------------------------- NFS

/// `mark(row, units)` is called as each row's work ends, with how many of the row's units it did
/// (MiB, ops, entries, files): the caller reads the S3 request counts there.
pub async fn nfs_all(ep: &Endpoint, p: &Params, log: &dyn Fn(&str), mark: &dyn Fn(&'static str, f64)) -> Result<Figures> {
    let mut c = client::connect_wait(ep, Duration::from_secs(30)).await?;
    let root = c.root_nfs_fh3();
    let info = client::fsinfo(&mut c, &root).await?;
    let wmax = (info.wtmax as u64).min(p.seq_req).max(4096);
    let rmax = (info.rtmax as u64).min(p.seq_req).max(4096);
    log(&format!("fsinfo wtmax={} rtmax={} → requests of {wmax}/{rmax} bytes", info.wtmax, info.rtmax));
    let top = client::mkdir(&mut c, &root, &format!("nfsbench-{}", std::process::id())).await?;
    let mut figs = Figures::new();

    // 1. sequential write then read.
    let file = client::create(&mut c, &top, "big", false).await?;
    let conns = client::pool(ep, p.seq_inflight).await?;
    let buf = random_buf(wmax as usize, 1);
    let next = Arc::new(AtomicU64::new(0));
    let size = p.file_size;
    let t = Instant::now();
    let conns = client::par(conns, |mut cn, _| {
        let (next, buf, file) = (next.clone(), buf.clone(), file.clone());
        async move {
            loop {
                let off = next.fetch_add(wmax, Ordering::Relaxed);
                if off >= size {
                    return Ok(cn);
                }
                let len = wmax.min(size - off) as usize;
                client::write(&mut cn, &file, off, &buf[..len], stable_how::UNSTABLE).await?;
            }
        }
    })
    .await?;
    client::commit(&mut c, &file).await?;
    let d = t.elapsed();
    figs.push(("seq write", mbps(size, d)));
    mark("seq write", size as f64 / 1048576.0);
    log(&format!("seq write {size} bytes in {d:.2?}"));
    let got = client::getattr(&mut c, &file).await?.size;
    if got != size {
        bail!("after the sequential write the file has {got} bytes, not {size}");
    }

    let next = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let conns = client::par(conns, |mut cn, _| {
        let (next, file) = (next.clone(), file.clone());
        async move {
            loop {
                let off = next.fetch_add(rmax, Ordering::Relaxed);
                if off >= size {
                    return Ok(cn);
                }
                let len = rmax.min(size - off) as u32;
                client::read(&mut cn, &file, off, len).await?;
            }
        }
    })
    .await?;
    let d = t.elapsed();
    figs.push(("seq read", mbps(size, d)));
    mark("seq read", size as f64 / 1048576.0);
    log(&format!("seq read in {d:.2?}"));
    drop(conns);

    // 2. 4 KiB random write and read on that file, for a fixed time.
    if !p.rand_settle.is_zero() {
        log(&format!("waiting {:.0?} for the sequential file's compaction", p.rand_settle));
        tokio::time::sleep(p.rand_settle).await;
    }
    let conns = client::pool(ep, p.rand_inflight).await?;
    let blocks = (size / 4096).max(1);
    let buf = random_buf(4096, 2);
    let ops = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let deadline = t + p.rand_time;
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
    let d = t.elapsed();
    let n = ops.load(Ordering::Relaxed) as usize;
    figs.push(("4k rand write", rate(n, d)));
    mark("4k rand write", n as f64);
    log(&format!("rand write {n} ops in {d:.2?}"));

    let ops = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let deadline = t + p.rand_time;
    let conns = client::par(conns, |mut cn, i| {
        let (ops, file) = (ops.clone(), file.clone());
        async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(200 + i as u64);
            while Instant::now() < deadline {
                let off = rng.gen_range(0..blocks) * 4096;
                client::read(&mut cn, &file, off, 4096).await?;
                ops.fetch_add(1, Ordering::Relaxed);
            }
            Ok(cn)
        }
    })
    .await?;
    let d = t.elapsed();
    let n = ops.load(Ordering::Relaxed) as usize;
    figs.push(("4k rand read", rate(n, d)));
    mark("4k rand read", n as f64);
    log(&format!("rand read {n} ops in {d:.2?}"));
    drop(conns);
    client::remove(&mut c, &top, "big").await?;

    // 3. metadata in one directory.
    let dir = client::mkdir(&mut c, &top, "meta").await?;
    let conns = client::pool(ep, p.meta_inflight).await?;
    let nfiles = p.meta_files as u64;
    type Op = fn(&mut Conn, nfs_fh3, String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + '_>>;
    async fn each(conns: Vec<Conn>, dir: &nfs_fh3, n: u64, op: Op) -> Result<(Vec<Conn>, Duration)> {
        let next = Arc::new(AtomicU64::new(0));
        let t = Instant::now();
        let conns = client::par(conns, |mut cn, _| {
            let (next, dir) = (next.clone(), dir.clone());
            async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok(cn);
                    }
                    op(&mut cn, dir.clone(), format!("f{i:07}")).await?;
                }
            }
        })
        .await?;
        Ok((conns, t.elapsed()))
    }
    let (conns, d) = each(conns, &dir, nfiles, |c, d, n| Box::pin(async move { client::create(c, &d, &n, true).await.map(|_| ()) })).await?;
    figs.push(("create", rate(p.meta_files, d)));
    mark("create", p.meta_files as f64);
    log(&format!("create {} in {d:.2?}", p.meta_files));
    let (conns, d) = each(conns, &dir, nfiles, |c, d, n| Box::pin(async move { client::lookup(c, &d, &n).await.map(|_| ()) })).await?;
    figs.push(("stat", rate(p.meta_files, d)));
    mark("stat", p.meta_files as f64);
    log(&format!("stat (LOOKUP) {} in {d:.2?}", p.meta_files));
    let t = Instant::now();
    let listed = client::readdirplus_count(&mut c, &dir).await?;
    let d = t.elapsed();
    if listed != p.meta_files {
        bail!("READDIRPLUS listed {listed} entries, expected {}", p.meta_files);
    }
    figs.push(("list", rate(listed, d)));
    mark("list", listed as f64);
    log(&format!("list {listed} in {d:.2?}"));
    let (conns, d) = each(conns, &dir, nfiles, |c, d, n| Box::pin(async move { client::remove(c, &d, &n).await })).await?;
    figs.push(("delete", rate(p.meta_files, d)));
    mark("delete", p.meta_files as f64);
    log(&format!("delete {} in {d:.2?}", p.meta_files));
    drop(conns);

    // 4. small files across directories: CREATE + WRITE + COMMIT each, then LOOKUP + READ.
    let sdir = client::mkdir(&mut c, &top, "small").await?;
    let mut dirs = Vec::new();
    for k in 0..p.small_dirs {
        dirs.push(client::mkdir(&mut c, &sdir, &format!("d{k:03}")).await?);
    }
    let dirs = Arc::new(dirs);
    let conns = client::pool(ep, p.small_inflight).await?;
    let buf = random_buf(p.small_size, 3);
    let n = p.small_files as u64;
    let next = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let conns = client::par(conns, |mut cn, _| {
        let (next, dirs, buf) = (next.clone(), dirs.clone(), buf.clone());
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok(cn);
                }
                let d = &dirs[i as usize % dirs.len()];
                let f = client::create(&mut cn, d, &format!("s{i:06}"), true).await?;
                client::write(&mut cn, &f, 0, &buf, stable_how::UNSTABLE).await?;
                client::commit(&mut cn, &f).await?;
            }
        }
    })
    .await?;
    let d = t.elapsed();
    figs.push(("small write", rate(p.small_files, d)));
    mark("small write", p.small_files as f64);
    log(&format!("small write {} in {d:.2?}", p.small_files));
    let next = Arc::new(AtomicU64::new(0));
    let size = p.small_size as u32;
    let t = Instant::now();
    let conns = client::par(conns, |mut cn, _| {
        let (next, dirs) = (next.clone(), dirs.clone());
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok(cn);
                }
                let d = &dirs[i as usize % dirs.len()];
                let (f, _) = client::lookup(&mut cn, d, &format!("s{i:06}")).await?;
                client::read(&mut cn, &f, 0, size).await?;
            }
        }
    })
    .await?;
    let d = t.elapsed();
    figs.push(("small read", rate(p.small_files, d)));
    mark("small read", p.small_files as f64);
    log(&format!("small read {} in {d:.2?}", p.small_files));
    drop(conns);
    Ok(figs)
}

/// Sequentially writes `size` bytes into a new file `name` in the root of `ep` (for datasets
/// that snapshots are then taken of).
pub async fn nfs_fill(ep: &Endpoint, name: &str, size: u64, req: u64, inflight: usize) -> Result<Duration> {
    let mut c = client::connect_wait(ep, Duration::from_secs(30)).await?;
    let root = c.root_nfs_fh3();
    let file = client::create(&mut c, &root, name, false).await?;
    let conns = client::pool(ep, inflight).await?;
    let buf = random_buf(req as usize, 9);
    let next = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    client::par(conns, |mut cn, _| {
        let (next, buf, file) = (next.clone(), buf.clone(), file.clone());
        async move {
            loop {
                let off = next.fetch_add(req, Ordering::Relaxed);
                if off >= size {
                    return Ok(cn);
                }
                let len = req.min(size - off) as usize;
                client::write(&mut cn, &file, off, &buf[..len], stable_how::UNSTABLE).await?;
            }
        }
    })
    .await?;
    client::commit(&mut c, &file).await?;
    Ok(t.elapsed())
}

// ---------------------------------------------------------------- the disk (std::fs)

/// Runs `f(thread_index)` on `n` threads and returns the first error.
fn threads<F>(n: usize, f: F) -> Result<()>
where
    F: Fn(usize) -> Result<()> + Sync,
{
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n).map(|i| s.spawn({
            let f = &f;
            move || f(i)
        })).collect();
        let mut r = Ok(());
        for h in hs {
            let x = h.join().map_err(|_| anyhow::anyhow!("thread panicked")).and_then(|x| x);
            if r.is_ok() {
                r = x;
            }
        }
        r
    })
}

/// Drops the file's pages from the page cache, so reads go to the disk.
fn drop_cache(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    unsafe {
        libc::fdatasync(f.as_raw_fd());
        libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
}

pub fn disk_all(dir: &Path, p: &Params, log: &dyn Fn(&str)) -> Result<Figures> {
    let top = dir.join(format!("nfsbench-{}", std::process::id()));
    std::fs::create_dir_all(&top)?;
    let mut figs = Figures::new();
    let size = p.file_size;
    let req = p.seq_req;

    // 1. sequential: pwrite from `seq_inflight` threads, then fsync; read after dropping the cache.
    let path = top.join("big");
    let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    let buf = random_buf(req as usize, 1);
    let next = AtomicU64::new(0);
    let t = Instant::now();
    threads(p.seq_inflight, |_| loop {
        let off = next.fetch_add(req, Ordering::Relaxed);
        if off >= size {
            return Ok(());
        }
        let len = req.min(size - off) as usize;
        f.write_all_at(&buf[..len], off)?;
    })?;
    f.sync_all()?;
    let d = t.elapsed();
    figs.push(("seq write", mbps(size, d)));
    log(&format!("seq write {size} bytes in {d:.2?} (pwrite + fsync)"));
    drop_cache(&f);
    let next = AtomicU64::new(0);
    let t = Instant::now();
    threads(p.seq_inflight, |_| {
        let mut b = vec![0u8; req as usize];
        loop {
            let off = next.fetch_add(req, Ordering::Relaxed);
            if off >= size {
                return Ok(());
            }
            let len = req.min(size - off) as usize;
            f.read_exact_at(&mut b[..len], off)?;
        }
    })?;
    let d = t.elapsed();
    figs.push(("seq read", mbps(size, d)));
    log(&format!("seq read in {d:.2?} (page cache dropped first)"));

    // 2. random 4 KiB, fixed time; write then fsync, read after dropping the cache.
    let blocks = (size / 4096).max(1);
    let buf = random_buf(4096, 2);
    let ops = AtomicU64::new(0);
    let t = Instant::now();
    let deadline = t + p.rand_time;
    threads(p.rand_inflight, |i| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(100 + i as u64);
        while Instant::now() < deadline {
            f.write_all_at(&buf, rng.gen_range(0..blocks) * 4096)?;
            ops.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    })?;
    f.sync_all()?;
    let d = t.elapsed();
    let n = ops.load(Ordering::Relaxed) as usize;
    figs.push(("4k rand write", rate(n, d)));
    log(&format!("rand write {n} ops in {d:.2?}"));
    drop_cache(&f);
    let ops = AtomicU64::new(0);
    let t = Instant::now();
    let deadline = t + p.rand_time;
    threads(p.rand_inflight, |i| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(200 + i as u64);
        let mut b = [0u8; 4096];
        while Instant::now() < deadline {
            f.read_exact_at(&mut b, rng.gen_range(0..blocks) * 4096)?;
            ops.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    })?;
    let d = t.elapsed();
    let n = ops.load(Ordering::Relaxed) as usize;
    figs.push(("4k rand read", rate(n, d)));
    log(&format!("rand read {n} ops in {d:.2?}"));
    drop(f);
    std::fs::remove_file(&path)?;

    // 3. metadata (no fsync: the local filesystem's own speed).
    let mdir = top.join("meta");
    std::fs::create_dir(&mdir)?;
    let n = p.meta_files as u64;
    let each = |op: &(dyn Fn(PathBuf) -> std::io::Result<()> + Sync)| -> Result<Duration> {
        let next = AtomicU64::new(0);
        let t = Instant::now();
        threads(p.meta_inflight, |_| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                return Ok(());
            }
            op(mdir.join(format!("f{i:07}")))?;
        })?;
        Ok(t.elapsed())
    };
    let d = each(&|p| std::fs::OpenOptions::new().write(true).create_new(true).open(p).map(|_| ()))?;
    figs.push(("create", rate(p.meta_files, d)));
    let d = each(&|p| std::fs::metadata(p).map(|_| ()))?;
    figs.push(("stat", rate(p.meta_files, d)));
    let t = Instant::now();
    let mut listed = 0;
    for e in std::fs::read_dir(&mdir)? {
        e?.metadata()?; // like READDIRPLUS: names and attributes
        listed += 1;
    }
    let d = t.elapsed();
    if listed != p.meta_files {
        bail!("listed {listed}, expected {}", p.meta_files);
    }
    figs.push(("list", rate(listed, d)));
    let d = each(&|p| std::fs::remove_file(p))?;
    figs.push(("delete", rate(p.meta_files, d)));
    log("metadata done");

    // 4. small files: write + fsync each (what COMMIT asks of an NFS server), then read.
    let sdir = top.join("small");
    let dirs: Vec<PathBuf> = (0..p.small_dirs).map(|k| sdir.join(format!("d{k:03}"))).collect();
    for d in &dirs {
        std::fs::create_dir_all(d)?;
    }
    let buf = random_buf(p.small_size, 3);
    let n = p.small_files as u64;
    let next = AtomicU64::new(0);
    let t = Instant::now();
    threads(p.small_inflight, |_| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            return Ok(());
        }
        let path = dirs[i as usize % dirs.len()].join(format!("s{i:06}"));
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&path).with_context(|| path.display().to_string())?;
        std::io::Write::write_all(&mut f, &buf)?;
        f.sync_all()?;
    })?;
    let d = t.elapsed();
    figs.push(("small write", rate(p.small_files, d)));
    let next = AtomicU64::new(0);
    let t = Instant::now();
    threads(p.small_inflight, |_| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            return Ok(());
        }
        let data = std::fs::read(dirs[i as usize % dirs.len()].join(format!("s{i:06}")))?;
        if data.len() != buf.len() {
            bail!("short small file");
        }
    })?;
    let d = t.elapsed();
    figs.push(("small read", rate(p.small_files, d)));
    log("small files done");
    let _ = std::fs::remove_dir_all(&top);
    Ok(figs)
}

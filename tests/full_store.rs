//! A local store on a full disk, through a real NFSv3 client against a real `slatefs serve`
//! whose store is a small tmpfs: a full store answers NFS3ERR_NOSPC (not JUKEBOX or IO) and
//! says so in its log, a change answered NOSPC is not applied (not even after a restart),
//! removes go on, and once space is freed on the disk, writes succeed again.
//!
//! Needs root (it mounts a tmpfs); the mount is removed when the test ends, failed or not.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;

use nfs::*;
use server::{Server, ServerOptions};

/// A tmpfs of its own, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("cannot run mount");
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn free(&self) -> u64 {
        slatefs::store::space::disk_space(self.path()).unwrap().1
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(self.dir.path()).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

const MIB: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_answers_nospc_and_applies_nothing_it_refused() {
    let disk = Tmpfs::mount("64m");
    let store: PathBuf = disk.path().join("store");
    let mut server = Server::start_with(ServerOptions {
        store_url: Some(format!("file://{}", store.display())),
        config: Some("[storage]\nspace_reserve = \"8MiB\"\n".into()),
        ..Default::default()
    });
    // Ballast the test frees at the end: what is left for the store is 20 MiB.
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![7u8; (disk.free() - 20 * MIB as u64) as usize]).unwrap();

    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let root = c.root.clone();
    let dir = c.mkdir(&root, b"d", 0o755).await.unwrap();
    // Fill: 1 MiB FILE_SYNC writes into new files until the server refuses one.
    let mut written: Vec<(Vec<u8>, usize)> = Vec::new();
    let refusal = 'fill: loop {
        let i = written.len();
        let name = format!("f{i}").into_bytes();
        let f = match c.create(&dir, &name, 0o644).await {
            Ok(f) => f,
            Err(e) => break 'fill e,
        };
        written.push((name, 0));
        for part in 0..4 {
            match c.write(&f, (part * MIB) as u64, &pattern(i as u64 * 4 + part as u64, MIB)).await {
                Ok(_) => written.last_mut().unwrap().1 += 1,
                Err(e) => break 'fill e,
            }
        }
        assert!(written.len() < 40, "20 MiB never filled up");
    };
    let refused_file = format!("f{}", written.len()).into_bytes();
    assert_eq!(refusal, nfsstat3::NFS3ERR_NOSPC, "a full store is NOSPC (after {} files)", written.len());
    assert!(written.len() >= 2, "the store took data before it was full");
    assert!(server.logs().contains("object store full"), "the log says the store is full:\n{}", server.logs());

    // Every change that needs space is refused, and none of them happened.
    assert_eq!(c.create(&dir, b"refused", 0o644).await.unwrap_err(), nfsstat3::NFS3ERR_NOSPC);
    assert_eq!(c.mkdir(&dir, b"refused-dir", 0o755).await.unwrap_err(), nfsstat3::NFS3ERR_NOSPC);
    assert_eq!(c.symlink(&dir, b"refused-link", b"f0").await.unwrap_err(), nfsstat3::NFS3ERR_NOSPC);
    let first = c.lookup(&dir, &written[0].0).await.unwrap();
    let size_before = c.getattr(&first).await.unwrap().size;
    assert_eq!(c.write(&first, size_before, b"more").await.unwrap_err(), nfsstat3::NFS3ERR_NOSPC);
    assert_eq!(c.getattr(&first).await.unwrap().size, size_before, "the refused write did not happen");
    for n in [&b"refused"[..], b"refused-dir", b"refused-link"] {
        assert_eq!(c.lookup(&dir, n).await.unwrap_err(), nfsstat3::NFS3ERR_NOENT);
    }

    // Removing is still possible: it needs a little space too, which the reserve keeps.
    let (gone, _) = written.remove(0);
    c.remove(&dir, &gone).await.unwrap();
    assert_eq!(c.lookup(&dir, &gone).await.unwrap_err(), nfsstat3::NFS3ERR_NOENT);

    // A crash changes none of it: what was acknowledged is there, what was refused is not.
    server.kill9();
    server.restart();
    let mut c = Client::mount(port, "/").await.unwrap();
    let names = c.readdir_all(&dir).await.unwrap();
    for n in [&b"refused"[..], b"refused-dir", b"refused-link", &gone, &refused_file] {
        assert!(!names.iter().any(|x| x == n), "{} exists after the restart", String::from_utf8_lossy(n));
    }
    for (name, parts) in &written {
        let f = c.lookup(&dir, name).await.unwrap();
        let i: u64 = String::from_utf8_lossy(&name[1..]).parse().unwrap();
        let data = c.read_all(&f).await.unwrap();
        assert_eq!(data.len(), parts * MIB, "{}: every acknowledged write", String::from_utf8_lossy(name));
        for p in 0..*parts {
            assert!(data[p * MIB..(p + 1) * MIB] == pattern(i * 4 + p as u64, MIB)[..], "f{i} part {p}");
        }
    }
    assert_eq!(c.create(&dir, b"still-full", 0o644).await.unwrap_err(), nfsstat3::NFS3ERR_NOSPC);

    // Space freed on the disk: writes succeed again.
    std::fs::remove_file(&ballast).unwrap();
    let f = c.create(&dir, b"after", 0o644).await.unwrap();
    c.write(&f, 0, &pattern(99, MIB)).await.unwrap();
    assert_eq!(c.read_all(&f).await.unwrap(), pattern(99, MIB));
    assert!(server.logs().contains("object store has room again"));
    drop(server);
}

/// Every file under `dir` with its size.
fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => files.push((e.path(), m.len())),
                Err(_) => {}
            }
        }
    }
    files
}

fn bytes_under(dir: &Path) -> u64 {
    files_under(dir).iter().map(|(_, len)| len).sum()
}

/// The files under `dir` and their sizes, a line each (for a failure's message).
fn listing(dir: &Path) -> String {
    files_under(dir).iter().map(|(p, len)| format!("{len} {}\n", p.display())).collect()
}

/// Deleting files gives their space back to the disk once compaction and collection have run
/// (`[maintenance]` intervals shortened here; the defaults are in the README): the store falls
/// from what was written to near what is still live, and a full store takes writes again
/// without anything freed outside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_files_give_their_space_back() {
    let disk = Tmpfs::mount("64m");
    let store: PathBuf = disk.path().join("store");
    let server = Server::start_with(ServerOptions {
        store_url: Some(format!("file://{}", store.display())),
        config: Some(
            "[storage]\nspace_reserve = \"4MiB\"\n\
             [maintenance]\ngc_interval_ms = 500\ngc_min_age_ms = 2000\ncompaction_poll_ms = 200\nidle_close_ms = 0\n"
                .into(),
        ),
        ..Default::default()
    });
    let mut c = Client::mount(server.nfs_port, "/").await.unwrap();
    let root = c.root.clone();
    let keep = c.create(&root, b"keep", 0o644).await.unwrap();
    c.write(&keep, 0, &pattern(1, MIB)).await.unwrap();
    let baseline = bytes_under(&store);
    // Ballast: the store has 40 MiB of room, and 36 MiB of files are written into it.
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![7u8; (disk.free() - 40 * MIB as u64) as usize]).unwrap();
    let mut names = Vec::new();
    'fill: for i in 0..9u64 {
        let name = format!("f{i}").into_bytes();
        let f = c.create(&root, &name, 0o644).await.unwrap();
        names.push(name);
        for part in 0..4u64 {
            if let Err(e) = c.write(&f, part * MIB as u64, &pattern(10 + i * 4 + part, MIB)).await {
                assert_eq!(e, nfsstat3::NFS3ERR_NOSPC);
                break 'fill;
            }
        }
    }
    let full = bytes_under(&store);
    assert!(full >= baseline + 24 * MIB as u64, "the files are in the store: {baseline} -> {full} bytes");

    for n in &names {
        c.remove(&root, n).await.unwrap();
    }
    // Compaction drops the removed chunks, collection deletes the objects nothing refers to.
    let removed_at = std::time::Instant::now();
    let deadline = removed_at + std::time::Duration::from_secs(120);
    let mut now = bytes_under(&store);
    while now > baseline + 8 * MIB as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the store kept the removed files' bytes: {baseline} before, {full} full, {now} now\n{}\n{}",
            listing(&store),
            server.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        now = bytes_under(&store);
    }
    eprintln!("store bytes: {baseline} before, {full} full, {now} {:?} after the removes", removed_at.elapsed());
    // The freed room is usable: 16 MiB more fit without the ballast going.
    let f = c.create(&root, b"again", 0o644).await.unwrap();
    for part in 0..16u64 {
        c.write(&f, part * MIB as u64, &pattern(100 + part, MIB)).await.unwrap();
    }
    assert_eq!(c.read_all(&keep).await.unwrap(), pattern(1, MIB), "live data stays");
    drop(server);
}

//! A node's dataset server whose writer the catalog owner borrowed (a snapshot fences it):
//! every call on the dataset answers NFS3ERR_JUKEBOX until the node has its writer back, READDIR
//! included. Included by tests/nfs_engine.rs.

use super::nfs::*;
use super::server::{Server, ServerOptions};

/// One whole listing, READDIRPLUS or READDIR pages, stopping at the first error.
async fn list(c: &mut Client, dir: &nfs_fh3, plus: bool) -> Result<usize, nfsstat3> {
    let (mut cookie, mut n) = (0, 0);
    loop {
        let (entries, eof) = if plus {
            let (e, eof, _) = c.readdir_page(dir, cookie, cookieverf3::default()).await?;
            (e.into_iter().map(|(_, _, c)| c).collect::<Vec<_>>(), eof)
        } else {
            let args = READDIR3args { dir: dir.clone(), cookie, cookieverf: cookieverf3::default(), count: 32768 };
            match c.conn.readdir(&args).await.expect("rpc") {
                Nfs3Result::Ok(ok) => (ok.reply.entries.0.into_iter().map(|e| e.cookie).collect(), ok.reply.eof),
                Nfs3Result::Err((s, _)) => return Err(s),
            }
        };
        n += entries.len();
        cookie = entries.last().copied().unwrap_or(cookie);
        if eof {
            return Ok(n);
        }
    }
}

async fn snapshot(owner: &Server, name: &str) {
    let out = owner.cli(&["dataset", "--admin", &owner.admin, "snapshot", "root", name, "--readonly"]);
    assert!(out.status.success(), "snapshot: {}", String::from_utf8_lossy(&out.stderr));
}

/// Writes until the node answers OK: the client's retries after JUKEBOX, while the node takes
/// its writer back.
async fn write_until_ok(c: &mut Client, f: &nfs_fh3, round: usize) {
    let mut tries = 0;
    while let Err(stat) = c.write(f, 0, b"y").await {
        assert_eq!(stat, nfsstat3::NFS3ERR_JUKEBOX, "round {round}");
        tries += 1;
        assert!(tries < 50, "round {round}: the node never took its writer back");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The owner's snapshot fences the node, which learns it when a write of it is refused; a
/// listing reading entries from the database at that moment used to answer NFS3ERR_IO where the
/// write, and every other call, answered JUKEBOX. To have a listing in progress when that
/// happens, the node reads from a slow store (20 ms per GET) entries it has not read since it
/// opened the dataset again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readdir_on_a_just_fenced_dataset_answers_jukebox_like_every_call() {
    const FILES: usize = 600;
    const ROUNDS: usize = 6;
    let owner = Server::start();
    let node = Server::start_with(ServerOptions {
        store_url: Some(owner.store_url.clone()),
        config: Some("[catalog]\nrole = \"reader\"\n".into()),
        extra_args: vec!["--inject-faults".into(), "get.latency=20ms".into()],
        ..Default::default()
    });
    let port = node.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"w", 0o644).await.unwrap();
    let (mut lister, mut writer) = (Client::mount(port, "/").await.unwrap(), Client::mount(port, "/").await.unwrap());

    let mut seen = Vec::new();
    for round in 0..ROUNDS {
        let d = c.mkdir(&root, format!("d{round}").as_bytes(), 0o755).await.unwrap();
        let mut makers = Vec::new();
        for k in 0..4 {
            let d = d.clone();
            makers.push(tokio::spawn(async move {
                let mut c = Client::mount(port, "/").await.unwrap();
                for i in (k..FILES).step_by(4) {
                    c.create(&d, format!("file-{i:05}").as_bytes(), 0o644).await.unwrap();
                }
            }));
        }
        for m in makers {
            m.await.unwrap();
        }
        // A first fence and the node's reopening: its caches no longer hold the new entries.
        snapshot(&owner, &format!("a{round}")).await;
        write_until_ok(&mut writer, &f, round).await;
        // The second fence, which the node learns from a write while it lists the directory.
        snapshot(&owner, &format!("b{round}")).await;
        let plus = round % 2 == 0;
        let (d2, f2) = (d.clone(), f.clone());
        let listing = tokio::spawn(async move {
            let r = list(&mut lister, &d2, plus).await;
            (lister, r)
        });
        let writing = tokio::spawn(async move {
            let r = writer.write(&f2, 0, b"x").await;
            (writer, r)
        });
        let (l, listed) = listing.await.unwrap();
        let (w, wrote) = writing.await.unwrap();
        (lister, writer) = (l, w);
        seen.push((round, listed, wrote));
        for (what, stat) in [("listing", listed.err()), ("write", wrote.err())] {
            assert!(
                matches!(stat, None | Some(nfsstat3::NFS3ERR_JUKEBOX)),
                "round {round}: a {what} on the fenced node answered {stat:?} (READDIR{}):\n{}",
                if plus { "PLUS" } else { "" },
                node.logs()
            );
        }
        write_until_ok(&mut writer, &f, round).await;
        assert_eq!(list(&mut lister, &d, plus).await, Ok(FILES + 2), "round {round}");
    }
    eprintln!("rounds (listing, write): {seen:?}");
}

//! Many clients writing one file at once: writes to different chunks run side by side and
//! writes into one chunk are merged, never lost. Included by tests/nfs_engine.rs.

use super::nfs::*;
use super::server::Server;

const BLOCK: usize = 4096;
/// 1 MiB: 32 chunks of the default 32 KiB, eight blocks to a chunk.
const BLOCKS: usize = 256;
const WRITERS: usize = 8;

/// Each 4 KiB block of a new file is written by exactly one of 8 connections, the blocks of
/// a chunk spread across all of them and sent from the end of the file backwards, so writes
/// meet in one chunk, race to extend the file, and race on its size and stored bytes. The file
/// must read back block for block, with the right size and usage, on every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_to_one_file_lose_nothing() {
    let server = Server::start();
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let root = c.root.clone();
    for round in 0..4u64 {
        let name = format!("shared-{round}");
        let f = c.create(&root, name.as_bytes(), 0o644).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let f = f.clone();
            tasks.push(tokio::spawn(async move {
                let mut cw = Client::mount(port, "/").await.unwrap();
                for block in (0..BLOCKS).rev().filter(|b| b % WRITERS == w) {
                    let data = pattern(round * 1000 + block as u64, BLOCK);
                    let offset = (block * BLOCK) as u64;
                    let n = if block % 2 == 0 {
                        cw.write_unstable(&f, offset, &data).await
                    } else {
                        cw.write(&f, offset, &data).await
                    };
                    assert_eq!(n, Ok(BLOCK as u32), "round {round}: block {block}");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        c.commit(&f).await.unwrap();
        let back = c.read_all(&f).await.unwrap();
        assert_eq!(back.len(), BLOCKS * BLOCK, "round {round}: size");
        for block in 0..BLOCKS {
            let want = pattern(round * 1000 + block as u64, BLOCK);
            assert!(
                back[block * BLOCK..(block + 1) * BLOCK] == want[..],
                "round {round}: block {block} lost or mixed up"
            );
        }
        let attr = c.getattr(&f).await.unwrap();
        assert_eq!(attr.size, (BLOCKS * BLOCK) as u64, "round {round}");
        assert_eq!(attr.used, (BLOCKS * BLOCK) as u64, "round {round}: stored bytes");
    }
}

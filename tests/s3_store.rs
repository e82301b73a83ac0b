//! The store layer against a real S3 server on 127.0.0.1 (tests/support/s3.rs): conditional
//! writes, SlateDB through `Store`, fencing, checkpoints and clones, start-up checks, request
//! accounting and injected faults.

#[path = "support/s3.rs"]
mod s3;

use std::sync::Arc;

use bytes::Bytes;
use object_store::{path::Path, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

fn create() -> PutOptions {
    PutOptions { mode: PutMode::Create, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_create_refuses_an_existing_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(dir.path()).await;
    let os = server.object_store();
    let key = Path::from("a/b/key");
    os.put_opts(&key, PutPayload::from_static(b"one"), create()).await.unwrap();
    let err = os.put_opts(&key, PutPayload::from_static(b"two"), create()).await.unwrap_err();
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }),
        "second create: {err:?}"
    );
    let got = os.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), b"one");
    // The objects really are files in the server's directory.
    assert_eq!(std::fs::read(server.dir.join(&server.bucket).join("a/b/key")).unwrap(), b"one");

    // If-Match on the current e-tag wins, on a stale one loses.
    let meta = os.head(&key).await.unwrap();
    let upd = |etag: Option<String>| PutOptions {
        mode: PutMode::Update(object_store::UpdateVersion { e_tag: etag, version: None }),
        ..Default::default()
    };
    os.put_opts(&key, PutPayload::from_static(b"three"), upd(meta.e_tag.clone())).await.unwrap();
    let err = os.put_opts(&key, PutPayload::from_static(b"four"), upd(meta.e_tag)).await.unwrap_err();
    assert!(matches!(err, object_store::Error::Precondition { .. }), "stale update: {err:?}");
    assert_eq!(os.get(&key).await.unwrap().bytes().await.unwrap().as_ref(), b"three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(dir.path()).await;
    // Separate clients, so the racers use separate connections.
    let clients: Vec<Arc<dyn ObjectStore>> = (0..8).map(|_| server.object_store()).collect();
    for round in 0..50 {
        let key = Path::from(format!("race/{round}"));
        let barrier = Arc::new(tokio::sync::Barrier::new(clients.len()));
        let mut tasks = Vec::new();
        for (i, c) in clients.iter().enumerate() {
            let (c, key, barrier) = (c.clone(), key.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let body = PutPayload::from(Bytes::from(format!("writer {i}")));
                match c.put_opts(&key, body, create()).await {
                    Ok(_) => Some(i),
                    Err(object_store::Error::AlreadyExists { .. })
                    | Err(object_store::Error::Precondition { .. }) => None,
                    Err(e) => panic!("round {round} writer {i}: {e:?}"),
                }
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let Some(i) = t.await.unwrap() {
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let stored = clients[0].get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(stored, Bytes::from(format!("writer {}", winners[0])), "round {round}");
    }
}

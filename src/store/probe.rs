//! Start-up checks of the object store: fail at start-up, with a message that names the cause,
//! rather than on the first write — or never: SlateDB retries every failed request without
//! limit, including 403s and connection refusals, so a server with a wrong key would otherwise
//! start and hang on its first write.
//!
//! The checks, in order, each with its own error:
//! 1. LIST under `<root>/.slatefs-probe/`: the endpoint answers (else "cannot reach"), the
//!    credentials are accepted (403/401: "credentials rejected"), the bucket exists (404).
//! 2. PUT of a fresh probe object with `If-None-Match: *`: we may write.
//! 3. The same PUT again: it must fail with 412/409. A store that overwrites instead cannot
//!    fence: SlateDB's writer fencing (one writer per dataset) creates manifests and WAL files
//!    with `If-None-Match: *` and relies on the loser getting 412.
//! 4. PUT with `If-Match` of an e-tag that is not the object's: it must fail (412), or be
//!    refused as unsupported by the client (the local filesystem store); it must not
//!    overwrite (SlateDB's transactional objects use `If-Match`).
//! 5. DELETE of the probe object.
//!
//! The checks use the store's probe client (no retries, 10 s timeouts; see `cloud.rs`) when
//! there is one, so a refused connection is reported in seconds, not after minutes of retries.

use std::future::Future;
use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::Store;

/// The most one check may take with any client (a store without a probe client retries).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn probe(store: &Store) -> Result<()> {
    let os = store.probe_object_store().clone();
    let url = store.url().to_string();
    let key = store.path(&format!(".slatefs-probe/{}", uuid::Uuid::new_v4()));
    let dir = store.path(".slatefs-probe");

    step(&url, "list", async {
        os.list(Some(&dir)).try_next().await.map(|_| ())
    })
    .await?;

    let create = || PutOptions { mode: PutMode::Create, ..Default::default() };
    let body = || PutPayload::from(Bytes::from_static(b"slatefs start-up check\n"));
    step(&url, "write", os.put_opts(&key, body(), create())).await?;

    let result = async {
        match within(&url, "conditional write", os.put_opts(&key, body(), create())).await? {
            Ok(_) => {
                return Err(anyhow!(
                    "the object store at {url} does not support conditional writes: a PUT with \
                     `If-None-Match: *` on an existing object succeeded (overwrote it) instead of \
                     failing with 412 Precondition Failed. SlateDB's fencing needs \
                     `If-None-Match: *` (it is what stops a second server from writing the same \
                     dataset and corrupting it), so slatefs refuses to run on this store. Use a \
                     server that honours conditional writes (AWS S3, MinIO, Ceph RGW ≥ 17, \
                     s3s-fs behind a lock); Garage ignores them."
                ))
            }
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => {}
            Err(e) => {
                return Err(anyhow!(
                    "the object store at {url} answered a PUT with `If-None-Match: *` on an \
                     existing object with an unexpected error instead of 412 Precondition \
                     Failed; SlateDB's fencing needs `If-None-Match: *`: {e}"
                ))
            }
        }
        let stale = PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag: Some(format!("\"{}\"", "0".repeat(32))),
                version: None,
            }),
            ..Default::default()
        };
        match within(&url, "conditional update", os.put_opts(&key, body(), stale)).await? {
            Ok(_) => Err(anyhow!(
                "the object store at {url} does not support conditional updates: a PUT with \
                 `If-Match` of a wrong e-tag overwrote the object instead of failing with 412 \
                 Precondition Failed; SlateDB's transactional objects need `If-Match`, and its \
                 fencing `If-None-Match: *`; refusing to run on this store"
            )),
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::NotImplemented { .. })
            | Err(object_store::Error::NotSupported { .. }) => Ok(()),
            Err(e) => Err(anyhow!(
                "the object store at {url} answered a PUT with `If-Match` of a wrong e-tag with \
                 an unexpected error instead of 412 Precondition Failed: {e}"
            )),
        }
    }
    .await;

    // Clean up whatever the outcome.
    let deleted = step(&url, "delete", os.delete(&key)).await;
    result?;
    deleted
}

/// Runs one request under [`STEP_TIMEOUT`]; the outer error is the timeout.
async fn within<T>(
    url: &str,
    what: &str,
    fut: impl Future<Output = object_store::Result<T>>,
) -> Result<object_store::Result<T>> {
    tokio::time::timeout(STEP_TIMEOUT, fut).await.map_err(|_| {
        anyhow!(
            "cannot reach the object store at {url}: no answer to the start-up check ({what}) \
             within {STEP_TIMEOUT:?}"
        )
    })
}

/// Runs one request that must succeed; a failure becomes a message that names the cause.
async fn step<T>(
    url: &str,
    what: &str,
    fut: impl Future<Output = object_store::Result<T>>,
) -> Result<T> {
    within(url, what, fut).await?.map_err(|e| explain(url, what, e))
}

fn explain(url: &str, what: &str, e: object_store::Error) -> anyhow::Error {
    let text = error_chain(&e);
    let lower = text.to_lowercase();
    match &e {
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            anyhow!(
                "the object store at {url} rejected the credentials (start-up check: {what}): \
                 check the access key and secret (environment, the credentials file, or the \
                 CSI secret) and that they may read and write the bucket: {text}"
            )
        }
        object_store::Error::NotFound { .. } if lower.contains("nosuchbucket") || what == "list" => {
            anyhow!(
                "the bucket of {url} does not exist (start-up check: {what}); create it first: \
                 {text}"
            )
        }
        _ if lower.contains("nosuchbucket") => anyhow!(
            "the bucket of {url} does not exist (start-up check: {what}); create it first: {text}"
        ),
        _ if lower.contains("403 forbidden")
            || lower.contains("401 unauthorized")
            || lower.contains("accessdenied")
            || lower.contains("signaturedoesnotmatch")
            || lower.contains("invalidaccesskeyid")
            || lower.contains("notsignedup") =>
        {
            anyhow!(
                "the object store at {url} rejected the credentials (start-up check: {what}): \
                 {text}"
            )
        }
        _ if lower.contains("connect")
            || lower.contains("dns")
            || lower.contains("timed out")
            || lower.contains("timeout") =>
        {
            anyhow!("cannot reach the object store at {url} (start-up check: {what}): {text}")
        }
        _ => anyhow!("the object store at {url} failed the start-up check ({what}): {text}"),
    }
}

/// The error and its sources on one line (object_store's Display leaves out the HTTP cause).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

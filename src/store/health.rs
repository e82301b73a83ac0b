//! Whether the object store is answering, as the requests that reach it tell: an `ObjectStore`
//! wrapper at the top of a store's stack (above fault injection, below SlateDB's retries and
//! read cache) watches every request's outcome.
//!
//! An answer is any reply the store gave, "no such key" and failed conditions included; a
//! failure is a request that got no answer (connection refused or reset, timeout, 5xx,
//! rejected credentials). From those two this keeps when the store last answered and since
//! when it has been failing (the start of the first request that failed, or went unanswered,
//! after the last answer). The bounded waits of `super::wait` use them to tell a store that
//! is away from one that is merely slow, and how long it has been away.
//!
//! Like the wait limits, the state is per process (a process serves one store).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

/// Milliseconds since [`epoch`], plus one, so that 0 can mean "never" / "not failing".
static LAST_ANSWER: AtomicU64 = AtomicU64::new(0);
static FAILING_SINCE: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn stamp(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_millis() as u64 + 1
}

fn since(stamp: u64) -> Duration {
    let now = Instant::now().saturating_duration_since(epoch()).as_millis() as u64 + 1;
    Duration::from_millis(now.saturating_sub(stamp))
}

/// How long ago the store last answered a request; `None`: never in this process.
pub fn last_answer_ago() -> Option<Duration> {
    match LAST_ANSWER.load(Ordering::Acquire) {
        0 => None,
        s => Some(since(s)),
    }
}

/// How long the store has been failing (since the start of the first failed or unanswered
/// request after its last answer); `None` while it answers.
pub fn failing_for() -> Option<Duration> {
    match FAILING_SINCE.load(Ordering::Acquire) {
        0 => None,
        s => Some(since(s)),
    }
}

/// A request sent at `sent` got an answer.
fn answered(sent: Instant) {
    let s = stamp(Instant::now());
    LAST_ANSWER.fetch_max(s, Ordering::AcqRel);
    // Only an answer to a request sent after the failures began proves the store is back;
    // an old request finishing late does not.
    let sent = stamp(sent);
    let _ = FAILING_SINCE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| {
        (f != 0 && sent >= f).then_some(0)
    });
}

/// A request sent at `sent` failed, or a wait that began at `sent` found no answer.
pub fn unanswered(sent: Instant) {
    let sent = stamp(sent);
    if LAST_ANSWER.load(Ordering::Acquire) > sent {
        // The store has answered since: this one is a casualty of an earlier trouble.
        return;
    }
    let _ = FAILING_SINCE.compare_exchange(0, sent, Ordering::AcqRel, Ordering::Acquire);
}

fn observe<T>(sent: Instant, r: &object_store::Result<T>) {
    use object_store::Error as E;
    match r {
        Ok(_)
        | Err(
            E::NotFound { .. }
            | E::AlreadyExists { .. }
            | E::Precondition { .. }
            | E::NotModified { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::InvalidPath { .. },
        ) => answered(sent),
        Err(_) => unanswered(sent),
    }
}

/// Watches what passes through to `inner`.
#[derive(Debug)]
pub struct HealthWatch {
    inner: Arc<dyn ObjectStore>,
}

impl HealthWatch {
    pub fn new(inner: Arc<dyn ObjectStore>) -> HealthWatch {
        HealthWatch { inner }
    }
}

impl fmt::Display for HealthWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Health({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for HealthWatch {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let sent = Instant::now();
        let r = self.inner.put_opts(location, payload, opts).await;
        observe(sent, &r);
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let sent = Instant::now();
        let r = self.inner.put_multipart_opts(location, opts).await;
        observe(sent, &r);
        Ok(Box::new(WatchedUpload { inner: r? }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let sent = Instant::now();
        let r = self.inner.get_opts(location, options).await;
        observe(sent, &r);
        r
    }

    // get_ranges is not forwarded: the default implementation calls get_opts (watched).

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let sent = Instant::now();
        self.inner.delete_stream(locations).inspect(move |r| observe(sent, r)).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let sent = Instant::now();
        self.inner.list(prefix).inspect(move |r| observe(sent, r)).boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let sent = Instant::now();
        self.inner.list_with_offset(prefix, offset).inspect(move |r| observe(sent, r)).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let sent = Instant::now();
        let r = self.inner.list_with_delimiter(prefix).await;
        observe(sent, &r);
        r
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        let sent = Instant::now();
        let r = self.inner.copy_opts(from, to, options).await;
        observe(sent, &r);
        r
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        let sent = Instant::now();
        let r = self.inner.rename_opts(from, to, options).await;
        observe(sent, &r);
        r
    }
}

#[derive(Debug)]
struct WatchedUpload {
    inner: Box<dyn MultipartUpload>,
}

#[async_trait]
impl MultipartUpload for WatchedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let sent = Instant::now();
        let fut = self.inner.put_part(data);
        Box::pin(async move {
            let r = fut.await;
            observe(sent, &r);
            r
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let sent = Instant::now();
        let r = self.inner.complete().await;
        observe(sent, &r);
        r
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let sent = Instant::now();
        let r = self.inner.abort().await;
        observe(sent, &r);
        r
    }
}

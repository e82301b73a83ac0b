//! Request accounting: an `ObjectStore` wrapper that counts the requests and bytes slatefs
//! sends to its object store, by the request classes object stores bill for.
//!
//! It sits directly on the real backend (below fault injection and below SlateDB's retry
//! layer), so every attempt SlateDB makes is counted once, failed ones too (`errors` says how
//! many failed). What it cannot see: the HTTP-level retries object_store's S3/GCS/Azure clients
//! make inside one call (up to 10 on 5xx/connection errors), which are billed too.
//!
//! How calls map to counts:
//! - `put`: PutObject; a multipart upload counts its create, every part and its completion.
//! - `get`: GetObject (ranged or not); `head`: HeadObject (a `get` with `head: true`).
//! - `list`: one per listing call, plus one per further 1,000 objects returned (S3 pages).
//! - `delete`: one per key deleted (S3's DeleteObjects sends up to 1,000 keys per request,
//!   and deletes are not billed on S3, so this is the useful number).
//! - `copy`: CopyObject; a rename counts one copy and one delete (what it costs on S3).
//! - `bytes_up`: payload bytes of puts and parts; `bytes_down`: bytes of the ranges GETs
//!   returned (counted when the response arrives, whether or not the caller reads it all).
//! - `errors`: requests that failed; `not_found`: requests answered "no such key", which
//!   are answers, not failures (SlateDB probes for the next WAL or manifest id this way).
//! - `cache_hits` / `cache_misses`: parts of SST reads served by the on-disk read cache /
//!   fetched from the store (`super::metrics`, from SlateDB's cache metrics).

use std::fmt;
use std::ops::{Range, Sub};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};

/// A point-in-time copy of the counters. Subtract two to get the requests of one workload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RequestStats {
    pub put: u64,
    pub get: u64,
    pub head: u64,
    pub list: u64,
    pub delete: u64,
    pub copy: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Requests that returned an error (any class), other than "not found".
    pub errors: u64,
    /// GET/HEAD/DELETE answered "no such key".
    pub not_found: u64,
    /// Parts of SST reads the on-disk read cache served.
    pub cache_hits: u64,
    /// Parts of SST reads the read cache had to fetch from the store.
    pub cache_misses: u64,
}

impl RequestStats {
    /// All requests, every class.
    pub fn requests(&self) -> u64 {
        self.put + self.get + self.head + self.list + self.delete + self.copy
    }
}

impl Sub for RequestStats {
    type Output = RequestStats;
    fn sub(self, o: RequestStats) -> RequestStats {
        RequestStats {
            put: self.put.saturating_sub(o.put),
            get: self.get.saturating_sub(o.get),
            head: self.head.saturating_sub(o.head),
            list: self.list.saturating_sub(o.list),
            delete: self.delete.saturating_sub(o.delete),
            copy: self.copy.saturating_sub(o.copy),
            bytes_up: self.bytes_up.saturating_sub(o.bytes_up),
            bytes_down: self.bytes_down.saturating_sub(o.bytes_down),
            errors: self.errors.saturating_sub(o.errors),
            not_found: self.not_found.saturating_sub(o.not_found),
            cache_hits: self.cache_hits.saturating_sub(o.cache_hits),
            cache_misses: self.cache_misses.saturating_sub(o.cache_misses),
        }
    }
}

impl fmt::Display for RequestStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "put={} get={} head={} list={} delete={} copy={} up={}B down={}B errors={} not_found={}",
            self.put,
            self.get,
            self.head,
            self.list,
            self.delete,
            self.copy,
            self.bytes_up,
            self.bytes_down,
            self.errors,
            self.not_found
        )?;
        // Only stores with a read cache (and reads through it) have these.
        if self.cache_hits + self.cache_misses > 0 {
            write!(f, "; read cache hits={} misses={}", self.cache_hits, self.cache_misses)?;
        }
        Ok(())
    }
}

/// The live counters; shared by every clone of a `Store` and by its probe client.
#[derive(Debug, Default)]
pub struct RequestCounters {
    put: AtomicU64,
    get: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    copy: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    errors: AtomicU64,
    not_found: AtomicU64,
    pub(super) cache_hits: AtomicU64,
    pub(super) cache_reads: AtomicU64,
}

impl RequestCounters {
    pub fn stats(&self) -> RequestStats {
        RequestStats {
            put: self.put.load(Relaxed),
            get: self.get.load(Relaxed),
            head: self.head.load(Relaxed),
            list: self.list.load(Relaxed),
            delete: self.delete.load(Relaxed),
            copy: self.copy.load(Relaxed),
            bytes_up: self.bytes_up.load(Relaxed),
            bytes_down: self.bytes_down.load(Relaxed),
            errors: self.errors.load(Relaxed),
            not_found: self.not_found.load(Relaxed),
            cache_hits: self.cache_hits.load(Relaxed),
            cache_misses: self.cache_reads.load(Relaxed).saturating_sub(self.cache_hits.load(Relaxed)),
        }
    }

    fn error<T>(&self, r: &object_store::Result<T>) {
        if let Err(e) = r {
            self.failed(e);
        }
    }

    fn failed(&self, e: &object_store::Error) {
        match e {
            object_store::Error::NotFound { .. } => self.not_found.fetch_add(1, Relaxed),
            _ => self.errors.fetch_add(1, Relaxed),
        };
    }
}

/// Counts what passes through to `inner`.
#[derive(Debug)]
pub struct AccountingStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<RequestCounters>,
}

impl AccountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> AccountingStore {
        AccountingStore { inner, counters: Arc::new(RequestCounters::default()) }
    }

    /// Counts into existing counters (e.g. a second client of the same store).
    pub fn with_counters(
        inner: Arc<dyn ObjectStore>,
        counters: Arc<RequestCounters>,
    ) -> AccountingStore {
        AccountingStore { inner, counters }
    }

    pub fn counters(&self) -> &Arc<RequestCounters> {
        &self.counters
    }

    pub fn stats(&self) -> RequestStats {
        self.counters.stats()
    }
}

impl fmt::Display for AccountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Accounting({})", self.inner)
    }
}

fn range_len(r: &Range<u64>) -> u64 {
    r.end.saturating_sub(r.start)
}

#[async_trait]
impl ObjectStore for AccountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let c = &self.counters;
        c.put.fetch_add(1, Relaxed);
        c.bytes_up.fetch_add(payload.content_length() as u64, Relaxed);
        let r = self.inner.put_opts(location, payload, opts).await;
        c.error(&r);
        r
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let c = &self.counters;
        c.put.fetch_add(1, Relaxed);
        let r = self.inner.put_multipart_opts(location, opts).await;
        c.error(&r);
        Ok(Box::new(CountedUpload { inner: r?, counters: c.clone() }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let c = &self.counters;
        if options.head {
            c.head.fetch_add(1, Relaxed);
        } else {
            c.get.fetch_add(1, Relaxed);
        }
        let head = options.head;
        let r = self.inner.get_opts(location, options).await;
        c.error(&r);
        if let Ok(got) = &r {
            if !head {
                c.bytes_down.fetch_add(range_len(&got.range), Relaxed);
            }
        }
        r
    }

    // get_ranges is not forwarded: the default implementation coalesces the ranges and calls
    // get_opts once per coalesced range, which is what the S3 client sends and what we count.

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let c = self.counters.clone();
        self.inner
            .delete_stream(locations)
            .inspect(move |r| {
                c.delete.fetch_add(1, Relaxed);
                c.error(r);
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        count_listing(self.counters.clone(), self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        count_listing(self.counters.clone(), self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let c = &self.counters;
        c.list.fetch_add(1, Relaxed);
        let r = self.inner.list_with_delimiter(prefix).await;
        c.error(&r);
        if let Ok(l) = &r {
            let n = (l.objects.len() + l.common_prefixes.len()) as u64;
            c.list.fetch_add(n.saturating_sub(1) / 1000, Relaxed);
        }
        r
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let c = &self.counters;
        c.copy.fetch_add(1, Relaxed);
        let r = self.inner.copy_opts(from, to, options).await;
        c.error(&r);
        r
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let c = &self.counters;
        c.copy.fetch_add(1, Relaxed);
        c.delete.fetch_add(1, Relaxed);
        let r = self.inner.rename_opts(from, to, options).await;
        c.error(&r);
        r
    }
}

fn count_listing(
    c: Arc<RequestCounters>,
    inner: BoxStream<'static, object_store::Result<ObjectMeta>>,
) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
    c.list.fetch_add(1, Relaxed);
    let mut seen = 0u64;
    inner
        .inspect(move |r| {
            match r {
                Ok(_) => {
                    seen += 1;
                    // Every 1,000 objects after the first page is another page request.
                    if seen > 1 && (seen - 1).is_multiple_of(1000) {
                        c.list.fetch_add(1, Relaxed);
                    }
                }
                Err(e) => c.failed(e),
            }
        })
        .boxed()
}

#[derive(Debug)]
struct CountedUpload {
    inner: Box<dyn MultipartUpload>,
    counters: Arc<RequestCounters>,
}

#[async_trait]
impl MultipartUpload for CountedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let c = self.counters.clone();
        c.put.fetch_add(1, Relaxed);
        c.bytes_up.fetch_add(data.content_length() as u64, Relaxed);
        let fut = self.inner.put_part(data);
        Box::pin(async move {
            let r = fut.await;
            c.error(&r);
            r
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.counters.put.fetch_add(1, Relaxed);
        let r = self.inner.complete().await;
        self.counters.error(&r);
        r
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.counters.delete.fetch_add(1, Relaxed);
        let r = self.inner.abort().await;
        self.counters.error(&r);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn counts_requests_and_bytes() {
        let s = AccountingStore::new(Arc::new(InMemory::new()));
        let p = Path::from("a/b");
        s.put(&p, PutPayload::from(Bytes::from(vec![7u8; 1000]))).await.unwrap();
        s.put(&Path::from("a/c"), PutPayload::from_static(b"xy")).await.unwrap();
        assert_eq!(s.get_range(&p, 10..110).await.unwrap().len(), 100);
        assert_eq!(s.get(&p).await.unwrap().bytes().await.unwrap().len(), 1000);
        s.head(&p).await.unwrap();
        assert!(s.get(&Path::from("missing")).await.is_err());
        assert!(s.head(&Path::from("missing")).await.is_err());
        assert_eq!(s.list(Some(&Path::from("a"))).try_collect::<Vec<_>>().await.unwrap().len(), 2);
        s.copy(&p, &Path::from("a/d")).await.unwrap();
        s.delete(&Path::from("a/d")).await.unwrap();
        let st = s.stats();
        assert_eq!(
            st,
            RequestStats {
                put: 2,
                get: 3,
                head: 2,
                list: 1,
                delete: 1,
                copy: 1,
                bytes_up: 1002,
                bytes_down: 1100,
                errors: 0,
                not_found: 2,
                cache_hits: 0,
                cache_misses: 0,
            }
        );
        let before = st;
        s.put(&p, PutPayload::from_static(b"z")).await.unwrap();
        let d = s.stats() - before;
        assert_eq!((d.put, d.bytes_up, d.requests()), (1, 1, 1));
    }
}

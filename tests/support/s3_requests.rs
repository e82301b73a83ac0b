//! Request accounting for the tests' S3 server (tests/support/s3.rs): a layer in front of s3s
//! counts by HTTP method and path (path-style addressing, `/bucket/key`), so every request
//! received counts, refused ones included, and a new S3 operation needs no change here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Answered by the counting layer itself, outside S3 (no bucket name starts with `_`).
pub const REQUESTS_PATH: &str = "/_requests";

#[derive(Debug, Default)]
pub struct RequestCounts {
    put: AtomicU64,
    get: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    post: AtomicU64,
    other: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// Counts at one moment. PUT: PutObject, UploadPart, CopyObject. GET: GetObject. LIST:
/// ListObjects(V2), ListBuckets. DELETE: DeleteObject, DeleteObjects (one request for many
/// keys), AbortMultipartUpload. POST: CreateMultipartUpload, CompleteMultipartUpload. other:
/// bucket operations. bytes_in: request bodies (decoded length of aws-chunked uploads);
/// bytes_out: GET response bodies (their Content-Length).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestSnapshot {
    pub put: u64,
    pub get: u64,
    pub head: u64,
    pub list: u64,
    pub delete: u64,
    pub post: u64,
    pub other: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl RequestSnapshot {
    pub fn total(&self) -> u64 {
        self.put + self.get + self.head + self.list + self.delete + self.post + self.other
    }

    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &RequestSnapshot) -> RequestSnapshot {
        RequestSnapshot {
            put: self.put - earlier.put,
            get: self.get - earlier.get,
            head: self.head - earlier.head,
            list: self.list - earlier.list,
            delete: self.delete - earlier.delete,
            post: self.post - earlier.post,
            other: self.other - earlier.other,
            bytes_in: self.bytes_in - earlier.bytes_in,
            bytes_out: self.bytes_out - earlier.bytes_out,
        }
    }
}

impl RequestCounts {
    pub fn snapshot(&self) -> RequestSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestSnapshot {
            put: l(&self.put),
            get: l(&self.get),
            head: l(&self.head),
            list: l(&self.list),
            delete: l(&self.delete),
            post: l(&self.post),
            other: l(&self.other),
            bytes_in: l(&self.bytes_in),
            bytes_out: l(&self.bytes_out),
        }
    }

    fn class(&self, method: &str, path: &str, query: &str) -> &AtomicU64 {
        let rest = path.trim_start_matches('/');
        let has_key = rest.split_once('/').is_some_and(|(_, key)| !key.is_empty());
        let query_has = |name: &str| query.split('&').any(|kv| kv.split('=').next() == Some(name));
        match (method, has_key) {
            ("GET", true) => &self.get,
            ("GET", false) if rest.is_empty() || !query_has("location") => &self.list,
            ("HEAD", true) => &self.head,
            ("PUT", true) => &self.put,
            ("DELETE", true) => &self.delete,
            ("POST", false) if query_has("delete") => &self.delete,
            ("POST", true) => &self.post,
            _ => &self.other,
        }
    }
}

#[derive(Clone)]
pub(super) struct Counted {
    pub(super) inner: s3s::service::S3Service,
    pub(super) counts: Arc<RequestCounts>,
}

impl<B> tower::Service<s3s::HttpRequest<B>> for Counted
where
    s3s::service::S3Service: tower::Service<
        s3s::HttpRequest<B>,
        Response = s3s::HttpResponse,
        Error = s3s::HttpError,
    >,
    <s3s::service::S3Service as tower::Service<s3s::HttpRequest<B>>>::Future: Send + 'static,
{
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: s3s::HttpRequest<B>) -> Self::Future {
        let method = req.method().as_str().to_string();
        if method == "GET" && req.uri().path() == REQUESTS_PATH {
            let body = serde_json::to_string(&self.counts.snapshot()).expect("counts as JSON");
            let mut resp = s3s::HttpResponse::new(s3s::Body::from(body));
            resp.headers_mut().insert("content-type", "application/json".parse().unwrap());
            return Box::pin(async move { Ok(resp) });
        }
        let counts = self.counts.clone();
        counts
            .class(&method, req.uri().path(), req.uri().query().unwrap_or(""))
            .fetch_add(1, Ordering::Relaxed);
        let header = |r: &s3s::HttpRequest<B>, name: &str| -> Option<u64> {
            r.headers().get(name)?.to_str().ok()?.parse().ok()
        };
        let sent = header(&req, "x-amz-decoded-content-length")
            .or_else(|| header(&req, "content-length"))
            .unwrap_or(0);
        counts.bytes_in.fetch_add(sent, Ordering::Relaxed);
        let fut = tower::Service::call(&mut self.inner, req);
        Box::pin(async move {
            let resp = fut.await?;
            if method == "GET" && resp.status().is_success() {
                let len = resp.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse().ok());
                counts.bytes_out.fetch_add(len.unwrap_or(0), Ordering::Relaxed);
            }
            Ok(resp)
        })
    }
}

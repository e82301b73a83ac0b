//! A real S3 server on 127.0.0.1 for tests: `s3s` (the S3 protocol: SigV4 auth, routing, XML)
//! over `s3s-fs` (objects as files in a local directory), in this process or standalone
//! (`cargo run --release --example s3_test_server -- --dir D --port P`).
//!
//! Why a wrapper around `s3s_fs::FileSystem` (see ../../shared/TEST-ENVIRONMENT.md):
//! - s3s-fs checks `If-None-Match: *` / `If-Match` and then writes, without a lock, so two racing
//!   creates of one key can both succeed — and SlateDB's fencing rests on exactly one winning.
//!   Every operation that changes a key (PutObject, CopyObject, DeleteObject(s),
//!   CompleteMultipartUpload) holds that key's lock for its whole duration, from the condition
//!   check to the rename into place. GetObject/HeadObject hold it shared, so a reader never sees
//!   an object whose data and metadata sidecar (written after the data) disagree, nor a
//!   CopyObject destination half-copied. Locks are striped (256 stripes by key hash) and taken in
//!   stripe order, so multi-key operations cannot deadlock.
//! - s3s-fs's own binary does not set TCP_NODELAY: with Nagle + delayed ACK every GET on a reused
//!   connection stalls ~40 ms. Accepted sockets get TCP_NODELAY here.
//!
//! Every server counts the requests it receives by class (PUT/GET/HEAD/LIST/DELETE/POST) and the
//! object bytes moved: [`S3Server::requests`] in process, `GET /_requests` (JSON) over HTTP for
//! a server in another process (the benchmark reads it before and after each workload).
//!
//! `ServerOptions::honour_conditions = false` makes a server that ignores `If-None-Match` and
//! `If-Match` and overwrites (as Garage 2.5 does): a real misbehaving server for the start-up
//! check that refuses such stores.
//!
//! Tests that should run on either store ask for [`test_store`]: `SLATEFS_TEST_STORE=s3` gives a
//! fresh in-process S3 server, anything else (or unset) a local directory.
#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, S3};
use tokio::sync::RwLock;

// Request accounting (a layer in front of s3s): its own file to keep this one readable.
#[path = "s3_requests.rs"]
mod requests;
#[allow(unused_imports)] // each test binary uses a different part
pub use requests::{RequestCounts, RequestSnapshot, REQUESTS_PATH};
use requests::Counted;

pub const DEFAULT_BUCKET: &str = "slatefs-test";
pub const DEFAULT_ACCESS_KEY: &str = "slatefs-test-access";
pub const DEFAULT_SECRET_KEY: &str = "slatefs-test-secret-0123456789";
pub const REGION: &str = "us-east-1";

#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Bucket created at start (a directory under the root).
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// Honour `If-None-Match: *` and `If-Match` (true), or ignore them and overwrite (false).
    pub honour_conditions: bool,
    /// 0: any free port.
    pub port: u16,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            bucket: DEFAULT_BUCKET.to_string(),
            access_key: DEFAULT_ACCESS_KEY.to_string(),
            secret_key: DEFAULT_SECRET_KEY.to_string(),
            honour_conditions: true,
            port: 0,
        }
    }
}

/// A running server. Dropping it stops it (its own thread and runtime, so it keeps serving
/// while a test blocks its own runtime, and outlives no test).
pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    pub addr: SocketAddr,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// The directory the objects live in (`<dir>/<bucket>/<key>`).
    pub dir: PathBuf,
    /// What this server has received so far.
    pub requests: Arc<RequestCounts>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl S3Server {
    /// An object_store client for this server with the right credentials.
    pub fn object_store(&self) -> Arc<dyn object_store::ObjectStore> {
        self.object_store_with(&self.bucket, &self.access_key, &self.secret_key)
    }

    /// A client with any bucket and credentials (for tests of wrong ones).
    pub fn object_store_with(
        &self,
        bucket: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Arc<dyn object_store::ObjectStore> {
        Arc::new(
            object_store::aws::AmazonS3Builder::new()
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_virtual_hosted_style_request(false)
                .with_region(&self.region)
                .with_bucket_name(bucket)
                .with_access_key_id(access_key)
                .with_secret_access_key(secret_key)
                .build()
                .expect("S3 client settings"),
        )
    }

    /// Writes an AWS-style credentials file (`access_key_id = …`) and returns its path.
    pub fn write_credentials_file(&self, dir: &Path, access_key: &str, secret_key: &str) -> PathBuf {
        let path = dir.join(format!("s3-credentials-{}", self.addr.port()));
        std::fs::write(
            &path,
            format!("[default]\naccess_key_id = {access_key}\nsecret_access_key = {secret_key}\n"),
        )
        .expect("write credentials file");
        path
    }

    /// `[storage]` settings for `s3://<bucket>/<prefix>` on this server; the credentials go
    /// to a file in `cred_dir`.
    pub fn storage_config(&self, prefix: &str, cred_dir: &Path) -> slatefs::config::StorageConfig {
        let creds = self.write_credentials_file(cred_dir, &self.access_key, &self.secret_key);
        self.storage_config_with(&self.bucket, prefix, creds)
    }

    pub fn storage_config_with(
        &self,
        bucket: &str,
        prefix: &str,
        credentials_file: PathBuf,
    ) -> slatefs::config::StorageConfig {
        slatefs::config::StorageConfig {
            url: format!("s3://{bucket}/{}", prefix.trim_matches('/')),
            endpoint: Some(self.endpoint.clone()),
            region: Some(self.region.clone()),
            allow_http: Some(true),
            path_style: Some(true),
            credentials_file: Some(credentials_file),
            ..Default::default()
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a server over `dir` on a free port of 127.0.0.1 with the default bucket and keys.
pub async fn start_s3(dir: &Path) -> S3Server {
    start_s3_with(dir, ServerOptions::default()).await
}

pub async fn start_s3_with(dir: &Path, opts: ServerOptions) -> S3Server {
    start_s3_blocking(dir, opts)
}

/// The same, callable outside an async context.
pub fn start_s3_blocking(dir: &Path, opts: ServerOptions) -> S3Server {
    std::fs::create_dir_all(dir.join(&opts.bucket)).expect("create bucket directory");
    let dir = dir.canonicalize().expect("server directory");
    // Bound here, before returning: connections made as soon as we return wait in the backlog.
    let listener = std::net::TcpListener::bind(("127.0.0.1", opts.port)).expect("bind S3 port");
    listener.set_nonblocking(true).expect("nonblocking listener");
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let root = dir.clone();
    let o = opts.clone();
    let requests = Arc::new(RequestCounts::default());
    let counts = requests.clone();
    let thread = std::thread::Builder::new()
        .name(format!("s3-server-{}", addr.port()))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("s3-server")
                .enable_all()
                .build()
                .expect("S3 server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                serve_counted(listener, root, o, counts, async {
                    let _ = rx.await;
                })
                .await
                .expect("S3 server");
            });
            rt.shutdown_background();
        })
        .expect("spawn S3 server thread");
    S3Server {
        endpoint: format!("http://{addr}"),
        addr,
        bucket: opts.bucket,
        access_key: opts.access_key,
        secret_key: opts.secret_key,
        region: REGION.to_string(),
        dir,
        requests,
        shutdown: Some(tx),
        thread: Some(thread),
    }
}

/// Serves S3 on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    root: PathBuf,
    opts: ServerOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    serve_counted(listener, root, opts, Arc::default(), shutdown).await
}

/// [`serve`], counting what it receives in `counts`.
pub async fn serve_counted(
    listener: tokio::net::TcpListener,
    root: PathBuf,
    opts: ServerOptions,
    counts: Arc<RequestCounts>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join(&opts.bucket))?;
    let fs = s3s_fs::FileSystem::new(&root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let s3 = Serialised {
        fs,
        stripes: (0..STRIPES).map(|_| RwLock::new(())).collect(),
        honour_conditions: opts.honour_conditions,
    };
    let service = {
        let mut b = s3s::service::S3ServiceBuilder::new(s3);
        b.set_auth(s3s::auth::SimpleAuth::from_single(
            opts.access_key.clone(),
            opts.secret_key.clone(),
        ));
        hyper_util::service::TowerToHyperService::new(Counted { inner: b.build(), counts })
    };
    let http = ConnBuilder::new(TokioExecutor::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let socket = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            _ = shutdown.as_mut() => return Ok(()),
        };
        let _ = socket.set_nodelay(true);
        let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

const STRIPES: usize = 256;

/// s3s-fs with per-key serialisation of every operation that changes a key.
struct Serialised {
    fs: s3s_fs::FileSystem,
    stripes: Vec<RwLock<()>>,
    honour_conditions: bool,
}

enum Access {
    Read,
    Write,
}

impl Serialised {
    fn stripe(bucket: &str, key: &str) -> usize {
        let mut h = DefaultHasher::new();
        bucket.hash(&mut h);
        key.hash(&mut h);
        (h.finish() as usize) % STRIPES
    }

    /// Runs `f` holding the locks of `keys` (write wins when a stripe is asked for both),
    /// taken in stripe order.
    async fn locked<T>(
        &self,
        keys: &[(&str, &str, Access)],
        f: impl std::future::Future<Output = T>,
    ) -> T {
        let mut want: std::collections::BTreeMap<usize, bool> = Default::default();
        for (bucket, key, access) in keys {
            let w = matches!(access, Access::Write);
            let e = want.entry(Self::stripe(bucket, key)).or_insert(false);
            *e |= w;
        }
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        for (stripe, write) in want {
            if write {
                writes.push(self.stripes[stripe].write().await);
            } else {
                reads.push(self.stripes[stripe].read().await);
            }
        }
        let out = f.await;
        drop(writes);
        drop(reads);
        out
    }
}

#[async_trait::async_trait]
impl S3 for Serialised {
    async fn put_object(
        &self,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        if !self.honour_conditions {
            req.input.if_none_match = None;
            req.input.if_match = None;
        }
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        self.locked(&[(&b, &k, Access::Write)], self.fs.put_object(req)).await
    }

    async fn complete_multipart_upload(
        &self,
        mut req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        if !self.honour_conditions {
            req.input.if_none_match = None;
            req.input.if_match = None;
        }
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        self.locked(&[(&b, &k, Access::Write)], self.fs.complete_multipart_upload(req)).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        let src = match &req.input.copy_source {
            CopySource::Bucket { bucket, key, .. } => Some((bucket.to_string(), key.to_string())),
            _ => None,
        };
        match &src {
            Some((sb, sk)) => {
                self.locked(
                    &[(&b, &k, Access::Write), (sb, sk, Access::Read)],
                    self.fs.copy_object(req),
                )
                .await
            }
            None => self.locked(&[(&b, &k, Access::Write)], self.fs.copy_object(req)).await,
        }
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        self.locked(&[(&b, &k, Access::Write)], self.fs.delete_object(req)).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let b = req.input.bucket.clone();
        let keys: Vec<String> = req.input.delete.objects.iter().map(|o| o.key.clone()).collect();
        let locks: Vec<(&str, &str, Access)> =
            keys.iter().map(|k| (b.as_str(), k.as_str(), Access::Write)).collect();
        self.locked(&locks, self.fs.delete_objects(req)).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        // The body streams from an open file after the lock is released: a later rename
        // over the key does not change what this reader sees.
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        self.locked(&[(&b, &k, Access::Read)], self.fs.get_object(req)).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let (b, k) = (req.input.bucket.clone(), req.input.key.clone());
        self.locked(&[(&b, &k, Access::Read)], self.fs.head_object(req)).await
    }

    // Everything else: as s3s-fs does it (bucket operations, listings, multipart parts,
    // which live under their upload id until CompleteMultipartUpload).
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.fs.delete_bucket(req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.fs.get_bucket_location(req).await
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.fs.head_bucket(req).await
    }
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.fs.list_objects(req).await
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.fs.list_objects_v2(req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.fs.create_multipart_upload(req).await
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.fs.upload_part(req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.fs.upload_part_copy(req).await
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.fs.list_parts(req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.fs.abort_multipart_upload(req).await
    }
}

// ---------------------------------------------------------------------------------------------
// "A store config" for suites that run on both stores.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Local,
    S3,
}

impl StoreKind {
    /// `SLATEFS_TEST_STORE=s3` (or `S3`) selects S3; unset, empty or `local` the local store.
    pub fn from_env() -> StoreKind {
        match std::env::var("SLATEFS_TEST_STORE").unwrap_or_default().to_lowercase().as_str() {
            "s3" => StoreKind::S3,
            "" | "local" | "file" => StoreKind::Local,
            other => panic!("SLATEFS_TEST_STORE={other:?}: expected `local` or `s3`"),
        }
    }
}

/// A store for one test: its config (what `slatefs serve` would be given), and what keeps it
/// alive (the temporary directory, the S3 server). Keep it for the test's whole life.
pub struct TestStore {
    pub kind: StoreKind,
    pub config: slatefs::config::StorageConfig,
    pub s3: Option<S3Server>,
    pub dir: tempfile::TempDir,
}

impl TestStore {
    pub fn open(&self) -> slatefs::store::Store {
        slatefs::store::Store::open(&self.config).expect("open test store")
    }
}

/// The store the environment asks for (see [`StoreKind::from_env`]).
pub async fn test_store() -> TestStore {
    test_store_of(StoreKind::from_env()).await
}

pub async fn test_store_of(kind: StoreKind) -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    match kind {
        StoreKind::Local => {
            let data = dir.path().join("store");
            let config = slatefs::config::StorageConfig {
                url: format!("file://{}", data.display()),
                ..Default::default()
            };
            TestStore { kind, config, s3: None, dir }
        }
        StoreKind::S3 => {
            let server = start_s3(&dir.path().join("s3")).await;
            let config = server.storage_config("slatefs", dir.path());
            TestStore { kind, config, s3: Some(server), dir }
        }
    }
}

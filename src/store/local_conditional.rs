//! Conditional updates (`PutMode::Update`, "replace it only if it is still the version I read")
//! for the local (`file://`) store, which object_store's `LocalFileSystem` does not implement.
//!
//! SlateDB's garbage collector needs them: before it deletes old manifests and compaction
//! records it advances a boundary object (`<db>/gc/manifest.boundary`,
//! `gc/compactions.boundary`) with `If-Match` semantics, so that a writer that stalled past the
//! collector's `min_age` cannot recreate a deleted id. Without this wrapper every collection
//! pass on a local store failed with "not implemented" and nothing was ever collected.
//!
//! How an update works here: the parent directory of the object is locked with `flock`
//! (exclusive, so it holds across processes sharing the store directory, and between two
//! updates in one process), the object's current e-tag is read (LocalFileSystem derives it from
//! inode, mtime and size; a replaced file is a new inode), and only if it equals the expected
//! one is the new content written, by LocalFileSystem's staged write and atomic rename. A
//! missing object or another e-tag is `Precondition`, as S3 answers 412. Creates, overwrites,
//! reads and deletes go straight to LocalFileSystem.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// A local store that also answers `PutMode::Update`.
#[derive(Debug)]
pub struct LocalConditionalStore {
    inner: Arc<dyn ObjectStore>,
    /// The directory the inner store's paths are relative to.
    dir: PathBuf,
}

impl LocalConditionalStore {
    pub fn new(inner: Arc<dyn ObjectStore>, dir: PathBuf) -> LocalConditionalStore {
        LocalConditionalStore { inner, dir }
    }

    async fn update(
        &self,
        location: &Path,
        payload: PutPayload,
        mut opts: PutOptions,
        expected: object_store::UpdateVersion,
    ) -> object_store::Result<PutResult> {
        let parent = self.dir.join(location.as_ref()).parent().map(|p| p.to_path_buf()).unwrap_or_default();
        let lock = lock_dir(parent).await?;
        let current = match self.inner.head(location).await {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(precondition(location, "the object does not exist"));
            }
            Err(e) => return Err(e),
        };
        if expected.e_tag.is_none() || current.e_tag != expected.e_tag {
            return Err(precondition(
                location,
                &format!("its e-tag is {:?}, expected {:?}", current.e_tag, expected.e_tag),
            ));
        }
        opts.mode = PutMode::Overwrite;
        let result = self.inner.put_opts(location, payload, opts).await;
        drop(lock);
        result
    }
}

fn precondition(location: &Path, why: &str) -> object_store::Error {
    object_store::Error::Precondition {
        path: location.to_string(),
        source: format!("conditional update refused: {why}").into(),
    }
}

/// Holds an exclusive `flock` on a directory until dropped.
struct DirLock(std::fs::File);

impl Drop for DirLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for as long as `self.0` lives.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

async fn lock_dir(dir: PathBuf) -> object_store::Result<DirLock> {
    let generic = |e: std::io::Error, dir: &std::path::Path| object_store::Error::Generic {
        store: "LocalConditionalStore",
        source: format!("cannot lock {}: {e}", dir.display()).into(),
    };
    tokio::task::spawn_blocking(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(&dir).map_err(|e| generic(e, &dir))?;
        loop {
            // SAFETY: `file` is an open descriptor.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(DirLock(file));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(generic(e, &dir));
            }
        }
    })
    .await
    .map_err(|e| object_store::Error::Generic { store: "LocalConditionalStore", source: Box::new(e) })?
}

impl fmt::Display for LocalConditionalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LocalConditional({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LocalConditionalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        match &opts.mode {
            PutMode::Update(expected) => {
                let expected = expected.clone();
                self.update(location, payload, opts, expected).await
            }
            _ => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;
    use object_store::UpdateVersion;

    fn store(dir: &std::path::Path) -> LocalConditionalStore {
        let fs = LocalFileSystem::new_with_prefix(dir).unwrap();
        LocalConditionalStore::new(Arc::new(fs), dir.to_path_buf())
    }

    fn update_to(r: &PutResult) -> PutOptions {
        PutOptions::from(PutMode::Update(UpdateVersion { e_tag: r.e_tag.clone(), version: r.version.clone() }))
    }

    #[tokio::test]
    async fn an_update_succeeds_only_against_the_version_read() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let p = Path::from("gc/manifest.boundary");
        let first = s.put_opts(&p, "1".into(), PutMode::Create.into()).await.unwrap();
        let second = s.put_opts(&p, "2".into(), update_to(&first)).await.unwrap();
        assert_ne!(first.e_tag, second.e_tag, "a replaced object has a new e-tag");
        let got = s.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"2");
        // The first version is gone: updating against it is refused and changes nothing.
        let stale = s.put_opts(&p, "3".into(), update_to(&first)).await;
        assert!(matches!(stale, Err(object_store::Error::Precondition { .. })), "{stale:?}");
        let got = s.get(&p).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"2");
        // The e-tag a read reports is the one an update must name.
        let head = s.head(&p).await.unwrap();
        assert_eq!(head.e_tag, second.e_tag);
    }

    #[tokio::test]
    async fn an_update_of_a_missing_object_is_a_precondition_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        std::fs::create_dir_all(tmp.path().join("gc")).unwrap();
        let p = Path::from("gc/compactions.boundary");
        let opts = PutOptions::from(PutMode::Update(UpdateVersion { e_tag: Some("\"x\"".into()), version: None }));
        let r = s.put_opts(&p, "1".into(), opts).await;
        assert!(matches!(r, Err(object_store::Error::Precondition { .. })), "{r:?}");
        assert!(!tmp.path().join("gc/compactions.boundary").exists());
    }

    #[tokio::test]
    async fn of_racing_updates_from_one_version_exactly_one_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Arc::new(store(tmp.path()));
        let p = Path::from("gc/manifest.boundary");
        let first = s.put_opts(&p, "0".into(), PutMode::Create.into()).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (s, p, opts) = (s.clone(), p.clone(), update_to(&first));
                tokio::spawn(async move { s.put_opts(&p, format!("{i}").into(), opts).await.is_ok() })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            won += t.await.unwrap() as usize;
        }
        assert_eq!(won, 1);
    }
}

//! A local (`file://`) store is private to the user that runs the server: it holds every
//! dataset's data and the file-handle key, and anyone who can read that key can forge NFS
//! handles into any dataset. object_store's LocalFileSystem creates what it writes with the
//! process's default modes (0755 directories, 0644 files), so:
//! - the store's directory is created 0700, and an existing one that group or others may
//!   enter is tightened to 0700 at start, with a warning (unless it is not ours to change: a
//!   sticky directory such as /tmp, or another user's, which is only warned about);
//! - secrets (`secrets/<name>`) are written here, not through the object store: created 0600
//!   under a 0700 `secrets/` directory, atomically (a private temporary file, then a hard link
//!   that fails if another server created the secret first); an existing one that others may
//!   read is tightened at start, with a warning.
//!
//! `slatefs serve` also sets its umask to 077, so that everything else the store creates is
//! private too; the 0700 directory is what protects stores opened by other processes.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

/// Creates `dir` (every missing component 0700), or tightens an existing one (see the module
/// comment).
pub fn prepare_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the store directory {}", dir.display()))?;
        // The mode given to mkdir is masked by the umask; 0700 has nothing a sane one removes,
        // but say so explicitly.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make the store directory {} private", dir.display()))?;
        return Ok(());
    }
    tighten_dir(dir, "store directory", "every dataset's data and the file-handle key")
}

/// Makes an existing directory 0700 if group or others may use it, with a warning.
fn tighten_dir(dir: &Path, what: &str, holds: &str) -> Result<()> {
    let meta = std::fs::metadata(dir).with_context(|| format!("cannot read the {what} {}", dir.display()))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    let ours = meta.uid() == unsafe { libc::geteuid() };
    let sticky = mode & 0o1000 != 0;
    if !ours || sticky {
        tracing::warn!(
            "the {what} {} (mode {mode:04o}) is open to other users and holds {holds}; it is not \
             changed because {}: give the store a directory of its own",
            dir.display(),
            if sticky { "it is a shared (sticky) directory" } else { "another user owns it" }
        );
        return Ok(());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make the {what} {} private (chmod 700)", dir.display()))?;
    tracing::warn!(
        "the {what} {} was mode {mode:04o}, open to other users while it holds {holds}: it is 0700 now",
        dir.display()
    );
    Ok(())
}

/// The 32-byte secret at `path` (`<store>/secrets/<name>`): read, or created once with mode
/// 0600. Every server of the store reads the same bytes.
pub fn local_secret(path: &Path) -> Result<[u8; 32]> {
    let dir = path.parent().context("a secret's path has a directory")?;
    if dir.exists() {
        tighten_dir(dir, "secrets directory", "the file-handle key")?;
    } else {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    loop {
        match std::fs::File::open(path) {
            Ok(f) => return read_existing(f, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read secret {}", path.display())),
        }
        let fresh: [u8; 32] = rand::random();
        if create(path, dir, &fresh)? {
            return Ok(fresh);
        }
        // Another server created it between our open and our link: read theirs.
    }
}

fn read_existing(mut f: std::fs::File, path: &Path) -> Result<[u8; 32]> {
    let meta = f.metadata()?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        // Written by an older slatefs, through the object store, with the default mode.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make secret {} private (chmod 600)", path.display()))?;
        tracing::warn!(
            "secret {} was mode {mode:04o}, readable by other users (who could forge NFS file \
             handles with it): it is 0600 now. Anyone who read it before still can; replacing \
             it (delete it, restart every server) makes every NFS handle given out so far stale",
            path.display()
        );
    }
    let mut bytes = Vec::with_capacity(33);
    (&mut f).take(33).read_to_end(&mut bytes)?;
    bytes
        .as_slice()
        .try_into()
        .with_context(|| format!("secret {} is {} bytes, expected 32", path.display(), bytes.len()))
}

/// Writes `value` to a private temporary file and links it to `path`. `Ok(false)`: `path`
/// exists already (another server won).
fn create(path: &Path, dir: &Path, value: &[u8; 32]) -> Result<bool> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("secret");
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| -> Result<bool> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(value)?;
        f.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("cannot create secret {}", path.display())),
        }
        std::fs::File::open(dir)?.sync_all()?;
        Ok(true)
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn secrets_are_private_and_stable() {
        let root = tempfile::tempdir().unwrap();
        let store = root.path().join("a/b/store");
        prepare_dir(&store).unwrap();
        assert_eq!(mode(&store), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        let key = store.join("secrets/k");
        let first = local_secret(&key).unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(key.parent().unwrap()), 0o700);
        assert_eq!(local_secret(&key).unwrap(), first);
        // Nothing but the secret is left in its directory.
        let names: Vec<_> = std::fs::read_dir(key.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["k"]);

        // An older install's modes are tightened, the bytes kept.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(key.parent().unwrap(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
        prepare_dir(&store).unwrap();
        assert_eq!(local_secret(&key).unwrap(), first);
        assert_eq!((mode(&store), mode(key.parent().unwrap()), mode(&key)), (0o700, 0o700, 0o600));

        std::fs::write(store.join("secrets/short"), b"abc").unwrap();
        assert!(local_secret(&store.join("secrets/short")).unwrap_err().to_string().contains("3 bytes"));
    }

    #[test]
    fn racing_creators_agree() {
        let root = tempfile::tempdir().unwrap();
        let key = root.path().join("secrets/k");
        let got: Vec<[u8; 32]> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8).map(|_| s.spawn(|| local_secret(&key).unwrap())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(got.iter().all(|k| *k == got[0]));
    }

    #[test]
    fn a_sticky_directory_is_left_alone() {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        prepare_dir(root.path()).unwrap();
        assert_eq!(mode(root.path()), 0o1777);
    }
}

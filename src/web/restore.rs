//! `POST /api/v1/datasets/{name}/restore`: a file or directory of a snapshot copied into the
//! live dataset, beside the original or in its place (docs/web.md, "Restore").

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use super::api::snapshot_of;
use super::error::{ApiError, ApiResult};
use super::files::{list_dir, open_ref, walk, walk_opt};
use super::paths::{DatasetPath, DatasetRef};
use super::{parse_body, AppState};
use crate::fs::{Caller, Filesystem, FsError, FsResult, Inode, Kind, NewNode, SetAttr, SetTime, MAX_IO_SIZE};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    snapshot: String,
    path: String,
    #[serde(default)]
    mode: Mode,
    /// Where to put the copy instead of `PATH.restored-SNAP` (beside mode only).
    target: Option<String>,
    #[serde(default)]
    confirm: bool,
}

#[derive(serde::Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    #[default]
    Beside,
    Replace,
}

pub async fn post(State(web): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Json<Value>> {
    let req: RestoreBody = parse_body(&body)?;
    let path = DatasetPath::parse_plain(&req.path)?;
    let Some((parent, last)) = path.split_last() else {
        return Err(ApiError::bad_request(
            "restore a file or directory inside the dataset; to get a whole snapshot back, clone it",
        ));
    };
    if req.mode == Mode::Replace && !req.confirm {
        return Err(ApiError::bad_request(format!(
            "replacing {} with its version in snapshot {} needs \"confirm\": true",
            path.display(),
            req.snapshot
        )));
    }
    if req.mode == Mode::Replace && req.target.is_some() {
        return Err(ApiError::bad_request("target is for mode beside"));
    }
    snapshot_of(&web.registry, &name, &req.snapshot).await?;
    let snap = open_ref(&web.registry, &DatasetRef { dataset: name.clone(), snapshot: Some(req.snapshot.clone()) }).await?;
    let live = open_ref(&web.registry, &DatasetRef { dataset: name.clone(), snapshot: None }).await?;
    let source = walk(&snap, &path).await.map_err(|e| ApiError::new(e.status, format!("in snapshot {}: {}", req.snapshot, e.message)))?;
    let existing = walk_opt(&live, &path).await?;

    let target = match (&req.mode, &req.target) {
        (Mode::Beside, Some(t)) => DatasetPath::parse_plain(t)?,
        (Mode::Beside, None) if existing.is_none() => path.clone(),
        (Mode::Beside, None) => {
            let mut n = last.to_vec();
            n.extend_from_slice(format!(".restored-{}", req.snapshot).as_bytes());
            parent.child(&n)
        }
        (Mode::Replace, _) => path.clone(),
    };
    let (target_parent, target_name) =
        target.split_last().ok_or_else(|| ApiError::bad_request("target must not be the dataset's root"))?;
    if target_parent.is_root() && target_name == b".snapshots" {
        return Err(ApiError::conflict("the name .snapshots is taken by the snapshot directory"));
    }
    let dir = match walk_opt(&live, &target_parent).await? {
        Some(d) if d.kind == Kind::Dir => d,
        Some(_) => return Err(ApiError::conflict(format!("{} is not a directory", target_parent.display()))),
        None => {
            return Err(ApiError::conflict(format!(
                "{} does not exist in the live dataset: restore it first",
                target_parent.display()
            )))
        }
    };
    let replacing = req.mode == Mode::Replace && existing.is_some();
    if !replacing && walk_opt(&live, &target).await?.is_some() {
        return Err(ApiError::conflict(format!("{} exists already", target.display())));
    }

    let mut copy = Copier { from: snap, to: live.clone(), files: 0, bytes: 0 };
    let copy_name = if replacing { hidden_name(target_name, "restore") } else { target_name.to_vec() };
    if let Err(e) = copy.tree(&source, dir.ino, &copy_name).await {
        let _ = remove_tree(&live, dir.ino, &copy_name).await;
        return Err(ApiError::fs(&target.display(), e));
    }
    if replacing {
        swap_in(&live, dir.ino, target_name, &copy_name).await.map_err(|e| ApiError::fs(&target.display(), e))?;
    }
    Ok(Json(json!({
        "restored": target.display(),
        "replaced": replacing,
        "files": copy.files,
        "bytes": copy.bytes,
    })))
}

fn hidden_name(name: &[u8], what: &str) -> Vec<u8> {
    let tag: u64 = rand::random();
    let mut n = b".".to_vec();
    // Keep the result within the 255-byte name limit.
    n.extend_from_slice(&name[..name.len().min(200)]);
    n.extend_from_slice(format!(".slatefs-{what}-{tag:016x}").as_bytes());
    n
}

/// Puts the finished copy `copy` in place of `name`: the original is renamed aside first, so
/// `name` always names one whole version, then removed.
async fn swap_in(fs: &Filesystem, dir: u64, name: &[u8], copy: &[u8]) -> FsResult<()> {
    let root = Caller::root();
    let aside = hidden_name(name, "old");
    fs.rename(&root, dir, name, dir, &aside).await?;
    if let Err(e) = fs.rename(&root, dir, copy, dir, name).await {
        let _ = fs.rename(&root, dir, &aside, dir, name).await;
        let _ = remove_tree(fs, dir, copy).await;
        return Err(e);
    }
    remove_tree(fs, dir, &aside).await
}

/// Removes `dir/name` and everything under it.
async fn remove_tree(fs: &Filesystem, dir: u64, name: &[u8]) -> FsResult<()> {
    let root = Caller::root();
    // (parent, name, whether its children were removed already)
    let mut stack: Vec<(u64, Vec<u8>, bool)> = vec![(dir, name.to_vec(), false)];
    while let Some((parent, n, emptied)) = stack.pop() {
        let ino = match fs.lookup(&root, parent, &n).await {
            Ok(i) => i,
            Err(FsError::NotFound) => continue,
            Err(e) => return Err(e),
        };
        let inode = fs.getattr(ino).await?;
        if inode.kind == Kind::Dir && !emptied {
            stack.push((parent, n, true));
            for (child, _) in list_dir(fs, ino, usize::MAX).await?.0 {
                stack.push((ino, child, false));
            }
            continue;
        }
        fs.remove_any(&root, parent, &n).await?;
    }
    Ok(())
}

struct Copier {
    from: Arc<Filesystem>,
    to: Arc<Filesystem>,
    files: u64,
    bytes: u64,
}

impl Copier {
    /// Copies `source` (of the snapshot) to `dir/name` in the live dataset. Directory times
    /// are set last, after their entries were made.
    async fn tree(&mut self, source: &Inode, dir: u64, name: &[u8]) -> FsResult<()> {
        let mut stack: Vec<(Inode, u64, Vec<u8>)> = vec![(source.clone(), dir, name.to_vec())];
        let mut dir_times: Vec<(u64, Inode)> = Vec::new();
        while let Some((src, parent, n)) = stack.pop() {
            let made = self.node(&src, parent, &n).await?;
            if src.kind == Kind::Dir {
                for (child, child_inode) in list_dir(&self.from, src.ino, usize::MAX).await?.0 {
                    stack.push((child_inode, made, child));
                }
                dir_times.push((made, src));
            } else {
                self.set_times(made, &src).await?;
            }
        }
        for (made, src) in dir_times.iter().rev() {
            self.set_times(*made, src).await?;
        }
        Ok(())
    }

    /// Makes one node (a file with its data) and returns its inode number in the live dataset.
    async fn node(&mut self, src: &Inode, parent: u64, name: &[u8]) -> FsResult<u64> {
        let root = Caller::root();
        let mut node = NewNode::new(src.kind, src.mode);
        node.uid = Some(src.uid);
        node.gid = Some(src.gid);
        node.rdev = src.rdev;
        if src.kind == Kind::Symlink {
            node.symlink = self.from.readlink(src.ino).await?;
        }
        let made = self.to.create(&root, parent, name, node).await?;
        self.files += 1;
        if src.kind == Kind::File {
            self.copy_data(src, made.ino).await?;
        }
        Ok(made.ino)
    }

    /// Copies a file's bytes; pieces that are all zeros are skipped (holes stay holes), and
    /// the size is set at the end so a file ending in a hole keeps its length.
    async fn copy_data(&mut self, src: &Inode, dst: u64) -> FsResult<()> {
        let root = Caller::root();
        let mut offset = 0u64;
        while offset < src.size {
            let (data, _) = self.from.read(&root, src.ino, offset, MAX_IO_SIZE as u32).await?;
            if data.is_empty() {
                break;
            }
            if data.iter().any(|&b| b != 0) {
                self.to.write(&root, dst, offset, &data).await?;
            }
            offset += data.len() as u64;
            self.bytes += data.len() as u64;
        }
        let attr = SetAttr { size: Some(src.size), ..Default::default() };
        self.to.setattr(&root, dst, &attr).await?;
        Ok(())
    }

    async fn set_times(&self, ino: u64, src: &Inode) -> FsResult<()> {
        if src.kind == Kind::Symlink {
            return Ok(());
        }
        let attr = SetAttr {
            atime: Some(SetTime::At(src.atime)),
            mtime: Some(SetTime::At(src.mtime)),
            ..Default::default()
        };
        self.to.setattr(&Caller::root(), ino, &attr).await.map(|_| ())
    }
}

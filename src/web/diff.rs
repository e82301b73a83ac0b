//! `GET /api/v1/datasets/{name}/diff?from=SNAP&to=SNAP|live[&content=1]`: what changed between
//! two versions of a dataset. A snapshot and its dataset share inode numbers, and every change
//! to an inode sets its ctime, so an inode with the same number, size, mtime and ctime on both
//! sides is unchanged: its data is never read, and for a directory one listing serves both.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde_json::{json, Value};

use super::api::snapshot_of;
use super::error::{ApiError, ApiResult};
use super::files::{kind_name, list_dir, open_ref, unix_ms};
use super::paths::{DatasetPath, DatasetRef};
use super::{query_flag, query_pairs, AppState};
use crate::fs::{Caller, Filesystem, FsError, Inode, Kind, MAX_IO_SIZE, ROOT_INO};

/// The most entries of each kind (added, removed, changed) one answer lists.
const MAX_REPORTED: usize = 10_000;

pub async fn get(State(web): State<AppState>, Path(name): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let q = query_pairs(q.as_deref());
    let value = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let from = value("from").filter(|v| !v.is_empty()).ok_or_else(|| ApiError::bad_request("diff needs from=SNAPSHOT"))?;
    let to = value("to").filter(|v| !v.is_empty()).unwrap_or_else(|| "live".to_string());
    let content = query_flag(&q, "content");
    let side = |snap: Option<String>| DatasetRef { dataset: name.clone(), snapshot: snap };
    snapshot_of(&web.registry, &name, &from).await?;
    let to_ref = if to == "live" {
        web.registry.dataset_info(&name).await?;
        side(None)
    } else {
        snapshot_of(&web.registry, &name, &to).await?;
        side(Some(to.clone()))
    };
    let old = open_ref(&web.registry, &side(Some(from.clone()))).await?;
    let new = open_ref(&web.registry, &to_ref).await?;
    let mut d = Differ { old, new, content, report: Report::default() };
    d.run().await.map_err(ApiError::from)?;
    let r = d.report;
    Ok(Json(json!({
        "dataset": name,
        "from": from,
        "to": to,
        "content": content,
        "added": r.added,
        "removed": r.removed,
        "changed": r.changed,
        "truncated": r.truncated,
        "dirs_listed": r.dirs_listed,
        "dirs_same": r.dirs_same,
        "files_compared": r.files_compared,
    })))
}

#[derive(Default)]
struct Report {
    added: Vec<Value>,
    removed: Vec<Value>,
    changed: Vec<Value>,
    truncated: bool,
    /// Directory listings read (one side or both).
    dirs_listed: u64,
    /// Directories unchanged on both sides: one listing read for both.
    dirs_same: u64,
    /// Files whose contents were read and compared (`content=1`).
    files_compared: u64,
}

impl Report {
    fn push(list: &mut Vec<Value>, truncated: &mut bool, v: Value) {
        if list.len() < MAX_REPORTED {
            list.push(v);
        } else {
            *truncated = true;
        }
    }
}

struct Differ {
    old: Arc<Filesystem>,
    new: Arc<Filesystem>,
    content: bool,
    report: Report,
}

/// The same inode, untouched since: same number, type, size, mtime and ctime.
fn untouched(a: &Inode, b: &Inode) -> bool {
    a.ino == b.ino && a.kind == b.kind && a.size == b.size && a.mtime == b.mtime && a.ctime == b.ctime
}

fn brief(path: &DatasetPath, i: &Inode) -> Value {
    json!({ "path": path.display(), "type": kind_name(i.kind), "size": i.size, "mtime_unix_ms": unix_ms(i.mtime) })
}

impl Differ {
    async fn run(&mut self) -> Result<(), FsError> {
        let a = self.old.getattr(ROOT_INO).await?;
        let b = self.new.getattr(ROOT_INO).await?;
        let mut stack = vec![(DatasetPath::default(), a, b)];
        while let Some((path, a, b)) = stack.pop() {
            let same_dir = untouched(&a, &b);
            let old_entries = list_dir(&self.old, a.ino, usize::MAX).await?.0;
            self.report.dirs_listed += 1;
            let new_entries = if same_dir {
                self.report.dirs_same += 1;
                None
            } else {
                Some(list_dir(&self.new, b.ino, usize::MAX).await?.0)
            };
            let old_map: BTreeMap<Vec<u8>, Inode> = old_entries.into_iter().collect();
            let new_map: BTreeMap<Vec<u8>, Inode> = match new_entries {
                Some(v) => v.into_iter().collect(),
                // Same entries (names and inode numbers); the inodes themselves are read from
                // the new side, since a file's data changes without touching its directory.
                None => {
                    let mut m = BTreeMap::new();
                    for (name, i) in &old_map {
                        m.insert(name.clone(), self.new.getattr(i.ino).await?);
                    }
                    m
                }
            };
            for (name, oi) in &old_map {
                let p = path.child(name);
                match new_map.get(name) {
                    None => Report::push(&mut self.report.removed, &mut self.report.truncated, brief(&p, oi)),
                    Some(ni) => {
                        if oi.kind == Kind::Dir && ni.kind == Kind::Dir {
                            stack.push((p, oi.clone(), ni.clone()));
                        } else if let Some(reasons) = self.compare(oi, ni).await? {
                            let v = json!({ "path": p.display(), "type": kind_name(ni.kind), "reasons": reasons,
                                "from": brief(&p, oi), "to": brief(&p, ni) });
                            Report::push(&mut self.report.changed, &mut self.report.truncated, v);
                        }
                    }
                }
            }
            for (name, ni) in &new_map {
                if !old_map.contains_key(name) {
                    Report::push(&mut self.report.added, &mut self.report.truncated, brief(&path.child(name), ni));
                }
            }
        }
        for list in [&mut self.report.added, &mut self.report.removed, &mut self.report.changed] {
            list.sort_by(|x, y| x["path"].as_str().cmp(&y["path"].as_str()));
        }
        Ok(())
    }

    /// Why two versions of a non-directory differ, or `None` when they do not.
    async fn compare(&mut self, a: &Inode, b: &Inode) -> Result<Option<Vec<&'static str>>, FsError> {
        if untouched(a, b) {
            return Ok(None);
        }
        if a.kind != b.kind {
            return Ok(Some(vec!["type"]));
        }
        let mut reasons = Vec::new();
        if a.size != b.size {
            reasons.push("size");
        }
        if a.mtime != b.mtime {
            reasons.push("mtime");
        }
        if a.kind == Kind::Symlink && self.old.readlink(a.ino).await? != self.new.readlink(b.ino).await? {
            reasons.push("target");
        }
        if self.content && a.kind == Kind::File && a.size == b.size {
            self.report.files_compared += 1;
            if self.same_bytes(a, b).await? {
                return Ok(None);
            }
            reasons.push("content");
        }
        Ok(if reasons.is_empty() { None } else { Some(reasons) })
    }

    async fn same_bytes(&self, a: &Inode, b: &Inode) -> Result<bool, FsError> {
        let root = Caller::root();
        let mut offset = 0u64;
        while offset < a.size {
            let (x, _) = self.old.read(&root, a.ino, offset, MAX_IO_SIZE as u32).await?;
            let (y, _) = self.new.read(&root, b.ino, offset, MAX_IO_SIZE as u32).await?;
            if x != y {
                return Ok(false);
            }
            if x.is_empty() {
                break;
            }
            offset += x.len() as u64;
        }
        Ok(true)
    }
}

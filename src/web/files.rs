//! Browsing: `GET /api/v1/datasets/{ref}/files/{path}` lists a directory, returns a file's
//! bytes, or streams a directory as tar. Lookups start at the root inode and go down by name.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::paths::{encode_segment, DatasetPath, DatasetRef};
use super::{query_flag, query_pairs, AppState};
use crate::catalog::Registry;
use crate::fs::{Caller, Filesystem, Inode, Kind, Time, MAX_IO_SIZE, ROOT_INO};

/// The most entries one listing returns (`truncated` says there were more).
const MAX_LISTING: usize = 100_000;

/// The open filesystem a reference names: a dataset's writer or a snapshot's reader.
pub async fn open_ref(registry: &Registry, r: &DatasetRef) -> ApiResult<Arc<Filesystem>> {
    let id = registry.resolve_export(&r.export()).await?;
    Ok(registry.filesystem(id).await?)
}

/// Walks `path` from the root by name; symlinks are not followed.
pub async fn walk(fs: &Filesystem, path: &DatasetPath) -> ApiResult<Inode> {
    let root = Caller::root();
    let mut ino = ROOT_INO;
    for (i, name) in path.names.iter().enumerate() {
        let here = DatasetPath { names: path.names[..=i].to_vec() };
        ino = fs.lookup(&root, ino, name).await.map_err(|e| ApiError::fs(&here.display(), e))?;
    }
    fs.getattr(ino).await.map_err(|e| ApiError::fs(&path.display(), e))
}

/// Like [`walk`], `None` when the last name does not exist.
pub async fn walk_opt(fs: &Filesystem, path: &DatasetPath) -> ApiResult<Option<Inode>> {
    match walk(fs, path).await {
        Ok(i) => Ok(Some(i)),
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every entry of a directory but `.` and `..`, with its inode, in listing order.
pub async fn list_dir(fs: &Filesystem, dir: u64, max: usize) -> Result<(Vec<(Vec<u8>, Inode)>, bool), crate::fs::FsError> {
    let root = Caller::root();
    let mut out = Vec::new();
    let mut cookie = 0;
    loop {
        let (entries, eof) = fs.readdir(&root, dir, cookie, 1024).await?;
        for e in &entries {
            cookie = e.cookie;
            if e.name == b"." || e.name == b".." {
                continue;
            }
            if out.len() >= max {
                return Ok((out, true));
            }
            out.push((e.name.clone(), fs.getattr(e.ino).await?));
        }
        if eof || entries.is_empty() {
            return Ok((out, false));
        }
    }
}

pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
        Kind::Fifo => "fifo",
        Kind::Socket => "socket",
        Kind::CharDev => "chardev",
        Kind::BlockDev => "blockdev",
    }
}

pub fn unix_ms(t: Time) -> i64 {
    t.secs * 1000 + (t.nanos / 1_000_000) as i64
}

pub fn entry_json(name: &[u8], i: &Inode) -> Value {
    json!({
        "name": String::from_utf8_lossy(name),
        "href": encode_segment(name),
        "type": kind_name(i.kind),
        "size": i.size,
        "mtime_unix_ms": unix_ms(i.mtime),
        "mode": i.mode,
        "uid": i.uid,
        "gid": i.gid,
        "ino": i.ino,
    })
}

/// `{ref}` and the file path from the raw request path `/api/v1/datasets/{ref}/files/…`.
fn split_files_uri(uri: &Uri) -> ApiResult<(DatasetRef, DatasetPath)> {
    let rest = uri.path().strip_prefix("/api/v1/datasets/").ok_or_else(|| ApiError::not_found("no such API call"))?;
    let (raw_ref, rest) = rest.split_once('/').ok_or_else(|| ApiError::not_found("no such API call"))?;
    let raw_path = rest.strip_prefix("files").ok_or_else(|| ApiError::not_found("no such API call"))?;
    Ok((DatasetRef::parse_raw(raw_ref)?, DatasetPath::parse_raw(raw_path)?))
}

pub async fn get(State(web): State<AppState>, uri: Uri, RawQuery(query): RawQuery) -> ApiResult<Response> {
    let (dsref, path) = split_files_uri(&uri)?;
    let q = query_pairs(query.as_deref());
    let fs = open_ref(&web.registry, &dsref).await?;
    let inode = walk(&fs, &path).await?;
    match inode.kind {
        Kind::Dir if query_flag(&q, "tar") => {
            let top = match path.names.last() {
                Some(n) => String::from_utf8_lossy(n).into_owned(),
                None => dsref.export(),
            };
            Ok(super::tar::response(fs, inode.ino, top))
        }
        Kind::Dir => {
            let (mut entries, truncated) =
                list_dir(&fs, inode.ino, MAX_LISTING).await.map_err(|e| ApiError::fs(&path.display(), e))?;
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let list: Vec<Value> = entries.iter().map(|(n, i)| entry_json(n, i)).collect();
            Ok(Json(json!({
                "dataset": dsref.export(),
                "path": path.display(),
                "type": "dir",
                "entries": list,
                "truncated": truncated,
            }))
            .into_response())
        }
        _ if query_flag(&q, "tar") => Err(ApiError::bad_request(format!("{}: tar=1 needs a directory", path.display()))),
        Kind::File => {
            let name = path.names.last().map(|n| n.as_slice()).unwrap_or(b"");
            Ok(file_response(fs, &inode, name, query_flag(&q, "download")))
        }
        Kind::Symlink => {
            let target = fs.readlink(inode.ino).await.map_err(|e| ApiError::fs(&path.display(), e))?;
            Ok(Json(json!({ "path": path.display(), "type": "symlink", "target": String::from_utf8_lossy(&target) }))
                .into_response())
        }
        k => Ok(Json(json!({ "path": path.display(), "type": kind_name(k), "mode": inode.mode })).into_response()),
    }
}

/// A file's bytes, streamed 1 MiB at a time; served so that it can never run script in the
/// console's origin (docs/web.md).
fn file_response(fs: Arc<Filesystem>, inode: &Inode, name: &[u8], download: bool) -> Response {
    let body = Body::from_stream(read_stream(fs, inode.ino, inode.size));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(name)));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(inode.size));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if download {
        h.insert(header::CONTENT_DISPOSITION, attachment(name));
    }
    resp
}

pub fn attachment(name: &[u8]) -> HeaderValue {
    let ascii: String = String::from_utf8_lossy(name)
        .chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect();
    let v = format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{}", encode_segment(name));
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// The bytes of a file, in pieces of at most `MAX_IO_SIZE`; an error ends the stream (the
/// client sees a short body).
pub fn read_stream(
    fs: Arc<Filesystem>,
    ino: u64,
    size: u64,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures::stream::unfold(0u64, move |offset| {
        let fs = fs.clone();
        async move {
            if offset >= size {
                return None;
            }
            let want = (size - offset).min(MAX_IO_SIZE as u64) as u32;
            match fs.read(&Caller::root(), ino, offset, want).await {
                Ok((data, _)) if data.is_empty() => None,
                Ok((data, _)) => {
                    let next = offset + data.len() as u64;
                    Some((Ok(bytes::Bytes::from(data)), next))
                }
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), size)),
            }
        }
    })
}

/// The content type by extension. Markup and scripts are sent as text: a file from a dataset
/// is shown, never run.
fn content_type(name: &[u8]) -> &'static str {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "bmp" => "image/bmp",
        "ico" => "image/x-icon",
        "pdf" => "application/pdf",
        "json" => "application/json",
        "txt" | "md" | "log" | "csv" | "tsv" | "yaml" | "yml" | "toml" | "ini" | "conf" | "cfg" | "rs" | "py" | "sh"
        | "c" | "h" | "cpp" | "go" | "java" | "js" | "ts" | "css" | "html" | "htm" | "xhtml" | "xml" | "sql" => {
            "text/plain; charset=utf-8"
        }
        _ => "application/octet-stream",
    }
}

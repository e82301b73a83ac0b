//! A directory tree as a tar stream. The `tar` crate writes each entry's headers (GNU long
//! names and link names included) into a buffer; the file data is streamed from the engine
//! in pieces and padded here, so a large file is never held in memory.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::files::{attachment, list_dir, read_stream};
use crate::fs::{Filesystem, Inode, Kind};

const BLOCK: u64 = 512;

pub fn response(fs: Arc<Filesystem>, dir: u64, top: String) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let disposition = attachment(format!("{top}.tar").as_bytes());
    tokio::spawn(async move {
        if let Err(e) = write_tree(&fs, dir, &top, &tx).await {
            tracing::warn!("tar stream of {top}: {e}");
            let _ = tx.send(Err(e)).await;
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    h.insert(header::CONTENT_DISPOSITION, disposition);
    resp
}

type Tx = mpsc::Sender<Result<Bytes, std::io::Error>>;

async fn send(tx: &Tx, b: Vec<u8>) -> std::io::Result<()> {
    tx.send(Ok(Bytes::from(b))).await.map_err(|_| std::io::Error::other("the client went away"))
}

fn header_for(i: &Inode, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(i.mode & 0o7777);
    h.set_uid(i.uid as u64);
    h.set_gid(i.gid as u64);
    h.set_mtime(i.mtime.secs.max(0) as u64);
    h
}

async fn write_tree(fs: &Arc<Filesystem>, dir: u64, top: &str, tx: &Tx) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(Vec::new());
    let root = fs.getattr(dir).await.map_err(std::io::Error::other)?;
    // Depth first, a directory's entry before its contents.
    let mut stack: Vec<(String, Inode)> = vec![(top.to_string(), root)];
    while let Some((path, inode)) = stack.pop() {
        match inode.kind {
            Kind::Dir => {
                let mut h = header_for(&inode, tar::EntryType::Directory, 0);
                builder.append_data(&mut h, format!("{path}/"), std::io::empty())?;
                send(tx, std::mem::take(builder.get_mut())).await?;
                let (mut entries, _) = list_dir(fs, inode.ino, usize::MAX).await.map_err(std::io::Error::other)?;
                entries.sort_by(|a, b| b.0.cmp(&a.0));
                for (name, child) in entries {
                    stack.push((format!("{path}/{}", String::from_utf8_lossy(&name)), child));
                }
            }
            Kind::File => {
                let mut h = header_for(&inode, tar::EntryType::Regular, inode.size);
                // The header claims `size` bytes; they follow from the engine, then padding.
                builder.append_data(&mut h, &path, std::io::empty())?;
                send(tx, std::mem::take(builder.get_mut())).await?;
                let mut sent = 0u64;
                let mut data = std::pin::pin!(read_stream(fs.clone(), inode.ino, inode.size));
                while let Some(piece) = data.next().await {
                    let piece = piece?;
                    sent += piece.len() as u64;
                    tx.send(Ok(piece)).await.map_err(|_| std::io::Error::other("the client went away"))?;
                }
                if sent != inode.size {
                    return Err(std::io::Error::other(format!("{path}: read {sent} of {} bytes", inode.size)));
                }
                let pad = (BLOCK - inode.size % BLOCK) % BLOCK;
                if pad > 0 {
                    send(tx, vec![0u8; pad as usize]).await?;
                }
            }
            Kind::Symlink => {
                let target = fs.readlink(inode.ino).await.map_err(std::io::Error::other)?;
                let mut h = header_for(&inode, tar::EntryType::Symlink, 0);
                let target = String::from_utf8_lossy(&target).into_owned();
                builder.append_link(&mut h, &path, target)?;
                send(tx, std::mem::take(builder.get_mut())).await?;
            }
            // Devices, fifos and sockets are skipped (docs/web.md).
            _ => {}
        }
    }
    let end = builder.into_inner()?;
    send(tx, end).await
}

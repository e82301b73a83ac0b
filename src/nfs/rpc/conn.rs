//! One client connection: a reader that takes records off the socket and runs each call in its
//! own task, and one writer that sends replies in whatever order they finish.
//!
//! Clients pipeline (the Linux client keeps dozens of calls in flight per connection), so calls
//! run concurrently; a slot semaphore and a byte budget bound what one connection may hold in
//! memory, and when they run out the reader stops reading, which pushes back through TCP. The
//! record still arriving draws on the budget all connections share and must finish in time
//! (`limits.rs`).

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::limits::Shared;
use super::record::{read_record, MAX_RECORD};
use super::{Backend, Reply, Rpc};

/// Calls one connection may have in progress at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Bytes of requests one connection may have in progress at once, in KiB.
const MAX_KIB_IN_FLIGHT: usize = 64 * 1024;
const READ_BUFFER: usize = 64 * 1024;
const WRITE_BUFFER: usize = 64 * 1024;
/// Record buffers kept for reuse per connection, and the largest one worth keeping: a WRITE
/// stream then reads each 1 MiB record into a buffer that already has room for it.
const POOLED_BUFFERS: usize = 8;
const POOLED_CAPACITY: usize = 2 * crate::fs::MAX_IO_SIZE;

#[derive(Clone)]
struct Pool(Arc<PoolInner>);

struct PoolInner {
    buffers: Mutex<Vec<Vec<u8>>>,
    limits: Arc<Shared>,
}

impl Pool {
    fn new(limits: Arc<Shared>) -> Pool {
        Pool(Arc::new(PoolInner { buffers: Mutex::default(), limits }))
    }

    fn take(&self) -> Vec<u8> {
        let buf = self.0.buffers.lock().expect("pool lock").pop().unwrap_or_default();
        self.0.limits.pool_took(buf.capacity());
        buf
    }

    fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() <= POOLED_CAPACITY {
            buf.clear();
            let mut pool = self.0.buffers.lock().expect("pool lock");
            if pool.len() < POOLED_BUFFERS && self.0.limits.pool_put(buf.capacity()) {
                pool.push(buf);
            }
        }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // The connection is over: its buffers leave the count all pools share.
        let buffers = self.buffers.get_mut().expect("pool lock");
        for buf in buffers.drain(..) {
            self.limits.pool_took(buf.capacity());
        }
    }
}

/// Logs why a connection ended: a connection the server closed is worth a (throttled)
/// warning, one its client closed or lost is not.
pub fn report(limits: &Shared, peer: SocketAddr, e: io::Error) {
    match e.kind() {
        io::ErrorKind::InvalidData => limits.garbage.warn(format_args!("nfs: closed the connection from {peer}: {e}")),
        io::ErrorKind::TimedOut => limits.stalled.warn(format_args!("nfs: closed the connection from {peer}: {e}")),
        _ => tracing::debug!("nfs connection from {peer} ended: {e}"),
    }
}

pub async fn serve<V: Backend>(
    rpc: Arc<Rpc<V>>,
    limits: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: CancellationToken,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (rx, tx) = stream.into_split();
    let mut rx = BufReader::with_capacity(READ_BUFFER, rx);
    let (replies, outbox) = mpsc::channel::<Reply>(MAX_IN_FLIGHT);
    tokio::spawn(write_replies(tx, outbox));
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let budget = Arc::new(Semaphore::new(MAX_KIB_IN_FLIGHT));
    let pool = Pool::new(limits.clone());
    let mut reservation = limits.reservation();
    loop {
        let slot = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
        };
        // Waiting for the next record is not timed: clients keep idle connections open.
        let idle = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = rx.fill_buf() => r?.is_empty(),
        };
        if idle {
            return Ok(());
        }
        let mut record = pool.take();
        if !reservation.try_cover(record.capacity()) {
            // A pooled buffer the spent budget cannot cover: start small instead of waiting.
            record = Vec::new();
        }
        let timeout = limits.record_timeout;
        let more = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            r = tokio::time::timeout(timeout, read_record(&mut rx, &mut record, MAX_RECORD, &mut reservation)) => match r {
                Ok(r) => r?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("a record still unfinished {} ms after it began", timeout.as_millis()),
                    ))
                }
            },
        };
        reservation.release();
        if !more {
            return Ok(());
        }
        // A record whose message type is not CALL is not ONC RPC: there is nobody to answer.
        if record.get(4..8) != Some(&[0, 0, 0, 0][..]) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not an RPC call"));
        }
        let kib = (record.len() / 1024 + 1).min(MAX_KIB_IN_FLIGHT) as u32;
        let memory = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = budget.clone().acquire_many_owned(kib) => m.expect("the semaphore is never closed"),
        };
        let rpc = rpc.clone();
        let replies = replies.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            let reply = rpc.handle(&record, peer.ip()).await;
            pool.give(record);
            if let Some(reply) = reply {
                let _ = replies.send(reply).await;
            }
            drop((slot, memory));
        });
    }
}

async fn write_replies(tx: OwnedWriteHalf, mut outbox: mpsc::Receiver<Reply>) {
    let mut w = BufWriter::with_capacity(WRITE_BUFFER, tx);
    while let Some(reply) = outbox.recv().await {
        let mut result = send(&mut w, &reply).await;
        // Replies that are already waiting go out in the same flush.
        while result.is_ok() {
            match outbox.try_recv() {
                Ok(next) => result = send(&mut w, &next).await,
                Err(_) => break,
            }
        }
        if result.is_err() || w.flush().await.is_err() {
            // The client is gone; the calls still running finish and their replies are dropped.
            return;
        }
    }
    let _ = w.shutdown().await;
}

async fn send(w: &mut BufWriter<OwnedWriteHalf>, reply: &Reply) -> io::Result<()> {
    w.write_all(&reply.head).await?;
    if !reply.data.is_empty() {
        // A large payload bypasses the buffer and goes to the socket as it is.
        w.write_all(&reply.data).await?;
        let pad = (4 - reply.data.len() % 4) % 4;
        w.write_all(&[0u8; 3][..pad]).await?;
    }
    Ok(())
}

//! A front for the NFS listener that enforces RPC record-marking limits.
//!
//! zerofs_nfsserve allocates whatever length a record-marking header announces (up to 2 GiB)
//! and accumulates fragments without bound, so one malformed or hostile connection could make
//! the server allocate gigabytes. Clients connect here; each connection is relayed to the
//! library's listener on a private loopback port while every record is checked against
//! `MAX_RECORD`. A connection that breaks the limit is closed and logged; others go on.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The largest RPC record a client may send. WRITEs up to four times the maximum still reach
/// the server and get a proper NFS3ERR_INVAL; anything larger is not a WRITE we could answer.
pub const MAX_RECORD: usize = 4 * crate::fs::MAX_IO_SIZE + 64 * 1024;

pub async fn run(front: TcpListener, backend: SocketAddr, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = front.accept() => a,
        };
        let (client, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("nfs accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let stop = shutdown.child_token();
        tokio::spawn(async move {
            if let Err(e) = relay(client, backend, stop).await {
                tracing::debug!("nfs connection from {peer} ended: {e}");
            }
        });
    }
}

async fn relay(client: TcpStream, backend: SocketAddr, stop: CancellationToken) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let server = TcpStream::connect(backend).await?;
    server.set_nodelay(true)?;
    let peer = client.peer_addr()?;
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let inbound = async {
        let result = copy_records(&mut client_rx, &mut server_tx).await;
        let _ = server_tx.shutdown().await;
        result
    };
    let outbound = async {
        let result = tokio::io::copy(&mut server_rx, &mut client_tx).await.map(|_| ());
        let _ = client_tx.shutdown().await;
        result
    };
    tokio::select! {
        _ = stop.cancelled() => Ok(()),
        r = async { tokio::try_join!(inbound, outbound).map(|_| ()) } => {
            if let Err(e) = &r {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    tracing::warn!("nfs: closing connection from {peer}: {e}");
                }
            }
            r
        }
    }
}

/// Copies whole fragments, refusing any record longer than `MAX_RECORD`.
async fn copy_records<R, W>(rx: &mut R, tx: &mut W) -> std::io::Result<()>
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let mut record_len = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let mut header = [0u8; 4];
        match rx.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let word = u32::from_be_bytes(header);
        let last = word & (1 << 31) != 0;
        let len = (word & !(1 << 31)) as usize;
        record_len += len;
        if record_len > MAX_RECORD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("RPC record of {record_len}+ bytes exceeds the {MAX_RECORD}-byte limit"),
            ));
        }
        tx.write_all(&header).await?;
        let mut left = len;
        while left > 0 {
            let want = left.min(buf.len());
            let n = rx.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            tx.write_all(&buf[..n]).await?;
            left -= n;
        }
        if last {
            record_len = 0;
        }
    }
}

//! slatefs's ONC RPC server for NFSv3, MOUNT v3 and PORTMAP v2 on one TCP port.
//!
//! It replaces zerofs_nfsserve's listener, whose per-call costs showed in profiles: a
//! transaction tracker that scanned every call of the last minute under one global lock on
//! every call, a relay through a second loopback connection to cap record sizes, and copies
//! of every request and reply. Here records are read once into the buffer the call decodes
//! from, calls run concurrently per connection, the duplicate request cache is O(1) and
//! bounded, and the filesystem is reached through the library's `NFSFileSystem` trait.

mod conn;
mod drc;
mod limits;
mod message;
mod mount;
mod nfs3;
mod nfs3_dir;
mod nfs3_modify;
mod record;
mod route;
mod xdr;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use zerofs_nfsserve::nfs::{fileid3, filename3, nfsstat3};
use zerofs_nfsserve::vfs::{AuthContext, NFSFileSystem};

use drc::{Begin, Drc, Key};
pub use limits::Limits;
use crate::metrics::nfs::CallOutcome;
use message::{AcceptStat, Parsed};

/// What the RPC layer needs beyond `NFSFileSystem`.
#[async_trait]
pub trait NfsExtras {
    /// Whether a WRITE to `id` is durable once the filesystem acknowledges it (FILE_SYNC), or
    /// only after a COMMIT (UNSTABLE).
    async fn writes_are_stable(&self, id: fileid3) -> bool;

    /// REMOVE (`dir` false: anything but a directory, else NFS3ERR_ISDIR) and RMDIR (`dir`
    /// true: an empty directory, else NFS3ERR_NOTDIR); `NFSFileSystem` has one `remove` for both.
    async fn remove_entry(&self, auth: &AuthContext, dirid: fileid3, name: &filename3, dir: bool) -> Result<(), nfsstat3>;

    /// The object (dataset or snapshot id) a file handle's bytes name, when the handle is one
    /// this server made (its MAC verifies).
    fn object_of_handle(&self, fh: &[u8]) -> Option<u64>;

    /// `Some(object)` when `object` is a dataset (calls on it go to its owner); `None` for a
    /// snapshot, which every server serves itself, or an object that does not exist.
    async fn routed_dataset(&self, object: u64) -> Option<u64>;
}

pub trait Backend: NFSFileSystem + NfsExtras + Send + Sync + 'static {}
impl<T: NFSFileSystem + NfsExtras + Send + Sync + 'static> Backend for T {}

/// Replies of non-idempotent calls kept for retransmissions, and for how long.
const DRC_ENTRIES: usize = 16 * 1024;
const DRC_WINDOW: Duration = Duration::from_secs(120);

/// A reply record: `head` (record mark included) and a READ's data, sent after it.
pub struct Reply {
    head: Vec<u8>,
    data: Vec<u8>,
}

pub struct Rpc<V> {
    vfs: V,
    drc: Drc,
    /// Replies of non-idempotent calls other servers forwarded here.
    forwarded_drc: Drc,
    port: u16,
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl<V: Backend> Rpc<V> {
    /// The server for `vfs` on `port`; with a cluster, calls on datasets other servers own
    /// are forwarded to them, and this server runs the calls they forward here.
    pub fn new(vfs: V, port: u16, cluster: Option<Arc<crate::cluster::Cluster>>) -> Arc<Rpc<V>> {
        let rpc = Arc::new(Rpc {
            vfs,
            drc: Drc::new(DRC_ENTRIES, DRC_WINDOW),
            forwarded_drc: Drc::new(DRC_ENTRIES, DRC_WINDOW),
            port,
            cluster: cluster.clone(),
        });
        if let Some(c) = cluster {
            let calls: Arc<dyn crate::cluster::ForwardedCalls> = rpc.clone();
            c.set_forwarded_calls(Arc::downgrade(&calls));
        }
        rpc
    }
}

/// Serves `listener` until `shutdown` is cancelled, within `limits`.
pub async fn serve<V: Backend>(rpc: Arc<Rpc<V>>, listener: TcpListener, limits: Limits, shutdown: CancellationToken) {
    let max_connections = limits.max_connections;
    let limits = Arc::new(limits::Shared::new(&limits));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("nfs accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(place) = limits.admit() else {
            drop(stream);
            limits.refused.warn(format_args!("nfs: refused a connection from {peer}: all {max_connections} connections in use"));
            continue;
        };
        let rpc = rpc.clone();
        let limits = limits.clone();
        let stop = shutdown.child_token();
        tokio::spawn(async move {
            if let Err(e) = conn::serve(rpc, limits.clone(), stream, peer, stop).await {
                conn::report(&limits, peer, e);
            }
            drop(place);
        });
    }
}

impl<V: Backend> Rpc<V> {
    /// The reply to one record, or `None` when there is none to send (a retransmission of a
    /// call still in progress).
    async fn handle(&self, record: &[u8], client: IpAddr) -> Option<Reply> {
        let mut out = Vec::with_capacity(256);
        record::start_reply(&mut out);
        let call = match message::parse(record) {
            Parsed::Call(call) => call,
            Parsed::Denied { xid, reply } => {
                message::denied(&mut out, xid, reply);
                return Some(seal(out, Vec::new()));
            }
            Parsed::NotACall => return None,
        };
        let (xid, proc_) = (call.xid, call.proc_);
        let body_start = out.len();
        message::accepted(&mut out, xid, AcceptStat::Success);
        let mut data = Vec::new();
        let stat = match (call.prog, call.vers) {
            (nfs3::PROGRAM, nfs3::VERSION) => {
                let key = Key::new(client, xid, call.prog, call.vers, proc_, call.args);
                match self.drc.begin(&key) {
                    Begin::InProgress => return None,
                    Begin::Replay(head) => return Some(Reply { head, data: Vec::new() }),
                    Begin::New => {}
                }
                let ticket = drc::Ticket::new(&self.drc, key);
                let started = Instant::now();
                let object = if proc_ == nfs3::NULL { None } else { route::first_handle(call.args).and_then(|fh| self.vfs.object_of_handle(fh)) };
                let status_at = out.len();
                let stat = match self.route(&call, client, object).await {
                    route::Routed::Here(_serving) => {
                        match nfs3::dispatch(&self.vfs, proc_, &call.auth, call.args, &mut out).await {
                            Ok(payload) => {
                                data = payload;
                                AcceptStat::Success
                            }
                            Err(nfs3::Fail::Garbage) => AcceptStat::GarbageArgs,
                            Err(nfs3::Fail::ProcUnavail) => AcceptStat::ProcUnavail,
                        }
                    }
                    route::Routed::Answered(a) => {
                        out.extend_from_slice(&a.body);
                        data = a.data;
                        match a.accept_stat {
                            0 => AcceptStat::Success,
                            3 => AcceptStat::ProcUnavail,
                            _ => AcceptStat::GarbageArgs,
                        }
                    }
                    route::Routed::Failed(status) => {
                        route::failure_body(proc_, status, &mut out);
                        AcceptStat::Success
                    }
                };
                let failed = stat != AcceptStat::Success || (proc_ != nfs3::NULL && out.get(status_at..status_at + 4) != Some(&[0u8; 4][..]));
                let outcome = CallOutcome {
                    procedure: proc_,
                    failed,
                    bytes_read: if failed { 0 } else { data.len() as u64 },
                    bytes_written: if failed { 0 } else { nfs3::write_count(proc_, call.args) },
                    elapsed: started.elapsed(),
                };
                crate::metrics::nfs::NFS.record(object.unwrap_or(crate::metrics::nfs::NO_OBJECT), outcome);
                let reply = finish(out, body_start, xid, stat, data);
                let keep = !nfs3::is_idempotent(proc_) && stat == AcceptStat::Success;
                ticket.finish(keep.then_some(&reply.head[..]));
                return Some(reply);
            }
            (mount::PROGRAM, mount::VERSION) => match mount::mount(&self.vfs, proc_, call.args, &mut out).await {
                Ok(mount::Outcome::Done) => AcceptStat::Success,
                Ok(mount::Outcome::ProcUnavail) => AcceptStat::ProcUnavail,
                Err(_) => AcceptStat::GarbageArgs,
            },
            (mount::PORTMAP_PROGRAM, mount::PORTMAP_VERSION) => match mount::portmap(proc_, call.args, self.port, &mut out) {
                Ok(mount::Outcome::Done) => AcceptStat::Success,
                Ok(mount::Outcome::ProcUnavail) => AcceptStat::ProcUnavail,
                Err(_) => AcceptStat::GarbageArgs,
            },
            (prog, _) => {
                out.truncate(body_start);
                let version = match prog {
                    nfs3::PROGRAM => Some(nfs3::VERSION),
                    mount::PROGRAM => Some(mount::VERSION),
                    mount::PORTMAP_PROGRAM => Some(mount::PORTMAP_VERSION),
                    _ => None,
                };
                match version {
                    Some(v) => message::prog_mismatch(&mut out, xid, v, v),
                    None => message::accepted(&mut out, xid, AcceptStat::ProgUnavail),
                }
                return Some(seal(out, Vec::new()));
            }
        };
        Some(finish(out, body_start, xid, stat, data))
    }
}

/// Replaces the results with a bare error header unless the call succeeded, and seals.
fn finish(mut out: Vec<u8>, body_start: usize, xid: u32, stat: AcceptStat, data: Vec<u8>) -> Reply {
    if stat != AcceptStat::Success {
        out.truncate(body_start);
        message::accepted(&mut out, xid, stat);
        return seal(out, Vec::new());
    }
    seal(out, data)
}

fn seal(mut head: Vec<u8>, data: Vec<u8>) -> Reply {
    let extra = if data.is_empty() { 0 } else { data.len() + (4 - data.len() % 4) % 4 };
    record::seal(&mut head, extra);
    Reply { head, data }
}

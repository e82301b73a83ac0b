//! Calls on a dataset another server owns go to that server (docs/ownership.md): the call's
//! first file handle names the dataset; the owner runs the call and its reply body goes back
//! to the client under the client's own xid, byte for byte. Snapshots are served here.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv6Addr};

use async_trait::async_trait;
use tonic::Request;
use zerofs_nfsserve::nfs::nfsstat3;
use zerofs_nfsserve::vfs::AuthContext;

use super::drc::{Begin, Key, Ticket};
use super::message::{AcceptStat, Call};
use super::xdr::{put_u32, Dec};
use super::{nfs3, Backend, Rpc};
use crate::cluster::proto::{nfs_reply, Answered, NfsCall};
use crate::cluster::{ClusterError, OnOwner, ServingGuard};

pub enum Routed {
    /// Run it here (holding the guard, when this server owns the dataset).
    Here(Option<ServingGuard>),
    Answered(Answered),
    Failed(nfsstat3),
}

/// The bytes of the handle every NFSv3 procedure but NULL starts with.
pub(super) fn first_handle(args: &[u8]) -> Option<&[u8]> {
    Dec::new(args).opaque(64).ok()
}

impl<V: Backend> Rpc<V> {
    /// `object`: what the call's first handle names (`None` for NULL and for a handle that
    /// does not verify, which is refused here as it would be by the owner).
    pub(super) async fn route(&self, call: &Call<'_>, client: IpAddr, object: Option<u64>) -> Routed {
        let Some(cluster) = &self.cluster else { return Routed::Here(None) };
        let Some(object) = object else { return Routed::Here(None) };
        let Some(dataset) = self.vfs.routed_dataset(object).await else { return Routed::Here(None) };
        let me = cluster.me().clone();
        let forwarded = cluster
            .on_owner(dataset, true, true, |mut peer, epoch| {
                let req = NfsCall {
                    origin: me.name.clone(),
                    origin_address: me.address.clone(),
                    origin_incarnation: me.incarnation,
                    client: client.to_string(),
                    xid: call.xid,
                    prog: call.prog,
                    vers: call.vers,
                    proc: call.proc_,
                    uid: call.auth.uid,
                    gid: call.auth.gid,
                    gids: call.auth.gids.clone(),
                    args: call.args.to_vec(),
                    dataset,
                    epoch,
                };
                async move {
                    let reply = peer.nfs(Request::new(req)).await?.into_inner();
                    Ok(match reply.outcome {
                        Some(nfs_reply::Outcome::Answered(a)) => Ok(a),
                        Some(nfs_reply::Outcome::NotOwner(n)) => Err(n.epoch),
                        None => Err(0),
                    })
                }
            })
            .await;
        match forwarded {
            Ok(OnOwner::Local(guard)) => Routed::Here(Some(guard)),
            Ok(OnOwner::Remote(answered)) => Routed::Answered(answered),
            Ok(OnOwner::Nobody) => Routed::Failed(nfsstat3::NFS3ERR_JUKEBOX),
            Err(ClusterError::Unavailable(m)) => {
                tracing::warn!("dataset {dataset}: {m}");
                Routed::Failed(nfsstat3::NFS3ERR_JUKEBOX)
            }
            Err(ClusterError::Internal(m)) => {
                tracing::warn!("dataset {dataset}: {m}");
                Routed::Failed(nfsstat3::NFS3ERR_SERVERFAULT)
            }
        }
    }

    /// Runs a call another server forwarded (this server owns its dataset; the caller holds
    /// the serving guard). Its own duplicate request cache answers a forwarder's retry of a
    /// call already done.
    pub(super) async fn run_forwarded(&self, call: NfsCall) -> Answered {
        let auth = AuthContext { uid: call.uid, gid: call.gid, gids: call.gids.clone() };
        let key = Key::new(forwarded_client(&call.origin, &call.client), call.xid, call.prog, call.vers, call.proc, &call.args);
        match self.forwarded_drc.begin(&key) {
            Begin::New => {}
            Begin::Replay(kept) => return decode_kept(&kept),
            Begin::InProgress => return failed(call.proc, nfsstat3::NFS3ERR_JUKEBOX),
        }
        let ticket = Ticket::new(&self.forwarded_drc, key);
        let mut body = Vec::with_capacity(256);
        let (stat, data) = if (call.prog, call.vers) == (nfs3::PROGRAM, nfs3::VERSION) {
            match nfs3::dispatch(&self.vfs, call.proc, &auth, &call.args, &mut body).await {
                Ok(data) => (AcceptStat::Success, data),
                Err(nfs3::Fail::Garbage) => (AcceptStat::GarbageArgs, Vec::new()),
                Err(nfs3::Fail::ProcUnavail) => (AcceptStat::ProcUnavail, Vec::new()),
            }
        } else {
            (AcceptStat::ProcUnavail, Vec::new())
        };
        if stat != AcceptStat::Success {
            body.clear();
        }
        let answered = Answered { accept_stat: stat as u32, body, data };
        let keep = !nfs3::is_idempotent(call.proc) && stat == AcceptStat::Success;
        ticket.finish(keep.then(|| encode_kept(&answered)).as_deref());
        answered
    }
}

#[async_trait]
impl<V: Backend> crate::cluster::ForwardedCalls for Rpc<V> {
    async fn run(&self, call: NfsCall) -> Answered {
        self.run_forwarded(call).await
    }
}

/// Forwarded calls from different servers' clients (all on 127.0.0.1 there) must not share
/// duplicate-cache entries: the key's address stands for (origin server, client).
fn forwarded_client(origin: &str, client: &str) -> IpAddr {
    let mut h = DefaultHasher::new();
    origin.hash(&mut h);
    client.hash(&mut h);
    let a = h.finish();
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x5f5, (a >> 48) as u16, (a >> 32) as u16, (a >> 16) as u16, a as u16, 0, 1))
}

fn encode_kept(a: &Answered) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + a.body.len());
    put_u32(&mut v, a.accept_stat);
    v.extend_from_slice(&a.body);
    v
}

fn decode_kept(kept: &[u8]) -> Answered {
    let stat = kept.get(..4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes"))).unwrap_or(0);
    Answered { accept_stat: stat, body: kept.get(4..).unwrap_or_default().to_vec(), data: Vec::new() }
}

/// A failure reply of procedure `proc_` with no attributes: every NFSv3 result's failure arm
/// is the status followed by post_op_attr / wcc_data, each of which may be empty.
pub fn failure_body(proc_: u32, stat: nfsstat3, out: &mut Vec<u8>) {
    put_u32(out, stat as u32);
    let empty_words = match proc_ {
        // GETATTR: nothing after the status.
        1 => 0,
        // SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, COMMIT: wcc_data.
        2 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 21 => 2,
        // RENAME: two wcc_data.
        14 => 4,
        // LINK: post_op_attr and wcc_data.
        15 => 3,
        // LOOKUP, ACCESS, READLINK, READ, READDIR, READDIRPLUS, FSSTAT, FSINFO, PATHCONF.
        _ => 1,
    };
    for _ in 0..empty_words {
        put_u32(out, 0);
    }
}

fn failed(proc_: u32, stat: nfsstat3) -> Answered {
    let mut body = Vec::new();
    failure_body(proc_, stat, &mut body);
    Answered { accept_stat: AcceptStat::Success as u32, body, data: Vec::new() }
}

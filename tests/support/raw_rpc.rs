//! Hand-built ONC RPC calls over a plain TCP socket, for tests of what a well-behaved client
//! library never sends: retransmissions with the same xid, wrong versions, unknown programs,
//! undecodable arguments, other credential flavors, many calls written at once.
#![allow(dead_code)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const NFS: u32 = 100003;
pub const MOUNT: u32 = 100005;

#[derive(Clone, Copy)]
pub enum Cred {
    Null,
    Unix { uid: u32, gid: u32 },
    Flavor(u32),
}

/// XDR arguments, built word by word.
#[derive(Default, Clone)]
pub struct Args(pub Vec<u8>);

impl Args {
    pub fn u32(mut self, v: u32) -> Args {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Args {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn opaque(mut self, data: &[u8]) -> Args {
        self = self.u32(data.len() as u32);
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len() + (4 - data.len() % 4) % 4, 0);
        self
    }
    pub fn bytes(mut self, data: &[u8]) -> Args {
        self.0.extend_from_slice(data);
        self
    }
    /// An sattr3 that sets only the mode.
    pub fn sattr_mode(self, mode: u32) -> Args {
        self.u32(1).u32(mode).u32(0).u32(0).u32(0).u32(0).u32(0)
    }
}

/// One call as a single-fragment record.
pub fn call(xid: u32, rpcvers: u32, prog: u32, vers: u32, proc_: u32, cred: Cred, args: &Args) -> Vec<u8> {
    let mut body = Args::default().u32(xid).u32(0).u32(rpcvers).u32(prog).u32(vers).u32(proc_);
    body = match cred {
        Cred::Null => body.u32(0).opaque(&[]),
        Cred::Unix { uid, gid } => {
            let c = Args::default().u32(0).opaque(b"test").u32(uid).u32(gid).u32(0);
            body.u32(1).opaque(&c.0)
        }
        Cred::Flavor(f) => body.u32(f).opaque(&[0; 8]),
    };
    body = body.u32(0).opaque(&[]).bytes(&args.0);
    let mut rec = ((body.0.len() as u32) | (1 << 31)).to_be_bytes().to_vec();
    rec.extend_from_slice(&body.0);
    rec
}

pub fn nfs_call(xid: u32, proc_: u32, cred: Cred, args: &Args) -> Vec<u8> {
    call(xid, 2, NFS, 3, proc_, cred, args)
}

pub struct Raw {
    s: TcpStream,
}

impl Raw {
    pub async fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// The next reply record's body, or `None` when none comes within `secs`.
    pub async fn recv_within(&mut self, secs: u64) -> Option<Vec<u8>> {
        tokio::time::timeout(std::time::Duration::from_secs(secs), async {
            let mut body = Vec::new();
            loop {
                let mut h = [0u8; 4];
                self.s.read_exact(&mut h).await.ok()?;
                let w = u32::from_be_bytes(h);
                let start = body.len();
                body.resize(start + (w & 0x7fff_ffff) as usize, 0);
                self.s.read_exact(&mut body[start..]).await.ok()?;
                if w & (1 << 31) != 0 {
                    return Some(body);
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    pub async fn recv(&mut self) -> Vec<u8> {
        self.recv_within(30).await.expect("a reply")
    }

    pub async fn roundtrip(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.send(bytes).await;
        self.recv().await
    }
}

pub fn word(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes(b[i * 4..i * 4 + 4].try_into().unwrap())
}

/// (xid, accept_stat, results) of an accepted reply; panics on a denied one.
pub fn accepted(reply: &[u8]) -> (u32, u32, &[u8]) {
    assert_eq!(word(reply, 1), 1, "a reply");
    assert_eq!(word(reply, 2), 0, "accepted, not denied: {:?}", &reply[..reply.len().min(24)]);
    (word(reply, 0), word(reply, 5), &reply[24..])
}

//! ONC RPC call headers, credentials and reply headers (RFC 5531).

use zerofs_nfsserve::vfs::AuthContext;

use super::xdr::{put_u32, Dec, DecResult};

const RPC_VERSION: u32 = 2;
const CALL: u32 = 0;
const REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;
const RPC_MISMATCH: u32 = 0;
const AUTH_ERROR: u32 = 1;

const AUTH_NONE: u32 = 0;
pub const AUTH_UNIX: u32 = 1;
const MAX_AUTH_BYTES: usize = 400;
const MAX_MACHINE_NAME: usize = 255;
const MAX_GIDS: usize = 16;

/// The caller an AUTH_NONE request runs as: "nobody", so that an unauthenticated caller can
/// only do what the world may do.
pub const NOBODY: u32 = 65534;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStat {
    BadCred = 1,
    TooWeak = 5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptStat {
    Success = 0,
    ProgUnavail = 1,
    ProgMismatch = 2,
    ProcUnavail = 3,
    GarbageArgs = 4,
}

pub struct Call<'a> {
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub auth: AuthContext,
    /// The procedure's arguments: everything after the verifier.
    pub args: &'a [u8],
}

pub enum Parsed<'a> {
    Call(Call<'a>),
    /// A call we answer with MSG_DENIED (wrong RPC version or credentials).
    Denied { xid: u32, reply: Denial },
    /// Not an RPC call at all: the peer does not speak ONC RPC.
    NotACall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    RpcMismatch,
    Auth(AuthStat),
}

pub fn parse(record: &[u8]) -> Parsed<'_> {
    let mut d = Dec::new(record);
    let (Ok(xid), Ok(CALL)) = (d.u32(), d.u32()) else {
        return Parsed::NotACall;
    };
    let Ok(rpcvers) = d.u32() else { return Parsed::NotACall };
    if rpcvers != RPC_VERSION {
        return Parsed::Denied { xid, reply: Denial::RpcMismatch };
    }
    let (Ok(prog), Ok(vers), Ok(proc_)) = (d.u32(), d.u32(), d.u32()) else {
        return Parsed::NotACall;
    };
    let auth = match credentials(&mut d) {
        Ok(Ok(auth)) => auth,
        Ok(Err(stat)) => return Parsed::Denied { xid, reply: Denial::Auth(stat) },
        Err(_) => return Parsed::Denied { xid, reply: Denial::Auth(AuthStat::BadCred) },
    };
    // The verifier of AUTH_NONE and AUTH_UNIX calls carries nothing we check.
    if d.u32().and_then(|_| d.opaque(MAX_AUTH_BYTES)).is_err() {
        return Parsed::Denied { xid, reply: Denial::Auth(AuthStat::BadCred) };
    }
    Parsed::Call(Call { xid, prog, vers, proc_, auth, args: d.rest() })
}

fn credentials(d: &mut Dec<'_>) -> DecResult<Result<AuthContext, AuthStat>> {
    let flavor = d.u32()?;
    let body = d.opaque(MAX_AUTH_BYTES)?;
    match flavor {
        AUTH_NONE => Ok(Ok(AuthContext { uid: NOBODY, gid: NOBODY, gids: Vec::new() })),
        AUTH_UNIX => Ok(auth_unix(body).map_err(|_| AuthStat::BadCred)),
        _ => Ok(Err(AuthStat::TooWeak)),
    }
}

fn auth_unix(body: &[u8]) -> DecResult<AuthContext> {
    let mut d = Dec::new(body);
    let _stamp = d.u32()?;
    let _machine = d.opaque(MAX_MACHINE_NAME)?;
    let uid = d.u32()?;
    let gid = d.u32()?;
    let count = d.u32()? as usize;
    if count > MAX_GIDS {
        return Err(super::xdr::Garbage);
    }
    let mut gids = Vec::with_capacity(count);
    for _ in 0..count {
        gids.push(d.u32()?);
    }
    Ok(AuthContext { uid, gid, gids })
}

/// An accepted reply header (null verifier) with `stat`.
pub fn accepted(out: &mut Vec<u8>, xid: u32, stat: AcceptStat) {
    put_u32(out, xid);
    put_u32(out, REPLY);
    put_u32(out, MSG_ACCEPTED);
    put_u32(out, AUTH_NONE);
    put_u32(out, 0);
    put_u32(out, stat as u32);
}

pub fn prog_mismatch(out: &mut Vec<u8>, xid: u32, low: u32, high: u32) {
    accepted(out, xid, AcceptStat::ProgMismatch);
    put_u32(out, low);
    put_u32(out, high);
}

pub fn denied(out: &mut Vec<u8>, xid: u32, why: Denial) {
    put_u32(out, xid);
    put_u32(out, REPLY);
    put_u32(out, MSG_DENIED);
    match why {
        Denial::RpcMismatch => {
            put_u32(out, RPC_MISMATCH);
            put_u32(out, RPC_VERSION);
            put_u32(out, RPC_VERSION);
        }
        Denial::Auth(stat) => {
            put_u32(out, AUTH_ERROR);
            put_u32(out, stat as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::xdr::put_opaque;
    use super::*;

    fn call(rpcvers: u32, flavor: u32, cred: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [77, CALL, rpcvers, 100003, 3, 1, flavor] {
            put_u32(&mut v, w);
        }
        put_opaque(&mut v, cred);
        put_u32(&mut v, AUTH_NONE);
        put_u32(&mut v, 0);
        v.extend_from_slice(b"ARGS");
        v
    }

    fn unix_cred(gids: u32) -> Vec<u8> {
        let mut c = Vec::new();
        put_u32(&mut c, 1);
        put_opaque(&mut c, b"host");
        put_u32(&mut c, 1000);
        put_u32(&mut c, 100);
        put_u32(&mut c, gids);
        for g in 0..gids {
            put_u32(&mut c, 200 + g);
        }
        c
    }

    #[test]
    fn auth_unix_and_auth_none_callers() {
        let unix = call(2, AUTH_UNIX, &unix_cred(3));
        let Parsed::Call(c) = parse(&unix) else { panic!("not a call") };
        assert_eq!((c.xid, c.prog, c.vers, c.proc_), (77, 100003, 3, 1));
        assert_eq!((c.auth.uid, c.auth.gid, c.auth.gids), (1000, 100, vec![200, 201, 202]));
        assert_eq!(c.args, b"ARGS");
        let none = call(2, AUTH_NONE, &[]);
        let Parsed::Call(c) = parse(&none) else { panic!("not a call") };
        assert_eq!((c.auth.uid, c.auth.gid), (NOBODY, NOBODY));
    }

    #[test]
    fn bad_versions_flavors_and_credentials_are_denied() {
        assert!(matches!(parse(&call(3, AUTH_NONE, &[])), Parsed::Denied { xid: 77, reply: Denial::RpcMismatch }));
        assert!(matches!(parse(&call(2, 6, &[])), Parsed::Denied { reply: Denial::Auth(AuthStat::TooWeak), .. }));
        assert!(matches!(parse(&call(2, AUTH_UNIX, &unix_cred(17))), Parsed::Denied { reply: Denial::Auth(AuthStat::BadCred), .. }));
        assert!(matches!(parse(&call(2, AUTH_UNIX, &[0, 0])), Parsed::Denied { reply: Denial::Auth(AuthStat::BadCred), .. }));
        assert!(matches!(parse(&[0x42; 40]), Parsed::NotACall));
        assert!(matches!(parse(&[1, 2]), Parsed::NotACall));
    }

    #[test]
    fn reply_headers() {
        let mut out = Vec::new();
        prog_mismatch(&mut out, 5, 3, 3);
        let words: Vec<u32> = out.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect();
        assert_eq!(words, [5, REPLY, MSG_ACCEPTED, 0, 0, 2, 3, 3]);
        out.clear();
        denied(&mut out, 6, Denial::Auth(AuthStat::TooWeak));
        let words: Vec<u32> = out.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect();
        assert_eq!(words, [6, REPLY, MSG_DENIED, AUTH_ERROR, 5]);
    }
}

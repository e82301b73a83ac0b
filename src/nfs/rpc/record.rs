//! ONC RPC record marking over TCP (RFC 5531 section 11): a record is one or more fragments,
//! each behind a four-byte header whose top bit marks the last fragment.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::limits::Reservation;

/// The largest RPC record a client may send. WRITEs up to four times the maximum still reach
/// the server and get a proper NFS3ERR_INVAL; anything larger is not a WRITE we could answer.
pub const MAX_RECORD: usize = 4 * crate::fs::MAX_IO_SIZE + 64 * 1024;

const LAST_FRAGMENT: u32 = 1 << 31;
/// The buffer grows by at most this much ahead of the bytes that have arrived, so a header
/// announcing megabytes costs nothing until the client actually sends them.
const GROWTH_STEP: usize = 256 * 1024;

/// Reads one whole record into `buf` (which it clears). `Ok(false)` is a clean end of stream
/// between records; a record longer than `limit` is an `InvalidData` error. `budget` covers
/// the buffer's capacity before it grows (the caller covers what `buf` already has).
pub async fn read_record<R: AsyncRead + Unpin>(
    rx: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
    budget: &mut Reservation,
) -> io::Result<bool> {
    buf.clear();
    let mut first = true;
    loop {
        let mut header = [0u8; 4];
        match rx.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if first && e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        first = false;
        let word = u32::from_be_bytes(header);
        let len = (word & !LAST_FRAGMENT) as usize;
        if buf.len() + len > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("RPC record of {}+ bytes exceeds the {limit}-byte limit", buf.len() + len),
            ));
        }
        let mut left = len;
        while left > 0 {
            if buf.capacity() == buf.len() {
                let grow = left.min(GROWTH_STEP.max(buf.len()));
                budget.cover(buf.len() + grow).await;
                buf.reserve_exact(grow);
                // The allocator may round up; what it gave counts too.
                budget.cover(buf.capacity()).await;
            }
            let n = (&mut *rx).take(left as u64).read_buf(buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= n;
        }
        if word & LAST_FRAGMENT != 0 {
            return Ok(true);
        }
    }
}

/// Space for the record mark at the front of a reply buffer; `seal` fills it in.
pub fn start_reply(out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0u8; 4]);
}

/// Writes the single-fragment record mark for a reply whose body is `out[4..]` followed by
/// `extra` more bytes sent separately.
pub fn seal(out: &mut [u8], extra: usize) {
    let len = (out.len() - 4 + extra) as u32;
    out[..4].copy_from_slice(&(len | LAST_FRAGMENT).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(data: &[u8], last: bool) -> Vec<u8> {
        let mut v = ((data.len() as u32) | if last { LAST_FRAGMENT } else { 0 }).to_be_bytes().to_vec();
        v.extend_from_slice(data);
        v
    }

    #[tokio::test]
    async fn joins_fragments_and_stops_cleanly_between_records() {
        let mut wire = fragment(b"abc", false);
        wire.extend(fragment(b"", false));
        wire.extend(fragment(b"defg", true));
        wire.extend(fragment(b"second", true));
        let mut rx = &wire[..];
        let mut buf = Vec::new();
        assert!(read_record(&mut rx, &mut buf, 100, &mut Reservation::unlimited()).await.unwrap());
        assert_eq!(buf, b"abcdefg");
        assert!(read_record(&mut rx, &mut buf, 100, &mut Reservation::unlimited()).await.unwrap());
        assert_eq!(buf, b"second");
        assert!(!read_record(&mut rx, &mut buf, 100, &mut Reservation::unlimited()).await.unwrap());
    }

    #[tokio::test]
    async fn refuses_records_over_the_limit_across_fragments() {
        let mut wire = fragment(&[1u8; 60], false);
        wire.extend(fragment(&[2u8; 60], true));
        let mut rx = &wire[..];
        let mut buf = Vec::new();
        let err = read_record(&mut rx, &mut buf, 100, &mut Reservation::unlimited()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_huge_announced_length_allocates_only_what_arrives() {
        let mut wire = (0x7fff_ffffu32).to_be_bytes().to_vec();
        wire.extend_from_slice(&[7u8; 1000]);
        let mut rx = &wire[..];
        let mut buf = Vec::new();
        let err = read_record(&mut rx, &mut buf, usize::MAX, &mut Reservation::unlimited()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(buf.capacity() <= GROWTH_STEP, "capacity {}", buf.capacity());
        assert_eq!(buf.len(), 1000);
    }

    #[tokio::test]
    async fn growing_past_the_free_part_waits_for_the_shared_budget() {
        use super::super::limits::{Limits, Shared, FREE_PER_RECORD};
        let shared = Shared::new(&Limits { record_memory: 300_000, ..Limits::default() });
        let mut hog = shared.reservation();
        hog.cover(FREE_PER_RECORD + 300_000).await;
        let wire = fragment(&vec![3u8; FREE_PER_RECORD + 1000], true);
        let mut buf = Vec::new();
        let mut mine = shared.reservation();
        let mut rx = &wire[..];
        {
            let read = read_record(&mut rx, &mut buf, usize::MAX, &mut mine);
            tokio::pin!(read);
            let waited = tokio::time::timeout(std::time::Duration::from_millis(100), &mut read).await;
            assert!(waited.is_err(), "read past the free part without budget");
            hog.release();
            assert!(read.await.unwrap());
        }
        assert_eq!(buf.len(), FREE_PER_RECORD + 1000);
    }

    #[tokio::test]
    async fn truncated_record_is_an_error_not_a_clean_end() {
        let wire = fragment(b"abc", false);
        let mut rx = &wire[..];
        let mut buf = Vec::new();
        assert!(read_record(&mut rx, &mut buf, 100, &mut Reservation::unlimited()).await.is_err());
    }

    #[test]
    fn seal_counts_separately_sent_bytes() {
        let mut out = Vec::new();
        start_reply(&mut out);
        out.extend_from_slice(&[0u8; 8]);
        seal(&mut out, 12);
        assert_eq!(u32::from_be_bytes(out[..4].try_into().unwrap()), LAST_FRAGMENT | 20);
    }
}

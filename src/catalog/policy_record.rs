//! The catalog record of a snapshot policy (key `P` + dataset id; docs/policies.md). Only data
//! here: what the schedule and retention mean is `crate::policy`'s business.
//!
//! ```text
//! PolicyRecord = 0x01 prefix:str schedule keep_last:u32 keep_hourly:u32 keep_daily:u32
//!                     keep_weekly:u32 keep_monthly:u32 keep_yearly:u32 max_age_s:u64
//!                     flags:u8 created_ms:u64 last_slot_ms:opt<u64> last_seq:opt<u64>
//!                     last_error:opt<(ms:u64 str)> n:u32 (snapshot_id:u64 slot_ms:u64)*n
//!   schedule     = 0x00 every_s:u64 | 0x01 cron:str tz:str   (tz "" = UTC)
//!   flags        = bit 0 paused, bit 1 skip_unchanged
//! ```
//! Counts of 0 mean "not used".

use super::codec::{CodecError, Reader};

const POLICY_V1: u8 = 1;
const FLAG_PAUSED: u8 = 1;
const FLAG_SKIP_UNCHANGED: u8 = 2;
/// Longest last-error text kept (the record's strings have a u16 length).
const MAX_ERROR_BYTES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleRecord {
    Every { seconds: u64 },
    Cron { expr: String, tz: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionRecord {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    /// 0: no maximum age.
    pub max_age_s: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub dataset_id: u64,
    pub prefix: String,
    pub schedule: ScheduleRecord,
    pub retention: RetentionRecord,
    pub paused: bool,
    pub skip_unchanged: bool,
    pub created_ms: u64,
    /// The schedule slot of the last completed run (a snapshot taken or skipped as unchanged).
    pub last_slot_ms: Option<u64>,
    /// The dataset's write sequence number when the policy's last snapshot was taken.
    pub last_seq: Option<u64>,
    pub last_error: Option<(u64, String)>,
    /// `(snapshot id, slot ms)` of the snapshots this policy made and has not pruned.
    pub snapshots: Vec<(u64, u64)>,
}

impl PolicyRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Vec::with_capacity(96 + 16 * self.snapshots.len());
        w.push(POLICY_V1);
        put_str(&mut w, &self.prefix);
        match &self.schedule {
            ScheduleRecord::Every { seconds } => {
                w.push(0);
                w.extend_from_slice(&seconds.to_be_bytes());
            }
            ScheduleRecord::Cron { expr, tz } => {
                w.push(1);
                put_str(&mut w, expr);
                put_str(&mut w, tz);
            }
        }
        let r = &self.retention;
        for n in [r.keep_last, r.keep_hourly, r.keep_daily, r.keep_weekly, r.keep_monthly, r.keep_yearly] {
            w.extend_from_slice(&n.to_be_bytes());
        }
        w.extend_from_slice(&r.max_age_s.to_be_bytes());
        let mut flags = 0;
        if self.paused {
            flags |= FLAG_PAUSED;
        }
        if self.skip_unchanged {
            flags |= FLAG_SKIP_UNCHANGED;
        }
        w.push(flags);
        w.extend_from_slice(&self.created_ms.to_be_bytes());
        put_opt_u64(&mut w, self.last_slot_ms);
        put_opt_u64(&mut w, self.last_seq);
        match &self.last_error {
            None => w.push(0),
            Some((ms, text)) => {
                w.push(1);
                w.extend_from_slice(&ms.to_be_bytes());
                put_str(&mut w, truncated(text, MAX_ERROR_BYTES));
            }
        }
        w.extend_from_slice(&(self.snapshots.len() as u32).to_be_bytes());
        for (id, slot) in &self.snapshots {
            w.extend_from_slice(&id.to_be_bytes());
            w.extend_from_slice(&slot.to_be_bytes());
        }
        w
    }

    pub fn decode(dataset_id: u64, v: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(v);
        let version = r.u8()?;
        if version != POLICY_V1 {
            return Err(CodecError(format!(
                "policy record of dataset {dataset_id} has version {version}; this slatefs reads version {POLICY_V1}"
            )));
        }
        let prefix = r.str()?;
        let schedule = match r.u8()? {
            0 => ScheduleRecord::Every { seconds: r.u64()? },
            1 => ScheduleRecord::Cron { expr: r.str()?, tz: r.str()? },
            x => return Err(CodecError(format!("policy of dataset {dataset_id}: unknown schedule tag {x}"))),
        };
        let retention = RetentionRecord {
            keep_last: r.u32()?,
            keep_hourly: r.u32()?,
            keep_daily: r.u32()?,
            keep_weekly: r.u32()?,
            keep_monthly: r.u32()?,
            keep_yearly: r.u32()?,
            max_age_s: r.u64()?,
        };
        let flags = r.u8()?;
        let created_ms = r.u64()?;
        let last_slot_ms = r.opt_u64()?;
        let last_seq = r.opt_u64()?;
        let last_error = match r.u8()? {
            0 => None,
            1 => Some((r.u64()?, r.str()?)),
            x => return Err(CodecError(format!("policy of dataset {dataset_id}: bad option tag {x}"))),
        };
        let n = r.u32()? as usize;
        let mut snapshots = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            snapshots.push((r.u64()?, r.u64()?));
        }
        r.end().map_err(|e| CodecError(format!("policy of dataset {dataset_id}: {}", e.0)))?;
        Ok(PolicyRecord {
            dataset_id,
            prefix,
            schedule,
            retention,
            paused: flags & FLAG_PAUSED != 0,
            skip_unchanged: flags & FLAG_SKIP_UNCHANGED != 0,
            created_ms,
            last_slot_ms,
            last_seq,
            last_error,
            snapshots,
        })
    }
}

fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    let s = truncated(s, u16::MAX as usize);
    w.extend_from_slice(&(s.len() as u16).to_be_bytes());
    w.extend_from_slice(s.as_bytes());
}

fn put_opt_u64(w: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => w.push(0),
        Some(v) => {
            w.push(1);
            w.extend_from_slice(&v.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PolicyRecord {
        PolicyRecord {
            dataset_id: 3,
            prefix: "projects".into(),
            schedule: ScheduleRecord::Cron { expr: "0 */6 * * *".into(), tz: "Europe/Paris".into() },
            retention: RetentionRecord { keep_last: 2, keep_hourly: 24, keep_daily: 7, max_age_s: 86400, ..Default::default() },
            paused: true,
            skip_unchanged: true,
            created_ms: 5,
            last_slot_ms: Some(6),
            last_seq: Some(7),
            last_error: Some((8, "store away".into())),
            snapshots: vec![(10, 11), (12, 13)],
        }
    }

    #[test]
    fn round_trips() {
        let a = sample();
        assert_eq!(PolicyRecord::decode(3, &a.encode()).unwrap(), a);
        let b = PolicyRecord {
            schedule: ScheduleRecord::Every { seconds: 900 },
            paused: false,
            last_slot_ms: None,
            last_seq: None,
            last_error: None,
            snapshots: vec![],
            ..sample()
        };
        assert_eq!(PolicyRecord::decode(3, &b.encode()).unwrap(), b);
    }

    #[test]
    fn refuses_other_versions_and_garbage() {
        let mut v = sample().encode();
        v[0] = 2;
        assert!(PolicyRecord::decode(3, &v).unwrap_err().to_string().contains("version 2"));
        let mut v = sample().encode();
        v.push(0);
        assert!(PolicyRecord::decode(3, &v).unwrap_err().to_string().contains("trailing"));
        assert!(PolicyRecord::decode(3, &sample().encode()[..20]).is_err());
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let rec = PolicyRecord { last_error: Some((1, "é".repeat(800))), ..sample() };
        let back = PolicyRecord::decode(3, &rec.encode()).unwrap();
        let text = back.last_error.unwrap().1;
        assert!(text.len() <= MAX_ERROR_BYTES && text.chars().all(|c| c == 'é'));
    }
}

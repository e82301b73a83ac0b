//! Which of a policy's snapshots its retention keeps (docs/policies.md, "Pruning rules").

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::catalog::RetentionRecord;

/// The ids to keep among `snapshots` (`(id, slot ms)`), judged at `now_ms`, with calendar
/// buckets in `tz` (UTC when `None`).
pub fn keep(snapshots: &[(u64, u64)], r: &RetentionRecord, now_ms: u64, tz: Option<Tz>) -> BTreeSet<u64> {
    let mut newest_first: Vec<(u64, u64)> = snapshots.to_vec();
    newest_first.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    let mut kept = BTreeSet::new();
    let Some(&(newest, _)) = newest_first.first() else { return kept };

    kept.extend(newest_first.iter().take(r.keep_last as usize).map(|s| s.0));
    for (count, bucket) in [
        (r.keep_hourly, Bucket::Hour),
        (r.keep_daily, Bucket::Day),
        (r.keep_weekly, Bucket::Week),
        (r.keep_monthly, Bucket::Month),
        (r.keep_yearly, Bucket::Year),
    ] {
        let mut seen = Vec::new();
        for &(id, slot) in &newest_first {
            if seen.len() == count as usize {
                break;
            }
            let key = bucket.of(slot, tz);
            if seen.last() != Some(&key) {
                seen.push(key);
                kept.insert(id);
            }
        }
    }
    let only_age = [r.keep_last, r.keep_hourly, r.keep_daily, r.keep_weekly, r.keep_monthly, r.keep_yearly]
        .iter()
        .all(|&c| c == 0);
    if only_age {
        kept.extend(newest_first.iter().map(|s| s.0));
    }
    if r.max_age_s > 0 {
        let oldest_allowed = now_ms.saturating_sub(r.max_age_s * 1000);
        kept.retain(|id| newest_first.iter().any(|&(i, slot)| i == *id && slot >= oldest_allowed));
    }
    kept.insert(newest);
    kept
}

#[derive(Clone, Copy)]
enum Bucket {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Bucket {
    /// A number naming the calendar bucket a slot falls in (equal for equal buckets; slots are
    /// visited newest first, so a change of key is a new bucket).
    fn of(self, slot_ms: u64, tz: Option<Tz>) -> i64 {
        let utc: DateTime<Utc> = Utc.timestamp_millis_opt(slot_ms as i64).single().unwrap_or_default();
        match tz {
            Some(tz) => self.key(&utc.with_timezone(&tz)),
            None => self.key(&utc),
        }
    }

    fn key<T: Datelike + Timelike>(self, t: &T) -> i64 {
        let day = i64::from(t.num_days_from_ce());
        match self {
            Bucket::Hour => day * 24 + i64::from(t.hour()),
            Bucket::Day => day,
            Bucket::Week => {
                let w = t.iso_week();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Bucket::Month => i64::from(t.year()) * 12 + i64::from(t.month0()),
            Bucket::Year => i64::from(t.year()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    fn hours(list: &[u64]) -> Vec<(u64, u64)> {
        list.iter().map(|&h| (h + 1, h * H)).collect()
    }

    #[test]
    fn keep_last_and_hourly() {
        // One snapshot every half hour for 10 hours (ids 1..=20 by slot).
        let snaps: Vec<(u64, u64)> = (0..20).map(|i| (i + 1, i * H / 2)).collect();
        let r = RetentionRecord { keep_last: 3, ..Default::default() };
        assert_eq!(keep(&snaps, &r, 10 * H, None), BTreeSet::from([18, 19, 20]));
        let r = RetentionRecord { keep_hourly: 4, ..Default::default() };
        // Newest of hours 9, 8, 7, 6: the :30 ones.
        assert_eq!(keep(&snaps, &r, 10 * H, None), BTreeSet::from([14, 16, 18, 20]));
    }

    #[test]
    fn daily_in_a_time_zone() {
        // 14:00 and 16:00 UTC are one UTC day, but 23:00 and 01:00 of two days in Tokyo.
        let snaps = hours(&[14, 16]);
        let r = RetentionRecord { keep_daily: 2, ..Default::default() };
        assert_eq!(keep(&snaps, &r, 20 * H, None), BTreeSet::from([17]));
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        assert_eq!(keep(&snaps, &r, 20 * H, Some(tokyo)), BTreeSet::from([15, 17]));
    }

    #[test]
    fn max_age_and_the_newest() {
        let snaps = hours(&[0, 1, 2, 3]);
        let r = RetentionRecord { max_age_s: 2 * 3600, ..Default::default() };
        assert_eq!(keep(&snaps, &r, 3 * H, None), BTreeSet::from([2, 3, 4]));
        // Everything too old: the newest stays.
        assert_eq!(keep(&snaps, &r, 100 * H, None), BTreeSet::from([4]));
        let r = RetentionRecord { keep_last: 10, max_age_s: 3600, ..Default::default() };
        assert_eq!(keep(&snaps, &r, 3 * H, None), BTreeSet::from([3, 4]));
        assert!(keep(&[], &r, 0, None).is_empty());
    }
}

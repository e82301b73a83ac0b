//! What a policy says, checked: its schedule (an interval or a cron expression in a time zone)
//! and its retention. Parsed here from what people type (CLI flags, StorageClass and
//! VolumeAttributesClass parameters) and from catalog records; every refusal says what is
//! accepted.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::catalog::{RetentionRecord, ScheduleRecord};

/// Shortest interval a policy may run at.
pub const MIN_INTERVAL_S: u64 = 60;
/// Longest interval (a year and a day).
pub const MAX_INTERVAL_S: u64 = 366 * 86400;
pub const INTERVAL_RULE: &str =
    "an interval is a duration of whole seconds from 1m to 366d, e.g. 15m, 1h, 1h30m, 1d";
pub const CRON_RULE: &str = "a cron expression has 5 fields (minute hour day-of-month month day-of-week), \
     optionally a leading seconds field, e.g. \"0 3 * * *\" or \"@daily\"";
pub const RETENTION_RULE: &str = "a policy needs at least one of --keep-last, --keep-hourly, --keep-daily, \
     --keep-weekly, --keep-monthly, --keep-yearly (whole numbers, at least 1) or --max-age (a duration such as 30d)";

#[derive(Debug, Clone)]
pub enum Schedule {
    /// Slots at every multiple of the interval since the Unix epoch.
    Every { seconds: u64 },
    Cron { cron: Box<Cron>, expr: String, tz: Option<Tz> },
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.to_record() == other.to_record()
    }
}

impl Schedule {
    pub fn every(text: &str) -> Result<Schedule, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("invalid interval {text:?} ({e}): {INTERVAL_RULE}"))?;
        if d.subsec_nanos() != 0 || !(MIN_INTERVAL_S..=MAX_INTERVAL_S).contains(&d.as_secs()) {
            return Err(format!("invalid interval {text:?}: {INTERVAL_RULE}"));
        }
        Ok(Schedule::Every { seconds: d.as_secs() })
    }

    /// A cron expression, evaluated in `tz` (an IANA name such as `Europe/Paris`; UTC when
    /// `None` or empty).
    pub fn cron(expr: &str, tz: Option<&str>) -> Result<Schedule, String> {
        let cron = Cron::from_str(expr.trim()).map_err(|e| format!("invalid cron expression {expr:?} ({e}): {CRON_RULE}"))?;
        let tz = match tz.map(str::trim).filter(|t| !t.is_empty()) {
            None => None,
            Some(name) => Some(Tz::from_str(name).map_err(|_| {
                format!("unknown time zone {name:?}: use an IANA name such as UTC, Europe/Paris or America/New_York")
            })?),
        };
        // An expression that can never match (e.g. 30 February) is refused now, not at run time.
        let probe = Utc.timestamp_millis_opt(0).unwrap();
        let s = Schedule::Cron { cron: Box::new(cron), expr: expr.trim().to_string(), tz };
        if s.next_slot_after(probe.timestamp_millis() as u64).is_none() {
            return Err(format!("cron expression {expr:?} never matches: {CRON_RULE}"));
        }
        Ok(s)
    }

    pub fn from_record(r: &ScheduleRecord) -> Result<Schedule, String> {
        match r {
            ScheduleRecord::Every { seconds } => Ok(Schedule::Every { seconds: *seconds }),
            ScheduleRecord::Cron { expr, tz } => Schedule::cron(expr, Some(tz)),
        }
    }

    pub fn to_record(&self) -> ScheduleRecord {
        match self {
            Schedule::Every { seconds } => ScheduleRecord::Every { seconds: *seconds },
            Schedule::Cron { expr, tz, .. } => {
                ScheduleRecord::Cron { expr: expr.clone(), tz: tz.map(|t| t.name().to_string()).unwrap_or_default() }
            }
        }
    }

    /// The time zone buckets and cron fields are read in.
    pub fn tz(&self) -> Option<Tz> {
        match self {
            Schedule::Every { .. } => None,
            Schedule::Cron { tz, .. } => *tz,
        }
    }

    /// The latest slot at or before `t_ms`.
    pub fn latest_slot_at_or_before(&self, t_ms: u64) -> Option<u64> {
        match self {
            Schedule::Every { seconds } => {
                let step = seconds * 1000;
                Some(t_ms / step * step)
            }
            Schedule::Cron { cron, tz, .. } => {
                let t = utc(t_ms)?;
                let found = match tz {
                    Some(tz) => cron.find_previous_occurrence(&t.with_timezone(tz), true).ok().map(|d| d.timestamp_millis()),
                    None => cron.find_previous_occurrence(&t, true).ok().map(|d| d.timestamp_millis()),
                };
                found.and_then(|ms| u64::try_from(ms).ok())
            }
        }
    }

    /// The first slot strictly after `t_ms`.
    pub fn next_slot_after(&self, t_ms: u64) -> Option<u64> {
        match self {
            Schedule::Every { seconds } => {
                let step = seconds * 1000;
                Some((t_ms / step + 1) * step)
            }
            Schedule::Cron { cron, tz, .. } => {
                let t = utc(t_ms)?;
                let found = match tz {
                    Some(tz) => cron.find_next_occurrence(&t.with_timezone(tz), false).ok().map(|d| d.timestamp_millis()),
                    None => cron.find_next_occurrence(&t, false).ok().map(|d| d.timestamp_millis()),
                };
                found.and_then(|ms| u64::try_from(ms).ok())
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Schedule::Every { seconds } => format!("every {}", humantime::format_duration(std::time::Duration::from_secs(*seconds))),
            Schedule::Cron { expr, tz, .. } => {
                format!("cron \"{expr}\" {}", tz.map(|t| t.name().to_string()).unwrap_or_else(|| "UTC".into()))
            }
        }
    }
}

fn utc(t_ms: u64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(i64::try_from(t_ms).ok()?).single()
}

/// Parses a maximum age (`30d`, `12h`, …) into whole seconds.
pub fn max_age(text: &str) -> Result<u64, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid maximum age {text:?} ({e}): a duration such as 12h, 30d or 1y"))?;
    if d.as_secs() < MIN_INTERVAL_S || d.subsec_nanos() != 0 {
        return Err(format!("invalid maximum age {text:?}: at least 1m, in whole seconds"));
    }
    Ok(d.as_secs())
}

/// Refuses a retention that keeps nothing (snapshots would pile up without limit).
pub fn check_retention(r: &RetentionRecord) -> Result<(), String> {
    let counts = [r.keep_last, r.keep_hourly, r.keep_daily, r.keep_weekly, r.keep_monthly, r.keep_yearly];
    if counts.iter().all(|&c| c == 0) && r.max_age_s == 0 {
        return Err(RETENTION_RULE.to_string());
    }
    Ok(())
}

pub fn describe_retention(r: &RetentionRecord) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (r.keep_last, "last"),
        (r.keep_hourly, "hourly"),
        (r.keep_daily, "daily"),
        (r.keep_weekly, "weekly"),
        (r.keep_monthly, "monthly"),
        (r.keep_yearly, "yearly"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if r.max_age_s > 0 {
        parts.push(format!("max age {}", humantime::format_duration(std::time::Duration::from_secs(r.max_age_s))));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis() as u64
    }

    #[test]
    fn intervals() {
        assert_eq!(Schedule::every("15m").unwrap(), Schedule::Every { seconds: 900 });
        assert_eq!(Schedule::every("1h30m").unwrap(), Schedule::Every { seconds: 5400 });
        for bad in ["", "10s", "1.5s", "abc", "400d", "-1h"] {
            let e = Schedule::every(bad).unwrap_err();
            assert!(e.contains("15m, 1h"), "{bad}: {e}");
        }
        let s = Schedule::every("1h").unwrap();
        assert_eq!(s.latest_slot_at_or_before(ms("2026-12-03T14:59:59Z")), Some(ms("2026-12-03T14:00:00Z")));
        assert_eq!(s.latest_slot_at_or_before(ms("2026-12-03T15:00:00Z")), Some(ms("2026-12-03T15:00:00Z")));
        assert_eq!(s.next_slot_after(ms("2026-12-03T15:00:00Z")), Some(ms("2026-12-03T16:00:00Z")));
    }

    #[test]
    fn cron_in_a_time_zone() {
        let s = Schedule::cron("0 3 * * *", Some("Europe/Paris")).unwrap();
        // 03:00 in Paris in winter is 02:00 UTC.
        assert_eq!(s.next_slot_after(ms("2026-12-03T12:00:00Z")), Some(ms("2026-12-04T02:00:00Z")));
        assert_eq!(s.latest_slot_at_or_before(ms("2026-12-03T12:00:00Z")), Some(ms("2026-12-03T02:00:00Z")));
        let utc = Schedule::cron("@hourly", None).unwrap();
        assert_eq!(utc.next_slot_after(ms("2026-12-03T12:00:00Z")), Some(ms("2026-12-03T13:00:00Z")));
        assert!(Schedule::cron("61 * * * *", None).unwrap_err().contains("5 fields"));
        assert!(Schedule::cron("0 0 30 2 *", None).unwrap_err().contains("never matches"));
        assert!(Schedule::cron("0 * * * *", Some("Mars/Olympus")).unwrap_err().contains("IANA"));
        let back = Schedule::from_record(&s.to_record()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn retention_needs_a_rule() {
        assert!(check_retention(&RetentionRecord::default()).unwrap_err().contains("--keep-last"));
        check_retention(&RetentionRecord { max_age_s: 60, ..Default::default() }).unwrap();
        assert!(max_age("5s").is_err());
        assert_eq!(max_age("30d").unwrap(), 30 * 86400);
    }
}

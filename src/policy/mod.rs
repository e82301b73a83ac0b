//! Automatic snapshot policies (docs/policies.md): what a policy says (`spec`), which
//! snapshots its retention keeps (`retention`), the time it runs by (`clock`), the text forms
//! Kubernetes parameters use (`params`), and the task on the catalog owner that runs them
//! (`runner`). The records themselves live in the catalog (`catalog::policy_record`).

pub mod clock;
pub mod params;
pub mod retention;
pub mod runner;
pub mod spec;

use crate::catalog::{PolicySettings, RetentionRecord};
use spec::Schedule;

/// A policy as people write it (CLI flags, admin requests, StorageClass parameters), before
/// it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyText {
    pub prefix: Option<String>,
    pub every: Option<String>,
    pub cron: Option<String>,
    pub time_zone: Option<String>,
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    pub max_age: Option<String>,
    pub paused: bool,
    pub skip_unchanged: bool,
}

impl PolicyText {
    /// Checks everything and gives the settings the catalog stores; the error says what is
    /// accepted.
    pub fn settings(&self) -> Result<PolicySettings, String> {
        let nonempty = |o: &Option<String>| o.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let schedule = match (nonempty(&self.every), nonempty(&self.cron)) {
            (Some(every), None) => {
                if nonempty(&self.time_zone).is_some() {
                    return Err("a time zone goes with a cron schedule; an interval runs on UTC slots".into());
                }
                Schedule::every(&every)?
            }
            (None, Some(cron)) => Schedule::cron(&cron, self.time_zone.as_deref())?,
            (Some(_), Some(_)) => return Err("give either an interval (every) or a cron expression, not both".into()),
            (None, None) => {
                return Err(format!(
                    "a policy needs a schedule: an interval (every: {}) or a cron expression ({})",
                    spec::INTERVAL_RULE,
                    spec::CRON_RULE
                ))
            }
        };
        let retention = RetentionRecord {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            max_age_s: match nonempty(&self.max_age) {
                Some(t) => spec::max_age(&t)?,
                None => 0,
            },
        };
        spec::check_retention(&retention)?;
        Ok(PolicySettings {
            prefix: nonempty(&self.prefix),
            schedule: schedule.to_record(),
            retention,
            paused: self.paused,
            skip_unchanged: self.skip_unchanged,
        })
    }
}

/// The slot a policy should run for now, if one is due: the latest slot at or before `now_ms`
/// when it is later than the last completed one (or, for a policy that never ran, than its
/// creation). However many slots were missed, that is one run (the catch-up rule).
pub fn due_slot(schedule: &Schedule, last_slot_ms: Option<u64>, created_ms: u64, now_ms: u64) -> Option<u64> {
    let latest = schedule.latest_slot_at_or_before(now_ms)?;
    let base = last_slot_ms.unwrap_or(created_ms);
    (latest > base).then_some(latest)
}

/// The next slot after the last completed one and after `now_ms`.
pub fn next_slot(schedule: &Schedule, last_slot_ms: Option<u64>, created_ms: u64, now_ms: u64) -> Option<u64> {
    let base = last_slot_ms.unwrap_or(created_ms);
    match due_slot(schedule, last_slot_ms, created_ms, now_ms) {
        Some(slot) => Some(slot),
        None => schedule.next_slot_after(base.max(now_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 60_000;

    #[test]
    fn one_catch_up_however_long_the_gap() {
        let s = Schedule::every("1m").unwrap();
        // Created at 0:30 (in ms): nothing due before the 1-minute slot.
        assert_eq!(due_slot(&s, None, M / 2, M - 1), None);
        assert_eq!(due_slot(&s, None, M / 2, M), Some(M));
        // Ran for slot 1; the server was away for an hour: one run, for the latest slot.
        assert_eq!(due_slot(&s, Some(M), 0, 61 * M + 5), Some(61 * M));
        assert_eq!(due_slot(&s, Some(61 * M), 0, 61 * M + 5), None);
        assert_eq!(next_slot(&s, Some(61 * M), 0, 61 * M + 5), Some(62 * M));
    }

    #[test]
    fn text_is_checked() {
        let ok = PolicyText { every: Some("1h".into()), keep_hourly: 24, ..Default::default() };
        ok.settings().unwrap();
        let both = PolicyText { cron: Some("@daily".into()), ..ok.clone() };
        assert!(both.settings().unwrap_err().contains("not both"));
        let none = PolicyText { keep_hourly: 0, ..ok.clone() };
        assert!(none.settings().unwrap_err().contains("--keep-last"));
        let tz = PolicyText { time_zone: Some("Europe/Paris".into()), ..ok.clone() };
        assert!(tz.settings().unwrap_err().contains("cron"));
        let nothing = PolicyText { every: None, ..ok };
        assert!(nothing.settings().unwrap_err().contains("needs a schedule"));
    }
}

//! The one-line policy syntax of Kubernetes parameters (StorageClass and
//! VolumeAttributesClass `snapshotPolicy`): `;`-separated `key=value` items, e.g.
//! `every=1h; keep-hourly=24; keep-daily=7; skip-unchanged` or
//! `cron=0 3 * * *; tz=Europe/Paris; keep-daily=14`. `none` (or an empty value) means no policy.

use super::PolicyText;

pub const PARAMETER: &str = "snapshotPolicy";
pub const SYNTAX: &str = "snapshotPolicy is `none` or `;`-separated items: every=DURATION or cron=EXPR \
     (with tz=ZONE), keep-last=N, keep-hourly=N, keep-daily=N, keep-weekly=N, keep-monthly=N, keep-yearly=N, \
     max-age=DURATION, skip-unchanged[=true|false], paused[=true|false]";

/// `Ok(None)`: no policy. The text is only parsed here; [`PolicyText::settings`] checks it.
pub fn parse(value: &str) -> Result<Option<PolicyText>, String> {
    let value = value.trim();
    if value.is_empty() || value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let mut p = PolicyText::default();
    for item in value.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, val) = match item.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (item, None),
        };
        let count = |v: Option<&str>| -> Result<u32, String> {
            let v = v.ok_or_else(|| format!("{key} needs a number: {SYNTAX}"))?;
            v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| format!("{key}={v}: a whole number of at least 1"))
        };
        let flag = |v: Option<&str>| -> Result<bool, String> {
            match v {
                None | Some("true") => Ok(true),
                Some("false") => Ok(false),
                Some(v) => Err(format!("{key}={v}: true or false")),
            }
        };
        let text = |v: Option<&str>| -> Result<Option<String>, String> {
            match v {
                Some(v) if !v.is_empty() => Ok(Some(v.to_string())),
                _ => Err(format!("{key} needs a value: {SYNTAX}")),
            }
        };
        match key {
            "every" => p.every = text(val)?,
            "cron" => p.cron = text(val)?,
            "tz" => p.time_zone = text(val)?,
            "max-age" => p.max_age = text(val)?,
            "keep-last" => p.keep_last = count(val)?,
            "keep-hourly" => p.keep_hourly = count(val)?,
            "keep-daily" => p.keep_daily = count(val)?,
            "keep-weekly" => p.keep_weekly = count(val)?,
            "keep-monthly" => p.keep_monthly = count(val)?,
            "keep-yearly" => p.keep_yearly = count(val)?,
            "skip-unchanged" => p.skip_unchanged = flag(val)?,
            "paused" => p.paused = flag(val)?,
            other => return Err(format!("unknown item {other:?}: {SYNTAX}")),
        }
    }
    p.settings()?;
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items() {
        let p = parse("every=1h; keep-hourly=24; keep-daily=7; skip-unchanged").unwrap().unwrap();
        assert_eq!(p.every.as_deref(), Some("1h"));
        assert_eq!((p.keep_hourly, p.keep_daily, p.skip_unchanged), (24, 7, true));
        let c = parse("cron=0 3 * * 1,5;tz=Europe/Paris;keep-last=3").unwrap().unwrap();
        assert_eq!(c.cron.as_deref(), Some("0 3 * * 1,5"));
        assert_eq!(parse(" none ").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn refusals_say_what_is_accepted() {
        for (bad, says) in [
            ("every=1h; keep-hourly=zero", "whole number"),
            ("every=1h; colour=blue", "keep-hourly=N"),
            ("every=5s; keep-last=1", "15m, 1h"),
            ("every=1h", "--keep-last"),
            ("every=1h; keep-last=1; skip-unchanged=maybe", "true or false"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}

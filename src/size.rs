//! Sizes as people write them, one parser for the config file, `slatefs dataset` and
//! `slatefs csi call`: `4096`, `1.5GiB`, `10G`, `512Mi`, `20 GB`.
//!
//! Units, case-insensitive, with or without a trailing `B`:
//! K, M, G, T, P (and KB, MB, GB, TB, PB) are powers of 1000, as in Kubernetes quantities;
//! Ki, Mi, Gi, Ti, Pi (and KiB, MiB, GiB, TiB, PiB) are powers of 1024. A fraction of a byte
//! is rounded up, as Kubernetes rounds a quantity to an integer.

/// What `--help` says about SIZE arguments.
pub const SIZE_HELP: &str = "bytes, or a number with a unit: K, M, G, T, P (or KB, MB, GB, TB, PB) \
are powers of 1000; Ki, Mi, Gi, Ti, Pi (or KiB, MiB, GiB, TiB, PiB) are powers of 1024; \
e.g. 10G, 1.5GiB, 512Mi";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("invalid size {0:?}: expected {SIZE_HELP}")]
    Invalid(String),
    #[error("size {0:?} is too large")]
    TooLarge(String),
}

/// Parses a size into bytes.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let invalid = || SizeError::Invalid(s.to_string());
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(invalid());
    }
    let unit = unit.trim().to_ascii_lowercase();
    let mult: u128 = match unit.strip_suffix('b').unwrap_or(&unit) {
        "" => 1,
        "k" => 1000,
        "m" => 1000u128.pow(2),
        "g" => 1000u128.pow(3),
        "t" => 1000u128.pow(4),
        "p" => 1000u128.pow(5),
        "ki" => 1 << 10,
        "mi" => 1 << 20,
        "gi" => 1 << 30,
        "ti" => 1 << 40,
        "pi" => 1 << 50,
        _ => return Err(invalid()),
    };
    // Exact decimal arithmetic: f64 would turn `9007199254740993` into another number.
    let too_large = || SizeError::TooLarge(s.to_string());
    let digits = |d: &str| -> Result<u128, SizeError> {
        if d.is_empty() {
            return Ok(0);
        }
        if d.len() > 30 {
            return Err(too_large());
        }
        d.parse::<u128>().map_err(|_| invalid())
    };
    let whole = digits(int)?.checked_mul(mult).ok_or_else(too_large)?;
    let frac = frac.trim_end_matches('0');
    let part = if frac.is_empty() {
        0
    } else {
        // Finer than a byte at any unit; also keeps the product below within u128.
        if frac.len() > 18 {
            return Err(invalid());
        }
        let scale = 10u128.pow(frac.len() as u32);
        let n = digits(frac)?.checked_mul(mult).ok_or_else(too_large)?;
        n.div_ceil(scale)
    };
    let total = whole.checked_add(part).ok_or_else(too_large)?;
    u64::try_from(total).map_err(|_| too_large())
}

/// Bytes for people: `512 B`, `1.0 GiB` (binary units; what [`parse_size`] reads back).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        for (s, want) in [
            ("4096", 4096u64),
            ("0", 0),
            ("10G", 10_000_000_000),
            ("10GB", 10_000_000_000),
            ("10g", 10_000_000_000),
            ("1Gi", 1 << 30),
            ("1GiB", 1 << 30),
            ("1gib", 1 << 30),
            ("20 GiB", 20 << 30),
            (" 512Mi ", 512 << 20),
            ("3k", 3000),
            ("3KB", 3000),
            ("1Ki", 1024),
            ("1KiB", 1024),
            ("2T", 2_000_000_000_000),
            ("1Ti", 1 << 40),
            ("1P", 1_000_000_000_000_000),
            ("1PiB", 1 << 50),
            ("7B", 7),
            ("1.5KiB", 1536),
            ("1.5G", 1_500_000_000),
            (".5Ki", 512),
            ("1.", 1),
            ("0.1Ki", 103), // 102.4 rounded up
            ("9007199254740993", 9_007_199_254_740_993),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s:?}");
        }
    }

    #[test]
    fn refusals() {
        for bad in ["", " ", "G", "GiB", ".", "1..5G", "1.2.3", "-1", "+1", "1Xi", "1 parsec", "1GiBB", "1bb", "1e9", "0x10"] {
            assert!(matches!(parse_size(bad), Err(SizeError::Invalid(_))), "{bad:?}: {:?}", parse_size(bad));
        }
        for big in ["18446744073709551616", "20000Pi", "99999999999999999999999999999999999999999"] {
            assert!(matches!(parse_size(big), Err(SizeError::TooLarge(_))), "{big:?}: {:?}", parse_size(big));
        }
        let msg = parse_size("1Xi").unwrap_err().to_string();
        assert!(msg.contains("powers of 1024") && msg.contains("powers of 1000"), "{msg}");
    }

    #[test]
    fn what_is_printed_reads_back() {
        assert_eq!(format_size(512 << 20), "512.0 MiB");
        assert_eq!(format_size(1 << 30), "1.0 GiB");
        assert_eq!(format_size(100), "100 B");
        for v in [0u64, 100, 1 << 20, 3 << 30, 5 << 40] {
            assert_eq!(parse_size(&format_size(v)), Ok(v));
        }
    }
}

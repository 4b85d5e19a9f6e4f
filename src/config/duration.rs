//! Durations in the Prometheus style: `30s`, `5m`, `12h`, `90d`, `1w`, and
//! compounds such as `1h30m`.
//!
//! Written by hand rather than with `humantime` because humantime accepts
//! spaces, months and years of varying length, and `M` for months, which
//! would make `5M` silently mean something else than the Prometheus syntax
//! operators know. The grammar here is exactly Prometheus' `model.Duration`.

use std::fmt;
use std::time::Duration;

/// Parse `30s`, `5m`, `12h`, `90d`, `2w`, `1y`, `500ms` or a compound like `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_ms: u128 = 0;
    let mut rest = s;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err("invalid duration: expected a number followed by a unit (ms, s, m, h, d, w, y), e.g. 30s, 5m, 12h, 90d".to_string());
        }
        let n: u128 = rest[..digits]
            .parse()
            .map_err(|_| "invalid duration: number too large".to_string())?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let (rank, ms) = match unit {
            "y" => (0, 365 * 86_400_000u128),
            "w" => (1, 7 * 86_400_000),
            "d" => (2, 86_400_000),
            "h" => (3, 3_600_000),
            "m" => (4, 60_000),
            "s" => (5, 1_000),
            "ms" => (6, 1),
            "" => return Err("invalid duration: missing unit (ms, s, m, h, d, w, y)".to_string()),
            _ => return Err("invalid duration: unknown unit (use ms, s, m, h, d, w, y)".into()),
        };
        if last_rank != usize::MAX && rank <= last_rank {
            return Err(
                "invalid duration: units must go from largest to smallest, each once".to_string(),
            );
        }
        last_rank = rank;
        total_ms = total_ms
            .checked_add(
                n.checked_mul(ms)
                    .ok_or_else(|| "duration too large".to_string())?,
            )
            .ok_or_else(|| "duration too large".to_string())?;
    }
    let ms = u64::try_from(total_ms).map_err(|_| "duration too large".to_string())?;
    Ok(Duration::from_millis(ms))
}

/// Render a duration in its largest whole unit: `7d`, `12h`, `90s`. Used for
/// the `window` label, so `policy.windows: [7d]` gives `window="7d"`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    const UNITS: [(&str, u128); 6] = [
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    // Prefer days over weeks for the common 7d/14d/28d windows: SRE dashboards
    // and the SPEC say "7d", not "1w".
    for (unit, size) in UNITS.iter().skip(1) {
        if ms % size == 0 {
            return format!("{}{}", ms / size, unit);
        }
    }
    let _ = UNITS[0];
    format!("{ms}ms")
}

/// Parse a byte size: `1048576`, `512KiB`, `256MiB`, `1GiB`, `10MB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.chars().take_while(|c| c.is_ascii_digit()).count();
    let bad = || {
        "invalid size: use a number of bytes or a unit (KiB, MiB, GiB, KB, MB, GB), e.g. 256MiB"
            .to_string()
    };
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = s[..digits].parse().map_err(|_| bad())?;
    let mult: u64 = match s[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// A duration that keeps the text the user wrote, for messages.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl fmt::Debug for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", format_duration(self.0))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", format_duration(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 30s, 5m, 12h or 90d")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_duration(s).map(Dur).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Dur, E> {
                if n == 0 {
                    Ok(Dur(Duration::ZERO))
                } else {
                    Err(E::custom(format!(
                        "invalid duration {n}: missing unit (e.g. {n}s, {n}m, {n}d)"
                    )))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Dur, E> {
                if n < 0 {
                    Err(E::custom(format!(
                        "invalid duration {n}: must not be negative"
                    )))
                } else {
                    self.visit_u64(n as u64)
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(
            parse_duration("90d").unwrap(),
            Duration::from_secs(7_776_000)
        );
        assert_eq!(parse_duration("1w").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_bad() {
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "5M",
            "1m1h",
            "1h1h",
            "-5m",
            "5 m",
            "99999999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("1GB").unwrap(), 1_000_000_000);
        assert!(parse_size("1 TB").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn formats_largest_unit() {
        assert_eq!(format_duration(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(format_duration(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(format_duration(Duration::from_secs(3_600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(5_400)), "90m");
        assert_eq!(format_duration(Duration::from_millis(1_500)), "1500ms");
    }
}

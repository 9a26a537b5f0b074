//! RFC 3339 `date-time` values of a TLS-RPT report (`start-datetime`,
//! `end-datetime`). The text is kept as the sender wrote it, so a parsed
//! report serializes back unchanged; the instant is computed once, so
//! reports can be ordered and grouped by UTC day whatever offset they use.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// An RFC 3339 date-time, e.g. `2016-04-01T00:00:00Z`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReportDateTime {
    text: String,
    unix_seconds: i64,
}

/// Why a date-time is not RFC 3339.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SSZ): {reason}")]
pub struct DateTimeError {
    text: String,
    reason: &'static str,
}

impl ReportDateTime {
    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `t`, `z` and a
    /// space for the `T` are accepted as RFC 3339 §5.6 allows.
    pub fn parse(text: &str) -> Result<Self, DateTimeError> {
        let fail = |reason| DateTimeError {
            text: text.to_owned(),
            reason,
        };
        let b = text.as_bytes();
        if b.len() < 20 {
            return Err(fail("too short"));
        }
        let year = digits(&b[0..4]).ok_or(fail("bad year"))?;
        let month = digits(&b[5..7]).ok_or(fail("bad month"))?;
        let day = digits(&b[8..10]).ok_or(fail("bad day"))?;
        let hour = digits(&b[11..13]).ok_or(fail("bad hour"))?;
        let minute = digits(&b[14..16]).ok_or(fail("bad minute"))?;
        let second = digits(&b[17..19]).ok_or(fail("bad second"))?;
        if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
            return Err(fail("bad separators"));
        }
        if !matches!(b[10], b'T' | b't' | b' ') {
            return Err(fail("no T between date and time"));
        }
        if !(1..=12).contains(&month) {
            return Err(fail("month out of range"));
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err(fail("day out of range"));
        }
        // 60 is a leap second; it counts as the next second's instant.
        if hour > 23 || minute > 59 || second > 60 {
            return Err(fail("time out of range"));
        }
        let mut rest = &b[19..];
        if let Some(fraction) = rest.strip_prefix(b".") {
            let n = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return Err(fail("empty fraction of a second"));
            }
            rest = &fraction[n..];
        }
        let offset_seconds = match rest {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let h = digits(&[*h1, *h2]).ok_or(fail("bad offset"))?;
                let m = digits(&[*m1, *m2]).ok_or(fail("bad offset"))?;
                if h > 23 || m > 59 {
                    return Err(fail("offset out of range"));
                }
                let seconds = (h * 3600 + m * 60) as i64;
                if *sign == b'+' { seconds } else { -seconds }
            }
            _ => return Err(fail("no Z or ±HH:MM offset at the end")),
        };
        let days = days_from_civil(year as i64, month, day);
        let local = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
        Ok(ReportDateTime {
            text: text.to_owned(),
            unix_seconds: local - offset_seconds,
        })
    }

    /// The date-time for seconds since the Unix epoch, written in UTC
    /// with a `Z` (how the gateway writes its own reports).
    pub fn from_unix_seconds(unix_seconds: i64) -> Self {
        let days = unix_seconds.div_euclid(86_400);
        let secs = unix_seconds.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let text = format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        );
        ReportDateTime { text, unix_seconds }
    }

    /// The text as written in the report.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Seconds since the Unix epoch (fractions dropped).
    pub fn unix_seconds(&self) -> i64 {
        self.unix_seconds
    }

    /// The UTC day of this instant, `YYYY-MM-DD`.
    pub fn utc_day(&self) -> String {
        let (y, m, d) = civil_from_days(self.unix_seconds.div_euclid(86_400));
        format!("{y:04}-{m:02}-{d:02}")
    }
}

impl fmt::Display for ReportDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for ReportDateTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ReportDateTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ReportDateTime::parse(&text).map_err(de::Error::custom)
    }
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_offsets_give_the_same_instant() {
        let z = ReportDateTime::parse("2016-04-01T00:00:00Z").unwrap();
        assert_eq!(z.unix_seconds(), 1_459_468_800);
        assert_eq!(z.utc_day(), "2016-04-01");
        let east = ReportDateTime::parse("2016-04-01T02:00:00.5+02:00").unwrap();
        assert_eq!(east.unix_seconds(), z.unix_seconds());
        let west = ReportDateTime::parse("2016-03-31t23:00:00-01:00").unwrap();
        assert_eq!(west.utc_day(), "2016-04-01");
        assert_eq!(west.as_str(), "2016-03-31t23:00:00-01:00");
    }

    #[test]
    fn unix_seconds_round_trip_through_text() {
        for s in [0, 1_459_468_800, 4_102_444_799, 951_782_400] {
            let t = ReportDateTime::from_unix_seconds(s);
            assert_eq!(ReportDateTime::parse(t.as_str()).unwrap(), t);
        }
        assert_eq!(
            ReportDateTime::from_unix_seconds(951_782_400).as_str(),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn malformed_dates_say_what_is_wrong() {
        for (text, reason) in [
            ("2016-04-01", "too short"),
            ("2016-13-01T00:00:00Z", "month out of range"),
            ("2015-02-29T00:00:00Z", "day out of range"),
            ("2016-04-01T24:00:00Z", "time out of range"),
            ("2016-04-01T00:00:00", "too short"),
            (
                "2016-04-01T00:00:00+0200",
                "no Z or ±HH:MM offset at the end",
            ),
            ("2016-04-01X00:00:00Z", "no T between date and time"),
            ("2016-04-01T00:00:00.Z", "empty fraction of a second"),
            ("２016-04-01T00:00:00Z", "bad year"),
        ] {
            let err = ReportDateTime::parse(text).unwrap_err();
            assert_eq!(err.reason, reason, "{text}");
            assert!(err.to_string().contains(reason));
        }
    }
}

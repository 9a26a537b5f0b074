//! The UTC day TLS-RPT aggregates by (RFC 8460 §4.1: a report covers a
//! whole UTC day), read from a [`crate::clock::Clock`] so tests move days
//! with a test clock. Written `YYYY-MM-DD` in file names, `ctl` and logs.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAY_SECS: u64 = 86_400;

/// One UTC day, as the number of days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcDay(u64);

/// Why a `YYYY-MM-DD` text is not a day.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a UTC day written YYYY-MM-DD (for example 2026-12-01)")]
pub struct BadDay(pub String);

impl UtcDay {
    /// The day `t` falls in (before 1970: day 0).
    pub fn of(t: SystemTime) -> Self {
        UtcDay(
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() / DAY_SECS)
                .unwrap_or(0),
        )
    }

    /// 00:00:00 UTC of the day.
    pub fn start(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0 * DAY_SECS)
    }

    /// 00:00:00 UTC of the next day (the report period ends just before).
    pub fn end(self) -> SystemTime {
        self.next().start()
    }

    /// Seconds since 1970 of [`Self::start`] (the report file name's
    /// begin timestamp).
    pub fn start_unix(self) -> u64 {
        self.0 * DAY_SECS
    }

    /// The day after.
    pub fn next(self) -> Self {
        UtcDay(self.0 + 1)
    }

    /// The day before (day 0 stays day 0).
    pub fn previous(self) -> Self {
        UtcDay(self.0.saturating_sub(1))
    }

    fn civil(self) -> Option<time::Date> {
        let start = time::OffsetDateTime::from_unix_timestamp(self.start_unix() as i64).ok()?;
        Some(start.date())
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(text: &str) -> Result<Self, BadDay> {
        let bad = || BadDay(text.to_owned());
        let mut parts = text.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u8 = m.parse().map_err(|_| bad())?;
        let day: u8 = d.parse().map_err(|_| bad())?;
        let month = time::Month::try_from(month).map_err(|_| bad())?;
        let date = time::Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
        let secs = date.midnight().assume_utc().unix_timestamp();
        u64::try_from(secs)
            .map(|s| UtcDay(s / DAY_SECS))
            .map_err(|_| bad())
    }
}

impl fmt::Display for UtcDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.civil() {
            Some(d) => write!(
                f,
                "{:04}-{:02}-{:02}",
                d.year(),
                u8::from(d.month()),
                d.day()
            ),
            None => write!(f, "day-{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_through_their_text() {
        let day = UtcDay::parse("2026-12-01").unwrap();
        assert_eq!(day.to_string(), "2026-12-01");
        assert_eq!(day.start_unix(), 1_796_083_200);
        assert_eq!(day.next().to_string(), "2026-12-02");
        assert_eq!(UtcDay::of(day.end() - Duration::from_secs(1)), day);
        assert_eq!(UtcDay::of(day.end()), day.next());
        assert_eq!(
            UtcDay::parse("2024-02-29").unwrap().to_string(),
            "2024-02-29"
        );
    }

    #[test]
    fn bad_days_are_refused_by_name() {
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "26-12-01",
            "2026-12-1",
            "2026/12/01",
            "",
            "x",
        ] {
            let e = UtcDay::parse(bad).unwrap_err();
            assert!(e.to_string().contains("YYYY-MM-DD"), "{e}");
        }
    }
}

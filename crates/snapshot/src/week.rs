//! ISO weeks as snapshots name them (`2026-W47`): parsing, the Monday-to-Monday UTC range, and
//! when a week counts as closed.

use crate::SnapshotError;
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// One ISO 8601 week: Monday 00:00 UTC to the next Monday 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoWeek {
    year: i32,
    week: u32,
}

impl IsoWeek {
    /// The week `week` of ISO year `year`, if it exists (week 53 only in long years).
    pub fn new(year: i32, week: u32) -> Option<IsoWeek> {
        NaiveDate::from_isoywd_opt(year, week, Weekday::Mon).map(|_| IsoWeek { year, week })
    }

    /// The ISO week that contains `date`.
    pub fn containing(date: NaiveDate) -> IsoWeek {
        let w = date.iso_week();
        IsoWeek {
            year: w.year(),
            week: w.week(),
        }
    }

    pub fn year(&self) -> i32 {
        self.year
    }

    pub fn week(&self) -> u32 {
        self.week
    }

    /// The Monday the week starts on.
    pub fn start(&self) -> NaiveDate {
        // `new` and `containing` only build weeks that exist.
        NaiveDate::from_isoywd_opt(self.year, self.week, Weekday::Mon).unwrap_or(NaiveDate::MIN)
    }

    /// The Monday after the week (exclusive end).
    pub fn end(&self) -> NaiveDate {
        self.start() + Days::new(7)
    }

    /// The seven UTC days of the week.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        let start = self.start();
        (0..7).map(move |d| start + Days::new(d))
    }

    /// The instant from which the week counts as closed: its end plus `grace`.
    pub fn closes_at(&self, grace: Duration) -> DateTime<Utc> {
        let end = self.end().and_time(chrono::NaiveTime::MIN).and_utc();
        end + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX)
    }

    /// True once `now` is at or past [`closes_at`](Self::closes_at).
    pub fn is_closed(&self, now: DateTime<Utc>, grace: Duration) -> bool {
        now >= self.closes_at(grace)
    }
}

impl fmt::Display for IsoWeek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-W{:02}", self.year, self.week)
    }
}

impl FromStr for IsoWeek {
    type Err = SnapshotError;

    /// Accepts exactly `YYYY-Www` (e.g. `2026-W47`, `2026-W05`).
    fn from_str(s: &str) -> Result<IsoWeek, SnapshotError> {
        let bad = |why: &str| {
            SnapshotError::BadWeek(format!(
                "{s:?} is not an ISO week: {why}; expected YYYY-Www, e.g. 2026-W47"
            ))
        };
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        if b.len() != 8 || b[4] != b'-' || b[5] != b'W' || !digits(0..4) || !digits(6..8) {
            return Err(bad("wrong shape"));
        }
        let year: i32 = s[0..4].parse().map_err(|_| bad("bad year"))?;
        let week: u32 = s[6..8].parse().map_err(|_| bad("bad week number"))?;
        IsoWeek::new(year, week).ok_or_else(|| {
            bad(&format!(
                "week {week} does not exist in {year} (weeks run from 01 to 52 or 53)"
            ))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_weeks() {
        let w: IsoWeek = "2026-W47".parse().unwrap();
        assert_eq!(w.to_string(), "2026-W47");
        assert_eq!(w.start(), "2026-11-16".parse::<NaiveDate>().unwrap());
        assert_eq!(w.end(), "2026-11-23".parse::<NaiveDate>().unwrap());
        assert_eq!(IsoWeek::containing(w.end()).to_string(), "2026-W48");
        assert_eq!(
            IsoWeek::containing("2027-01-01".parse().unwrap()).to_string(),
            "2026-W53"
        );
        assert_eq!("2026-W53".parse::<IsoWeek>().unwrap().week(), 53);
        assert_eq!(
            "2026-W01".parse::<IsoWeek>().unwrap().start().to_string(),
            "2025-12-29"
        );
    }

    #[test]
    fn rejects_malformed_weeks() {
        for s in [
            "2026-W60",
            "2026-47",
            "2026-W00",
            "2027-W53",
            "2026-w47",
            "26-W47",
            "2026-W4",
            " 2026-W47",
            "2026-W+7",
        ] {
            let e = s.parse::<IsoWeek>().unwrap_err().to_string();
            assert!(e.contains("is not an ISO week"), "{s}: {e}");
        }
        assert!(
            "2026-W60"
                .parse::<IsoWeek>()
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
    }

    #[test]
    fn closes_after_the_grace_period() {
        let w: IsoWeek = "2026-W47".parse().unwrap();
        let grace = Duration::from_secs(300);
        let monday: DateTime<Utc> = "2026-11-23T00:00:00Z".parse().unwrap();
        assert!(!w.is_closed(monday, grace));
        assert!(!w.is_closed(monday + chrono::Duration::seconds(299), grace));
        assert!(w.is_closed(monday + chrono::Duration::seconds(300), grace));
    }
}

//! Reporting periods: a UTC day, an ISO week (Monday 00:00 to the next Monday) or a calendar
//! month; `end` is exclusive.

use chrono::{Datelike, Days, Months, NaiveDate};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodKind {
    Day,
    Week,
    Month,
}

impl FromStr for PeriodKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "day" => Ok(PeriodKind::Day),
            "week" => Ok(PeriodKind::Week),
            "month" => Ok(PeriodKind::Month),
            _ => Err(format!("unknown period {s:?}; accepted: day, week, month")),
        }
    }
}

impl fmt::Display for PeriodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PeriodKind::Day => "day",
            PeriodKind::Week => "week",
            PeriodKind::Month => "month",
        })
    }
}

/// A half-open range of whole UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    pub kind: PeriodKind,
    pub start: NaiveDate,
    /// Exclusive.
    pub end: NaiveDate,
}

impl Period {
    /// The period of `kind` that contains `date`.
    pub fn containing(kind: PeriodKind, date: NaiveDate) -> Period {
        let start = match kind {
            PeriodKind::Day => date,
            PeriodKind::Week => week_start(date),
            PeriodKind::Month => date.with_day(1).unwrap_or(date),
        };
        Period {
            kind,
            start,
            end: Self::after(kind, start),
        }
    }

    fn after(kind: PeriodKind, start: NaiveDate) -> NaiveDate {
        match kind {
            PeriodKind::Day => start + Days::new(1),
            PeriodKind::Week => start + Days::new(7),
            PeriodKind::Month => start + Months::new(1),
        }
    }

    /// The period just before this one.
    pub fn previous(&self) -> Period {
        let start = match self.kind {
            PeriodKind::Day => self.start - Days::new(1),
            PeriodKind::Week => self.start - Days::new(7),
            PeriodKind::Month => self.start - Months::new(1),
        };
        Period {
            kind: self.kind,
            start,
            end: self.start,
        }
    }
}

/// The Monday of the ISO week containing `date`.
pub fn week_start(date: NaiveDate) -> NaiveDate {
    date - Days::new(u64::from(date.weekday().num_days_from_monday()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn iso_weeks_start_on_monday() {
        let p = Period::containing(PeriodKind::Week, d("2026-11-22")); // a Sunday
        assert_eq!((p.start, p.end), (d("2026-11-16"), d("2026-11-23")));
        let p = Period::containing(PeriodKind::Week, d("2026-11-23")); // the Monday after
        assert_eq!((p.start, p.end), (d("2026-11-23"), d("2026-11-30")));
        assert_eq!(p.previous().start, d("2026-11-16"));
    }

    #[test]
    fn months_and_days() {
        let p = Period::containing(PeriodKind::Month, d("2026-03-31"));
        assert_eq!((p.start, p.end), (d("2026-03-01"), d("2026-04-01")));
        assert_eq!(p.previous().start, d("2026-02-01"));
        assert_eq!(p.previous().end, d("2026-03-01"));
        let p = Period::containing(PeriodKind::Day, d("2026-01-01"));
        assert_eq!(p.previous().start, d("2025-12-31"));
    }
}

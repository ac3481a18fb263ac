//! What to generate ([`GenConfig`]) and what can go wrong ([`GenError`]).

use chrono::{Datelike, Days, NaiveDate, Utc};
use std::path::PathBuf;

/// The parameters of one synthetic data set. Equal configs give identical events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenConfig {
    pub seed: u64,
    /// First UTC day of the period.
    pub start: NaiveDate,
    /// Length of the period in days.
    pub days: u32,
    /// Number of calling applications.
    pub apps: u32,
    /// Number of event rows, exactly (a failed attempt that fell back is a row of its own).
    pub events: u64,
}

/// The default seed of the demo data set.
pub const DEMO_SEED: u64 = 20_261_122;

impl GenConfig {
    /// `weeks` whole weeks ending on (and including) `last_day`.
    pub fn weeks_ending(last_day: NaiveDate, weeks: u32) -> GenConfig {
        let days = weeks * 7;
        GenConfig {
            seed: DEMO_SEED,
            start: last_day - Days::new(u64::from(days.saturating_sub(1))),
            days,
            apps: 3_000,
            events: 3_000_000,
        }
    }

    /// The last day of the period (inclusive).
    pub fn end(&self) -> NaiveDate {
        self.start + Days::new(u64::from(self.days.saturating_sub(1)))
    }

    /// Rejects configs that cannot produce valid events.
    pub fn validate(&self) -> Result<(), GenError> {
        let earliest = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or(NaiveDate::MIN);
        if self.days == 0 || self.days > 3_660 {
            return Err(GenError::Config(format!(
                "days is {}; use 1..=3660",
                self.days
            )));
        }
        if self.apps == 0 || self.apps > 10_000_000 {
            return Err(GenError::Config(format!(
                "apps is {}; use 1..=10000000",
                self.apps
            )));
        }
        if self.start < earliest {
            return Err(GenError::Config(format!(
                "start {} is before 2020-01-01; ingest rejects such timestamps",
                self.start
            )));
        }
        if self
            .start
            .checked_add_days(Days::new(u64::from(self.days)))
            .is_none()
        {
            return Err(GenError::Config("the period runs past the calendar".into()));
        }
        Ok(())
    }
}

impl Default for GenConfig {
    /// The demo: 8 weeks ending on the last Sunday before today (UTC), 3,000 apps, 3 M events.
    fn default() -> Self {
        let today = Utc::now().date_naive();
        let back = match today.weekday().num_days_from_sunday() {
            0 => 7,
            n => n,
        };
        GenConfig::weeks_ending(today - Days::new(u64::from(back)), 8)
    }
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error("invalid generator config: {0}")]
    Config(String),
    #[error(transparent)]
    Ingest(#[from] modelshare_ingest::IngestError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("manifest {path}: {source}")]
    Manifest {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("a generator thread panicked")]
    WorkerPanicked,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_is_eight_weeks_ending_on_a_sunday_before_today() {
        let cfg = GenConfig::default();
        assert_eq!(cfg.days, 56);
        assert_eq!(cfg.end().weekday(), chrono::Weekday::Sun);
        assert_eq!(cfg.start.weekday(), chrono::Weekday::Mon);
        let today = Utc::now().date_naive();
        assert!(cfg.end() < today && today - cfg.end() <= chrono::Duration::days(7));
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn weeks_ending_counts_inclusive_days() {
        let end = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let cfg = GenConfig::weeks_ending(end, 8);
        assert_eq!(cfg.start, NaiveDate::from_ymd_opt(2026, 9, 28).unwrap());
        assert_eq!(cfg.end(), end);
    }

    #[test]
    fn validation_names_the_problem() {
        let mut cfg = GenConfig::weeks_ending(NaiveDate::from_ymd_opt(2026, 11, 22).unwrap(), 1);
        cfg.days = 0;
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("days is 0")
        );
        cfg.days = 7;
        cfg.start = NaiveDate::from_ymd_opt(2019, 5, 1).unwrap();
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("before 2020-01-01")
        );
    }
}

//! Strict query-string parsing: unknown parameters, repeated parameters and bad values are
//! errors that name the parameter and list what is accepted.

use crate::ApiError;
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use chrono::NaiveDate;
use std::collections::HashMap;
use std::str::FromStr;

/// A provider as a parameter: an event's `provider` identifier, checked with the events' rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderName(pub String);

impl FromStr for ProviderName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        modelshare_event::parse::check_identifier(s)?;
        Ok(ProviderName(s.to_owned()))
    }
}

/// Earliest and latest dates a parameter may name.
pub const MIN_DATE: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
pub const MAX_DATE: NaiveDate = NaiveDate::from_ymd_opt(9999, 12, 31).expect("valid date");

/// Parsed query parameters of one request.
#[derive(Debug)]
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Checks names against `accepted` and rejects repeats.
    pub fn new(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        accepted: &[&str],
    ) -> Result<Params, ApiError> {
        let Query(pairs) = query
            .map_err(|e| ApiError::InvalidParameter(format!("malformed query string: {e}")))?;
        let mut values = HashMap::new();
        for (k, v) in pairs {
            if !accepted.contains(&k.as_str()) {
                return Err(ApiError::InvalidParameter(format!(
                    "unknown parameter {k:?}; accepted: {}",
                    accepted.join(", ")
                )));
            }
            if values.insert(k.clone(), v).is_some() {
                return Err(ApiError::InvalidParameter(format!(
                    "parameter {k:?} given twice"
                )));
            }
        }
        Ok(Params { values })
    }

    /// The parsed value of `name`, or `None` when absent or empty.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        match self
            .values
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|e| ApiError::InvalidParameter(format!("{name}: {e}"))),
        }
    }

    /// A `YYYY-MM-DD` date parameter.
    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, ApiError> {
        match self
            .values
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            None => Ok(None),
            Some(v) => {
                let date = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
                    ApiError::InvalidParameter(format!("{name}: {v:?} is not a date (YYYY-MM-DD)"))
                })?;
                // Periods, windows and their predecessors are computed by date arithmetic;
                // bounding the input keeps all of it far from chrono's limits.
                if !(MIN_DATE..=MAX_DATE).contains(&date) {
                    return Err(ApiError::InvalidParameter(format!(
                        "{name}: {v:?} is outside {MIN_DATE}..={MAX_DATE}"
                    )));
                }
                Ok(Some(date))
            }
        }
    }

    /// An integer parameter within `min..=max`, with a default.
    pub fn bounded(
        &self,
        name: &str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ApiError> {
        let v = self.get::<usize>(name)?.unwrap_or(default);
        if !(min..=max).contains(&v) {
            return Err(ApiError::InvalidParameter(format!(
                "{name}: {v} is outside {min}..={max}"
            )));
        }
        Ok(v)
    }
}

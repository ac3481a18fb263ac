//! The outcome of a routed request.

use crate::task::closed_vocabulary;
use std::fmt;
use std::str::FromStr;

closed_vocabulary!(
    /// How the request ended. Only `ok` requests count towards usage share.
    Status, "status", {
        Ok => "ok",
        Error => "error",
        Timeout => "timeout",
        RateLimited => "rate_limited",
        Cancelled => "cancelled",
        ContentFiltered => "content_filtered",
    }
);

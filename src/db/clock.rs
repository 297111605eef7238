//! Time as the database stores it.

use std::time::Duration;

/// A configured duration as a time span; durations are bounded at start-up (ten years), so
/// the saturation never shows.
pub fn span(duration: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(duration).unwrap_or(chrono::TimeDelta::MAX)
}

/// The current time as stored: UTC, truncated to microseconds, which PostgreSQL keeps and
/// SQLite would otherwise exceed, so that a value read back equals the value written.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::{DurationRound, TimeDelta};
    let now = chrono::Utc::now().naive_utc();
    now.duration_trunc(TimeDelta::microseconds(1))
        .unwrap_or(now)
}

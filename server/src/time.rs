//! Conversions between stored UTC timestamps (naive, as both databases hold them) and API
//! timestamps (RFC 3339, UTC).

use chrono::{DateTime, NaiveDateTime, Utc};

/// A stored UTC timestamp as an API timestamp.
pub fn utc(stored: NaiveDateTime) -> DateTime<Utc> {
    stored.and_utc()
}

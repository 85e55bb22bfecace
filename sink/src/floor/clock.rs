//! The wall clock as the sink stamps samples and ages: milliseconds since the Unix epoch.
//!
//! Owns reading the clock only; what a time means belongs to the stage that reads it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

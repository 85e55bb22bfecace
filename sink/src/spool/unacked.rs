//! Since when a lane's oldest unacknowledged record has waited: set by the lane as it appends
//! and as its sender acknowledges, read by the fsync rounds of `spool.sync: interval`.
//!
//! Why: a record the endpoint has acknowledged needs no fsync, and while the endpoint keeps up
//! every record is acknowledged milliseconds after it is written. A round therefore leaves a
//! lane's files alone unless one of its records has waited at least half an interval
//! (`super::sync`): while the endpoint keeps up nothing is fsynced, and a segment deleted once
//! delivered, before the kernel's own writeback (after about 30 s), never reaches the disk. It
//! must not decide what is due; the rounds do.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When a lane's oldest record not yet acknowledged was written, if it has one.
#[derive(Debug, Default)]
pub struct Unacked {
    since: Mutex<Option<Instant>>,
}

impl Unacked {
    /// Stores when the oldest unacknowledged record was written (`None`: all acknowledged).
    pub fn set(&self, oldest: Option<Instant>) {
        *self.since.lock().expect("unacked lock") = oldest;
    }

    /// Whether a record has waited for its acknowledgement at least `grace` by `now`.
    pub fn waited(&self, now: Instant, grace: Duration) -> bool {
        let since = *self.since.lock().expect("unacked lock");
        since.is_some_and(|since| now.saturating_duration_since(since) >= grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_with_nothing_unacknowledged_never_waited() {
        let unacked = Unacked::default();
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(!unacked.waited(later, Duration::ZERO));
        let written = Instant::now();
        unacked.set(Some(written));
        assert!(unacked.waited(
            written + Duration::from_millis(500),
            Duration::from_millis(500)
        ));
        assert!(!unacked.waited(
            written + Duration::from_millis(499),
            Duration::from_millis(500)
        ));
        unacked.set(None);
        assert!(!unacked.waited(later, Duration::ZERO));
    }
}

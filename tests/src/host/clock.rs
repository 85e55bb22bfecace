//! The host's notion of time: the real wall clock, or a manual clock that tests advance.
//!
//! Owns only "what time is it"; firing ticks when time moves is the proxy's job.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A clock shared by every VM of a proxy (and usually by all proxies of a simulation).
#[derive(Clone, Debug)]
pub enum Clock {
    /// `SystemTime::now()`; ticks fire when the embedding code pumps the proxy.
    Real,
    /// Nanoseconds since the Unix epoch, moved only by [`Clock::advance`].
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A manual clock starting at the given time since the Unix epoch.
    pub fn manual_at(since_epoch: Duration) -> Clock {
        Clock::Manual(Arc::new(AtomicU64::new(since_epoch.as_nanos() as u64)))
    }

    /// A manual clock starting at the current wall-clock time (so timestamps look current to a
    /// real sink) and then moving only when advanced.
    pub fn manual_now() -> Clock {
        Clock::manual_at(real_now())
    }

    /// Current time in nanoseconds since the Unix epoch.
    pub fn now_nanos(&self) -> u64 {
        match self {
            Clock::Real => real_now().as_nanos() as u64,
            Clock::Manual(nanos) => nanos.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward. A real clock cannot be moved: that is a caller bug.
    pub fn advance(&self, by: Duration) {
        match self {
            Clock::Real => panic!("a real clock cannot be advanced; use Clock::manual_now()"),
            Clock::Manual(nanos) => {
                nanos.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
            }
        }
    }
}

fn real_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("system clock is after 1970")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = Clock::manual_at(Duration::from_secs(10));
        assert_eq!(clock.now_nanos(), 10_000_000_000);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now_nanos(), 11_500_000_000);
        let shared = clock.clone();
        shared.advance(Duration::from_secs(1));
        assert_eq!(clock.now_nanos(), 12_500_000_000);
    }
}

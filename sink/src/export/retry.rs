//! Retry policy shared by every push exporter (remote-write, Loki): exponential backoff with
//! jitter, `Retry-After` parsing, and the three outcomes of one POST.
//!
//! Owns timing decisions only; it never sends requests nor decides what a status code means
//! (each exporter's client does).

use std::time::{Duration, SystemTime};

use rand::Rng;

/// What became of one POST.
#[derive(Debug, PartialEq)]
pub enum SendOutcome {
    Delivered,
    /// 5xx, network error, or a rate-limit answer that is retried; `retry_after` from the
    /// answer's header.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// An answer that retrying cannot fix: never retried.
    Refused {
        status: u16,
        body: String,
    },
}

/// Exponential backoff: each delay doubles up to the maximum, with ±25% jitter, and never
/// leaves `[min, max]`.
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(self.max);
        let jitter = rand::rng().random_range(0.75..=1.25);
        base.mul_f64(jitter).clamp(self.min, self.max)
    }

    /// The next delay, at least `retry_after` when the server asked for one.
    pub fn delay_for(&mut self, retry_after: Option<Duration>) -> Duration {
        let delay = self.next_delay();
        retry_after.map_or(delay, |after| delay.max(after))
    }
}

/// Parses `Retry-After` as delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_maximum_and_stays_in_bounds() {
        let min = Duration::from_millis(30);
        let max = Duration::from_secs(5);
        let mut b = Backoff::new(min, max);
        let delays: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d >= min && *d <= max));
        assert!(delays[0] <= Duration::from_millis(38));
        assert!(delays[19] >= Duration::from_millis(3750));
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut b = Backoff::new(Duration::from_millis(30), Duration::from_secs(5));
        assert_eq!(
            b.delay_for(Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert!(b.delay_for(None) <= Duration::from_millis(75));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}

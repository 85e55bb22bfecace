//! Retry policy shared by every push exporter (remote-write, Loki): exponential backoff with
//! jitter, `Retry-After` parsing, the three outcomes of one POST, and the loop that repeats a
//! push until it is answered for good ([`push_until_answered`]).
//!
//! Owns timing decisions and the retry log line only; it never builds requests nor decides what
//! a status code means (each exporter's client does) or what an answer counts (each exporter's
//! metrics).

use std::future::Future;
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

/// How a push that was retried until answered ended.
#[derive(Debug, PartialEq)]
pub enum FinalAnswer {
    Delivered,
    /// An answer that retrying cannot fix (see [`SendOutcome::Refused`]).
    Refused {
        status: u16,
        body: String,
    },
}

/// One push repeated until the endpoint answers it for good: what each attempt sends and what a
/// retried attempt counts.
pub trait RetriedPush {
    /// The endpoint's name, for the retry log line.
    fn endpoint(&self) -> &str;
    /// Sends attempt number `attempt` (0 for the first); `None` when nothing is left to send.
    fn send(&mut self, attempt: u32) -> impl Future<Output = Option<SendOutcome>> + Send;
    /// Counts one attempt that failed and will be retried.
    fn count_retry(&mut self);
}

/// Sends `push` until it is delivered or refused; after each retryable failure it logs that
/// `what` failed (endpoint, attempt, delay, reason) and sleeps `backoff`'s next delay, at least
/// the answer's `Retry-After`. Retries forever (the caller bounds the time, for example at
/// shutdown); `None` when nothing was left to send.
pub async fn push_until_answered(
    push: &mut impl RetriedPush,
    mut backoff: Backoff,
    what: &str,
) -> Option<FinalAnswer> {
    let mut attempt: u32 = 0;
    loop {
        match push.send(attempt).await? {
            SendOutcome::Delivered => return Some(FinalAnswer::Delivered),
            SendOutcome::Refused { status, body } => {
                return Some(FinalAnswer::Refused { status, body })
            }
            SendOutcome::Retry {
                reason,
                retry_after,
            } => {
                push.count_retry();
                let delay = backoff.delay_for(retry_after);
                tracing::warn!(
                    endpoint = %push.endpoint(),
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    %reason,
                    "{what} failed; retrying"
                );
                tokio::time::sleep(delay).await;
                attempt = attempt.saturating_add(1);
            }
        }
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

    /// Answers attempts from a script, counting retries.
    struct Scripted {
        answers: Vec<SendOutcome>,
        attempts: Vec<u32>,
        retries: u32,
    }

    impl RetriedPush for Scripted {
        fn endpoint(&self) -> &str {
            "scripted"
        }
        async fn send(&mut self, attempt: u32) -> Option<SendOutcome> {
            self.attempts.push(attempt);
            (!self.answers.is_empty()).then(|| self.answers.remove(0))
        }
        fn count_retry(&mut self) {
            self.retries += 1;
        }
    }

    fn retry(after: Option<Duration>) -> SendOutcome {
        SendOutcome::Retry {
            reason: "HTTP 503".into(),
            retry_after: after,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_retries_until_an_answer_for_good_and_honours_retry_after() {
        let mut push = Scripted {
            answers: vec![
                retry(None),
                retry(Some(Duration::from_secs(3))),
                SendOutcome::Refused {
                    status: 400,
                    body: "bad".into(),
                },
            ],
            attempts: Vec::new(),
            retries: 0,
        };
        let start = tokio::time::Instant::now();
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
        let answer = push_until_answered(&mut push, backoff, "scripted push").await;
        assert_eq!(
            answer,
            Some(FinalAnswer::Refused {
                status: 400,
                body: "bad".into()
            })
        );
        assert_eq!(push.attempts, [0, 1, 2]);
        assert_eq!(push.retries, 2);
        assert!(start.elapsed() >= Duration::from_secs(3));

        let mut empty = Scripted {
            answers: Vec::new(),
            attempts: Vec::new(),
            retries: 0,
        };
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
        assert_eq!(push_until_answered(&mut empty, backoff, "x").await, None);
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

//! The phase an HTTP/1 connection is in (idle, reading a request head, serving, answering) and
//! the deadline that phase gives it.
//!
//! Owns the phase bookkeeping only: the connection's reads and its service report the
//! transitions, and the connection's driver closes it when [`ConnectionClock::expired`] says so.

use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::Timeouts;
use super::metrics::TimeoutPhase;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// A kept-alive connection waiting for the first byte of its next request.
    Idle { since: Instant },
    /// A new connection, or part of a request head has arrived.
    Head { since: Instant },
    /// The request is being handled; its body has a limit of its own.
    Serving,
    /// The answer is being written.
    Answering { since: Instant },
}

/// The phase of one connection, shared by its reads, its service and its driver.
#[derive(Debug)]
pub struct ConnectionClock {
    timeouts: Timeouts,
    phase: Mutex<Phase>,
    /// Woken when the deadline may have come closer.
    sooner: Notify,
}

impl ConnectionClock {
    /// A connection just accepted: its first request head is due within the header limit.
    pub fn new(timeouts: Timeouts) -> ConnectionClock {
        ConnectionClock {
            timeouts,
            phase: Mutex::new(Phase::Head {
                since: Instant::now(),
            }),
            sooner: Notify::new(),
        }
    }

    fn set(&self, phase: Phase, deadline_sooner: bool) {
        *self.phase.lock().expect("connection clock") = phase;
        if deadline_sooner {
            self.sooner.notify_one();
        }
    }

    /// Bytes were read: on an idle connection, a request head starts.
    pub fn bytes_received(&self) {
        let mut phase = self.phase.lock().expect("connection clock");
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Head {
                since: Instant::now(),
            };
            drop(phase);
            self.sooner.notify_one();
        }
    }

    /// A request head was parsed and handed to the service.
    pub fn serving(&self) {
        self.set(Phase::Serving, false);
    }

    /// The service produced its answer.
    pub fn answering(&self) {
        let since = Instant::now();
        self.set(Phase::Answering { since }, true);
    }

    /// The answer was written: the connection waits for its next request.
    pub fn answered(&self) {
        let since = Instant::now();
        self.set(Phase::Idle { since }, false);
    }

    /// When the current phase runs out, and what it counts as then; `None` while serving.
    pub fn deadline(&self) -> Option<(Instant, TimeoutPhase)> {
        let t = &self.timeouts;
        match *self.phase.lock().expect("connection clock") {
            Phase::Idle { since } | Phase::Answering { since } => {
                Some((since + t.idle, TimeoutPhase::Idle))
            }
            Phase::Head { since } => Some((since + t.header_read, TimeoutPhase::Header)),
            Phase::Serving => None,
        }
    }

    /// The phase whose deadline has passed, if any.
    pub fn expired(&self) -> Option<TimeoutPhase> {
        self.deadline()
            .filter(|(at, _)| *at <= Instant::now())
            .map(|(_, phase)| phase)
    }

    /// Resolves when a transition may have brought the deadline closer.
    pub async fn deadline_moved(&self) {
        self.sooner.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TIMEOUTS: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        body_read: Duration::from_secs(30),
        idle: Duration::from_secs(90),
    };

    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_own_deadline() {
        let start = Instant::now();
        let clock = ConnectionClock::new(TIMEOUTS);
        // A new connection owes its first head; bytes of it do not extend the limit.
        let first_head = Some((start + TIMEOUTS.header_read, TimeoutPhase::Header));
        assert_eq!(clock.deadline(), first_head);
        tokio::time::advance(Duration::from_secs(5)).await;
        clock.bytes_received();
        assert_eq!(clock.deadline(), first_head);
        clock.serving();
        assert_eq!(clock.deadline(), None);
        // Body bytes do not start a head.
        clock.bytes_received();
        assert_eq!(clock.deadline(), None);
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(clock.expired(), None);
        clock.answering();
        let answer = Some((start + Duration::from_secs(195), TimeoutPhase::Idle));
        assert_eq!(clock.deadline(), answer);
        tokio::time::advance(Duration::from_secs(1)).await;
        clock.answered();
        assert_eq!(
            clock.deadline(),
            Some((start + Duration::from_secs(196), TimeoutPhase::Idle))
        );
        tokio::time::advance(Duration::from_secs(50)).await;
        clock.bytes_received();
        assert_eq!(
            clock.deadline(),
            Some((start + Duration::from_secs(166), TimeoutPhase::Header))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_started_on_an_idle_connection_wakes_the_driver() {
        let clock = ConnectionClock::new(TIMEOUTS);
        clock.serving();
        clock.answering();
        clock.answered();
        assert_eq!(clock.expired(), None);
        // Consume the wake-up of `answering`.
        clock.deadline_moved().await;
        clock.bytes_received();
        tokio::time::timeout(Duration::from_millis(1), clock.deadline_moved())
            .await
            .expect("the driver is told");
        tokio::time::advance(TIMEOUTS.header_read).await;
        assert_eq!(clock.expired(), Some(TimeoutPhase::Header));
    }
}

//! Connection accounting of the HTTP listeners and its rendering on `/metrics`.
//!
//! Owns the `meshtap_sink_http_*` metric names; the listeners and connections only bump the
//! atomics.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::ops::metrics::{header, MetricsSection};

/// The phase of a connection that took too long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// A request head not received within `serve.header_read_timeout` of its first byte.
    Header,
    /// A request body not received within `serve.body_read_timeout` of its head.
    Body,
    /// No request, or an answer not taken, within `serve.idle_timeout`.
    Idle,
}

impl TimeoutPhase {
    const ALL: [TimeoutPhase; 3] = [TimeoutPhase::Header, TimeoutPhase::Body, TimeoutPhase::Idle];

    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutPhase::Header => "header",
            TimeoutPhase::Body => "body",
            TimeoutPhase::Idle => "idle",
        }
    }
}

/// The counters of one listener, named after its config key (`listen`, `ops_listen`).
#[derive(Debug)]
pub struct ListenerMetrics {
    pub listener: &'static str,
    /// The listener's connection limit.
    pub limit: u64,
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    /// Connections closed at once because `open` was at `limit`.
    pub refused: AtomicU64,
    /// `accept` failures (such as running out of descriptors).
    pub accept_errors: AtomicU64,
    timeouts: [AtomicU64; 3],
}

impl ListenerMetrics {
    pub fn new(listener: &'static str, limit: usize) -> ListenerMetrics {
        ListenerMetrics {
            listener,
            limit: limit as u64,
            open: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            timeouts: Default::default(),
        }
    }

    pub fn count_timeout(&self, phase: TimeoutPhase) {
        self.timeouts[phase as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn timeouts(&self, phase: TimeoutPhase) -> u64 {
        self.timeouts[phase as usize].load(Ordering::Relaxed)
    }
}

/// The `/metrics` block of every listener.
#[derive(Debug)]
pub struct ServeMetrics(pub Vec<Arc<ListenerMetrics>>);

type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ListenerMetrics) -> u64,
);

const FAMILIES: [Family; 5] = [
    (
        "meshtap_sink_http_connections_open",
        "gauge",
        "Connections being served, by listener.",
        |l| l.open.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_http_connections_limit",
        "gauge",
        "Connections a listener serves at once (serve.max_connections, serve.ops_max_connections).",
        |l| l.limit,
    ),
    (
        "meshtap_sink_http_connections_accepted_total",
        "counter",
        "Connections accepted and served.",
        |l| l.accepted.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_http_connections_refused_total",
        "counter",
        "Connections closed at once because the listener was at its limit.",
        |l| l.refused.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_http_accept_errors_total",
        "counter",
        "Failed accepts (such as running out of file descriptors).",
        |l| l.accept_errors.load(Ordering::Relaxed),
    ),
];

impl MetricsSection for ServeMetrics {
    fn render(&self, out: &mut String) {
        for (name, kind, help, value) in FAMILIES {
            header(out, name, kind, help);
            for l in &self.0 {
                let _ = writeln!(out, "{name}{{listener=\"{}\"}} {}", l.listener, value(l));
            }
        }
        let name = "meshtap_sink_http_timeouts_total";
        header(
            out,
            name,
            "counter",
            "Connections closed, or requests answered 408 (body), for being too slow, by phase.",
        );
        for l in &self.0 {
            for phase in TimeoutPhase::ALL {
                let _ = writeln!(
                    out,
                    "{name}{{listener=\"{}\",phase=\"{}\"}} {}",
                    l.listener,
                    phase.as_str(),
                    l.timeouts(phase)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listener_gets_every_family() {
        let report = Arc::new(ListenerMetrics::new("listen", 128));
        let ops = Arc::new(ListenerMetrics::new("ops_listen", 16));
        report.refused.fetch_add(3, Ordering::Relaxed);
        report.count_timeout(TimeoutPhase::Body);
        ops.open.fetch_add(1, Ordering::Relaxed);
        let mut out = String::new();
        ServeMetrics(vec![report, ops]).render(&mut out);
        for line in [
            "meshtap_sink_http_connections_limit{listener=\"listen\"} 128",
            "meshtap_sink_http_connections_limit{listener=\"ops_listen\"} 16",
            "meshtap_sink_http_connections_refused_total{listener=\"listen\"} 3",
            "meshtap_sink_http_connections_open{listener=\"ops_listen\"} 1",
            "meshtap_sink_http_timeouts_total{listener=\"listen\",phase=\"body\"} 1",
            "meshtap_sink_http_timeouts_total{listener=\"listen\",phase=\"header\"} 0",
            "# TYPE meshtap_sink_http_timeouts_total counter",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
    }
}

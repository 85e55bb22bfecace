//! Delivery accounting of one Loki endpoint and its Prometheus text rendering on `/metrics`.
//!
//! Owns the `meshtap_sink_log_*` metric names; the sender and the tailer only bump the atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::ops::metrics::{
    render_dropped_by_reason, render_endpoint_families, EndpointFamily, MetricsSection,
};

/// Why log entries were dropped before delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogDropReason {
    /// The endpoint's queue of filter-shipped entries was full.
    QueueFull,
    /// Longer than `batch.max_line_bytes` with `oversize_lines: drop`.
    Oversize,
    /// Stream labels Loki would refuse (for example an over-long pod name).
    BadLabels,
    /// Still queued when the shutdown deadline passed.
    Shutdown,
}

impl LogDropReason {
    const ALL: [LogDropReason; 4] = [
        LogDropReason::QueueFull,
        LogDropReason::Oversize,
        LogDropReason::BadLabels,
        LogDropReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogDropReason::QueueFull => "queue_full",
            LogDropReason::Oversize => "oversize",
            LogDropReason::BadLabels => "bad_labels",
            LogDropReason::Shutdown => "shutdown",
        }
    }
}

/// Counters of one `logs[]` endpoint.
#[derive(Debug)]
pub struct LokiEndpointMetrics {
    pub name: String,
    /// Entries in pushes Loki acknowledged with 2xx.
    pub entries_sent: AtomicU64,
    /// Entries in pushes refused without retry (a 400 is a partial success: some were kept).
    pub entries_refused: AtomicU64,
    /// Entries in attempts that failed and were retried.
    pub entries_retried: AtomicU64,
    /// Lines cut to `batch.max_line_bytes`.
    pub lines_truncated: AtomicU64,
    /// Entries whose structured metadata was over Loki's limits and left out.
    pub metadata_stripped: AtomicU64,
    /// Filter-shipped entries waiting in the queue.
    pub queued_entries: AtomicU64,
    /// Bytes of the endpoint's spool files (0 without a spool).
    pub spool_bytes: AtomicU64,
    dropped: [AtomicU64; 4],
}

impl LokiEndpointMetrics {
    pub fn new(name: &str) -> LokiEndpointMetrics {
        LokiEndpointMetrics {
            name: name.to_owned(),
            entries_sent: AtomicU64::new(0),
            entries_refused: AtomicU64::new(0),
            entries_retried: AtomicU64::new(0),
            lines_truncated: AtomicU64::new(0),
            metadata_stripped: AtomicU64::new(0),
            queued_entries: AtomicU64::new(0),
            spool_bytes: AtomicU64::new(0),
            dropped: Default::default(),
        }
    }

    pub fn add_dropped(&self, reason: LogDropReason, entries: u64) {
        self.dropped[reason as usize].fetch_add(entries, Ordering::Relaxed);
    }

    pub fn dropped(&self, reason: LogDropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }
}

/// The `/metrics` section of every Loki endpoint.
#[derive(Debug, Default)]
pub struct LokiMetricsSection {
    pub endpoints: Vec<Arc<LokiEndpointMetrics>>,
}

impl MetricsSection for LokiMetricsSection {
    fn render(&self, out: &mut String) {
        let named: Vec<(&str, &LokiEndpointMetrics)> = self
            .endpoints
            .iter()
            .map(|e| (e.name.as_str(), &**e))
            .collect();
        render_endpoint_families(out, &LOKI_FAMILIES, &named);
        render_dropped_by_reason(
            out,
            "meshtap_sink_log_entries_dropped_total",
            "Log entries dropped before delivery, by reason.",
            self.endpoints.iter().flat_map(|e| {
                LogDropReason::ALL
                    .map(|reason| (e.name.as_str(), reason.as_str(), e.dropped(reason)))
            }),
        );
    }
}

/// The Loki endpoints' families with one series per endpoint.
const LOKI_FAMILIES: [EndpointFamily<LokiEndpointMetrics>; 7] = [
    (
        "meshtap_sink_log_entries_sent_total",
        "counter",
        "Log entries Loki acknowledged.",
        |e| e.entries_sent.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_log_entries_refused_total",
        "counter",
        "Log entries in pushes Loki refused without retry (400 = partial success).",
        |e| e.entries_refused.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_log_entries_retried_total",
        "counter",
        "Log entries in attempts that failed and were retried.",
        |e| e.entries_retried.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_log_lines_truncated_total",
        "counter",
        "Log lines cut to batch.max_line_bytes.",
        |e| e.lines_truncated.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_log_metadata_stripped_total",
        "counter",
        "Log entries sent without their structured metadata (over Loki's limits).",
        |e| e.metadata_stripped.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_log_queue_entries",
        "gauge",
        "Filter-shipped log entries waiting to be sent.",
        |e| e.queued_entries.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_log_spool_bytes",
        "gauge",
        "Bytes of the endpoint's spool files of filter-shipped pushes (0 without a spool).",
        |e| e.spool_bytes.load(Ordering::Relaxed),
    ),
];

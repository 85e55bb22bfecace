//! Self-monitoring counters and gauges, rendered in the Prometheus text format on `/metrics`.
//!
//! Owns the metric names and their text rendering. Other stages only bump the atomics defined
//! here; this module must not reach into queues or trackers itself.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use meshtap_report::FilterStats;

use crate::floor::ReporterKey;

/// Outcome of one `POST /v1/reports`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportResult {
    Accepted,
    Unauthorized,
    TooLarge,
    BadBody,
    Invalid,
    OutOfOrder,
    /// Answered 503: an endpoint could not keep the samples (full, or its spool failing).
    NotStored,
    /// Refused by `ingest.verify_identity` (403).
    Forbidden,
}

impl ReportResult {
    const ALL: [ReportResult; 8] = [
        ReportResult::Accepted,
        ReportResult::Unauthorized,
        ReportResult::TooLarge,
        ReportResult::BadBody,
        ReportResult::Invalid,
        ReportResult::OutOfOrder,
        ReportResult::NotStored,
        ReportResult::Forbidden,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportResult::Accepted => "accepted",
            ReportResult::Unauthorized => "unauthorized",
            ReportResult::TooLarge => "too_large",
            ReportResult::BadBody => "bad_body",
            ReportResult::Invalid => "invalid",
            ReportResult::OutOfOrder => "out_of_order",
            ReportResult::NotStored => "not_stored",
            ReportResult::Forbidden => "forbidden",
        }
    }
}

/// Why samples were dropped before delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The endpoint's queue was at capacity; the oldest batch made room.
    QueueFull,
    /// Older than `max_sample_age` while retrying.
    TooOld,
    /// Still queued when the shutdown deadline passed (and not kept in a spool).
    Shutdown,
    /// In a spool record that could not be read back.
    SpoolUnreadable,
}

impl DropReason {
    const ALL: [DropReason; 4] = [
        DropReason::QueueFull,
        DropReason::TooOld,
        DropReason::Shutdown,
        DropReason::SpoolUnreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::TooOld => "too_old",
            DropReason::Shutdown => "shutdown",
            DropReason::SpoolUnreadable => "spool_unreadable",
        }
    }
}

/// Queue gauges of one lane, kept current by the lane.
#[derive(Debug)]
pub struct LaneGauges {
    /// Samples pending, queued or in flight.
    pub queued_samples: AtomicU64,
    /// Timestamp (ms) of the oldest unsent sample, `i64::MAX` when none.
    pub oldest_unsent_ms: AtomicI64,
    /// Bytes of the lane's spool files (0 without a spool).
    pub spool_bytes: AtomicU64,
}

impl Default for LaneGauges {
    fn default() -> Self {
        LaneGauges {
            queued_samples: AtomicU64::new(0),
            oldest_unsent_ms: AtomicI64::new(i64::MAX),
            spool_bytes: AtomicU64::new(0),
        }
    }
}

/// Delivery accounting of one remote-write endpoint.
#[derive(Debug)]
pub struct EndpointMetrics {
    pub name: String,
    pub samples_sent: AtomicU64,
    /// Samples refused with a non-retryable answer (4xx other than retried 429/529).
    pub samples_failed: AtomicU64,
    /// Samples in attempts that failed and were retried.
    pub samples_retried: AtomicU64,
    /// Samples of series the endpoint's `write_relabel_configs` drop (never queued).
    pub samples_relabel_dropped: AtomicU64,
    dropped: [AtomicU64; 4],
    pub metadata_sent: AtomicU64,
    pub metadata_failed: AtomicU64,
    /// Spool appends the disk refused (the batch waited in memory).
    pub spool_write_errors: AtomicU64,
    /// Spool records that could not be read back.
    pub spool_skipped_records: AtomicU64,
    pub lanes: Vec<LaneGauges>,
}

impl EndpointMetrics {
    pub fn new(name: &str, lanes: usize) -> EndpointMetrics {
        EndpointMetrics {
            name: name.to_owned(),
            samples_sent: AtomicU64::new(0),
            samples_failed: AtomicU64::new(0),
            samples_retried: AtomicU64::new(0),
            samples_relabel_dropped: AtomicU64::new(0),
            dropped: Default::default(),
            metadata_sent: AtomicU64::new(0),
            metadata_failed: AtomicU64::new(0),
            spool_write_errors: AtomicU64::new(0),
            spool_skipped_records: AtomicU64::new(0),
            lanes: (0..lanes).map(|_| LaneGauges::default()).collect(),
        }
    }

    pub fn add_dropped(&self, reason: DropReason, samples: u64) {
        self.dropped[reason as usize].fetch_add(samples, Ordering::Relaxed);
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize].load(Ordering::Relaxed)
    }

    /// Samples pending, queued or in flight over all lanes.
    pub fn queued_samples(&self) -> u64 {
        self.lanes
            .iter()
            .map(|l| l.queued_samples.load(Ordering::Relaxed))
            .sum()
    }

    fn oldest_unsent_ms(&self) -> Option<i64> {
        self.lanes
            .iter()
            .map(|l| l.oldest_unsent_ms.load(Ordering::Relaxed))
            .min()
            .filter(|ms| *ms != i64::MAX)
    }
}

/// All of the sink's self-metrics.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    reports: [AtomicU64; ReportResult::ALL.len()],
    pub samples_ingested: AtomicU64,
    pub stale_markers: AtomicU64,
    pub active_pods: AtomicU64,
    reporters: Mutex<BTreeMap<ReporterKey, FilterStats>>,
    endpoints: Mutex<Vec<Arc<EndpointMetrics>>>,
    sections: Mutex<Vec<Arc<dyn MetricsSection>>>,
}

/// A stage's own block of `/metrics` (names, HELP/TYPE and samples), appended after the
/// sink's core metrics.
pub trait MetricsSection: std::fmt::Debug + Send + Sync {
    fn render(&self, out: &mut String);
}

/// A label value escaped for the text format.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The `# HELP` and `# TYPE` lines of a family.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One per-endpoint family: name, TYPE, HELP, and how to read its value from an endpoint.
pub type EndpointFamily<T> = (&'static str, &'static str, &'static str, fn(&T) -> u64);

/// Renders `families` with one `{endpoint="<name>"}` series per `(name, endpoint)`.
pub fn render_endpoint_families<T>(
    out: &mut String,
    families: &[EndpointFamily<T>],
    endpoints: &[(&str, &T)],
) {
    for (name, kind, help, value) in families {
        header(out, name, kind, help);
        for (endpoint, e) in endpoints {
            let _ = writeln!(
                out,
                "{name}{{endpoint=\"{}\"}} {}",
                escape(endpoint),
                value(e)
            );
        }
    }
}

/// Renders the counter `name` with one `{endpoint, reason}` series per
/// `(endpoint, reason, value)` row.
pub fn render_dropped_by_reason<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (&'a str, &'a str, u64)>,
) {
    header(out, name, "counter", help);
    for (endpoint, reason, value) in rows {
        let _ = writeln!(
            out,
            "{name}{{endpoint=\"{}\",reason=\"{reason}\"}} {value}",
            escape(endpoint)
        );
    }
}

impl SinkMetrics {
    pub fn count_report(&self, result: ReportResult) {
        self.reports[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn reports(&self, result: ReportResult) -> u64 {
        self.reports[result as usize].load(Ordering::Relaxed)
    }

    /// Records the filter's own accounting from a reporter's latest report.
    pub fn set_reporter_stats(&self, reporter: &ReporterKey, stats: FilterStats) {
        let mut reporters = self.reporters.lock().expect("metrics lock");
        match reporters.get_mut(reporter) {
            Some(slot) => *slot = stats,
            None => {
                reporters.insert(reporter.clone(), stats);
            }
        }
    }

    /// Forgets a reporter that went silent.
    pub fn remove_reporter(&self, reporter: &ReporterKey) {
        self.reporters
            .lock()
            .expect("metrics lock")
            .remove(reporter);
    }

    /// Registers an endpoint whose accounting `/metrics` shows.
    pub fn add_endpoint(&self, endpoint: Arc<EndpointMetrics>) {
        self.endpoints.lock().expect("metrics lock").push(endpoint);
    }

    /// Forgets an endpoint that left the config (its drain is logged, not shown).
    pub fn remove_endpoint(&self, endpoint: &Arc<EndpointMetrics>) {
        self.endpoints
            .lock()
            .expect("metrics lock")
            .retain(|e| !Arc::ptr_eq(e, endpoint));
    }

    /// Registers a stage's block of metrics.
    pub fn add_section(&self, section: Arc<dyn MetricsSection>) {
        self.sections.lock().expect("metrics lock").push(section);
    }

    /// The Prometheus text exposition of everything, `now_ms` being the wall clock (for lag).
    pub fn render(&self, now_ms: i64) -> String {
        let mut out = String::with_capacity(4096);
        header(
            &mut out,
            "meshtap_sink_reports_total",
            "counter",
            "Reports received, by result.",
        );
        for result in ReportResult::ALL {
            let _ = writeln!(
                out,
                "meshtap_sink_reports_total{{result=\"{}\"}} {}",
                result.as_str(),
                self.reports(result)
            );
        }
        let scalars = [
            (
                "meshtap_sink_samples_ingested_total",
                "counter",
                "Samples converted from accepted reports.",
                &self.samples_ingested,
            ),
            (
                "meshtap_sink_stale_markers_total",
                "counter",
                "Stale markers generated for series that went away.",
                &self.stale_markers,
            ),
            (
                "meshtap_sink_active_pods",
                "gauge",
                "Pods whose reports are being tracked.",
                &self.active_pods,
            ),
        ];
        for (name, kind, help, value) in scalars {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        self.render_pods(&mut out);
        self.render_endpoints(&mut out, now_ms);
        for section in self.sections.lock().expect("metrics lock").iter() {
            section.render(&mut out);
        }
        out
    }

    fn render_pods(&self, out: &mut String) {
        let reporters = self.reporters.lock().expect("metrics lock");
        for (name, kind, help, field) in POD_FAMILIES {
            header(out, name, kind, help);
            for (reporter, stats) in reporters.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{namespace=\"{}\",pod=\"{}\",channel=\"{}\"}} {}",
                    escape(&reporter.pod.namespace),
                    escape(&reporter.pod.pod),
                    escape(reporter.channel_label()),
                    field(stats)
                );
            }
        }
    }

    fn render_endpoints(&self, out: &mut String, now_ms: i64) {
        let endpoints = self.endpoints.lock().expect("metrics lock");
        let named: Vec<(&str, &EndpointMetrics)> =
            endpoints.iter().map(|e| (e.name.as_str(), &**e)).collect();
        render_endpoint_families(out, &ENDPOINT_FAMILIES, &named);
        render_dropped_by_reason(
            out,
            "meshtap_sink_samples_dropped_total",
            "Samples dropped before delivery, by reason.",
            endpoints.iter().flat_map(|e| {
                DropReason::ALL.map(|reason| (e.name.as_str(), reason.as_str(), e.dropped(reason)))
            }),
        );
        header(
            out,
            "meshtap_sink_queue_lag_seconds",
            "gauge",
            "Age of the oldest unsent sample (0 when nothing waits).",
        );
        for e in endpoints.iter() {
            let lag = e
                .oldest_unsent_ms()
                .map_or(0.0, |ms| (now_ms - ms).max(0) as f64 / 1000.0);
            let _ = writeln!(
                out,
                "meshtap_sink_queue_lag_seconds{{endpoint=\"{}\"}} {lag}",
                escape(&e.name)
            );
        }
    }
}

/// One family of the filters' own accounting: name, TYPE, HELP, and its field.
type PodFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&FilterStats) -> u64,
);

/// The filters' own accounting, one series per reporter.
const POD_FAMILIES: [PodFamily; 7] = [
    (
        "meshtap_filter_series_active",
        "gauge",
        "Label sets the pod's filter holds.",
        |s| s.series_active,
    ),
    (
        "meshtap_filter_series_limit",
        "gauge",
        "The pod's filter max_series.",
        |s| s.series_limit,
    ),
    (
        "meshtap_filter_overflow_observations_total",
        "counter",
        "Observations folded into the overflow series.",
        |s| s.overflow_observations,
    ),
    (
        "meshtap_filter_reports_failed_total",
        "counter",
        "Report posts the pod's filter saw fail.",
        |s| s.reports_failed,
    ),
    (
        "meshtap_filter_access_logs_dropped_total",
        "counter",
        "Access-log records the pod's filter could not ship (over its bound).",
        |s| s.access_logs_dropped,
    ),
    (
        "meshtap_filter_label_values_capped_total",
        "counter",
        "Label values the pod's filter recorded as \"other\" (label_limits).",
        |s| s.label_values_capped,
    ),
    (
        "meshtap_filter_series_evicted_total",
        "counter",
        "Label sets the pod's filter evicted after series_idle_timeout without change.",
        |s| s.series_evicted,
    ),
];

/// The remote-write endpoints' families with one series per endpoint.
const ENDPOINT_FAMILIES: [EndpointFamily<EndpointMetrics>; 11] = [
    (
        "meshtap_sink_samples_sent_total",
        "counter",
        "Samples the endpoint accepted.",
        |e| e.samples_sent.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_samples_failed_total",
        "counter",
        "Samples the endpoint refused with a non-retryable status.",
        |e| e.samples_failed.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_samples_retried_total",
        "counter",
        "Samples in attempts that failed and were retried.",
        |e| e.samples_retried.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_samples_relabel_dropped_total",
        "counter",
        "Samples of series the endpoint's write_relabel_configs drop (never queued).",
        |e| e.samples_relabel_dropped.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_metadata_sent_total",
        "counter",
        "Metadata requests the endpoint accepted.",
        |e| e.metadata_sent.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_metadata_failed_total",
        "counter",
        "Metadata requests that failed.",
        |e| e.metadata_failed.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_queue_samples",
        "gauge",
        "Samples waiting to be sent (pending, queued, in flight).",
        |e| e.queued_samples(),
    ),
    (
        "meshtap_sink_queue_lanes",
        "gauge",
        "Parallel sending lanes.",
        |e| e.lanes.len() as u64,
    ),
    (
        "meshtap_sink_spool_bytes",
        "gauge",
        "Bytes of the endpoint's spool files on disk (0 without a spool).",
        |e| {
            e.lanes
                .iter()
                .map(|l| l.spool_bytes.load(Ordering::Relaxed))
                .sum()
        },
    ),
    (
        "meshtap_sink_spool_write_errors_total",
        "counter",
        "Spool writes the disk refused (the batches waited in memory).",
        |e| e.spool_write_errors.load(Ordering::Relaxed),
    ),
    (
        "meshtap_sink_spool_skipped_records_total",
        "counter",
        "Spool records that could not be read back (their samples are dropped as spool_unreadable).",
        |e| e.spool_skipped_records.load(Ordering::Relaxed),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_pods_and_endpoint_lag() {
        let m = SinkMetrics::default();
        m.count_report(ReportResult::Accepted);
        m.count_report(ReportResult::Unauthorized);
        m.count_report(ReportResult::Unauthorized);
        m.set_reporter_stats(
            &ReporterKey {
                pod: crate::floor::PodKey::new("ns", "p\"1"),
                channel: String::new(),
            },
            FilterStats {
                series_active: 7,
                series_evicted: 4,
                ..Default::default()
            },
        );
        let e = Arc::new(EndpointMetrics::new("mimir", 2));
        e.add_dropped(DropReason::QueueFull, 5);
        e.lanes[1].queued_samples.store(3, Ordering::Relaxed);
        e.lanes[1].oldest_unsent_ms.store(1_000, Ordering::Relaxed);
        m.add_endpoint(e);
        let text = m.render(3_500);
        for line in [
            "meshtap_sink_reports_total{result=\"accepted\"} 1",
            "meshtap_sink_reports_total{result=\"unauthorized\"} 2",
            "meshtap_filter_series_active{namespace=\"ns\",pod=\"p\\\"1\",channel=\"http\"} 7",
            "meshtap_filter_series_evicted_total{namespace=\"ns\",pod=\"p\\\"1\",channel=\"http\"} 4",
            "meshtap_sink_samples_dropped_total{endpoint=\"mimir\",reason=\"queue_full\"} 5",
            "meshtap_sink_queue_samples{endpoint=\"mimir\"} 3",
            "meshtap_sink_queue_lag_seconds{endpoint=\"mimir\"} 2.5",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}

//! What happens to a decoded, validated report: conversion, the scrape merge (asked of
//! `crate::scrape::source_merge`), ordering and staleness per reporter, the view, per-reporter
//! filter stats and hand-off to export. Also the sweep of silent reporters.
//!
//! Owns the ordering of those steps (a pod's samples are queued under the tracker lock, so two
//! posts of one pod can never interleave out of order) and the rule that a report no endpoint
//! can keep is refused before anything about it is recorded. It knows nothing about HTTP.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use meshtap_report::Report;

use super::convert::report_to_samples;
use super::staleness::{Admission, ReportClock, StalenessTracker};
use crate::export::loki::LokiExporter;
use crate::export::receipt::Receipt;
use crate::export::remote_write::queue::Refusal;
use crate::export::remote_write::RemoteWriteExporter;
use crate::floor::{PodKey, ReporterKey};
use crate::ops::metrics::SinkMetrics;
use crate::scrape::source_merge::{is_filter_family, SourceMerge};
use crate::view::ViewTap;
use meshtap_remotewrite::series::{Sample, Text};

/// What became of a report.
pub enum Acceptance {
    /// Taken: its samples are kept as the receipt says (wait on it before answering).
    Accepted(Receipt),
    /// Not newer than the last report of its pod and channel: dropped (a late duplicate).
    OutOfOrder,
    /// Not taken, nothing recorded: `endpoint` cannot keep samples now.
    Refused { endpoint: String, why: Refusal },
}

/// The ingest stage behind the HTTP handler.
pub struct Ingestor {
    job: Text,
    tracker: Mutex<StalenessTracker>,
    exporter: Arc<RemoteWriteExporter>,
    view: Option<ViewTap>,
    metrics: Arc<SinkMetrics>,
    access_logs: Option<Arc<LokiExporter>>,
    source_merge: Option<Arc<SourceMerge>>,
}

impl Ingestor {
    pub fn new(
        job: &str,
        stale_after_intervals: u32,
        exporter: Arc<RemoteWriteExporter>,
        view: Option<ViewTap>,
        metrics: Arc<SinkMetrics>,
    ) -> Ingestor {
        Ingestor {
            job: Arc::from(job),
            tracker: Mutex::new(StalenessTracker::new(stale_after_intervals)),
            exporter,
            view,
            metrics,
            access_logs: None,
            source_merge: None,
        }
    }

    /// Also hands accepted reports' access-log records to `logs` (rendered and queued there).
    pub fn with_access_logs(mut self, logs: Arc<LokiExporter>) -> Ingestor {
        self.access_logs = Some(logs);
        self
    }

    /// Notes the pod every validated report names in its body with `merge`, and leaves out
    /// the report's `istio_*` series when the merge rule gives them to the scrape.
    pub fn with_source_merge(mut self, merge: Arc<SourceMerge>) -> Ingestor {
        self.source_merge = Some(merge);
        self
    }

    /// Accepts a validated report, or refuses it as out of order or because an endpoint
    /// cannot keep it.
    pub fn accept(&self, report: &Report) -> Acceptance {
        let proxy = report.proxy.as_ref().expect("validated report has a proxy");
        let pod = PodKey::new(&proxy.namespace, &proxy.pod);
        let samples = self.samples(report, &pod);
        // The HTTP and the network plugin of one pod report apart (own lifetime, sequence and
        // series), so order and staleness are tracked per (pod, channel).
        let reporter = ReporterKey {
            pod,
            channel: report.channel.clone(),
        };
        match self.queue_in_order(report, &reporter, &samples) {
            Acceptance::Accepted(mut receipt) => {
                self.record_accepted(report, &reporter, &samples, &mut receipt);
                Acceptance::Accepted(receipt)
            }
            not_taken => not_taken,
        }
    }

    /// The report's samples, without its `istio_*` series when the merge rule gives them to
    /// the scrape (noting the pod's report with the merge).
    fn samples(&self, report: &Report, pod: &PodKey) -> Vec<Sample> {
        let keeps_filter_families = self
            .source_merge
            .as_ref()
            .is_none_or(|merge| merge.note_report(pod, Instant::now()));
        let mut samples = report_to_samples(report, &self.job);
        if !keeps_filter_families {
            samples.retain(|s| !is_filter_family(&s.series.name));
        }
        samples
    }

    /// Under the tracker lock: refuses the report when an endpoint cannot keep it, drops it
    /// when it is not newer than the reporter's last, else queues its stale markers and
    /// samples.
    fn queue_in_order(
        &self,
        report: &Report,
        reporter: &ReporterKey,
        samples: &[Sample],
    ) -> Acceptance {
        let clock = ReportClock {
            proxy_start_ms: report.proxy_start_ms,
            timestamp_ms: report.timestamp_ms,
            interval_ms: report.interval_ms,
        };
        let mut tracker = self.tracker.lock().expect("tracker lock");
        // Checked under the lock, so no report of the pod is admitted in between.
        if let Some((endpoint, why)) = self.exporter.refusal() {
            return Acceptance::Refused {
                endpoint: endpoint.to_owned(),
                why,
            };
        }
        match tracker.admit(reporter.clone(), clock, samples, Instant::now()) {
            Admission::OutOfOrder { last_timestamp_ms } => {
                tracing::debug!(
                    namespace = %reporter.pod.namespace,
                    pod = %reporter.pod.pod,
                    channel = %reporter.channel_label(),
                    timestamp_ms = report.timestamp_ms,
                    last_timestamp_ms,
                    "dropped a report not newer than the last accepted one"
                );
                Acceptance::OutOfOrder
            }
            Admission::Accepted { stale_markers } => {
                self.exporter.observe_families(report);
                let mut receipt = self.exporter.enqueue(&stale_markers);
                receipt.merge(self.exporter.enqueue(samples));
                self.metrics
                    .stale_markers
                    .fetch_add(stale_markers.len() as u64, Ordering::Relaxed);
                self.metrics
                    .active_pods
                    .store(tracker.active_pods() as u64, Ordering::Relaxed);
                Acceptance::Accepted(receipt)
            }
        }
    }

    /// What an accepted report leaves besides its queued samples: counts, the filter's own
    /// stats, the view, and its access-log records (added to `receipt`).
    fn record_accepted(
        &self,
        report: &Report,
        reporter: &ReporterKey,
        samples: &[Sample],
        receipt: &mut Receipt,
    ) {
        self.metrics
            .samples_ingested
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        if let Some(stats) = &report.stats {
            self.metrics.set_reporter_stats(reporter, stats.clone());
        }
        if let Some(view) = &self.view {
            view.report(reporter, report, samples);
        }
        if let Some(logs) = &self.access_logs {
            logs.ship_access_logs(report, receipt);
        }
    }

    /// Sends stale markers for pods silent too long and forgets them. `now_ms` is the wall clock.
    pub fn sweep(&self, now: Instant, now_ms: i64) {
        let mut tracker = self.tracker.lock().expect("tracker lock");
        let silent = tracker.sweep(now, now_ms);
        for gone in &silent {
            let reporter = &gone.reporter;
            tracing::info!(
                namespace = %reporter.pod.namespace,
                pod = %reporter.pod.pod,
                channel = %reporter.channel_label(),
                series = gone.stale_markers.len(),
                "pod stopped reporting: series marked stale"
            );
            self.exporter.enqueue(&gone.stale_markers);
            self.metrics
                .stale_markers
                .fetch_add(gone.stale_markers.len() as u64, Ordering::Relaxed);
            self.metrics.remove_reporter(reporter);
            if let Some(view) = &self.view {
                view.reporter_gone(reporter);
            }
        }
        self.metrics
            .active_pods
            .store(tracker.active_pods() as u64, Ordering::Relaxed);
    }
}

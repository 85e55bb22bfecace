//! What happens to a decoded, validated report: conversion, the scrape merge (the pod the
//! report names is marked as reported; with `merge.prefer: scrape` a scraped pod's `istio_*`
//! series are left out), ordering and staleness, the view, per-pod
//! filter stats and hand-off to export. Also the sweep of silent pods.
//!
//! Owns the ordering of those steps (a pod's samples are queued under the tracker lock, so two
//! posts of one pod can never interleave out of order). It knows nothing about HTTP.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use meshtap_report::Report;

use super::convert::report_to_samples;
use crate::export::loki::LokiExporter;
use crate::export::Exporter;
use crate::ops::metrics::{ReportResult, SinkMetrics};
use crate::scrape::convert::is_filter_family;
use crate::scrape::merge::{ReportedPods, ScrapedPods};
use crate::series::Text;
use crate::staleness::{Admission, PodKey, ReportClock, StalenessTracker};
use crate::view::SummaryView;

/// The ingest stage behind the HTTP handler.
pub struct Ingestor {
    job: Text,
    tracker: Mutex<StalenessTracker>,
    exporter: Arc<Exporter>,
    view: Option<Arc<SummaryView>>,
    metrics: Arc<SinkMetrics>,
    access_logs: Option<Arc<LokiExporter>>,
    scraped_pods: Option<Arc<ScrapedPods>>,
    reported_pods: Option<Arc<ReportedPods>>,
}

impl Ingestor {
    pub fn new(
        job: &str,
        stale_after_intervals: u32,
        exporter: Arc<Exporter>,
        view: Option<Arc<SummaryView>>,
        metrics: Arc<SinkMetrics>,
    ) -> Ingestor {
        Ingestor {
            job: Arc::from(job),
            tracker: Mutex::new(StalenessTracker::new(stale_after_intervals)),
            exporter,
            view,
            metrics,
            access_logs: None,
            scraped_pods: None,
            reported_pods: None,
        }
    }

    /// Also hands accepted reports' access-log records to `logs` (rendered and queued there).
    pub fn with_access_logs(mut self, logs: Arc<LokiExporter>) -> Ingestor {
        self.access_logs = Some(logs);
        self
    }

    /// Leaves out the `istio_*` series of pods in `scraped` (`scrape.merge.prefer: scrape`);
    /// series already exported for such a pod get stale markers like any vanished series.
    pub fn with_scraped_pods(mut self, scraped: Arc<ScrapedPods>) -> Ingestor {
        self.scraped_pods = Some(scraped);
        self
    }

    /// Marks the pod every validated report names in its body as reported in `reported`
    /// (`scrape.merge.prefer: filter` drops that pod's scraped `istio_*` series).
    pub fn with_reported_pods(mut self, reported: Arc<ReportedPods>) -> Ingestor {
        self.reported_pods = Some(reported);
        self
    }

    /// Accepts a validated report, or refuses it as out of order.
    pub fn accept(&self, report: &Report) -> ReportResult {
        let proxy = report.proxy.as_ref().expect("validated report has a proxy");
        let scraped_pod: PodKey = (proxy.namespace.clone(), proxy.pod.clone());
        if let Some(reported) = &self.reported_pods {
            reported.record(scraped_pod.clone(), Instant::now());
        }
        let mut samples = report_to_samples(report, &self.job);
        if self
            .scraped_pods
            .as_ref()
            .is_some_and(|s| s.contains(&scraped_pod))
        {
            samples.retain(|s| !is_filter_family(&s.series.name));
        }
        // The HTTP and the network plugin of one pod report apart (own lifetime, sequence and
        // series), so order and staleness are tracked per (pod, channel).
        let pod: PodKey = if report.channel == meshtap_report::CHANNEL_HTTP {
            scraped_pod
        } else {
            (
                proxy.namespace.clone(),
                format!("{}/{}", proxy.pod, report.channel),
            )
        };
        let clock = ReportClock {
            proxy_start_ms: report.proxy_start_ms,
            timestamp_ms: report.timestamp_ms,
            interval_ms: report.interval_ms,
        };
        {
            let mut tracker = self.tracker.lock().expect("tracker lock");
            match tracker.admit(pod.clone(), clock, &samples, Instant::now()) {
                Admission::OutOfOrder { last_timestamp_ms } => {
                    tracing::debug!(
                        namespace = %pod.0,
                        pod = %pod.1,
                        timestamp_ms = report.timestamp_ms,
                        last_timestamp_ms,
                        "dropped a report not newer than the last accepted one"
                    );
                    return ReportResult::OutOfOrder;
                }
                Admission::Accepted { stale_markers } => {
                    self.exporter.observe_families(report);
                    self.exporter.enqueue(&stale_markers);
                    self.exporter.enqueue(&samples);
                    self.metrics
                        .stale_markers
                        .fetch_add(stale_markers.len() as u64, Ordering::Relaxed);
                    self.metrics
                        .active_pods
                        .store(tracker.active_pods() as u64, Ordering::Relaxed);
                }
            }
        }
        self.metrics
            .samples_ingested
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        if let Some(stats) = &report.stats {
            self.metrics.set_pod_stats(&pod, stats.clone());
        }
        if let Some(view) = &self.view {
            view.record(&pod, report);
        }
        if let Some(logs) = &self.access_logs {
            logs.ship_access_logs(report);
        }
        ReportResult::Accepted
    }

    /// Sends stale markers for pods silent too long and forgets them. `now_ms` is the wall clock.
    pub fn sweep(&self, now: Instant, now_ms: i64) {
        let mut tracker = self.tracker.lock().expect("tracker lock");
        let silent = tracker.sweep(now, now_ms);
        for pod in &silent {
            tracing::info!(
                namespace = %pod.pod.0,
                pod = %pod.pod.1,
                series = pod.stale_markers.len(),
                "pod stopped reporting: series marked stale"
            );
            self.exporter.enqueue(&pod.stale_markers);
            self.metrics
                .stale_markers
                .fetch_add(pod.stale_markers.len() as u64, Ordering::Relaxed);
            self.metrics.remove_pod(&pod.pod);
            if let Some(view) = &self.view {
                view.remove_pod(&pod.pod);
            }
        }
        self.metrics
            .active_pods
            .store(tracker.active_pods() as u64, Ordering::Relaxed);
    }
}

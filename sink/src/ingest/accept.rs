//! What happens to a decoded, validated report: conversion, the scrape merge (the pod the
//! report names is marked as reported; with `merge.prefer: scrape` a scraped pod's `istio_*`
//! series are left out), ordering and staleness, the view, per-pod
//! filter stats and hand-off to export. Also the sweep of silent pods.
//!
//! Owns the ordering of those steps (a pod's samples are queued under the tracker lock, so two
//! posts of one pod can never interleave out of order) and the rule that a report no endpoint
//! can keep is refused before anything about it is recorded. It knows nothing about HTTP.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use meshtap_report::Report;

use super::convert::report_to_samples;
use crate::export::loki::LokiExporter;
use crate::export::receipt::Receipt;
use crate::export::remote_write::queue::Refusal;
use crate::export::Exporter;
use crate::ops::metrics::SinkMetrics;
use crate::scrape::convert::is_filter_family;
use crate::scrape::merge::{ReportedPods, ScrapedPods};
use crate::series::Text;
use crate::staleness::{Admission, PodKey, ReportClock, StalenessTracker};
use crate::view::SummaryView;

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

    /// Accepts a validated report, or refuses it as out of order or because an endpoint
    /// cannot keep it.
    pub fn accept(&self, report: &Report) -> Acceptance {
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
        let mut receipt = {
            let mut tracker = self.tracker.lock().expect("tracker lock");
            // Checked under the lock, so no report of the pod is admitted in between.
            if let Some((endpoint, why)) = self.exporter.refusal() {
                return Acceptance::Refused {
                    endpoint: endpoint.to_owned(),
                    why,
                };
            }
            match tracker.admit(pod.clone(), clock, &samples, Instant::now()) {
                Admission::OutOfOrder { last_timestamp_ms } => {
                    tracing::debug!(
                        namespace = %pod.0,
                        pod = %pod.1,
                        timestamp_ms = report.timestamp_ms,
                        last_timestamp_ms,
                        "dropped a report not newer than the last accepted one"
                    );
                    return Acceptance::OutOfOrder;
                }
                Admission::Accepted { stale_markers } => {
                    self.exporter.observe_families(report);
                    let mut receipt = self.exporter.enqueue(&stale_markers);
                    receipt.merge(self.exporter.enqueue(&samples));
                    self.metrics
                        .stale_markers
                        .fetch_add(stale_markers.len() as u64, Ordering::Relaxed);
                    self.metrics
                        .active_pods
                        .store(tracker.active_pods() as u64, Ordering::Relaxed);
                    receipt
                }
            }
        };
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
            logs.ship_access_logs(report, &mut receipt);
        }
        Acceptance::Accepted(receipt)
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

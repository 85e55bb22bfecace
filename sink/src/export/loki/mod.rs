//! Loki export: every `logs[]` endpoint, the hand-off of filter-shipped access-log records from
//! accepted reports (written to the endpoint's spool before the report is answered when there
//! is one, queued in memory for the batching task otherwise), and the shutdown flush. The file tailer (`crate::logs`) delivers through
//! the same endpoints, waiting for each acknowledgement before it advances its positions.
//!
//! Owns the set of endpoints and their batching tasks; it must not read files nor decode
//! reports.

pub mod client;
pub mod config;
pub mod metrics;
pub mod push_spool;
pub mod records;
pub mod sender;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshtap_report::Report;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use config::LokiConfig;
pub use sender::{Delivery, LokiEndpoint};

use self::metrics::{LogDropReason, LokiMetricsSection};
use self::push_spool::PushSpool;
use self::records::{record_entry, record_stream_labels};
use self::sender::QueuedEntry;
use crate::export::receipt::{Receipt, Stored};
use crate::export::{warn_abandoned_spools, EndpointError};
use crate::ops::metrics::SinkMetrics;
use crate::spool::{Spool, SpoolKind};

struct Running {
    endpoint: Arc<LokiEndpoint>,
    queue: mpsc::Sender<QueuedEntry>,
}

/// All Loki endpoints.
pub struct LokiExporter {
    running: Vec<Running>,
    job: String,
    flush: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl LokiExporter {
    /// Starts every endpoint's batching task (and, with `spool`, the task sending its spooled
    /// pushes) and registers its metrics. `job` is the `job` stream label.
    pub fn start(
        configs: &[LokiConfig],
        job: &str,
        spool: Option<&Spool>,
        metrics: &SinkMetrics,
    ) -> Result<LokiExporter, EndpointError> {
        let (flush, flush_rx) = watch::channel(false);
        let mut running = Vec::with_capacity(configs.len());
        let mut tasks = Vec::with_capacity(configs.len());
        let mut section = LokiMetricsSection::default();
        for (i, config) in configs.iter().enumerate() {
            let mut endpoint = LokiEndpoint::new(config, &format!("logs[{i}]"))?;
            if let Some(spool) = spool {
                let name = config.display_name();
                let (lane, recovered) = spool
                    .open_endpoint(SpoolKind::Loki, name, config.url.as_str(), 1)?
                    .pop()
                    .expect("one lane");
                if recovered.records > 0 {
                    tracing::info!(endpoint = %name, pushes = recovered.records, entries = recovered.samples, "spool: unsent access-log pushes from the previous run will be sent first");
                }
                endpoint = endpoint.with_spool(PushSpool::new(lane));
            }
            let endpoint = Arc::new(endpoint);
            let (queue, queue_rx) = mpsc::channel(config.batch.capacity);
            tasks.push(tokio::spawn(
                endpoint.clone().run_queue(queue_rx, flush_rx.clone()),
            ));
            if endpoint.spool().is_some() {
                tasks.push(tokio::spawn(endpoint.clone().run_spool()));
            }
            section.endpoints.push(endpoint.metrics.clone());
            running.push(Running { endpoint, queue });
        }
        metrics.add_section(Arc::new(section));
        if let Some(spool) = spool {
            let configured: Vec<(&str, &str)> = configs
                .iter()
                .map(|c| (c.display_name(), c.url.as_str()))
                .collect();
            warn_abandoned_spools(spool.config(), SpoolKind::Loki, &configured);
        }
        Ok(LokiExporter {
            running,
            job: job.to_owned(),
            flush,
            tasks: Mutex::new(tasks),
        })
    }

    /// The endpoints, for the file tailer.
    pub fn endpoints(&self) -> Vec<Arc<LokiEndpoint>> {
        self.running.iter().map(|r| r.endpoint.clone()).collect()
    }

    /// Renders an accepted report's access-log records and hands them to every endpoint: one
    /// push appended to its spool at once (noted in `receipt`), or without a spool queued for
    /// its batching task, where entries that do not fit a full queue are dropped and counted
    /// (`reason="queue_full"`).
    pub fn ship_access_logs(&self, report: &Report, receipt: &mut Receipt) {
        if report.access_logs.is_empty() || self.running.is_empty() {
            return;
        }
        let Some(proxy) = report.proxy.as_ref() else {
            return;
        };
        for running in &self.running {
            let metrics = &running.endpoint.metrics;
            let labels = match record_stream_labels(
                &proxy.namespace,
                &proxy.pod,
                &self.job,
                &running.endpoint.static_labels,
            ) {
                Ok(labels) => labels,
                Err(e) => {
                    metrics.add_dropped(LogDropReason::BadLabels, report.access_logs.len() as u64);
                    tracing::warn!(endpoint = %metrics.name, namespace = %proxy.namespace, pod = %proxy.pod, error = %e, "access-log records dropped: stream labels Loki would refuse");
                    continue;
                }
            };
            if running.endpoint.spool().is_some() {
                let entries = report
                    .access_logs
                    .iter()
                    .map(|record| record_entry(record, running.endpoint.encoding));
                receipt.add(running.endpoint.spool_entries(&labels, entries));
                continue;
            }
            receipt.add(Stored::Memory);
            let mut full = 0u64;
            for record in &report.access_logs {
                let entry = record_entry(record, running.endpoint.encoding);
                match running.queue.try_send(QueuedEntry {
                    labels: labels.clone(),
                    entry,
                }) {
                    Ok(()) => {
                        metrics.queued_entries.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => full += 1,
                }
            }
            if full > 0 {
                metrics.add_dropped(LogDropReason::QueueFull, full);
                tracing::warn!(endpoint = %metrics.name, dropped = full, "Loki queue full: access-log records dropped");
            }
        }
    }

    /// Sends what is queued on every endpoint for at most `timeout`, then keeps what is spooled
    /// for the next start (logged) and drops the rest; returns `(endpoint, entries dropped)`.
    pub async fn shutdown(&self, timeout: Duration) -> Vec<(String, u64)> {
        self.flush.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        let deadline = tokio::time::Instant::now() + timeout;
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
        self.running
            .iter()
            .map(|r| {
                let m = &r.endpoint.metrics;
                if let Some(spool) = r.endpoint.spool() {
                    let kept = spool.keep_for_restart();
                    if kept > 0 {
                        tracing::info!(endpoint = %m.name, kept, "unsent access-log entries kept in the spool for the next start");
                    }
                }
                let left = m.queued_entries.swap(0, Ordering::Relaxed);
                m.add_dropped(LogDropReason::Shutdown, left);
                (m.name.clone(), left)
            })
            .collect()
    }
}

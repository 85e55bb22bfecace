//! All remote-write endpoints as one: starts them, notes families for metadata, fans samples
//! out to each, and drains them at shutdown.
//!
//! Owns the set of endpoints, the family registry behind metadata, and the shutdown flush. It
//! must not convert reports (ingest does) nor decide staleness.

use std::sync::Arc;
use std::time::Duration;

use meshtap_report::Report;
use tokio::sync::watch;

use super::families::{FamilyMeta, FamilyRegistry};
use super::queue::Refusal;
use super::{Endpoint, RemoteWriteConfig};
use crate::export::receipt::Receipt;
use crate::export::{warn_abandoned_spools, EndpointError, ShutdownSummary};
use crate::ops::metrics::SinkMetrics;
use crate::spool::{Spool, SpoolKind};
use meshtap_remotewrite::sample::ExportSample;
use meshtap_remotewrite::series::Sample;

/// All remote-write endpoints.
pub struct RemoteWriteExporter {
    endpoints: Vec<Arc<Endpoint>>,
    registry: Arc<FamilyRegistry>,
    flush: watch::Sender<bool>,
}

impl RemoteWriteExporter {
    /// Starts every endpoint (none is fine: samples are then only counted), spooled on disk
    /// when `spool` is set.
    pub fn start(
        configs: &[RemoteWriteConfig],
        spool: Option<&Spool>,
        metrics: &SinkMetrics,
    ) -> Result<RemoteWriteExporter, EndpointError> {
        let registry = Arc::new(FamilyRegistry::default());
        let (flush, flush_rx) = watch::channel(false);
        let mut endpoints = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let endpoint = Endpoint::start(
                config,
                &format!("remote_write[{i}]"),
                registry.clone(),
                flush_rx.clone(),
                spool,
            )?;
            metrics.add_endpoint(endpoint.metrics().clone());
            endpoints.push(endpoint);
        }
        if let Some(spool) = spool {
            let configured: Vec<(&str, &str)> = configs
                .iter()
                .map(|c| (c.display_name(), c.url.as_str()))
                .collect();
            warn_abandoned_spools(spool.config(), SpoolKind::RemoteWrite, &configured);
        }
        Ok(RemoteWriteExporter {
            endpoints,
            registry,
            flush,
        })
    }

    /// Notes a validated report's families (for metadata).
    pub fn observe_families(&self, report: &Report) {
        if !self.endpoints.is_empty() {
            self.registry.observe(report);
        }
    }

    /// Notes a scrape's families (for metadata).
    pub fn observe_scraped_families(&self, families: Vec<(String, FamilyMeta)>) {
        if !self.endpoints.is_empty() && !families.is_empty() {
            self.registry.observe_families(families);
        }
    }

    /// Why a report's samples cannot be kept now (the first endpoint that refuses, by name).
    pub fn refusal(&self) -> Option<(&str, Refusal)> {
        self.endpoints
            .iter()
            .find_map(|e| e.refusal().map(|why| (e.metrics().name.as_str(), why)))
    }

    /// Queues samples on every endpoint (a full endpoint queue that evicts drops its oldest
    /// batches); the receipt says where they are kept.
    pub fn enqueue(&self, samples: &[Sample]) -> Receipt {
        let mut receipt = Receipt::default();
        for endpoint in &self.endpoints {
            endpoint.enqueue(samples, &mut receipt);
        }
        receipt
    }

    /// Queues samples of one source (a scrape target) on every endpoint, all on the lane of
    /// `shard` (see [`Endpoint::enqueue_export_on`]), waiting while that lane is full: nothing
    /// is dropped, and the caller is slowed down to what the endpoints take. One endpoint that
    /// stays down therefore holds the scrapes up (unless its `queue.when_full` is
    /// `drop_oldest`); the memory held stays bounded by the queues' capacity.
    pub async fn enqueue_when_room_on(&self, shard: u64, samples: Vec<ExportSample>) {
        let Some((last, others)) = self.endpoints.split_last() else {
            return;
        };
        for endpoint in others {
            endpoint.enqueue_when_room_on(shard, samples.clone()).await;
        }
        last.enqueue_when_room_on(shard, samples).await;
    }

    /// Queues samples of one source on the lane of `shard` of every endpoint without waiting;
    /// a full lane drops its oldest batches.
    pub fn enqueue_export_on(&self, shard: u64, samples: &[ExportSample]) {
        for endpoint in &self.endpoints {
            endpoint.enqueue_export_on(shard, samples.to_vec());
        }
    }

    /// Seals pending batches, lets every endpoint send for at most `timeout` (in parallel),
    /// then keeps what is left in the spool (if any) or drops it, and reports both.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownSummary {
        self.flush.send_replace(true);
        let mut tasks = Vec::new();
        for endpoint in &self.endpoints {
            let endpoint = endpoint.clone();
            tasks.push(tokio::spawn(async move {
                let kept_dropped = endpoint.drain(timeout).await;
                (endpoint.metrics().name.clone(), kept_dropped)
            }));
        }
        let mut summary = ShutdownSummary::default();
        for task in tasks {
            if let Ok((name, (kept, dropped))) = task.await {
                summary.kept.push((name.clone(), kept));
                summary.dropped.push((name, dropped));
            }
        }
        summary
    }
}

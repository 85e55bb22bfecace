//! Export stage: fans samples out to every configured remote-write endpoint; `loki` holds the
//! log endpoints; the HTTP client side both use is `crate::floor::http`.
//!
//! Owns the set of endpoints, the family registry behind metadata, and the shutdown flush. It
//! must not convert reports (ingest does) nor decide staleness.

pub mod families;
pub mod joined_body;
pub mod loki;
pub mod receipt;
pub mod remote_write;
pub mod sample;

use std::sync::Arc;
use std::time::Duration;

use meshtap_report::Report;
use tokio::sync::watch;

use self::families::{FamilyMeta, FamilyRegistry};
use self::receipt::Receipt;
use self::remote_write::queue::Refusal;
use self::remote_write::{Endpoint, RemoteWriteConfig};
use self::sample::ExportSample;
use crate::floor::http::ClientError;
use crate::ops::metrics::SinkMetrics;
use crate::series::Sample;
use crate::spool::{Spool, SpoolConfig, SpoolError, SpoolKind};

/// Why an endpoint (remote-write or Loki) could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// Warns about spool directories of `kind` that belong to no configured endpoint.
pub fn warn_abandoned_spools(spool: &SpoolConfig, kind: SpoolKind, configured: &[(&str, &str)]) {
    for dir in spool.abandoned(kind, configured) {
        tracing::warn!(dir = %dir.display(), "spool of an endpoint that is no longer configured (renamed or removed): its records are not sent; restore the endpoint or delete the directory");
    }
}

/// Samples each endpoint still held when the shutdown deadline passed.
#[derive(Debug, Default)]
pub struct ShutdownSummary {
    pub dropped: Vec<(String, u64)>,
    /// Samples each endpoint kept in its spool for the next start.
    pub kept: Vec<(String, u64)>,
    /// Log entries each Loki endpoint still held (filter-shipped records; tailed lines are
    /// re-read from their positions after a restart).
    pub log_entries_dropped: Vec<(String, u64)>,
}

/// All endpoints.
pub struct Exporter {
    endpoints: Vec<Arc<Endpoint>>,
    registry: Arc<FamilyRegistry>,
    flush: watch::Sender<bool>,
}

impl Exporter {
    /// Starts every endpoint (none is fine: samples are then only counted), spooled on disk
    /// when `spool` is set.
    pub fn start(
        configs: &[RemoteWriteConfig],
        spool: Option<&Spool>,
        metrics: &SinkMetrics,
    ) -> Result<Exporter, EndpointError> {
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
        Ok(Exporter {
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

//! All remote-write endpoints as one: starts them, notes families for metadata, fans samples
//! out to each, changes the set at a reload, and drains them at shutdown.
//!
//! Owns the set of endpoints, the family registry behind metadata, and the shutdown flush. It
//! must not convert reports (ingest does) nor decide staleness.
//!
//! A reload ([`RemoteWriteExporter::apply`]) matches endpoints by name: one whose config is
//! unchanged keeps running untouched (same lanes, same queue); a removed one leaves the
//! fan-out and drains in the background as at shutdown (what is left after the deadline stays
//! in its spool, or is dropped and counted); a changed one is replaced — beside the old one,
//! which drains the same way, or, when both use the same spool directory (same name and URL),
//! after the old one handed its spool over (its unacknowledged records are sent first by the
//! new one). The set is swapped under a write lock, so a report's samples go either to the old
//! set or to the new one, never half-way.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use meshtap_report::Report;

use super::families::{FamilyMeta, FamilyRegistry};
use super::queue::Refusal;
use super::{Endpoint, RemoteWriteClient, RemoteWriteConfig};
use crate::export::receipt::Receipt;
use crate::export::{warn_abandoned_spools, EndpointError, ShutdownSummary};
use crate::ops::metrics::SinkMetrics;
use crate::spool::{Spool, SpoolKind};
use meshtap_remotewrite::sample::ExportSample;
use meshtap_remotewrite::series::Sample;

/// A running endpoint and the config it runs with.
#[derive(Clone)]
struct Configured {
    config: RemoteWriteConfig,
    endpoint: Arc<Endpoint>,
}

/// All remote-write endpoints.
pub struct RemoteWriteExporter {
    endpoints: RwLock<Arc<Vec<Configured>>>,
    registry: Arc<FamilyRegistry>,
}

/// What a reload did to the endpoints, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EndpointChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Whether two configs keep their spool in the same directory (same name and URL).
fn same_spool_dir(a: &RemoteWriteConfig, b: &RemoteWriteConfig) -> bool {
    a.display_name() == b.display_name() && a.url == b.url
}

impl RemoteWriteExporter {
    /// Starts every endpoint (none is fine: samples are then only counted), spooled on disk
    /// when `spool` is set.
    pub fn start(
        configs: &[RemoteWriteConfig],
        spool: Option<&Spool>,
        metrics: &SinkMetrics,
    ) -> Result<RemoteWriteExporter, EndpointError> {
        let exporter = RemoteWriteExporter {
            endpoints: RwLock::new(Arc::new(Vec::new())),
            registry: Arc::new(FamilyRegistry::default()),
        };
        let mut started = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            started.push(exporter.start_endpoint(config, i, spool, metrics)?);
        }
        *exporter.endpoints.write().expect("endpoints lock") = Arc::new(started);
        exporter.warn_abandoned(configs, spool);
        Ok(exporter)
    }

    fn start_endpoint(
        &self,
        config: &RemoteWriteConfig,
        index: usize,
        spool: Option<&Spool>,
        metrics: &SinkMetrics,
    ) -> Result<Configured, EndpointError> {
        let at = format!("remote_write[{index}]");
        let endpoint = Endpoint::start(config, &at, self.registry.clone(), spool)?;
        metrics.add_endpoint(endpoint.metrics().clone());
        Ok(Configured {
            config: config.clone(),
            endpoint,
        })
    }

    fn warn_abandoned(&self, configs: &[RemoteWriteConfig], spool: Option<&Spool>) {
        if let Some(spool) = spool {
            let configured: Vec<(&str, &str)> = configs
                .iter()
                .map(|c| (c.display_name(), c.url.as_str()))
                .collect();
            warn_abandoned_spools(spool.config(), SpoolKind::RemoteWrite, &configured);
        }
    }

    fn current(&self) -> Arc<Vec<Configured>> {
        self.endpoints.read().expect("endpoints lock").clone()
    }

    /// Makes `configs` the endpoint set (see the module doc). Endpoints that leave drain in
    /// the background for at most `drain_timeout`. When an endpoint cannot start (its client
    /// cannot be built) nothing changes.
    pub fn apply(
        &self,
        configs: &[RemoteWriteConfig],
        spool: Option<&Spool>,
        metrics: &SinkMetrics,
        drain_timeout: Duration,
    ) -> Result<EndpointChanges, EndpointError> {
        let old = self.current();
        let started = self.start_beside(&old, configs, spool, metrics)?;
        let mut changes = EndpointChanges::default();
        let mut retired = Vec::new();
        {
            let mut endpoints = self.endpoints.write().expect("endpoints lock");
            let mut next = Vec::with_capacity(configs.len());
            for (i, (config, started)) in configs.iter().zip(started).enumerate() {
                let name = config.display_name().to_owned();
                let previous = old.iter().find(|c| c.config.display_name() == name);
                next.push(match (previous, started) {
                    (None, Some(started)) => {
                        changes.added.push(name);
                        started
                    }
                    (Some(p), Some(started)) => {
                        changes.changed.push(name);
                        retired.push(p.clone());
                        started
                    }
                    (Some(p), None) if p.config == *config => {
                        changes.unchanged.push(name);
                        p.clone()
                    }
                    (Some(p), None) => {
                        changes.changed.push(name);
                        self.take_over(p, config, i, spool, metrics)?
                    }
                    (None, None) => unreachable!("a new endpoint is always started"),
                });
            }
            for gone in old.iter() {
                let name = gone.config.display_name();
                if !configs.iter().any(|c| c.display_name() == name) {
                    changes.removed.push(name.to_owned());
                    retired.push(gone.clone());
                }
            }
            *endpoints = Arc::new(next);
        }
        for leaving in retired {
            metrics.remove_endpoint(leaving.endpoint.metrics());
            tokio::spawn(Self::retire(leaving.endpoint, drain_timeout));
        }
        self.warn_abandoned(configs, spool);
        Ok(changes)
    }

    /// Starts, beside the running set, the endpoints of `configs` that are new or changed and
    /// do not share a spool directory with their predecessor (`None` for the others, whose
    /// client is only checked). On an error the ones already started are stopped.
    fn start_beside(
        &self,
        old: &[Configured],
        configs: &[RemoteWriteConfig],
        spool: Option<&Spool>,
        metrics: &SinkMetrics,
    ) -> Result<Vec<Option<Configured>>, EndpointError> {
        let mut started: Vec<Option<Configured>> = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let previous = old
                .iter()
                .find(|c| c.config.display_name() == config.display_name());
            let attempt = match previous {
                Some(p) if p.config == *config => Ok(None),
                Some(p) if spool.is_some() && same_spool_dir(&p.config, config) => {
                    RemoteWriteClient::new(config, &format!("remote_write[{i}]"))
                        .map(|_| None)
                        .map_err(EndpointError::from)
                }
                _ => self.start_endpoint(config, i, spool, metrics).map(Some),
            };
            match attempt {
                Ok(endpoint) => started.push(endpoint),
                Err(e) => {
                    Self::discard(started.into_iter().flatten(), metrics);
                    return Err(e);
                }
            }
        }
        Ok(started)
    }

    /// Replaces `previous` by an endpoint on the same spool directory: the old senders stop,
    /// the new endpoint reopens the spool and sends its unacknowledged records first.
    fn take_over(
        &self,
        previous: &Configured,
        config: &RemoteWriteConfig,
        index: usize,
        spool: Option<&Spool>,
        metrics: &SinkMetrics,
    ) -> Result<Configured, EndpointError> {
        previous.endpoint.hand_over_spool();
        metrics.remove_endpoint(previous.endpoint.metrics());
        tracing::info!(endpoint = %config.display_name(), "remote-write endpoint changed: its spool is handed over to the new config");
        self.start_endpoint(config, index, spool, metrics)
    }

    /// Stops endpoints that were started for a reload that does not happen.
    fn discard(endpoints: impl Iterator<Item = Configured>, metrics: &SinkMetrics) {
        for unused in endpoints {
            metrics.remove_endpoint(unused.endpoint.metrics());
            unused.endpoint.hand_over_spool();
        }
    }

    /// Drains an endpoint that left the set, as at shutdown, and logs the outcome.
    async fn retire(endpoint: Arc<Endpoint>, timeout: Duration) {
        let name = endpoint.metrics().name.clone();
        let (kept, dropped) = endpoint.drain(timeout).await;
        let sent = endpoint
            .metrics()
            .samples_sent
            .load(std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(endpoint = %name, sent, kept, dropped, "remote-write endpoint left the config: samples dropped (drain deadline passed)");
        } else {
            tracing::info!(endpoint = %name, sent, kept, "remote-write endpoint left the config and drained");
        }
    }

    /// Notes a validated report's families (for metadata).
    pub fn observe_families(&self, report: &Report) {
        if !self.current().is_empty() {
            self.registry.observe(report);
        }
    }

    /// Notes a scrape's families (for metadata).
    pub fn observe_scraped_families(&self, families: Vec<(String, FamilyMeta)>) {
        if !families.is_empty() && !self.current().is_empty() {
            self.registry.observe_families(families);
        }
    }

    /// Why a report's samples cannot be kept now (the first endpoint that refuses, by name).
    pub fn refusal(&self) -> Option<(String, Refusal)> {
        self.current().iter().find_map(|c| {
            c.endpoint
                .refusal()
                .map(|why| (c.endpoint.metrics().name.clone(), why))
        })
    }

    /// Queues samples on every endpoint (a full endpoint queue that evicts drops its oldest
    /// batches); the receipt says where they are kept. Holds the set's read lock throughout,
    /// so a reload waits until the samples are on every endpoint of the set they entered.
    pub fn enqueue(&self, samples: &[Sample]) -> Receipt {
        let mut receipt = Receipt::default();
        let endpoints = self.endpoints.read().expect("endpoints lock");
        for configured in endpoints.iter() {
            configured.endpoint.enqueue(samples, &mut receipt);
        }
        receipt
    }

    /// Queues samples of one source (a scrape target) on every endpoint, all on the lane of
    /// `shard` (see [`Endpoint::enqueue_export_on`]), waiting while that lane is full: nothing
    /// is dropped, and the caller is slowed down to what the endpoints take. One endpoint that
    /// stays down therefore holds the scrapes up (unless its `queue.when_full` is
    /// `drop_oldest`); the memory held stays bounded by the queues' capacity.
    pub async fn enqueue_when_room_on(&self, shard: u64, samples: Vec<ExportSample>) {
        let endpoints = self.current();
        let Some((last, others)) = endpoints.split_last() else {
            return;
        };
        for configured in others {
            configured
                .endpoint
                .enqueue_when_room_on(shard, samples.clone())
                .await;
        }
        last.endpoint.enqueue_when_room_on(shard, samples).await;
    }

    /// Queues samples of one source on the lane of `shard` of every endpoint without waiting;
    /// a full lane drops its oldest batches.
    pub fn enqueue_export_on(&self, shard: u64, samples: &[ExportSample]) {
        let endpoints = self.endpoints.read().expect("endpoints lock");
        for configured in endpoints.iter() {
            configured
                .endpoint
                .enqueue_export_on(shard, samples.to_vec());
        }
    }

    /// Lets every endpoint send for at most `timeout` (in parallel), then keeps what is left
    /// in the spool (if any) or drops it, and reports both.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownSummary {
        let mut tasks = Vec::new();
        for configured in self.current().iter() {
            let endpoint = configured.endpoint.clone();
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

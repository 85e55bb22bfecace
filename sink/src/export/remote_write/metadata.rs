//! Metric metadata (TYPE, HELP) for one endpoint: sent every `metadata_interval` and soon after a
//! family appears, in requests of its own as Prometheus does.
//!
//! Owns the metadata request and its schedule. A failed send is counted and logged and simply
//! waits for the next occasion; it never delays samples.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::watch;

use super::client::{RemoteWriteClient, SendOutcome};
use super::families::FamilyRegistry;
use crate::ops::metrics::EndpointMetrics;
use meshtap_remotewrite::encoder::compress_into;
use meshtap_remotewrite::proto::{MetricMetadata, WriteRequest};

/// Prometheus' `max_samples_per_send` for metadata.
const MAX_METADATA_PER_SEND: usize = 2000;

/// Delay after a family appears, so a burst of new families goes out in one request.
const NEW_FAMILY_DELAY: Duration = Duration::from_millis(200);

/// Compressed metadata requests for every known family.
pub fn metadata_bodies(registry: &FamilyRegistry) -> Vec<Vec<u8>> {
    let metadata: Vec<MetricMetadata> = registry
        .snapshot()
        .into_iter()
        .map(|(name, meta)| MetricMetadata {
            r#type: meta.kind as i32,
            metric_family_name: name,
            help: meta.help,
            unit: meta.unit,
        })
        .collect();
    let mut compressor = snap::raw::Encoder::new();
    metadata
        .chunks(MAX_METADATA_PER_SEND)
        .map(|chunk| {
            let raw = WriteRequest {
                timeseries: Vec::new(),
                metadata: chunk.to_vec(),
            }
            .encode_to_vec();
            let mut out = Vec::new();
            compress_into(&mut compressor, &raw, &mut out);
            out
        })
        .collect()
}

/// Runs until `flush` turns true.
pub async fn run(
    client: Arc<RemoteWriteClient>,
    registry: Arc<FamilyRegistry>,
    metrics: Arc<EndpointMetrics>,
    interval: Duration,
    mut flush: watch::Receiver<bool>,
) {
    let mut changed = registry.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            result = changed.changed() => {
                if result.is_err() {
                    return;
                }
                tokio::time::sleep(NEW_FAMILY_DELAY).await;
                changed.borrow_and_update();
            }
            _ = flush.changed() => return,
        }
        if *flush.borrow() {
            return;
        }
        for body in metadata_bodies(&registry) {
            match client.post(body.into(), 0).await {
                SendOutcome::Delivered => {
                    metrics.metadata_sent.fetch_add(1, Ordering::Relaxed);
                }
                outcome => {
                    metrics.metadata_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(endpoint = %metrics.name, ?outcome, "metadata send failed; will resend later");
                }
            }
        }
    }
}

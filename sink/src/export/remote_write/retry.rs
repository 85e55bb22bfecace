//! Delivery of one batch with retries: exponential backoff with jitter between `min_backoff`
//! and `max_backoff`, `Retry-After` honoured, and `max_sample_age` applied before each attempt.
//!
//! Owns the retry loop and its accounting (sent, failed, retried, dropped too old). The wire
//! format belongs to `super::encoder` and the meaning of an answer to `super::client`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::client::{RemoteWriteClient, SendOutcome};
use super::encoder::RequestEncoder;
use super::lane::Lane;
use super::queue::Outgoing;
use super::spooled_body::drop_older_than;
use crate::export::retry::Backoff;
use crate::ops::metrics::{DropReason, EndpointMetrics};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Everything one lane's sender needs to deliver batches.
pub struct Delivery {
    pub client: Arc<RemoteWriteClient>,
    pub metrics: Arc<EndpointMetrics>,
    pub external_labels: Vec<(String, String)>,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Zero: no age limit.
    pub max_sample_age: Duration,
    pub encoder: RequestEncoder,
}

impl Delivery {
    /// Sends `batch` until it is delivered, refused, or emptied by the age limit.
    pub async fn deliver(&mut self, lane: &Lane, mut batch: Outgoing) {
        let mut backoff = Backoff::new(self.min_backoff, self.max_backoff);
        let mut attempt: u32 = 0;
        loop {
            if !self.max_sample_age.is_zero() {
                let cutoff = now_ms() - self.max_sample_age.as_millis() as i64;
                let dropped = self.drop_older_than(&mut batch, cutoff);
                if dropped > 0 {
                    self.metrics.add_dropped(DropReason::TooOld, dropped);
                    tracing::warn!(endpoint = %self.metrics.name, dropped, "dropped samples older than max_sample_age");
                    lane.set_in_flight(batch.len(), batch.oldest_ms());
                }
                if batch.is_empty() {
                    return;
                }
            }
            let body = match &batch {
                Outgoing::Samples(batch) => self
                    .encoder
                    .encode(&batch.samples, &self.external_labels)
                    .to_vec(),
                Outgoing::Spooled(spooled) => spooled.body.clone(),
            };
            let n = batch.len() as u64;
            match self.client.post(body, attempt).await {
                SendOutcome::Delivered => {
                    self.metrics.samples_sent.fetch_add(n, Ordering::Relaxed);
                    return;
                }
                SendOutcome::Refused { status, body } => {
                    self.metrics.samples_failed.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(
                        endpoint = %self.metrics.name,
                        status,
                        samples = n,
                        body = %body,
                        "remote-write refused a batch; not retrying"
                    );
                    return;
                }
                SendOutcome::Retry {
                    reason,
                    retry_after,
                } => {
                    self.metrics.samples_retried.fetch_add(n, Ordering::Relaxed);
                    let delay = backoff.delay_for(retry_after);
                    tracing::warn!(
                        endpoint = %self.metrics.name,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        %reason,
                        "remote-write attempt failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// Removes samples older than `cutoff_ms`; returns how many.
    fn drop_older_than(&self, batch: &mut Outgoing, cutoff_ms: i64) -> u64 {
        match batch {
            Outgoing::Samples(batch) => {
                let before = batch.len();
                batch.samples.retain(|s| s.timestamp_ms >= cutoff_ms);
                (before - batch.len()) as u64
            }
            Outgoing::Spooled(spooled) => {
                drop_older_than(spooled, cutoff_ms).unwrap_or_else(|e| {
                    // The record passed its checksum, so this is a body meshtap did not write.
                    tracing::error!(endpoint = %self.metrics.name, error = %e, "spooled body could not be filtered by age; sent as it is");
                    0
                })
            }
        }
    }
}

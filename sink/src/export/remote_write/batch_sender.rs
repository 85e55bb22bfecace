//! Delivery of one batch with retries (the shared loop of `crate::floor::http::retry`: backoff
//! between `min_backoff` and `max_backoff`, `Retry-After` honoured), with `max_sample_age`
//! applied before each attempt.
//!
//! Owns what an attempt sends and the accounting (sent, failed, retried, dropped too old). The wire
//! format belongs to `meshtap_remotewrite::encoder` and the meaning of an answer to `super::client`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::client::{RemoteWriteClient, SendOutcome};
use super::config::QueueConfig;
use super::lane::Lane;
use super::queue::Outgoing;
use super::spooled_body::drop_older_than;
use crate::floor::clock::now_ms;
use crate::floor::http::retry::{push_until_answered, Backoff, FinalAnswer, RetriedPush};
use crate::ops::metrics::{DropReason, EndpointMetrics};
use meshtap_remotewrite::encoder::RequestEncoder;

/// Everything one lane's sender needs to deliver batches.
pub struct BatchSender {
    pub client: Arc<RemoteWriteClient>,
    pub metrics: Arc<EndpointMetrics>,
    pub external_labels: Vec<(String, String)>,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Zero: no age limit.
    pub max_sample_age: Duration,
    pub encoder: RequestEncoder,
}

/// One batch being pushed: the retry loop's view of it.
struct BatchPush<'a> {
    sender: &'a mut BatchSender,
    lane: &'a Lane,
    batch: Outgoing,
}

impl RetriedPush for BatchPush<'_> {
    fn endpoint(&self) -> &str {
        &self.sender.metrics.name
    }

    /// Applies the age limit, then encodes (or takes the spooled body) and posts.
    async fn send(&mut self, attempt: u32) -> Option<SendOutcome> {
        let sender = &mut *self.sender;
        if !sender.max_sample_age.is_zero() {
            let cutoff = now_ms() - sender.max_sample_age.as_millis() as i64;
            let dropped = sender.drop_older_than(&mut self.batch, cutoff);
            if dropped > 0 {
                sender.metrics.add_dropped(DropReason::TooOld, dropped);
                tracing::warn!(endpoint = %sender.metrics.name, dropped, "dropped samples older than max_sample_age");
                self.lane
                    .set_in_flight(self.batch.len(), self.batch.oldest_ms());
            }
            if self.batch.is_empty() {
                return None;
            }
        }
        let body = match &self.batch {
            Outgoing::Samples(batch) => {
                let samples = &batch.samples;
                sender
                    .encoder
                    .encode_owned(samples, &sender.external_labels)
                    .snappy
            }
            Outgoing::Spooled(spooled) => spooled.body.clone(),
        };
        Some(sender.client.post(body, attempt).await)
    }

    fn count_retry(&mut self) {
        let n = self.batch.len() as u64;
        self.sender
            .metrics
            .samples_retried
            .fetch_add(n, Ordering::Relaxed);
    }
}

impl BatchSender {
    /// A lane's sender through `client`, adding `external_labels`, with the backoff and age
    /// limit of `queue`.
    pub fn new(
        client: &Arc<RemoteWriteClient>,
        metrics: &Arc<EndpointMetrics>,
        external_labels: &[(String, String)],
        queue: &QueueConfig,
    ) -> BatchSender {
        BatchSender {
            client: client.clone(),
            metrics: metrics.clone(),
            external_labels: external_labels.to_vec(),
            min_backoff: queue.min_backoff.get(),
            max_backoff: queue.max_backoff.get(),
            max_sample_age: queue.max_sample_age.get(),
            encoder: RequestEncoder::new(),
        }
    }

    /// Sends `batch` until it is delivered, refused, or emptied by the age limit.
    pub async fn deliver(&mut self, lane: &Lane, batch: Outgoing) {
        let backoff = Backoff::new(self.min_backoff, self.max_backoff);
        let mut push = BatchPush {
            sender: self,
            lane,
            batch,
        };
        let answer = push_until_answered(&mut push, backoff, "remote-write attempt").await;
        let n = push.batch.len() as u64;
        match answer {
            None => {}
            Some(FinalAnswer::Delivered) => {
                self.metrics.samples_sent.fetch_add(n, Ordering::Relaxed);
            }
            Some(FinalAnswer::Refused { status, body }) => {
                self.metrics.samples_failed.fetch_add(n, Ordering::Relaxed);
                tracing::error!(
                    endpoint = %self.metrics.name,
                    status,
                    samples = n,
                    body = %body,
                    "remote-write refused a batch; not retrying"
                );
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

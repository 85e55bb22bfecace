//! One running Loki endpoint: delivery of an encoded push with retries (backoff, `Retry-After`,
//! a 400 counted as partial success), the batching task of filter-shipped entries (flush by
//! bytes or after `batch.max_wait`, bounded queue, drain on shutdown) and, with a spool, the
//! task that sends the spooled pushes.
//!
//! Owns what a push attempt sends (the loop is `crate::floor::http::retry`'s) and the endpoint's
//! accounting. Encoding belongs to
//! `meshtap_logformat::loki::PushBatch`, the meaning of an answer to `super::client`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use meshtap_logformat::access::AccessLogEncoding;
use meshtap_logformat::loki::{EncodedPush, LogEntry, PushBatch, StreamLabels};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::client::LokiClient;
use super::config::{LokiBatchConfig, LokiConfig};
use super::metrics::{LogDropReason, LokiEndpointMetrics};
use super::push_spool::PushSpool;
use crate::export::receipt::Stored;
use crate::floor::http::client::ClientError;
use crate::floor::http::retry::{
    push_until_answered, Backoff, FinalAnswer, RetriedPush, SendOutcome,
};

/// Resolves once `stop` is true (the watch guard never lives across an await, so the future
/// stays `Send`).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// What became of a push after retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Loki answered 2xx.
    Acknowledged,
    /// Loki refused it without retry (a 400: the valid entries were kept, the rest are lost).
    Refused,
}

/// One encoded push being sent: the retry loop's view of it.
struct LokiPush<'a> {
    endpoint: &'a LokiEndpoint,
    body: &'a [u8],
    entries: u64,
}

impl RetriedPush for LokiPush<'_> {
    fn endpoint(&self) -> &str {
        &self.endpoint.metrics.name
    }

    async fn send(&mut self, _attempt: u32) -> Option<SendOutcome> {
        let body = Bytes::copy_from_slice(self.body);
        Some(self.endpoint.client.post(body).await)
    }

    fn count_retry(&mut self) {
        self.endpoint
            .metrics
            .entries_retried
            .fetch_add(self.entries, Ordering::Relaxed);
    }
}

/// An entry bound for the endpoint's batching task.
#[derive(Debug)]
pub struct QueuedEntry {
    pub labels: StreamLabels,
    pub entry: LogEntry,
}

/// A configured, started endpoint.
pub struct LokiEndpoint {
    client: LokiClient,
    pub metrics: Arc<LokiEndpointMetrics>,
    pub static_labels: Vec<(String, String)>,
    pub encoding: AccessLogEncoding,
    pub batch: LokiBatchConfig,
    /// Where filter-shipped pushes wait until Loki took them (with `spool:`).
    spool: Option<PushSpool>,
}

impl LokiEndpoint {
    /// Builds the endpoint of `config`; `at` is its config path for errors.
    pub fn new(config: &LokiConfig, at: &str) -> Result<LokiEndpoint, ClientError> {
        Ok(LokiEndpoint {
            client: LokiClient::new(config, at)?,
            metrics: Arc::new(LokiEndpointMetrics::new(config.display_name())),
            static_labels: config.static_labels(),
            encoding: config.access_log_format.encoding(),
            batch: config.batch.clone(),
            spool: None,
        })
    }

    /// Sends filter-shipped pushes through `spool` (see [`LokiEndpoint::run_spool`]).
    pub fn with_spool(mut self, spool: PushSpool) -> LokiEndpoint {
        self.spool = Some(spool);
        self
    }

    pub fn spool(&self) -> Option<&PushSpool> {
        self.spool.as_ref()
    }

    /// A fresh batch with this endpoint's line limits.
    pub fn new_batch(&self) -> PushBatch {
        PushBatch::new(self.batch.push_batch_config())
    }

    /// Sends a push body of `entries` entries until Loki acknowledges or refuses it; retries
    /// 429, 5xx and network errors forever with backoff (the caller bounds the time, for example
    /// at shutdown).
    pub async fn deliver(&self, body: &[u8], entries: u64) -> Delivery {
        let m = &self.metrics;
        let backoff = Backoff::new(self.batch.min_backoff.get(), self.batch.max_backoff.get());
        let mut push = LokiPush {
            endpoint: self,
            body,
            entries,
        };
        match push_until_answered(&mut push, backoff, "Loki push").await {
            // `None` cannot happen: every attempt sends the body.
            Some(FinalAnswer::Delivered) | None => {
                m.entries_sent.fetch_add(entries, Ordering::Relaxed);
                Delivery::Acknowledged
            }
            Some(FinalAnswer::Refused { status, body }) => {
                m.entries_refused.fetch_add(entries, Ordering::Relaxed);
                tracing::error!(
                    endpoint = %m.name,
                    status,
                    entries,
                    body = %body.trim(),
                    "Loki refused a push (a 400 keeps the valid entries); not retrying"
                );
                Delivery::Refused
            }
        }
    }

    /// Counts what `batch` changed or dropped, then encodes and delivers it if it holds
    /// anything; `None` when there was nothing to send (or it could not be encoded: logged).
    pub async fn flush(&self, batch: &mut PushBatch) -> Option<Delivery> {
        let push = self.encode(batch)?;
        Some(self.deliver(&push.body, push.entries as u64).await)
    }

    /// Counts what `batch` changed or dropped and encodes it; `None` when it holds nothing (or
    /// could not be encoded: logged).
    fn encode(&self, batch: &mut PushBatch) -> Option<EncodedPush> {
        let counters = batch.counters();
        let m = &self.metrics;
        m.lines_truncated
            .fetch_add(counters.lines_truncated, Ordering::Relaxed);
        m.metadata_stripped
            .fetch_add(counters.metadata_stripped, Ordering::Relaxed);
        m.add_dropped(LogDropReason::Oversize, counters.lines_dropped);
        match batch.finish() {
            Ok(push) => push,
            Err(e) => {
                tracing::error!(endpoint = %m.name, error = %e, "cannot encode a Loki push; entries lost");
                None
            }
        }
    }

    /// The batching task's flush: to the spool when there is one (delivered by
    /// [`LokiEndpoint::run_spool`]), else delivered now. A push the disk refuses is delivered
    /// now as well.
    async fn hand_over(&self, batch: &mut PushBatch) {
        let Some(spool) = &self.spool else {
            self.flush(batch).await;
            return;
        };
        let Some(push) = self.encode(batch) else {
            return;
        };
        let m = &self.metrics;
        match spool.append(&push) {
            Ok((evicted, _)) => {
                for entries in evicted {
                    m.add_dropped(LogDropReason::QueueFull, entries);
                    tracing::warn!(endpoint = %m.name, entries, "Loki spool full: dropped its oldest push");
                }
                m.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(endpoint = %m.name, error = %e, "spool write failed; sending the push directly");
                self.deliver(&push.body, push.entries as u64).await;
            }
        }
    }

    /// Encodes `entries` of one stream as one push and appends it to the spool before
    /// returning. A push the disk refuses is delivered from memory by a task of its own
    /// ([`Stored::WaitingForDisk`]); one that holds nothing after the line limits (counted)
    /// needs no keeping.
    pub fn spool_entries(
        self: &Arc<Self>,
        labels: &StreamLabels,
        entries: impl Iterator<Item = LogEntry>,
    ) -> Stored {
        let spool = self.spool.as_ref().expect("an endpoint with a spool");
        let mut batch = self.new_batch();
        for entry in entries {
            batch.push(labels, entry);
        }
        let Some(push) = self.encode(&mut batch) else {
            return Stored::Memory;
        };
        let m = &self.metrics;
        match spool.append(&push) {
            Ok((evicted, stored)) => {
                for entries in evicted {
                    m.add_dropped(LogDropReason::QueueFull, entries);
                    tracing::warn!(endpoint = %m.name, entries, "Loki spool full: dropped its oldest push");
                }
                m.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
                stored
            }
            Err(e) => {
                tracing::error!(endpoint = %m.name, error = %e, "spool write failed; sending the push directly");
                let endpoint = self.clone();
                tokio::spawn(async move {
                    endpoint.deliver(&push.body, push.entries as u64).await;
                });
                Stored::WaitingForDisk
            }
        }
    }

    /// Sends the spooled pushes in order (consecutive ones joined up to `batch.max_bytes`),
    /// acknowledged once Loki answered; ends when the batching task closed the spool and
    /// nothing is left (or when aborted at shutdown: the pushes being sent stay in the spool).
    pub async fn run_spool(self: Arc<Self>) {
        let Some(spool) = &self.spool else {
            return;
        };
        loop {
            match spool.take(self.batch.max_bytes) {
                Some(push) => {
                    self.deliver(&push.body, u64::from(push.meta.samples)).await;
                    spool.finish();
                    self.metrics
                        .spool_bytes
                        .store(spool.bytes(), Ordering::Relaxed);
                }
                None if spool.is_closed() => return,
                None => spool.appended().await,
            }
        }
    }

    /// The batching task of filter-shipped entries: flushes when the batch reaches
    /// `batch.max_bytes` or its first entry waited `batch.max_wait`; when `flush` turns true it
    /// sends what is queued and returns.
    pub async fn run_queue(
        self: Arc<Self>,
        mut queue: mpsc::Receiver<QueuedEntry>,
        mut flush: watch::Receiver<bool>,
    ) {
        let mut batch = self.new_batch();
        let mut held: u64 = 0;
        let max_wait: Duration = self.batch.max_wait.get();
        let mut deadline: Option<Instant> = None;
        loop {
            let wait_until = deadline.unwrap_or_else(|| Instant::now() + max_wait);
            tokio::select! {
                received = queue.recv() => match received {
                    Some(QueuedEntry { labels, entry }) => {
                        batch.push(&labels, entry);
                        held += 1;
                        deadline.get_or_insert_with(|| Instant::now() + max_wait);
                        if batch.payload_bytes() >= self.batch.max_bytes {
                            self.hand_over(&mut batch).await;
                            self.settle(&mut held);
                            deadline = None;
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(wait_until), if deadline.is_some() => {
                    self.hand_over(&mut batch).await;
                    self.settle(&mut held);
                    deadline = None;
                }
                _ = stopped(&mut flush) => break,
            }
        }
        queue.close();
        while let Some(QueuedEntry { labels, entry }) = queue.recv().await {
            batch.push(&labels, entry);
            held += 1;
            if batch.payload_bytes() >= self.batch.max_bytes {
                self.hand_over(&mut batch).await;
                self.settle(&mut held);
            }
        }
        self.hand_over(&mut batch).await;
        self.settle(&mut held);
        if let Some(spool) = &self.spool {
            spool.close();
        }
    }

    fn settle(&self, held: &mut u64) {
        self.metrics
            .queued_entries
            .fetch_sub(std::mem::take(held), Ordering::Relaxed);
    }
}

//! A Prometheus remote-write 1.0 endpoint: its lanes, sender tasks and metadata task.
//!
//! Owns the wiring of one endpoint: samples are sharded onto lanes by series hash (order kept
//! per series), each lane has one sender task, and the endpoint never waits on another
//! endpoint. Each lane queues in memory (`queue::MemoryQueue`) or, with `spool:` configured,
//! on disk (`spool_queue::SpoolQueue`, every push written before it returns); nothing else
//! differs. With `queue.when_full: block` nothing accepted is ever dropped to make room:
//! scrapes wait and reports are refused ([`Endpoint::refusal`]) while a lane is full.
//! Samples entering the endpoint first pass its `write_relabel_configs`, if any
//! ([`write_relabel::WriteRelabel`]).

pub mod batch_sender;
pub mod client;
pub mod config;
pub mod exporter;
pub mod families;
pub mod lane;
pub mod metadata;
pub mod queue;
pub mod spool_queue;
pub mod spooled_body;
pub mod write_relabel;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use client::{ClientError, RemoteWriteClient, SendOutcome, USER_AGENT};
pub use config::{QueueConfig, RemoteWriteConfig, WhenFull};
pub use exporter::RemoteWriteExporter;

use self::batch_sender::BatchSender;
use self::families::FamilyRegistry;
use self::lane::Lane;
use self::queue::{BatchQueue, MemoryQueue, Refusal};
use self::spool_queue::SpoolQueue;
use self::write_relabel::WriteRelabel;
use crate::export::receipt::Receipt;
use crate::export::EndpointError;
use crate::ops::metrics::EndpointMetrics;
use crate::spool::{Spool, SpoolKind};
use meshtap_remotewrite::sample::ExportSample;
use meshtap_remotewrite::series::Sample;

/// One running endpoint.
pub struct Endpoint {
    lanes: Vec<Arc<Lane>>,
    when_full: WhenFull,
    /// `None` when the endpoint has no `write_relabel_configs`.
    write_relabel: Option<WriteRelabel>,
    metrics: Arc<EndpointMetrics>,
    senders: Mutex<Vec<JoinHandle<()>>>,
    /// Turned true to make the senders send what is queued and end (shutdown, or the endpoint
    /// leaving at a reload).
    flush: watch::Sender<bool>,
}

/// The `external_labels` an endpoint adds to every series (empty values left out).
fn external_labels(config: &RemoteWriteConfig) -> Vec<(String, String)> {
    config
        .external_labels
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

/// One queue per lane: in memory, or on the lanes' spools (opened, their unsent records from
/// the previous run logged and counted) when `spool` is set.
fn open_queues(
    config: &RemoteWriteConfig,
    spool: Option<&Spool>,
    metrics: &Arc<EndpointMetrics>,
    external_labels: &[(String, String)],
) -> Result<Vec<Box<dyn BatchQueue>>, EndpointError> {
    let q = &config.queue;
    let lane_capacity = (q.capacity / q.lanes).max(q.max_samples_per_send);
    let evicts = q.when_full == WhenFull::DropOldest;
    let Some(spool) = spool else {
        return Ok((0..q.lanes)
            .map(|_| Box::new(MemoryQueue::new(lane_capacity, evicts)) as Box<dyn BatchQueue>)
            .collect());
    };
    let opened = spool.open_endpoint(
        SpoolKind::RemoteWrite,
        config.display_name(),
        config.url.as_str(),
        q.lanes,
    )?;
    let mut queues: Vec<Box<dyn BatchQueue>> = Vec::with_capacity(q.lanes);
    for (i, (lane_spool, recovered)) in opened.into_iter().enumerate() {
        if recovered.records > 0 || recovered.discarded_bytes > 0 {
            tracing::info!(endpoint = %metrics.name, lane = i, records = recovered.records, samples = recovered.samples, corrupt_records = recovered.corrupt_records, discarded_bytes = recovered.discarded_bytes, "spool: unsent records from the previous run will be sent first");
        }
        metrics.spool_skipped_records.fetch_add(
            recovered.corrupt_records,
            std::sync::atomic::Ordering::Relaxed,
        );
        let lane_spool = if evicts {
            lane_spool
        } else {
            lane_spool.without_eviction()
        };
        queues.push(Box::new(SpoolQueue::new(
            lane_spool,
            external_labels.to_vec(),
            lane_capacity,
            q.max_samples_per_send,
            i,
            metrics.clone(),
        )));
    }
    Ok(queues)
}

/// One lane over each queue, cutting batches as `queue` says.
fn lanes_over(
    queues: Vec<Box<dyn BatchQueue>>,
    queue: &QueueConfig,
    metrics: &Arc<EndpointMetrics>,
) -> Vec<Arc<Lane>> {
    queues
        .into_iter()
        .enumerate()
        .map(|(i, lane_queue)| {
            Arc::new(Lane::new(
                i,
                lane_queue,
                queue.max_samples_per_send,
                queue.batch_send_deadline.get(),
                metrics.clone(),
            ))
        })
        .collect()
}

/// The task that sends `lane`'s batches, one at a time and in order, until `flush` ends it.
fn spawn_sender(
    lane: Arc<Lane>,
    mut sender: BatchSender,
    mut flush: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(batch) = lane.next_batch(&mut flush).await {
            sender.deliver(&lane, batch).await;
            lane.finish_batch();
        }
    })
}

impl Endpoint {
    /// Builds the client, opens the lanes' spools when `spool` is set, and starts the sender
    /// and metadata tasks. `at` is the config path.
    pub fn start(
        config: &RemoteWriteConfig,
        at: &str,
        registry: Arc<FamilyRegistry>,
        spool: Option<&Spool>,
    ) -> Result<Arc<Endpoint>, EndpointError> {
        let (flush_tx, flush) = watch::channel(false);
        let client = Arc::new(RemoteWriteClient::new(config, at)?);
        let q = &config.queue;
        let metrics = Arc::new(EndpointMetrics::new(config.display_name(), q.lanes));
        let external_labels = external_labels(config);
        let write_relabel = WriteRelabel::new(&config.write_relabel_configs, &external_labels);
        // With rules, the rewritten series carry the external labels already (Prometheus
        // relabels after adding them), so the queues add none.
        let external_labels = if write_relabel.is_some() {
            Vec::new()
        } else {
            external_labels
        };
        let queues = open_queues(config, spool, &metrics, &external_labels)?;
        let lanes = lanes_over(queues, q, &metrics);
        let senders = lanes
            .iter()
            .map(|lane| {
                let sender = BatchSender::new(&client, &metrics, &external_labels, q);
                spawn_sender(lane.clone(), sender, flush.clone())
            })
            .collect();
        if config.send_metadata {
            // The metadata task ends by itself on flush; it holds nothing worth waiting for.
            tokio::spawn(metadata::run(
                client,
                registry,
                metrics.clone(),
                config.metadata_interval.get(),
                flush,
            ));
        }
        tracing::info!(endpoint = %metrics.name, url = %config.url, lanes = q.lanes, "remote-write endpoint started");
        Ok(Arc::new(Endpoint {
            lanes,
            when_full: q.when_full,
            write_relabel,
            metrics,
            senders: Mutex::new(senders),
            flush: flush_tx,
        }))
    }

    pub fn metrics(&self) -> &Arc<EndpointMetrics> {
        &self.metrics
    }

    /// Why the endpoint cannot keep a report's samples now: a lane is full and `when_full` is
    /// `block`, or a lane's spool refuses writes.
    pub fn refusal(&self) -> Option<Refusal> {
        let block = self.when_full == WhenFull::Block;
        self.lanes.iter().find_map(|lane| lane.refusal(block))
    }

    /// Queues samples, each on the lane of its series, without waiting (a full lane that
    /// evicts drops its oldest batches); notes in `receipt` where they are kept.
    pub fn enqueue(&self, samples: &[Sample], receipt: &mut Receipt) {
        let samples = samples.iter().map(ExportSample::from);
        let per_lane = match &self.write_relabel {
            None => self.by_lane(samples),
            Some(_) => self.by_lane(self.relabeled(samples.collect())),
        };
        for (lane, samples) in self.lanes.iter().zip(per_lane) {
            if !samples.is_empty() {
                receipt.add(lane.push(samples));
            }
        }
    }

    /// Queues samples all on the lane of `shard`, without waiting. A source whose series are
    /// its own (a scrape target) keeps each series' order this way, and its series stay
    /// together in a batch, where consecutive series share most labels.
    pub fn enqueue_export_on(&self, shard: u64, samples: Vec<ExportSample>) {
        let samples = self.relabeled(samples);
        if !samples.is_empty() {
            self.lane_of(shard).push(samples);
        }
    }

    /// [`Endpoint::enqueue_export_on`], waiting while the lane is full (see
    /// [`Lane::push_when_room`]) unless the endpoint's `when_full` is `drop_oldest`.
    pub async fn enqueue_when_room_on(&self, shard: u64, samples: Vec<ExportSample>) {
        if self.when_full == WhenFull::DropOldest {
            self.enqueue_export_on(shard, samples);
            return;
        }
        let samples = self.relabeled(samples);
        if !samples.is_empty() {
            self.lane_of(shard).push_when_room(samples).await;
        }
    }

    /// The samples as this endpoint's `write_relabel_configs` leave them (the ones dropped
    /// counted); unchanged without rules.
    fn relabeled(&self, mut samples: Vec<ExportSample>) -> Vec<ExportSample> {
        if let Some(write_relabel) = &self.write_relabel {
            let dropped = write_relabel.apply(&mut samples);
            self.metrics
                .samples_relabel_dropped
                .fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
        }
        samples
    }

    fn lane_of(&self, shard: u64) -> &Lane {
        &self.lanes[(shard % self.lanes.len() as u64) as usize]
    }

    fn by_lane(&self, samples: impl IntoIterator<Item = ExportSample>) -> Vec<Vec<ExportSample>> {
        let n = self.lanes.len();
        let mut per_lane: Vec<Vec<ExportSample>> = (0..n).map(|_| Vec::new()).collect();
        if n == 1 {
            per_lane[0].extend(samples);
            return per_lane;
        }
        for sample in samples {
            per_lane[(sample.series.shard_hash() % n as u64) as usize].push(sample);
        }
        per_lane
    }

    /// Stops the senders at once, without waiting for the batch in flight: a spooled endpoint
    /// keeps every unacknowledged record on disk, for the endpoint that opens its spool next
    /// (the batch in flight is sent again).
    pub fn hand_over_spool(&self) {
        self.flush.send_replace(true);
        for sender in self.senders.lock().expect("senders lock").drain(..) {
            sender.abort();
        }
    }

    /// Signals flush, waits up to `timeout` for the lanes to drain, then keeps what is left in
    /// the spool, if any, or drops it. Returns `(kept, dropped)` samples.
    pub async fn drain(&self, timeout: Duration) -> (u64, u64) {
        self.flush.send_replace(true);
        let senders: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.senders.lock().expect("senders lock"));
        let aborts: Vec<_> = senders.iter().map(|h| h.abort_handle()).collect();
        let all = join_senders(senders);
        if tokio::time::timeout(timeout, all).await.is_err() {
            for abort in aborts {
                abort.abort();
            }
        }
        self.lanes
            .iter()
            .map(|lane| lane.drop_remaining())
            .fold((0, 0), |(k, d), (kept, dropped)| (k + kept, d + dropped))
    }
}

/// Awaits every handle (a panicked or aborted sender counts as finished).
async fn join_senders(handles: Vec<JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

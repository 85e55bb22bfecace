//! The on-disk [`BatchQueue`] of a lane: each push is encoded into request bodies at once
//! (written in the long-copy form, `meshtap_remotewrite::long_copies`, and kept in memory as
//! sent; a body read back from disk is expanded when taken) and appended to the lane's spool
//! with one write (the lane writes every push through, so a report
//! is answered only once its samples are in the spool); the sender reads records back in
//! order, joining consecutive records into one request of at most `max_samples_per_send`.
//! A push is cut into records at the boundaries of those requests (the first record fills the
//! request the previous pushes left open), so a request holds `max_samples_per_send` samples
//! however the pushes fall, as it does without a spool.
//!
//! Owns the hand-over between the encoder and `crate::spool::LaneSpool`, and what happens
//! when the disk refuses a write: the batch waits in memory (bounded by the lane's memory
//! capacity, in order, behind nothing newer) and is written before anything else once the disk
//! takes writes again; while the disk stays empty the sender takes such batches straight from
//! memory. It must not touch the files itself.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::queue::{Batch, BatchQueue, Outgoing, Refusal};
use crate::export::joined_body::join_records;
use crate::export::receipt::Stored;
use crate::ops::metrics::{DropReason, EndpointMetrics};
use crate::spool::{
    disk_io, BodyForm, LaneSpool, NewRecord, RecordMeta, Skipped, SpoolError, SpooledBatch,
};
use meshtap_remotewrite::encoder::RequestEncoder;
use meshtap_remotewrite::long_copies;

/// Where the batch handed out last came from.
#[derive(Clone, Copy)]
enum Taken {
    Spool { samples: usize },
    Memory { samples: usize },
}

/// A lane's spool with the encoder that fills it.
pub struct SpoolQueue {
    spool: LaneSpool,
    encoder: RequestEncoder,
    external_labels: Vec<(String, String)>,
    /// Batches the disk refused, oldest first; written before anything newer.
    stalled: VecDeque<Batch>,
    stalled_samples: usize,
    memory_capacity: usize,
    max_samples_per_send: usize,
    /// Samples of the records that the sender, joining from the oldest, puts in the last
    /// request (see [`SpoolQueue::record_sizes`]).
    open_request: usize,
    taken: Option<Taken>,
    /// The last write failed (errors are logged when this turns on, and when it turns off).
    write_failing: bool,
    skipped_seen: Skipped,
    lane: usize,
    metrics: Arc<EndpointMetrics>,
}

impl SpoolQueue {
    /// `memory_capacity` samples may wait in memory while the disk refuses writes; requests
    /// hold at most `max_samples_per_send`.
    pub fn new(
        spool: LaneSpool,
        external_labels: Vec<(String, String)>,
        memory_capacity: usize,
        max_samples_per_send: usize,
        lane: usize,
        metrics: Arc<EndpointMetrics>,
    ) -> SpoolQueue {
        let queue = SpoolQueue {
            spool,
            encoder: RequestEncoder::with_long_form(),
            external_labels,
            stalled: VecDeque::new(),
            stalled_samples: 0,
            memory_capacity,
            max_samples_per_send: max_samples_per_send.max(1),
            open_request: 0,
            taken: None,
            write_failing: false,
            skipped_seen: Skipped::default(),
            lane,
            metrics,
        };
        queue.update_gauge();
        queue
    }

    /// Writes stalled batches to the spool, oldest first, until one fails; returns the samples
    /// of unsent records the spool evicted.
    fn write_stalled(&mut self) -> Vec<u64> {
        let mut evicted = Vec::new();
        while let Some(batch) = self.stalled.front() {
            let sizes = self.record_sizes(batch.len());
            let records = self.encode_records(&sizes);
            let spool = &mut self.spool;
            match disk_io(|| spool.append_all(records)) {
                Ok(dropped) => evicted.extend(dropped),
                Err(e) => {
                    self.metrics
                        .spool_write_errors
                        .fetch_add(1, Ordering::Relaxed);
                    if !std::mem::replace(&mut self.write_failing, true) {
                        tracing::error!(endpoint = %self.metrics.name, lane = self.lane, error = %e, "spool write failed; batches wait in memory until the disk takes writes again");
                    }
                    break;
                }
            }
            if std::mem::take(&mut self.write_failing) {
                tracing::info!(endpoint = %self.metrics.name, lane = self.lane, "spool writes work again");
            }
            for size in sizes {
                self.open_request = self.request_after(size);
            }
            let batch = self.stalled.pop_front().expect("front exists");
            self.stalled_samples -= batch.len();
        }
        while self.stalled_samples > self.memory_capacity && self.stalled.len() > 1 {
            let old = self.stalled.pop_front().expect("more than one");
            self.stalled_samples -= old.len();
            evicted.push(old.len() as u64);
        }
        self.update_gauge();
        evicted
    }

    /// The samples of each record a batch of `samples` is cut into: the first fills the open
    /// request, the next ones fill a request each, the last holds the rest.
    fn record_sizes(&self, samples: usize) -> Vec<usize> {
        let max = self.max_samples_per_send;
        let room = match max - self.open_request {
            0 => max,
            room => room,
        };
        let first = samples.min(room);
        let rest = samples - first;
        std::iter::once(first)
            .chain(std::iter::repeat_n(max, rest / max))
            .chain(std::iter::once(rest % max))
            .filter(|&n| n > 0)
            .collect()
    }

    /// The samples of the last request once a record of `samples` is appended (the sender
    /// joins a record into the request while the request stays within the maximum).
    fn request_after(&self, samples: usize) -> usize {
        if self.open_request + samples > self.max_samples_per_send {
            samples
        } else {
            self.open_request + samples
        }
    }

    /// The records of the oldest stalled batch, cut into `sizes`: each encoded into a request
    /// body, written in the long-copy form and kept in memory as it is sent.
    fn encode_records(&mut self, sizes: &[usize]) -> Vec<NewRecord> {
        let batch = self.stalled.front().expect("a stalled batch");
        let mut start = 0;
        sizes
            .iter()
            .map(|&n| {
                let samples = &batch.samples[start..start + n];
                start += n;
                let (oldest_ms, newest_ms) =
                    samples.iter().fold((i64::MAX, i64::MIN), |(lo, hi), s| {
                        (lo.min(s.timestamp_ms), hi.max(s.timestamp_ms))
                    });
                let meta = RecordMeta {
                    samples: n as u32,
                    oldest_ms,
                    newest_ms,
                    form: BodyForm::LongCopies,
                };
                let as_sent = self.encoder.encode(samples, &self.external_labels).to_vec();
                let long = self
                    .encoder
                    .long_form()
                    .expect("the spool's encoder writes it");
                NewRecord {
                    meta,
                    body: long.to_vec(),
                    as_sent: Some(as_sent),
                }
            })
            .collect()
    }

    /// Tries the disk again for batches it refused (evictions counted here, as no push
    /// returns them).
    fn retry_stalled(&mut self) {
        if !self.stalled.is_empty() {
            let evicted: u64 = self.write_stalled().iter().sum();
            self.metrics.add_dropped(DropReason::QueueFull, evicted);
        }
    }

    /// Hands out the next records, joined while they fit in `max_samples`; `Err` when the
    /// next one cannot be read now.
    fn take_spooled(&mut self, max_samples: usize) -> Result<Option<SpooledBatch>, ()> {
        let first = match self.take_record() {
            Ok(Some(first)) => first,
            Ok(None) => return Ok(None),
            Err(e) => {
                // What waits in memory is newer: nothing goes before the record that failed.
                tracing::error!(endpoint = %self.metrics.name, lane = self.lane, error = %e, "spool: cannot read the next record; trying again at the next batch");
                return Err(());
            }
        };
        let mut records = vec![first];
        let mut samples = records[0].meta.samples as usize;
        while let Some(next) = self.spool.next_samples() {
            if samples + next as usize > max_samples {
                break;
            }
            match self.take_record() {
                Ok(Some(record)) => {
                    samples += record.meta.samples as usize;
                    records.push(record);
                }
                // Skipped or unreadable now: send what was read; the rest comes next time.
                Ok(None) | Err(_) => break,
            }
        }
        let (joined, unreadable) = join_records(records);
        if unreadable > 0 {
            tracing::error!(endpoint = %self.metrics.name, lane = self.lane, samples = unreadable, "spool: a record's body could not be decoded; its samples are dropped");
            self.metrics
                .add_dropped(DropReason::SpoolUnreadable, unreadable);
        }
        Ok(Some(joined))
    }

    /// The next record, its body as it is sent: from memory when the spool still holds its
    /// body (the usual case: the sender keeps up), otherwise read back from the disk.
    fn take_record(&mut self) -> Result<Option<SpooledBatch>, SpoolError> {
        loop {
            let record = match self.spool.take_fresh() {
                Some(fresh) => fresh,
                None => match disk_io(|| self.spool.take())? {
                    Some(read) => read,
                    None => return Ok(None),
                },
            };
            if let Some(record) = self.as_sent(record) {
                return Ok(Some(record));
            }
        }
    }

    /// A record with its long-copy body expanded into snappy's own (`None` when it does not
    /// expand, which only damage that its checksum missed can cause: its samples are dropped
    /// and counted).
    fn as_sent(&self, mut record: SpooledBatch) -> Option<SpooledBatch> {
        if record.meta.form == BodyForm::LongCopies {
            let mut body = Vec::new();
            if let Err(e) = long_copies::expand(&record.body, &mut body) {
                tracing::error!(endpoint = %self.metrics.name, lane = self.lane, error = %e, samples = record.meta.samples, "spool: a record's body could not be expanded; its samples are dropped");
                self.metrics
                    .add_dropped(DropReason::SpoolUnreadable, u64::from(record.meta.samples));
                return None;
            }
            record.body = body;
            record.meta.form = BodyForm::AsSent;
        }
        Some(record)
    }

    fn update_gauge(&self) {
        self.metrics.lanes[self.lane]
            .spool_bytes
            .store(self.spool.bytes(), Ordering::Relaxed);
    }

    fn count_skipped(&mut self) {
        let now = self.spool.skipped();
        let records = now.records - self.skipped_seen.records;
        if records > 0 {
            self.metrics
                .spool_skipped_records
                .fetch_add(records, Ordering::Relaxed);
            self.metrics.add_dropped(
                DropReason::SpoolUnreadable,
                now.samples - self.skipped_seen.samples,
            );
        }
        self.skipped_seen = now;
    }
}

impl BatchQueue for SpoolQueue {
    fn push(&mut self, batch: Batch) -> Vec<u64> {
        self.stalled_samples += batch.len();
        self.stalled.push_back(batch);
        self.write_stalled()
    }

    fn stored(&self) -> Stored {
        if self.stalled.is_empty() {
            Stored::Spool(self.spool.last_round())
        } else {
            Stored::WaitingForDisk
        }
    }

    fn writes_through(&self) -> bool {
        true
    }

    fn refusal(&self, block: bool) -> Option<Refusal> {
        if !self.stalled.is_empty() {
            Some(Refusal::DiskRefusing)
        } else if block && !self.spool.has_room() {
            Some(Refusal::Full)
        } else {
            None
        }
    }

    fn take(&mut self, max_samples: usize) -> Option<Outgoing> {
        let spooled = self.take_spooled(max_samples);
        self.count_skipped();
        if self.spool.next_samples().is_none() {
            // The request just taken was the last one: the next record starts a new one.
            self.open_request = 0;
        }
        match spooled {
            Ok(Some(spooled)) => {
                self.taken = Some(Taken::Spool {
                    samples: spooled.meta.samples as usize,
                });
                return Some(Outgoing::Spooled(spooled));
            }
            Ok(None) => {}
            Err(()) => return None,
        }
        // The disk is empty: what waits in memory is the oldest, sent a request at a time.
        let front = self.stalled.front_mut()?;
        let batch = if front.len() > max_samples {
            let rest = front.samples.split_off(max_samples);
            Batch::new(std::mem::replace(&mut front.samples, rest))
        } else {
            self.stalled.pop_front().expect("front exists")
        };
        self.stalled_samples -= batch.len();
        self.taken = Some(Taken::Memory {
            samples: batch.len(),
        });
        Some(Outgoing::Samples(batch))
    }

    fn finish(&mut self) {
        if let Some(Taken::Spool { .. }) = self.taken.take() {
            if let Err(e) = self.spool.finish() {
                tracing::error!(endpoint = %self.metrics.name, lane = self.lane, error = %e, "spool: could not acknowledge a sent record (it may be sent again after a restart)");
            }
            self.update_gauge();
        }
        self.retry_stalled();
    }

    fn has_room(&self, _unsealed: usize, _incoming: usize) -> bool {
        self.spool.has_room() && self.stalled_samples < self.memory_capacity
    }

    fn queued_samples(&self) -> usize {
        self.spool.unread_samples() as usize + self.stalled_samples
    }

    fn oldest_ms(&self) -> Option<i64> {
        self.spool
            .next_oldest_ms()
            .or_else(|| self.stalled.front().and_then(Batch::oldest_ms))
    }

    fn keep_for_restart(&mut self) -> Option<(u64, u64)> {
        self.retry_stalled();
        if let Err(e) = disk_io(|| self.spool.sync()) {
            tracing::error!(endpoint = %self.metrics.name, lane = self.lane, error = %e, "spool: could not sync to disk at shutdown");
        }
        // A record being sent stays on disk; a batch being sent from memory is lost.
        let (in_flight_kept, in_flight_lost) = match self.taken {
            Some(Taken::Spool { samples }) => (samples, 0),
            Some(Taken::Memory { samples }) => (0, samples),
            None => (0, 0),
        };
        let kept = self.spool.unread_samples() + in_flight_kept as u64;
        Some((kept, (self.stalled_samples + in_flight_lost) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::remote_write::queue::test_batch as batch;

    fn oldest(outgoing: Option<Outgoing>) -> (&'static str, i64) {
        match outgoing.expect("a batch") {
            Outgoing::Samples(b) => ("memory", b.oldest_ms().unwrap()),
            Outgoing::Spooled(s) => ("spool", s.meta.oldest_ms),
        }
    }

    /// A spooled queue in a fresh directory `meshtap-spool-<name>-<pid>` (1 MiB spool,
    /// `segment_bytes`-byte segments, requests of `max_samples` samples), and its metrics.
    fn queue_in(
        name: &str,
        segment_bytes: u64,
        max_samples: usize,
    ) -> (std::path::PathBuf, SpoolQueue, Arc<EndpointMetrics>) {
        let dir = std::env::temp_dir().join(format!("meshtap-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (spool, _) = LaneSpool::open(&dir, 1 << 20, segment_bytes).unwrap();
        let metrics = Arc::new(EndpointMetrics::new("rw", 1));
        let queue = SpoolQueue::new(spool, vec![], 100, max_samples, 0, metrics.clone());
        (dir, queue, metrics)
    }

    #[test]
    fn batches_the_disk_refuses_wait_in_memory_in_order_until_it_takes_writes_again() {
        // One-byte segments: every append opens a new file.
        let (dir, mut queue, metrics) = queue_in("queue", 1, 1000);
        assert!(queue.push(batch(3, 1)).is_empty());
        assert_eq!(queue.queued_samples(), 3);
        assert!(metrics.lanes[0].spool_bytes.load(Ordering::Relaxed) > 0);

        // The directory vanishes: new files cannot be made (batch 1 was written, and its
        // body is still in memory: it is sent from there).
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(queue.push(batch(4, 2)).is_empty());
        assert!(queue.push(batch(5, 3)).is_empty());
        assert_eq!(
            metrics.spool_write_errors.load(Ordering::Relaxed),
            2,
            "one per push"
        );
        assert_eq!(queue.queued_samples(), 3 + 4 + 5);
        assert_eq!(oldest(queue.take(1000)), ("spool", 1));
        assert_eq!(metrics.spool_skipped_records.load(Ordering::Relaxed), 0);
        queue.finish();
        assert_eq!(oldest(queue.take(1000)), ("memory", 2));
        assert_eq!(metrics.dropped(DropReason::SpoolUnreadable), 0);
        queue.finish();

        // The disk works again: what waited goes first, then the new batch, all on disk.
        std::fs::create_dir_all(&dir).unwrap();
        assert!(queue.push(batch(6, 4)).is_empty());
        assert_eq!(queue.queued_samples(), 5 + 6);
        // At most 5 samples per request: the records go one by one.
        assert_eq!(oldest(queue.take(5)), ("spool", 3));
        queue.finish();
        assert_eq!(oldest(queue.take(5)), ("spool", 4));
        queue.finish();
        assert!(queue.take(1000).is_none());
        // Beyond the memory capacity, the oldest waiting batch goes.
        std::fs::remove_dir_all(&dir).unwrap();
        let evicted: Vec<u64> = (0..3).flat_map(|i| queue.push(batch(40, 10 + i))).collect();
        assert_eq!(evicted, [40]);
        assert_eq!(queue.queued_samples(), 80);
        assert_eq!(queue.keep_for_restart(), Some((0, 80)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn consecutive_records_are_joined_up_to_the_request_size() {
        let (dir, mut queue, _) = queue_in("join", 1 << 16, 1000);
        for (n, ts) in [(3, 1), (4, 2), (5, 3)] {
            queue.push(batch(n, ts));
            assert!(matches!(queue.stored(), Stored::Spool(None)));
        }
        let Some(Outgoing::Spooled(first)) = queue.take(7) else {
            panic!("a spooled batch");
        };
        assert_eq!((first.meta.samples, first.meta.oldest_ms), (7, 1));
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&first.body)
            .unwrap();
        let request =
            <meshtap_remotewrite::proto::WriteRequest as prost::Message>::decode(&raw[..]);
        assert_eq!(request.unwrap().timeseries.len(), 7);
        queue.finish();
        assert_eq!(queue.queued_samples(), 5);
        assert_eq!(oldest(queue.take(7)), ("spool", 3));
        queue.finish();
        // Acknowledged together: a reopened spool holds nothing.
        drop(queue);
        let (_, recovered) = LaneSpool::open(&dir, 1 << 20, 1 << 16).unwrap();
        assert_eq!(recovered.records, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `n` scraped samples of 20 series with long label sets, as a histogram's buckets.
    fn scraped_batch(n: usize, ts: i64) -> Batch {
        use meshtap_remotewrite::encoded_series::LabelInterner;
        use meshtap_remotewrite::sample::{ExportSample, ExportSeries};

        let mut interner = LabelInterner::default();
        let pod = "reviews-v1-7d8f9c6b5-x2k4q.default.svc.cluster.local".repeat(4);
        let samples = (0..n)
            .map(|i| {
                let le = (i % 20).to_string();
                let labels = [
                    ("__name__", "istio_request_duration_milliseconds_bucket"),
                    ("destination_workload", &pod[..]),
                    ("le", &le[..]),
                    ("source_workload", &pod[..]),
                ];
                ExportSample {
                    series: ExportSeries::Encoded(std::sync::Arc::new(interner.series(labels))),
                    value: i as f64,
                    timestamp_ms: ts,
                }
            })
            .collect();
        Batch::new(samples)
    }

    #[test]
    fn records_are_spooled_in_the_long_copy_form_and_sent_in_snappys_own() {
        let (dir, mut queue, metrics) = queue_in("long", 1 << 20, 1000);
        let sent_form = RequestEncoder::new()
            .encode(&scraped_batch(400, 7).samples, &[])
            .to_vec();
        queue.push(scraped_batch(400, 7));
        let segment = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| path.extension().is_some_and(|e| e == "seg"))
            .expect("a segment");
        let on_disk = std::fs::read(segment).unwrap();
        assert_eq!(&on_disk[..4], b"MTS2");
        assert!(
            on_disk.len() * 3 < sent_form.len() * 2,
            "{} bytes on disk for a {}-byte body",
            on_disk.len(),
            sent_form.len()
        );
        // Sent from memory, and read back from the disk after a restart: the same bytes.
        let Some(Outgoing::Spooled(fresh)) = queue.take(1000) else {
            panic!("a spooled batch");
        };
        assert_eq!(
            (fresh.body, fresh.meta.form),
            (sent_form.clone(), BodyForm::AsSent)
        );
        drop(queue);
        let (spool, recovered) = LaneSpool::open(&dir, 1 << 20, 1 << 20).unwrap();
        assert_eq!(recovered.records, 1);
        let mut queue = SpoolQueue::new(spool, vec![], 100, 1000, 0, metrics.clone());
        let Some(Outgoing::Spooled(read)) = queue.take(1000) else {
            panic!("a spooled batch");
        };
        assert_eq!(read.body, sent_form);
        queue.finish();
        // A record of the form written before (the body as sent) is sent as it is.
        drop(queue);
        let (mut spool, _) = LaneSpool::open(&dir, 1 << 20, 1 << 20).unwrap();
        let meta = RecordMeta {
            samples: 400,
            oldest_ms: 7,
            newest_ms: 7,
            form: BodyForm::AsSent,
        };
        spool.append(meta, &sent_form).unwrap();
        drop(spool);
        let (spool, _) = LaneSpool::open(&dir, 1 << 20, 1 << 20).unwrap();
        let mut queue = SpoolQueue::new(spool, vec![], 100, 1000, 0, metrics.clone());
        let Some(Outgoing::Spooled(old)) = queue.take(1000) else {
            panic!("a spooled batch");
        };
        assert_eq!(old.body, sent_form);
        assert_eq!(metrics.dropped(DropReason::SpoolUnreadable), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_body_that_does_not_expand_is_dropped_and_counted_and_the_next_one_is_sent() {
        let (dir, mut queue, metrics) = queue_in("unexpandable", 1 << 20, 1000);
        let meta = RecordMeta {
            samples: 5,
            oldest_ms: 1,
            newest_ms: 1,
            form: BodyForm::LongCopies,
        };
        // A long copy reaching before the body's start.
        queue
            .spool
            .append(meta, &[20, 0, b'x', 1, 0, 9, 19])
            .unwrap();
        queue.push(batch(3, 2));
        assert_eq!(oldest(queue.take(1000)), ("spool", 2));
        assert_eq!(metrics.dropped(DropReason::SpoolUnreadable), 5);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Samples in each request body the queue hands out, taking `max` at a time until empty.
    fn request_sizes(queue: &mut SpoolQueue, max: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        while let Some(outgoing) = queue.take(max) {
            let n = match &outgoing {
                Outgoing::Spooled(spooled) => {
                    let raw = snap::raw::Decoder::new()
                        .decompress_vec(&spooled.body)
                        .unwrap();
                    let request =
                        <meshtap_remotewrite::proto::WriteRequest as prost::Message>::decode(
                            &raw[..],
                        );
                    request.unwrap().timeseries.len()
                }
                Outgoing::Samples(batch) => batch.len(),
            };
            assert_eq!(n, outgoing.len(), "the header's count matches the body");
            sizes.push(n);
            queue.finish();
        }
        sizes
    }

    #[test]
    fn a_push_is_written_at_once_and_cut_at_the_requests_boundaries() {
        // One-byte segments: every write opens a new file.
        let (dir, mut queue, metrics) = queue_in("cut", 1, 10);
        for ts in 1..=3 {
            assert!(queue.push(batch(25, ts)).is_empty());
        }
        let segments = std::fs::read_dir(dir.join(".")).unwrap().count() - 1;
        assert_eq!(segments, 3, "one write per push (and the ack file)");
        assert_eq!(
            request_sizes(&mut queue, 10),
            [10; 7].into_iter().chain([5]).collect::<Vec<_>>()
        );
        // Pushes after the last request was taken start a new one.
        queue.push(batch(4, 4));
        queue.push(batch(8, 5));
        assert_eq!(request_sizes(&mut queue, 10), [10, 2]);
        // Batches waiting in memory while the disk refuses go a request at a time too.
        std::fs::remove_dir_all(&dir).unwrap();
        queue.push(batch(25, 6));
        assert_eq!(request_sizes(&mut queue, 10), [10, 10, 5]);
        assert_eq!(metrics.dropped(DropReason::SpoolUnreadable), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

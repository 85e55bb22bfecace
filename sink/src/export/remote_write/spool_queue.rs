//! The on-disk [`BatchQueue`] of a lane: each push is encoded into request bodies at once
//! (written as sent while the sender keeps up; in the long-copy form,
//! `meshtap_remotewrite::long_copies`, when it is behind and they will wait on disk, kept in
//! memory as sent too; a long-copy body read back from disk is expanded when taken) and
//! appended to the lane's spool
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
            encoder: RequestEncoder::new(),
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
    /// body, written as it is sent; or, when the sender is behind and the records will wait on
    /// disk, written in the long-copy form and kept in memory as it is sent.
    fn encode_records(&mut self, sizes: &[usize]) -> Vec<NewRecord> {
        let batch = self.stalled.front().expect("a stalled batch");
        self.encoder.set_long_form(self.spool.sender_behind());
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
                let meta = |form| RecordMeta {
                    samples: n as u32,
                    oldest_ms,
                    newest_ms,
                    form,
                };
                let body = self.encoder.encode_owned(samples, &self.external_labels);
                match body.long_form {
                    Some(long) => NewRecord {
                        meta: meta(BodyForm::LongCopies),
                        body: long,
                        as_sent: Some(body.snappy),
                    },
                    None => NewRecord::new(meta(BodyForm::AsSent), body.snappy),
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
            record.body = body.into();
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
#[path = "spool_queue_tests.rs"]
mod tests;

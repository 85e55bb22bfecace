//! Sealed batches waiting for delivery to one endpoint lane, behind the [`BatchQueue`] trait.
//!
//! This is the seam for durability: [`MemoryQueue`] keeps batches in memory, bounded by a
//! sample capacity (evicting the OLDEST batches when full, unless the endpoint's `when_full` is
//! `block`, whose sources wait or are refused instead); `super::spool_queue::SpoolQueue` keeps
//! them on disk (`push` appends an encoded record at once — the lane writes every push through,
//! so nothing it accepted lives only in memory — `take` reads records back, `finish`
//! acknowledges them). The lane (`super::lane`) calls these in that order and never looks
//! inside. `Stored` tells a pusher where its samples ended up.

use std::collections::VecDeque;

use crate::export::receipt::Stored;
use crate::spool::SpooledBatch;
use meshtap_remotewrite::sample::ExportSample;

/// Samples sent together in one request.
#[derive(Debug)]
pub struct Batch {
    pub samples: Vec<ExportSample>,
}

impl Batch {
    pub fn new(samples: Vec<ExportSample>) -> Batch {
        Batch { samples }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Timestamp of the oldest sample, if any.
    pub fn oldest_ms(&self) -> Option<i64> {
        self.samples.iter().map(|s| s.timestamp_ms).min()
    }
}

/// What a queue hands out for sending: samples to encode, or a body encoded when spooled.
#[derive(Debug)]
pub enum Outgoing {
    Samples(Batch),
    Spooled(SpooledBatch),
}

impl Outgoing {
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Samples(batch) => batch.len(),
            Outgoing::Spooled(spooled) => spooled.meta.samples as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn oldest_ms(&self) -> Option<i64> {
        match self {
            Outgoing::Samples(batch) => batch.oldest_ms(),
            Outgoing::Spooled(spooled) => Some(spooled.meta.oldest_ms),
        }
    }
}

/// Why a lane cannot take a report's samples now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The queue (or spool) is at capacity and the endpoint's `when_full` is `block`.
    #[error("queue full (when_full: block)")]
    Full,
    /// The spool refuses writes (full disk, read-only volume, ...).
    #[error("the spool refuses writes")]
    DiskRefusing,
}

/// Storage of sealed batches for one lane, oldest first.
pub trait BatchQueue: Send {
    /// Appends a batch; returns the sample counts of unsent batches evicted (oldest first) to
    /// stay within capacity.
    fn push(&mut self, batch: Batch) -> Vec<u64>;
    /// Where the batches pushed so far are kept.
    fn stored(&self) -> Stored;
    /// True when every push must be sealed at once, whole (a spool: what is pushed is written
    /// before the pusher is answered; the queue cuts it into requests); batching then happens
    /// when taking.
    fn writes_through(&self) -> bool;
    /// Takes the oldest batch for sending (a write-through queue joins consecutive records
    /// into one batch of at most `max_samples` samples).
    fn take(&mut self, max_samples: usize) -> Option<Outgoing>;
    /// The batches taken so far are done with (delivered, refused or dropped).
    fn finish(&mut self);
    /// Why new samples cannot be kept now, if they cannot; `block` when the endpoint's
    /// `when_full` is `block` (otherwise a full queue drops its oldest batches instead).
    fn refusal(&self, block: bool) -> Option<Refusal>;
    /// Whether `incoming` more samples may be added now, with `unsealed` samples pending in
    /// the lane (something always fits in an empty lane).
    fn has_room(&self, unsealed: usize, incoming: usize) -> bool;
    /// Samples stored (not counting a taken batch).
    fn queued_samples(&self) -> usize;
    /// Timestamp of the oldest stored sample.
    fn oldest_ms(&self) -> Option<i64>;
    /// At shutdown, after the pending batch was pushed: keeps what is stored (and a batch
    /// taken but not finished) for the next start, returning the samples `(kept, lost)`.
    /// `None` when nothing survives a restart.
    fn keep_for_restart(&mut self) -> Option<(u64, u64)>;
}

/// In-memory [`BatchQueue`] bounded by a number of samples.
pub struct MemoryQueue {
    batches: VecDeque<(Batch, Option<i64>)>,
    samples: usize,
    capacity: usize,
    /// Drop the oldest batches past `capacity` (`when_full: drop_oldest`); otherwise the
    /// sources wait or are refused before it is reached, and a push never drops anything.
    evicts: bool,
}

impl MemoryQueue {
    pub fn new(capacity_samples: usize, evicts: bool) -> MemoryQueue {
        MemoryQueue {
            batches: VecDeque::new(),
            samples: 0,
            capacity: capacity_samples,
            evicts,
        }
    }
}

impl BatchQueue for MemoryQueue {
    fn push(&mut self, batch: Batch) -> Vec<u64> {
        self.samples += batch.len();
        let oldest = batch.oldest_ms();
        self.batches.push_back((batch, oldest));
        let mut evicted = Vec::new();
        while self.evicts && self.samples > self.capacity && self.batches.len() > 1 {
            let (old, _) = self.batches.pop_front().expect("more than one batch");
            self.samples -= old.len();
            evicted.push(old.len() as u64);
        }
        evicted
    }

    fn stored(&self) -> Stored {
        Stored::Memory
    }

    fn writes_through(&self) -> bool {
        false
    }

    fn refusal(&self, block: bool) -> Option<Refusal> {
        (block && self.samples >= self.capacity).then_some(Refusal::Full)
    }

    fn take(&mut self, _max_samples: usize) -> Option<Outgoing> {
        let (batch, _) = self.batches.pop_front()?;
        self.samples -= batch.len();
        Some(Outgoing::Samples(batch))
    }

    fn finish(&mut self) {
        // Memory holds nothing once a batch is taken.
    }

    fn has_room(&self, unsealed: usize, incoming: usize) -> bool {
        let held = unsealed + self.samples;
        held == 0 || held + incoming <= self.capacity
    }

    fn keep_for_restart(&mut self) -> Option<(u64, u64)> {
        None
    }

    fn queued_samples(&self) -> usize {
        self.samples
    }

    fn oldest_ms(&self) -> Option<i64> {
        self.batches.iter().filter_map(|(_, oldest)| *oldest).min()
    }
}

/// `n` samples of one series at `ts`, for the queues' tests.
#[cfg(test)]
pub(super) fn test_batch(n: usize, ts: i64) -> Batch {
    use std::sync::Arc;

    use meshtap_remotewrite::sample::ExportSeries;
    use meshtap_remotewrite::series::{SeriesId, SeriesLabels};

    let id = SeriesId {
        name: Arc::from("m"),
        labels: Arc::new(SeriesLabels::from_sorted(vec![])),
        le: None,
    };
    Batch::new(
        (0..n)
            .map(|i| ExportSample {
                series: ExportSeries::reported(id.clone()),
                value: i as f64,
                timestamp_ms: ts,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::test_batch as batch;
    use super::*;

    #[test]
    fn full_queue_evicts_the_oldest_batches() {
        let mut q = MemoryQueue::new(10, true);
        assert!(q.push(batch(4, 1)).is_empty());
        assert!(q.push(batch(4, 2)).is_empty());
        let evicted = q.push(batch(4, 3));
        assert_eq!(evicted, [4]);
        assert_eq!(q.queued_samples(), 8);
        assert_eq!(q.oldest_ms(), Some(2));
        assert!(!q.has_room(0, 3));
        assert!(q.has_room(0, 2));
        assert_eq!(q.refusal(false), None);
        assert_eq!(q.take(100).unwrap().oldest_ms(), Some(2));
        q.finish();
        assert_eq!(q.queued_samples(), 4);
    }

    #[test]
    fn a_blocking_queue_never_evicts_and_refuses_when_full() {
        let mut q = MemoryQueue::new(10, false);
        assert_eq!(q.refusal(true), None);
        assert!(q.push(batch(6, 1)).is_empty());
        assert!(
            q.push(batch(6, 2)).is_empty(),
            "over capacity, nothing dropped"
        );
        assert_eq!(q.queued_samples(), 12);
        assert_eq!(q.refusal(true), Some(Refusal::Full));
        q.take(100);
        q.finish();
        assert_eq!(q.refusal(true), None);
    }
}

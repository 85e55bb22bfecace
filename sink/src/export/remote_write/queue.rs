//! Sealed batches waiting for delivery to one endpoint lane, behind the [`BatchQueue`] trait.
//!
//! This is the seam for durability: today [`MemoryQueue`] keeps batches in memory, bounded by a
//! sample capacity, evicting the OLDEST batches when full. An on-disk spool (so nothing is lost
//! across restarts and long outages) implements the same trait: `push` appends a segment record,
//! `take` reads the next unfinished record, and `finish` marks it done so the segment can be
//! deleted. The lane (`super::lane`) calls these in that order and never looks inside.

use std::collections::VecDeque;

use crate::export::sample::ExportSample;

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

/// Storage of sealed batches for one lane, oldest first.
pub trait BatchQueue: Send {
    /// Appends a batch; returns the batches evicted (oldest first) to stay within capacity.
    fn push(&mut self, batch: Batch) -> Vec<Batch>;
    /// Takes the oldest batch for sending.
    fn take(&mut self) -> Option<Batch>;
    /// The batch taken last is done with (delivered, refused or dropped).
    fn finish(&mut self);
    /// Samples stored (not counting a taken batch).
    fn queued_samples(&self) -> usize;
    /// Timestamp of the oldest stored sample.
    fn oldest_ms(&self) -> Option<i64>;
}

/// In-memory [`BatchQueue`] bounded by a number of samples.
pub struct MemoryQueue {
    batches: VecDeque<(Batch, Option<i64>)>,
    samples: usize,
    capacity: usize,
}

impl MemoryQueue {
    pub fn new(capacity_samples: usize) -> MemoryQueue {
        MemoryQueue {
            batches: VecDeque::new(),
            samples: 0,
            capacity: capacity_samples,
        }
    }
}

impl BatchQueue for MemoryQueue {
    fn push(&mut self, batch: Batch) -> Vec<Batch> {
        self.samples += batch.len();
        let oldest = batch.oldest_ms();
        self.batches.push_back((batch, oldest));
        let mut evicted = Vec::new();
        while self.samples > self.capacity && self.batches.len() > 1 {
            let (old, _) = self.batches.pop_front().expect("more than one batch");
            self.samples -= old.len();
            evicted.push(old);
        }
        evicted
    }

    fn take(&mut self) -> Option<Batch> {
        let (batch, _) = self.batches.pop_front()?;
        self.samples -= batch.len();
        Some(batch)
    }

    fn finish(&mut self) {
        // Memory holds nothing once a batch is taken.
    }

    fn queued_samples(&self) -> usize {
        self.samples
    }

    fn oldest_ms(&self) -> Option<i64> {
        self.batches.iter().filter_map(|(_, oldest)| *oldest).min()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::export::sample::ExportSeries;
    use crate::series::{LabelSet, SeriesId};

    fn batch(n: usize, ts: i64) -> Batch {
        let id = SeriesId {
            name: Arc::from("m"),
            labels: Arc::new(LabelSet::from_sorted(vec![])),
            le: None,
        };
        Batch::new(
            (0..n)
                .map(|_| ExportSample {
                    series: ExportSeries::Labels(id.clone()),
                    value: 1.0,
                    timestamp_ms: ts,
                })
                .collect(),
        )
    }

    #[test]
    fn full_queue_evicts_the_oldest_batches() {
        let mut q = MemoryQueue::new(10);
        assert!(q.push(batch(4, 1)).is_empty());
        assert!(q.push(batch(4, 2)).is_empty());
        let evicted = q.push(batch(4, 3));
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].oldest_ms(), Some(1));
        assert_eq!(q.queued_samples(), 8);
        assert_eq!(q.oldest_ms(), Some(2));
        assert_eq!(q.take().unwrap().oldest_ms(), Some(2));
        q.finish();
        assert_eq!(q.queued_samples(), 4);
    }
}

//! One ordered sending lane of an endpoint: a pending batch being filled, sealed batches in a
//! [`BatchQueue`], and at most one batch in flight.
//!
//! With a queue that writes through (the spool), every push is sealed at once, whole (the
//! queue cuts it into requests), so nothing the lane accepted exists only in memory; batching
//! by size and age then decides when the sender takes, and the queue joins what it holds into
//! one request.
//!
//! Owns batching by size (`max_samples_per_send`) and by age (`batch_send_deadline`), the
//! queue-full accounting, waiting for room ([`Lane::push_when_room`]: the scrape stage waits
//! instead of losing samples, as Prometheus' shards do) and the lane's gauges. Delivery itself (HTTP, retries) belongs to
//! `super::batch_sender`; a lane only hands batches out in order, which keeps each series' samples in
//! timestamp order because a series always maps to the same lane.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::queue::{Batch, BatchQueue, Outgoing, Refusal};
use crate::export::receipt::Stored;
use crate::ops::metrics::{DropReason, EndpointMetrics};
use crate::spool::lock_off_worker;
use meshtap_remotewrite::sample::ExportSample;

struct LaneState {
    pending: Vec<ExportSample>,
    pending_since: Option<Instant>,
    pending_oldest_ms: i64,
    queue: Box<dyn BatchQueue>,
    in_flight: Option<(usize, i64)>,
    /// With a write-through queue: when the oldest record not yet taken was written.
    waiting_since: Option<Instant>,
}

/// A lane; shared by the ingest path (which fills it) and one sender task.
pub struct Lane {
    index: usize,
    state: Mutex<LaneState>,
    wake: Notify,
    /// Signalled whenever stored samples leave the lane (a batch taken or dropped).
    room: Notify,
    max_samples_per_send: usize,
    batch_send_deadline: Duration,
    /// The queue keeps every push at once (see [`BatchQueue::writes_through`]).
    write_through: bool,
    metrics: Arc<EndpointMetrics>,
}

impl Lane {
    pub fn new(
        index: usize,
        queue: Box<dyn BatchQueue>,
        max_samples_per_send: usize,
        batch_send_deadline: Duration,
        metrics: Arc<EndpointMetrics>,
    ) -> Lane {
        let write_through = queue.writes_through();
        // Records a previous run left are due at once.
        let waiting_since = (queue.queued_samples() > 0).then(|| {
            let now = Instant::now();
            now.checked_sub(batch_send_deadline).unwrap_or(now)
        });
        Lane {
            index,
            state: Mutex::new(LaneState {
                pending: Vec::new(),
                pending_since: None,
                pending_oldest_ms: i64::MAX,
                queue,
                in_flight: None,
                waiting_since,
            }),
            wake: Notify::new(),
            room: Notify::new(),
            max_samples_per_send,
            batch_send_deadline,
            write_through,
            metrics,
        }
    }

    /// The lane's state, locked. A spooled lane's lock is held across its disk writes, so
    /// there a taken lock is waited for off the worker (see `crate::spool::lock_off_worker`);
    /// a memory lane's holder never waits on anything.
    fn state(&self) -> MutexGuard<'_, LaneState> {
        let locked = if self.write_through {
            lock_off_worker(&self.state)
        } else {
            self.state.lock()
        };
        locked.expect("lane lock")
    }

    /// Why this lane cannot keep a report's samples now (`block`: the endpoint's `when_full`
    /// is `block`).
    pub fn refusal(&self, block: bool) -> Option<Refusal> {
        self.state().queue.refusal(block)
    }

    /// Appends samples (in order), waiting, one batch at a time, while the lane's queue has no
    /// room (see [`BatchQueue::has_room`]): the lane then never exceeds its capacity by more
    /// than one batch, and nothing is evicted however slow the endpoint is. The wait ends only when the sender
    /// takes or drops a batch.
    pub async fn push_when_room(&self, samples: Vec<ExportSample>) {
        let mut samples = samples.into_iter();
        while samples.len() > 0 {
            // A write-through queue cuts a push into requests itself: one push, one write.
            let chunk = if self.write_through {
                samples.len()
            } else {
                samples.len().min(self.max_samples_per_send)
            };
            loop {
                let room = self.room.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                {
                    let mut state = self.state();
                    if state.queue.has_room(state.pending.len(), chunk) {
                        break;
                    }
                    // Hand the partial batch to the sender now rather than at its deadline.
                    self.seal(&mut state);
                }
                self.wake.notify_one();
                room.await;
            }
            self.push(samples.by_ref().take(chunk));
        }
    }

    /// Appends samples (in order) without waiting; when the queue is full and evicts, its
    /// oldest batches are dropped (counted). The sender is woken when a batch is sealed or a
    /// new pending batch starts (so it can time the send deadline). Returns where the samples
    /// are kept: with a write-through queue they are sealed and stored before this returns.
    pub fn push(&self, samples: impl IntoIterator<Item = ExportSample>) -> Stored {
        let mut wake = false;
        let stored = {
            let mut state = self.state();
            for sample in samples {
                if state.pending.is_empty() {
                    state.pending_since = Some(Instant::now());
                    state.pending.reserve(self.max_samples_per_send);
                    wake = true;
                }
                state.pending_oldest_ms = state.pending_oldest_ms.min(sample.timestamp_ms);
                state.pending.push(sample);
                if !self.write_through && state.pending.len() >= self.max_samples_per_send {
                    self.seal(&mut state);
                    wake = true;
                }
            }
            if self.write_through && !state.pending.is_empty() {
                self.seal(&mut state);
                wake = true;
            }
            self.update_gauges(&state);
            state.queue.stored()
        };
        if wake {
            self.wake.notify_one();
        }
        stored
    }

    fn seal(&self, state: &mut LaneState) {
        if state.pending.is_empty() {
            return;
        }
        let batch = Batch::new(std::mem::take(&mut state.pending));
        state.pending_since = None;
        state.pending_oldest_ms = i64::MAX;
        if self.write_through && state.waiting_since.is_none() {
            state.waiting_since = Some(Instant::now());
        }
        for evicted in state.queue.push(batch) {
            self.metrics.add_dropped(DropReason::QueueFull, evicted);
            tracing::warn!(
                endpoint = %self.metrics.name,
                lane = self.index,
                samples = evicted,
                "remote-write queue full: dropped the oldest batch"
            );
        }
    }

    fn update_gauges(&self, state: &LaneState) {
        let in_flight = state.in_flight.map_or(0, |(n, _)| n);
        let queued = state.pending.len() + state.queue.queued_samples() + in_flight;
        let oldest = [
            state.pending_oldest_ms,
            state.queue.oldest_ms().unwrap_or(i64::MAX),
            state.in_flight.map_or(i64::MAX, |(_, ms)| ms),
        ]
        .into_iter()
        .min()
        .unwrap_or(i64::MAX);
        let gauges = &self.metrics.lanes[self.index];
        gauges
            .queued_samples
            .store(queued as u64, Ordering::Relaxed);
        gauges.oldest_unsent_ms.store(oldest, Ordering::Relaxed);
    }

    /// Waits for the next batch to send. When `flush` turns true the pending batch is sealed at
    /// once and `None` is returned when nothing is left.
    pub async fn next_batch(&self, flush: &mut watch::Receiver<bool>) -> Option<Outgoing> {
        loop {
            let wait = {
                let mut state = self.state();
                let flushing = *flush.borrow();
                let expired = |since: Option<Instant>| {
                    since.is_some_and(|s| s.elapsed() >= self.batch_send_deadline)
                };
                if flushing || expired(state.pending_since) {
                    self.seal(&mut state);
                }
                // A queue written through holds every push: it is taken from when a full
                // batch waits or its oldest record reached the deadline. Other queues hold
                // only sealed batches, sent at once.
                let due = flushing
                    || !self.write_through
                    || state.queue.queued_samples() >= self.max_samples_per_send
                    || expired(state.waiting_since);
                if due {
                    if let Some(batch) = state.queue.take(self.max_samples_per_send) {
                        state.in_flight =
                            Some((batch.len(), batch.oldest_ms().unwrap_or(i64::MAX)));
                        if state.queue.queued_samples() == 0 {
                            state.waiting_since = None;
                        }
                        self.update_gauges(&state);
                        self.room.notify_waiters();
                        return Some(batch);
                    }
                    // Nothing could be taken (empty, or unreadable for now): wait for a push.
                    if self.write_through {
                        state.waiting_since = None;
                    }
                }
                if flushing {
                    return None;
                }
                let since = if self.write_through {
                    state.waiting_since
                } else {
                    state.pending_since
                };
                since.map(|since| self.batch_send_deadline.saturating_sub(since.elapsed()))
            };
            let sleep = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600)));
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = sleep => {}
                changed = flush.changed() => {
                    if changed.is_err() {
                        // The exporter is gone: nobody can flush or fill this lane any more.
                        return None;
                    }
                }
            }
        }
    }

    /// The batch handed out last is done with; `remaining` samples of it are still in flight
    /// (fewer after age-based drops).
    pub fn set_in_flight(&self, remaining: usize, oldest_ms: Option<i64>) {
        let mut state = self.state();
        state.in_flight = Some((remaining, oldest_ms.unwrap_or(i64::MAX)));
        self.update_gauges(&state);
    }

    /// The batch handed out last is finished (delivered, refused or dropped).
    pub fn finish_batch(&self) {
        let mut state = self.state();
        state.in_flight = None;
        state.queue.finish();
        self.update_gauges(&state);
    }

    /// At shutdown: keeps what the queue can keep for the next start and counts the rest as
    /// dropped; returns `(kept, dropped)` samples.
    pub fn drop_remaining(&self) -> (u64, u64) {
        let mut state = self.state();
        self.seal(&mut state);
        let held = (state.queue.queued_samples() + state.in_flight.map_or(0, |(n, _)| n)) as u64;
        state.in_flight = None;
        let (kept, lost) = state.queue.keep_for_restart().unwrap_or_else(|| {
            while state.queue.take(usize::MAX).is_some() {
                state.queue.finish();
            }
            (0, held)
        });
        self.update_gauges(&state);
        self.room.notify_waiters();
        self.metrics.add_dropped(DropReason::Shutdown, lost);
        (kept, lost)
    }
}

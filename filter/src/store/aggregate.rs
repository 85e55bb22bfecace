//! Per-VM cumulative aggregation of request observations by label set, capped at `max_series`.
//!
//! Owns the hot path after label computation and the per-series memory budget. Label values are
//! interned into a [`StringTable`]; a series' 25 value ids are stored as five ids of 5-id groups
//! ([`GroupTable`]), so label sets that share a source, a destination or an outcome share their
//! storage. The values of configured extra dimensions (`overrides[].tags`, [`crate::record::dimensions`])
//! follow the 25 as one more id, of their tuple in an [`ExtraTable`] (0 when there are none).
//! Histograms count on the configured [`HistogramBounds`]. Totals are [`CompactValues`] (32-bit counts) in fixed-size chunks (no reallocation
//! spikes); a series whose counts fill up moves its values into 64-bit totals on the side.
//! [`Aggregator::record`] returns a [`SeriesSlot`] that later requests with the same inputs can
//! pass to [`Aggregator::record_at`] without recomputing labels; [`Aggregator::generation`]
//! changes whenever slots are invalidated. Past `max_series` distinct label sets, observations go
//! to ONE overflow series whose every label value is [`OVERFLOW_VALUE`], counted in
//! `overflow_observations`. It must not know how totals leave the VM (see [`crate::proxy::wire`]) nor
//! compute labels.

use std::collections::HashMap;

use crate::config::EnabledMetrics;
use crate::record::labels::{LabelValues, LABEL_COUNT};
use crate::store::buckets::HistogramBounds;
use crate::store::hashing::{hash_ids, WordBuild};
use crate::store::intern::{GroupTable, IdIndex, StringTable};
use crate::store::series::{CompactValues, Observation, SeriesValues};

/// Every label value of the overflow series.
pub(crate) const OVERFLOW_VALUE: &str = "overflow";

/// Label value ids per group.
const GROUP: usize = 5;
/// Groups per label set.
const GROUPS: usize = LABEL_COUNT / GROUP;
const _: () = assert!(GROUPS * GROUP == LABEL_COUNT);

/// Series per storage chunk.
const CHUNK: usize = 64;

/// What [`Aggregator::record`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    Existing,
    New,
    /// Went to the overflow series; `first` is true the first time (log once).
    Overflow {
        first: bool,
    },
}

/// Where a label set's totals are: a held series or the overflow series. Valid while
/// [`Aggregator::generation`] is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesSlot(u32);

impl SeriesSlot {
    pub(crate) const OVERFLOW: SeriesSlot = SeriesSlot(u32::MAX);
}

/// One label set and its totals.
#[derive(Debug, Clone, Copy)]
struct Entry {
    groups: [u32; GROUPS],
    /// The id of the extra dimension values' tuple ([`ExtraTable`]).
    extras: u32,
    values: CompactValues,
}

impl Entry {
    fn hash(&self) -> u64 {
        key_hash(&self.groups, self.extras)
    }
}

fn key_hash(groups: &[u32; GROUPS], extras: u32) -> u64 {
    if extras == 0 {
        hash_ids(groups)
    } else {
        hash_ids(groups) ^ u64::from(extras).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// Distinct tuples of extra dimension value ids; id 0 is the empty tuple (no extra dimensions).
#[derive(Debug, Default)]
struct ExtraTable {
    tuples: Vec<Box<[u32]>>,
    index: HashMap<Box<[u32]>, u32, WordBuild>,
}

impl ExtraTable {
    fn find(&self, ids: &[u32]) -> Option<u32> {
        if ids.is_empty() {
            return Some(0);
        }
        self.index.get(ids).copied()
    }

    fn intern(&mut self, ids: &[u32]) -> u32 {
        if let Some(id) = self.find(ids) {
            return id;
        }
        self.tuples.push(ids.into());
        let id = self.tuples.len() as u32;
        self.index.insert(ids.into(), id);
        id
    }

    fn get(&self, id: u32) -> &[u32] {
        match id {
            0 => &[],
            id => &self.tuples[id as usize - 1],
        }
    }
}

/// The cumulative totals of one worker VM.
#[derive(Debug)]
pub struct Aggregator {
    strings: StringTable,
    groups: GroupTable<GROUP>,
    extras: ExtraTable,
    /// Extra dimension values per label set (after the 25).
    extra_count: usize,
    bounds: HistogramBounds,
    chunks: Vec<Vec<Entry>>,
    len: usize,
    index: IdIndex,
    /// 64-bit totals moved out of series whose compact counts filled up, by series.
    spilled: HashMap<u32, SeriesValues, WordBuild>,
    max_series: usize,
    enabled: EnabledMetrics,
    overflow: SeriesValues,
    overflow_observations: u64,
    generation: u64,
}

impl Aggregator {
    /// Envoy's default buckets and no extra dimensions.
    pub fn new(max_series: usize, enabled: EnabledMetrics) -> Self {
        Aggregator::configured(max_series, enabled, HistogramBounds::default(), 0)
    }

    /// Histograms on `bounds`, and `extra_count` extra dimension values per label set.
    pub(crate) fn configured(
        max_series: usize,
        enabled: EnabledMetrics,
        bounds: HistogramBounds,
        extra_count: usize,
    ) -> Self {
        Aggregator {
            strings: StringTable::default(),
            groups: GroupTable::default(),
            extras: ExtraTable::default(),
            extra_count,
            bounds,
            chunks: Vec::new(),
            len: 0,
            index: IdIndex::default(),
            spilled: HashMap::default(),
            max_series,
            enabled,
            overflow: SeriesValues::default(),
            overflow_observations: 0,
            generation: 0,
        }
    }

    /// Adds one request's observation to its label set's totals: the 25 labels and the
    /// values of the extra dimensions (as many as configured).
    pub fn record(
        &mut self,
        labels: &LabelValues,
        extra: &[String],
        obs: Observation,
    ) -> (Recorded, SeriesSlot) {
        debug_assert_eq!(extra.len(), self.extra_count);
        // At the cap, a label set can only be held if all its values and groups are known:
        // look them up without interning, so new values past the cap take no memory.
        let full = self.len >= self.max_series;
        let Some(groups) = self.group_ids(labels, !full) else {
            return self.record_overflow(obs);
        };
        let Some(extras) = self.extra_id(extra, !full) else {
            return self.record_overflow(obs);
        };
        let hash = key_hash(&groups, extras);
        if let Some(id) = self.index.find(hash, |id| {
            let entry = self.entry(id);
            entry.groups == groups && entry.extras == extras
        }) {
            let slot = SeriesSlot(id);
            self.record_at(slot, obs);
            return (Recorded::Existing, slot);
        }
        if full {
            return self.record_overflow(obs);
        }
        let id = self.len as u32;
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let chunk = self
            .chunks
            .last_mut()
            .expect("a chunk with room was just ensured");
        chunk.push(Entry {
            groups,
            extras,
            values: CompactValues::default(),
        });
        self.len += 1;
        let Self { index, chunks, .. } = self;
        index.insert(hash, id, |id| {
            chunks[id as usize / CHUNK][id as usize % CHUNK].hash()
        });
        let slot = SeriesSlot(id);
        self.record_at(slot, obs);
        (Recorded::New, slot)
    }

    /// The group ids of a label set; with `intern` false, `None` as soon as a value or group
    /// is unknown.
    fn group_ids(&mut self, labels: &LabelValues, intern: bool) -> Option<[u32; GROUPS]> {
        let mut groups = [0u32; GROUPS];
        for (g, group) in groups.iter_mut().enumerate() {
            let mut ids = [0u32; GROUP];
            for (i, id) in ids.iter_mut().enumerate() {
                let value = labels.get(g * GROUP + i);
                *id = if intern {
                    self.strings.intern(value)
                } else {
                    self.strings.find(value)?
                };
            }
            *group = if intern {
                self.groups.intern(&ids)
            } else {
                self.groups.find(&ids)?
            };
        }
        Some(groups)
    }

    /// The tuple id of the extra values; with `intern` false, `None` as soon as one is unknown.
    fn extra_id(&mut self, extra: &[String], intern: bool) -> Option<u32> {
        if extra.is_empty() {
            return Some(0);
        }
        let ids: Option<Vec<u32>> = extra
            .iter()
            .map(|v| {
                if intern {
                    Some(self.strings.intern(v))
                } else {
                    self.strings.find(v)
                }
            })
            .collect();
        let ids = ids?;
        if intern {
            Some(self.extras.intern(&ids))
        } else {
            self.extras.find(&ids)
        }
    }

    fn record_overflow(&mut self, obs: Observation) -> (Recorded, SeriesSlot) {
        self.record_at(SeriesSlot::OVERFLOW, obs);
        let first = self.overflow_observations == 1;
        (Recorded::Overflow { first }, SeriesSlot::OVERFLOW)
    }

    /// Adds an observation to the series at `slot` (from [`Aggregator::record`] in this
    /// generation).
    #[inline]
    pub(crate) fn record_at(&mut self, slot: SeriesSlot, obs: Observation) {
        if slot == SeriesSlot::OVERFLOW {
            return self.record_overflow_at(obs);
        }
        let values = &mut self.chunks[slot.0 as usize / CHUNK][slot.0 as usize % CHUNK].values;
        if !values.observe(obs, self.enabled, &self.bounds) {
            self.spill(slot, obs);
        }
    }

    /// Adds an observation to the overflow series.
    #[cold]
    #[inline(never)]
    fn record_overflow_at(&mut self, obs: Observation) {
        observe_wide(&mut self.overflow, obs, self.enabled, &self.bounds);
        self.overflow_observations += 1;
    }

    /// Moves the full compact counts of the series at `slot` into its 64-bit totals on the
    /// side, then adds the observation to the emptied counts (once per 2^32 requests).
    #[cold]
    #[inline(never)]
    fn spill(&mut self, slot: SeriesSlot, obs: Observation) {
        let values = &mut self.chunks[slot.0 as usize / CHUNK][slot.0 as usize % CHUNK].values;
        self.spilled.entry(slot.0).or_default().add(&values.widen());
        *values = CompactValues::default();
        values.observe(obs, self.enabled, &self.bounds);
    }

    fn entry(&self, id: u32) -> &Entry {
        &self.chunks[id as usize / CHUNK][id as usize % CHUNK]
    }

    /// Changes whenever previously returned [`SeriesSlot`]s become invalid.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Distinct label sets held (the overflow series not included).
    pub fn series_count(&self) -> usize {
        self.len
    }

    pub(crate) fn overflow_observations(&self) -> u64 {
        self.overflow_observations
    }

    /// Values per label set: the 25 labels and the extra dimensions.
    pub(crate) fn label_count(&self) -> usize {
        LABEL_COUNT + self.extra_count
    }

    /// The held label sets with their totals, then the overflow series if it was used.
    pub(crate) fn series(&self) -> impl Iterator<Item = (SeriesLabels<'_>, SeriesValues)> {
        let overflow = (self.overflow_observations > 0)
            .then_some((SeriesLabels::Overflow(self.label_count()), self.overflow));
        (0..self.len as u32)
            .map(move |id| {
                let entry = self.entry(id);
                let mut values = entry.values.widen();
                if let Some(spilled) = self.spilled.get(&id) {
                    values.add(spilled);
                }
                let labels = SeriesLabels::Held {
                    groups: &entry.groups,
                    extras: self.extras.get(entry.extras),
                    aggregator: self,
                };
                (labels, values)
            })
            .chain(overflow)
    }

    /// Keeps only the held label sets `keep` accepts (the overflow series always stays), with
    /// their totals; returns how many were dropped. The storage is rebuilt, so the memory of
    /// dropped sets (their strings included) is freed, and slots are invalidated.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&[&str]) -> bool) -> usize {
        let mut kept = Aggregator::configured(
            self.max_series,
            self.enabled,
            self.bounds.clone(),
            self.extra_count,
        );
        let mut labels = LabelValues::default();
        let mut extra: Vec<String> = Vec::with_capacity(self.extra_count);
        let mut dropped = 0;
        for id in 0..self.len as u32 {
            let entry = self.entry(id);
            for (i, value) in labels.0.iter_mut().enumerate() {
                let group = self.groups.get(entry.groups[i / GROUP]);
                value.clear();
                value.push_str(self.strings.get(group[i % GROUP]));
            }
            extra.clear();
            let extra_ids = self.extras.get(entry.extras);
            extra.extend(extra_ids.iter().map(|v| self.strings.get(*v).to_string()));
            let values: Vec<&str> = labels.0.iter().chain(&extra).map(String::as_str).collect();
            if !keep(&values) {
                dropped += 1;
                continue;
            }
            let (_, slot) = kept.record(&labels, &extra, Observation::default());
            kept.chunks[slot.0 as usize / CHUNK][slot.0 as usize % CHUNK].values = entry.values;
            if let Some(spilled) = self.spilled.get(&id) {
                kept.spilled.insert(slot.0, *spilled);
            }
        }
        kept.overflow = self.overflow;
        kept.overflow_observations = self.overflow_observations;
        kept.generation = self.generation + 1;
        *self = kept;
        dropped
    }

    /// Forgets everything (the VM's totals were folded into the proxy's base elsewhere).
    pub(crate) fn clear(&mut self) {
        self.strings.clear();
        self.groups.clear();
        self.extras = ExtraTable::default();
        self.chunks.clear();
        self.len = 0;
        self.index.clear();
        self.spilled.clear();
        self.overflow = SeriesValues::default();
        self.overflow_observations = 0;
        self.generation += 1;
    }
}

/// The label values of a series from [`Aggregator::series`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum SeriesLabels<'a> {
    Held {
        groups: &'a [u32; GROUPS],
        extras: &'a [u32],
        aggregator: &'a Aggregator,
    },
    /// The overflow series, with this many values.
    Overflow(usize),
}

impl SeriesLabels<'_> {
    pub(crate) fn value(&self, index: usize) -> &str {
        match self {
            SeriesLabels::Held {
                groups,
                extras,
                aggregator,
            } => {
                if index >= LABEL_COUNT {
                    return aggregator.strings.get(extras[index - LABEL_COUNT]);
                }
                let group = aggregator.groups.get(groups[index / GROUP]);
                aggregator.strings.get(group[index % GROUP])
            }
            SeriesLabels::Overflow(_) => OVERFLOW_VALUE,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            SeriesLabels::Held { extras, .. } => LABEL_COUNT + extras.len(),
            SeriesLabels::Overflow(count) => *count,
        }
    }
}

fn observe_wide(
    values: &mut SeriesValues,
    o: Observation,
    enabled: EnabledMetrics,
    bounds: &HistogramBounds,
) {
    values.requests += 1;
    if enabled.request_duration {
        values.duration.observe(o.duration_ms, bounds.duration());
    }
    if enabled.request_bytes {
        values
            .request_bytes
            .observe(o.request_bytes, bounds.request_bytes());
    }
    if enabled.response_bytes {
        values
            .response_bytes
            .observe(o.response_bytes, bounds.response_bytes());
    }
}

#[cfg(test)]
mod tests;

//! Idle-series eviction: the proxy-wide eviction record and what every VM does with it.
//!
//! A label set unchanged for `series_idle_timeout` is evicted: the report stops carrying it (the
//! sink then writes a stale marker) and every worker VM frees it. Counters must never go
//! backwards while a set is alive, so no VM drops its part of a set on its own. Instead:
//!
//! - The leader decides proxy-wide ([`crate::proxy::idle::IdleTracker`], in the leader VM's memory: a
//!   new leader starts fresh, so a set is evicted at most one timeout late). It publishes an
//!   [`Eviction`] under `meshtap/evicted` (an epoch, the cumulative count, the sets of this epoch,
//!   at most [`MAX_SETS_PER_EPOCH`]) after removing the sets from the retired VMs' base
//!   ([`crate::proxy::coordinate::publish_eviction`]).
//! - Every VM reads the record each tick (one `get_shared_data`, decoded only when its CAS token
//!   changed, [`EvictionView`]), removes the sets from its totals ([`Eviction::apply`], which
//!   rebuilds the storage and invalidates request shortcuts) and writes the applied epoch in its
//!   snapshot. Until a VM's snapshot shows the epoch, the leader strips that VM's part of the
//!   sets ([`Eviction::strip`]), so an evicted set does not flap back into the report.
//! - The leader publishes the next epoch only when every live snapshot shows the current one, so
//!   one record is all a VM can lag behind; a VM that stalls is retired (and stripped when folded)
//!   before eviction goes on.
//! - A set that gets traffic again starts from 0 as a new series. Observations that land in a
//!   set in the one tick between the decision and a VM applying it are dropped with the set.
//!
//! Overflow sets are never evicted. This module must not decide when a set is idle nor write
//! shared data itself (that is [`crate::proxy::idle`] and [`crate::proxy::coordinate`]).

use std::collections::HashMap;

use prost::Message;

use crate::proxy::coordinate::SharedStore;
use crate::proxy::wire::{EvictedSetPb, EvictionRecordPb, TotalsPb};
use crate::store::aggregate::Aggregator;
use crate::store::counters::CounterTotals;
use crate::store::hashing::{hash_bytes, WordBuild};

/// Key of the eviction record.
pub(crate) const EVICTED_KEY: &str = "meshtap/evicted";
/// Label sets one epoch evicts at most (the rest wait for the next epoch).
pub(crate) const MAX_SETS_PER_EPOCH: usize = 1024;
/// The kind number of request label sets in an [`EvictedSetPb`].
pub(crate) const REQUEST_KIND: u32 = 0;

/// A label set: its kind ([`REQUEST_KIND`] or a [`CounterKind`](crate::store::counters::CounterKind) number) and label values.
pub(crate) type LabelSet = (u32, Vec<String>);

/// Hash of a label set, the same for borrowed and owned values.
pub(crate) fn set_hash<S: AsRef<str>>(kind: u32, labels: &[S]) -> u64 {
    labels.iter().fold(u64::from(kind), |h, l| {
        (h.rotate_left(7) ^ hash_bytes(l.as_ref().as_bytes())).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    })
}

/// A decoded eviction record.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Eviction {
    pub epoch: u64,
    /// Label sets evicted proxy-wide, all epochs.
    pub evicted_total: u64,
    sets: Vec<LabelSet>,
    by_hash: HashMap<u64, Vec<usize>, WordBuild>,
}

impl Eviction {
    fn with_sets(epoch: u64, evicted_total: u64, sets: Vec<LabelSet>) -> Eviction {
        let mut by_hash: HashMap<u64, Vec<usize>, WordBuild> = HashMap::default();
        for (i, (kind, labels)) in sets.iter().enumerate() {
            by_hash.entry(set_hash(*kind, labels)).or_default().push(i);
        }
        Eviction {
            epoch,
            evicted_total,
            sets,
            by_hash,
        }
    }

    /// The decision after this one: the next epoch evicting `sets` (at most
    /// [`MAX_SETS_PER_EPOCH`] are taken).
    pub(crate) fn next(&self, mut sets: Vec<LabelSet>) -> Eviction {
        sets.truncate(MAX_SETS_PER_EPOCH);
        let total = self.evicted_total.saturating_add(sets.len() as u64);
        Eviction::with_sets(self.epoch + 1, total, sets)
    }

    /// The sets this epoch evicts.
    pub(crate) fn sets(&self) -> &[LabelSet] {
        &self.sets
    }

    /// Whether this epoch evicts the set `labels` of `kind`.
    pub(crate) fn contains<S: AsRef<str>>(&self, kind: u32, labels: &[S]) -> bool {
        let Some(candidates) = self.by_hash.get(&set_hash(kind, labels)) else {
            return false;
        };
        candidates.iter().any(|i| {
            let (k, l) = &self.sets[*i];
            *k == kind
                && l.len() == labels.len()
                && l.iter().zip(labels).all(|(a, b)| a == b.as_ref())
        })
    }

    /// `None` if the bytes are not a record of this filter build.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Eviction> {
        let pb = EvictionRecordPb::decode(bytes).ok()?;
        let mut sets = Vec::with_capacity(pb.sets.len());
        for set in &pb.sets {
            let labels: Option<Vec<String>> = set
                .labels
                .iter()
                .map(|i| pb.strings.get(*i as usize).cloned())
                .collect();
            sets.push((set.kind, labels?));
        }
        Some(Eviction::with_sets(pb.epoch, pb.evicted_total, sets))
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut strings: Vec<String> = Vec::new();
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let sets = self
            .sets
            .iter()
            .map(|(kind, labels)| EvictedSetPb {
                kind: *kind,
                labels: labels
                    .iter()
                    .map(|l| {
                        *ids.entry(l.as_str()).or_insert_with(|| {
                            strings.push(l.clone());
                            strings.len() as u32 - 1
                        })
                    })
                    .collect(),
            })
            .collect();
        EvictionRecordPb {
            epoch: self.epoch,
            evicted_total: self.evicted_total,
            strings,
            sets,
        }
        .encode_to_vec()
    }

    /// Removes this epoch's sets from a totals record; returns how many were removed.
    pub(crate) fn strip(&self, totals: &mut TotalsPb) -> usize {
        if self.sets.is_empty() {
            return 0;
        }
        let strings = &totals.strings;
        let label = |i: &u32| strings.get(*i as usize).map_or("", String::as_str);
        let before = totals.series.len() + totals.counters.len();
        let mut labels: Vec<&str> = Vec::new();
        totals.series.retain(|s| {
            labels.clear();
            labels.extend(s.labels.iter().map(label));
            !self.contains(REQUEST_KIND, &labels)
        });
        totals.counters.retain(|c| {
            labels.clear();
            labels.extend(c.labels.iter().map(label));
            !self.contains(c.kind, &labels)
        });
        before - totals.series.len() - totals.counters.len()
    }

    /// Removes this epoch's sets from a VM's totals; returns how many were held.
    pub(crate) fn apply(&self, totals: &mut Aggregator, counters: &mut CounterTotals) -> usize {
        if self.sets.is_empty() {
            return 0;
        }
        let requests = totals.retain(|labels| !self.contains(REQUEST_KIND, labels));
        let plain = counters.retain(|kind, labels| !self.contains(kind as u32, labels));
        requests + plain
    }
}

/// A VM's view of the eviction record: the last decoded record and the epoch applied to the
/// VM's totals.
#[derive(Debug, Default)]
pub(crate) struct EvictionView {
    pub record: Eviction,
    /// The CAS token the record was decoded from.
    pub cas: Option<u32>,
    pub applied_epoch: u64,
}

impl EvictionView {
    /// Reads the record (decoding it only when its token changed); returns the record to apply
    /// to this VM's totals if its epoch was not applied yet (the caller then calls
    /// [`EvictionView::applied`]).
    pub(crate) fn refresh(&mut self, store: &dyn SharedStore) -> Option<&Eviction> {
        match store.get(EVICTED_KEY) {
            Some((bytes, cas)) if self.cas != Some(cas) => {
                // An undecodable record (another filter build) counts as no decision.
                self.record = Eviction::decode(&bytes).unwrap_or_default();
                self.cas = Some(cas);
            }
            Some(_) => {}
            None => {
                self.record = Eviction::default();
                self.cas = None;
            }
        }
        (self.record.epoch > self.applied_epoch).then_some(&self.record)
    }

    /// Marks the current record as applied to this VM's totals.
    pub(crate) fn applied(&mut self) {
        self.applied_epoch = self.record.epoch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnabledMetrics;
    use crate::proxy::coordinate::memory::MemoryStore;
    use crate::record::labels::LabelValues;
    use crate::store::counters::CounterKind;
    use crate::store::series::Observation;

    fn request_labels(tag: &str) -> LabelValues {
        let mut l = LabelValues::default();
        l.0[3] = tag.to_string();
        l
    }

    fn request_set(tag: &str) -> LabelSet {
        (REQUEST_KIND, request_labels(tag).0.to_vec())
    }

    fn tcp_labels(tag: &str) -> Vec<&str> {
        let mut labels = vec!["v"; CounterKind::Tcp.label_count()];
        labels[1] = tag;
        labels
    }

    fn vm(tags: &[&str]) -> (Aggregator, CounterTotals) {
        let mut agg = Aggregator::new(100, EnabledMetrics::all());
        let mut counters = CounterTotals::new(100);
        for tag in tags {
            agg.record(&request_labels(tag), &[], Observation::default());
            counters.add(CounterKind::Tcp, &tcp_labels(tag), &[1, 0, 0, 0]);
        }
        (agg, counters)
    }

    fn tcp_set(tag: &str) -> LabelSet {
        let labels = tcp_labels(tag).into_iter().map(String::from).collect();
        (CounterKind::Tcp as u32, labels)
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn record_round_trips_and_counts_across_epochs() {
        let first = Eviction::default().next(vec![request_set("a"), tcp_set("a")]);
        assert_eq!((first.epoch, first.evicted_total), (1, 2));
        let decoded = Eviction::decode(&first.encode()).unwrap();
        assert_eq!(decoded, first);
        assert!(decoded.contains(REQUEST_KIND, &request_labels("a").0));
        assert!(!decoded.contains(REQUEST_KIND, &request_labels("b").0));
        assert!(!decoded.contains(CounterKind::Tcp as u32, &request_labels("a").0));
        assert!(decoded.contains(CounterKind::Tcp as u32, &tcp_labels("a")));
        let second = decoded.next(vec![request_set("b")]);
        assert_eq!((second.epoch, second.evicted_total), (2, 3));
        assert!(!second.contains(REQUEST_KIND, &request_labels("a").0));
        assert_eq!(Eviction::decode(b"\xff\xff"), None);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn an_epoch_is_bounded() {
        let sets = (0..MAX_SETS_PER_EPOCH + 5)
            .map(|i| request_set(&i.to_string()))
            .collect();
        let e = Eviction::default().next(sets);
        assert_eq!(e.sets().len(), MAX_SETS_PER_EPOCH);
        assert_eq!(e.evicted_total, MAX_SETS_PER_EPOCH as u64);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn applying_frees_the_sets_of_both_tables_and_strip_matches() {
        let (mut agg, mut counters) = vm(&["a", "b"]);
        let mut snapshot = TotalsPb::from_vm(&agg, &counters, 0);
        let e = Eviction::default().next(vec![request_set("a"), tcp_set("b")]);
        assert_eq!(e.strip(&mut snapshot), 2);
        assert_eq!(e.apply(&mut agg, &mut counters), 2);
        assert_eq!(agg.series_count(), 1);
        assert_eq!(counters.held_label_sets(), 1);
        let mut applied = TotalsPb::from_vm(&agg, &counters, 0);
        assert_eq!(e.strip(&mut applied), 0, "nothing left to strip");
        assert_eq!(applied.series.len(), snapshot.series.len());
        assert_eq!(applied.counters.len(), snapshot.counters.len());
        let remaining = agg.series().next().unwrap().0.value(3).to_string();
        assert_eq!(remaining, "b");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn the_view_decodes_on_change_and_reports_unapplied_epochs() {
        let store = MemoryStore::default();
        let mut view = EvictionView::default();
        assert!(view.refresh(&store).is_none(), "no record yet");
        let e = Eviction::default().next(vec![request_set("a")]);
        store.set(EVICTED_KEY, &e.encode(), 0).unwrap();
        assert_eq!(view.refresh(&store), Some(&e));
        view.applied();
        assert!(view.refresh(&store).is_none(), "applied");
        let e2 = e.next(vec![request_set("b")]);
        store.set(EVICTED_KEY, &e2.encode(), 0).unwrap();
        assert_eq!(view.refresh(&store).map(|r| r.epoch), Some(2));
    }
}

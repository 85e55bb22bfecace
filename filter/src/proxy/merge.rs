//! Summing totals across worker VMs: the proxy-wide cumulative view the report is built from,
//! and the retired VMs' base.
//!
//! Owns the arithmetic of merging [`TotalsPb`] records by label set, bounded: past `max_series`
//! label sets (request sets and counter sets are capped separately), totals go to the overflow
//! label set, so a proxy's base cannot grow without bound through VM churn. It must not read or
//! write shared data.

use std::collections::HashMap;

use crate::proxy::wire::{TotalsBuilder, TotalsPb};
use crate::record::labels::LABEL_COUNT;
use crate::store::aggregate::OVERFLOW_VALUE;
use crate::store::counters::{add_values, CounterKind, CounterValues};
use crate::store::hashing::WordBuild;
use crate::store::series::SeriesValues;

/// Totals by label set. Label values are interned, so merging a record costs one id lookup per
/// distinct string plus one map lookup per series; nothing is allocated for known label sets.
#[derive(Debug, Clone, Default)]
pub struct MergedTotals {
    strings: Vec<String>,
    ids: HashMap<String, u32, WordBuild>,
    series: HashMap<Box<[u32]>, SeriesValues, WordBuild>,
    /// Request label sets held, the overflow sets excluded.
    held_label_sets: usize,
    pub overflow_observations: u64,
    counters: HashMap<(CounterKind, Box<[u32]>), CounterValues, WordBuild>,
    /// Counter label sets held, the overflow sets excluded.
    held_counter_sets: usize,
    pub counter_overflow_additions: u64,
    pub label_values_capped: u64,
    max_series: usize,
}

impl MergedTotals {
    pub fn new(max_series: usize) -> Self {
        MergedTotals {
            max_series,
            ..Default::default()
        }
    }

    fn intern(&mut self, value: &str) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(value.to_string());
        self.ids.insert(value.to_string(), id);
        id
    }

    /// Adds a record's totals. Returns the number of series that were corrupt and skipped.
    pub fn absorb(&mut self, totals: &TotalsPb) -> usize {
        let mut skipped = 0;
        self.overflow_observations = self
            .overflow_observations
            .saturating_add(totals.overflow_observations);
        let ids: Vec<u32> = totals.strings.iter().map(|s| self.intern(s)).collect();
        let overflow_id = self.intern(OVERFLOW_VALUE);
        let mut key: Vec<u32> = Vec::with_capacity(LABEL_COUNT);
        for s in &totals.series {
            key.clear();
            key.extend(
                s.labels
                    .iter()
                    .filter_map(|i| ids.get(*i as usize).copied()),
            );
            // The 25 labels, then as many extra dimension values as the VMs' configuration has.
            if s.labels.len() < LABEL_COUNT || key.len() != s.labels.len() {
                skipped += 1;
                continue;
            }
            let values = s.values();
            if let Some(held) = self.series.get_mut(key.as_slice()) {
                held.add(&values);
                continue;
            }
            // A VM's own overflow set: its observations are already in the record's
            // `overflow_observations`, and it never takes a held place.
            if key.iter().all(|id| *id == overflow_id) {
                self.series.insert(key.as_slice().into(), values);
                continue;
            }
            if self.held_label_sets < self.max_series {
                self.held_label_sets += 1;
                self.series.insert(key.as_slice().into(), values);
                continue;
            }
            self.overflow_observations = self.overflow_observations.saturating_add(values.requests);
            let overflow: Box<[u32]> = vec![overflow_id; key.len()].into();
            self.series.entry(overflow).or_default().add(&values);
        }
        skipped + self.absorb_counters(totals, &ids)
    }

    /// Adds a record's counter label sets; returns how many were corrupt and skipped.
    fn absorb_counters(&mut self, totals: &TotalsPb, ids: &[u32]) -> usize {
        let mut skipped = 0;
        self.counter_overflow_additions = self
            .counter_overflow_additions
            .saturating_add(totals.counter_overflow_additions);
        self.label_values_capped = self
            .label_values_capped
            .saturating_add(totals.label_values_capped);
        for c in &totals.counters {
            let Some((kind, values)) = c.kind_and_values() else {
                skipped += 1;
                continue;
            };
            let key: Box<[u32]> = c
                .labels
                .iter()
                .filter_map(|i| ids.get(*i as usize).copied())
                .collect();
            if c.labels.len() != kind.label_count() || key.len() != kind.label_count() {
                skipped += 1;
                continue;
            }
            let overflow_id = self.intern(OVERFLOW_VALUE);
            let is_overflow_set = key.iter().all(|id| *id == overflow_id);
            let key = (kind, key);
            if let Some(held) = self.counters.get_mut(&key) {
                add_values(held, &values);
                continue;
            }
            if is_overflow_set {
                self.counters.insert(key, values);
                continue;
            }
            if self.held_counter_sets < self.max_series {
                self.held_counter_sets += 1;
                self.counters.insert(key, values);
                continue;
            }
            self.counter_overflow_additions += 1;
            let overflow = vec![overflow_id; kind.label_count()].into();
            add_values(self.counters.entry((kind, overflow)).or_default(), &values);
        }
        skipped
    }

    /// Distinct label sets other than the overflow one.
    pub(crate) fn held_label_sets(&self) -> usize {
        self.held_label_sets
    }

    /// All label sets with their totals, sorted by label values (reports are deterministic).
    pub(crate) fn entries(&self) -> Vec<(Vec<&str>, &SeriesValues)> {
        let mut entries: Vec<(Vec<&str>, &SeriesValues)> = self
            .series
            .iter()
            .map(|(key, v)| {
                let labels = key.iter().map(|id| self.strings[*id as usize].as_str());
                (labels.collect(), v)
            })
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        entries
    }

    /// Counter label sets held, the overflow sets excluded.
    pub(crate) fn held_counter_sets(&self) -> usize {
        self.held_counter_sets
    }

    /// All counter label sets with their totals, sorted by kind then label values.
    pub(crate) fn counter_entries(&self) -> Vec<(CounterKind, Vec<&str>, &CounterValues)> {
        let mut entries: Vec<_> = self
            .counters
            .iter()
            .map(|((kind, key), v)| {
                let labels = key.iter().map(|id| self.strings[*id as usize].as_str());
                (*kind, labels.collect::<Vec<_>>(), v)
            })
            .collect();
        entries.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        entries
    }

    pub(crate) fn to_totals(&self) -> TotalsPb {
        let mut b = TotalsBuilder::default();
        for (labels, values) in self.entries() {
            b.push(labels.into_iter(), values);
        }
        for (kind, labels, values) in self.counter_entries() {
            b.push_counter(kind, labels.into_iter(), values);
        }
        let mut totals = b.finish(self.overflow_observations, self.counter_overflow_additions);
        totals.label_values_capped = self.label_values_capped;
        totals
    }
}

impl PartialEq for MergedTotals {
    fn eq(&self, other: &Self) -> bool {
        self.overflow_observations == other.overflow_observations
            && self.counter_overflow_additions == other.counter_overflow_additions
            && self.label_values_capped == other.label_values_capped
            && self.entries() == other.entries()
            && self.counter_entries() == other.counter_entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnabledMetrics;
    use crate::record::labels::LabelValues;
    use crate::store::aggregate::Aggregator;
    use crate::store::series::Observation;

    fn vm(tags: &[(&str, u64)]) -> TotalsPb {
        let mut agg = Aggregator::new(100, EnabledMetrics::all());
        for (tag, n) in tags {
            let mut l = LabelValues::default();
            l.0[0] = tag.to_string();
            for _ in 0..*n {
                agg.record(
                    &l,
                    &[],
                    Observation {
                        duration_ms: 2,
                        request_bytes: 1,
                        response_bytes: 1,
                    },
                );
            }
        }
        TotalsPb::from_aggregator(&agg)
    }

    fn requests(m: &MergedTotals, tag: &str) -> u64 {
        m.entries()
            .iter()
            .find(|(k, _)| k[0] == tag)
            .map(|(_, v)| v.requests)
            .unwrap_or(0)
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn sums_vms_by_label_set() {
        let mut m = MergedTotals::new(10);
        m.absorb(&vm(&[("a", 2), ("b", 1)]));
        m.absorb(&vm(&[("a", 3)]));
        assert_eq!(requests(&m, "a"), 5);
        assert_eq!(requests(&m, "b"), 1);
        let entries = m.entries();
        let a = entries[0].1;
        assert_eq!(a.duration.sum, 10);
        assert_eq!(a.duration.count(), 5);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn folding_a_vm_into_the_base_keeps_the_sum() {
        // Before: base + vm1 + vm2. After vm2 retires: base' = base + vm2, live = vm1.
        let (base, vm1, vm2) = (vm(&[("a", 4)]), vm(&[("a", 1), ("b", 2)]), vm(&[("b", 7)]));
        let mut before = MergedTotals::new(10);
        for t in [&base, &vm1, &vm2] {
            before.absorb(t);
        }
        let mut new_base = MergedTotals::new(10);
        new_base.absorb(&base);
        new_base.absorb(&vm2);
        let mut after = MergedTotals::new(10);
        after.absorb(&new_base.to_totals());
        after.absorb(&vm1);
        assert_eq!(before, after);
        assert_eq!(requests(&after, "b"), 9);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_vms_overflow_set_is_counted_once_and_holds_no_place() {
        // Each VM holds 1 set and sent 4 more requests to its overflow set.
        let vm_with_overflow = |tag: &str| {
            let mut agg = Aggregator::new(1, EnabledMetrics::all());
            for t in [tag, "x1", "x2", "x3", "x4"] {
                let mut l = LabelValues::default();
                l.0[0] = t.to_string();
                agg.record(
                    &l,
                    &[],
                    Observation {
                        duration_ms: 1,
                        request_bytes: 1,
                        response_bytes: 1,
                    },
                );
            }
            TotalsPb::from_aggregator(&agg)
        };
        for cap in [1, 2, 10] {
            let mut m = MergedTotals::new(cap);
            m.absorb(&vm_with_overflow("a"));
            m.absorb(&vm_with_overflow("b"));
            assert_eq!(
                m.overflow_observations,
                8 + u64::from(cap == 1),
                "cap {cap}"
            );
            assert_eq!(m.held_label_sets(), cap.min(2), "cap {cap}");
            assert_eq!(requests(&m, OVERFLOW_VALUE), 8 + u64::from(cap == 1));
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn merge_is_capped_into_the_overflow_set() {
        let mut m = MergedTotals::new(2);
        m.absorb(&vm(&[("a", 1), ("b", 1)]));
        m.absorb(&vm(&[("c", 3), ("a", 1)]));
        assert_eq!(m.held_label_sets(), 2);
        assert_eq!(requests(&m, "a"), 2);
        assert_eq!(requests(&m, OVERFLOW_VALUE), 3);
        assert_eq!(m.overflow_observations, 3);
        let corrupt = TotalsPb {
            series: vec![Default::default()],
            ..Default::default()
        };
        assert_eq!(m.absorb(&corrupt), 1);
    }

    fn tcp_vm(tags: &[(&str, CounterValues)]) -> TotalsPb {
        let mut counters = crate::store::counters::CounterTotals::new(100);
        for (tag, values) in tags {
            let mut labels = vec!["x"; CounterKind::Tcp.label_count()];
            labels[1] = tag;
            counters.add(CounterKind::Tcp, &labels, values);
        }
        TotalsPb::from_vm(&Aggregator::new(1, EnabledMetrics::all()), &counters, 1)
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn counters_sum_across_vms_survive_the_base_and_are_capped() {
        let mut m = MergedTotals::new(2);
        m.absorb(&tcp_vm(&[("a", [1, 0, 10, 20]), ("b", [1, 1, 0, 0])]));
        m.absorb(&tcp_vm(&[("a", [0, 1, 5, 5]), ("c", [2, 2, 1, 1])]));
        let entries = m.counter_entries();
        assert_eq!(entries.len(), 3, "a, b and the overflow set");
        let of = |tag: &str| *entries.iter().find(|e| e.1[1] == tag).unwrap().2;
        assert_eq!(of("a"), [1, 1, 15, 25]);
        assert_eq!(of(OVERFLOW_VALUE), [2, 2, 1, 1]);
        assert_eq!(m.counter_overflow_additions, 1);
        assert_eq!(m.held_counter_sets(), 2);
        let mut again = MergedTotals::new(2);
        again.absorb(&m.to_totals());
        assert_eq!(again, m);
        let corrupt = TotalsPb {
            counters: vec![crate::proxy::wire::CounterSeriesPb {
                kind: 1,
                labels: vec![0],
                values: vec![1],
            }],
            strings: vec!["x".into()],
            ..Default::default()
        };
        assert_eq!(m.absorb(&corrupt), 1);
    }
}

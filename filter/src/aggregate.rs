//! Per-VM cumulative aggregation of request observations by label set, capped at `max_series`.
//!
//! Owns the hot path after label computation: hash the 25 values, find the series in place
//! (no allocation for a known label set), add the observation. Past `max_series` distinct label
//! sets, observations go to ONE overflow series whose every label value is [`OVERFLOW_VALUE`],
//! counted in `overflow_observations`. It must not know how totals leave the VM (see
//! [`crate::wire`]) nor compute labels.

use std::collections::HashMap;

use crate::config::EnabledMetrics;
use crate::hashing::{hash_strings, PassThroughBuild};
use crate::labels::{LabelValues, LABEL_COUNT};
use crate::series::{Observation, SeriesValues};

/// Every label value of the overflow series.
pub const OVERFLOW_VALUE: &str = "overflow";

const NO_ENTRY: u32 = u32::MAX;

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

/// One label set and its totals.
#[derive(Debug, Clone)]
pub struct Entry {
    hash: u64,
    next: u32,
    pub labels: Box<[Box<str>]>,
    pub values: SeriesValues,
}

/// The cumulative totals of one worker VM.
#[derive(Debug)]
pub struct Aggregator {
    entries: Vec<Entry>,
    heads: HashMap<u64, u32, PassThroughBuild>,
    max_series: usize,
    enabled: EnabledMetrics,
    overflow: SeriesValues,
    overflow_observations: u64,
}

impl Aggregator {
    pub fn new(max_series: usize, enabled: EnabledMetrics) -> Self {
        Aggregator {
            entries: Vec::new(),
            heads: HashMap::default(),
            max_series,
            enabled,
            overflow: SeriesValues::default(),
            overflow_observations: 0,
        }
    }

    /// Adds one request's observation to its label set's totals.
    pub fn record(&mut self, labels: &LabelValues, obs: Observation) -> Recorded {
        let hash = hash_labels(labels);
        let enabled = self.enabled;
        if let Some(index) = self.find(hash, labels) {
            observe(&mut self.entries[index].values, obs, enabled);
            return Recorded::Existing;
        }
        if self.entries.len() >= self.max_series {
            observe(&mut self.overflow, obs, enabled);
            self.overflow_observations += 1;
            return Recorded::Overflow {
                first: self.overflow_observations == 1,
            };
        }
        let index = self.entries.len() as u32;
        let next = self.heads.insert(hash, index).unwrap_or(NO_ENTRY);
        let mut values = SeriesValues::default();
        observe(&mut values, obs, enabled);
        self.entries.push(Entry {
            hash,
            next,
            labels: labels.0.iter().map(|v| Box::from(v.as_str())).collect(),
            values,
        });
        Recorded::New
    }

    fn find(&self, hash: u64, labels: &LabelValues) -> Option<usize> {
        let mut cursor = *self.heads.get(&hash)?;
        while cursor != NO_ENTRY {
            let entry = &self.entries[cursor as usize];
            if entry.hash == hash
                && entry
                    .labels
                    .iter()
                    .zip(labels.0.iter())
                    .all(|(a, b)| **a == **b)
            {
                return Some(cursor as usize);
            }
            cursor = entry.next;
        }
        None
    }

    /// Distinct label sets held (the overflow series not included).
    pub fn series_count(&self) -> usize {
        self.entries.len()
    }

    pub fn overflow_observations(&self) -> u64 {
        self.overflow_observations
    }

    pub fn enabled(&self) -> EnabledMetrics {
        self.enabled
    }

    /// The held label sets with their totals, then the overflow series if it was used.
    pub fn series(&self) -> impl Iterator<Item = (SeriesLabels<'_>, &SeriesValues)> {
        let overflow =
            (self.overflow_observations > 0).then_some((SeriesLabels::Overflow, &self.overflow));
        self.entries
            .iter()
            .map(|e| (SeriesLabels::Held(&e.labels), &e.values))
            .chain(overflow)
    }

    /// Forgets everything (the VM's totals were folded into the proxy's base elsewhere).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.heads.clear();
        self.overflow = SeriesValues::default();
        self.overflow_observations = 0;
    }
}

/// The label values of a series from [`Aggregator::series`].
#[derive(Debug, Clone, Copy)]
pub enum SeriesLabels<'a> {
    Held(&'a [Box<str>]),
    Overflow,
}

impl SeriesLabels<'_> {
    pub fn value(&self, index: usize) -> &str {
        match self {
            SeriesLabels::Held(values) => &values[index],
            SeriesLabels::Overflow => OVERFLOW_VALUE,
        }
    }

    pub fn len(&self) -> usize {
        LABEL_COUNT
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

fn observe(values: &mut SeriesValues, o: Observation, enabled: EnabledMetrics) {
    values.requests += 1;
    if enabled.request_duration {
        values.duration.observe(o.duration_ms);
    }
    if enabled.request_bytes {
        values.request_bytes.observe(o.request_bytes);
    }
    if enabled.response_bytes {
        values.response_bytes.observe(o.response_bytes);
    }
}

/// Hash of a label set.
pub fn hash_labels(labels: &LabelValues) -> u64 {
    hash_strings(labels.0.iter().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(tag: &str) -> LabelValues {
        let mut l = LabelValues::default();
        for (i, v) in l.0.iter_mut().enumerate() {
            *v = format!("{tag}-{i}");
        }
        l
    }

    fn obs(ms: u64) -> Observation {
        Observation {
            duration_ms: ms,
            request_bytes: 10,
            response_bytes: 20,
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn same_labels_accumulate() {
        let mut a = Aggregator::new(10, EnabledMetrics::all());
        assert_eq!(a.record(&labels("a"), obs(3)), Recorded::New);
        assert_eq!(a.record(&labels("a"), obs(7)), Recorded::Existing);
        assert_eq!(a.record(&labels("b"), obs(1)), Recorded::New);
        assert_eq!(a.series_count(), 2);
        let (l, v) = a.series().next().unwrap();
        assert_eq!(l.value(0), "a-0");
        assert_eq!(v.requests, 2);
        assert_eq!(v.duration.sum, 10);
        assert_eq!(v.response_bytes.sum, 40);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn values_that_differ_only_in_boundaries_are_distinct() {
        let mut a = Aggregator::new(10, EnabledMetrics::all());
        let mut x = LabelValues::default();
        x.0[0] = "ab".into();
        let mut y = LabelValues::default();
        y.0[0] = "a".into();
        y.0[1] = "b".into();
        assert_ne!(hash_labels(&x), hash_labels(&y));
        a.record(&x, obs(1));
        assert_eq!(a.record(&y, obs(1)), Recorded::New);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn hash_collisions_are_resolved_by_comparing_values() {
        let mut a = Aggregator::new(10, EnabledMetrics::all());
        // Force two different label sets into one chain.
        let (x, y) = (labels("x"), labels("y"));
        a.record(&x, obs(1));
        let hx = hash_labels(&x);
        let index = a.entries.len() as u32;
        let next = a.heads.insert(hx, index).unwrap_or(NO_ENTRY);
        a.entries.push(Entry {
            hash: hx,
            next,
            labels: y.0.iter().map(|v| Box::from(v.as_str())).collect(),
            values: SeriesValues::default(),
        });
        assert_eq!(a.find(hx, &y), Some(1), "head of the chain");
        assert_eq!(a.find(hx, &x), Some(0), "walks the chain past y");
        assert_eq!(a.find(hx, &labels("z")), None);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn cap_sends_new_label_sets_to_overflow() {
        let mut a = Aggregator::new(2, EnabledMetrics::all());
        a.record(&labels("a"), obs(1));
        a.record(&labels("b"), obs(1));
        assert_eq!(
            a.record(&labels("c"), obs(1)),
            Recorded::Overflow { first: true }
        );
        assert_eq!(
            a.record(&labels("d"), obs(1)),
            Recorded::Overflow { first: false }
        );
        assert_eq!(
            a.record(&labels("a"), obs(1)),
            Recorded::Existing,
            "held sets still count"
        );
        assert_eq!(a.series_count(), 2);
        assert_eq!(a.overflow_observations(), 2);
        let all: Vec<_> = a.series().collect();
        assert_eq!(all.len(), 3);
        let (l, v) = all[2];
        assert!(matches!(l, SeriesLabels::Overflow));
        assert_eq!(l.value(7), OVERFLOW_VALUE);
        assert_eq!(v.requests, 2);
        a.clear();
        assert_eq!(a.series().count(), 0);
        assert_eq!(a.record(&labels("c"), obs(1)), Recorded::New);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn disabled_families_are_not_observed() {
        let enabled = EnabledMetrics {
            request_duration: false,
            ..EnabledMetrics::all()
        };
        let mut a = Aggregator::new(2, enabled);
        a.record(&labels("a"), obs(9));
        let (_, v) = a.series().next().unwrap();
        assert_eq!(v.requests, 1);
        assert_eq!(v.duration.count(), 0);
        assert_eq!(v.request_bytes.count(), 1);
    }
}

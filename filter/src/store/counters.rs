//! Per-VM cumulative totals of the plain-counter families that have their own label sets: the
//! four TCP families (Istio's 23 TCP labels) and the two gRPC message families (the 20 peer
//! labels).
//!
//! Owns storage by label set, capped at `max_series` distinct sets per table: past the cap,
//! deltas go to ONE overflow set per kind whose every label value is [`OVERFLOW_VALUE`], and the
//! additions that went there are counted. These families are recorded once per connection flush
//! or gRPC stream, far less often than requests, so plain interned-id keys are enough here; the
//! request families keep their compact storage in [`crate::store::aggregate`]. It must not compute
//! labels nor know how totals leave the VM.

use std::collections::HashMap;

use meshtap_report::schema::{PEER_LABELS, TCP_LABELS};

use crate::store::aggregate::{Recorded, OVERFLOW_VALUE};
use crate::store::hashing::WordBuild;
use crate::store::intern::StringTable;

/// Counter values per label set: for [`CounterKind::Tcp`] connections opened, connections
/// closed, bytes sent and bytes received; for [`CounterKind::GrpcMessages`] request messages and
/// response messages (the last two stay 0).
pub(crate) type CounterValues = [u64; 4];

/// Which families a label set belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum CounterKind {
    Tcp = 1,
    GrpcMessages = 2,
}

impl CounterKind {
    /// The wire number of a kind (see [`crate::proxy::wire::CounterSeriesPb`]).
    pub(crate) fn from_wire(value: u32) -> Option<CounterKind> {
        match value {
            1 => Some(CounterKind::Tcp),
            2 => Some(CounterKind::GrpcMessages),
            _ => None,
        }
    }

    /// Number of label values of a set of this kind.
    pub(crate) fn label_count(self) -> usize {
        match self {
            CounterKind::Tcp => TCP_LABELS.len(),
            CounterKind::GrpcMessages => PEER_LABELS.len(),
        }
    }
}

/// A label set: its kind and interned values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CounterKey {
    kind: CounterKind,
    labels: Box<[u32]>,
}

/// The plain-counter totals of one worker VM.
#[derive(Debug, Default)]
pub(crate) struct CounterTotals {
    strings: StringTable,
    series: HashMap<CounterKey, CounterValues, WordBuild>,
    /// Distinct label sets held, the overflow sets excluded.
    held: usize,
    max_series: usize,
    overflow_additions: u64,
}

/// Adds `delta` into `total`, saturating.
pub(crate) fn add_values(total: &mut CounterValues, delta: &CounterValues) {
    for (t, d) in total.iter_mut().zip(delta) {
        *t = t.saturating_add(*d);
    }
}

impl CounterTotals {
    pub(crate) fn new(max_series: usize) -> Self {
        CounterTotals {
            max_series,
            ..Default::default()
        }
    }

    /// Adds `delta` to the label set `labels` of `kind` (which must have
    /// [`CounterKind::label_count`] values).
    pub(crate) fn add(
        &mut self,
        kind: CounterKind,
        labels: &[&str],
        delta: &CounterValues,
    ) -> Recorded {
        debug_assert_eq!(labels.len(), kind.label_count());
        let ids: Box<[u32]> = labels.iter().map(|v| self.strings.intern(v)).collect();
        let key = CounterKey { kind, labels: ids };
        if let Some(total) = self.series.get_mut(&key) {
            add_values(total, delta);
            return Recorded::Existing;
        }
        if self.held < self.max_series {
            self.held += 1;
            self.series.insert(key, *delta);
            return Recorded::New;
        }
        self.overflow_additions += 1;
        let overflow_id = self.strings.intern(OVERFLOW_VALUE);
        let key = CounterKey {
            kind,
            labels: vec![overflow_id; kind.label_count()].into(),
        };
        let first = !self.series.contains_key(&key);
        add_values(self.series.entry(key).or_default(), delta);
        Recorded::Overflow { first }
    }

    /// Every label set with its totals (overflow sets included), in no particular order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (CounterKind, Vec<&str>, &CounterValues)> {
        self.series.iter().map(|(key, values)| {
            let labels = key.labels.iter().map(|id| self.strings.get(*id)).collect();
            (key.kind, labels, values)
        })
    }

    /// Distinct label sets held, the overflow sets excluded.
    #[cfg(test)]
    pub(crate) fn held_label_sets(&self) -> usize {
        self.held
    }

    /// Additions that went to an overflow set.
    pub(crate) fn overflow_additions(&self) -> u64 {
        self.overflow_additions
    }

    /// Keeps only the held label sets `keep` accepts (the overflow sets always stay); returns
    /// how many were dropped. The string table is rebuilt, so dropped sets' memory is freed.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(CounterKind, &[&str]) -> bool) -> usize {
        let mut kept = CounterTotals::new(self.max_series);
        kept.overflow_additions = self.overflow_additions;
        let mut dropped = 0;
        for (kind, labels, values) in self.entries() {
            let is_overflow_set = labels.iter().all(|v| *v == OVERFLOW_VALUE);
            if !is_overflow_set && !keep(kind, &labels) {
                dropped += 1;
                continue;
            }
            let ids: Box<[u32]> = labels.iter().map(|v| kept.strings.intern(v)).collect();
            kept.held += usize::from(!is_overflow_set);
            kept.series
                .insert(CounterKey { kind, labels: ids }, *values);
        }
        *self = kept;
        dropped
    }

    /// Forgets everything (the VM's totals were folded into the proxy's base elsewhere).
    pub(crate) fn clear(&mut self) {
        *self = CounterTotals::new(self.max_series);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(tag: &str) -> Vec<&str> {
        let mut labels = vec!["v"; TCP_LABELS.len()];
        labels[1] = tag;
        labels
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn sums_by_kind_and_label_set() {
        let mut c = CounterTotals::new(10);
        assert_eq!(
            c.add(CounterKind::Tcp, &tcp("a"), &[1, 0, 10, 20]),
            Recorded::New
        );
        assert_eq!(
            c.add(CounterKind::Tcp, &tcp("a"), &[0, 1, 5, 0]),
            Recorded::Existing
        );
        let peer = vec!["v"; PEER_LABELS.len()];
        c.add(CounterKind::GrpcMessages, &peer, &[3, 4, 0, 0]);
        let mut entries: Vec<_> = c.entries().collect();
        entries.sort();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0, CounterKind::Tcp);
        assert_eq!(*entries[0].2, [1, 1, 15, 20]);
        assert_eq!(entries[0].1[1], "a");
        assert_eq!(*entries[1].2, [3, 4, 0, 0]);
        assert_eq!(entries[1].1.len(), 20);
        assert_eq!(c.held_label_sets(), 2);
        assert_eq!(
            c.retain(|kind, labels| kind != CounterKind::Tcp || labels[1] != "a"),
            1
        );
        assert_eq!(c.held_label_sets(), 1);
        let left: Vec<_> = c.entries().collect();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].0, CounterKind::GrpcMessages);
        assert_eq!(*left[0].2, [3, 4, 0, 0]);
        assert_eq!(
            c.add(CounterKind::Tcp, &tcp("a"), &[1, 0, 0, 0]),
            Recorded::New,
            "a dropped set starts over"
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn past_the_cap_deltas_go_to_the_overflow_set() {
        let mut c = CounterTotals::new(1);
        c.add(CounterKind::Tcp, &tcp("a"), &[1, 0, 0, 0]);
        assert_eq!(
            c.add(CounterKind::Tcp, &tcp("b"), &[1, 0, 7, 0]),
            Recorded::Overflow { first: true }
        );
        assert_eq!(
            c.add(CounterKind::Tcp, &tcp("c"), &[1, 0, 1, 0]),
            Recorded::Overflow { first: false }
        );
        assert_eq!(c.held_label_sets(), 1);
        assert_eq!(c.overflow_additions(), 2);
        let overflow: Vec<_> = c
            .entries()
            .filter(|(_, l, _)| l.iter().all(|v| *v == OVERFLOW_VALUE))
            .collect();
        assert_eq!(overflow.len(), 1);
        assert_eq!(*overflow[0].2, [2, 0, 8, 0]);
        assert_eq!(overflow[0].1.len(), TCP_LABELS.len());
        assert_eq!(c.retain(|_, _| false), 1, "the overflow set stays");
        assert_eq!(c.held_label_sets(), 0);
        assert_eq!(c.entries().count(), 1);
        c.clear();
        assert_eq!(c.entries().count(), 0);
        assert_eq!(
            c.add(CounterKind::Tcp, &tcp("b"), &[1, 0, 0, 0]),
            Recorded::New
        );
    }
}

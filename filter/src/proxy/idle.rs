//! The leader's memory of when each proxy-wide label set last changed, to find idle sets.
//!
//! Owns one small entry per merged label set (a hash of the set, its activity and since when the
//! activity is unchanged). Activity is a monotonic figure of a set's totals (requests, or the sum
//! of a counter set's values): it grows with every observation, so an unchanged figure means an
//! idle set. Sets that left the totals are forgotten; overflow sets are never idle. It must not
//! read shared data nor decide how eviction is carried out (see [`crate::proxy::evict`]).

use std::collections::HashMap;

use crate::proxy::evict::{set_hash, LabelSet, MAX_SETS_PER_EPOCH, REQUEST_KIND};
use crate::proxy::merge::MergedTotals;
use crate::store::aggregate::OVERFLOW_VALUE;
use crate::store::hashing::WordBuild;

#[derive(Debug, Clone, Copy)]
struct Seen {
    activity: u64,
    since_ms: i64,
    round: u64,
}

/// When each label set of the proxy-wide totals last changed.
#[derive(Debug, Default)]
pub(crate) struct IdleTracker {
    seen: HashMap<u64, Seen, WordBuild>,
    round: u64,
}

impl IdleTracker {
    /// Notes the totals as of `now_ms` and returns the sets unchanged for at least
    /// `timeout_ms` (at most [`MAX_SETS_PER_EPOCH`], in the totals' order).
    pub(crate) fn idle_sets(
        &mut self,
        totals: &MergedTotals,
        now_ms: i64,
        timeout_ms: i64,
    ) -> Vec<LabelSet> {
        self.round += 1;
        let mut idle = Vec::new();
        let requests = totals
            .entries()
            .into_iter()
            .map(|(labels, values)| (REQUEST_KIND, labels, values.requests));
        let counters = totals
            .counter_entries()
            .into_iter()
            .map(|(kind, labels, v)| {
                let activity = v.iter().fold(0u64, |sum, x| sum.saturating_add(*x));
                (kind as u32, labels, activity)
            });
        for (kind, labels, activity) in requests.chain(counters) {
            if labels.iter().all(|v| *v == OVERFLOW_VALUE) {
                continue;
            }
            if self.note(set_hash(kind, &labels), activity, now_ms) <= now_ms - timeout_ms
                && idle.len() < MAX_SETS_PER_EPOCH
            {
                idle.push((kind, labels.into_iter().map(String::from).collect()));
            }
        }
        let round = self.round;
        self.seen.retain(|_, s| s.round == round);
        idle
    }

    /// Records a set's activity; returns since when it is unchanged.
    fn note(&mut self, hash: u64, activity: u64, now_ms: i64) -> i64 {
        let round = self.round;
        let seen = self.seen.entry(hash).or_insert(Seen {
            activity,
            since_ms: now_ms,
            round,
        });
        if seen.activity != activity {
            seen.activity = activity;
            seen.since_ms = now_ms;
        }
        seen.round = round;
        seen.since_ms
    }

    /// Sets remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Forgets everything (this VM no longer leads).
    pub(crate) fn clear(&mut self) {
        *self = IdleTracker::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnabledMetrics;
    use crate::proxy::wire::TotalsPb;
    use crate::record::labels::LabelValues;
    use crate::store::series::Observation;

    fn merged(requests: &[(&str, u64)], max_series: usize) -> MergedTotals {
        let mut agg = crate::store::aggregate::Aggregator::new(max_series, EnabledMetrics::all());
        for (tag, n) in requests {
            let mut l = LabelValues::default();
            l.0[3] = tag.to_string();
            for _ in 0..*n {
                agg.record(&l, &[], Observation::default());
            }
        }
        let mut m = MergedTotals::new(100);
        m.absorb(&TotalsPb::from_aggregator(&agg));
        m
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_set_is_idle_after_the_timeout_without_change() {
        let mut t = IdleTracker::default();
        assert!(t
            .idle_sets(&merged(&[("a", 1), ("b", 1)], 10), 0, 100)
            .is_empty());
        assert!(t
            .idle_sets(&merged(&[("a", 1), ("b", 2)], 10), 60, 100)
            .is_empty());
        let idle = t.idle_sets(&merged(&[("a", 1), ("b", 2)], 10), 100, 100);
        assert_eq!(idle.len(), 1);
        assert_eq!((idle[0].0, idle[0].1[3].as_str()), (REQUEST_KIND, "a"));
        let idle = t.idle_sets(&merged(&[("b", 2)], 10), 160, 100);
        assert_eq!(idle[0].1[3], "b", "b unchanged since 60");
        assert_eq!(t.len(), 1, "a left the totals and is forgotten");
        t.clear();
        assert!(t.is_empty());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn a_counter_set_is_active_while_any_of_its_values_grows() {
        use crate::store::counters::{CounterKind, CounterTotals};
        let tcp = |bytes: u64| {
            let mut counters = CounterTotals::new(10);
            let labels = vec!["v"; CounterKind::Tcp.label_count()];
            counters.add(CounterKind::Tcp, &labels, &[1, 0, bytes, 0]);
            let agg = crate::store::aggregate::Aggregator::new(1, EnabledMetrics::all());
            let mut m = MergedTotals::new(10);
            m.absorb(&TotalsPb::from_vm(&agg, &counters, 0));
            m
        };
        let mut t = IdleTracker::default();
        t.idle_sets(&tcp(10), 0, 100);
        assert!(t.idle_sets(&tcp(20), 100, 100).is_empty(), "bytes grew");
        let idle = t.idle_sets(&tcp(20), 200, 100);
        assert_eq!(idle.len(), 1);
        assert_eq!(idle[0].0, CounterKind::Tcp as u32);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn the_overflow_set_is_never_idle() {
        let mut t = IdleTracker::default();
        let totals = merged(&[("a", 1), ("b", 1)], 1);
        t.idle_sets(&totals, 0, 10);
        let idle = t.idle_sets(&totals, 50, 10);
        assert_eq!(idle.len(), 1);
        assert_eq!(idle[0].1[3], "a");
    }
}

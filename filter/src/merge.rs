//! Summing totals across worker VMs: the proxy-wide cumulative view the report is built from,
//! and the retired VMs' base.
//!
//! Owns the arithmetic of merging [`TotalsPb`] records by label set, bounded: past `max_series`
//! label sets, totals go to the overflow label set, so a proxy's base cannot grow without bound
//! through VM churn. It must not read or write shared data.

use std::collections::BTreeMap;

use crate::aggregate::OVERFLOW_VALUE;
use crate::labels::LABEL_COUNT;
use crate::series::SeriesValues;
use crate::wire::{TotalsBuilder, TotalsPb};

/// Totals by label set (sorted, so reports are deterministic).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergedTotals {
    pub series: BTreeMap<Vec<String>, SeriesValues>,
    pub overflow_observations: u64,
    max_series: usize,
}

impl MergedTotals {
    pub fn new(max_series: usize) -> Self {
        MergedTotals {
            max_series,
            ..Default::default()
        }
    }

    /// Adds a record's totals. Returns the number of series that were corrupt and skipped.
    pub fn absorb(&mut self, totals: &TotalsPb) -> usize {
        let mut skipped = 0;
        self.overflow_observations = self
            .overflow_observations
            .saturating_add(totals.overflow_observations);
        for s in &totals.series {
            let Some(labels) = totals.labels_of(s) else {
                skipped += 1;
                continue;
            };
            let values = s.values();
            let key: Vec<String> = labels.iter().map(|v| v.to_string()).collect();
            if let Some(held) = self.series.get_mut(&key) {
                held.add(&values);
                continue;
            }
            let key = if self.held_label_sets() < self.max_series {
                key
            } else {
                self.overflow_observations =
                    self.overflow_observations.saturating_add(values.requests);
                overflow_key()
            };
            self.series.entry(key).or_default().add(&values);
        }
        skipped
    }

    /// Distinct label sets other than the overflow one.
    pub fn held_label_sets(&self) -> usize {
        self.series.len() - usize::from(self.series.contains_key(&overflow_key()))
    }

    pub fn to_totals(&self) -> TotalsPb {
        let mut b = TotalsBuilder::default();
        for (labels, values) in &self.series {
            b.push(labels.iter().map(String::as_str), values);
        }
        b.finish(self.overflow_observations)
    }
}

fn overflow_key() -> Vec<String> {
    vec![OVERFLOW_VALUE.to_string(); LABEL_COUNT]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::config::EnabledMetrics;
    use crate::labels::LabelValues;
    use crate::series::Observation;

    fn vm(tags: &[(&str, u64)]) -> TotalsPb {
        let mut agg = Aggregator::new(100, EnabledMetrics::all());
        for (tag, n) in tags {
            let mut l = LabelValues::default();
            l.0[0] = tag.to_string();
            for _ in 0..*n {
                agg.record(
                    &l,
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
        m.series
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
        let a = m.series.values().next().unwrap();
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
    fn merge_is_capped_into_the_overflow_set() {
        let mut m = MergedTotals::new(2);
        m.absorb(&vm(&[("a", 1), ("b", 1)]));
        m.absorb(&vm(&[("c", 3), ("a", 1)]));
        assert_eq!(m.held_label_sets(), 2);
        assert_eq!(requests(&m, "a"), 2);
        assert_eq!(requests(&m, OVERFLOW_VALUE), 3);
        assert_eq!(m.overflow_observations, 3);
        let corrupt = TotalsPb {
            strings: vec![],
            series: vec![Default::default()],
            overflow_observations: 0,
        };
        assert_eq!(m.absorb(&corrupt), 1);
    }
}

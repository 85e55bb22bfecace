//! Telemetry-API-style customisation and cardinality control, configured in `pluginConfig`:
//! per-metric `tags_to_remove` (applied when the report is built: series that become equal are
//! summed, like Istio's `tags_to_remove` that drops a dimension) and per-label caps on distinct
//! values (applied when labels are computed: past the cap, new values record as
//! [`CAPPED_VALUE`], so one label fed by Host headers or paths cannot explode a proxy's series).
//!
//! Pure logic over label values and report families; it must not read the host.

use std::collections::{HashMap, HashSet};

use meshtap_report::{MetricFamily, Series};

use crate::record::labels::{LabelValues, LABEL_COUNT};
use crate::store::hashing::WordBuild;

/// The value a capped label records once its cap is reached.
pub(crate) const CAPPED_VALUE: &str = "other";

/// Removes `tags` from a family (names it does not have are ignored), summing the series whose
/// remaining label values are equal. Series must use label references (as the report builder
/// makes them); merged series keep the first series' order.
pub(crate) fn remove_tags(family: &mut MetricFamily, tags: &[String]) {
    let keep: Vec<usize> = (0..family.label_names.len())
        .filter(|i| !tags.contains(&family.label_names[*i]))
        .collect();
    if keep.len() == family.label_names.len() {
        return;
    }
    let names = keep
        .iter()
        .map(|i| family.label_names[*i].clone())
        .collect();
    select_labels(family, names, &keep);
}

/// Gives a family the labels `names`, label `j` taking the value at position `positions[j]` of
/// each series' current values, and sums the series whose new values are equal (series use
/// label references; merged series keep the first series' order).
pub(crate) fn select_labels(family: &mut MetricFamily, names: Vec<String>, positions: &[usize]) {
    let keep = positions;
    family.label_names = names;
    let mut merged: Vec<Series> = Vec::with_capacity(family.series.len());
    let mut index: HashMap<Vec<u32>, usize, WordBuild> = HashMap::default();
    for series in family.series.drain(..) {
        let refs: Vec<u32> = keep.iter().map(|i| series.label_refs[*i]).collect();
        match index.get(&refs) {
            Some(&at) => {
                let into = &mut merged[at];
                into.value += series.value;
                into.sum += series.sum;
                for (a, b) in into.bucket_counts.iter_mut().zip(&series.bucket_counts) {
                    *a = a.saturating_add(*b);
                }
            }
            None => {
                index.insert(refs.clone(), merged.len());
                merged.push(Series {
                    label_refs: refs,
                    ..series
                });
            }
        }
    }
    family.series = merged;
}

/// Caps on the distinct values of some labels, per VM.
#[derive(Debug, Default)]
pub(crate) struct LabelCaps {
    /// (position in the stored label set — the 25 request labels, then the extra dimension
    /// values —, cap, values admitted so far).
    caps: Vec<(usize, usize, HashSet<String, WordBuild>)>,
    /// Label values replaced by [`CAPPED_VALUE`].
    capped: u64,
}

impl LabelCaps {
    /// Caps as (label position, cap) pairs.
    pub(crate) fn new(caps: &[(usize, usize)]) -> Self {
        LabelCaps {
            caps: caps
                .iter()
                .map(|(index, cap)| (*index, *cap, HashSet::default()))
                .collect(),
            capped: 0,
        }
    }

    /// Replaces values past their label's cap, among the 25 labels and the extra dimension
    /// values (positions from 25 on). A value admitted once stays admitted.
    pub(crate) fn apply(&mut self, labels: &mut LabelValues, extra: &mut [String]) {
        for (index, cap, seen) in &mut self.caps {
            let value = match index.checked_sub(LABEL_COUNT) {
                None => &mut labels.0[*index],
                Some(k) => match extra.get_mut(k) {
                    Some(value) => value,
                    None => continue,
                },
            };
            if seen.contains(value.as_str()) {
                continue;
            }
            if seen.len() < *cap {
                seen.insert(value.clone());
                continue;
            }
            value.clear();
            value.push_str(CAPPED_VALUE);
            self.capped += 1;
        }
    }

    /// Whether any label is capped (so the glue can skip the call).
    pub(crate) fn is_empty(&self) -> bool {
        self.caps.is_empty()
    }

    /// Label values replaced so far.
    pub(crate) fn capped(&self) -> u64 {
        self.capped
    }

    /// Forgets the admitted values and the count (the VM starts over).
    pub(crate) fn clear(&mut self) {
        for (_, _, seen) in &mut self.caps {
            seen.clear();
        }
        self.capped = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtap_report::schema::http::DESTINATION_SERVICE;

    fn series(refs: Vec<u32>, value: f64, buckets: Vec<u64>, sum: f64) -> Series {
        Series {
            label_refs: refs,
            value,
            bucket_counts: buckets,
            sum,
            ..Default::default()
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn removing_a_tag_sums_the_series_that_become_equal() {
        let mut f = MetricFamily {
            label_names: vec!["a".into(), "b".into(), "c".into()],
            series: vec![
                series(vec![0, 1, 2], 1.0, vec![1, 0], 3.0),
                series(vec![0, 3, 2], 2.0, vec![0, 2], 9.0),
                series(vec![4, 1, 2], 5.0, vec![5, 0], 1.0),
            ],
            ..Default::default()
        };
        remove_tags(&mut f, &["b".into(), "unknown".into()]);
        assert_eq!(f.label_names, ["a", "c"]);
        assert_eq!(f.series.len(), 2);
        assert_eq!(f.series[0].label_refs, [0, 2]);
        assert_eq!(f.series[0].value, 3.0);
        assert_eq!(f.series[0].bucket_counts, [1, 2]);
        assert_eq!(f.series[0].sum, 12.0);
        assert_eq!(f.series[1].label_refs, [4, 2]);
        let before = f.clone();
        remove_tags(&mut f, &["zzz".into()]);
        assert_eq!(f, before, "nothing to remove");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn values_past_the_cap_become_other_and_admitted_ones_stay() {
        let mut caps = LabelCaps::new(&[(DESTINATION_SERVICE, 2)]);
        let mut record = |host: &str| {
            let mut l = LabelValues::default();
            l.0[DESTINATION_SERVICE] = host.into();
            caps.apply(&mut l, &mut []);
            l.0[DESTINATION_SERVICE].clone()
        };
        assert_eq!(record("a.example"), "a.example");
        assert_eq!(record("b.example"), "b.example");
        assert_eq!(record("c.example"), CAPPED_VALUE);
        assert_eq!(record("a.example"), "a.example");
        assert_eq!(record("d.example"), CAPPED_VALUE);
        assert_eq!(caps.capped(), 2);
        caps.clear();
        assert_eq!(caps.capped(), 0);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn extra_dimension_values_are_capped_too() {
        let mut caps = LabelCaps::new(&[(LABEL_COUNT + 1, 1)]);
        let mut labels = LabelValues::default();
        let mut record = |user: &str| {
            let mut extra = vec!["literal".to_string(), user.to_string()];
            caps.apply(&mut labels, &mut extra);
            extra
        };
        assert_eq!(record("alice"), ["literal", "alice"]);
        assert_eq!(record("bob"), ["literal", CAPPED_VALUE]);
        assert_eq!(record("alice"), ["literal", "alice"]);
        assert_eq!(caps.capped(), 1);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn selecting_labels_reorders_replaces_and_sums() {
        let mut f = MetricFamily {
            label_names: vec!["a".into(), "b".into(), "x".into()],
            series: vec![
                series(vec![0, 1, 5], 1.0, vec![], 0.0),
                series(vec![0, 2, 5], 2.0, vec![], 0.0),
                series(vec![0, 1, 6], 4.0, vec![], 0.0),
            ],
            ..Default::default()
        };
        select_labels(&mut f, vec!["a".into(), "b".into()], &[0, 2]);
        assert_eq!(f.label_names, ["a", "b"]);
        let got: Vec<_> = f
            .series
            .iter()
            .map(|s| (s.label_refs.clone(), s.value))
            .collect();
        assert_eq!(got, [(vec![0, 5], 3.0), (vec![0, 6], 4.0)]);
    }
}

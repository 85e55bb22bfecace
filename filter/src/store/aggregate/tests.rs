use super::*;
use crate::store::buckets::Bounds;

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

fn values_of(a: &Aggregator) -> Vec<(Vec<String>, SeriesValues)> {
    a.series()
        .map(|(l, v)| ((0..l.len()).map(|i| l.value(i).to_string()).collect(), v))
        .collect()
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn same_labels_accumulate() {
    let mut a = Aggregator::new(10, EnabledMetrics::all());
    let (recorded, slot) = a.record(&labels("a"), &[], obs(3));
    assert_eq!(recorded, Recorded::New);
    assert_eq!(
        a.record(&labels("a"), &[], obs(7)),
        (Recorded::Existing, slot)
    );
    a.record_at(slot, obs(5));
    assert_eq!(a.record(&labels("b"), &[], obs(1)).0, Recorded::New);
    assert_eq!(a.series_count(), 2);
    let all = values_of(&a);
    assert_eq!(all[0].0, labels("a").0.to_vec());
    assert_eq!(all[0].1.requests, 3);
    assert_eq!(all[0].1.duration.sum, 15);
    assert_eq!(all[0].1.response_bytes.sum, 60);
    assert_eq!(all[1].0, labels("b").0.to_vec());
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
    a.record(&x, &[], obs(1));
    assert_eq!(a.record(&y, &[], obs(1)).0, Recorded::New);
    let all = values_of(&a);
    assert_eq!(all[0].0[0], "ab");
    assert_eq!(all[1].0[..2], ["a".to_string(), "b".to_string()]);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn many_series_keep_their_labels_across_chunks_and_growth() {
    let mut a = Aggregator::new(1000, EnabledMetrics::all());
    for i in 0..300 {
        let mut l = labels("shared");
        l.0[21] = i.to_string();
        assert_eq!(a.record(&l, &[], obs(i)).0, Recorded::New);
    }
    for i in 0..300 {
        let mut l = labels("shared");
        l.0[21] = i.to_string();
        assert_eq!(a.record(&l, &[], obs(1)).0, Recorded::Existing);
    }
    let all = values_of(&a);
    assert_eq!(all.len(), 300);
    for (i, (l, v)) in all.iter().enumerate() {
        assert_eq!(l[21], i.to_string());
        assert_eq!(l[0], "shared-0");
        assert_eq!(v.requests, 2);
        assert_eq!(v.duration.sum, i as u64 + 1);
    }
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn full_compact_counts_spill_into_wide_totals() {
    let mut a = Aggregator::new(10, EnabledMetrics::all());
    let (_, slot) = a.record(&labels("a"), &[], obs(1));
    a.chunks[0][0].values = CompactValues::with_requests(u32::MAX);
    a.record_at(slot, obs(2));
    a.record_at(slot, obs(3));
    let (_, v) = a.series().next().unwrap();
    assert_eq!(v.requests, u64::from(u32::MAX) + 2, "spilled + compact");
    assert_eq!(v.duration.sum, 5);
    assert_eq!(v.duration.count(), 2);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn cap_sends_new_label_sets_to_overflow() {
    let mut a = Aggregator::new(2, EnabledMetrics::all());
    a.record(&labels("a"), &[], obs(1));
    a.record(&labels("b"), &[], obs(1));
    assert_eq!(
        a.record(&labels("c"), &[], obs(1)).0,
        Recorded::Overflow { first: true }
    );
    let (recorded, overflow_slot) = a.record(&labels("d"), &[], obs(1));
    assert_eq!(recorded, Recorded::Overflow { first: false });
    a.record_at(overflow_slot, obs(1));
    assert_eq!(
        a.record(&labels("a"), &[], obs(1)).0,
        Recorded::Existing,
        "held sets still count"
    );
    assert_eq!(a.series_count(), 2);
    assert_eq!(a.overflow_observations(), 3);
    assert!(
        a.strings.find("c").is_none() && a.strings.find("d").is_none(),
        "values past the cap are not interned"
    );
    let all: Vec<_> = a.series().collect();
    assert_eq!(all.len(), 3);
    let (l, v) = all[2];
    assert!(matches!(l, SeriesLabels::Overflow(25)));
    assert_eq!(l.value(7), OVERFLOW_VALUE);
    assert_eq!(v.requests, 3);
    let generation = a.generation();
    a.clear();
    assert_ne!(a.generation(), generation, "slots are invalidated");
    assert_eq!(a.series().count(), 0);
    assert_eq!(a.record(&labels("c"), &[], obs(1)).0, Recorded::New);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn retain_drops_sets_keeps_totals_and_invalidates_slots() {
    let mut a = Aggregator::new(3, EnabledMetrics::all());
    let (_, a_slot) = a.record(&labels("a"), &[], obs(1));
    a.chunks[0][0].values = CompactValues::with_requests(u32::MAX);
    a.record_at(a_slot, obs(2));
    a.record(&labels("b"), &[], obs(4));
    a.record(&labels("c"), &[], obs(5));
    a.record(&labels("d"), &[], obs(6));
    let before = values_of(&a);
    let generation = a.generation();
    assert_eq!(a.retain(|l| l[0] != "b-0"), 1);
    assert_ne!(a.generation(), generation);
    assert_eq!(a.series_count(), 2);
    let after = values_of(&a);
    assert_eq!(after.len(), 3, "a, c and the overflow series");
    assert_eq!(after[0], before[0], "spilled totals survive");
    assert_eq!(after[1], before[2]);
    assert_eq!(after[2].1.requests, 1, "overflow kept");
    let (recorded, _) = a.record(&labels("b"), &[], obs(9));
    assert_eq!(recorded, Recorded::New, "an evicted set starts over");
    let b = &values_of(&a)[2];
    assert_eq!((b.0[0].as_str(), b.1.requests), ("b-0", 1));
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn disabled_families_are_not_observed() {
    let enabled = EnabledMetrics {
        request_duration: false,
        ..EnabledMetrics::all()
    };
    let mut a = Aggregator::new(2, enabled);
    a.record(&labels("a"), &[], obs(9));
    let (_, v) = a.series().next().unwrap();
    assert_eq!(v.requests, 1);
    assert_eq!(v.duration.count(), 0);
    assert_eq!(v.request_bytes.count(), 1);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn extra_dimension_values_are_part_of_the_label_set() {
    let mut a = Aggregator::configured(2, EnabledMetrics::all(), HistogramBounds::default(), 2);
    let extra = |user: &str| [user.to_string(), "10.0.0.1:80".to_string()];
    let (recorded, alice) = a.record(&labels("a"), &extra("alice"), obs(1));
    assert_eq!(recorded, Recorded::New);
    assert_eq!(
        a.record(&labels("a"), &extra("bob"), obs(2)).0,
        Recorded::New
    );
    assert_eq!(
        a.record(&labels("a"), &extra("alice"), obs(3)),
        (Recorded::Existing, alice)
    );
    assert_eq!(
        a.record(&labels("a"), &extra("carol"), obs(1)).0,
        Recorded::Overflow { first: true },
        "a new extra value past the cap"
    );
    assert!(
        a.strings.find("carol").is_none(),
        "not interned past the cap"
    );
    let all = values_of(&a);
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].0.len(), 27);
    assert_eq!(
        all[0].0[25..],
        ["alice".to_string(), "10.0.0.1:80".to_string()]
    );
    assert_eq!(all[0].1.requests, 2);
    assert_eq!(all[1].0[25], "bob");
    assert_eq!(
        all[2].0,
        vec![OVERFLOW_VALUE.to_string(); 27],
        "overflow has the same width"
    );
    assert_eq!(a.retain(|l| l[25] != "alice"), 1);
    let kept = values_of(&a);
    assert_eq!(kept[0].0[25], "bob", "retain keeps the extra values");
    assert_eq!(kept[0].1.requests, 1);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn histograms_count_on_the_configured_bounds() {
    let bounds = HistogramBounds([
        Bounds::new(&[2.0, 10.0]).unwrap(),
        Bounds::new(&[5.0]).unwrap(),
        Bounds::default(),
    ]);
    let mut a = Aggregator::configured(1, EnabledMetrics::all(), bounds, 0);
    a.record(&labels("a"), &[], obs(1));
    a.record(&labels("a"), &[], obs(7));
    a.record(&labels("b"), &[], obs(70));
    let all = values_of(&a);
    assert_eq!(all[0].1.duration.buckets[..3], [1, 1, 0]);
    assert_eq!(
        all[0].1.request_bytes.buckets[..2],
        [0, 2],
        "10 bytes is past le=5"
    );
    assert_eq!(
        all[1].1.duration.buckets[..3],
        [0, 0, 1],
        "the overflow series too"
    );
}

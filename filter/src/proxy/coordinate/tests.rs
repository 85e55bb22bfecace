//! Tests of the shared-data protocol over the in-memory store with Envoy's CAS semantics.

use super::memory::MemoryStore;
use super::*;
use crate::config::EnabledMetrics;
use crate::record::labels::LabelValues;
use crate::store::aggregate::Aggregator;
use crate::store::series::Observation;

const INTERVAL: i64 = 10_000;

fn totals(tag: &str, n: u64) -> TotalsPb {
    let mut agg = Aggregator::new(100, EnabledMetrics::all());
    let mut l = LabelValues::default();
    l.0[0] = tag.to_string();
    for _ in 0..n {
        agg.record(&l, &[], Observation::default());
    }
    TotalsPb::from_aggregator(&agg)
}

fn requests(c: &Collected, tag: &str) -> u64 {
    c.totals
        .entries()
        .iter()
        .filter(|(k, _)| k[0] == tag)
        .map(|(_, v)| v.requests)
        .sum()
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn vms_get_distinct_uids_and_one_leader() {
    let store = MemoryStore::default();
    let a = register(&store, 1_000).unwrap();
    let b = register(&store, 1_001).unwrap();
    assert_ne!(a, b);
    let lease = LEASE_INTERVALS * INTERVAL;
    assert_eq!(
        take_turn(&store, a, 2_000, lease),
        Ok(Role::Leader { sequence: 1 })
    );
    assert_eq!(take_turn(&store, b, 2_001, lease), Ok(Role::Follower));
    assert_eq!(
        take_turn(&store, a, 12_000, lease),
        Ok(Role::Leader { sequence: 2 })
    );
    // The leader goes silent: after the lease, b takes over with the next sequence.
    assert_eq!(
        take_turn(&store, b, 12_000 + lease, lease),
        Ok(Role::Leader { sequence: 3 })
    );
    assert_eq!(
        take_turn(&store, a, 12_001 + lease, lease),
        Ok(Role::Follower)
    );
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn proxy_start_survives_vm_replacement() {
    let store = MemoryStore::default();
    register(&store, 5_000).unwrap();
    register(&store, 9_000).unwrap();
    let c = collect(
        &store,
        1,
        9_000,
        STALE_INTERVALS * INTERVAL,
        100,
        &Eviction::default(),
    )
    .unwrap();
    assert_eq!(c.start_ms, 5_000);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn stale_vm_is_folded_once_and_totals_stay_monotonic() {
    let store = MemoryStore::default();
    let stale_ms = STALE_INTERVALS * INTERVAL;
    let a = register(&store, 0).unwrap();
    let b = register(&store, 0).unwrap();
    publish(&store, a, 10_000, totals("x", 5), 0);
    publish(&store, b, 10_000, totals("x", 7), 0);
    let c1 = collect(&store, a, 10_000, stale_ms, 100, &Eviction::default()).unwrap();
    assert_eq!(requests(&c1, "x"), 12);
    assert_eq!(c1.live_vms, 2);

    // b stops publishing; a keeps going.
    publish(&store, a, 50_000, totals("x", 6), 0);
    let c2 = collect(&store, a, 50_000, stale_ms, 100, &Eviction::default()).unwrap();
    assert_eq!(c2.newly_retired, 1);
    assert_eq!(c2.retired_vms, 1);
    assert_eq!(c2.live_vms, 1);
    assert_eq!(requests(&c2, "x"), 13, "b's 7 now come from the base");

    // Collecting again does not fold b twice.
    let c3 = collect(&store, a, 50_001, stale_ms, 100, &Eviction::default()).unwrap();
    assert_eq!(requests(&c3, "x"), 13);
    assert_eq!(c3.newly_retired, 0);

    // b wakes up: it learns it was retired, and its old key no longer counts.
    publish(&store, b, 50_002, totals("x", 9), 0);
    assert_eq!(take_turn(&store, b, 50_002, 30_000), Ok(Role::Retired));
    let c4 = collect(&store, a, 50_003, stale_ms, 100, &Eviction::default()).unwrap();
    assert_eq!(requests(&c4, "x"), 13);
    // It comes back under a new uid with fresh totals.
    let b2 = register(&store, 50_004).unwrap();
    assert!(b2 > b);
    publish(&store, b2, 50_004, totals("x", 1), 0);
    let c5 = collect(&store, a, 50_005, stale_ms, 100, &Eviction::default()).unwrap();
    assert_eq!(requests(&c5, "x"), 14);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn evicted_sets_leave_the_base_and_lagging_snapshots() {
    let store = MemoryStore::default();
    let stale_ms = STALE_INTERVALS * INTERVAL;
    let none = Eviction::default();
    let (a, b, c) = (
        register(&store, 0).unwrap(),
        register(&store, 0).unwrap(),
        register(&store, 0).unwrap(),
    );
    publish(&store, a, 10_000, totals("x", 2), 0);
    publish(&store, b, 10_000, totals("x", 3), 0);
    publish(&store, c, 10_000, totals("x", 4), 0);
    // c stops publishing and is folded into the base.
    publish(&store, a, 50_000, totals("y", 1), 0);
    publish(&store, b, 50_000, totals("x", 3), 0);
    assert_eq!(
        collect(&store, a, 50_000, stale_ms, 100, &none)
            .unwrap()
            .newly_retired,
        1
    );

    let x = collect(&store, a, 50_000, stale_ms, 100, &none).unwrap();
    assert_eq!((requests(&x, "x"), requests(&x, "y")), (7, 1));
    assert!(x.eviction_applied);
    let set = x
        .totals
        .entries()
        .into_iter()
        .find(|e| e.0[0] == "x")
        .unwrap()
        .0;
    let eviction = none.next(vec![(0, set.into_iter().map(String::from).collect())]);
    assert_eq!(
        publish_eviction(&store, &eviction, Some(7)),
        Err(CoordError::EvictionRaced)
    );
    publish_eviction(&store, &eviction, None).unwrap();
    let after = collect(&store, a, 50_001, stale_ms, 100, &eviction).unwrap();
    assert_eq!(
        requests(&after, "x"),
        0,
        "stripped from the base and from b"
    );
    assert_eq!(requests(&after, "y"), 1);
    assert!(!after.eviction_applied, "b still shows epoch 0");
    assert_eq!(after.series_evicted, 1);
    // b applies the record and gets traffic on x again: a new series from 1.
    publish(&store, b, 60_000, totals("x", 1), eviction.epoch);
    let again = collect(&store, a, 60_000, stale_ms, 100, &eviction).unwrap();
    assert_eq!(requests(&again, "x"), 1);
    assert!(!again.eviction_applied, "a has not applied yet");
    publish(&store, a, 60_001, totals("y", 1), eviction.epoch);
    let applied = collect(&store, a, 60_001, stale_ms, 100, &eviction).unwrap();
    assert!(applied.eviction_applied);
    assert_eq!(
        Eviction::decode(&store.get(EVICTED_KEY).unwrap().0),
        Some(eviction)
    );
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn vm_that_never_published_is_retired_after_the_stale_time() {
    let store = MemoryStore::default();
    let a = register(&store, 0).unwrap();
    let _ghost = register(&store, 0).unwrap();
    publish(&store, a, 40_000, totals("x", 1), 0);
    let c = collect(&store, a, 40_000, 30_000, 100, &Eviction::default()).unwrap();
    assert_eq!(c.newly_retired, 1);
    assert_eq!(c.live_vms, 1);
    assert!(store.get(BASE_KEY).is_none(), "nothing to fold");
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn failures_are_counted_proxy_wide() {
    let store = MemoryStore::default();
    let a = register(&store, 0).unwrap();
    record_failure(&store, 1).unwrap();
    record_failure(&store, 2).unwrap();
    let c = collect(&store, a, 3, 30_000, 100, &Eviction::default()).unwrap();
    assert_eq!(c.reports_failed, 2);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn corrupt_state_is_replaced() {
    let store = MemoryStore::default();
    store.set(PROXY_KEY, b"\xff\xff\xff", 0).unwrap();
    let uid = register(&store, 77).unwrap();
    assert_eq!(uid, 1);
    let c = collect(&store, uid, 78, 30_000, 100, &Eviction::default()).unwrap();
    assert_eq!(c.start_ms, 77);
}

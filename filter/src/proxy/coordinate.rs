//! Cross-worker coordination through Envoy's shared data (one key-value store per vm_id, shared
//! by all worker VMs of the proxy, compare-and-swap on every key).
//!
//! Envoy runs one VM per worker thread without shared memory, yet the sink must get ONE
//! cumulative value per series per pod, monotonic even when a worker VM is replaced. The design:
//!
//! - Every VM keeps its own cumulative totals in memory and, on each tick, writes them to its own
//!   key `meshtap/vm/<uid>` (a [`VmSnapshotPb`] with a heartbeat time). Only that VM writes it.
//! - `meshtap/proxy` (small, CAS) is the proxy-wide record ([`ProxyStatePb`]): the proxy start
//!   time (created once, so it survives VM replacement and changes only when Envoy restarts),
//!   the next VM uid, the live VM uids, the count of retired VMs, the report sequence, the
//!   report-failure count and the leader lease.
//! - `meshtap/base` (CAS) holds the folded totals of retired VMs.
//! - Each tick every VM tries to take or renew the lease (expires after [`LEASE_INTERVALS`]
//!   intervals). The leader sums base + live snapshots and reports; a live VM whose heartbeat is
//!   older than [`STALE_INTERVALS`] intervals is retired: ONE CAS on `meshtap/proxy` removes it
//!   from the live list (the commit point, so two leaders can never both fold it), then its last
//!   snapshot is added to the base.
//! - A VM that finds itself no longer live (it stalled and was retired) drops its in-memory totals
//!   and registers again under a new uid: counters never double count; at worst the
//!   observations since its folded snapshot are lost.
//!
//! - `meshtap/evicted` holds the leader's latest idle-series eviction; each snapshot carries the
//!   epoch its VM applied, and the leader strips evicted sets from snapshots (and retired VMs'
//!   totals) that do not show it yet (see [`crate::proxy::evict`]).
//!
//! Shared data has no create-if-absent: the first write of a missing key is unconditional. Two
//! VMs creating `meshtap/proxy` in the same microseconds could therefore both register; this only
//! affects the very first registration of a proxy's lifetime and is accepted.
//!
//! This module owns the protocol only, over the [`SharedStore`] trait (the plugin glue maps it to
//! host calls); it must not build reports nor talk to the network.

use prost::Message;

use crate::proxy::evict::{Eviction, EVICTED_KEY};
use crate::proxy::merge::MergedTotals;
use crate::proxy::wire::{LiveVmPb, ProxyStatePb, TotalsPb, VmSnapshotPb};

/// Key of the proxy-wide state record.
pub(crate) const PROXY_KEY: &str = "meshtap/proxy";
/// Key of the retired VMs' folded totals.
pub(crate) const BASE_KEY: &str = "meshtap/base";
/// A leader lease lasts this many report intervals.
pub(crate) const LEASE_INTERVALS: i64 = 3;
/// A VM whose snapshot is older than this many intervals is retired.
pub(crate) const STALE_INTERVALS: i64 = 3;
/// CAS attempts before giving up for this tick.
pub(crate) const MAX_CAS_ATTEMPTS: u32 = 16;

/// The key of a VM's snapshot.
pub(crate) fn vm_key(uid: u64) -> String {
    format!("meshtap/vm/{uid}")
}

/// A compare-and-swap write lost the race.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CasMismatch;

/// Envoy's shared data as the protocol needs it.
pub(crate) trait SharedStore {
    /// The value and its CAS token, `None` if the key does not exist.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes `value` if `cas` is 0 or still the key's token.
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), CasMismatch>;
}

/// Why a coordination step gave up (it is retried next tick).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CoordError {
    #[error("shared data key {0} stayed contended for {MAX_CAS_ATTEMPTS} attempts")]
    Contended(&'static str),
    #[error("shared data key {PROXY_KEY} is missing")]
    NoProxyState,
    #[error("shared data key {EVICTED_KEY} was changed by another VM")]
    EvictionRaced,
}

/// What a VM is this tick.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Role {
    /// The VM was retired by a leader: drop its totals and register again.
    Retired,
    /// Another VM holds the lease.
    Follower,
    /// This VM holds the lease and should report with this sequence number.
    Leader { sequence: u64 },
}

/// Everything a leader needs to build one report.
#[derive(Debug, Clone)]
pub struct Collected {
    pub totals: MergedTotals,
    pub start_ms: i64,
    pub live_vms: u32,
    pub retired_vms: u32,
    pub reports_failed: u64,
    /// VMs retired during this collection.
    pub newly_retired: u32,
    /// Whether every live snapshot shows the eviction epoch collected against.
    pub eviction_applied: bool,
    /// Label sets evicted proxy-wide so far.
    pub series_evicted: u64,
}

fn read_state(store: &dyn SharedStore) -> Option<(ProxyStatePb, u32)> {
    let (bytes, cas) = store.get(PROXY_KEY)?;
    // An undecodable record (another filter build) is treated as absent and replaced.
    ProxyStatePb::decode(bytes.as_slice())
        .ok()
        .map(|state| (state, cas))
}

/// Read-modify-write of the state record; `change` returns whether to write. A missing record
/// starts from a fresh one whose start time is `now_ms`.
fn update_state(
    store: &dyn SharedStore,
    now_ms: i64,
    mut change: impl FnMut(&mut ProxyStatePb) -> bool,
) -> Result<ProxyStatePb, CoordError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (mut state, cas) = read_state(store).unwrap_or_else(|| {
            (
                ProxyStatePb {
                    start_ms: now_ms,
                    next_vm_uid: 1,
                    ..Default::default()
                },
                0,
            )
        });
        if !change(&mut state) {
            return Ok(state);
        }
        if store.set(PROXY_KEY, &state.encode_to_vec(), cas).is_ok() {
            return Ok(state);
        }
    }
    Err(CoordError::Contended(PROXY_KEY))
}

/// Registers a VM as live and returns its uid.
pub(crate) fn register(store: &dyn SharedStore, now_ms: i64) -> Result<u64, CoordError> {
    let mut uid = 0;
    update_state(store, now_ms, |state| {
        uid = state.next_vm_uid.max(1);
        state.next_vm_uid = uid + 1;
        state.live.push(LiveVmPb {
            uid,
            since_ms: now_ms,
        });
        true
    })?;
    Ok(uid)
}

/// Writes a VM's cumulative totals, with the eviction epoch applied to them, to its own key
/// (only that VM writes it).
pub(crate) fn publish(
    store: &dyn SharedStore,
    uid: u64,
    now_ms: i64,
    totals: TotalsPb,
    applied_eviction_epoch: u64,
) {
    let snapshot = VmSnapshotPb {
        uid,
        heartbeat_ms: now_ms,
        totals: Some(totals),
        applied_eviction_epoch,
    };
    // A CAS of 0 always succeeds.
    let _ = store.set(&vm_key(uid), &snapshot.encode_to_vec(), 0);
}

/// Takes or renews the report lease if it is free; on success consumes one sequence number.
pub(crate) fn take_turn(
    store: &dyn SharedStore,
    uid: u64,
    now_ms: i64,
    lease_ms: i64,
) -> Result<Role, CoordError> {
    let mut role = Role::Follower;
    update_state(store, now_ms, |state| {
        if !state.live.iter().any(|v| v.uid == uid) {
            role = Role::Retired;
            return false;
        }
        let leader_live = state.live.iter().any(|v| v.uid == state.leader_uid);
        if state.leader_uid != uid && leader_live && now_ms < state.lease_expiry_ms {
            role = Role::Follower;
            return false;
        }
        state.leader_uid = uid;
        state.lease_expiry_ms = now_ms + lease_ms;
        state.sequence += 1;
        role = Role::Leader {
            sequence: state.sequence,
        };
        true
    })?;
    Ok(role)
}

/// Counts one failed report in the proxy-wide record.
pub(crate) fn record_failure(store: &dyn SharedStore, now_ms: i64) -> Result<(), CoordError> {
    update_state(store, now_ms, |state| {
        state.reports_failed += 1;
        true
    })
    .map(|_| ())
}

/// The leader's collection: retires stale VMs (folding them into the base), then sums the base
/// and the live snapshots. `leader_uid` is never retired by its own collection. The sets of
/// `eviction` are left out of every VM's totals that do not show its epoch.
pub(crate) fn collect(
    store: &dyn SharedStore,
    leader_uid: u64,
    now_ms: i64,
    stale_ms: i64,
    max_series: usize,
    eviction: &Eviction,
) -> Result<Collected, CoordError> {
    let (state, _) = read_state(store).ok_or(CoordError::NoProxyState)?;
    let (live, stale) = read_snapshots(store, &state, leader_uid, now_ms, stale_ms, eviction);
    let (state, newly_retired) = if stale.is_empty() {
        (state, 0)
    } else {
        retire(store, now_ms, &stale, max_series)?
    };

    let mut totals = MergedTotals::new(max_series);
    if let Some(base) = read_base(store) {
        totals.absorb(&base.0);
    }
    for snapshot in &live {
        if let Some(t) = &snapshot.totals {
            totals.absorb(t);
        }
    }
    let eviction_applied = live
        .iter()
        .all(|s| s.applied_eviction_epoch >= eviction.epoch);
    Ok(Collected {
        totals,
        eviction_applied,
        series_evicted: eviction.evicted_total,
        start_ms: state.start_ms,
        live_vms: live.len() as u32,
        retired_vms: state.retired_vms,
        reports_failed: state.reports_failed,
        newly_retired,
    })
}

/// The snapshots of the live VMs (the leader's always; with `eviction`'s sets stripped where
/// the VM has not applied them yet), and the VMs gone stale with their last totals.
#[allow(clippy::type_complexity)]
fn read_snapshots(
    store: &dyn SharedStore,
    state: &ProxyStatePb,
    leader_uid: u64,
    now_ms: i64,
    stale_ms: i64,
    eviction: &Eviction,
) -> (Vec<VmSnapshotPb>, Vec<(u64, Option<TotalsPb>)>) {
    let mut live = Vec::new();
    let mut stale = Vec::new();
    for vm in &state.live {
        let snapshot = store
            .get(&vm_key(vm.uid))
            .and_then(|(bytes, _)| VmSnapshotPb::decode(bytes.as_slice()).ok())
            .map(|mut s| {
                if s.applied_eviction_epoch < eviction.epoch {
                    if let Some(t) = &mut s.totals {
                        eviction.strip(t);
                    }
                }
                s
            });
        match snapshot {
            Some(s) if vm.uid == leader_uid || now_ms - s.heartbeat_ms <= stale_ms => live.push(s),
            Some(s) => stale.push((vm.uid, s.totals)),
            None if vm.uid != leader_uid && now_ms - vm.since_ms > stale_ms => {
                stale.push((vm.uid, None))
            }
            None => {}
        }
    }
    (live, stale)
}

/// Removes the `stale` VMs from the proxy state and folds the totals of those this call
/// removed into the base; returns the new state and how many it retired.
fn retire(
    store: &dyn SharedStore,
    now_ms: i64,
    stale: &[(u64, Option<TotalsPb>)],
    max_series: usize,
) -> Result<(ProxyStatePb, u32), CoordError> {
    let mut removed: Vec<u64> = Vec::new();
    let state = update_state(store, now_ms, |st| {
        removed.clear();
        st.live.retain(|v| {
            let is_stale = stale.iter().any(|(uid, _)| *uid == v.uid);
            if is_stale {
                removed.push(v.uid);
            }
            !is_stale
        });
        st.retired_vms += removed.len() as u32;
        !removed.is_empty()
    })?;
    let folded: Vec<&TotalsPb> = stale
        .iter()
        .filter(|(uid, _)| removed.contains(uid))
        .filter_map(|(_, t)| t.as_ref())
        .collect();
    if !folded.is_empty() {
        fold_into_base(store, &folded, max_series)?;
    }
    Ok((state, removed.len() as u32))
}

/// Publishes the leader's next eviction decision: removes its sets from the base, then writes
/// the record if it is still the one read with token `cas` (`None`: there was none).
pub(crate) fn publish_eviction(
    store: &dyn SharedStore,
    next: &Eviction,
    cas: Option<u32>,
) -> Result<(), CoordError> {
    if store.get(EVICTED_KEY).map(|(_, c)| c) != cas {
        return Err(CoordError::EvictionRaced);
    }
    let mut stripped = false;
    for _ in 0..MAX_CAS_ATTEMPTS {
        let Some((mut base, base_cas)) = read_base(store) else {
            stripped = true;
            break;
        };
        if next.strip(&mut base) == 0
            || store.set(BASE_KEY, &base.encode_to_vec(), base_cas).is_ok()
        {
            stripped = true;
            break;
        }
    }
    if !stripped {
        return Err(CoordError::Contended(BASE_KEY));
    }
    store
        .set(EVICTED_KEY, &next.encode(), cas.unwrap_or(0))
        .map_err(|_| CoordError::EvictionRaced)
}

fn read_base(store: &dyn SharedStore) -> Option<(TotalsPb, u32)> {
    let (bytes, cas) = store.get(BASE_KEY)?;
    TotalsPb::decode(bytes.as_slice()).ok().map(|t| (t, cas))
}

fn fold_into_base(
    store: &dyn SharedStore,
    folded: &[&TotalsPb],
    max_series: usize,
) -> Result<(), CoordError> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (base, cas) = read_base(store).unwrap_or_default();
        let mut merged = MergedTotals::new(max_series);
        merged.absorb(&base);
        for t in folded {
            merged.absorb(t);
        }
        if store
            .set(BASE_KEY, &merged.to_totals().encode_to_vec(), cas)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(CoordError::Contended(BASE_KEY))
}

#[cfg(test)]
pub(crate) mod memory {
    //! An in-memory [`SharedStore`] with Envoy's CAS semantics, for tests and benches.
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[derive(Default)]
    pub(crate) struct MemoryStore {
        data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        next_cas: RefCell<u32>,
    }

    impl SharedStore for MemoryStore {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.data.borrow().get(key).cloned()
        }

        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), CasMismatch> {
            let mut data = self.data.borrow_mut();
            if let Some((_, current)) = data.get(key) {
                if cas != 0 && cas != *current {
                    return Err(CasMismatch);
                }
            }
            let mut next = self.next_cas.borrow_mut();
            *next += 1;
            data.insert(key.to_string(), (value.to_vec(), *next));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;

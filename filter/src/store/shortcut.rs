//! The per-request shortcut: a fixed-size cache from a request's label inputs ([`RequestKey`],
//! small ids and numbers) to the [`SeriesSlot`] they were recorded in, so a repeated request
//! skips computing and looking up its 25 label values.
//!
//! Owns the key and the cache (direct-mapped: a colliding key replaces the older one; fixed
//! memory, no growth with series). Every id in a key must identify its input exactly for as long
//! as the cache is kept (the glue's id caches never reuse an id). It must not compute labels nor
//! read from the host.

use std::hash::Hasher;

use crate::store::aggregate::SeriesSlot;
use crate::store::hashing::WordHasher;

/// Entries of the cache.
pub(crate) const SHORTCUT_ENTRIES: usize = 512;

/// Everything the label values of a request depend on besides the VM's constant identity.
/// String inputs are ids handed out by the glue's caches (0 = absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RequestKey {
    pub reporter: u8,
    pub grpc: bool,
    /// 0 other or none, 1 `allow_any`, 2 `block_all` (all the route name can change).
    pub route: u8,
    pub cluster: u32,
    pub downstream_peer: u32,
    pub upstream_peer: u32,
    pub downstream_peer_san: u32,
    pub downstream_local_san: u32,
    pub upstream_peer_san: u32,
    pub upstream_local_san: u32,
    pub authority: u32,
    /// The extra dimension values (0 when none are configured).
    pub extras: u32,
    pub response_code: Option<i64>,
    pub response_flags: u64,
    pub grpc_status: Option<i64>,
}

/// Direct-mapped `RequestKey → SeriesSlot` cache for one aggregator generation.
pub(crate) struct Shortcuts {
    entries: Vec<Option<(RequestKey, SeriesSlot)>>,
    generation: u64,
}

impl Default for Shortcuts {
    fn default() -> Self {
        Shortcuts {
            entries: vec![None; SHORTCUT_ENTRIES],
            generation: 0,
        }
    }
}

/// The entry of `key`: its fields packed into eight words and mixed (a fraction of what hashing
/// them one by one through `Hash` costs; the entry's key is compared in full anyway).
fn position(key: &RequestKey) -> usize {
    let pair = |a: u32, b: u32| u64::from(a) | u64::from(b) << 32;
    let optional = |v: Option<i64>| v.map_or(u64::MAX, |v| v as u64);
    let small = u32::from(key.reporter) | u32::from(key.grpc) << 8 | u32::from(key.route) << 16;
    let words = [
        pair(small, key.cluster),
        pair(key.downstream_peer, key.upstream_peer),
        pair(key.downstream_peer_san, key.downstream_local_san),
        pair(key.upstream_peer_san, key.upstream_local_san),
        pair(key.authority, key.extras),
        optional(key.response_code),
        key.response_flags,
        optional(key.grpc_status),
    ];
    let mut h = WordHasher::default();
    words.iter().for_each(|w| h.write_u64(*w));
    h.finish() as usize % SHORTCUT_ENTRIES
}

impl Shortcuts {
    /// The slot `key` was recorded in, if known in this aggregator `generation`.
    pub(crate) fn get(&mut self, key: &RequestKey, generation: u64) -> Option<SeriesSlot> {
        if generation != self.generation {
            self.forget(generation);
            return None;
        }
        match &self.entries[position(key)] {
            Some((k, slot)) if k == key => Some(*slot),
            _ => None,
        }
    }

    pub(crate) fn insert(&mut self, key: RequestKey, slot: SeriesSlot, generation: u64) {
        if generation != self.generation {
            self.forget(generation);
        }
        self.entries[position(&key)] = Some((key, slot));
    }

    /// Drops every entry (ids they hold were reissued, or the aggregator moved on).
    pub(crate) fn forget(&mut self, generation: u64) {
        self.entries.iter_mut().for_each(|e| *e = None);
        self.generation = generation;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnabledMetrics;
    use crate::record::labels::LabelValues;
    use crate::store::aggregate::{Aggregator, Recorded};
    use crate::store::series::Observation;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn remembers_slots_per_generation() {
        let mut agg = Aggregator::new(10, EnabledMetrics::all());
        let (recorded, slot) = agg.record(&LabelValues::default(), &[], Observation::default());
        assert_eq!(recorded, Recorded::New);
        let mut s = Shortcuts::default();
        let key = RequestKey {
            cluster: 3,
            response_code: Some(200),
            ..Default::default()
        };
        let other = RequestKey {
            response_code: Some(201),
            ..key
        };
        assert_eq!(s.get(&key, agg.generation()), None);
        s.insert(key, slot, agg.generation());
        assert_eq!(s.get(&key, agg.generation()), Some(slot));
        assert_eq!(s.get(&other, agg.generation()), None);
        agg.clear();
        assert_eq!(s.get(&key, agg.generation()), None, "cleared aggregator");
        s.insert(key, slot, agg.generation());
        s.forget(agg.generation());
        assert_eq!(s.get(&key, agg.generation()), None);
    }
}

//! The per-request shortcut: a fixed-size cache from a request's label inputs ([`RequestKey`],
//! small ids and numbers) to the [`SeriesSlot`] they were recorded in, so a repeated request
//! skips computing and looking up its 25 label values.
//!
//! Owns the key, its packed form (eight words, hashed and compared as words) and the cache
//! (direct-mapped: a colliding key replaces the older one; fixed memory, no growth with series). Every id in a key must identify its input exactly for as long
//! as the cache is kept (the glue's id caches never reuse an id). It must not compute labels nor
//! read from the host.

use crate::store::aggregate::SeriesSlot;

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

/// Words of a [`PackedKey`].
const KEY_WORDS: usize = 8;

/// Set in the first word of every packed key, so an empty entry (all zero) matches none.
const PACKED: u64 = 1 << 31;

/// A [`RequestKey`]'s fields packed into words: what the cache hashes, stores and compares
/// (eight word comparisons, no per-field branches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PackedKey([u64; KEY_WORDS]);

impl RequestKey {
    pub(crate) fn packed(&self) -> PackedKey {
        let pair = |a: u32, b: u32| u64::from(a) | u64::from(b) << 32;
        let optional = |v: Option<i64>| v.map_or(u64::MAX, |v| v as u64);
        let small =
            u32::from(self.reporter) | u32::from(self.grpc) << 8 | u32::from(self.route) << 16;
        PackedKey([
            pair(small, self.cluster) | PACKED,
            pair(self.downstream_peer, self.upstream_peer),
            pair(self.downstream_peer_san, self.downstream_local_san),
            pair(self.upstream_peer_san, self.upstream_local_san),
            pair(self.authority, self.extras),
            optional(self.response_code),
            self.response_flags,
            optional(self.grpc_status),
        ])
    }
}

impl PackedKey {
    /// The cache entry of this key: its words folded by multiply-xor, the top bits.
    fn position(&self) -> usize {
        let folded = (self.0.iter()).fold(0u64, |h, w| (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        (folded >> (u64::BITS - SHORTCUT_ENTRIES.trailing_zeros())) as usize
    }

    fn matches(&self, other: &PackedKey) -> bool {
        let differ = self.0.iter().zip(&other.0).fold(0, |d, (a, b)| d | (a ^ b));
        differ == 0
    }
}

/// One entry: a packed key (all zero when empty) and its slot.
#[derive(Clone, Copy)]
struct Entry {
    key: PackedKey,
    slot: SeriesSlot,
}

const EMPTY: Entry = Entry {
    key: PackedKey([0; KEY_WORDS]),
    slot: SeriesSlot::OVERFLOW,
};

/// Direct-mapped `RequestKey → SeriesSlot` cache for one aggregator generation.
pub(crate) struct Shortcuts {
    entries: Box<[Entry; SHORTCUT_ENTRIES]>,
    generation: u64,
}

impl Default for Shortcuts {
    fn default() -> Self {
        Shortcuts {
            entries: Box::new([EMPTY; SHORTCUT_ENTRIES]),
            generation: 0,
        }
    }
}

impl Shortcuts {
    /// The slot `key` was recorded in, if known in this aggregator `generation`.
    pub(crate) fn get(&mut self, key: &PackedKey, generation: u64) -> Option<SeriesSlot> {
        if generation != self.generation {
            self.forget(generation);
            return None;
        }
        let entry = &self.entries[key.position()];
        entry.key.matches(key).then_some(entry.slot)
    }

    pub(crate) fn insert(&mut self, key: PackedKey, slot: SeriesSlot, generation: u64) {
        if generation != self.generation {
            self.forget(generation);
        }
        self.entries[key.position()] = Entry { key, slot };
    }

    /// Drops every entry (ids they hold were reissued, or the aggregator moved on).
    pub(crate) fn forget(&mut self, generation: u64) {
        self.entries.fill(EMPTY);
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
        let (key, other) = (key.packed(), other.packed());
        assert_eq!(s.get(&key, agg.generation()), None);
        s.insert(key, slot, agg.generation());
        assert_eq!(s.get(&key, agg.generation()), Some(slot));
        assert_eq!(s.get(&other, agg.generation()), None);
        assert_eq!(
            s.get(&RequestKey::default().packed(), agg.generation()),
            None,
            "an empty entry matches no key, not even one of zeros"
        );
        agg.clear();
        assert_eq!(s.get(&key, agg.generation()), None, "cleared aggregator");
        s.insert(key, slot, agg.generation());
        s.forget(agg.generation());
        assert_eq!(s.get(&key, agg.generation()), None);
    }
}

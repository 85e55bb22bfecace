//! A bounded map from byte strings (raw host values: cluster names, peer metadata, SANs,
//! `:authority`, extra dimension values) to what the filter made of them.
//!
//! Owns the lookup that turns a value seen before into its cached result without decoding it
//! again. The common case — the same value as the previous lookup in this cache (one upstream
//! cluster, one peer, one SAN per connection) — is one length check and one comparison of the
//! bytes with that last hit, no hashing and no table probe. Otherwise the key is hashed
//! ([`hash_bytes`]) and the entries with that hash are compared in full, so a hit is always
//! exact. A lookup hands out the entry's index, valid until the cache is cleared; the owner
//! clears it once it [`is_full`](BytesCache::is_full) (at [`CACHE_CAPACITY`] entries), between
//! two rounds of lookups, so memory stays bounded and no index it handed out goes stale in use.
//! It must not know what the values are.

use std::cell::Cell;
use std::collections::HashMap;

use crate::store::compare::bytes_equal;
use crate::store::hashing::{hash_bytes, WordBuild};

/// Entries from which a cache is full and its owner clears it (bounds memory with many
/// clusters or peers).
pub(crate) const CACHE_CAPACITY: usize = 1024;

/// No entry (end of a hash chain, or no last hit).
const NONE: u32 = u32::MAX;

/// One key and its value, chained to the previous entry whose key has the same hash.
struct Entry<V> {
    key: Box<[u8]>,
    value: V,
    same_hash: u32,
}

/// See the module documentation.
pub(crate) struct BytesCache<V> {
    entries: Vec<Entry<V>>,
    /// The newest entry of each key hash.
    by_hash: HashMap<u64, u32, WordBuild>,
    /// The entry the previous successful lookup found (a lookup only reads the cache).
    last_hit: Cell<u32>,
}

impl<V> Default for BytesCache<V> {
    fn default() -> Self {
        BytesCache {
            entries: Vec::new(),
            by_hash: HashMap::default(),
            last_hit: Cell::new(NONE),
        }
    }
}

impl<V> BytesCache<V> {
    /// The entry cached for exactly `key`, with its value.
    #[inline]
    pub(crate) fn get(&self, key: &[u8]) -> Option<(u32, &V)> {
        let (index, entry) = self.find(key)?;
        self.last_hit.set(index);
        Some((index, &entry.value))
    }

    /// The value of an entry [`get`](Self::get) or [`insert`](Self::insert) handed out since
    /// the last [`clear`](Self::clear).
    pub(crate) fn at(&self, entry: u32) -> &V {
        &self.entries[entry as usize].value
    }

    #[inline]
    fn find(&self, key: &[u8]) -> Option<(u32, &Entry<V>)> {
        let last_hit = self.last_hit.get();
        if let Some(last) = self.entries.get(last_hit as usize) {
            if bytes_equal(&last.key, key) {
                return Some((last_hit, last));
            }
        }
        let mut index = *self.by_hash.get(&hash_bytes(key))?;
        while index != NONE {
            let entry = &self.entries[index as usize];
            if bytes_equal(&entry.key, key) {
                return Some((index, entry));
            }
            index = entry.same_hash;
        }
        None
    }

    /// Adds a value for a key that is not present and returns its entry (also past
    /// [`CACHE_CAPACITY`]: clearing is the owner's, see [`is_full`](Self::is_full)).
    pub(crate) fn insert(&mut self, key: &[u8], value: V) -> u32 {
        let index = self.entries.len() as u32;
        let same_hash = self.by_hash.insert(hash_bytes(key), index).unwrap_or(NONE);
        self.entries.push(Entry {
            key: key.into(),
            value,
            same_hash,
        });
        self.last_hit.set(index);
        index
    }

    /// Whether the cache holds [`CACHE_CAPACITY`] entries or more (time to clear it).
    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= CACHE_CAPACITY
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.by_hash.clear();
        self.last_hit.set(NONE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn finds_by_content_and_says_when_full() {
        let mut c = BytesCache::default();
        let value = |found: Option<(u32, &i32)>| found.map(|(_, v)| *v);
        assert!(c.get(b"a").is_none());
        let a = c.insert(b"a", 1);
        assert_eq!(*c.at(a), 1);
        let long = c.insert(b"a longer key than eight bytes", 2);
        assert_eq!(*c.at(long), 2);
        let found = c.get(b"a");
        assert_eq!(value(found), Some(1));
        let again = c.get(b"a");
        assert_eq!(value(again), Some(1), "the last hit again");
        let found = c.get(b"a longer key than eight bytes");
        assert_eq!(value(found), Some(2));
        assert_eq!(c.get(b"a longer key than eight bytez"), None);
        let found = c.get(b"a longer key than eight bytes");
        assert_eq!(value(found), Some(2));
        for i in 2..CACHE_CAPACITY {
            assert!(!c.is_full(), "{i} entries");
            c.insert(format!("k{i}").as_bytes(), 0);
        }
        assert!(c.is_full());
        let found = c.get(b"a");
        assert_eq!(value(found), Some(1), "entries stay until cleared");
        c.clear();
        assert!(!c.is_full());
        assert!(c.get(b"a").is_none(), "cleared");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn keys_with_the_same_sampled_hash_stay_apart() {
        // Long keys are hashed by a sample of their words: these differ only in an unsampled
        // byte, so they share a hash and a chain.
        let first = vec![b'x'; 300];
        let mut second = first.clone();
        second[40] = b'y';
        assert_eq!(hash_bytes(&first), hash_bytes(&second));
        let mut c = BytesCache::default();
        c.insert(&first, 1);
        assert_eq!(c.get(&second), None);
        c.insert(&second, 2);
        for _ in 0..2 {
            let found = c.get(&first).map(|(_, v)| *v);
            assert_eq!(found, Some(1));
            let found = c.get(&second).map(|(_, v)| *v);
            assert_eq!(found, Some(2));
        }
        c.clear();
        assert_eq!(c.get(&first), None, "no last hit survives a clear");
    }
}

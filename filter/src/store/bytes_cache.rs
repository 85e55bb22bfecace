//! A bounded map from byte strings (raw host values: cluster names, peer metadata, SANs,
//! `:authority`, extra dimension values) to what the filter made of them.
//!
//! Owns the lookup that turns a value seen before into its cached result without decoding it
//! again. The common case — the same value as the previous lookup in this cache (one upstream
//! cluster, one peer, one SAN per connection) — is one length check and one comparison of the
//! bytes with that last hit, no hashing and no table probe. Otherwise the key is hashed
//! ([`hash_bytes`]) and the entries with that hash are compared in full, so a hit is always
//! exact. Everything is forgotten when [`CACHE_CAPACITY`] entries are reached (bounded memory).
//! It must not know what the values are.

use std::collections::HashMap;

use crate::store::hashing::{bytes_equal, hash_bytes, WordBuild};

/// Entries per cache before it is cleared (bounds memory with many clusters or peers).
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
    /// The entry the previous successful lookup found.
    last_hit: u32,
}

impl<V> Default for BytesCache<V> {
    fn default() -> Self {
        BytesCache {
            entries: Vec::new(),
            by_hash: HashMap::default(),
            last_hit: NONE,
        }
    }
}

impl<V> BytesCache<V> {
    /// The value cached for exactly `key`.
    pub(crate) fn get(&mut self, key: &[u8]) -> Option<&V> {
        let index = self.find(key)?;
        self.last_hit = index;
        Some(&self.entries[index as usize].value)
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        if let Some(last) = self.entries.get(self.last_hit as usize) {
            if bytes_equal(&last.key, key) {
                return Some(self.last_hit);
            }
        }
        let mut index = *self.by_hash.get(&hash_bytes(key))?;
        while index != NONE {
            let entry = &self.entries[index as usize];
            if bytes_equal(&entry.key, key) {
                return Some(index);
            }
            index = entry.same_hash;
        }
        None
    }

    /// Adds a value for a key that is not present.
    pub(crate) fn insert(&mut self, key: &[u8], value: V) -> &V {
        if self.entries.len() >= CACHE_CAPACITY {
            self.clear();
        }
        let index = self.entries.len() as u32;
        let same_hash = self.by_hash.insert(hash_bytes(key), index).unwrap_or(NONE);
        self.entries.push(Entry {
            key: key.into(),
            value,
            same_hash,
        });
        self.last_hit = index;
        &self.entries[index as usize].value
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.by_hash.clear();
        self.last_hit = NONE;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn finds_by_content_and_stays_bounded() {
        let mut c = BytesCache::default();
        assert!(c.get(b"a").is_none());
        assert_eq!(*c.insert(b"a", 1), 1);
        assert_eq!(*c.insert(b"a longer key than eight bytes", 2), 2);
        assert_eq!(c.get(b"a"), Some(&1));
        assert_eq!(c.get(b"a"), Some(&1), "the last hit again");
        assert_eq!(c.get(b"a longer key than eight bytes"), Some(&2));
        assert_eq!(c.get(b"a longer key than eight bytez"), None);
        assert_eq!(c.get(b"a longer key than eight bytes"), Some(&2));
        for i in 0..CACHE_CAPACITY {
            c.insert(format!("k{i}").as_bytes(), 0);
        }
        assert!(c.len() <= CACHE_CAPACITY);
        assert!(c.get(b"a").is_none(), "cleared at capacity");
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
            assert_eq!(c.get(&first), Some(&1));
            assert_eq!(c.get(&second), Some(&2));
        }
        c.clear();
        assert_eq!(c.get(&first), None, "no last hit survives a clear");
    }
}

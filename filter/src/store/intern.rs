//! Deduplicating tables that give repeated values small ids: [`StringTable`] for label values and
//! [`GroupTable`] for fixed-size groups of ids, both indexed by an [`IdIndex`].
//!
//! Owns compact storage (one text arena, 4-byte index slots) because per-series memory is a
//! budget: a value or group seen again costs nothing. Ids are dense, starting at 0, and stay
//! valid until `clear`. This module must not know what the values mean.

use crate::store::compare::bytes_equal;
use crate::store::hashing::{hash_bytes, hash_ids};

/// Open-addressing index of ids by hash (linear probing, load at most 1/2). Slots hold `id + 1`
/// (0 = empty); equality and rehashing are answered by the owner, which stores the values.
#[derive(Debug, Default, Clone)]
pub(crate) struct IdIndex {
    slots: Vec<u32>,
    len: usize,
}

impl IdIndex {
    /// The id whose value `is_match` accepts among those stored under `hash`.
    pub(crate) fn find(&self, hash: u64, mut is_match: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            match self.slots[at] {
                0 => return None,
                slot if is_match(slot - 1) => return Some(slot - 1),
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// Adds `id` (not present yet) under `hash`; `hash_of` re-hashes stored ids when growing.
    pub(crate) fn insert(&mut self, hash: u64, id: u32, hash_of: impl Fn(u32) -> u64) {
        if (self.len + 1) * 2 > self.slots.len() {
            let size = (self.slots.len() * 2).max(16);
            let old = std::mem::replace(&mut self.slots, vec![0; size]);
            for slot in old.into_iter().filter(|s| *s != 0) {
                self.place(hash_of(slot - 1), slot);
            }
        }
        self.place(hash, id + 1);
        self.len += 1;
    }

    fn place(&mut self, hash: u64, slot: u32) {
        let mask = self.slots.len() - 1;
        let mut at = hash as usize & mask;
        while self.slots[at] != 0 {
            at = (at + 1) & mask;
        }
        self.slots[at] = slot;
    }

    pub(crate) fn clear(&mut self) {
        self.slots = Vec::new();
        self.len = 0;
    }
}

/// Distinct strings by id, stored back to back in one arena.
#[derive(Debug, Default, Clone)]
pub(crate) struct StringTable {
    text: String,
    /// (start, end) of each id's text.
    spans: Vec<(u32, u32)>,
    index: IdIndex,
}

impl StringTable {
    /// The id of `value` if it was interned.
    pub(crate) fn find(&self, value: &str) -> Option<u32> {
        self.find_hashed(hash_bytes(value.as_bytes()), value)
    }

    fn find_hashed(&self, hash: u64, value: &str) -> Option<u32> {
        let Self { text, spans, index } = self;
        index.find(hash, |id| {
            let (start, end) = spans[id as usize];
            bytes_equal(
                &text.as_bytes()[start as usize..end as usize],
                value.as_bytes(),
            )
        })
    }

    /// The id of `value`, adding it if new.
    pub(crate) fn intern(&mut self, value: &str) -> u32 {
        let hash = hash_bytes(value.as_bytes());
        if let Some(id) = self.find_hashed(hash, value) {
            return id;
        }
        let Self { text, spans, index } = self;
        let id = spans.len() as u32;
        let start = text.len() as u32;
        text.push_str(value);
        spans.push((start, text.len() as u32));
        index.insert(hash, id, |id| {
            let (start, end) = spans[id as usize];
            hash_bytes(&text.as_bytes()[start as usize..end as usize])
        });
        id
    }

    /// The string of an id from [`StringTable::intern`].
    pub(crate) fn get(&self, id: u32) -> &str {
        let (start, end) = self.spans[id as usize];
        &self.text[start as usize..end as usize]
    }

    pub(crate) fn clear(&mut self) {
        *self = StringTable::default();
    }
}

/// Distinct fixed-size groups of ids, by id.
#[derive(Debug, Clone)]
pub(crate) struct GroupTable<const N: usize> {
    groups: Vec<[u32; N]>,
    index: IdIndex,
}

impl<const N: usize> Default for GroupTable<N> {
    fn default() -> Self {
        GroupTable {
            groups: Vec::new(),
            index: IdIndex::default(),
        }
    }
}

impl<const N: usize> GroupTable<N> {
    /// The id of `group` if it was interned.
    pub(crate) fn find(&self, group: &[u32; N]) -> Option<u32> {
        self.index
            .find(hash_ids(group), |id| self.groups[id as usize] == *group)
    }

    /// The id of `group`, adding it if new.
    pub(crate) fn intern(&mut self, group: &[u32; N]) -> u32 {
        if let Some(id) = self.find(group) {
            return id;
        }
        let hash = hash_ids(group);
        let Self { groups, index } = self;
        let id = groups.len() as u32;
        groups.push(*group);
        index.insert(hash, id, |id| hash_ids(&groups[id as usize]));
        id
    }

    pub(crate) fn get(&self, id: u32) -> &[u32; N] {
        &self.groups[id as usize]
    }

    pub(crate) fn clear(&mut self) {
        *self = GroupTable::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn strings_get_dense_stable_ids_through_growth() {
        let mut t = StringTable::default();
        let values: Vec<String> = (0..100).map(|i| format!("value-{i}")).collect();
        let ids: Vec<u32> = values.iter().map(|v| t.intern(v)).collect();
        assert_eq!(ids, (0..100).collect::<Vec<u32>>());
        assert_eq!(t.intern(""), 100, "the empty string is a value too");
        for (v, id) in values.iter().zip(&ids) {
            assert_eq!(t.intern(v), *id);
            assert_eq!(t.get(*id), v);
        }
        assert_eq!(t.get(100), "");
        t.clear();
        assert_eq!(t.intern("value-7"), 0);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn groups_are_deduplicated_by_content() {
        let mut g = GroupTable::<3>::default();
        for i in 0..50u32 {
            assert_eq!(g.intern(&[i, i + 1, 7]), i);
        }
        assert_eq!(g.intern(&[3, 4, 7]), 3);
        assert_eq!(g.intern(&[4, 3, 7]), 50);
        assert_eq!(g.get(50), &[4, 3, 7]);
    }
}

//! Interned view keys: every [`Counter`], [`Histogram`] and [`Gauge`] the view holds is one
//! shared [`Key`] per distinct value, so snapshots and window totals hash and compare a
//! pointer instead of the key's strings, and a source's label-set cache hands out keys without
//! building them again.
//!
//! Owns key identity and the interners' bound (keys no snapshot or cache holds are forgotten).
//! It must not decide which keys a sample has (that is [`super::extract`]).

use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use foldhash::HashSet;

use super::key_types::{Counter, Gauge, Histogram};

/// An interned key: equal (and hashed) by identity, so only keys of one [`KeyInterner`] may be
/// compared.
#[derive(Debug)]
pub struct Key<T>(Arc<T>);

impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        Key(self.0.clone())
    }
}

impl<T> PartialEq for Key<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> Eq for Key<T> {}

impl<T> Hash for Key<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state);
    }
}

impl<T> Deref for Key<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The distinct keys of one kind in use.
#[derive(Debug)]
pub struct KeyInterner<T> {
    keys: HashSet<Arc<T>>,
    /// Keys held right after the last pruning: the set is pruned when it has doubled since.
    kept_at_prune: usize,
}

impl<T> Default for KeyInterner<T> {
    fn default() -> Self {
        KeyInterner {
            keys: HashSet::default(),
            kept_at_prune: 0,
        }
    }
}

/// Keys at least held before an interner is pruned.
const PRUNE_FLOOR: usize = 256;

impl<T: Eq + Hash> KeyInterner<T> {
    /// The one key equal to `key`.
    pub fn intern(&mut self, key: T) -> Key<T> {
        if let Some(known) = self.keys.get(&key) {
            return Key(known.clone());
        }
        self.prune_when_doubled();
        let key = Arc::new(key);
        self.keys.insert(key.clone());
        Key(key)
    }

    /// Forgets the keys nothing else holds once the set has doubled since it was last pruned,
    /// so it stays within twice the keys in use (amortised: each key is looked at once per
    /// doubling).
    fn prune_when_doubled(&mut self) {
        if self.keys.len() < PRUNE_FLOOR.max(2 * self.kept_at_prune) {
            return;
        }
        self.keys.retain(|key| Arc::strong_count(key) > 1);
        self.kept_at_prune = self.keys.len();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The interners of every kind of key.
#[derive(Debug, Default)]
pub struct ViewKeys {
    pub counters: KeyInterner<Counter>,
    pub histograms: KeyInterner<Histogram>,
    pub gauges: KeyInterner<Gauge>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_are_one_and_unheld_ones_are_forgotten() {
        let mut keys = KeyInterner::default();
        let a = keys.intern(Counter::Pushes("eds".into()));
        assert_eq!(a, keys.intern(Counter::Pushes("eds".into())));
        assert_ne!(a, keys.intern(Counter::Pushes("cds".into())));
        for i in 0..PRUNE_FLOOR {
            keys.intern(Counter::Pushes(i.to_string()));
        }
        assert!(keys.len() < 10, "the unheld keys were forgotten");
        assert_eq!(
            a,
            keys.intern(Counter::Pushes("eds".into())),
            "a held key is kept"
        );
        assert_eq!(*a, Counter::Pushes("eds".into()));
    }
}

//! One target's series cache: what each series text of its bodies converts to, the series
//! that are live, and the scrape epoch in which each was last seen.
//!
//! A series text (the metric name and label block exactly as scraped) is looked up by its
//! 128-bit XXH3 hash; an entry gives the converted series (or that relabeling dropped it),
//! so a known line is neither lexed, relabeled nor allocated again. Entries are kept in the
//! order of the last scrape, and a body usually repeats that order, so the next line's entry
//! is expected at a cursor and found by one comparison in memory read in sequence; the hash
//! map is the fallback, and the order is rebuilt after a scrape that broke it. Several texts may name
//! one series (`le="1.0"` and `le="1"`); series are slots in a slab, shared by their texts and
//! stamped with the epoch of their last sample, which is how duplicates in a body and series
//! that vanished are found without building sets. A series absent from a scrape gets its
//! stale marker and is removed, with the texts not seen in that scrape, so the cache holds
//! what the latest scrape held. The conversion of a text is made once and kept while the text
//! appears in consecutive scrapes (a `# TYPE` line changing under an unchanged text keeps the
//! first reading, as in Prometheus' scrape cache).
//!
//!
//! Memory per series is what bounds a sink with many targets, so entries are small: a text is
//! 32 bytes, both hash tables hold 4-byte indexes (the text's hash is its key; a series' hash is
//! taken from its labels' identities), a slot is 16 bytes, and a series shares all its labels
//! but `__name__` and `le` with the other series of its label set (see
//! [`meshtap_remotewrite::encoded_series`]).
//!
//! Owns the cache and staleness of scraped series. It must not parse lines nor relabel.

use std::sync::Arc;

use hashbrown::HashTable;

use meshtap_remotewrite::encoded_series::{prefetch, EncodedSeries, LabelInterner};
use meshtap_remotewrite::sample::{ExportSample, ExportSeries};
use meshtap_remotewrite::series::stale_nan;

/// The cache key of a series text.
pub fn text_key(series_text: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(series_text)
}

/// What a series text converts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Dropped by `metric_relabel_configs`.
    Dropped,
    /// Its labels are unusable after relabeling (a repeated name, no `__name__`): a bad line.
    Invalid,
    /// A series slot, valid while the slot's generation is unchanged (16 bits are plenty: an
    /// outcome is checked at every scrape that holds its text, and a slot is freed at most
    /// once per scrape).
    Series { slot: u32, generation: u16 },
}

/// A cached series text.
#[derive(Clone, Copy, Debug)]
pub struct TextEntry {
    /// Epoch of the last scrape that held the text.
    seen: u32,
    pub outcome: Outcome,
    /// Lines of this text may be read with the quick split (see `meshtap_textformat::quick`).
    pub quick: bool,
    /// The text's family is one of Istio's standard ones (dropped while the filter reports
    /// the pod, with `merge.prefer: filter`).
    pub filter_family: bool,
}

#[derive(Debug)]
struct Slot {
    series: Option<Arc<EncodedSeries>>,
    seen: u32,
    generation: u16,
}

/// A text's key in two halves (8-byte aligned, where a `u128` would pad a [`Text`] to 48
/// bytes).
type Key = [u64; 2];

fn split(key: u128) -> Key {
    [key as u64, (key >> 64) as u64]
}

/// The hash of a key in the index: its low half (XXH3's bits are already spread).
fn key_hash(key: &Key) -> u64 {
    key[0]
}

fn series_hash(series: &EncodedSeries) -> u64 {
    series.shard_hash()
}

/// A cached text and its key.
#[derive(Clone, Copy, Debug)]
struct Text {
    key: Key,
    entry: TextEntry,
}

/// Texts ahead of the cursor whose series are brought into cache (their counters are touched
/// when a sample takes a reference).
const PREFETCH_AHEAD: usize = 4;

/// One target's cache (see the module docs).
#[derive(Debug, Default)]
pub struct SeriesCache {
    /// In the order of the last scrape (new texts at the end until the next rebuild).
    texts: Vec<Text>,
    /// Indexes in `texts`, found by key.
    index: HashTable<u32>,
    /// Where the next line's text is expected.
    cursor: usize,
    /// Indexes in `texts` of this scrape's texts, in the order first seen.
    order: Vec<u32>,
    /// `order` is `0, 1, 2, …` so far.
    in_sequence: bool,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Live slots, found by their series.
    by_series: HashTable<u32>,
    interner: LabelInterner,
    epoch: u32,
    /// Series created in the current scrape.
    added: u64,
    /// Series were removed: forget their labels at the next scrape, when their stale markers
    /// have normally been sent and no longer hold them.
    prune_pending: bool,
}

impl SeriesCache {
    /// Starts a scrape.
    pub fn begin(&mut self) {
        self.epoch = self.epoch.wrapping_add(1).max(1);
        self.added = 0;
        self.cursor = 0;
        self.order.clear();
        self.in_sequence = true;
        if std::mem::take(&mut self.prune_pending) {
            self.interner.prune();
        }
    }

    /// The entry of a text, marked as seen in this scrape.
    pub fn text(&mut self, key: u128) -> Option<TextEntry> {
        let key = split(key);
        let at = if self.texts.get(self.cursor).is_some_and(|t| t.key == key) {
            self.cursor
        } else if self.cursor > 0 && self.texts[self.cursor - 1].key == key {
            // The same text asked again (a quick read that needs the full parse).
            self.cursor - 1
        } else {
            self.find_text(&key)?
        };
        self.cursor = at + 1;
        self.prefetch_series(at + PREFETCH_AHEAD);
        Some(self.see(at))
    }

    fn find_text(&self, key: &Key) -> Option<usize> {
        let texts = &self.texts;
        let at = self
            .index
            .find(key_hash(key), |&at| texts[at as usize].key == *key)?;
        Some(*at as usize)
    }

    fn index_text(&mut self, at: usize) {
        let texts = &self.texts;
        self.index
            .insert_unique(key_hash(&texts[at].key), at as u32, |&at| {
                key_hash(&texts[at as usize].key)
            });
    }

    /// Marks the text at `at` as seen in this scrape and returns its entry.
    fn see(&mut self, at: usize) -> TextEntry {
        let epoch = self.epoch;
        let entry = &mut self.texts[at].entry;
        if entry.seen != epoch {
            entry.seen = epoch;
            self.in_sequence &= at == self.order.len();
            self.order.push(at as u32);
        }
        *entry
    }

    fn prefetch_series(&self, at: usize) {
        if let Some(Text {
            entry:
                TextEntry {
                    outcome: Outcome::Series { slot, .. },
                    ..
                },
            ..
        }) = self.texts.get(at)
        {
            if let Some(series) = self
                .slots
                .get(*slot as usize)
                .and_then(|s| s.series.as_ref())
            {
                prefetch(Arc::as_ptr(series));
            }
        }
    }

    /// Records what a text converts to (seen in this scrape).
    pub fn insert_text(&mut self, key: u128, outcome: Outcome, quick: bool, filter_family: bool) {
        let entry = TextEntry {
            seen: 0,
            outcome,
            quick,
            filter_family,
        };
        let key = split(key);
        let at = match self.find_text(&key) {
            Some(at) => {
                self.texts[at].entry = TextEntry {
                    seen: self.texts[at].entry.seen,
                    ..entry
                };
                at
            }
            None => {
                let at = self.texts.len();
                self.texts.push(Text { key, entry });
                self.index_text(at);
                at
            }
        };
        self.cursor = at + 1;
        self.see(at);
    }

    /// The slot of `series`, created if it is not live (counted as added).
    pub fn series(&mut self, series: EncodedSeries) -> Outcome {
        let hash = series_hash(&series);
        let slots = &self.slots;
        let live = |&slot: &u32| slots[slot as usize].series.as_deref() == Some(&series);
        if let Some(&slot) = self.by_series.find(hash, live) {
            let generation = self.slots[slot as usize].generation;
            return Outcome::Series { slot, generation };
        }
        let series = Arc::new(series);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize].series = Some(series.clone());
                slot
            }
            None => {
                self.slots.push(Slot {
                    series: Some(series.clone()),
                    seen: 0,
                    generation: 0,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        self.by_series.insert_unique(hash, slot, |&slot| {
            series_hash(slots[slot as usize].series.as_ref().expect("live slot"))
        });
        self.added += 1;
        Outcome::Series {
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    /// Whether `outcome` still holds: a series outcome whose slot was removed (and maybe
    /// reused) since must be converted again.
    pub fn is_current(&self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Dropped | Outcome::Invalid => true,
            Outcome::Series { slot, generation } => {
                let slot = &self.slots[slot as usize];
                slot.series.is_some() && slot.generation == generation
            }
        }
    }

    /// Notes a sample of the series in `slot` (a current outcome) in this scrape: the series
    /// if it is its first sample in the scrape, `None` for a duplicate (the first is kept).
    pub fn emit(&mut self, slot: u32) -> Option<Arc<EncodedSeries>> {
        let epoch = self.epoch;
        let slot = &mut self.slots[slot as usize];
        if slot.seen == epoch {
            return None;
        }
        slot.seen = epoch;
        slot.series.clone()
    }

    /// The interner of the target's labels.
    pub fn interner(&mut self) -> &mut LabelInterner {
        &mut self.interner
    }

    /// Series created in this scrape.
    pub fn added(&self) -> u64 {
        self.added
    }

    /// Live series.
    pub fn len(&self) -> usize {
        self.by_series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_series.is_empty()
    }

    /// Ends a successful scrape: stale markers at `marker_ms` for the series without a sample
    /// in it, which are removed, as are the texts it did not hold.
    pub fn finish(&mut self, marker_ms: i64) -> Vec<ExportSample> {
        let epoch = self.epoch;
        let markers = self.remove_slots(marker_ms, |slot| slot.seen != epoch);
        if !self.in_sequence || self.order.len() != self.texts.len() {
            // Keep this scrape's texts, in its order.
            let old = std::mem::take(&mut self.texts);
            self.texts = self.order.iter().map(|&at| old[at as usize]).collect();
            self.index.clear();
            for at in 0..self.texts.len() {
                self.index_text(at);
            }
        }
        self.order.clear();
        self.in_sequence = true;
        markers
    }

    /// Stale markers at `marker_ms` for every live series, and an empty cache (a failed
    /// scrape or a removed target).
    pub fn clear(&mut self, marker_ms: i64) -> Vec<ExportSample> {
        let markers = self.remove_slots(marker_ms, |_| true);
        self.texts.clear();
        self.index.clear();
        self.order.clear();
        self.cursor = 0;
        markers
    }

    fn remove_slots(
        &mut self,
        marker_ms: i64,
        remove: impl Fn(&Slot) -> bool,
    ) -> Vec<ExportSample> {
        let mut markers = Vec::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if slot.series.is_none() || !remove(slot) {
                continue;
            }
            let series = slot.series.take().expect("live slot");
            let at = index as u32;
            if let Ok(entry) = self
                .by_series
                .find_entry(series_hash(&series), |&s| s == at)
            {
                entry.remove();
            }
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(index as u32);
            markers.push(ExportSample {
                series: ExportSeries::Encoded(series),
                value: stale_nan(),
                timestamp_ms: marker_ms,
            });
        }
        self.prune_pending |= !markers.is_empty();
        markers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtap_remotewrite::series::is_stale_marker;

    fn series(cache: &mut SeriesCache, name: &str) -> EncodedSeries {
        cache.interner().series([("__name__", name)])
    }

    #[test]
    fn duplicates_and_vanished_series_come_from_the_epoch() {
        let mut cache = SeriesCache::default();
        cache.begin();
        let a = series(&mut cache, "a");
        let a_outcome = cache.series(a);
        let Outcome::Series { slot, .. } = a_outcome else {
            panic!("no slot");
        };
        cache.insert_text(text_key(b"a"), a_outcome, true, false);
        let b = series(&mut cache, "b");
        let b_outcome = cache.series(b);
        let Outcome::Series { slot: b_slot, .. } = b_outcome else {
            panic!("no slot");
        };
        assert_eq!(cache.added(), 2);
        assert!(cache.emit(slot).is_some());
        assert!(cache.emit(slot).is_none(), "duplicate");
        assert!(cache.emit(b_slot).is_some());
        assert!(cache.finish(10).is_empty());

        cache.begin();
        let entry = cache.text(text_key(b"a")).unwrap();
        assert!(cache.is_current(entry.outcome));
        assert!(cache.emit(slot).is_some());
        let again = series(&mut cache, "a");
        assert_eq!(cache.series(again), a_outcome);
        assert_eq!(cache.added(), 0);
        let markers = cache.finish(20);
        assert_eq!(markers.len(), 1, "b vanished");
        assert!(is_stale_marker(markers[0].value));
        assert_eq!(markers[0].timestamp_ms, 20);
        assert_eq!(cache.len(), 1);
        assert!(!cache.is_current(b_outcome));
        drop(markers);

        cache.begin();
        let c = series(&mut cache, "c");
        let Outcome::Series { slot: c_slot, .. } = cache.series(c) else {
            panic!("no slot");
        };
        assert_eq!(c_slot, b_slot, "the freed slot is reused");
        assert!(!cache.is_current(b_outcome), "b's outcome stays invalid");
        assert_eq!(cache.clear(30).len(), 2);
        assert!(cache.is_empty());
        assert!(cache.text(text_key(b"a")).is_none());
        cache.begin();
        assert!(
            cache.interner().is_empty(),
            "labels forgotten at the next scrape"
        );
    }

    /// Texts in a new order, one gone and one new: every lookup still finds its entry, the
    /// cache then holds the new order, and a scrape repeating it stays on the cursor.
    #[test]
    fn the_text_order_follows_the_last_scrape() {
        let mut cache = SeriesCache::default();
        let scrape = |cache: &mut SeriesCache, names: &[&str]| {
            cache.begin();
            for name in names {
                let key = text_key(name.as_bytes());
                match cache.text(key) {
                    Some(entry) => assert!(cache.is_current(entry.outcome), "{name}"),
                    None => {
                        let series = series(cache, name);
                        let outcome = cache.series(series);
                        cache.insert_text(key, outcome, true, false);
                    }
                }
                let Some(TextEntry {
                    outcome: Outcome::Series { slot, .. },
                    ..
                }) = cache.text(key)
                else {
                    panic!("{name} has a series");
                };
                assert!(cache.emit(slot).is_some(), "{name} once per scrape");
            }
            let stale = cache.finish(1).len();
            let order: Vec<Key> = cache.texts.iter().map(|t| t.key).collect();
            (stale, order)
        };
        let keys = |names: &[&str]| -> Vec<Key> {
            names
                .iter()
                .map(|n| split(text_key(n.as_bytes())))
                .collect()
        };
        assert_eq!(
            scrape(&mut cache, &["a", "b", "c", "d"]),
            (0, keys(&["a", "b", "c", "d"]))
        );
        assert_eq!(
            scrape(&mut cache, &["c", "a", "e", "d"]),
            (1, keys(&["c", "a", "e", "d"]))
        );
        cache.begin();
        for name in ["c", "a", "e", "d"] {
            let entry = cache.text(text_key(name.as_bytes())).unwrap();
            let Outcome::Series { slot, .. } = entry.outcome else {
                panic!("{name} has a series");
            };
            assert!(cache.emit(slot).is_some());
        }
        assert!(
            cache.in_sequence,
            "the repeated order is read on the cursor"
        );
        assert_eq!(cache.finish(2).len(), 0);
        assert_eq!(cache.index.len(), 4);
    }
}

//! One target's series cache: what each series text of its bodies converts to, the series
//! that are live, and which of them the current scrape has seen.
//!
//! A series text (the metric name and label block exactly as scraped) is looked up by its
//! 128-bit XXH3 key ([`super::text_key::TextKeys`]); an entry gives the converted series (or that
//! relabeling dropped it), so a known line is neither lexed, relabeled nor allocated again. Entries are kept in the
//! order of the last scrape, and a body usually repeats that order, so the next line's entry
//! is expected at a cursor and found by one comparison in memory read in sequence; the hash
//! map is the fallback, and the order is rebuilt after a scrape that broke it. Several texts may name
//! one series (`le="1.0"` and `le="1"`); series are slots in a slab, shared by their texts and
//! marked when they give a sample, which is how duplicates in a body and series that vanished
//! are found. A series absent from a scrape gets its
//! stale marker and is removed, with the texts not seen in that scrape, so the cache holds
//! what the latest scrape held. The conversion of a text is made once and kept while the text
//! appears in consecutive scrapes (a `# TYPE` line changing under an unchanged text keeps the
//! first reading, as in Prometheus' scrape cache).
//!
//! Memory per series is what bounds a sink with many targets, so what stays between scrapes
//! is small: a text is 24 bytes (its 128-bit hash and its outcome packed in 8), a slot is its
//! series pointer and a 16-bit generation, and a series shares all its labels but `__name__`
//! and `le` with the other series of its label set (see
//! [`meshtap_remotewrite::encoded_series`]). What a scrape marks (texts and series seen) are
//! bits, cleared when the next one begins. The two hash indexes (texts by key, live series by
//! labels) are built only when a scrape needs them — a text off the cursor, a new series — and
//! dropped when it ends: a target whose body repeats itself keeps neither.
//!
//! Owns the cache and staleness of scraped series. It must not parse lines nor relabel.

use std::sync::Arc;

use hashbrown::HashTable;

use super::marks::Marks;
use meshtap_remotewrite::encoded_series::{prefetch, EncodedSeries, LabelInterner};
use meshtap_remotewrite::sample::{ExportSample, ExportSeries};
use meshtap_remotewrite::series::stale_nan;

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
    pub outcome: Outcome,
    /// Lines of this text may be read with the quick split (see `meshtap_textformat::quick`).
    pub quick: bool,
    /// The text's family is one of Istio's standard ones (dropped while the filter reports
    /// the pod, with `merge.prefer: filter`).
    pub filter_family: bool,
}

/// A text's key in two halves (8-byte aligned, where a `u128` would pad a [`Text`] to 32
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

/// [`Text::kind`] of each [`Outcome`].
const DROPPED: u8 = 0;
const INVALID: u8 = 1;
const SERIES: u8 = 2;
/// [`Text::flags`] bits.
const QUICK: u8 = 1;
const FILTER_FAMILY: u8 = 2;

/// A cached text: its key and its [`TextEntry`] packed in 8 bytes (24 in all).
#[derive(Clone, Copy, Debug)]
struct Text {
    key: Key,
    slot: u32,
    generation: u16,
    kind: u8,
    flags: u8,
}

impl Text {
    fn new(key: Key, entry: TextEntry) -> Text {
        let (kind, slot, generation) = match entry.outcome {
            Outcome::Dropped => (DROPPED, 0, 0),
            Outcome::Invalid => (INVALID, 0, 0),
            Outcome::Series { slot, generation } => (SERIES, slot, generation),
        };
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        Text {
            key,
            slot,
            generation,
            kind,
            flags: flag(entry.quick, QUICK) | flag(entry.filter_family, FILTER_FAMILY),
        }
    }

    fn entry(&self) -> TextEntry {
        let outcome = match self.kind {
            DROPPED => Outcome::Dropped,
            INVALID => Outcome::Invalid,
            _ => Outcome::Series {
                slot: self.slot,
                generation: self.generation,
            },
        };
        TextEntry {
            outcome,
            quick: self.flags & QUICK != 0,
            filter_family: self.flags & FILTER_FAMILY != 0,
        }
    }
}

/// Texts ahead of the cursor whose series are brought into cache (their counters are touched
/// when a sample takes a reference).
const PREFETCH_AHEAD: usize = 4;

/// One target's cache (see the module docs).
#[derive(Debug, Default)]
pub struct SeriesCache {
    /// In the order of the last scrape (new texts at the end until the next rebuild).
    texts: Vec<Text>,
    /// Indexes in `texts`, found by key; built when a scrape first looks off the cursor.
    index: Option<HashTable<u32>>,
    /// Where the next line's text is expected.
    cursor: usize,
    /// Texts seen in this scrape.
    texts_seen: Marks,
    /// This scrape's texts so far are `texts[..in_sequence]`, in that order (the usual case:
    /// nothing to record).
    in_sequence: Option<usize>,
    /// Otherwise the indexes in `texts` of this scrape's texts, in the order first seen.
    order: Vec<u32>,
    /// Each slot's series (`None`: free).
    slots: Vec<Option<Arc<EncodedSeries>>>,
    /// Each slot's generation, bumped when its series is removed.
    generations: Vec<u16>,
    /// Slots that gave a sample in this scrape.
    emitted: Marks,
    free: Vec<u32>,
    /// Live slots.
    live: usize,
    /// Live slots, found by their series; built when a scrape first creates a series.
    by_series: Option<HashTable<u32>>,
    interner: LabelInterner,
    /// Series created in the current scrape.
    added: u64,
    /// Series were removed: forget their labels at the next scrape, when their stale markers
    /// have normally been sent and no longer hold them.
    prune_pending: bool,
}

impl SeriesCache {
    /// Starts a scrape.
    pub fn begin(&mut self) {
        self.added = 0;
        self.cursor = 0;
        self.texts_seen.reset(self.texts.len());
        self.emitted.reset(self.slots.len());
        self.in_sequence = Some(0);
        self.order.clear();
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
        self.see(at);
        Some(self.texts[at].entry())
    }

    fn find_text(&mut self, key: &Key) -> Option<usize> {
        let texts = &self.texts;
        let index = self.index.get_or_insert_with(|| {
            let mut index = HashTable::with_capacity(texts.len());
            for at in 0..texts.len() {
                insert_text_index(&mut index, texts, at);
            }
            index
        });
        let at = index.find(key_hash(key), |&at| texts[at as usize].key == *key)?;
        Some(*at as usize)
    }

    /// Marks the text at `at` as seen in this scrape.
    fn see(&mut self, at: usize) {
        if !self.texts_seen.set(at) {
            return;
        }
        match self.in_sequence {
            Some(next) if next == at => self.in_sequence = Some(next + 1),
            Some(next) => {
                self.order.extend(0..next as u32);
                self.order.push(at as u32);
                self.in_sequence = None;
            }
            None => self.order.push(at as u32),
        }
    }

    fn prefetch_series(&self, at: usize) {
        let Some(text) = self.texts.get(at).filter(|t| t.kind == SERIES) else {
            return;
        };
        if let Some(Some(series)) = self.slots.get(text.slot as usize) {
            prefetch(Arc::as_ptr(series));
        }
    }

    /// Records what a text converts to (seen in this scrape).
    pub fn insert_text(&mut self, key: u128, outcome: Outcome, quick: bool, filter_family: bool) {
        let entry = TextEntry {
            outcome,
            quick,
            filter_family,
        };
        let key = split(key);
        let at = match self.find_text(&key) {
            Some(at) => at,
            None => {
                let at = self.texts.len();
                self.texts.push(Text::new(key, entry));
                let index = self.index.as_mut().expect("built by find_text");
                insert_text_index(index, &self.texts, at);
                at
            }
        };
        self.texts[at] = Text::new(key, entry);
        self.cursor = at + 1;
        self.see(at);
    }

    /// The slot of `series`, created if it is not live (counted as added).
    pub fn series(&mut self, series: EncodedSeries) -> Outcome {
        let hash = series_hash(&series);
        let slots = &self.slots;
        let by_series = self.by_series.get_or_insert_with(|| {
            let mut index = HashTable::with_capacity(slots.len());
            for (slot, live) in slots.iter().enumerate() {
                if let Some(live) = live {
                    index.insert_unique(series_hash(live), slot as u32, |&s| slot_hash(slots, s));
                }
            }
            index
        });
        let found = by_series.find(hash, |&slot| {
            slots[slot as usize].as_deref() == Some(&series)
        });
        if let Some(&slot) = found {
            let generation = self.generations[slot as usize];
            return Outcome::Series { slot, generation };
        }
        let series = Some(Arc::new(series));
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = series;
                slot
            }
            None => {
                self.slots.push(series);
                self.generations.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        let by_series = self.by_series.as_mut().expect("built above");
        by_series.insert_unique(hash, slot, |&s| slot_hash(slots, s));
        self.live += 1;
        self.added += 1;
        Outcome::Series {
            slot,
            generation: self.generations[slot as usize],
        }
    }

    /// Whether `outcome` still holds: a series outcome whose slot was removed (and maybe
    /// reused) since must be converted again.
    pub fn is_current(&self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Dropped | Outcome::Invalid => true,
            Outcome::Series { slot, generation } => {
                let slot = slot as usize;
                self.slots[slot].is_some() && self.generations[slot] == generation
            }
        }
    }

    /// Notes a sample of the series in `slot` (a current outcome) in this scrape: the series
    /// if it is its first sample in the scrape, `None` for a duplicate (the first is kept).
    pub fn emit(&mut self, slot: u32) -> Option<Arc<EncodedSeries>> {
        if !self.emitted.set(slot as usize) {
            return None;
        }
        self.slots[slot as usize].clone()
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
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Ends a successful scrape: stale markers at `marker_ms` for the series without a sample
    /// in it, which are removed, as are the texts it did not hold.
    pub fn finish(&mut self, marker_ms: i64) -> Vec<ExportSample> {
        let emitted = std::mem::take(&mut self.emitted);
        let markers = self.remove_slots(marker_ms, |slot| !emitted.get(slot));
        self.emitted = emitted;
        match self.in_sequence {
            // Only texts at the end were not seen.
            Some(seen) => self.texts.truncate(seen),
            // Keep this scrape's texts, in its order.
            None => {
                let old = std::mem::take(&mut self.texts);
                self.texts = self.order.iter().map(|&at| old[at as usize]).collect();
            }
        }
        self.end_scrape();
        markers
    }

    /// Stale markers at `marker_ms` for every live series, and an empty cache (a failed
    /// scrape or a removed target).
    pub fn clear(&mut self, marker_ms: i64) -> Vec<ExportSample> {
        let markers = self.remove_slots(marker_ms, |_| true);
        self.texts = Vec::new();
        self.end_scrape();
        markers
    }

    /// Drops what only a scrape uses: the indexes and the order.
    fn end_scrape(&mut self) {
        self.index = None;
        self.by_series = None;
        self.order = Vec::new();
        self.in_sequence = Some(0);
        self.cursor = 0;
    }

    fn remove_slots(
        &mut self,
        marker_ms: i64,
        remove: impl Fn(usize) -> bool,
    ) -> Vec<ExportSample> {
        let mut markers = Vec::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if slot.is_none() || !remove(index) {
                continue;
            }
            let series = slot.take().expect("live slot");
            self.generations[index] = self.generations[index].wrapping_add(1);
            self.free.push(index as u32);
            markers.push(ExportSample {
                series: ExportSeries::Encoded(series),
                value: stale_nan(),
                timestamp_ms: marker_ms,
            });
        }
        self.live -= markers.len();
        if !markers.is_empty() {
            self.by_series = None;
            self.prune_pending = true;
        }
        markers
    }
}

fn insert_text_index(index: &mut HashTable<u32>, texts: &[Text], at: usize) {
    index.insert_unique(key_hash(&texts[at].key), at as u32, |&at| {
        key_hash(&texts[at as usize].key)
    });
}

fn slot_hash(slots: &[Option<Arc<EncodedSeries>>], slot: u32) -> u64 {
    series_hash(slots[slot as usize].as_ref().expect("live slot"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::text_key::TextKeys;

    fn text_key(series_text: &[u8]) -> u128 {
        TextKeys::default().key(series_text)
    }
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
        assert_eq!(
            (cache.in_sequence, cache.index.is_none()),
            (Some(4), true),
            "the repeated order is read on the cursor, without the index"
        );
        assert_eq!(cache.finish(2).len(), 0);
        assert_eq!(cache.texts.len(), 4);
    }
}

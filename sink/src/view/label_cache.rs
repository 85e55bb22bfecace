//! One source's keys per label set: a scrape target serves the same series every interval, and
//! the keys of a series (its graph edge, service, workload pair) are a function of the labels
//! it shares with its family's other series, so they are made once per label set and found
//! again by that set's identity (one lookup per sample, no label scans, no strings).
//!
//! Owns the cache's entries and their lifetime: an entry pins its label set (so the identity
//! it is found by names no other set) and is dropped after a scrape that did not show it. It
//! must not decide what the keys are (that is [`super::key_types`]).

use foldhash::HashMap;

use super::key_types::{Counter, Histogram, TcpField};
use super::keys::Key;
use super::sample_labels::{LabelsPin, SampleLabels};

/// The keys of an `istio_requests_total` series: all answers, and 5xx ones if it counts them.
#[derive(Clone)]
pub struct RequestKeys {
    pub all: Key<Counter>,
    pub errors: Option<Key<Counter>>,
}

/// What the view made of one label set so far.
pub struct LabelKeys {
    /// The label set's identity, held alive by `_pin`.
    id: usize,
    _pin: LabelsPin,
    /// The read in which the label set was last seen.
    seen: u32,
    pub requests: Option<RequestKeys>,
    pub duration: Option<Key<Histogram>>,
    pub tcp: [Option<Key<Counter>>; 4],
}

impl LabelKeys {
    /// The cached counter of TCP family `field`.
    pub fn tcp(&mut self, field: TcpField) -> &mut Option<Key<Counter>> {
        &mut self.tcp[field as usize]
    }
}

/// A source's [`LabelKeys`], in the order its samples first showed them (a target serves its
/// series in the same order every scrape, so the next entry is usually the one after the last:
/// found at a cursor, walked in memory order, the hash index only as fallback).
#[derive(Default)]
pub struct LabelCache {
    entries: Vec<LabelKeys>,
    /// Place in `entries` by identity.
    index: HashMap<usize, usize>,
    /// Where the next entry is looked for first.
    cursor: usize,
    /// The current read; entries not seen in it are dropped at its end.
    read: u32,
    /// Entries seen in the current read.
    seen: usize,
}

impl LabelCache {
    /// Starts reading one batch of the source's samples.
    pub fn begin(&mut self) {
        self.read = self.read.wrapping_add(1);
        self.seen = 0;
        self.cursor = 0;
    }

    /// The entry of `sample`'s label set, made (pinning the set) when new.
    pub fn entry(&mut self, sample: &impl SampleLabels) -> &mut LabelKeys {
        let id = sample.shared_labels_id();
        let at = match self.entries.get(self.cursor) {
            Some(next) if next.id == id => self.cursor,
            _ => match self.index.get(&id) {
                Some(&at) => at,
                None => self.insert(id, sample),
            },
        };
        self.cursor = at + 1;
        let keys = &mut self.entries[at];
        if keys.seen != self.read {
            keys.seen = self.read;
            self.seen += 1;
        }
        keys
    }

    fn insert(&mut self, id: usize, sample: &impl SampleLabels) -> usize {
        let at = self.entries.len();
        self.entries.push(LabelKeys {
            id,
            _pin: sample.pin(),
            seen: self.read.wrapping_sub(1),
            requests: None,
            duration: None,
            tcp: Default::default(),
        });
        self.index.insert(id, at);
        at
    }

    /// Ends the batch: drops the entries of label sets it did not show.
    pub fn end(&mut self) {
        if self.seen < self.entries.len() {
            let read = self.read;
            self.entries.retain(|keys| keys.seen == read);
            self.index.clear();
            let places = self.entries.iter().enumerate().map(|(at, k)| (k.id, at));
            self.index.extend(places);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        debug_assert_eq!(self.entries.len(), self.index.len());
        self.entries.len()
    }
}

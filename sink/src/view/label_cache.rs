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

/// A source's [`LabelKeys`] by label-set identity.
#[derive(Default)]
pub struct LabelCache {
    sets: HashMap<usize, LabelKeys>,
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
    }

    /// The entry of `sample`'s label set, made (pinning the set) when new.
    pub fn entry(&mut self, sample: &impl SampleLabels) -> &mut LabelKeys {
        let read = self.read;
        let keys = self
            .sets
            .entry(sample.shared_labels_id())
            .or_insert_with(|| LabelKeys {
                _pin: sample.pin(),
                seen: read.wrapping_sub(1),
                requests: None,
                duration: None,
                tcp: Default::default(),
            });
        if keys.seen != read {
            keys.seen = read;
            self.seen += 1;
        }
        keys
    }

    /// Ends the batch: drops the entries of label sets it did not show.
    pub fn end(&mut self) {
        if self.seen < self.sets.len() {
            let read = self.read;
            self.sets.retain(|_, keys| keys.seen == read);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sets.len()
    }
}

//! Series kept as their remote-write encoding: each label is one interned, already encoded
//! `TimeSeries.labels` field (`Label{name, value}` with its key and length), and a series is
//! the sorted list of its labels (`__name__` included). Encoding a sample of such a series
//! copies bytes; holding it costs one pointer per label, since equal labels are shared through
//! a [`LabelInterner`].
//!
//! Owns the encoded label layout, label interning and the identity of encoded series (equal
//! when they hold the same interned labels). It must not decide which labels a series has.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use rustc_hash::FxHasher;

/// One `TimeSeries.labels` field, encoded.
#[derive(Debug)]
pub struct EncodedLabel {
    field: Box<[u8]>,
    name: (u32, u32),
    value: (u32, u32),
}

impl EncodedLabel {
    fn new(name: &str, value: &str) -> EncodedLabel {
        let mut field = Vec::with_capacity(name.len() + value.len() + 8);
        let string_len = |s: &str| 1 + encoded_len_varint(s.len() as u64) + s.len();
        encode_key(1, WireType::LengthDelimited, &mut field);
        encode_varint((string_len(name) + string_len(value)) as u64, &mut field);
        let mut put = |tag: u32, s: &str| {
            encode_key(tag, WireType::LengthDelimited, &mut field);
            encode_varint(s.len() as u64, &mut field);
            let start = field.len() as u32;
            field.extend_from_slice(s.as_bytes());
            (start, s.len() as u32)
        };
        let name = put(1, name);
        let value = put(2, value);
        EncodedLabel {
            field: field.into_boxed_slice(),
            name,
            value,
        }
    }

    /// The encoded field, ready to be copied into a `TimeSeries`.
    pub fn field(&self) -> &[u8] {
        &self.field
    }

    fn text(&self, (start, len): (u32, u32)) -> &str {
        let bytes = &self.field[start as usize..(start + len) as usize];
        std::str::from_utf8(bytes).expect("encoded from a str")
    }

    pub fn name(&self) -> &str {
        self.text(self.name)
    }

    pub fn value(&self) -> &str {
        self.text(self.value)
    }
}

/// An interned label, found by its encoded bytes.
#[derive(Clone, Debug)]
struct Interned(Arc<EncodedLabel>);

impl Borrow<[u8]> for Interned {
    fn borrow(&self) -> &[u8] {
        &self.0.field
    }
}

impl PartialEq for Interned {
    fn eq(&self, other: &Self) -> bool {
        self.0.field == other.0.field
    }
}

impl Eq for Interned {}

impl Hash for Interned {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.field.hash(state);
    }
}

/// The labels in use by one owner's series (for the scrape stage: one target), each stored
/// once.
#[derive(Debug, Default)]
pub struct LabelInterner {
    labels: HashSet<Interned, BuildHasherDefault<FxHasher>>,
}

impl LabelInterner {
    /// The shared label `name="value"`.
    pub fn label(&mut self, name: &str, value: &str) -> Arc<EncodedLabel> {
        let encoded = EncodedLabel::new(name, value);
        if let Some(known) = self.labels.get(&*encoded.field) {
            return known.0.clone();
        }
        let label = Arc::new(encoded);
        self.labels.insert(Interned(label.clone()));
        label
    }

    /// A series of `labels`, which must be sorted by name with unique names and non-empty
    /// values (`__name__` among them).
    pub fn series<'a>(
        &mut self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> EncodedSeries {
        let labels: Box<[Arc<EncodedLabel>]> = labels
            .into_iter()
            .map(|(name, value)| self.label(name, value))
            .collect();
        debug_assert!(
            labels.windows(2).all(|w| w[0].name() < w[1].name()),
            "labels not sorted/unique"
        );
        let mut hasher = FxHasher::default();
        let mut fields_len = 0;
        for label in labels.iter() {
            label.field.hash(&mut hasher);
            fields_len += label.field.len();
        }
        EncodedSeries {
            labels,
            // The upper half: FxHasher's best-mixed bits.
            hash: (hasher.finish() >> 32) as u32,
            fields_len: u32::try_from(fields_len).expect("a series' labels fit in 4 GiB"),
        }
    }

    /// Forgets labels no series uses any more.
    pub fn prune(&mut self) {
        self.labels.retain(|l| Arc::strong_count(&l.0) > 1);
    }

    /// Labels held.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A series as its sorted, encoded labels. Two series are equal when they hold the same
/// interned labels, so only series from one [`LabelInterner`] may be compared.
#[derive(Debug)]
pub struct EncodedSeries {
    labels: Box<[Arc<EncodedLabel>]>,
    /// 32 bits each, so that a series stays 24 bytes.
    hash: u32,
    fields_len: u32,
}

impl EncodedSeries {
    /// The labels, sorted by name.
    pub fn labels(&self) -> &[Arc<EncodedLabel>] {
        &self.labels
    }

    /// Hash of the labels, for sharding onto lanes.
    pub fn shard_hash(&self) -> u64 {
        u64::from(self.hash)
    }

    /// Asks the CPU to bring the series' label pointers into cache ahead of their use (the
    /// encoder does this a few samples ahead: they are a separate allocation per series, and
    /// otherwise the encoder's main cache miss). A hint: it has no effect on results.
    pub fn prefetch_labels(&self) {
        let start = self.labels.as_ptr().cast::<u8>();
        let bytes = std::mem::size_of_val(&*self.labels);
        for offset in (0..bytes).step_by(64) {
            prefetch(start.wrapping_add(offset));
        }
    }

    /// Length of the labels' encoded fields together.
    pub fn fields_len(&self) -> usize {
        self.fields_len as usize
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|l| l.name().cmp(name))
            .ok()
            .map(|i| self.labels[i].value())
    }
}

/// Prefetches the cache line of `at` (a hint; never dereferences it).
pub fn prefetch<T>(at: *const T) {
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has (it is in the target's
    // baseline), and it never dereferences the pointer: any address is allowed.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

impl PartialEq for EncodedSeries {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.labels.len() == other.labels.len()
            && self
                .labels
                .iter()
                .zip(other.labels.iter())
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Eq for EncodedSeries {}

impl Hash for EncodedSeries {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u32(self.hash);
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto;

    #[test]
    fn labels_are_encoded_like_prost_and_shared() {
        let mut interner = LabelInterner::default();
        let a = interner.series([("__name__", "up"), ("job", "j")]);
        let b = interner.series([("__name__", "up"), ("job", "j")]);
        let c = interner.series([("__name__", "up"), ("job", "k")]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(interner.len(), 3);
        assert_eq!(a.get("job"), Some("j"));
        assert_eq!(
            a.fields_len(),
            a.labels().iter().map(|l| l.field().len()).sum::<usize>()
        );
        assert_eq!(std::mem::size_of::<EncodedSeries>(), 24);
        let expected = proto::Label {
            name: "job".into(),
            value: "j".into(),
        };
        let mut field = Vec::new();
        encode_key(1, WireType::LengthDelimited, &mut field);
        encode_varint(expected.encoded_len() as u64, &mut field);
        expected.encode(&mut field).unwrap();
        assert_eq!(a.labels()[1].field(), field.as_slice());
        drop((a, b));
        interner.prune();
        assert_eq!(interner.len(), 2, "the labels of c stay");
    }
}

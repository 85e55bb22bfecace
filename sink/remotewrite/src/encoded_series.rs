//! Series kept as their remote-write encoding: each label is one interned, already encoded
//! `TimeSeries.labels` field (`Label{name, value}` with its key and length), and a series is
//! the sorted list of its labels (`__name__` included). Encoding a sample of such a series
//! copies bytes; holding it costs two pointers, since everything it points to is interned by
//! a [`LabelInterner`] and shared: equal labels, the labels the series of one label set have
//! in common (one list for the variants that differ only in where their own labels go, such as
//! a histogram's buckets and its `_sum`), and a series' own labels (`__name__`, `le`), which the
//! series of one family and bucket share across label sets.
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
        // SAFETY: `new` copied a whole `&str` into exactly this range of `field`, which is
        // never changed afterwards, so the bytes are valid UTF-8 (checking again on every read
        // was a fifth of the sink's CPU when the live view reads scraped labels).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    fn name_bytes(&self) -> &[u8] {
        let (start, len) = self.name;
        &self.field[start as usize..(start + len) as usize]
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

/// Names of the labels a series keeps as its own rather than in its shared [`LabelSet`]: they
/// tell apart the series of one family and label set (a histogram's buckets, its `_sum` and
/// `_count`), which share every other label.
const OWN_NAMES: [&str; 3] = ["__name__", "le", "quantile"];
/// Own labels per series at most (the others of [`OWN_NAMES`] stay in the shared set).
pub const OWN: usize = 2;
/// [`LabelSet::own_at`] of an own label the series does not have.
const NO_PLACE: u8 = u8::MAX;

/// Interned labels in name order, shared by every [`LabelSet`] that holds them.
type LabelList = Arc<[Arc<EncodedLabel>]>;

/// An interned [`LabelList`], found by its labels' identities.
#[derive(Clone, Debug)]
struct InternedList(LabelList);

/// The labels several series of one owner have in common (all but their own), interned, and
/// where the series' own labels go among them.
#[derive(Debug)]
pub struct LabelSet {
    labels: LabelList,
    /// Index of each own label among the series' sorted labels, or [`NO_PLACE`].
    own_at: [u8; OWN],
    fields_len: u32,
}

/// A series' own labels (see [`OWN_NAMES`]), interned: the series of one family (and bucket)
/// share them across label sets.
#[derive(Debug)]
struct OwnLabels {
    labels: [Option<Arc<EncodedLabel>>; OWN],
    fields_len: u32,
    /// Which of [`OWN_NAMES`] the labels are, two bits each (index + 1; 0 for none).
    names: u8,
}

/// The labels in use by one owner's series (for the scrape stage: one target), each stored
/// once, and the shared label lists, label sets and own labels of its series.
#[derive(Debug, Default)]
pub struct LabelInterner {
    labels: HashSet<Interned, BuildHasherDefault<FxHasher>>,
    lists: HashSet<InternedList, BuildHasherDefault<FxHasher>>,
    sets: HashSet<Arc<LabelSet>, BuildHasherDefault<FxHasher>>,
    owns: HashSet<Arc<OwnLabels>, BuildHasherDefault<FxHasher>>,
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
        let mut own: [Option<Arc<EncodedLabel>>; OWN] = Default::default();
        let mut own_at = [NO_PLACE; OWN];
        let mut names = 0u8;
        let mut shared = Vec::new();
        let mut kept = 0;
        for (at, (name, value)) in labels.into_iter().enumerate() {
            let label = self.label(name, value);
            debug_assert!(
                shared
                    .last()
                    .is_none_or(|l: &Arc<EncodedLabel>| l.name() < name),
                "labels not sorted/unique"
            );
            let own_name = OWN_NAMES.iter().position(|own| *own == name);
            if let Some(n) = own_name.filter(|_| kept < OWN && at < usize::from(NO_PLACE)) {
                names |= (n as u8 + 1) << (2 * kept);
                own[kept] = Some(label);
                own_at[kept] = at as u8;
                kept += 1;
            } else {
                shared.push(label);
            }
        }
        let set = LabelSet {
            fields_len: fields_len(shared.iter()),
            labels: intern(&mut self.lists, InternedList(shared.into())).0,
            own_at,
        };
        let own = OwnLabels {
            fields_len: fields_len(own.iter().flatten()),
            labels: own,
            names,
        };
        EncodedSeries {
            shared: intern(&mut self.sets, Arc::new(set)),
            own: intern(&mut self.owns, Arc::new(own)),
        }
    }

    /// Forgets the label sets, own labels, label lists and labels no series uses any more
    /// (the users first).
    pub fn prune(&mut self) {
        self.sets.retain(|s| Arc::strong_count(s) > 1);
        self.owns.retain(|o| Arc::strong_count(o) > 1);
        self.lists.retain(|l| Arc::strong_count(&l.0) > 1);
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

/// The known value equal to `value` in `known`, which keeps `value` if it has none.
fn intern<T: Clone + Eq + Hash>(
    known: &mut HashSet<T, BuildHasherDefault<FxHasher>>,
    value: T,
) -> T {
    match known.get(&value) {
        Some(known) => known.clone(),
        None => {
            known.insert(value.clone());
            value
        }
    }
}

fn fields_len<'a>(labels: impl Iterator<Item = &'a Arc<EncodedLabel>>) -> u32 {
    let len = labels.map(|l| l.field.len()).sum::<usize>();
    u32::try_from(len).expect("a series' labels fit in 4 GiB")
}

/// A series as its encoded labels: a shared, interned [`LabelSet`] and its interned own labels
/// (`__name__`, a bucket's `le`), 16 bytes. Two series are equal when they hold the same
/// interned labels, so only series from one [`LabelInterner`] may be compared.
#[derive(Debug)]
pub struct EncodedSeries {
    shared: Arc<LabelSet>,
    own: Arc<OwnLabels>,
}

impl EncodedSeries {
    /// The labels, sorted by name.
    pub fn labels(&self) -> impl Iterator<Item = &EncodedLabel> + '_ {
        let set = &*self.shared;
        let mut shared = set.labels.iter();
        let mut own = self
            .own
            .labels
            .iter()
            .zip(set.own_at)
            .filter_map(|(label, at)| Some((usize::from(at), label.as_deref()?)))
            .peekable();
        let len = set.labels.len() + self.own.labels.iter().flatten().count();
        (0..len).map(move |i| match own.next_if(|&(at, _)| at == i) {
            Some((_, label)) => label,
            None => shared.next().expect("labels counted"),
        })
    }

    /// Replaces the contents of `out` with [`Self::labels`]: the shared labels in one pass,
    /// then the own labels inserted at their places (ascending, so each lands where the
    /// sorted order puts it). The encoder calls this for every sample.
    pub fn labels_into<'a>(&'a self, out: &mut Vec<&'a EncodedLabel>) {
        out.clear();
        out.extend(self.shared.labels.iter().map(|l| &**l));
        for (label, at) in self.own.labels.iter().zip(self.shared.own_at) {
            if let Some(label) = label.as_deref() {
                out.insert(usize::from(at), label);
            }
        }
    }

    /// Hash of the labels' identities, for sharding onto lanes within this process.
    pub fn shard_hash(&self) -> u64 {
        let mut hasher = FxHasher::default();
        self.hash(&mut hasher);
        hasher.finish()
    }

    /// Asks the CPU to bring the series' shared label pointers into cache ahead of their use
    /// (the encoder does this a few samples ahead: otherwise its main cache miss). A hint: it
    /// has no effect on results.
    pub fn prefetch_labels(&self) {
        let start = self.shared.labels.as_ptr().cast::<u8>();
        let bytes = std::mem::size_of_val(&*self.shared.labels);
        for offset in (0..bytes).step_by(64) {
            prefetch(start.wrapping_add(offset));
        }
    }

    /// Length of the labels' encoded fields together.
    pub fn fields_len(&self) -> usize {
        self.shared.fields_len as usize + self.own.fields_len as usize
    }

    /// Length of the own labels' encoded fields together.
    pub fn own_fields_len(&self) -> usize {
        self.own.fields_len as usize
    }

    /// The series' own labels (`__name__`, a bucket's `le`), sorted by name.
    pub fn own_labels(&self) -> impl Iterator<Item = &EncodedLabel> + '_ {
        self.own.labels.iter().flatten().map(|l| &**l)
    }

    /// The series' own labels with their indexes among its sorted labels.
    pub fn own_places(&self) -> impl Iterator<Item = (usize, &EncodedLabel)> + '_ {
        self.own
            .labels
            .iter()
            .zip(self.shared.own_at)
            .filter_map(|(label, at)| Some((usize::from(at), &**label.as_ref()?)))
    }

    /// What the series' label names and shared labels are: series with the same layout have
    /// the same labels but for their own labels' values (see [`LabelLayout`]).
    pub fn layout(&self) -> LabelLayout {
        LabelLayout {
            set: Arc::as_ptr(&self.shared) as usize,
            own_names: self.own.names,
        }
    }

    /// The value of label `name`, if present (the own labels are looked at first: `__name__`
    /// and `le` are the ones asked for most).
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = name.as_bytes();
        self.own
            .labels
            .iter()
            .flatten()
            .map(|l| &**l)
            .chain(self.shared.labels.iter().map(|l| &**l))
            .find(|l| l.name_bytes() == name)
            .map(|l| l.value())
    }

    /// The identity of the labels this series shares with the other series of its label set
    /// (all but `__name__`, `le` and, room permitting, `quantile`): two series with the same
    /// identity have the same shared labels while both are alive.
    pub fn shared_labels_id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }
}

/// The identity of a series' shared labels and the names of its own labels. Two live series
/// of one interner with equal layouts have the same label names in the same order and the same
/// shared labels, so an external label goes to the same place in both, and only their own
/// labels' values may differ. `LabelLayout::default()` is no series' layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LabelLayout {
    set: usize,
    own_names: u8,
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

/// The identity of an interned label (labels from one interner are equal when they are one).
fn address(label: &Arc<EncodedLabel>) -> usize {
    Arc::as_ptr(label) as usize
}

impl PartialEq for InternedList {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(other.0.iter())
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl Eq for InternedList {}

impl Hash for InternedList {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for label in self.0.iter() {
            state.write_usize(address(label));
        }
    }
}

/// Label sets are compared once their lists are interned: by the list's identity.
impl PartialEq for LabelSet {
    fn eq(&self, other: &Self) -> bool {
        self.own_at == other.own_at && Arc::ptr_eq(&self.labels, &other.labels)
    }
}

impl Eq for LabelSet {}

impl Hash for LabelSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.own_at.hash(state);
        state.write_usize(Arc::as_ptr(&self.labels).cast::<u8>() as usize);
    }
}

impl PartialEq for OwnLabels {
    fn eq(&self, other: &Self) -> bool {
        self.labels
            .iter()
            .zip(&other.labels)
            .all(|(a, b)| a.as_ref().map(address) == b.as_ref().map(address))
    }
}

impl Eq for OwnLabels {}

impl Hash for OwnLabels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for label in &self.labels {
            state.write_usize(label.as_ref().map_or(0, address));
        }
    }
}

/// Series are compared by the identities of their interned parts.
impl PartialEq for EncodedSeries {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared) && Arc::ptr_eq(&self.own, &other.own)
    }
}

impl Eq for EncodedSeries {}

impl Hash for EncodedSeries {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_usize(Arc::as_ptr(&self.shared) as usize);
        state.write_usize(Arc::as_ptr(&self.own) as usize);
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
            a.labels().map(|l| l.field().len()).sum::<usize>()
        );
        assert_eq!(std::mem::size_of::<EncodedSeries>(), 16);
        let expected = proto::Label {
            name: "job".into(),
            value: "j".into(),
        };
        let mut field = Vec::new();
        encode_key(1, WireType::LengthDelimited, &mut field);
        encode_varint(expected.encoded_len() as u64, &mut field);
        expected.encode(&mut field).unwrap();
        assert_eq!(a.labels().nth(1).unwrap().field(), field.as_slice());
        drop((a, b));
        interner.prune();
        assert_eq!(interner.len(), 2, "the labels of c stay");
    }

    #[test]
    fn a_family_shares_its_label_set_and_keeps_name_and_bucket_own() {
        let mut interner = LabelInterner::default();
        let mut bucket = |le| {
            interner.series([
                ("Zone", "z"),
                ("__name__", "h_bucket"),
                ("app", "a"),
                ("le", le),
                ("pod", "p"),
            ])
        };
        let (a, b) = (bucket("1"), bucket("+Inf"));
        assert!(Arc::ptr_eq(&a.shared, &b.shared));
        assert_ne!(a, b);
        let names: Vec<&str> = b.labels().map(|l| l.name()).collect();
        assert_eq!(names, ["Zone", "__name__", "app", "le", "pod"]);
        assert_eq!(b.get("le"), Some("+Inf"));
        let mut out = Vec::new();
        b.labels_into(&mut out);
        assert_eq!(out[3].value(), "+Inf");
        let sum = interner.series([
            ("Zone", "z"),
            ("__name__", "h_sum"),
            ("app", "a"),
            ("pod", "p"),
        ]);
        assert!(
            !Arc::ptr_eq(&a.shared, &sum.shared),
            "its own labels sit elsewhere"
        );
        assert!(
            Arc::ptr_eq(&a.shared.labels, &sum.shared.labels),
            "one list of the labels they have in common"
        );
        let other_pod = interner.series([
            ("Zone", "z"),
            ("__name__", "h_sum"),
            ("app", "a"),
            ("pod", "q"),
        ]);
        assert!(
            Arc::ptr_eq(&sum.own, &other_pod.own),
            "a family's own labels are shared across label sets"
        );
        assert_ne!(sum, other_pod);
        let names: Vec<&str> = sum.labels().map(|l| l.name()).collect();
        assert_eq!(names, ["Zone", "__name__", "app", "pod"]);
        drop((a, b, other_pod));
        interner.prune();
        assert_eq!(interner.sets.len(), 1, "the buckets' set is forgotten");
        assert_eq!(interner.lists.len(), 1, "the list stays with the sum's set");
        assert_eq!(
            interner.owns.len(),
            1,
            "the buckets' own labels are forgotten"
        );
        assert_eq!(
            interner.len(),
            4,
            "the buckets' name and le and pod=q are forgotten"
        );
    }

    /// The encoder's layout of a series' labels is [`EncodedSeries::labels`], wherever the own
    /// labels sit (first, last, apart, next to each other, none).
    #[test]
    fn labels_into_lays_out_the_sorted_labels() {
        let mut interner = LabelInterner::default();
        let shapes: [&[(&str, &str)]; 5] = [
            &[("__name__", "m"), ("a", "1"), ("le", "5"), ("z", "2")],
            &[("A", "1"), ("__name__", "m"), ("le", "5")],
            &[("__name__", "m"), ("le", "+Inf")],
            &[
                ("A", "1"),
                ("__name__", "m"),
                ("b", "2"),
                ("quantile", "0.5"),
            ],
            &[("a", "1"), ("b", "2")],
        ];
        for shape in shapes {
            let series = interner.series(shape.iter().copied());
            let mut out = vec![series.labels().next().unwrap()];
            series.labels_into(&mut out);
            let laid: Vec<(&str, &str)> = out.iter().map(|l| (l.name(), l.value())).collect();
            assert_eq!(laid, shape);
        }
    }
}

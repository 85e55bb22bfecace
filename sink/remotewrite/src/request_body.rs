//! Where the request encoder's bytes go: a plain buffer (the uncompressed request), or a
//! [`SnappyBody`] in which a label written earlier in the same body becomes a copy of its last
//! occurrence.
//!
//! A label is known by a key: the address of an interned [`crate::encoded_series::EncodedLabel`]
//! (alive, so unique, for as long as the samples being encoded hold it) or the index of an
//! external label. [`RepeatIndex`] remembers the keys of the previous record by their index in
//! it (consecutive series mostly differ in a label or two, and this needs no hashing), and
//! where other keys were last written in a small direct-mapped table: a key that lost its place
//! there to another just goes out as a literal, which costs bytes, never correctness. It also keeps the last bytes of a few short pieces (a
//! record's header, its timestamp), which are compared, so that a record like the one before
//! it becomes long copies across its fields. Owns that bookkeeping; it must not lay out
//! messages.
//!
//! Most scraped records have the labels of an earlier one but for their own labels (a
//! histogram's buckets one after another): for those the body notes where the earlier record's
//! labels went as a few stretches around its own labels (its [`LabelLayout`]), and writes the
//! record as copies of those stretches, without visiting its labels one by one.

use crate::encoded_series::{EncodedLabel, LabelLayout, OWN};
use crate::snappy_body::SnappyBody;

/// Where a request's bytes are written.
pub trait RequestBody {
    /// Appends bytes the body may compress on its own (reported series).
    fn raw(&mut self) -> &mut Vec<u8>;
    /// Done with a run of [`Self::raw`] bytes.
    fn raw_written(&mut self) {}
    /// Appends bytes that are not worth searching.
    fn literal(&mut self) -> &mut Vec<u8>;
    /// Appends a short piece that often equals the last one written under the same `kind`
    /// (below [`PIECE_KINDS`]).
    fn piece(&mut self, kind: usize, piece: &Piece);
    /// A record's labels begin: [`Self::labels`] and [`Self::label`] calls in label order
    /// follow, then [`Self::end_labels`].
    fn begin_labels(&mut self) {}
    /// Appends interned labels' encoded fields.
    fn labels(&mut self, labels: &[&EncodedLabel]);
    /// Appends a label that is not interned; `key` is a small number that stands for the same
    /// bytes within one body.
    fn label(&mut self, key: usize, field: &[u8]);
    /// The record's labels are written.
    fn end_labels(&mut self) {}
    /// Notes that the labels just written (from [`Self::begin_labels`] to
    /// [`Self::end_labels`]) were those of a series of `layout`, its own labels at indexes
    /// `own` among them.
    fn note_layout(&mut self, _layout: LabelLayout, _own: &[usize]) {}
    /// If the body noted a record of `layout`, the length of that record's labels other than
    /// its own: then [`Self::repeat_labels`] writes the labels of a record of that layout.
    fn repeats_layout(&self, _layout: LabelLayout) -> Option<usize> {
        None
    }
    /// Writes the labels of a record of the layout [`Self::repeats_layout`] accepted last, whose
    /// own labels are `own` (in label order).
    fn repeat_labels<'l>(&mut self, _own: impl Iterator<Item = &'l EncodedLabel>) {
        panic!("repeat_labels without a layout this body repeats");
    }
}

impl RequestBody for Vec<u8> {
    fn raw(&mut self) -> &mut Vec<u8> {
        self
    }

    fn literal(&mut self) -> &mut Vec<u8> {
        self
    }

    fn piece(&mut self, _kind: usize, piece: &Piece) {
        self.extend_from_slice(piece.bytes());
    }

    fn labels(&mut self, labels: &[&EncodedLabel]) {
        for label in labels {
            self.extend_from_slice(label.field());
        }
    }

    fn label(&mut self, _key: usize, field: &[u8]) {
        self.extend_from_slice(field);
    }
}

/// The key of an interned label: its address.
fn label_key(label: &EncodedLabel) -> usize {
    label as *const EncodedLabel as usize
}

/// Kinds of pieces [`RequestBody::piece`] tells apart.
pub const PIECE_KINDS: usize = 4;
/// Longest piece: a key and a 10-byte varint fit.
const PIECE_MAX: usize = 16;

/// A short piece of a record, on the stack, zero-padded (so that two pieces compare whole).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Piece {
    bytes: [u8; PIECE_MAX],
    len: usize,
}

impl Piece {
    /// The bytes `write` puts into an empty piece.
    pub fn of(write: impl FnOnce(&mut &mut [u8])) -> Piece {
        let mut bytes = [0; PIECE_MAX];
        let mut free = &mut bytes[..];
        write(&mut free);
        let len = PIECE_MAX - free.len();
        Piece { bytes, len }
    }

    /// `bytes` (at most 16) as a piece.
    pub fn from_slice(bytes: &[u8]) -> Piece {
        let mut piece = Piece {
            len: bytes.len(),
            ..Piece::default()
        };
        piece.bytes[..bytes.len()].copy_from_slice(bytes);
        piece
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Sets of [`RepeatIndex`]'s table: a power of two; with two ways each, far more slots than
/// the distinct labels a batch of one target's series usually holds (a 64 KiB table).
const SETS: usize = 2048;

/// The last piece of one kind and where it was written.
#[derive(Clone, Copy, Default)]
struct LastPiece {
    position: usize,
    piece: Piece,
}

/// Where a record of one [`LabelLayout`] put its labels: its own labels and the stretches of
/// other labels around them (any record of the layout: they are the same bytes).
#[derive(Clone, Copy, Default)]
struct NotedLayout {
    layout: LabelLayout,
    own_len: usize,
    /// (key, start, length) of each own label.
    own: [(usize, usize, usize); OWN],
    /// (start, length) of the labels before the first own label, between two, after the last.
    stretches: [(usize, usize); OWN + 1],
}

/// Last uncompressed position of recently written labels, by key, the previous record's
/// labels, the last piece of each kind, and the last noted layout.
pub struct RepeatIndex {
    /// Two (key, position) ways per set.
    sets: Box<[[(usize, usize); 2]]>,
    pieces: [LastPiece; PIECE_KINDS],
    /// The label keys of the record being written, up to `next`, then those of the previous
    /// record (overwritten in place: a record mostly repeats the one before it).
    keys: Vec<usize>,
    /// Where each of those labels starts, and where the last one ends (one more entry).
    starts: Vec<usize>,
    /// Labels the previous record had.
    previous_len: usize,
    /// Index of the record's next label.
    next: usize,
    /// Where the next label goes.
    position: usize,
    /// A copy of consecutive bytes being extended label by label: (from, len).
    run: Option<(usize, usize)>,
    noted: NotedLayout,
}

impl Default for RepeatIndex {
    fn default() -> Self {
        RepeatIndex {
            sets: vec![[(0, 0); 2]; SETS].into_boxed_slice(),
            pieces: [LastPiece::default(); PIECE_KINDS],
            keys: Vec::new(),
            starts: Vec::new(),
            previous_len: 0,
            next: 0,
            position: 0,
            run: None,
            noted: NotedLayout::default(),
        }
    }
}

impl RepeatIndex {
    /// Forgets every position (a new body begins). Key 0 is never used.
    pub fn clear(&mut self) {
        self.sets.fill([(0, 0); 2]);
        self.pieces = [LastPiece::default(); PIECE_KINDS];
        self.keys.clear();
        self.starts.clear();
        self.previous_len = 0;
        self.next = 0;
        self.run = None;
        self.noted = NotedLayout::default();
    }

    /// The previous record's label `i` (key, start, length), if it had that many.
    fn previous(&self, i: usize) -> Option<(usize, usize, usize)> {
        (i < self.previous_len).then(|| {
            let start = self.starts[i];
            (self.keys[i], start, self.starts[i + 1] - start)
        })
    }

    /// Notes that the record's next label is `key`, starting at [`Self::position`] (the
    /// previous record's entry at that index has been read by then).
    fn record_next(&mut self, key: usize) {
        let i = self.next;
        if i < self.keys.len() {
            self.keys[i] = key;
            self.starts[i] = self.position;
        } else {
            self.keys.push(key);
            self.starts.truncate(i);
            self.starts.push(self.position);
        }
        self.next = i + 1;
    }

    fn set(key: usize) -> usize {
        // Fibonacci hashing: the top bits of the product spread aligned addresses well.
        ((key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SETS.trailing_zeros())) as usize
    }

    /// Where `key` was last written, if known, and notes that it is now written at `position`
    /// (in place of the set's least recently written key when it was not there).
    fn replace(&mut self, key: usize, position: usize) -> Option<usize> {
        let set = &mut self.sets[Self::set(key)];
        let way = if set[0].0 == key {
            0
        } else if set[1].0 == key || set[1].1 < set[0].1 {
            1
        } else {
            0
        };
        let last = (set[way].0 == key).then_some(set[way].1);
        set[way] = (key, position);
        last
    }
}

/// A compressed request body being written.
pub struct CompressedBody<'a> {
    pub snappy: &'a mut SnappyBody,
    pub index: &'a mut RepeatIndex,
}

impl CompressedBody<'_> {
    /// Writes the pending run of copied labels.
    fn flush_run(&mut self) {
        if let Some((from, len)) = self.index.run.take() {
            self.snappy.copy(from, len);
        }
    }

    /// Appends the label `key`: a copy of the same label in the previous record when it sits at
    /// the same index there (the usual case, found without hashing or reading the label), else
    /// a copy of its last occurrence, else its bytes (`field`) as a literal.
    fn label_by_key<'f>(&mut self, key: usize, field: impl FnOnce() -> &'f [u8]) {
        debug_assert_ne!(key, 0, "key 0 marks an empty slot");
        let index = &mut *self.index;
        let at = index.position;
        let (from, len) = match index.previous(index.next) {
            Some((previous, from, len)) if previous == key => (from, len),
            _ => {
                let field = field();
                match index.replace(key, at) {
                    Some(from) => (from, field.len()),
                    None => {
                        index.record_next(key);
                        index.position += field.len();
                        self.flush_run();
                        self.snappy.literal().extend_from_slice(field);
                        return;
                    }
                }
            }
        };
        index.record_next(key);
        index.position += len;
        self.extend_run(from, len);
    }

    /// Adds a copy of `len` bytes from `from` to the pending run, or starts a new run.
    fn extend_run(&mut self, from: usize, len: usize) {
        match &mut self.index.run {
            Some((run_from, run_len)) if *run_from + *run_len == from => *run_len += len,
            _ => {
                self.flush_run();
                self.index.run = Some((from, len));
            }
        }
    }

    /// Takes the longest stretch at the front of `labels` that the previous record holds at
    /// the same indexes, as one copy, without touching the labels; returns how many it took.
    fn same_as_previous(&mut self, labels: &[&EncodedLabel]) -> usize {
        let RepeatIndex {
            keys,
            starts,
            previous_len,
            next,
            position,
            ..
        } = &mut *self.index;
        let i = *next;
        let previous = keys.get(i..*previous_len).unwrap_or(&[]);
        let n = labels
            .iter()
            .zip(previous)
            .take_while(|(label, key)| label_key(label) == **key)
            .count();
        if n == 0 {
            return 0;
        }
        let from = starts[i];
        let len = starts[i + n] - from;
        // The keys stay; the starts move to where the stretch is written now.
        let shift = *position - from;
        for start in &mut starts[i..i + n] {
            *start += shift;
        }
        *next = i + n;
        *position += len;
        self.extend_run(from, len);
        n
    }
}

impl RequestBody for CompressedBody<'_> {
    fn raw(&mut self) -> &mut Vec<u8> {
        self.snappy.raw()
    }

    fn raw_written(&mut self) {
        self.snappy.compress_full_blocks();
    }

    fn literal(&mut self) -> &mut Vec<u8> {
        self.snappy.literal()
    }

    fn piece(&mut self, kind: usize, piece: &Piece) {
        let position = self.snappy.position();
        let last = &mut self.index.pieces[kind];
        let from = last.position;
        let repeated = last.piece == *piece && piece.len > 0;
        *last = LastPiece {
            position,
            piece: *piece,
        };
        if repeated {
            self.snappy.copy(from, piece.len);
        } else {
            self.snappy.literal().extend_from_slice(piece.bytes());
        }
    }

    fn begin_labels(&mut self) {
        let index = &mut *self.index;
        index.previous_len = index.next;
        index.next = 0;
        index.position = self.snappy.position();
    }

    fn labels(&mut self, labels: &[&EncodedLabel]) {
        let mut rest = labels;
        while !rest.is_empty() {
            rest = &rest[self.same_as_previous(rest)..];
            if let Some((label, tail)) = rest.split_first() {
                self.label_by_key(label_key(label), || label.field());
                rest = tail;
            }
        }
    }

    fn label(&mut self, key: usize, field: &[u8]) {
        self.label_by_key(key, || field);
    }

    fn end_labels(&mut self) {
        self.flush_run();
        let index = &mut *self.index;
        let n = index.next;
        index.keys.truncate(n);
        index.starts.truncate(n);
        index.starts.push(index.position);
        debug_assert_eq!(index.position, self.snappy.position());
    }

    fn note_layout(&mut self, layout: LabelLayout, own: &[usize]) {
        let RepeatIndex {
            keys,
            starts,
            noted,
            ..
        } = &mut *self.index;
        let mut stretch_start = starts[0];
        for (k, &i) in own.iter().enumerate() {
            let (start, end) = (starts[i], starts[i + 1]);
            noted.stretches[k] = (stretch_start, start - stretch_start);
            noted.own[k] = (keys[i], start, end - start);
            stretch_start = end;
        }
        let end = starts[keys.len()];
        noted.stretches[own.len()] = (stretch_start, end - stretch_start);
        noted.own_len = own.len();
        noted.layout = layout;
    }

    fn repeats_layout(&self, layout: LabelLayout) -> Option<usize> {
        let noted = &self.index.noted;
        (layout != LabelLayout::default() && noted.layout == layout).then(|| {
            noted.stretches[..=noted.own_len]
                .iter()
                .map(|(_, len)| len)
                .sum()
        })
    }

    fn repeat_labels<'l>(&mut self, mut own: impl Iterator<Item = &'l EncodedLabel>) {
        // The note is updated in place to where this record's labels go (the same bytes,
        // nearer), each entry read before it is overwritten.
        let own_len = self.index.noted.own_len;
        let mut position = self.snappy.position();
        for k in 0..=own_len {
            let (from, len) = self.index.noted.stretches[k];
            self.index.noted.stretches[k].0 = position;
            if len > 0 {
                self.extend_run(from, len);
                position += len;
            }
            if k == own_len {
                break;
            }
            let label = own.next().expect("as many own labels as the layout has");
            let (key, len) = (label_key(label), label.field().len());
            let (previous, from, _) = self.index.noted.own[k];
            self.index.noted.own[k] = (key, position, len);
            match (previous == key).then_some(from) {
                Some(from) => self.extend_run(from, len),
                None => match self.index.replace(key, position) {
                    Some(from) => self.extend_run(from, len),
                    None => {
                        self.flush_run();
                        self.snappy.literal().extend_from_slice(label.field());
                    }
                },
            }
            position += len;
        }
        self.flush_run();
        debug_assert_eq!(position, self.snappy.position());
    }
}

#[cfg(test)]
mod tests;

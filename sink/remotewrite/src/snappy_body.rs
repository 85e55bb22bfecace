//! A snappy block-format body written in pieces, from two kinds of input.
//!
//! Snappy's block format is one varint of the total length, then elements: literals, and
//! copies of bytes already produced (any distance back, not only within a block). Bytes given
//! through [`SnappyBody::raw`] are compressed by `snap`, one 64 KiB block as soon as the buffer
//! holds a full one, so a large body is never held uncompressed; a body made only of raw bytes
//! is byte-identical to compressing it whole with `snap::raw::Encoder` (tested). A caller that
//! already knows where its bytes repeat (the remote-write encoder: a label it wrote earlier in
//! the body) writes them as [`SnappyBody::copy`] elements instead, without copying or
//! searching them, and the rest as [`SnappyBody::literal`] bytes. For the spool, a writer also
//! writes the same body in the long-copy form ([`crate::long_copies`]) as it goes.
//!
//! Owns the body's elements and length (the bytes of one element are
//! [`crate::snappy_elements`]); it must not know what the bytes mean.

use bytes::Bytes;
use prost::encoding::{encode_varint, encoded_len_varint};

use crate::snappy_elements::{put_copies, put_literal_header, put_long_copy, MAX_COPY_LEN};

/// Snappy's block size: `snap` compresses blocks independently of each other.
const BLOCK_SIZE: usize = 1 << 16;

/// Room kept before the elements for the varint of the total length (the format limits a body
/// to `u32::MAX` bytes, so at most 5 bytes).
const HEADER_ROOM: usize = 5;

/// A copy element being extended: `len` bytes from `distance` bytes back.
#[derive(Clone, Copy, Debug)]
struct PendingCopy {
    distance: usize,
    len: usize,
}

/// A finished body moved out of its writer ([`SnappyBody::finish_owned`]).
pub struct OwnedBody {
    /// The body in snappy's block format.
    pub snappy: Bytes,
    /// The same body in the long-copy form, when the writer writes it.
    pub long_form: Option<Bytes>,
}

/// Reusable compressor state and output buffer.
pub struct SnappyBody {
    encoder: snap::raw::Encoder,
    /// One compressed block, with the length varint `snap` puts in front of it.
    scratch: Vec<u8>,
    /// `HEADER_ROOM` bytes, then the elements so far.
    out: Vec<u8>,
    /// Raw bytes not compressed yet (less than a block after [`Self::compress_full_blocks`]).
    raw: Vec<u8>,
    /// Bytes of the literal element being gathered.
    literal: Vec<u8>,
    copy: Option<PendingCopy>,
    /// Uncompressed bytes the elements in `out` stand for.
    written: usize,
    /// The same body in the long-copy form, when asked for ([`SnappyBody::set_long_form`]):
    /// `HEADER_ROOM` bytes, then its elements.
    long: Option<Vec<u8>>,
}

impl Default for SnappyBody {
    fn default() -> Self {
        SnappyBody {
            encoder: snap::raw::Encoder::new(),
            scratch: vec![0; snap::raw::max_compress_len(BLOCK_SIZE)],
            out: Vec::new(),
            raw: Vec::new(),
            literal: Vec::new(),
            copy: None,
            written: 0,
            long: None,
        }
    }
}

impl SnappyBody {
    /// Whether the bodies started from now on are also written in the long-copy form
    /// ([`crate::long_copies`]), for the spool's records that will wait on disk:
    /// [`Self::finish_owned`]. Called between
    /// bodies, not within one.
    pub fn set_long_form(&mut self, on: bool) {
        if on != self.long.is_some() {
            self.long = on.then(Vec::new);
        }
    }

    /// Starts a new body.
    pub fn start(&mut self) {
        self.out.clear();
        self.out.resize(HEADER_ROOM, 0);
        if let Some(long) = &mut self.long {
            long.clear();
            long.resize(HEADER_ROOM, 0);
        }
        self.raw.clear();
        self.literal.clear();
        self.copy = None;
        self.written = 0;
    }

    /// Uncompressed length of the body so far: where the next byte goes.
    pub fn position(&self) -> usize {
        self.written + self.raw.len() + self.literal.len() + self.copy.map_or(0, |c| c.len)
    }

    /// The buffer of bytes to compress; call [`Self::compress_full_blocks`] after writing.
    pub fn raw(&mut self) -> &mut Vec<u8> {
        self.flush_literal();
        self.flush_copy();
        &mut self.raw
    }

    /// Compresses every full block of raw bytes.
    pub fn compress_full_blocks(&mut self) {
        if self.raw.len() < BLOCK_SIZE {
            return;
        }
        let full = self.raw.len() - self.raw.len() % BLOCK_SIZE;
        let raw = std::mem::take(&mut self.raw);
        for block in raw[..full].chunks_exact(BLOCK_SIZE) {
            self.compress_block(block);
        }
        self.raw = raw;
        self.raw.drain(..full);
    }

    /// The buffer of bytes to write as they are (one literal element).
    pub fn literal(&mut self) -> &mut Vec<u8> {
        self.flush_raw();
        self.flush_copy();
        &mut self.literal
    }

    /// Repeats the `len` bytes that start at uncompressed position `from`, which must be before
    /// [`Self::position`]. As in snappy's format, the bytes may reach into the copy itself
    /// (each byte repeats the one `distance` back, already written by then). Copies that
    /// continue each other become one run.
    pub fn copy(&mut self, from: usize, len: usize) {
        if len == 0 {
            return;
        }
        self.flush_raw();
        self.flush_literal();
        assert!(
            from < self.position(),
            "a copy must start in bytes already written"
        );
        let distance = self.position() - from;
        match &mut self.copy {
            Some(copy) if copy.distance == distance => copy.len += len,
            _ => {
                self.flush_copy();
                self.copy = Some(PendingCopy { distance, len });
            }
        }
    }

    /// Ends the body and returns it.
    ///
    /// Panics if the body is longer than snappy's limit of `u32::MAX` bytes.
    pub fn finish(&mut self) -> &[u8] {
        self.flush_raw();
        self.flush_literal();
        self.flush_copy();
        assert!(
            u32::try_from(self.written).is_ok(),
            "snappy body of {} bytes is over the format's 4 GiB limit",
            self.written
        );
        let mut header = [0u8; HEADER_ROOM];
        let mut free = &mut header[..];
        encode_varint(self.written as u64, &mut free);
        let header_len = HEADER_ROOM - free.len();
        let start = self.body_start();
        self.out[start..HEADER_ROOM].copy_from_slice(&header[..header_len]);
        if let Some(long) = &mut self.long {
            long[start..HEADER_ROOM].copy_from_slice(&header[..header_len]);
        }
        &self.out[start..]
    }

    /// Ends the body and moves it (and its long form) out instead of lending it: a body that
    /// is queued or written goes without a copy. The writer starts its next body in buffers
    /// of the same capacity, so a steady stream of bodies never regrows them.
    pub fn finish_owned(&mut self) -> OwnedBody {
        self.finish();
        let start = self.body_start();
        let take = |buf: &mut Vec<u8>| {
            let body = std::mem::replace(buf, Vec::with_capacity(buf.capacity()));
            Bytes::from(body).slice(start..)
        };
        OwnedBody {
            snappy: take(&mut self.out),
            long_form: self.long.as_mut().map(take),
        }
    }

    /// Where a finished body starts in the buffers: after the room its length varint left.
    fn body_start(&self) -> usize {
        HEADER_ROOM - encoded_len_varint(self.written as u64)
    }

    // The flushes are called around every element and mostly find nothing to write: the
    // check is inlined, the writing is not.
    #[inline]
    fn flush_raw(&mut self) {
        if !self.raw.is_empty() {
            self.compress_raw();
        }
    }

    fn compress_raw(&mut self) {
        let raw = std::mem::take(&mut self.raw);
        for block in raw.chunks(BLOCK_SIZE) {
            self.compress_block(block);
        }
        self.raw = raw;
        self.raw.clear();
    }

    fn compress_block(&mut self, block: &[u8]) {
        let n = self
            .encoder
            .compress(block, &mut self.scratch)
            .expect("scratch sized by max_compress_len of a block");
        let header_len = encoded_len_varint(block.len() as u64);
        self.out.extend_from_slice(&self.scratch[header_len..n]);
        if let Some(long) = &mut self.long {
            long.extend_from_slice(&self.scratch[header_len..n]);
        }
        self.written += block.len();
    }

    #[inline]
    fn flush_literal(&mut self) {
        if !self.literal.is_empty() {
            self.write_literal();
        }
    }

    fn write_literal(&mut self) {
        put_literal_header(&mut self.out, self.literal.len());
        self.out.extend_from_slice(&self.literal);
        if let Some(long) = &mut self.long {
            put_literal_header(long, self.literal.len());
            long.extend_from_slice(&self.literal);
        }
        self.written += self.literal.len();
        self.literal.clear();
    }

    #[inline]
    fn flush_copy(&mut self) {
        if let Some(copy) = self.copy.take() {
            self.write_copy(copy);
        }
    }

    fn write_copy(&mut self, PendingCopy { distance, len }: PendingCopy) {
        self.written += len;
        put_copies(&mut self.out, distance, len);
        match &mut self.long {
            Some(long) if len > MAX_COPY_LEN => put_long_copy(long, distance, len),
            Some(long) => put_copies(long, distance, len),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::encoder::compress_into;

    /// Repetitive text with some variation, like label blocks, of `len` bytes.
    fn body(len: usize) -> Vec<u8> {
        let mut text = Vec::with_capacity(len);
        let mut i = 0u64;
        while text.len() < len {
            text.extend_from_slice(
                format!("pod=reviews-{} le={} ", i % 37, i * 7919 % 101).as_bytes(),
            );
            i += 1;
        }
        text.truncate(len);
        text
    }

    #[test]
    fn raw_pieces_compress_to_the_bytes_of_one_whole_compression() {
        let mut snappy = SnappyBody::default();
        let mut whole = Vec::new();
        for len in [
            0,
            1,
            16,
            17,
            1000,
            BLOCK_SIZE - 1,
            BLOCK_SIZE,
            BLOCK_SIZE + 1,
            5 * BLOCK_SIZE + 4321,
        ] {
            let input = body(len);
            snappy.start();
            // Uneven pieces, taking full blocks after each, as the encoder does.
            for piece in input.chunks(997) {
                snappy.raw().extend_from_slice(piece);
                snappy.compress_full_blocks();
                assert!(snappy.raw.len() < BLOCK_SIZE);
            }
            let ours = snappy.finish().to_vec();
            assert_eq!(
                ours,
                compress_into(&mut snap::raw::Encoder::new(), &input, &mut whole),
                "length {len}"
            );
            let decoded = snap::raw::Decoder::new().decompress_vec(&ours).unwrap();
            assert_eq!(decoded, input, "length {len}");
        }
    }

    #[test]
    fn a_raw_body_given_at_once_is_split_into_blocks_too() {
        let input = body(3 * BLOCK_SIZE + 5);
        let mut snappy = SnappyBody::default();
        snappy.start();
        snappy.raw().extend_from_slice(&input);
        let ours = snappy.finish().to_vec();
        let mut whole = Vec::new();
        assert_eq!(
            ours,
            compress_into(&mut snap::raw::Encoder::new(), &input, &mut whole)
        );
    }

    /// Random raw, literal and copy pieces (copies of every length and distance class, runs
    /// that continue each other, literals past the one-byte length forms) decode to exactly
    /// the bytes they stand for.
    #[test]
    fn mixed_elements_decode_to_what_they_stand_for() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut snappy = SnappyBody::default();
        for round in 0..40 {
            snappy.start();
            let mut expected: Vec<u8> = Vec::new();
            let mut copies = 0;
            for _ in 0..rng.random_range(1..400) {
                match rng.random_range(0..4) {
                    0 => {
                        let piece = body(rng.random_range(0..3000));
                        snappy.raw().extend_from_slice(&piece);
                        snappy.compress_full_blocks();
                        expected.extend_from_slice(&piece);
                    }
                    1 => {
                        let len = [0, 1, 59, 60, 61, 255, 256, 257, 70_000][rng.random_range(0..9)];
                        let piece: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                        snappy.literal().extend_from_slice(&piece);
                        expected.extend_from_slice(&piece);
                    }
                    _ if !expected.is_empty() => {
                        let end = rng.random_range(1..=expected.len());
                        let from = end - rng.random_range(1..=end.min(200));
                        // Sometimes the run that continues the previous copy.
                        let (from, len) = match snappy.copy {
                            Some(c) if rng.random_bool(0.3) && c.distance >= 8 => {
                                (expected.len() - c.distance, rng.random_range(1..8))
                            }
                            _ => (from, end - from),
                        };
                        assert_eq!(snappy.position(), expected.len());
                        snappy.copy(from, len);
                        expected.extend_from_within(from..from + len);
                        copies += 1;
                    }
                    _ => {}
                }
            }
            assert_eq!(snappy.position(), expected.len());
            let ours = snappy.finish().to_vec();
            let decoded = snap::raw::Decoder::new()
                .decompress_vec(&ours)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(decoded, expected, "round {round} ({copies} copies)");
        }
    }

    #[test]
    fn long_runs_of_repeats_cost_a_few_bytes_per_64() {
        let label = body(900);
        let mut snappy = SnappyBody::default();
        snappy.start();
        snappy.literal().extend_from_slice(&label);
        for i in 1..100 {
            snappy.copy((i - 1) * label.len(), label.len());
        }
        let ours = snappy.finish().to_vec();
        let decoded = snap::raw::Decoder::new().decompress_vec(&ours).unwrap();
        assert_eq!(decoded, label.repeat(100));
        // One run of 99 × 900 bytes at one distance: 1 393 elements of 3 bytes (64 bytes each
        // with the last pieces of 60 and 4 bytes), after the literal.
        assert!(
            ours.len() < 900 + 5 + 3 + 99 * 900 / 64 * 3 + 10,
            "{}",
            ours.len()
        );
    }

    #[test]
    fn a_copy_may_reach_into_itself() {
        let mut snappy = SnappyBody::default();
        snappy.start();
        snappy.literal().extend_from_slice(b"ab");
        snappy.copy(0, 7);
        snappy.literal().push(b'!');
        let ours = snappy.finish().to_vec();
        let decoded = snap::raw::Decoder::new().decompress_vec(&ours).unwrap();
        assert_eq!(decoded, b"ababababa!");
    }
}

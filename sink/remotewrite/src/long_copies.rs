//! The spool's form of a request body, and its expansion into snappy's own.
//!
//! A scraped record repeats most of the record before it, and the encoder writes that as one
//! copy of several hundred bytes; snappy can only say it 64 bytes at a time, three bytes per
//! element, so a remote-write body costs ~75 bytes per sample however repetitive it is. A
//! spooled body that will wait on disk (its sender is behind) takes the long-copy form there:
//! snappy's elements, plus a long copy written once ([`crate::snappy_elements::put_long_copy`]:
//! a copy of distance 0, which snappy forbids, then the distance and the length). The encoder
//! then writes both forms side by side ([`crate::snappy_body::SnappyBody::set_long_form`]):
//! the long one goes to disk, the other stays in memory for the sender. [`expand`] rewrites a
//! body read back from disk into snappy's own, byte for byte the body the encoder wrote beside
//! it. A body of snappy's own is a body of this form without long copies: it expands to
//! itself.
//!
//! Owns reading the form; it must not know what the bytes mean.

use prost::encoding::{decode_varint, encode_varint};

use crate::snappy_elements::{put_copies, LONG_COPY_TAG};

/// Why a body could not be expanded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LongCopiesError {
    #[error("the body ends inside an element at byte {0}")]
    Truncated(usize),
    #[error("a copy at byte {0} reaches before the body's start")]
    BadDistance(usize),
    #[error("the body stands for {found} bytes where its header says {expected}")]
    WrongLength { expected: u64, found: u64 },
}

/// Appends to `out` the snappy body that `body` (in the long-copy form) stands for.
pub fn expand(body: &[u8], out: &mut Vec<u8>) -> Result<(), LongCopiesError> {
    let mut rest = body;
    let expected = decode_varint(&mut rest).map_err(|_| LongCopiesError::Truncated(0))?;
    out.reserve(body.len() * 4);
    encode_varint(expected, out);
    let mut at = body.len() - rest.len();
    // Elements of snappy's own are copied in runs, from `run_start` up to `at`.
    let mut run_start = at;
    let mut produced = 0u64;
    while at < body.len() {
        let element = Element::read(body, at)?;
        if element.distance > produced {
            return Err(LongCopiesError::BadDistance(at));
        }
        if element.long {
            out.extend_from_slice(&body[run_start..at]);
            put_copies(out, element.distance as usize, element.len as usize);
            run_start = at + element.bytes;
        }
        produced += element.len;
        at += element.bytes;
    }
    out.extend_from_slice(&body[run_start..]);
    if produced != expected {
        return Err(LongCopiesError::WrongLength {
            expected,
            found: produced,
        });
    }
    Ok(())
}

/// One element of a body in the long-copy form.
struct Element {
    /// Its bytes in the body.
    bytes: usize,
    /// The bytes it stands for.
    len: u64,
    /// How far back a copy reaches (0 for a literal).
    distance: u64,
    long: bool,
}

impl Element {
    fn read(body: &[u8], at: usize) -> Result<Element, LongCopiesError> {
        let truncated = LongCopiesError::Truncated(at);
        let tag = body[at];
        let byte = |i: usize| body.get(at + i).copied().ok_or(truncated.clone());
        // The element's bytes were read through `byte`: they are in the body.
        let copy = |bytes: usize, len: u64, distance: u64| {
            if distance == 0 {
                Err(LongCopiesError::BadDistance(at))
            } else {
                Ok(Element {
                    bytes,
                    len,
                    distance,
                    long: false,
                })
            }
        };
        match tag & 0b11 {
            0b00 => {
                let code = usize::from(tag >> 2);
                let (header, len) = if code < 60 {
                    (1, code + 1)
                } else {
                    let width = code - 59;
                    let mut n = 0usize;
                    for i in 0..width {
                        n |= usize::from(byte(1 + i)?) << (8 * i);
                    }
                    (1 + width, n + 1)
                };
                if at + header + len > body.len() {
                    return Err(truncated);
                }
                Ok(Element {
                    bytes: header + len,
                    len: len as u64,
                    distance: 0,
                    long: false,
                })
            }
            0b01 if [tag, byte(1)?] == LONG_COPY_TAG => Self::read_long(body, at),
            0b01 => {
                let distance = (u64::from(tag >> 5) << 8) | u64::from(byte(1)?);
                copy(2, u64::from((tag >> 2) & 0b111) + 4, distance)
            }
            0b10 => {
                let distance = u64::from(u16::from_le_bytes([byte(1)?, byte(2)?]));
                copy(3, u64::from(tag >> 2) + 1, distance)
            }
            _ => {
                let offset = [byte(1)?, byte(2)?, byte(3)?, byte(4)?];
                copy(
                    5,
                    u64::from(tag >> 2) + 1,
                    u64::from(u32::from_le_bytes(offset)),
                )
            }
        }
    }

    fn read_long(body: &[u8], at: usize) -> Result<Element, LongCopiesError> {
        let mut rest = &body[at + LONG_COPY_TAG.len()..];
        let mut varint = || decode_varint(&mut rest).map_err(|_| LongCopiesError::Truncated(at));
        let distance = varint()?;
        let len = varint()?;
        if distance == 0 || len == 0 {
            return Err(LongCopiesError::BadDistance(at));
        }
        Ok(Element {
            bytes: body.len() - at - rest.len(),
            len,
            distance,
            long: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::snappy_body::SnappyBody;

    /// Random literals, raw bytes and copies of every length (runs of one distance over
    /// several pieces among them), written by one writer in both forms: the snappy body, the
    /// long-copy form and the bytes they stand for.
    fn both_forms(seed: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let mut body = SnappyBody::default();
        body.set_long_form(true);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut expected: Vec<u8> = Vec::new();
        body.start();
        for _ in 0..rng.random_range(1..300) {
            let piece: Vec<u8> = (0..rng.random_range(1..100))
                .map(|_| rng.random_range(b'a'..b'e'))
                .collect();
            match rng.random_range(0..4) {
                2.. if !expected.is_empty() => {
                    let from = rng.random_range(0..expected.len());
                    let len = [1, 4, 11, 64, 65, 67, 68, 300, 70_000][rng.random_range(0..9)];
                    body.copy(from, len);
                    for i in 0..len {
                        expected.push(expected[from + i]);
                    }
                }
                0 => {
                    body.literal().extend_from_slice(&piece);
                    expected.extend_from_slice(&piece);
                }
                _ => {
                    body.raw().extend_from_slice(&piece);
                    body.compress_full_blocks();
                    expected.extend_from_slice(&piece);
                }
            }
        }
        let owned = body.finish_owned();
        let long = owned.long_form.unwrap().to_vec();
        (owned.snappy.to_vec(), long, expected)
    }

    #[test]
    fn a_long_form_body_expands_to_the_snappy_body_of_the_same_pieces() {
        let mut shorter = 0;
        for seed in 0..60 {
            let (snappy, long, expected) = both_forms(seed);
            let mut expanded = Vec::new();
            expand(&long, &mut expanded).unwrap();
            assert_eq!(expanded, snappy, "seed {seed}");
            let decoded = snap::raw::Decoder::new().decompress_vec(&expanded).unwrap();
            assert_eq!(decoded, expected, "seed {seed}");
            // Snappy's own form expands to itself.
            let mut same = Vec::new();
            expand(&snappy, &mut same).unwrap();
            assert_eq!(same, snappy, "seed {seed}");
            shorter += usize::from(long.len() < snappy.len());
        }
        assert!(
            shorter > 30,
            "long copies make most bodies shorter: {shorter}"
        );
    }

    #[test]
    fn snappy_refuses_the_long_form_and_expand_refuses_damage() {
        let mut body = SnappyBody::default();
        body.set_long_form(true);
        body.start();
        body.literal().extend_from_slice(b"0123456789");
        body.copy(0, 200);
        let long = body.finish_owned().long_form.unwrap().to_vec();
        assert!(snap::raw::Decoder::new().decompress_vec(&long).is_err());
        let mut out = Vec::new();
        for cut in 1..long.len() {
            out.clear();
            assert!(expand(&long[..cut], &mut out).is_err(), "cut at {cut}");
        }
        // A copy reaching before the start, and a length the elements do not make.
        let mut far = long.clone();
        let distance_at = long.len() - 3;
        far[distance_at] = 11;
        assert_eq!(
            expand(&far, &mut out),
            Err(LongCopiesError::BadDistance(long.len() - 5))
        );
        let mut wrong = long.clone();
        wrong[0] += 1;
        assert!(matches!(
            expand(&wrong, &mut out),
            Err(LongCopiesError::WrongLength { .. })
        ));
    }
}

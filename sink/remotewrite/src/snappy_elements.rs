//! The bytes of single snappy elements, appended to a buffer: literal headers and copies.
//!
//! Snappy's block format limits a copy element to 64 bytes, so a copy of a long stretch (a
//! scraped record repeating the one before it) is a row of elements, three bytes per 64
//! repeated. [`put_copies`] writes such a row; [`put_long_copy`] writes the one-element form
//! that only the spool uses (see [`crate::long_copies`]). Shared by [`crate::snappy_body`],
//! which writes bodies, and [`crate::long_copies`], which rewrites the spool's form into
//! snappy's own. It must not track positions or lengths of a body: callers do.

/// Longest copy one snappy element can express.
pub const MAX_COPY_LEN: usize = 64;

/// The first two bytes of a long copy: a 2-byte copy element of distance 0, which snappy does
/// not allow (a decoder refuses it), so the form cannot be mistaken for snappy's own.
pub const LONG_COPY_TAG: [u8; 2] = [0b01, 0];

/// The header of a literal element of `len` bytes (at least one); the bytes follow it.
pub fn put_literal_header(out: &mut Vec<u8>, len: usize) {
    let n = len - 1;
    if n < 60 {
        out.push((n as u8) << 2);
    } else {
        let bytes = (n as u64).to_le_bytes();
        let width = 8 - (n as u64).leading_zeros() as usize / 8;
        assert!(width <= 4, "a literal over 4 GiB");
        out.push(((59 + width) as u8) << 2);
        out.extend_from_slice(&bytes[..width]);
    }
}

/// The snappy elements of a copy of any length: 64-byte elements while more than 67 bytes are
/// left, then one element, or two when 65 to 67 bytes are left (60 and the rest, so that the
/// last can take the 2-byte form).
pub fn put_copies(out: &mut Vec<u8>, distance: usize, mut len: usize) {
    if len >= MAX_COPY_LEN + 4 {
        let full = (len - 4) / MAX_COPY_LEN;
        put_full_copies(out, distance, full);
        len -= full * MAX_COPY_LEN;
    }
    if len > MAX_COPY_LEN {
        put_copy(out, distance, MAX_COPY_LEN - 4);
        len -= MAX_COPY_LEN - 4;
    }
    put_copy(out, distance, len);
}

/// A copy of `len` bytes from `distance` back as one element: [`LONG_COPY_TAG`], then the
/// distance and the length as varints.
pub fn put_long_copy(out: &mut Vec<u8>, distance: usize, len: usize) {
    // One long copy per repeated stretch of a scraped record: on the spool's hot path.
    // The whole buffer is appended (a copy of constant size, done in place) and the unused
    // tail cut off again: cheaper than a call to copy a slice of varying length.
    let mut element = [0u8; LONG_COPY_MAX];
    element[..2].copy_from_slice(&LONG_COPY_TAG);
    let mut end = put_varint(&mut element, 2, distance as u64);
    end = put_varint(&mut element, end, len as u64);
    let keep = out.len() + end;
    out.extend_from_slice(&element);
    out.truncate(keep);
}

/// The longest long copy: its tag and two varints of at most 10 bytes.
const LONG_COPY_MAX: usize = 2 + 2 * 10;

/// Writes `value` as a varint into `buf` at `at`; returns where it ends.
fn put_varint(buf: &mut [u8], mut at: usize, mut value: u64) -> usize {
    while value >= 0x80 {
        buf[at] = value as u8 | 0x80;
        value >>= 7;
        at += 1;
    }
    buf[at] = value as u8;
    at + 1
}

/// `n` copy elements of 64 bytes each, all from `distance` back. A long run's elements are
/// alike: the element is made once and repeated.
fn put_full_copies(out: &mut Vec<u8>, distance: usize, n: usize) {
    let tag = ((MAX_COPY_LEN - 1) as u8) << 2;
    if let Ok(distance) = u16::try_from(distance) {
        let [a, b] = distance.to_le_bytes();
        put_near_copies(out, [tag | 0b10, a, b], n);
    } else {
        let [a, b, c, d] = far_distance(distance).to_le_bytes();
        let element = [tag | 0b11, a, b, c, d];
        out.reserve(n * element.len());
        for _ in 0..n {
            out.extend_from_slice(&element);
        }
    }
}

/// `n` times the 3-byte `element`, each written as a 4-byte store that the next one
/// overwrites in part (a long copy is mostly these: one store per 64 bytes it stands for).
fn put_near_copies(out: &mut Vec<u8>, element: [u8; 3], n: usize) {
    let [a, b, c] = element;
    let word = u32::from_le_bytes([a, b, c, 0]);
    let len = out.len();
    // One spare byte for the last store's fourth.
    out.reserve(3 * n + 1);
    let start = out.as_mut_ptr().wrapping_add(len);
    for i in 0..n {
        // SAFETY: `reserve` made room for 3 * n + 1 bytes after `len`, and element i's
        // store covers bytes 3i..3i+4 of it, the last ending at 3n+1.
        unsafe { start.add(3 * i).cast::<u32>().write_unaligned(word) };
    }
    // SAFETY: the 3 * n bytes after `len` were written above, within the capacity.
    unsafe { out.set_len(len + 3 * n) };
}

/// One copy element of 1..=64 bytes: two bytes when the length is 4 to 11 and the distance
/// under 2 KiB, three when the distance fits 16 bits, else five.
fn put_copy(out: &mut Vec<u8>, distance: usize, len: usize) {
    debug_assert!((1..=MAX_COPY_LEN).contains(&len));
    if (4..12).contains(&len) && distance < 2048 {
        let tag = (((distance >> 8) as u8) << 5) | (((len - 4) as u8) << 2) | 0b01;
        out.extend_from_slice(&[tag, distance as u8]);
    } else if let Ok(distance) = u16::try_from(distance) {
        let [a, b] = distance.to_le_bytes();
        out.extend_from_slice(&[(((len - 1) as u8) << 2) | 0b10, a, b]);
    } else {
        let [a, b, c, d] = far_distance(distance).to_le_bytes();
        out.extend_from_slice(&[(((len - 1) as u8) << 2) | 0b11, a, b, c, d]);
    }
}

/// A distance of 64 KiB or more, as the 4-byte offset of snappy's longest copy form.
fn far_distance(distance: usize) -> u32 {
    u32::try_from(distance).expect("snappy bodies are under 4 GiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The long copy's varints read back with prost's decoder at every width they can take.
    #[test]
    fn long_copy_varints_read_back() {
        let values = [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            1 << 21,
            u32::MAX as usize,
            usize::MAX,
        ];
        for &distance in &values {
            for &len in &values {
                let mut out = vec![7];
                put_long_copy(&mut out, distance, len);
                assert_eq!(out[..3], [7, LONG_COPY_TAG[0], LONG_COPY_TAG[1]]);
                let mut rest = &out[3..];
                let read = |rest: &mut &[u8]| prost::encoding::decode_varint(rest).unwrap();
                assert_eq!(read(&mut rest), distance as u64);
                assert_eq!(read(&mut rest), len as u64);
                assert!(rest.is_empty(), "{distance} {len}: bytes left over");
            }
        }
    }
}

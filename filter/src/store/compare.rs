//! Exact equality of byte strings, done as wide as the target allows.
//!
//! The per-request path recognises every raw host value (cluster, SAN, the peer's filter-state
//! Struct) by comparing it with the cached one, so this comparison is a large share of the
//! filter's own work. It compares in lanes: 16 bytes per `v128` instruction when the module is
//! built with wasm SIMD (`simd128`, which `.cargo/config.toml` enables for the wasm targets;
//! `filter/README.md` says which runtimes accept it), else 8-byte words (native builds, and a
//! wasm build without SIMD). Whole 128-byte blocks go through one non-inlined function, the last
//! one overlapping the one before when the length is not a multiple; shorter strings are
//! compared lane by lane, the last lane overlapping. Byte-at-a-time loops (libc `memcmp`) cost
//! several wasm instructions per byte. It must stay free of anything but comparison.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lane {
    use core::arch::wasm32::{u64x2, v128, v128_any_true, v128_load, v128_or, v128_xor};

    /// Bytes per lane.
    pub(super) const LANE: usize = 16;

    /// Where two lanes differ (non-zero bits).
    pub(super) type Diff = v128;

    pub(super) const SAME: Diff = u64x2(0, 0);

    #[inline(always)]
    pub(super) fn diff(a: &[u8; LANE], b: &[u8; LANE]) -> Diff {
        // SAFETY: each pointer addresses its array's LANE readable bytes; `v128.load` has no
        // alignment requirement.
        unsafe { v128_xor(v128_load(a.as_ptr().cast()), v128_load(b.as_ptr().cast())) }
    }

    #[inline(always)]
    pub(super) fn or(a: Diff, b: Diff) -> Diff {
        v128_or(a, b)
    }

    #[inline(always)]
    pub(super) fn any(d: Diff) -> bool {
        v128_any_true(d)
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod lane {
    /// Bytes per lane.
    pub(super) const LANE: usize = 8;

    /// Where two lanes differ (non-zero bits).
    pub(super) type Diff = u64;

    pub(super) const SAME: Diff = 0;

    #[inline(always)]
    pub(super) fn diff(a: &[u8; LANE], b: &[u8; LANE]) -> Diff {
        u64::from_ne_bytes(*a) ^ u64::from_ne_bytes(*b)
    }

    #[inline(always)]
    pub(super) fn or(a: Diff, b: Diff) -> Diff {
        a | b
    }

    #[inline(always)]
    pub(super) fn any(d: Diff) -> bool {
        d != 0
    }
}

use lane::{any, diff, or, LANE, SAME};

/// Bytes [`block_differs`] compares per call.
const BLOCK: usize = 128;

/// The lanes of `a` and `b` (equal lengths, a multiple of [`LANE`]) OR-ed into one difference.
#[inline(always)]
fn lanes_diff(a: &[[u8; LANE]], b: &[[u8; LANE]]) -> lane::Diff {
    a.iter().zip(b).fold(SAME, |d, (x, y)| or(d, diff(x, y)))
}

/// Whether two blocks differ anywhere. Not inlined on purpose: from a reference parameter,
/// wasm addresses the lanes as constant offsets of one local (inlined into the loop, each
/// address is recomputed, a third more instructions).
#[inline(never)]
fn block_differs(a: &[u8; BLOCK], b: &[u8; BLOCK]) -> bool {
    any(lanes_diff(a.as_chunks().0, b.as_chunks().0))
}

/// The first eight bytes as a word (`bytes` has at least eight).
#[inline(always)]
fn first_word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_ne_bytes(word)
}

/// `a == b` for two strings of the same length below [`LANE`]: two overlapping words from eight
/// bytes on, else byte by byte.
fn short_equal(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len < 8 {
        return a == b;
    }
    let tail = len - 8;
    first_word(a) == first_word(b) && first_word(&a[tail..]) == first_word(&b[tail..])
}

/// `a == b`: whole blocks and then the last (overlapping) block; below a block, whole lanes and
/// then the last (overlapping) lane.
pub(crate) fn bytes_equal(a: &[u8], b: &[u8]) -> bool {
    let len = a.len();
    if len != b.len() {
        return false;
    }
    if len < LANE {
        return short_equal(a, b);
    }
    if len < BLOCK {
        let last = len - LANE;
        let last_diff = diff(
            a[last..].first_chunk().expect("a whole lane"),
            b[last..].first_chunk().expect("a whole lane"),
        );
        let lanes = lanes_diff(a.as_chunks().0, b.as_chunks().0);
        return !any(or(lanes, last_diff));
    }
    let (blocks_a, rest) = a.as_chunks::<BLOCK>();
    let blocks_b = b.as_chunks::<BLOCK>().0;
    let differ = blocks_a
        .iter()
        .zip(blocks_b)
        .any(|(x, y)| block_differs(x, y));
    if differ || rest.is_empty() {
        return !differ;
    }
    let last = len - BLOCK;
    !block_differs(
        a[last..].first_chunk().expect("a whole block"),
        b[last..].first_chunk().expect("a whole block"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn compares_like_slices_at_every_length_and_position() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"", b""),
            (b"abc", b"abc"),
            (b"abc", b"abd"),
            (b"0123456789abcdef!", b"0123456789abcdef!"),
            (b"0123456789abcdef!", b"0123456789abcdef?"),
            (b"01234567", b"01234567\0"),
        ];
        for (a, b) in cases {
            assert_eq!(bytes_equal(a, b), a == b, "{a:?} vs {b:?}");
        }
        let lengths = (0..=200).chain([255, 256, 257, 500, 511, 512, 513, 1000]);
        for len in lengths {
            let long: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            assert!(bytes_equal(&long, &long.clone()), "{len} bytes");
            for at in 0..len {
                let mut other = long.clone();
                other[at] ^= 0x80;
                assert!(!bytes_equal(&long, &other), "{len} bytes, differs at {at}");
            }
        }
    }
}

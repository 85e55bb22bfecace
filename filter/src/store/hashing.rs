//! Deterministic hashing for the filter's in-VM maps and tables.
//!
//! std's default `RandomState` seeds itself through WASI `random_get`; these hashers keep the
//! module's imports to what the filter needs and make iteration order reproducible. The maps
//! they serve are bounded, so hash flooding can only slow a bounded structure. Everything here
//! works 8 bytes at a time: in wasm, byte-at-a-time loops (FNV) cost several instructions per
//! byte and dominated the per-request path (keys are compared by [`super::compare`]). This
//! module must stay free of anything else.

use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0xcbf2_9ce4_8422_2325;
const K: u64 = 0x517c_c1b7_2722_0a95;

#[inline(always)]
fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(K)
}

#[inline(always)]
fn word_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The last `bytes.len() % 8` bytes, zero-padded, with the length in the top byte so padding
/// is never ambiguous.
#[inline(always)]
fn tail_word(bytes: &[u8]) -> u64 {
    let full = bytes.len() & !7;
    let mut word = [0u8; 8];
    word[..bytes.len() - full].copy_from_slice(&bytes[full..]);
    u64::from_le_bytes(word) ^ ((bytes.len() as u64) << 56)
}

/// Words of a long byte string that go into its hash besides the first and last 32 bytes.
const SAMPLED_WORDS: usize = 4;

/// Hash of a byte string. Strings up to 64 bytes are hashed whole, 8 bytes per step; longer ones
/// (peer metadata runs to hundreds of bytes) by their length, first and last 32 bytes and a few
/// words in between. Equal strings always hash equal; tables using it compare keys in full, so a
/// sampled collision costs one extra comparison, never a wrong match.
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = mix(SEED, bytes.len() as u64);
    if bytes.len() <= 64 {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            h = mix(h, u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        return finish(mix(h, tail_word(bytes)));
    }
    let last = bytes.len() - 8;
    let step = (bytes.len() - 64) / (SAMPLED_WORDS + 1);
    let starts = [0, 8, 16, 24, last - 24, last - 16, last - 8, last];
    for at in starts {
        h = mix(h, word_at(bytes, at));
    }
    for i in 1..=SAMPLED_WORDS {
        h = mix(h, word_at(bytes, 32 + i * step - 4));
    }
    finish(h)
}

/// Final avalanche so low bits depend on every input bit.
#[inline(always)]
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// Hash of fixed-size id arrays (label ids, group ids).
pub(crate) fn hash_ids(ids: &[u32]) -> u64 {
    let mut h = SEED;
    for pair in ids.chunks(2) {
        let word = u64::from(pair[0]) | pair.get(1).map_or(0, |v| u64::from(*v) << 32);
        h = mix(h, word);
    }
    finish(h)
}

/// Word-at-a-time hasher for `HashMap`s keyed by strings, byte strings or small integers.
pub(crate) struct WordHasher(u64);

impl Default for WordHasher {
    fn default() -> Self {
        WordHasher(SEED)
    }
}

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        finish(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0 = mix(self.0, hash_bytes(bytes));
    }

    fn write_u8(&mut self, n: u8) {
        self.0 = mix(self.0, u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = mix(self.0, u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0, n);
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = mix(self.0, n as u64);
    }
}

/// Build hasher for [`WordHasher`]-keyed maps.
pub(crate) type WordBuild = BuildHasherDefault<WordHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn hashes_separate_values_and_padding() {
        assert_ne!(hash_bytes(b"a\0"), hash_bytes(b"a"), "zero padding");
        assert_ne!(hash_bytes(b"12345678"), hash_bytes(b"12345678\0"));
        assert_ne!(hash_bytes(b""), hash_bytes(b"\0"));
        assert_eq!(hash_bytes(b"same value"), hash_bytes(b"same value"));
        let long: Vec<u8> = (0..=255u8).collect();
        assert_eq!(hash_bytes(&long), hash_bytes(&long.clone()));
        assert_ne!(hash_bytes(&long), hash_bytes(&long[1..]));
        assert_ne!(hash_bytes(&long[..70]), hash_bytes(&long[..71]));
        assert_ne!(hash_ids(&[1, 2]), hash_ids(&[2, 1]));
        assert_ne!(hash_ids(&[1, 0, 0]), hash_ids(&[0, 1, 0]));
    }
}

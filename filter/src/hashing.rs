//! Deterministic hashers for the filter's in-VM maps.
//!
//! std's default `RandomState` seeds itself through WASI `random_get`; these hashers keep the
//! module's imports to what the filter needs and make iteration order reproducible. The maps
//! they serve are bounded, so hash flooding can only slow a bounded structure. This module must
//! stay free of anything else.

use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a, 64 bit.
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(FNV_OFFSET)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
}

/// Build hasher for FNV-keyed maps.
pub type FnvBuild = BuildHasherDefault<Fnv>;

/// Hasher for keys that already are hashes.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Build hasher for maps keyed by precomputed hashes.
pub type PassThroughBuild = BuildHasherDefault<PassThrough>;

/// Hash of a sequence of strings, 8 bytes at a time (multiply-rotate mixing) spread over four
/// independent lanes so the CPU can overlap the multiplications, with each string's length
/// mixed in so `["ab", ""]` and `["a", "b"]` differ. Used on the per-request path, where
/// byte-at-a-time FNV over ~600 bytes of label values dominated.
pub fn hash_strings<'a>(values: impl Iterator<Item = &'a str>) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
    let mut lanes: [u64; 4] = [FNV_OFFSET, FNV_PRIME, K, !FNV_OFFSET];
    let mut lane = 0usize;
    let mut feed = |word: u64| {
        lanes[lane] = mix(lanes[lane], word);
        lane = (lane + 1) & 3;
    };
    for v in values {
        let bytes = v.as_bytes();
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            feed(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        // The length goes into the padded last word's top byte slot position-independently.
        feed(u64::from_le_bytes(word) ^ ((bytes.len() as u64) << 56 | bytes.len() as u64));
    }
    let mut h = lanes.iter().fold(0u64, |h, l| mix(h, *l));
    // Final avalanche so low bits depend on every input bit.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn fnv_matches_the_reference_vector_and_separates_values() {
        let mut h = Fnv::default();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
        let h = |v: &[&str]| hash_strings(v.iter().copied());
        assert_ne!(h(&["ab", ""]), h(&["a", "b"]));
        assert_ne!(h(&["a\0"]), h(&["a"]), "zero padding is not ambiguous");
        assert_ne!(h(&["12345678", "9"]), h(&["123456789"]));
        assert_eq!(h(&["x", "y"]), h(&["x", "y"]));
    }
}

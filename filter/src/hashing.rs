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

/// FNV-1a over byte strings, each followed by a 0xff separator (a byte never inside UTF-8), so
/// `["ab", ""]` and `["a", "b"]` differ.
pub fn hash_strings<'a>(values: impl Iterator<Item = &'a str>) -> u64 {
    let mut h = Fnv::default();
    for v in values {
        h.write(v.as_bytes());
        h.write(&[0xff]);
    }
    h.finish()
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
        assert_ne!(
            hash_strings(["ab", ""].into_iter()),
            hash_strings(["a", "b"].into_iter())
        );
    }
}

//! The key a series text is cached under: 128 bits of XXH3, with the long head that
//! consecutive texts of a body share hashed once.
//!
//! A series text is a metric name and its label block exactly as scraped, ~700 bytes for an
//! Istio series, and hashing it was the largest single cost of reading a known line. The
//! texts of a histogram's buckets follow one another and differ only after their last comma
//! (`le` comes last), so the head up to that comma is compared with the previous text's (a
//! comparison reads the bytes several times faster than hashing them) and hashed only when it
//! changed. Owns the key; it must not know what the key finds.

/// A head's hash and the rest of the text as one key.
fn mix(head: u128, tail: &[u8]) -> u128 {
    head ^ twox_hash::XxHash3_128::oneshot_with_seed(head as u64 ^ (head >> 64) as u64, tail)
}

/// The cache keys of the texts of one body, in order: XXH3-128 of a text's head (up to its
/// last comma) mixed with the rest of it by a seeded XXH3-128, or XXH3-128 of the whole text
/// when it has no comma. The last head and its hash are kept so that a repeated head is hashed
/// once; a text's key never depends on the texts before it.
#[derive(Default)]
pub struct TextKeys {
    head: Vec<u8>,
    head_hash: u128,
}

impl TextKeys {
    /// The key of `series_text`.
    pub fn key(&mut self, series_text: &[u8]) -> u128 {
        let Some(comma) = memchr::memrchr(b',', series_text) else {
            return twox_hash::XxHash3_128::oneshot(series_text);
        };
        let (head, tail) = series_text.split_at(comma + 1);
        if head != self.head.as_slice() {
            self.head.clear();
            self.head.extend_from_slice(head);
            self.head_hash = twox_hash::XxHash3_128::oneshot(head);
        }
        mix(self.head_hash, tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Texts one after another that keep, change and drop their head (up to the last comma),
    /// commas inside quoted values and none at all: the remembered head gives every text the
    /// key it has alone (and the key of the plain XXH3 formula), and different texts different
    /// keys.
    #[test]
    fn keys_of_a_body_in_order_are_the_keys_of_each_text() {
        let texts: [&[u8]; 10] = [
            b"m_bucket{a=\"x\",le=\"0.5\"}",
            b"m_bucket{a=\"x\",le=\"1\"}",
            b"m_bucket{a=\"x\",le=\"+Inf\"}",
            b"m_sum{a=\"x\"}",
            b"m_bucket{a=\"x,y\",le=\"1\"}",
            b"m_bucket{a=\"x,y\",le=\"1\"}",
            b"up",
            b"m_bucket{a=\"x\",le=\"1\"}",
            b",",
            b"m_bucket{a=\"x\",",
        ];
        let mut keys = TextKeys::default();
        let got: Vec<u128> = texts.iter().map(|t| keys.key(t)).collect();
        for (text, key) in texts.iter().zip(&got) {
            let alone = TextKeys::default().key(text);
            assert_eq!(*key, alone, "{}", String::from_utf8_lossy(text));
            let formula = match memchr::memrchr(b',', text) {
                Some(comma) => mix(
                    twox_hash::XxHash3_128::oneshot(&text[..=comma]),
                    &text[comma + 1..],
                ),
                None => twox_hash::XxHash3_128::oneshot(text),
            };
            assert_eq!(*key, formula);
        }
        let mut distinct: Vec<(&[u8], u128)> = texts.iter().copied().zip(got).collect();
        distinct.sort();
        distinct.dedup();
        for pair in distinct.windows(2) {
            assert_ne!(pair[0].1, pair[1].1, "two texts, one key");
        }
    }
}

//! A set of small indexes as bits: what a scrape marked (the series-cache texts and series it
//! saw), cleared when the next one begins. One bit per index instead of an epoch per entry.
//!
//! Owns the bit layout only; it must not know what the indexes stand for.

/// Marked indexes, growing as higher ones are marked.
#[derive(Debug, Default)]
pub struct Marks(Vec<u64>);

impl Marks {
    /// Unmarks everything, with room for indexes below `len`.
    pub fn reset(&mut self, len: usize) {
        self.0.clear();
        self.0.resize(len.div_ceil(64), 0);
    }

    /// Marks `at`: true if it was not marked.
    pub fn set(&mut self, at: usize) -> bool {
        let (word, bit) = (at / 64, 1u64 << (at % 64));
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let was = self.0[word] & bit != 0;
        self.0[word] |= bit;
        !was
    }

    /// Whether `at` is marked.
    pub fn get(&self, at: usize) -> bool {
        self.0
            .get(at / 64)
            .is_some_and(|w| w & (1 << (at % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_grow_and_reset() {
        let mut marks = Marks::default();
        marks.reset(10);
        assert!(marks.set(3));
        assert!(!marks.set(3), "already marked");
        assert!(marks.set(200), "beyond the first reset's room");
        assert!(marks.get(3) && marks.get(200) && !marks.get(4) && !marks.get(1000));
        marks.reset(300);
        assert!(!marks.get(3) && !marks.get(200));
    }
}

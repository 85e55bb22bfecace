//! Histogram bucket bounds of the three request histograms: Envoy's defaults, or the lists of
//! `pluginConfig.histogram_buckets` (like Istio's `sidecar.istio.io/statsHistogramBuckets`).
//!
//! Owns the checks on a bound list and the mapping of a whole-number observation to its bucket.
//! A list has at most [`MAX_BOUNDS`] bounds — the number of Envoy's defaults — so every series
//! keeps the same fixed-size bucket storage whatever the configuration; a shorter list leaves
//! the storage's last slots unused. It must not know about label sets or storage.

use meshtap_report::schema::DEFAULT_BUCKETS;

/// Most bounds a configured list may have (Envoy's default list has this many).
pub(crate) const MAX_BOUNDS: usize = DEFAULT_BUCKETS.len();

/// Bucket slots of a histogram's storage: [`MAX_BOUNDS`] bounds plus `+Inf`.
pub(crate) const BUCKET_SLOTS: usize = MAX_BOUNDS + 1;

/// Why a bound list was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum BoundsError {
    #[error("at least one bound is needed")]
    Empty,
    #[error("at most {MAX_BOUNDS} bounds are allowed (Envoy's default list has {MAX_BOUNDS})")]
    TooMany,
    #[error("bounds must be finite and above 0")]
    NotPositive,
    #[error("bounds must be strictly increasing")]
    NotIncreasing,
}

/// Values of `u64::leading_zeros`-derived bit lengths: 0 (for the value 0) to 64.
const BIT_LENGTHS: usize = 65;

/// The inclusive upper bounds of one histogram (without `+Inf`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bounds {
    bounds: Vec<f64>,
    /// The bounds for whole-number observations (an integer `v` is `<= b` exactly when
    /// `v <= floor(b)`), padded with `u64::MAX` so a forward scan stops at the `+Inf` slot.
    integer: [u64; MAX_BOUNDS],
    /// Per bit length of an observation (`64 - leading_zeros`), the number of integer bounds
    /// below the smallest value of that length: where the scan for its slot starts, at most a
    /// few bounds before the slot (bounds are rarely denser than one per power of two).
    first_slot: [u8; BIT_LENGTHS],
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds::new(&DEFAULT_BUCKETS).expect("Envoy's default bounds are valid")
    }
}

impl Bounds {
    /// Checks a configured list: 1..=[`MAX_BOUNDS`] finite bounds above 0, strictly increasing.
    pub(crate) fn new(bounds: &[f64]) -> Result<Bounds, BoundsError> {
        if bounds.is_empty() {
            return Err(BoundsError::Empty);
        }
        if bounds.len() > MAX_BOUNDS {
            return Err(BoundsError::TooMany);
        }
        if bounds.iter().any(|b| !b.is_finite() || *b <= 0.0) {
            return Err(BoundsError::NotPositive);
        }
        if bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(BoundsError::NotIncreasing);
        }
        let mut integer = [u64::MAX; MAX_BOUNDS];
        for (slot, b) in integer.iter_mut().zip(bounds) {
            *slot = *b as u64;
        }
        let first_slot = std::array::from_fn(|length| {
            let smallest = if length == 0 { 0 } else { 1u64 << (length - 1) };
            integer[..bounds.len()].partition_point(|b| *b < smallest) as u8
        });
        Ok(Bounds {
            bounds: bounds.to_vec(),
            integer,
            first_slot,
        })
    }

    /// The bucket slot of a whole-number observation: the first bound it does not exceed, else
    /// the `+Inf` slot (index [`Bounds::len`]). Starts at the first bound of the value's power
    /// of two and scans forward: a few comparisons and no unpredictable binary search.
    #[inline]
    pub(crate) fn slot_of(&self, value: u64) -> usize {
        let length = (u64::BITS - value.leading_zeros()) as usize;
        let mut slot = usize::from(self.first_slot[length]);
        // Ends at the `+Inf` slot at the latest (padding is `u64::MAX`, which no value exceeds).
        while slot < MAX_BOUNDS && self.integer[slot] < value {
            slot += 1;
        }
        slot
    }

    /// The bounds as reported (`MetricFamily.bounds`).
    pub(crate) fn as_slice(&self) -> &[f64] {
        &self.bounds
    }

    /// Number of bounds; the `+Inf` slot has this index.
    pub(crate) fn len(&self) -> usize {
        self.bounds.len()
    }

    /// A storage histogram's per-slot counts as reported: one count per bound plus `+Inf`.
    /// Counts in slots past this list's `+Inf` slot (left by a configuration with more bounds
    /// in the same proxy) are added to `+Inf`, so no observation is lost.
    pub(crate) fn report_counts(&self, slots: &[u64; BUCKET_SLOTS]) -> Vec<u64> {
        let mut counts = Vec::with_capacity(self.len() + 1);
        counts.extend_from_slice(&slots[..self.len()]);
        counts.push(
            slots[self.len()..]
                .iter()
                .fold(0, |a, b| a.saturating_add(*b)),
        );
        counts
    }
}

/// The bounds of `istio_request_duration_milliseconds`, `istio_request_bytes` and
/// `istio_response_bytes`, in that order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramBounds(pub(crate) [Bounds; 3]);

impl HistogramBounds {
    pub(crate) fn duration(&self) -> &Bounds {
        &self.0[0]
    }

    pub(crate) fn request_bytes(&self) -> &Bounds {
        &self.0[1]
    }

    pub(crate) fn response_bytes(&self) -> &Bounds {
        &self.0[2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshtap_report::schema::bucket_index;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn default_and_custom_bounds_pick_the_inclusive_bucket() {
        let default = Bounds::default();
        assert_eq!(default.as_slice(), DEFAULT_BUCKETS);
        for v in [0u64, 1, 2, 5, 6, 3_600_000, 3_600_001, u64::MAX] {
            assert_eq!(
                default.slot_of(v),
                bucket_index(&DEFAULT_BUCKETS, v as f64),
                "{v}"
            );
        }
        let custom = Bounds::new(&[0.5, 3.0, 7.5, 20.0]).unwrap();
        let slots: Vec<usize> = [0u64, 1, 3, 4, 7, 8, 20, 21, u64::MAX]
            .iter()
            .map(|v| custom.slot_of(*v))
            .collect();
        assert_eq!(slots, [0, 1, 1, 2, 2, 3, 3, 4, 4], "4 is the +Inf slot");
        assert_eq!(custom.len(), 4);
        let huge = Bounds::new(&[1e30]).unwrap();
        assert_eq!(huge.slot_of(u64::MAX), 0, "every integer is below 1e30");
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn the_scan_finds_the_binary_search_slot_for_every_power_of_two_and_its_neighbours() {
        let dense: Vec<f64> = (1..=MAX_BOUNDS).map(|i| i as f64 * 1.5).collect();
        let lists = [
            DEFAULT_BUCKETS.to_vec(),
            dense,
            vec![0.5, 1.0, 1.2, 1.9, 2.0, 1e12, 1e19, 1e30],
            vec![7.0],
        ];
        for list in lists {
            let bounds = Bounds::new(&list).unwrap();
            let mut values = vec![0u64, u64::MAX];
            for bit in 0..64 {
                let power = 1u64 << bit;
                values.extend([power - 1, power, power + 1]);
            }
            values.extend(list.iter().flat_map(|b| {
                let b = *b as u64;
                [b.saturating_sub(1), b, b.saturating_add(1)]
            }));
            for v in values {
                let expected = list.partition_point(|b| (*b as u64) < v);
                assert_eq!(bounds.slot_of(v), expected, "{v} in {list:?}");
            }
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn bad_lists_are_refused() {
        assert_eq!(Bounds::new(&[]), Err(BoundsError::Empty));
        assert_eq!(
            Bounds::new(&[1.0; MAX_BOUNDS + 1]),
            Err(BoundsError::TooMany)
        );
        assert_eq!(Bounds::new(&[0.0, 1.0]), Err(BoundsError::NotPositive));
        assert_eq!(Bounds::new(&[-1.0]), Err(BoundsError::NotPositive));
        assert_eq!(Bounds::new(&[f64::INFINITY]), Err(BoundsError::NotPositive));
        assert_eq!(Bounds::new(&[f64::NAN]), Err(BoundsError::NotPositive));
        assert_eq!(Bounds::new(&[1.0, 1.0]), Err(BoundsError::NotIncreasing));
        assert_eq!(Bounds::new(&[2.0, 1.0]), Err(BoundsError::NotIncreasing));
        let most: Vec<f64> = (1..=MAX_BOUNDS).map(|i| i as f64).collect();
        assert!(Bounds::new(&most).is_ok());
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn reported_counts_fold_unused_slots_into_inf() {
        let b = Bounds::new(&[1.0, 10.0]).unwrap();
        let mut slots = [0u64; BUCKET_SLOTS];
        slots[0] = 3;
        slots[1] = 4;
        slots[2] = 5;
        slots[7] = 1;
        assert_eq!(b.report_counts(&slots), [3, 4, 6]);
        assert_eq!(
            Bounds::default().report_counts(&slots).len(),
            BUCKET_SLOTS,
            "the default list uses every slot"
        );
    }
}

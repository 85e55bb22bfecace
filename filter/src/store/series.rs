//! The cumulative values of one label set: a request count and three histograms (per-slot
//! counts on their configured [`Bounds`]), with exact integer sums.
//!
//! Owns the histogram arithmetic shared by the per-request aggregator, the cross-VM merge and
//! the report builder, and [`CompactValues`], the aggregator's 32-bit form of one label set's
//! values. It must not know about label values or storage.

use crate::config::EnabledMetrics;
use crate::store::buckets::{Bounds, HistogramBounds, BUCKET_SLOTS};

/// A histogram: per-slot (not cumulative) counts on its [`Bounds`] and the exact sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Histogram {
    pub buckets: [u64; BUCKET_SLOTS],
    pub sum: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: [0; BUCKET_SLOTS],
            sum: 0,
        }
    }
}

impl Histogram {
    pub(crate) fn observe(&mut self, value: u64, bounds: &Bounds) {
        self.buckets[bounds.slot_of(value)] += 1;
        self.sum = self.sum.saturating_add(value);
    }

    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    pub(crate) fn add(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a = a.saturating_add(*b);
        }
        self.sum = self.sum.saturating_add(other.sum);
    }
}

/// The observations of one request, in the units Istio records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observation {
    /// Whole milliseconds (truncated), as Istio's duration histogram.
    pub duration_ms: u64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

impl Observation {
    /// Converts the host's raw values (negative means unknown and counts as 0).
    pub fn from_raw(duration_ns: i64, request_bytes: i64, response_bytes: i64) -> Self {
        Observation {
            duration_ms: duration_ns.max(0) as u64 / 1_000_000,
            request_bytes: request_bytes.max(0) as u64,
            response_bytes: response_bytes.max(0) as u64,
        }
    }
}

/// Cumulative values of one label set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SeriesValues {
    pub requests: u64,
    pub duration: Histogram,
    pub request_bytes: Histogram,
    pub response_bytes: Histogram,
}

impl SeriesValues {
    #[cfg(test)]
    pub(crate) fn observe(&mut self, o: Observation, bounds: &HistogramBounds) {
        self.requests += 1;
        self.duration.observe(o.duration_ms, bounds.duration());
        self.request_bytes
            .observe(o.request_bytes, bounds.request_bytes());
        self.response_bytes
            .observe(o.response_bytes, bounds.response_bytes());
    }

    pub(crate) fn add(&mut self, other: &SeriesValues) {
        self.requests = self.requests.saturating_add(other.requests);
        self.duration.add(&other.duration);
        self.request_bytes.add(&other.request_bytes);
        self.response_bytes.add(&other.response_bytes);
    }
}

/// One label set's values with 32-bit counts, as the per-VM aggregator holds them (half the
/// memory of [`SeriesValues`]). Every observation adds one to `requests` and at most one to a
/// bucket of each histogram, so no count exceeds `requests`: [`CompactValues::observe`] refuses
/// when `requests` is full, and the owner moves the values into a [`SeriesValues`] first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompactValues {
    requests: u32,
    buckets: [[u32; BUCKET_SLOTS]; 3],
    sums: [u64; 3],
}

impl Default for CompactValues {
    fn default() -> Self {
        CompactValues {
            requests: 0,
            buckets: [[0; BUCKET_SLOTS]; 3],
            sums: [0; 3],
        }
    }
}

impl CompactValues {
    /// Adds an observation to the enabled families; `false` (nothing changed) when the counts
    /// are full.
    pub(crate) fn observe(
        &mut self,
        o: Observation,
        enabled: EnabledMetrics,
        bounds: &HistogramBounds,
    ) -> bool {
        if self.requests == u32::MAX {
            return false;
        }
        self.requests += 1;
        let families = [
            (enabled.request_duration, o.duration_ms),
            (enabled.request_bytes, o.request_bytes),
            (enabled.response_bytes, o.response_bytes),
        ];
        for (i, (on, value)) in families.into_iter().enumerate() {
            if on {
                self.buckets[i][bounds.0[i].slot_of(value)] += 1;
                self.sums[i] = self.sums[i].saturating_add(value);
            }
        }
        true
    }

    /// Values that claim `requests` requests and no observations (tests of full counts).
    #[cfg(test)]
    pub(crate) fn with_requests(requests: u32) -> CompactValues {
        CompactValues {
            requests,
            ..CompactValues::default()
        }
    }

    /// The same values with 64-bit counts.
    pub(crate) fn widen(&self) -> SeriesValues {
        let histogram = |i: usize| Histogram {
            buckets: self.buckets[i].map(u64::from),
            sum: self.sums[i],
        };
        SeriesValues {
            requests: u64::from(self.requests),
            duration: histogram(0),
            request_bytes: histogram(1),
            response_bytes: histogram(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn observes_into_inclusive_buckets_with_exact_sums() {
        let mut s = SeriesValues::default();
        let bounds = HistogramBounds::default();
        s.observe(Observation::from_raw(1_999_999, 1000, 0), &bounds);
        s.observe(Observation::from_raw(5_000_000, 1001, 4_000_000), &bounds);
        assert_eq!(s.requests, 2);
        assert_eq!(s.duration.sum, 6, "1ms (truncated) + 5ms");
        assert_eq!(s.duration.buckets[1], 1, "1ms is in le=1");
        assert_eq!(s.duration.buckets[2], 1, "5ms is in le=5");
        assert_eq!(s.request_bytes.buckets[9], 1, "1000 in le=1000");
        assert_eq!(s.request_bytes.buckets[10], 1, "1001 in le=2500");
        assert_eq!(s.response_bytes.buckets[0], 1, "0 in le=0.5");
        assert_eq!(s.response_bytes.buckets[BUCKET_SLOTS - 1], 1, "+Inf");
        assert_eq!(s.response_bytes.count(), 2);
        let mut twice = s;
        twice.add(&s);
        assert_eq!(twice.requests, 4);
        assert_eq!(twice.request_bytes.sum, 4002);
        assert_eq!(
            Observation::from_raw(-1, -5, 3),
            Observation {
                duration_ms: 0,
                request_bytes: 0,
                response_bytes: 3
            }
        );
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn compact_values_widen_to_the_same_totals_and_refuse_when_full() {
        let (mut compact, mut wide) = (CompactValues::default(), SeriesValues::default());
        let custom = HistogramBounds([
            Bounds::new(&[2.0, 4.0]).unwrap(),
            Bounds::default(),
            Bounds::new(&[1e6]).unwrap(),
        ]);
        for o in [
            Observation::from_raw(1_999_999, 1000, 0),
            Observation::from_raw(5_000_000, 1001, 4_000_000),
        ] {
            assert!(compact.observe(o, EnabledMetrics::all(), &custom));
            wide.observe(o, &custom);
        }
        assert_eq!(compact.widen(), wide);
        assert_eq!(wide.duration.buckets[..3], [1, 0, 1], "1ms le=2, 5ms +Inf");
        assert_eq!(
            wide.response_bytes.buckets[..2],
            [1, 1],
            "0 le=1e6, 4e6 +Inf"
        );
        let only_requests = EnabledMetrics {
            request_duration: false,
            request_bytes: false,
            response_bytes: false,
            ..EnabledMetrics::all()
        };
        let mut counted = CompactValues::default();
        let bounds = HistogramBounds::default();
        assert!(counted.observe(Observation::from_raw(9, 9, 9), only_requests, &bounds));
        assert_eq!(counted.widen().requests, 1);
        assert_eq!(counted.widen().duration.count(), 0);
        counted.requests = u32::MAX;
        let before = counted;
        assert!(!counted.observe(Observation::default(), EnabledMetrics::all(), &bounds));
        assert_eq!(counted, before);
    }
}

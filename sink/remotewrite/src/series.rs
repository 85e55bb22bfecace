//! The sink's internal sample model, shared by ingest, staleness and export.
//!
//! A [`Sample`] names its series by a [`SeriesId`]: the metric name, a shared sorted
//! [`SeriesLabels`] (family labels plus target labels, empty values already dropped) and, for
//! histogram buckets, the `le` value. Sharing the label set between a histogram's buckets, sum
//! and count keeps conversion cheap. This module owns label ordering and the stale-marker value;
//! it must not know about reports or remote-write framing.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Shared immutable text (label names and values are repeated across many samples).
pub type Text = Arc<str>;

/// The bit pattern of Prometheus' stale marker (a NaN used for nothing else).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The stale-marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether a value is exactly the stale marker.
pub fn is_stale_marker(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// Label pairs sorted by name, names unique, values non-empty; hashed once.
#[derive(Debug)]
pub struct SeriesLabels {
    pairs: Box<[(Text, Text)]>,
    hash: u64,
}

impl SeriesLabels {
    /// Builds a set from pairs already sorted by name with unique names and non-empty values.
    pub fn from_sorted(pairs: Vec<(Text, Text)>) -> SeriesLabels {
        debug_assert!(
            pairs.windows(2).all(|w| w[0].0 < w[1].0),
            "labels not sorted/unique"
        );
        debug_assert!(
            pairs.iter().all(|(_, v)| !v.is_empty()),
            "empty label value"
        );
        let mut hasher = DefaultHasher::new();
        for (name, value) in &pairs {
            name.hash(&mut hasher);
            value.hash(&mut hasher);
        }
        SeriesLabels {
            pairs: pairs.into_boxed_slice(),
            hash: hasher.finish(),
        }
    }

    pub fn pairs(&self) -> &[(Text, Text)] {
        &self.pairs
    }

    /// Hash of the pairs, for sharding onto lanes.
    pub fn hash_value(&self) -> u64 {
        self.hash
    }

    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .map(|i| &*self.pairs[i].1)
    }
}

impl PartialEq for SeriesLabels {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.pairs == other.pairs
    }
}

impl Eq for SeriesLabels {}

impl Hash for SeriesLabels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// Identity of one exported series.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeriesId {
    /// `__name__`, for example `istio_request_bytes_bucket`.
    pub name: Text,
    pub labels: Arc<SeriesLabels>,
    /// The `le` label of a histogram bucket.
    pub le: Option<Text>,
}

impl SeriesId {
    /// Calls `visit` with every label of the series in sorted order: its own labels plus
    /// `__name__`, `le` and then `external` (sorted, unique) where a series label of the same
    /// name does not already exist.
    pub fn visit_labels(&self, external: &[(String, String)], mut visit: impl FnMut(&str, &str)) {
        let mut own: [(&str, &str); 2] = [("__name__", &self.name), ("", "")];
        let extra_len = match &self.le {
            Some(le) => {
                own[1] = ("le", le);
                2
            }
            None => 1,
        };
        let extra = &own[..extra_len];
        let base = self.labels.pairs();
        let (mut b, mut e, mut x) = (0, 0, 0);
        loop {
            let next_base = base.get(b).map(|(n, v)| (&**n, &**v));
            let next_extra = extra.get(e).copied();
            let next_external = external.get(x).map(|(n, v)| (n.as_str(), v.as_str()));
            // The smallest name of the two series sources, then external labels if smaller.
            let series_next = match (next_base, next_extra) {
                (Some(bp), Some(ep)) => Some(if bp.0 <= ep.0 { (bp, 0) } else { (ep, 1) }),
                (Some(bp), None) => Some((bp, 0)),
                (None, Some(ep)) => Some((ep, 1)),
                (None, None) => None,
            };
            match (series_next, next_external) {
                (None, None) => return,
                (Some(((n, v), source)), ext) => {
                    if let Some((en, ev)) = ext {
                        if en < n {
                            visit(en, ev);
                            x += 1;
                            continue;
                        }
                        if en == n {
                            x += 1;
                        }
                    }
                    visit(n, v);
                    if source == 0 {
                        b += 1;
                    } else {
                        e += 1;
                    }
                }
                (None, Some((en, ev))) => {
                    visit(en, ev);
                    x += 1;
                }
            }
        }
    }

    /// Hash used to pick a lane: all samples of one series always share a lane.
    pub fn shard_hash(&self) -> u64 {
        self.labels.hash_value() ^ (self.name.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// One value of one series at one time.
#[derive(Clone, Debug)]
pub struct Sample {
    pub series: SeriesId,
    pub value: f64,
    pub timestamp_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Text {
        Arc::from(s)
    }

    #[test]
    fn labels_are_merged_sorted_and_series_labels_win() {
        let labels = SeriesLabels::from_sorted(vec![
            (text("app"), text("a")),
            (text("cluster"), text("own")),
            (text("zone"), text("z")),
        ]);
        let id = SeriesId {
            name: text("m_bucket"),
            labels: Arc::new(labels),
            le: Some(text("0.5")),
        };
        let external = vec![
            ("Region".to_owned(), "eu".to_owned()),
            ("cluster".to_owned(), "ext".to_owned()),
            ("mesh".to_owned(), "m1".to_owned()),
        ];
        let mut seen = Vec::new();
        id.visit_labels(&external, |n, v| seen.push(format!("{n}={v}")));
        assert_eq!(
            seen,
            [
                "Region=eu",
                "__name__=m_bucket",
                "app=a",
                "cluster=own",
                "le=0.5",
                "mesh=m1",
                "zone=z"
            ]
        );
    }

    #[test]
    fn stale_marker_is_bit_exact() {
        assert!(is_stale_marker(stale_nan()));
        assert!(!is_stale_marker(f64::NAN));
    }
}

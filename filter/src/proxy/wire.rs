//! Compact protobuf encodings of what worker VMs share through Envoy's shared data:
//! a VM's totals snapshot, the retired VMs' base totals, the small proxy-wide state record and
//! the eviction record.
//!
//! Owns these message layouts and the conversion from an [`Aggregator`] (label values are
//! deduplicated into a string table). It must not decide who writes what when: that is
//! [`crate::proxy::coordinate`]. These messages never leave the proxy; only the VMs of one filter build
//! read them, so they may change between filter versions (a new version gets a new vm_id).

use std::collections::HashMap;

use crate::store::aggregate::Aggregator;
use crate::store::buckets::BUCKET_SLOTS;
use crate::store::counters::{CounterKind, CounterTotals, CounterValues};
use crate::store::hashing::WordBuild;
use crate::store::series::{Histogram, SeriesValues};

/// Totals of many label sets: a string table and series pointing into it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TotalsPb {
    #[prost(string, repeated, tag = "1")]
    pub(crate) strings: Vec<String>,
    #[prost(message, repeated, tag = "2")]
    pub(crate) series: Vec<SeriesPb>,
    /// Observations that went to the overflow series.
    #[prost(uint64, tag = "3")]
    pub(crate) overflow_observations: u64,
    /// The TCP and gRPC-message label sets.
    #[prost(message, repeated, tag = "4")]
    pub(crate) counters: Vec<CounterSeriesPb>,
    /// Counter additions that went to an overflow set.
    #[prost(uint64, tag = "5")]
    pub(crate) counter_overflow_additions: u64,
    /// Label values replaced because of `label_limits`.
    #[prost(uint64, tag = "6")]
    pub(crate) label_values_capped: u64,
}

/// One label set of [`CounterTotals`]: its kind, indexes into [`TotalsPb::strings`] and values.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CounterSeriesPb {
    /// [`CounterKind`] as a number.
    #[prost(uint32, tag = "1")]
    pub kind: u32,
    #[prost(uint32, repeated, tag = "2")]
    pub labels: Vec<u32>,
    /// [`CounterValues`], trailing zeros may be left out.
    #[prost(uint64, repeated, tag = "3")]
    pub values: Vec<u64>,
}

/// One label set: indexes into [`TotalsPb::strings`] and its totals.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SeriesPb {
    #[prost(uint32, repeated, tag = "1")]
    pub labels: Vec<u32>,
    #[prost(uint64, tag = "2")]
    pub requests: u64,
    #[prost(message, optional, tag = "3")]
    pub duration: Option<HistogramPb>,
    #[prost(message, optional, tag = "4")]
    pub request_bytes: Option<HistogramPb>,
    #[prost(message, optional, tag = "5")]
    pub response_bytes: Option<HistogramPb>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HistogramPb {
    #[prost(uint64, repeated, tag = "1")]
    pub buckets: Vec<u64>,
    #[prost(uint64, tag = "2")]
    pub sum: u64,
}

/// A worker VM's cumulative totals, under `meshtap/vm/<uid>`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct VmSnapshotPb {
    #[prost(uint64, tag = "1")]
    pub uid: u64,
    /// When the VM wrote this snapshot (ms since the epoch).
    #[prost(int64, tag = "2")]
    pub heartbeat_ms: i64,
    #[prost(message, optional, tag = "3")]
    pub totals: Option<TotalsPb>,
    /// The epoch of the last eviction record ([`EvictionRecordPb`]) applied to these totals.
    #[prost(uint64, tag = "4")]
    pub applied_eviction_epoch: u64,
}

/// The leader's latest eviction decision, under `meshtap/evicted` (see [`crate::proxy::evict`]).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EvictionRecordPb {
    /// Increases by one per decision; 0 means no decision yet.
    #[prost(uint64, tag = "1")]
    pub epoch: u64,
    /// Label sets evicted proxy-wide since the proxy started (all epochs).
    #[prost(uint64, tag = "2")]
    pub evicted_total: u64,
    #[prost(string, repeated, tag = "3")]
    pub strings: Vec<String>,
    /// The label sets evicted by this epoch.
    #[prost(message, repeated, tag = "4")]
    pub sets: Vec<EvictedSetPb>,
}

/// One evicted label set: its kind (0 for the request families, else a [`CounterKind`]) and
/// indexes into [`EvictionRecordPb::strings`].
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct EvictedSetPb {
    #[prost(uint32, tag = "1")]
    pub kind: u32,
    #[prost(uint32, repeated, tag = "2")]
    pub labels: Vec<u32>,
}

/// A VM that is counted as live.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LiveVmPb {
    #[prost(uint64, tag = "1")]
    pub uid: u64,
    /// When it registered (ms), so a VM that never published can be retired too.
    #[prost(int64, tag = "2")]
    pub since_ms: i64,
}

/// The proxy-wide state record, under `meshtap/proxy` (small; every VM reads it each tick).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ProxyStatePb {
    /// When this proxy's counters started (ms); created once, survives VM replacement.
    #[prost(int64, tag = "1")]
    pub start_ms: i64,
    #[prost(uint64, tag = "2")]
    pub next_vm_uid: u64,
    #[prost(message, repeated, tag = "3")]
    pub live: Vec<LiveVmPb>,
    #[prost(uint32, tag = "4")]
    pub retired_vms: u32,
    /// Sequence number of the last report built.
    #[prost(uint64, tag = "5")]
    pub sequence: u64,
    /// The VM holding the report lease, and until when (ms).
    #[prost(uint64, tag = "6")]
    pub leader_uid: u64,
    #[prost(int64, tag = "7")]
    pub lease_expiry_ms: i64,
    #[prost(uint64, tag = "8")]
    pub reports_failed: u64,
}

impl HistogramPb {
    fn from_histogram(h: &Histogram) -> Option<HistogramPb> {
        (h.count() > 0).then(|| HistogramPb {
            buckets: h.buckets.to_vec(),
            sum: h.sum,
        })
    }

    fn to_histogram(this: &Option<HistogramPb>) -> Histogram {
        let mut h = Histogram::default();
        if let Some(pb) = this {
            for (slot, v) in h
                .buckets
                .iter_mut()
                .zip(pb.buckets.iter().take(BUCKET_SLOTS))
            {
                *slot = *v;
            }
            h.sum = pb.sum;
        }
        h
    }
}

impl SeriesPb {
    pub(crate) fn values(&self) -> SeriesValues {
        SeriesValues {
            requests: self.requests,
            duration: HistogramPb::to_histogram(&self.duration),
            request_bytes: HistogramPb::to_histogram(&self.request_bytes),
            response_bytes: HistogramPb::to_histogram(&self.response_bytes),
        }
    }

    fn from_values(labels: Vec<u32>, v: &SeriesValues) -> SeriesPb {
        SeriesPb {
            labels,
            requests: v.requests,
            duration: HistogramPb::from_histogram(&v.duration),
            request_bytes: HistogramPb::from_histogram(&v.request_bytes),
            response_bytes: HistogramPb::from_histogram(&v.response_bytes),
        }
    }
}

/// Builds a [`TotalsPb`] from label sets given as value slices.
#[derive(Default)]
pub(crate) struct TotalsBuilder {
    totals: TotalsPb,
    index: HashMap<String, u32, WordBuild>,
}

impl TotalsBuilder {
    fn refs<'a>(&mut self, labels: impl Iterator<Item = &'a str>) -> Vec<u32> {
        labels
            .map(|v| match self.index.get(v) {
                Some(i) => *i,
                None => {
                    let i = self.totals.strings.len() as u32;
                    self.totals.strings.push(v.to_string());
                    self.index.insert(v.to_string(), i);
                    i
                }
            })
            .collect()
    }

    pub(crate) fn push<'a>(
        &mut self,
        labels: impl Iterator<Item = &'a str>,
        values: &SeriesValues,
    ) {
        let refs = self.refs(labels);
        self.totals.series.push(SeriesPb::from_values(refs, values));
    }

    pub(crate) fn push_counter<'a>(
        &mut self,
        kind: CounterKind,
        labels: impl Iterator<Item = &'a str>,
        values: &CounterValues,
    ) {
        let labels = self.refs(labels);
        let used = values.iter().rposition(|v| *v != 0).map_or(0, |i| i + 1);
        self.totals.counters.push(CounterSeriesPb {
            kind: kind as u32,
            labels,
            values: values[..used].to_vec(),
        });
    }

    pub(crate) fn finish(
        mut self,
        overflow_observations: u64,
        counter_overflow_additions: u64,
    ) -> TotalsPb {
        self.totals.overflow_observations = overflow_observations;
        self.totals.counter_overflow_additions = counter_overflow_additions;
        self.totals
    }
}

impl CounterSeriesPb {
    /// The kind and values; `None` for an unknown kind or too many values (skipped, not trusted).
    pub(crate) fn kind_and_values(&self) -> Option<(CounterKind, CounterValues)> {
        let kind = CounterKind::from_wire(self.kind)?;
        let mut values = CounterValues::default();
        if self.values.len() > values.len() {
            return None;
        }
        values[..self.values.len()].copy_from_slice(&self.values);
        Some((kind, values))
    }
}

impl TotalsPb {
    /// A VM's current totals: request series and plain counters, one string table, and the
    /// count of label values its caps replaced.
    pub(crate) fn from_vm(
        agg: &Aggregator,
        counters: &CounterTotals,
        label_values_capped: u64,
    ) -> TotalsPb {
        let mut b = TotalsBuilder::default();
        for (labels, values) in agg.series() {
            b.push((0..labels.len()).map(|i| labels.value(i)), &values);
        }
        for (kind, labels, values) in counters.entries() {
            b.push_counter(kind, labels.into_iter(), values);
        }
        let mut totals = b.finish(agg.overflow_observations(), counters.overflow_additions());
        totals.label_values_capped = label_values_capped;
        totals
    }

    /// The request series of an aggregator alone (tests and benches of the request path).
    pub fn from_aggregator(agg: &Aggregator) -> TotalsPb {
        TotalsPb::from_vm(agg, &CounterTotals::default(), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnabledMetrics;
    use crate::record::labels::{LabelValues, LABEL_COUNT};
    use crate::store::series::Observation;
    use prost::Message;

    /// The label values of a series; `None` if one points outside the string table.
    fn labels_of<'a>(totals: &'a TotalsPb, s: &SeriesPb) -> Option<Vec<&'a str>> {
        s.labels
            .iter()
            .map(|i| totals.strings.get(*i as usize).map(String::as_str))
            .collect()
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn totals_round_trip_with_a_shared_string_table() {
        let mut agg = Aggregator::new(1, EnabledMetrics::all());
        let mut l = LabelValues::default();
        for v in l.0.iter_mut() {
            *v = "same".into();
        }
        let o = Observation {
            duration_ms: 12,
            request_bytes: 100,
            response_bytes: 0,
        };
        agg.record(&l, &[], o);
        l.0[3] = "other".into();
        agg.record(&l, &[], o); // overflow
        let totals = TotalsPb::from_aggregator(&agg);
        assert_eq!(totals.strings, vec!["same", "overflow"]);
        assert_eq!(totals.overflow_observations, 1);
        let back = TotalsPb::decode(totals.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back, totals);
        let s = &back.series[0];
        assert_eq!(labels_of(&back, s).unwrap(), vec!["same"; LABEL_COUNT]);
        let v = s.values();
        assert_eq!(v.requests, 1);
        assert_eq!(v.duration.sum, 12);
        assert_eq!(v.response_bytes.buckets[0], 1);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn counters_share_the_string_table_and_drop_trailing_zeros() {
        let agg = Aggregator::new(1, EnabledMetrics::all());
        let mut counters = CounterTotals::new(4);
        let peer = vec!["same"; CounterKind::GrpcMessages.label_count()];
        counters.add(CounterKind::GrpcMessages, &peer, &[2, 5, 0, 0]);
        let totals = TotalsPb::from_vm(&agg, &counters, 0);
        assert_eq!(totals.strings, vec!["same"]);
        let c = &totals.counters[0];
        assert_eq!(c.values, vec![2, 5]);
        assert_eq!(
            c.kind_and_values(),
            Some((CounterKind::GrpcMessages, [2, 5, 0, 0]))
        );
        let unknown = CounterSeriesPb {
            kind: 9,
            ..c.clone()
        };
        assert_eq!(unknown.kind_and_values(), None);
    }
}

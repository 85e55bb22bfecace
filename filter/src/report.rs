//! Builds the [`Report`] a leader VM posts to the sink from the proxy-wide [`Collected`] totals.
//!
//! Owns the mapping of merged totals to metric families (only enabled ones, Istio's names and
//! label order, per-bucket counts, exact sums) and the report's header fields. It must not
//! gather the totals nor send anything.

use meshtap_report::schema::{
    DEFAULT_BUCKETS, HTTP_LABELS, REQUESTS_TOTAL, REQUEST_BYTES, REQUEST_DURATION, RESPONSE_BYTES,
};
use meshtap_report::{FilterStats, MetricFamily, MetricKind, Proxy, Report, Series};

use std::collections::HashMap;

use crate::config::EnabledMetrics;
use crate::coordinate::Collected;
use crate::hashing::WordBuild;
use crate::series::{Histogram, SeriesValues};

/// Picks one of a series' histograms.
type HistogramOf = fn(&SeriesValues) -> &Histogram;

/// The report's fields that do not come from the totals.
#[derive(Debug, Clone)]
pub struct ReportContext {
    pub proxy: Proxy,
    pub timestamp_ms: i64,
    pub sequence: u64,
    pub interval_ms: u32,
    pub enabled: EnabledMetrics,
    pub series_limit: u64,
}

/// The report's string table, filled while label sets are turned into references.
#[derive(Default)]
struct ReportStrings<'a> {
    ids: HashMap<&'a str, u32, WordBuild>,
    strings: Vec<String>,
}

impl<'a> ReportStrings<'a> {
    fn refs(&mut self, labels: &[&'a str]) -> Vec<u32> {
        labels
            .iter()
            .map(|value| {
                *self.ids.entry(value).or_insert_with(|| {
                    self.strings.push(value.to_string());
                    self.strings.len() as u32 - 1
                })
            })
            .collect()
    }
}

/// Builds the report of one leader turn. Label values go into the report's string table once;
/// every series references them (`Series.label_refs`).
pub fn build(ctx: ReportContext, collected: &Collected) -> Report {
    let totals = &collected.totals;
    let entries = totals.entries();
    let mut table = ReportStrings::default();
    let refs: Vec<Vec<u32>> = entries
        .iter()
        .map(|(labels, _)| table.refs(labels))
        .collect();
    let mut families = Vec::new();
    let label_names: Vec<String> = HTTP_LABELS.iter().map(|s| s.to_string()).collect();
    let family = |name: &str, kind: MetricKind, help: &str, bounds: Vec<f64>| MetricFamily {
        name: name.to_string(),
        kind: kind as i32,
        help: help.to_string(),
        label_names: label_names.clone(),
        bounds,
        series: Vec::with_capacity(entries.len()),
    };
    if ctx.enabled.requests_total {
        let mut f = family(
            REQUESTS_TOTAL,
            MetricKind::Counter,
            "Total number of requests",
            Vec::new(),
        );
        for ((_, v), refs) in entries.iter().zip(&refs) {
            f.series.push(Series {
                label_refs: refs.clone(),
                value: v.requests as f64,
                ..Default::default()
            });
        }
        families.push(f);
    }
    let histograms: [(bool, &str, &str, HistogramOf); 3] = [
        (
            ctx.enabled.request_duration,
            REQUEST_DURATION,
            "Request duration in milliseconds",
            |v| &v.duration,
        ),
        (
            ctx.enabled.request_bytes,
            REQUEST_BYTES,
            "Request size in bytes",
            |v| &v.request_bytes,
        ),
        (
            ctx.enabled.response_bytes,
            RESPONSE_BYTES,
            "Response size in bytes",
            |v| &v.response_bytes,
        ),
    ];
    for (enabled, name, help, pick) in histograms {
        if !enabled {
            continue;
        }
        let mut f = family(name, MetricKind::Histogram, help, DEFAULT_BUCKETS.to_vec());
        for ((_, v), refs) in entries.iter().zip(&refs) {
            let h = pick(v);
            f.series.push(Series {
                label_refs: refs.clone(),
                bucket_counts: h.buckets.to_vec(),
                sum: h.sum as f64,
                ..Default::default()
            });
        }
        families.push(f);
    }
    Report {
        protocol_version: meshtap_report::PROTOCOL_VERSION,
        proxy: Some(ctx.proxy),
        proxy_start_ms: collected.start_ms,
        timestamp_ms: ctx.timestamp_ms,
        sequence: ctx.sequence,
        interval_ms: ctx.interval_ms,
        families,
        stats: Some(FilterStats {
            series_active: totals.held_label_sets() as u64,
            series_limit: ctx.series_limit,
            overflow_observations: totals.overflow_observations,
            worker_vms: collected.live_vms,
            retired_vms: collected.retired_vms,
            reports_failed: collected.reports_failed,
            series_evicted: 0,
            ..Default::default()
        }),
        strings: table.strings,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::labels::LabelValues;
    use crate::merge::MergedTotals;
    use crate::series::Observation;
    use crate::wire::TotalsPb;

    fn collected() -> Collected {
        let mut agg = Aggregator::new(10, EnabledMetrics::all());
        let mut l = LabelValues::default();
        l.0[0] = "source".into();
        for ms in [3, 40] {
            agg.record(
                &l,
                Observation {
                    duration_ms: ms,
                    request_bytes: 700,
                    response_bytes: 10,
                },
            );
        }
        let mut totals = MergedTotals::new(10);
        totals.absorb(&TotalsPb::from_aggregator(&agg));
        Collected {
            totals,
            start_ms: 1_000,
            live_vms: 2,
            retired_vms: 1,
            reports_failed: 4,
            newly_retired: 0,
        }
    }

    fn ctx(enabled: EnabledMetrics) -> ReportContext {
        ReportContext {
            proxy: Proxy {
                namespace: "default".into(),
                pod: "p".into(),
                ..Default::default()
            },
            timestamp_ms: 2_000,
            sequence: 9,
            interval_ms: 10_000,
            enabled,
            series_limit: 10,
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn report_is_valid_and_carries_the_totals() {
        let r = build(ctx(EnabledMetrics::all()), &collected());
        meshtap_report::validate(&r).unwrap();
        assert_eq!(r.families.len(), 4);
        assert_eq!(r.families[0].name, "istio_requests_total");
        assert_eq!(r.families[0].series[0].value, 2.0);
        assert_eq!(r.families[0].label_names.len(), 25);
        let duration = &r.families[1];
        assert_eq!(duration.name, "istio_request_duration_milliseconds");
        assert_eq!(duration.series[0].sum, 43.0);
        assert_eq!(duration.series[0].bucket_counts.iter().sum::<u64>(), 2);
        assert_eq!(duration.series[0].bucket_counts[2], 1, "3ms in le=5");
        assert_eq!(r.proxy_start_ms, 1_000);
        assert_eq!(r.sequence, 9);
        let stats = r.stats.unwrap();
        assert_eq!(stats.series_active, 1);
        assert_eq!(
            (stats.worker_vms, stats.retired_vms, stats.reports_failed),
            (2, 1, 4)
        );
        let back = meshtap_report::decode(
            &meshtap_report::encode(&build(ctx(EnabledMetrics::all()), &collected())),
            1 << 20,
        )
        .unwrap();
        assert_eq!(back.families[3].name, "istio_response_bytes");
        let labels = &back.families[2].series[0].label_values;
        assert_eq!(labels.len(), 25);
        assert_eq!(labels[0], "source");
        assert_eq!(labels[1], "", "the decoded report carries the values again");
        assert_eq!(r.strings, ["source", ""], "each value once");
        assert_eq!(r.families[3].series[0].label_refs[..2], [0, 1]);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn disabled_families_are_left_out() {
        let enabled = EnabledMetrics {
            request_bytes: false,
            requests_total: false,
            ..EnabledMetrics::all()
        };
        let r = build(ctx(enabled), &collected());
        let names: Vec<_> = r.families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "istio_request_duration_milliseconds",
                "istio_response_bytes"
            ]
        );
    }
}

//! Builds the [`Report`] a leader VM posts to the sink from the proxy-wide [`Collected`] totals.
//!
//! Owns the mapping of merged totals to metric families (only enabled ones, Istio's names and
//! label order with each request family's extra dimensions, per-bucket counts on the configured
//! bounds, exact sums; TCP and gRPC message counters; the `istio_build` gauge) and the report's
//! header fields. It must not gather the totals nor send anything.

use meshtap_report::schema::{
    BUILD, HTTP_LABELS, PEER_LABELS, REQUESTS_TOTAL, REQUEST_BYTES, REQUEST_DURATION,
    REQUEST_MESSAGES, RESPONSE_BYTES, RESPONSE_MESSAGES, TCP_CLOSED, TCP_LABELS, TCP_OPENED,
    TCP_RECEIVED_BYTES, TCP_SENT_BYTES,
};
use meshtap_report::{FilterStats, MetricFamily, MetricKind, Proxy, Report, Series};

use std::collections::HashMap;

use crate::config::EnabledMetrics;
use crate::proxy::coordinate::Collected;
use crate::proxy::merge::MergedTotals;
use crate::record::dimensions::{Dimensions, REQUEST_FAMILIES};
use crate::record::labels::LABEL_COUNT;
use crate::store::buckets::{Bounds, HistogramBounds};
use crate::store::counters::CounterKind;
use crate::store::hashing::WordBuild;
use crate::store::overrides::{remove_tags, select_labels};
use crate::store::series::{Histogram, SeriesValues};

/// Picks one of a series' histograms.
type HistogramOf = fn(&SeriesValues) -> &Histogram;

/// Picks one histogram's bounds.
type BoundsOf = fn(&HistogramBounds) -> &Bounds;

/// The report's fields that do not come from the totals.
#[derive(Debug, Clone)]
pub struct ReportContext {
    pub proxy: Proxy,
    pub timestamp_ms: i64,
    pub sequence: u64,
    pub interval_ms: u32,
    pub enabled: EnabledMetrics,
    pub series_limit: u64,
    /// [`Report::channel`].
    pub channel: &'static str,
    /// Emit `istio_build{component="proxy",tag}` with this tag (one channel of a proxy does).
    pub build_tag: Option<String>,
    /// Labels to remove per family name (`overrides[].tags_to_remove`).
    pub tags_to_remove: Vec<(String, Vec<String>)>,
    /// Extra dimensions of the request families (`overrides[].tags`).
    pub dimensions: Dimensions,
    /// Bucket bounds of the request histograms (`histogram_buckets`).
    pub histogram_bounds: HistogramBounds,
}

/// The counter families built from [`CounterKind`] label sets: kind, enabled, name, help and
/// which of the [`crate::store::counters::CounterValues`] it reports.
type CounterFamily = (CounterKind, bool, &'static str, &'static str, usize);

fn counter_families(enabled: &EnabledMetrics) -> [CounterFamily; 6] {
    [
        (
            CounterKind::GrpcMessages,
            enabled.request_messages,
            REQUEST_MESSAGES,
            "Total number of gRPC request messages",
            0,
        ),
        (
            CounterKind::GrpcMessages,
            enabled.response_messages,
            RESPONSE_MESSAGES,
            "Total number of gRPC response messages",
            1,
        ),
        (
            CounterKind::Tcp,
            enabled.tcp_connections_opened,
            TCP_OPENED,
            "Total number of TCP connections opened",
            0,
        ),
        (
            CounterKind::Tcp,
            enabled.tcp_connections_closed,
            TCP_CLOSED,
            "Total number of TCP connections closed",
            1,
        ),
        (
            CounterKind::Tcp,
            enabled.tcp_sent_bytes,
            TCP_SENT_BYTES,
            "Total bytes sent to the downstream of TCP connections",
            2,
        ),
        (
            CounterKind::Tcp,
            enabled.tcp_received_bytes,
            TCP_RECEIVED_BYTES,
            "Total bytes received from the downstream of TCP connections",
            3,
        ),
    ]
}

fn label_names_of(kind: CounterKind) -> &'static [&'static str] {
    match kind {
        CounterKind::Tcp => &TCP_LABELS,
        CounterKind::GrpcMessages => &PEER_LABELS,
    }
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

/// The request histogram families: enabled, name, help, which histogram, which bounds.
fn request_histograms(
    enabled: &EnabledMetrics,
) -> [(bool, &'static str, &'static str, HistogramOf, BoundsOf); 3] {
    [
        (
            enabled.request_duration,
            REQUEST_DURATION,
            "Request duration in milliseconds",
            |v| &v.duration,
            HistogramBounds::duration,
        ),
        (
            enabled.request_bytes,
            REQUEST_BYTES,
            "Request size in bytes",
            |v| &v.request_bytes,
            HistogramBounds::request_bytes,
        ),
        (
            enabled.response_bytes,
            RESPONSE_BYTES,
            "Response size in bytes",
            |v| &v.response_bytes,
            HistogramBounds::response_bytes,
        ),
    ]
}

/// Builds the report of one leader turn. Label values go into the report's string table once;
/// every series references them (`Series.label_refs`).
pub fn build(ctx: ReportContext, collected: &Collected) -> Report {
    let totals = &collected.totals;
    let mut table = ReportStrings::default();
    let mut families = request_families(&ctx, totals, &mut table);
    families.extend(counter_families_of(&ctx.enabled, totals, &mut table));
    apply_overrides(&ctx, &mut families);
    if let Some(tag) = &ctx.build_tag {
        families.push(build_family(tag, &mut table));
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
            series_active: (totals.held_label_sets() + totals.held_counter_sets()) as u64,
            series_limit: ctx.series_limit,
            overflow_observations: totals
                .overflow_observations
                .saturating_add(totals.counter_overflow_additions),
            label_values_capped: totals.label_values_capped,
            worker_vms: collected.live_vms,
            retired_vms: collected.retired_vms,
            reports_failed: collected.reports_failed,
            series_evicted: collected.series_evicted,
            ..Default::default()
        }),
        strings: table.strings,
        channel: ctx.channel.to_string(),
        ..Default::default()
    }
}

/// The enabled request families (`istio_requests_total` and the three histograms), labelled
/// with the 25 labels and the extra dimensions as stored.
fn request_families<'a>(
    ctx: &ReportContext,
    totals: &'a MergedTotals,
    table: &mut ReportStrings<'a>,
) -> Vec<MetricFamily> {
    // Label sets stored with another number of extra dimensions (a configuration the proxy
    // ran before) do not fit these families.
    let width = LABEL_COUNT + ctx.dimensions.columns.len();
    let mut entries = totals.entries();
    entries.retain(|(labels, _)| labels.len() == width);
    let stored_names = stored_label_names(&ctx.dimensions);
    let refs: Vec<Vec<u32>> = entries
        .iter()
        .map(|(labels, _)| table.refs(labels))
        .collect();
    let mut families = Vec::new();
    let family = |name: &str, kind: MetricKind, help: &str, bounds: Vec<f64>| MetricFamily {
        name: name.to_string(),
        kind: kind as i32,
        help: help.to_string(),
        label_names: stored_names.clone(),
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
    for (enabled, name, help, pick, bounds_of) in request_histograms(&ctx.enabled) {
        if !enabled {
            continue;
        }
        let bounds = bounds_of(&ctx.histogram_bounds);
        let mut f = family(
            name,
            MetricKind::Histogram,
            help,
            bounds.as_slice().to_vec(),
        );
        for ((_, v), refs) in entries.iter().zip(&refs) {
            let h = pick(v);
            f.series.push(Series {
                label_refs: refs.clone(),
                bucket_counts: bounds.report_counts(&h.buckets),
                sum: h.sum as f64,
                ..Default::default()
            });
        }
        families.push(f);
    }
    families
}

/// The names of a stored request label set: Istio's 25, then the extra dimensions.
fn stored_label_names(dimensions: &Dimensions) -> Vec<String> {
    HTTP_LABELS
        .iter()
        .map(|s| s.to_string())
        .chain(dimensions.columns.iter().map(|c| c.name.clone()))
        .collect()
}

/// The enabled TCP and gRPC-message families that have series.
fn counter_families_of<'a>(
    enabled: &EnabledMetrics,
    totals: &'a MergedTotals,
    table: &mut ReportStrings<'a>,
) -> Vec<MetricFamily> {
    let counters = totals.counter_entries();
    let counter_refs: Vec<Vec<u32>> = counters
        .iter()
        .map(|(_, labels, _)| table.refs(labels))
        .collect();
    let mut families = Vec::new();
    for (kind, enabled, name, help, index) in counter_families(enabled) {
        let mut f = MetricFamily {
            name: name.to_string(),
            kind: MetricKind::Counter as i32,
            help: help.to_string(),
            label_names: label_names_of(kind).iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let values = counters.iter().zip(&counter_refs);
        for ((_, _, v), refs) in values.filter(|((k, _, _), _)| *k == kind) {
            f.series.push(Series {
                label_refs: refs.clone(),
                value: v[index] as f64,
                ..Default::default()
            });
        }
        if enabled && !f.series.is_empty() {
            families.push(f);
        }
    }
    families
}

/// Each request family's label layout with extra dimensions, then `tags_to_remove`.
fn apply_overrides(ctx: &ReportContext, families: &mut [MetricFamily]) {
    if !ctx.dimensions.is_empty() {
        let request_families = families
            .iter_mut()
            .filter(|f| REQUEST_FAMILIES.contains(&f.name.as_str()));
        for f in request_families {
            let (names, positions): (Vec<String>, Vec<usize>) =
                ctx.dimensions.layout(&f.name).into_iter().unzip();
            select_labels(f, names, &positions);
        }
    }
    for (name, tags) in &ctx.tags_to_remove {
        if let Some(f) = families.iter_mut().find(|f| &f.name == name) {
            remove_tags(f, tags);
        }
    }
}

/// `istio_build{component="proxy",tag}`.
fn build_family<'a>(tag: &'a str, table: &mut ReportStrings<'a>) -> MetricFamily {
    MetricFamily {
        name: BUILD.to_string(),
        kind: MetricKind::Gauge as i32,
        help: "Istio component build info".to_string(),
        label_names: vec!["component".to_string(), "tag".to_string()],
        series: vec![Series {
            label_refs: table.refs(&["proxy", tag]),
            value: 1.0,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::merge::MergedTotals;
    use crate::proxy::wire::TotalsPb;
    use crate::record::labels::LabelValues;
    use crate::store::aggregate::Aggregator;
    use crate::store::series::Observation;

    fn collected() -> Collected {
        let mut agg = Aggregator::new(10, EnabledMetrics::all());
        let mut l = LabelValues::default();
        l.0[0] = "source".into();
        for ms in [3, 40] {
            agg.record(
                &l,
                &[],
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
            eviction_applied: true,
            series_evicted: 6,
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
            channel: "",
            build_tag: None,
            tags_to_remove: Vec::new(),
            dimensions: Dimensions::default(),
            histogram_bounds: HistogramBounds::default(),
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
        assert_eq!(stats.series_evicted, 6);
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

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn counter_families_and_build_info() {
        let mut counters = crate::store::counters::CounterTotals::new(10);
        let tcp = vec!["t"; TCP_LABELS.len()];
        counters.add(CounterKind::Tcp, &tcp, &[3, 2, 100, 40]);
        let agg = Aggregator::new(10, EnabledMetrics::all());
        let mut totals = MergedTotals::new(10);
        totals.absorb(&TotalsPb::from_vm(&agg, &counters, 0));
        let collected = Collected {
            totals,
            ..collected()
        };
        let mut c = ctx(EnabledMetrics {
            tcp_sent_bytes: false,
            ..EnabledMetrics::all()
        });
        c.channel = meshtap_report::CHANNEL_TCP;
        c.build_tag = Some("1.24.1".into());
        c.tags_to_remove = vec![(
            TCP_OPENED.to_string(),
            vec!["reporter".to_string(), "tcp".to_string()],
        )];
        let r = build(c, &collected);
        meshtap_report::validate(&r).unwrap();
        assert_eq!(r.channel, "tcp");
        let names: Vec<_> = r.families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "istio_requests_total",
                "istio_request_duration_milliseconds",
                "istio_request_bytes",
                "istio_response_bytes",
                "istio_tcp_connections_opened_total",
                "istio_tcp_connections_closed_total",
                "istio_tcp_received_bytes_total",
                "istio_build"
            ],
            "no gRPC message family without gRPC series; sent bytes disabled"
        );
        let value = |name: &str| {
            let f = r.families.iter().find(|f| f.name == name).unwrap();
            (f.label_names.len(), f.series[0].value)
        };
        assert_eq!(value("istio_tcp_connections_opened_total"), (22, 3.0));
        assert_eq!(value("istio_tcp_connections_closed_total"), (23, 2.0));
        assert_eq!(value("istio_tcp_received_bytes_total"), (23, 40.0));
        assert_eq!(value("istio_build"), (2, 1.0));
        let back = meshtap_report::decode(&meshtap_report::encode(&r), 1 << 20).unwrap();
        let build = back.families.last().unwrap();
        assert_eq!(build.series[0].label_values, ["proxy", "1.24.1"]);
        assert_eq!(r.stats.unwrap().series_active, 1);
    }

    #[cfg_attr(not(target_arch = "wasm32"), test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    fn extra_dimensions_and_custom_bounds_shape_each_request_family() {
        let bounds = HistogramBounds([
            Bounds::new(&[5.0, 50.0]).unwrap(),
            Bounds::default(),
            Bounds::default(),
        ]);
        let mut agg = Aggregator::configured(10, EnabledMetrics::all(), bounds.clone(), 2);
        let l = LabelValues::default();
        for (user, host, ms) in [("alice", "x", 3), ("bob", "x", 70), ("alice", "y", 40)] {
            let extra = [user.to_string(), host.to_string()];
            let o = Observation {
                duration_ms: ms,
                ..Default::default()
            };
            agg.record(&l, &extra, o);
        }
        let mut totals = MergedTotals::new(10);
        totals.absorb(&TotalsPb::from_aggregator(&agg));
        let collected = Collected {
            totals,
            ..collected()
        };
        let mut c = ctx(EnabledMetrics::all());
        c.dimensions
            .upsert(REQUESTS_TOTAL, "user", "request.headers['x-user']")
            .unwrap();
        c.dimensions
            .upsert(REQUEST_DURATION, "destination_service", "request.host")
            .unwrap();
        c.histogram_bounds = bounds;
        let r = build(c, &collected);
        meshtap_report::validate(&r).unwrap();
        let r = meshtap_report::decode(&meshtap_report::encode(&r), 1 << 20).unwrap();
        let total = &r.families[0];
        assert_eq!(total.label_names.len(), 26);
        assert_eq!(total.label_names[25], "user");
        let by_user: Vec<_> = total
            .series
            .iter()
            .map(|s| (s.label_values[25].as_str(), s.value))
            .collect();
        assert_eq!(by_user, [("alice", 2.0), ("bob", 1.0)]);
        let duration = &r.families[1];
        assert_eq!(
            duration.label_names, HTTP_LABELS,
            "upserted, nothing appended"
        );
        assert_eq!(duration.bounds, [5.0, 50.0]);
        let by_host: Vec<_> = duration
            .series
            .iter()
            .map(|s| (s.label_values[14].as_str(), s.bucket_counts.clone()))
            .collect();
        assert_eq!(by_host, [("x", vec![1, 0, 1]), ("y", vec![0, 1, 0])]);
        assert_eq!(r.families[2].label_names.len(), 25, "no extra label");
        assert_eq!(r.families[2].series.len(), 1, "extras summed away");
        assert_eq!(r.families[2].bounds.len(), 19);
    }
}

//! Criterion benchmark of the filter's per-request path without a host: Istio label computation
//! from plain [`RequestFacts`] plus aggregation into the VM's totals (prints ns/request), and of
//! one leader turn (merge of worker snapshots, report build and encoding).

use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use meshtap_filter::config::EnabledMetrics;
use meshtap_filter::proxy::{Collected, MergedTotals, TotalsPb};
use meshtap_filter::record::{
    compute, ClusterServices, LabelRules, LabelValues, LocalNode, PeerInfo, RequestFacts,
};
use meshtap_filter::report::{self, ReportContext};
use meshtap_filter::store::{Aggregator, Observation};
use meshtap_report::schema::Reporter;
use prost::Message;

fn local() -> LocalNode {
    LocalNode::read(|p| {
        let v = match p {
            ["node", "metadata", "WORKLOAD_NAME"] => "productpage-v1",
            ["node", "metadata", "NAMESPACE"] => "default",
            ["node", "metadata", "NAME"] => "productpage-v1-84975bc778-pxz2w",
            ["node", "metadata", "CLUSTER_ID"] => "Kubernetes",
            ["node", "metadata", "LABELS", "app"] => "productpage",
            ["node", "metadata", "LABELS", "version"] => "v1",
            ["node", "metadata", "LABELS", "service.istio.io/canonical-name"] => "productpage",
            ["node", "metadata", "LABELS", "service.istio.io/canonical-revision"] => "v1",
            _ => return None,
        };
        Some(v.to_string())
    })
}

fn peers(n: usize) -> Vec<(PeerInfo, ClusterServices)> {
    (0..n)
        .map(|i| {
            let peer = PeerInfo {
                workload: format!("reviews-v{i}"),
                namespace: "default".into(),
                cluster: "Kubernetes".into(),
                canonical_service: "reviews".into(),
                canonical_revision: format!("v{i}"),
                app: "reviews".into(),
                version: format!("v{i}"),
                identity: String::new(),
            };
            let services = ClusterServices {
                host: "reviews.default.svc.cluster.local".into(),
                name: "reviews".into(),
                namespace: "default".into(),
            };
            (peer, services)
        })
        .collect()
}

fn request_path(c: &mut Criterion) {
    let local = local();
    let destinations = peers(8);
    let codes = [200i64, 200, 200, 404, 503];
    let rules = LabelRules {
        reporter: Reporter::Source,
        host_header_fallback: true,
    };
    let mut agg = Aggregator::new(10_000, EnabledMetrics::all());
    let mut scratch = LabelValues::default();
    let mut i = 0usize;
    let mut one = |agg: &mut Aggregator, scratch: &mut LabelValues| {
        let (peer, services) = &destinations[i % destinations.len()];
        let duration_ns = 3_400_000 + (i as i64 % 1000) * 10_000;
        let facts = RequestFacts {
            cluster_name: Some("outbound|9080||reviews.default.svc.cluster.local"),
            services: Some(services),
            upstream_peer: Some(peer),
            upstream_peer_san: "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
            upstream_local_san: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
            response_code: Some(codes[i % codes.len()]),
            ..Default::default()
        };
        compute(&local, rules, &facts, scratch);
        let obs = Observation::from_raw(duration_ns, 700, 2_400);
        black_box(agg.record(scratch, &[], obs));
        i += 1;
    };

    // A plain measurement for the report, then criterion's.
    let n = 200_000;
    let start = Instant::now();
    for _ in 0..n {
        one(&mut agg, &mut scratch);
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "request path (labels + aggregation): {ns:.0} ns/request over {n} requests, {} series",
        agg.series_count()
    );

    c.bench_function("labels+aggregate", |b| {
        b.iter(|| one(&mut agg, &mut scratch))
    });

    let (peer, services) = &destinations[0];
    let facts = RequestFacts {
        services: Some(services),
        upstream_peer: Some(peer),
        response_code: Some(200),
        ..Default::default()
    };
    c.bench_function("labels only", |b| {
        b.iter(|| compute(&local, rules, black_box(&facts), &mut scratch))
    });
    let obs = Observation::from_raw(3_400_000, 700, 2_400);
    c.bench_function("aggregate only (known label set)", |b| {
        b.iter(|| agg.record(black_box(&scratch), &[], obs))
    });
}

/// One leader turn without a host: decode 4 worker snapshots of `SERIES` label sets each
/// (largely overlapping), merge them, build the report and encode it.
fn leader_turn(c: &mut Criterion) {
    const SERIES: usize = 2_000;
    let local = local();
    let destinations = peers(SERIES);
    let rules = LabelRules {
        reporter: Reporter::Source,
        host_header_fallback: true,
    };
    let snapshots: Vec<Vec<u8>> = (0..4)
        .map(|vm| {
            let mut agg = Aggregator::new(10_000, EnabledMetrics::all());
            let mut scratch = LabelValues::default();
            for (i, (peer, services)) in destinations.iter().enumerate() {
                let facts = RequestFacts {
                    services: Some(services),
                    upstream_peer: Some(peer),
                    response_code: Some(if (i + vm) % 7 == 0 { 503 } else { 200 }),
                    ..Default::default()
                };
                compute(&local, rules, &facts, &mut scratch);
                agg.record(&scratch, &[], Observation::from_raw(2_000_000, 500, 900));
            }
            TotalsPb::from_aggregator(&agg).encode_to_vec()
        })
        .collect();
    let (mut report_bytes, mut raw_bytes) = (0, 0);
    c.bench_function(
        "leader turn: merge 4 VMs x 2000 series, build, encode",
        |b| {
            b.iter(|| {
                let mut totals = MergedTotals::new(10_000);
                for s in &snapshots {
                    if let Ok(t) = TotalsPb::decode(s.as_slice()) {
                        totals.absorb(&t);
                    }
                }
                let collected = Collected {
                    totals,
                    start_ms: 0,
                    live_vms: 4,
                    retired_vms: 0,
                    reports_failed: 0,
                    newly_retired: 0,
                    eviction_applied: true,
                    series_evicted: 0,
                };
                let ctx = ReportContext {
                    proxy: local.proxy(),
                    timestamp_ms: 1,
                    sequence: 1,
                    interval_ms: 10_000,
                    enabled: EnabledMetrics::all(),
                    series_limit: 10_000,
                    channel: meshtap_report::CHANNEL_HTTP,
                    build_tag: Some("1.24.0".into()),
                    tags_to_remove: Vec::new(),
                    dimensions: Default::default(),
                    histogram_bounds: Default::default(),
                };
                let built = report::build(ctx, &collected);
                raw_bytes = built.encoded_len();
                let body = meshtap_report::encode(&built);
                report_bytes = body.len();
                black_box(body)
            })
        },
    );
    println!(
        "leader turn: snapshot {} bytes per VM, report {} bytes of protobuf, body {} bytes (snappy)",
        snapshots[0].len(),
        raw_bytes,
        report_bytes
    );
}

criterion_group!(benches, request_path, leader_turn);
criterion_main!(benches);

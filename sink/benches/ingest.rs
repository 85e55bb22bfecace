//! Ingest throughput: samples per second from a compressed report to the compressed
//! remote-write body (`meshtap_sink::bench`), beside the floor of prost-encoding and
//! compressing the same series alone. Prints both rates and their ratio, and each stage alone:
//! `encode` (the whole uncompressed request) and `snappy` (of that request) apart, then
//! `encode+snappy` as the pipeline runs them (each 64 KiB block compressed as it is written).

use std::time::Duration;

use criterion::{black_box, Criterion, Throughput};
use meshtap_remotewrite::encoder::{compress_into, RequestEncoder};
use meshtap_remotewrite::sample::ExportSample;
use meshtap_report::schema::{
    DEFAULT_BUCKETS, HTTP_LABELS, REQUESTS_TOTAL, REQUEST_BYTES, REQUEST_DURATION, RESPONSE_BYTES,
};
use meshtap_report::{encode, MetricFamily, MetricKind, Proxy, Report, Series};
use meshtap_sink::bench::{floor_encode, IngestBench};
use meshtap_sink::ingest::report_to_samples;

#[path = "shared/cpu_rate.rs"]
mod cpu_rate;

use cpu_rate::{per_cpu, rate};

/// A busy pod: `n` label sets, each with a counter and three histograms (Istio's HTTP metrics).
fn busy_report(n: usize) -> Report {
    let label_values = |i: usize| -> Vec<String> {
        HTTP_LABELS
            .iter()
            .enumerate()
            .map(|(j, name)| match *name {
                "reporter" => "destination".to_owned(),
                "response_code" => ["200", "404", "503"][i % 3].to_owned(),
                "source_version" => String::new(),
                "destination_service" => format!("svc-{}.default.svc.cluster.local", i % 17),
                "source_workload" => format!("client-{}", i / 3),
                _ => format!("value-{j}"),
            })
            .collect()
    };
    let histogram = |name: &str| MetricFamily {
        name: name.to_owned(),
        kind: MetricKind::Histogram as i32,
        help: String::new(),
        label_names: HTTP_LABELS.iter().map(|s| s.to_string()).collect(),
        bounds: DEFAULT_BUCKETS.to_vec(),
        series: (0..n)
            .map(|i| Series {
                label_values: label_values(i),
                bucket_counts: (0..=DEFAULT_BUCKETS.len() as u64)
                    .map(|b| (b * 7 + i as u64) % 13)
                    .collect(),
                sum: 1234.5 + i as f64,
                ..Default::default()
            })
            .collect(),
    };
    Report {
        protocol_version: meshtap_report::PROTOCOL_VERSION,
        proxy: Some(Proxy {
            namespace: "default".into(),
            pod: "reviews-v1-5d8f7b9c4-abcde".into(),
            instance_ips: vec!["10.1.2.3".into()],
            ..Default::default()
        }),
        proxy_start_ms: 1_700_000_000_000,
        timestamp_ms: 1_700_000_100_000,
        sequence: 10,
        interval_ms: 10_000,
        families: vec![
            MetricFamily {
                name: REQUESTS_TOTAL.to_owned(),
                kind: MetricKind::Counter as i32,
                help: String::new(),
                label_names: HTTP_LABELS.iter().map(|s| s.to_string()).collect(),
                bounds: vec![],
                series: (0..n)
                    .map(|i| Series {
                        label_values: label_values(i),
                        value: 100.0 + i as f64,
                        ..Default::default()
                    })
                    .collect(),
            },
            histogram(REQUEST_DURATION),
            histogram(REQUEST_BYTES),
            histogram(RESPONSE_BYTES),
        ],
        ..Default::default()
    }
}

fn main() {
    let report = busy_report(200);
    let body = encode(&report);
    let mut pipeline = IngestBench::default();
    let (samples, _) = pipeline.ingest_to_remote_write(&body);
    let request = pipeline.as_write_request(&report);
    let mut compressor = snap::raw::Encoder::new();
    let mut out = Vec::new();

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    {
        let mut group = c.benchmark_group("ingest");
        group.throughput(Throughput::Elements(samples as u64));
        group.bench_function("report_to_remote_write", |b| {
            b.iter(|| black_box(pipeline.ingest_to_remote_write(black_box(&body))))
        });
        group.bench_function("floor_prost_encode_snappy", |b| {
            b.iter(|| black_box(floor_encode(black_box(&request), &mut compressor, &mut out)))
        });
        group.finish();
    }
    c.final_summary();

    let budget = Duration::from_secs(2);
    let ours = rate(samples, budget, || {
        black_box(pipeline.ingest_to_remote_write(&body));
    });
    let floor = rate(samples, budget, || {
        black_box(floor_encode(&request, &mut compressor, &mut out));
    });
    // Where the time goes, stage by stage (samples per second of each stage alone).
    let job = std::sync::Arc::from("integrations/istio");
    let converted: Vec<ExportSample> = report_to_samples(&report, &job)
        .iter()
        .map(ExportSample::from)
        .collect();
    let external = vec![("cluster".to_owned(), "bench".to_owned())];
    let mut encoder = RequestEncoder::new();
    let raw = encoder.encode_raw(&converted, &external).to_vec();
    let stages = [
        (
            "decode+validate",
            rate(samples, budget, || {
                let r = meshtap_report::decode(&body, 64 << 20).unwrap();
                meshtap_report::validate(&r).unwrap();
                black_box(r);
            }),
        ),
        (
            "convert",
            rate(samples, budget, || {
                black_box(report_to_samples(&report, &job));
            }),
        ),
        (
            "encode",
            rate(samples, budget, || {
                black_box(encoder.encode_raw(&converted, &external).len());
            }),
        ),
        (
            "snappy",
            rate(samples, budget, || {
                black_box(compress_into(&mut compressor, &raw, &mut out).len());
            }),
        ),
        (
            "encode+snappy",
            rate(samples, budget, || {
                black_box(encoder.encode(&converted, &external).len());
            }),
        ),
    ];
    for (stage, (wall, cpu)) in stages {
        println!(
            "ingest stage {stage:<16} {:.2} M samples/s wall, {} M samples/CPU-s",
            wall / 1e6,
            per_cpu(cpu)
        );
    }
    let (ours_wall, ours_cpu) = ours;
    let (floor_wall, floor_cpu) = floor;
    println!(
        "ingest: {samples} samples/report, {} raw bytes/sample; pipeline {:.2} M samples/s wall ({} M/CPU-s), \
         floor {:.2} M samples/s wall ({} M/CPU-s); pipeline time / floor time = {:.2} \
         (target >= 2 M samples/s/core and <= 2)",
        raw.len() / samples,
        ours_wall / 1e6,
        per_cpu(ours_cpu),
        floor_wall / 1e6,
        per_cpu(floor_cpu),
        floor_wall / ours_wall
    );
}

//! Parse throughput over a generated 15020-like body: istio-agent Go metrics, Envoy cluster
//! stats with `name{}` series, and about 2,000 Istio HTTP series (a counter and three
//! 20-bucket histograms per label set, 25 labels each). Measures the event parser alone and
//! the family-aware reader walking every normalised label, and prints MB/s and samples/s.

use std::fmt::Write as _;
use std::time::Instant;

use criterion::{black_box, Criterion, Throughput};
use meshtap_report::schema::{DEFAULT_BUCKETS, HTTP_LABELS};
use meshtap_textformat::{canonical_float, Event, Format, Parser, TypedSamples};

/// Istio label sets in the generated body (each gives 1 + 3 * 22 = 67 series).
const LABEL_SETS: usize = 30;

fn label_value(name: &str, set: usize) -> String {
    let peer = set % 6;
    match name {
        "reporter" => "destination".into(),
        "source_workload" | "source_app" | "source_canonical_service" => format!("client-{peer}"),
        "source_principal" => format!("spiffe://cluster.local/ns/shop/sa/client-{peer}"),
        "destination_principal" => "spiffe://cluster.local/ns/shop/sa/cart".into(),
        "destination_service" => "cart.shop.svc.cluster.local".into(),
        "response_code" => ["200", "404", "503", "201", "500"][set / 6].into(),
        "grpc_response_status" => String::new(),
        "response_flags" => "-".into(),
        "request_protocol" => "http".into(),
        "connection_security_policy" => "mutual_tls".into(),
        "source_cluster" | "destination_cluster" => "Kubernetes".into(),
        "source_version"
        | "destination_version"
        | "source_canonical_revision"
        | "destination_canonical_revision" => "v1".into(),
        _ => "shop".into(),
    }
}

/// A 15020-like body and its number of samples.
fn merged_body() -> (String, u64) {
    let mut body = String::new();
    let mut samples = 0u64;
    for i in 0..40 {
        writeln!(
            body,
            "# HELP istio_agent_go_metric_{i} A Go runtime metric of the agent."
        )
        .unwrap();
        writeln!(body, "# TYPE istio_agent_go_metric_{i} gauge").unwrap();
        writeln!(body, "istio_agent_go_metric_{i} {}", 1.5e6 + f64::from(i)).unwrap();
        samples += 1;
    }
    for i in 0..100 {
        writeln!(body, "# TYPE envoy_cluster_stat_{i} counter").unwrap();
        for cluster in [
            "xds-grpc",
            "outbound|9080||cart.shop.svc.cluster.local",
            "inbound|8080||",
        ] {
            writeln!(
                body,
                "envoy_cluster_stat_{i}{{cluster_name=\"{cluster}\"}} {}",
                i * 7
            )
            .unwrap();
            samples += 1;
        }
        writeln!(
            body,
            "# TYPE envoy_server_stat_{i} gauge\nenvoy_server_stat_{i}{{}} {i}"
        )
        .unwrap();
        samples += 1;
    }
    let label_sets: Vec<String> = (0..LABEL_SETS)
        .map(|set| {
            HTTP_LABELS
                .iter()
                .map(|name| format!("{name}=\"{}\"", label_value(name, set)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    writeln!(body, "# TYPE istio_requests_total counter").unwrap();
    for (set, labels) in label_sets.iter().enumerate() {
        writeln!(body, "istio_requests_total{{{labels}}} {}", 100 + set).unwrap();
        samples += 1;
    }
    for family in [
        "istio_request_duration_milliseconds",
        "istio_request_bytes",
        "istio_response_bytes",
    ] {
        writeln!(body, "# TYPE {family} histogram").unwrap();
        for labels in &label_sets {
            for (i, le) in DEFAULT_BUCKETS.iter().enumerate() {
                let le = canonical_float(*le);
                writeln!(body, "{family}_bucket{{{labels},le=\"{le}\"}} {}", i * 3).unwrap();
            }
            writeln!(body, "{family}_bucket{{{labels},le=\"+Inf\"}} 60").unwrap();
            writeln!(
                body,
                "{family}_sum{{{labels}}} 12345.5\n{family}_count{{{labels}}} 60"
            )
            .unwrap();
            samples += DEFAULT_BUCKETS.len() as u64 + 3;
        }
    }
    (body, samples)
}

fn parse_events(body: &[u8]) -> f64 {
    let mut total = 0.0;
    for event in Parser::new(body, Format::PrometheusText) {
        if let Ok(Event::Sample(sample)) = event {
            total += sample.value;
        }
    }
    total
}

fn parse_typed_with_labels(body: &[u8]) -> usize {
    let mut label_bytes = 0;
    for sample in TypedSamples::new(Parser::new(body, Format::PrometheusText)).flatten() {
        for (name, value) in sample.normalized_labels() {
            label_bytes += name.len() + value.len();
        }
    }
    label_bytes
}

/// Times `runs` parses and prints the rates.
fn print_rates(what: &str, body: &[u8], samples: u64, parse: impl Fn(&[u8])) {
    let runs = 50;
    let start = Instant::now();
    for _ in 0..runs {
        parse(black_box(body));
    }
    let seconds = start.elapsed().as_secs_f64();
    let mb_per_s = (body.len() * runs) as f64 / seconds / 1e6;
    let samples_per_s = (samples * runs as u64) as f64 / seconds;
    println!(
        "{what}: {mb_per_s:.0} MB/s, {:.2} M samples/s",
        samples_per_s / 1e6
    );
}

fn main() {
    let (body, samples) = merged_body();
    let body = body.as_bytes();
    let parsed = Parser::new(body, Format::PrometheusText)
        .filter(|e| matches!(e, Ok(Event::Sample(_))))
        .count() as u64;
    assert_eq!(parsed, samples, "generated body must parse cleanly");
    println!(
        "body: {} bytes, {samples} samples ({} Istio series)",
        body.len(),
        LABEL_SETS * (1 + 3 * (DEFAULT_BUCKETS.len() + 3))
    );

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("parse_bytes");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("events", |b| b.iter(|| parse_events(black_box(body))));
    group.bench_function("typed_labels", |b| {
        b.iter(|| parse_typed_with_labels(black_box(body)))
    });
    group.finish();
    let mut group = criterion.benchmark_group("parse_samples");
    group.throughput(Throughput::Elements(samples));
    group.bench_function("events", |b| b.iter(|| parse_events(black_box(body))));
    group.finish();
    criterion.final_summary();

    print_rates("events", body, samples, |b| {
        black_box(parse_events(b));
    });
    print_rates("typed + normalised labels", body, samples, |b| {
        black_box(parse_typed_with_labels(b));
    });
}

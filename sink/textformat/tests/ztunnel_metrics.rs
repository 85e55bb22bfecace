//! ztunnel's `:15020/metrics` body (prometheus-client's OpenMetrics text, served under either
//! Content-Type) through the family layer: the reference body from `../shared/reference/ambient`
//! when present, and hostile variations of a small body in the same shape. Expected families,
//! types and label names come from the notes (`istio-ambient.md` §1.2–1.4, i.e. ztunnel's
//! `src/proxy/metrics.rs` `CommonTrafficLabels` and the registries of `src/app.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use meshtap_textformat::{Format, MetricKind, Parser, TypedSamples};

/// ztunnel's `istio_tcp_*` label names in encoding order, with the four locality labels.
const TCP_LABELS: [&str; 27] = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_service",
    "destination_service_namespace",
    "destination_service_name",
    "destination_workload",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    "source_region",
    "source_zone",
    "destination_region",
    "destination_zone",
];

/// family → (kind, label names of its samples (`le` left out), sample count).
type Shape = BTreeMap<String, (MetricKind, Vec<Vec<String>>, usize)>;

/// Parses `body` as `format`: the shape by family, and the number of lines skipped.
fn shape(body: &[u8], format: Format) -> (Shape, u64) {
    let mut reader = TypedSamples::new(Parser::new(body, format));
    let mut shape = Shape::new();
    for item in reader.by_ref() {
        let Ok(typed) = item else { continue };
        let names: Vec<String> = typed
            .sample
            .labels
            .iter()
            .map(|l| l.name.to_owned())
            .filter(|n| n != "le")
            .collect();
        let entry = shape
            .entry(typed.family.to_owned())
            .or_insert((typed.kind, Vec::new(), 0));
        assert_eq!(entry.0, typed.kind, "{}: one kind per family", typed.family);
        if !entry.1.contains(&names) {
            entry.1.push(names);
        }
        entry.2 += 1;
    }
    (shape, reader.stats().bad_lines)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn reference_body() -> Option<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference/ambient/ztunnel-15020-metrics.txt");
    match std::fs::read(&path) {
        Ok(body) => Some(body),
        Err(_) => {
            eprintln!("skipped: no reference body at {}", path.display());
            None
        }
    }
}

#[test]
fn the_reference_body_has_ztunnels_families_typed_under_either_content_type() {
    let Some(body) = reference_body() else { return };
    let (om, bad) = shape(&body, Format::OpenMetrics);
    assert_eq!(bad, 0);
    // The text/plain Content-Type must not lose the counter types (`_total` samples under a
    // `# TYPE <name> counter` line without `_total`).
    let (text, bad) = shape(&body, Format::PrometheusText);
    assert_eq!(bad, 0);
    assert_eq!(om, text);
    assert_eq!(om.len(), 25, "{:#?}", om.keys());
    assert_eq!(om.values().map(|f| f.2).sum::<usize>(), 71);

    let tcp = names(&TCP_LABELS);
    for family in [
        "istio_tcp_connections_opened",
        "istio_tcp_connections_closed",
        "istio_tcp_connections_failed",
        "istio_tcp_received_bytes",
        "istio_tcp_sent_bytes",
    ] {
        let (kind, label_sets, _) = &om[family];
        assert_eq!(*kind, MetricKind::Counter, "{family}");
        assert_eq!(label_sets, std::slice::from_ref(&tcp), "{family}");
    }
    let expect = |family: &str, kind: MetricKind, labels: &[&str]| {
        let (got_kind, label_sets, _) = &om[family];
        assert_eq!(*got_kind, kind, "{family}");
        assert_eq!(label_sets, &[names(labels)], "{family}");
    };
    let dns = [
        "request_query_type",
        "request_protocol",
        "source_canonical_service",
        "source_canonical_revision",
    ];
    expect("istio_tcp_sockets_open", MetricKind::Gauge, &["reporter"]);
    expect("istio_build", MetricKind::Gauge, &["component", "tag"]);
    expect(
        "istio_xds_connection_terminations",
        MetricKind::Counter,
        &["reason"],
    );
    expect("istio_xds_message", MetricKind::Counter, &["url"]);
    expect("istio_xds_message_bytes", MetricKind::Counter, &["url"]);
    expect("istio_dns_requests", MetricKind::Counter, &dns);
    expect(
        "istio_dns_upstream_request_duration_seconds",
        MetricKind::Histogram,
        &dns,
    );
    expect(
        "workload_manager_active_proxy_count",
        MetricKind::Gauge,
        &[],
    );
    expect(
        "workload_manager_pending_proxy_count",
        MetricKind::Gauge,
        &[],
    );
    expect("process_open_fds", MetricKind::Gauge, &[]);
    expect("process_max_fds", MetricKind::Gauge, &[]);
    expect(
        "tokio_worker_total_busy_duration_seconds",
        MetricKind::Counter,
        &["worker"],
    );
}

/// A small body in ztunnel's shape: HELP/TYPE/UNIT, `_total` counters, a `le`-first histogram
/// with sum/count before the buckets, a label-less gauge, `# EOF`.
const BODY: &str = "\
# HELP istio_build Istio component build info.
# TYPE istio_build gauge
istio_build{component=\"ztunnel\",tag=\"1.31.0\"} 1
# HELP istio_tcp_connections_opened The total number of TCP connections opened.
# TYPE istio_tcp_connections_opened counter
istio_tcp_connections_opened_total{reporter=\"source\",source_workload=\"curl\"} 4
# HELP istio_xds_message_bytes Total number of bytes received (unstable).
# TYPE istio_xds_message_bytes counter
# UNIT istio_xds_message_bytes bytes
istio_xds_message_bytes_total{url=\"type.googleapis.com/istio.workload.Address\"} 1894213
# HELP istio_dns_upstream_request_duration_seconds Total time (unstable).
# TYPE istio_dns_upstream_request_duration_seconds histogram
# UNIT istio_dns_upstream_request_duration_seconds seconds
istio_dns_upstream_request_duration_seconds_sum{request_query_type=\"a\"} 0.0778
istio_dns_upstream_request_duration_seconds_count{request_query_type=\"a\"} 12
istio_dns_upstream_request_duration_seconds_bucket{le=\"0.0005\",request_query_type=\"a\"} 0
istio_dns_upstream_request_duration_seconds_bucket{le=\"1.0\",request_query_type=\"a\"} 12
istio_dns_upstream_request_duration_seconds_bucket{le=\"+Inf\",request_query_type=\"a\"} 12
# HELP workload_manager_active_proxy_count The total number current workloads with active proxies (unstable).
# TYPE workload_manager_active_proxy_count gauge
workload_manager_active_proxy_count 6
# EOF
";

fn kinds(body: &str, format: Format) -> (BTreeMap<String, (MetricKind, usize)>, u64) {
    let (shape, bad) = shape(body.as_bytes(), format);
    let kinds = shape
        .into_iter()
        .map(|(f, (k, _, n))| (f, (k, n)))
        .collect();
    (kinds, bad)
}

fn expected_kinds() -> BTreeMap<String, (MetricKind, usize)> {
    [
        ("istio_build", MetricKind::Gauge, 1),
        ("istio_tcp_connections_opened", MetricKind::Counter, 1),
        ("istio_xds_message_bytes", MetricKind::Counter, 1),
        (
            "istio_dns_upstream_request_duration_seconds",
            MetricKind::Histogram,
            5,
        ),
        ("workload_manager_active_proxy_count", MetricKind::Gauge, 1),
    ]
    .into_iter()
    .map(|(f, k, n)| (f.to_string(), (k, n)))
    .collect()
}

#[test]
fn the_small_body_parses_the_same_under_both_content_types() {
    for format in [Format::OpenMetrics, Format::PrometheusText] {
        assert_eq!(kinds(BODY, format), (expected_kinds(), 0), "{format:?}");
    }
}

#[test]
fn a_body_cut_before_eof_keeps_what_it_has() {
    let cut = BODY.strip_suffix("# EOF\n").unwrap();
    assert_eq!(kinds(cut, Format::OpenMetrics), (expected_kinds(), 0));
}

#[test]
fn a_duplicated_help_line_does_not_retype_or_drop_the_family() {
    let doubled = BODY.replace(
        "# TYPE istio_tcp_connections_opened counter\n",
        "# TYPE istio_tcp_connections_opened counter\n# HELP istio_tcp_connections_opened Again.\n",
    );
    let (got, _) = kinds(&doubled, Format::OpenMetrics);
    assert_eq!(got, expected_kinds());
}

#[test]
fn help_only_families_of_older_ztunnels_yield_no_samples() {
    // ztunnel ≤ 1.29.2 printed HELP/TYPE for families without series.
    let empty = BODY.replace(
        "# EOF\n",
        "# HELP istio_on_demand_dns Number of requests for on-demand dns (unstable).\n# TYPE istio_on_demand_dns counter\n# EOF\n",
    );
    assert_eq!(kinds(&empty, Format::PrometheusText), (expected_kinds(), 0));
}

/// The parser keeps reading after `# EOF` (pilot-agent's 15020 merge concatenates bodies) and
/// counts those lines, so a scraper can tell.
#[test]
fn samples_after_eof_are_read_and_counted() {
    let appended = format!("{BODY}istio_build{{component=\"other\",tag=\"x\"}} 1\n");
    let mut reader = TypedSamples::new(Parser::new(appended.as_bytes(), Format::OpenMetrics));
    let taken = reader.by_ref().filter(Result::is_ok).count();
    assert_eq!(taken, 10);
    assert_eq!(reader.stats().lines_after_eof, 1);
}

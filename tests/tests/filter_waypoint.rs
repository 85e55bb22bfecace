//! The compiled filter on an ambient waypoint, in the host: with only the waypoint's node
//! metadata to go by (no `reporter` in the `pluginConfig`), each request is recorded once with
//! `reporter="waypoint"` and exactly the 25 labels Istio's stats filter gives at a waypoint, and a
//! TCP service's connection gets the waypoint's 23 TCP labels. Expected label values are copied
//! from Istio's templates `istio/proxy:testdata/metric/server_waypoint_proxy_connect_*.yaml.tmpl`
//! (`/work/shared/reference/istio-proxy-testdata-metric/`), whose inputs `waypoint_call` feeds.

#[path = "waypoint_call/mod.rs"]
mod waypoint_call;

use std::net::SocketAddr;
use std::time::Duration;

use meshtap_report::schema::{
    HTTP_LABELS, REQUESTS_TOTAL, REQUEST_BYTES, REQUEST_DURATION, RESPONSE_BYTES, TCP_CLOSED,
    TCP_LABELS, TCP_OPENED, TCP_RECEIVED_BYTES, TCP_SENT_BYTES,
};
use meshtap_report::{MetricFamily, Report};
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::{Clock, NodeInfo, PluginSpec, Proxy, ProxyConfig, Traffic, VmStatus};
use meshtap_tests::sim::ReportReceiver;
use waypoint_call::{waypoint_connection, waypoint_node, waypoint_request, WaypointPeers};

const SINK_CLUSTER: &str = "outbound|9091||meshtap-sink.meshtap.svc.cluster.local";

/// `server_waypoint_proxy_connect_request_total.yaml.tmpl`, label by label (`http`, no gRPC).
const TEMPLATE_REQUEST_LABELS: [&str; 25] = [
    "waypoint",
    "productpage-v1",
    "unknown",
    "latest",
    "default",
    "spiffe://cluster.local/ns/default/sa/client",
    "unknown",
    "unknown",
    "unknown",
    "ratings-v1",
    "default",
    "spiffe://cluster.global/ns/default/sa/ratings",
    "ratings",
    "version-1",
    "server.default.svc.cluster.local",
    "ratings",
    "version-1",
    "server",
    "default",
    "ratings-cluster",
    "http",
    "200",
    "",
    "-",
    "mutual_tls",
];

/// `server_waypoint_proxy_connect_emptymeta_request_total.yaml.tmpl`.
const EMPTYMETA_REQUEST_LABELS: [&str; 25] = [
    "waypoint",
    "productpage-v1",
    "unknown",
    "latest",
    "default",
    "spiffe://cluster.local/ns/default/sa/client",
    "unknown",
    "unknown",
    "unknown",
    "unknown",
    "default",
    "spiffe://cluster.local/ns/default/sa/default",
    "unknown",
    "unknown",
    "server.default.svc.cluster.local",
    "unknown",
    "unknown",
    "server",
    "default",
    "unknown",
    "http",
    "200",
    "",
    "-",
    "mutual_tls",
];

/// `server_waypoint_proxy_connect_connections_opened_total.yaml.tmpl`.
const TEMPLATE_TCP_LABELS: [&str; 23] = [
    "waypoint",
    "productpage-v1",
    "unknown",
    "latest",
    "default",
    "spiffe://cluster.local/ns/default/sa/client",
    "unknown",
    "unknown",
    "unknown",
    "ratings-v1",
    "default",
    "spiffe://cluster.global/ns/default/sa/ratings",
    "ratings",
    "version-1",
    "server.default.svc.cluster.local",
    "ratings",
    "version-1",
    "server",
    "default",
    "ratings-cluster",
    "tcp",
    "-",
    "mutual_tls",
];

fn start(node: NodeInfo, http_config: &str, sink: SocketAddr) -> Proxy {
    let config = ProxyConfig {
        plugin_config: http_config.to_string(),
        node,
        workers: 2,
        clock: Clock::manual_now(),
        clusters: vec![(SINK_CLUSTER.to_string(), sink)],
        extra_plugins: vec![PluginSpec {
            root_id: "meshtap-tcp".into(),
            plugin_name: "meshtap-tcp".into(),
            plugin_config: r#"{"type": "NETWORK"}"#.into(),
            traffic: Traffic::Network,
        }],
        ..ProxyConfig::default()
    };
    Proxy::start(shared_module(), config).unwrap()
}

fn receiver() -> ReportReceiver {
    ReportReceiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), None, false).unwrap()
}

/// The family `name` of the latest report that has series of it. The HTTP and the NETWORK
/// plugin report on their own channels, each with its own sequence, and a channel's report may
/// list a family it never records.
fn latest_family(reports: &[Report], name: &str) -> MetricFamily {
    let mut reports: Vec<&Report> = reports.iter().collect();
    reports.sort_by_key(|r| std::cmp::Reverse(r.sequence));
    reports
        .into_iter()
        .find_map(|r| {
            r.families
                .iter()
                .find(|f| f.name == name && !f.series.is_empty())
                .cloned()
        })
        .unwrap_or_else(|| panic!("no report holds {name}"))
}

fn assert_running(proxy: &Proxy) {
    assert!(
        proxy.vm_statuses().iter().all(|s| *s == VmStatus::Running),
        "{:?}",
        proxy.logs()
    );
}

/// Runs one request on each worker of a waypoint without a `reporter` key and returns the
/// request families of the last report.
fn run_requests(peers: &WaypointPeers) -> Vec<MetricFamily> {
    let receiver = receiver();
    let mut proxy = start(waypoint_node(), "{}", receiver.addr());
    for worker in 0..2 {
        let outcome = proxy.run_http_stream(worker, &waypoint_request(peers));
        assert!(outcome.trapped.is_none(), "{outcome:?}");
    }
    proxy.advance(Duration::from_secs(25));
    assert_running(&proxy);
    let reports = receiver.reports();
    [
        REQUESTS_TOTAL,
        REQUEST_DURATION,
        REQUEST_BYTES,
        RESPONSE_BYTES,
    ]
    .iter()
    .map(|name| latest_family(&reports, name))
    .collect()
}

fn assert_one_series_with(families: &[MetricFamily], labels: &[&str; 25]) {
    for family in families {
        assert_eq!(family.label_names, HTTP_LABELS, "{}", family.name);
        let values: Vec<Vec<String>> = family
            .series
            .iter()
            .map(|s| s.label_values.clone())
            .collect();
        assert_eq!(
            values,
            [labels.map(String::from).to_vec()],
            "{}",
            family.name
        );
    }
    // Each request once: two requests, one per worker, no second reporter.
    assert_eq!(families[0].series[0].value, 2.0);
    for histogram in &families[1..] {
        assert_eq!(
            histogram.series[0].bucket_counts.iter().sum::<u64>(),
            2,
            "{}",
            histogram.name
        );
    }
    assert_eq!(families[1].series[0].sum, 14.0, "2 × 7 ms");
    assert_eq!(families[2].series[0].sum, 240.0, "2 × 120 request bytes");
    assert_eq!(families[3].series[0].sum, 960.0, "2 × 480 response bytes");
}

#[test]
fn a_waypoint_request_gets_istios_waypoint_labels_once() {
    let families = run_requests(&WaypointPeers::template());
    assert_one_series_with(&families, &TEMPLATE_REQUEST_LABELS);
}

#[test]
fn a_waypoint_request_without_workload_metadata_gets_istios_defaults() {
    let families = run_requests(&WaypointPeers::empty_metadata());
    assert_one_series_with(&families, &EMPTYMETA_REQUEST_LABELS);
}

#[test]
fn a_tcp_service_through_the_waypoint_gets_the_waypoint_tcp_labels() {
    let receiver = receiver();
    let mut proxy = start(waypoint_node(), "{}", receiver.addr());
    let connection = waypoint_connection(&WaypointPeers::template());
    for worker in 0..2 {
        proxy.run_tcp_connection(worker, &connection).unwrap();
    }
    proxy.advance(Duration::from_secs(25));
    assert_running(&proxy);
    let reports = receiver.reports();
    let expected = [
        (TCP_OPENED, 2.0),
        (TCP_CLOSED, 2.0),
        (TCP_RECEIVED_BYTES, 20.0),
        (TCP_SENT_BYTES, 40.0),
    ];
    for (name, total) in expected {
        let family = latest_family(&reports, name);
        assert_eq!(family.label_names, TCP_LABELS, "{name}");
        let series: Vec<(Vec<String>, f64)> = family
            .series
            .iter()
            .map(|s| (s.label_values.clone(), s.value))
            .collect();
        assert_eq!(
            series,
            [(TEMPLATE_TCP_LABELS.map(String::from).to_vec(), total)],
            "{name}"
        );
    }
}

#[test]
fn a_configured_reporter_wins_over_the_node_type() {
    let receiver = receiver();
    let mut proxy = start(
        waypoint_node(),
        r#"{"reporter": "destination"}"#,
        receiver.addr(),
    );
    proxy.run_http_stream(0, &waypoint_request(&WaypointPeers::template()));
    proxy.advance(Duration::from_secs(25));
    let family = latest_family(&receiver.reports(), REQUESTS_TOTAL);
    assert_eq!(family.series.len(), 1);
    assert_eq!(family.series[0].label_values[0], "destination");
}

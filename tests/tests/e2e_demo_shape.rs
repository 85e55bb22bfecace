//! The demo's shape end to end: `demo.yaml` (HTTP, gRPC, TCP, filter-shipped access logs) in
//! rate mode through the compiled filter, reporting to a real meshtap-sink that also scrapes
//! the simulated cluster (every sidecar's `:15020`, istiod's `:15014`, `merge: prefer
//! filter`) and tails its CRI pod logs, writing to a real Prometheus and a Loki stand-in.
//! Prometheus gets the filter's request and TCP series once (no scraped copy), istiod's pilot
//! series and the sidecars' Envoy and agent series, the ambient namespace's waypoint series
//! and both nodes' ztunnel series; Loki gets shipped and tailed lines, ztunnel's records too.

// Only `Sink::with_sections` of the shared support is used here.
#[allow(dead_code)]
mod support;

use std::path::Path;
use std::time::Duration;

use meshtap_test_support::loki::LokiReceiver;
use meshtap_test_support::prometheus::Prometheus;
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::Clock;
use meshtap_tests::sim::cluster::{sink_config, Cluster};
use meshtap_tests::sim::{Scenario, SimOptions, Simulation};
use support::sink::Sink;
use tokio::runtime::Runtime;

const TOKEN: &str = "e2e-demo-token";
const WAIT: Duration = Duration::from_secs(20);

fn count(prometheus: &Prometheus, promql: &str) -> usize {
    let result = prometheus.wait_for(promql, WAIT, |r| {
        r.as_array().is_some_and(|a| !a.is_empty())
    });
    result.as_array().map_or(0, Vec::len)
}

#[test]
fn the_demo_delivers_reports_scrapes_and_logs() {
    let prometheus = Prometheus::start();
    let loki_runtime = Runtime::new().unwrap();
    let loki = loki_runtime.block_on(LokiReceiver::start(vec![]));
    let scenario =
        Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/demo.yaml")).unwrap();
    let root = std::env::temp_dir().join(format!("meshtap-demo-shape-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let cluster = Cluster::for_scenario(&scenario, Clock::Real, &root.join("pods")).unwrap();
    let sidecars = cluster.announcement().sidecars.len();
    let sections = format!(
        "remote_write:\n  - url: \"{}\"\n    queue: {{batch_send_deadline: 200ms}}\nlogs:\n  - url: {}\n    batch: {{max_wait: 100ms}}\n{}{}",
        prometheus.write_url(),
        loki.url(),
        sink_config::scrape_section(cluster.announcement(), "1s"),
        sink_config::log_files_section(cluster.announcement(), &root.join("positions.json")),
    );
    let sink = Sink::with_sections(TOKEN, &sections);
    let options = SimOptions {
        sink_url: Some(sink.url()),
        token: Some(TOKEN.into()),
        print_reports: false,
    };
    let mut sim = Simulation::start(shared_module(), scenario, &options, Clock::Real).unwrap();
    sim.attach_cluster(cluster);
    sim.run_rates(Duration::from_secs(8));
    sim.idle(sim.report_interval() + Duration::from_secs(2));

    // The filter's request series, and no scraped copy of them (scraped series carry the
    // target label `container`), while the same pods' Envoy series are scraped.
    assert!(
        count(
            &prometheus,
            r#"istio_requests_total{reporter="source",container=""}"#
        ) > 0
    );
    assert!(
        count(
            &prometheus,
            r#"istio_requests_total{reporter="destination",request_protocol="grpc"}"#
        ) > 0
    );
    assert_eq!(
        prometheus
            .query(r#"istio_requests_total{container!=""}"#)
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    assert!(
        count(
            &prometheus,
            r#"istio_tcp_sent_bytes_total{destination_workload="mysqldb-v1"}"#
        ) > 0
    );
    assert!(
        count(
            &prometheus,
            r#"istio_tcp_connections_opened_total{destination_service_name="PassthroughCluster"}"#
        ) > 0
    );
    assert_eq!(
        count(
            &prometheus,
            r#"envoy_server_live{job="integrations/istio",container="istio-proxy"}"#
        ),
        sidecars
    );
    assert_eq!(
        count(
            &prometheus,
            r#"envoy_cluster_upstream_cx_active{cluster_name="xds-grpc"}"#
        ),
        sidecars
    );
    assert_eq!(
        count(&prometheus, "istio_agent_process_cpu_seconds_total"),
        sidecars
    );
    // The ambient namespace: the waypoint's filter reports, both nodes' ztunnels are scraped.
    assert!(
        count(
            &prometheus,
            r#"istio_requests_total{reporter="waypoint",destination_workload="flights-v1",namespace="travel"}"#
        ) > 0
    );
    let nodes = r#"count by (node) (istio_tcp_connections_opened_total{job="ztunnel",app="ztunnel",namespace="istio-system"})"#;
    let both = prometheus.wait_for(nodes, WAIT, |r| r.as_array().is_some_and(|a| a.len() == 2));
    assert_eq!(both.as_array().map(Vec::len), Some(2), "{both}");
    assert!(count(&prometheus, r#"pilot_xds_pushes{job="istiod",type="eds"}"#) > 0);
    assert_eq!(count(&prometheus, r#"pilot_xds{app="istiod"}"#), 1);
    assert!(count(&prometheus, r#"process_cpu_seconds_total{app="istiod"}"#) > 0);

    // Loki: the filter's records (stream without `container`) and the tailed files' lines
    // (stream with `container="istio-proxy"`), both Istio TEXT access lines.
    let deadline = std::time::Instant::now() + WAIT;
    let (shipped, tailed, ztunnel_records) = loop {
        let entries = loki.accepted_entries();
        let is_access = |line: &str| line.starts_with("[") && line.contains("\" 200 ");
        let tailed = entries
            .iter()
            .filter(|(labels, e)| {
                labels.contains("container=\"istio-proxy\"") && is_access(&e.line)
            })
            .count();
        let shipped = entries
            .iter()
            .filter(|(labels, e)| !labels.contains("container=") && is_access(&e.line))
            .count();
        let ztunnel_records = entries
            .iter()
            .filter(|(labels, e)| {
                labels.contains("ztunnel-") && e.line.contains("connection complete")
            })
            .count();
        let all = shipped > 0 && tailed > 0 && ztunnel_records > 0;
        if all || std::time::Instant::now() > deadline {
            break (shipped, tailed, ztunnel_records);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(shipped > 0, "filter-shipped access lines at Loki");
    assert!(tailed > 0, "tailed access lines at Loki");
    assert!(
        ztunnel_records > 0,
        "tailed ztunnel connection records at Loki"
    );
    drop(sim);
    drop(sink);
    std::fs::remove_dir_all(&root).unwrap();
}

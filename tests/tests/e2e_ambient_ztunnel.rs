//! Ambient L4 end to end into a real Prometheus: two simulated nodes' ztunnels
//! (`sim::ambient::ztunnel_stats`, written from ztunnel's source) serve `/metrics` on loopback;
//! the stand-in Kubernetes API lists them as `app=ztunnel` pods in `istio-system` on two nodes;
//! a real meshtap-sink with `scrape.ztunnel` discovers and scrapes them and remote-writes into
//! Prometheus, where each ztunnel's `istio_tcp_*` series carry exactly ztunnel's 27 labels plus
//! the target labels `job`, `instance`, `namespace`, `pod`, `node`, `app` and their totals.

#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use meshtap_test_support::kube_api::{KubeApi, PodBuilder};
use meshtap_test_support::prometheus::Prometheus;
use meshtap_tests::sim::ambient::ztunnel_stats::{traffic_labels, ztunnel_metrics_body};
use meshtap_tests::sim::ambient::{AmbientPeer, Direction, L4Leg};
use meshtap_tests::sim::cluster::{Endpoint, StatsServer, ZTUNNEL_CONTENT_TYPE};
use support::sink::Sink;

fn peer(name: &str, sa: &str, ip: &str, zone: &str) -> AmbientPeer {
    AmbientPeer {
        workload: format!("{name}-v1"),
        pod: format!("{name}-v1-5b549b49b8-mq2ws"),
        namespace: "bookinfo".to_owned(),
        canonical_service: name.to_owned(),
        canonical_revision: "v1".to_owned(),
        identity: format!("spiffe://cluster.local/ns/bookinfo/sa/{sa}"),
        cluster: "Kubernetes".to_owned(),
        ip: ip.to_owned(),
        region: "us-east1".to_owned(),
        zone: zone.to_owned(),
    }
}

/// productpage (node-1) → reviews (node-2): 3 connections, 600 bytes up, 3000 down, as the
/// client's ztunnel (outbound) and the server's (inbound) count them.
fn legs() -> [L4Leg; 2] {
    let leg = |direction| L4Leg {
        direction,
        source: peer(
            "productpage",
            "bookinfo-productpage",
            "10.244.1.17",
            "us-east1-b",
        ),
        destination: peer("reviews", "bookinfo-reviews", "10.244.2.21", "us-east1-c"),
        service: "reviews.bookinfo.svc.cluster.local".to_owned(),
        port: 9080,
        connections: 3,
        received_bytes: 600,
        sent_bytes: 3000,
        response_flags: "-".to_owned(),
        mtls: true,
    };
    [leg(Direction::Outbound), leg(Direction::Inbound)]
}

fn ztunnel_pod(name: &str, node: &str, port: u16) -> serde_json::Value {
    let mut pod = PodBuilder::new("istio-system", name, "127.0.0.1")
        .label("app", "ztunnel")
        .container(
            "istio-proxy",
            "istio/ztunnel:1.31.0",
            &[(Some("ztunnel-stats"), port)],
        )
        .owner("DaemonSet", "ztunnel")
        .build();
    pod["spec"]["nodeName"] = serde_json::json!(node);
    pod
}

/// ztunnel's label string (`a="b",…`) as a map.
fn parse_labels(rendered: &str) -> BTreeMap<String, String> {
    rendered
        .split("\",")
        .map(|pair| {
            let (name, value) = pair.split_once("=\"").unwrap();
            (name.to_owned(), value.trim_end_matches('"').to_owned())
        })
        .collect()
}

#[test]
fn ztunnel_l4_series_arrive_with_every_label_and_their_node() {
    let legs = legs();
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let by_node = [vec![legs[0].clone()], vec![legs[1].clone()]];
    let endpoint = Endpoint {
        path: "/metrics",
        content_type: ZTUNNEL_CONTENT_TYPE,
    };
    let server = StatsServer::start(listeners, vec![endpoint; 2], move |i| {
        ztunnel_metrics_body(&by_node[i], 1)
    })
    .unwrap();
    let ports: Vec<u16> = server.addrs().iter().map(|a| a.port()).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = runtime.block_on(KubeApi::start());
    api.apply(ztunnel_pod("ztunnel-aaaaa", "node-1", ports[0]));
    api.apply(ztunnel_pod("ztunnel-bbbbb", "node-2", ports[1]));

    let prom = Prometheus::start();
    let _sink = Sink::with_sections(
        "t",
        &format!(
            "remote_write:\n  - url: \"{}\"\n    queue:\n      batch_send_deadline: 200ms\nscrape:\n  interval: 200ms\n  jobs: []\n  ztunnel: {{enabled: true, api_server: '{}'}}\n",
            prom.write_url(),
            api.url()
        ),
    );
    let result = prom.wait_for(
        "istio_tcp_connections_opened_total",
        Duration::from_secs(60),
        |v| v.as_array().is_some_and(|r| r.len() == 2),
    );
    let mut got: Vec<(BTreeMap<String, String>, String)> = result
        .as_array()
        .unwrap_or_else(|| panic!("no series: {result}"))
        .iter()
        .map(|s| {
            let metric = serde_json::from_value(s["metric"].clone()).unwrap();
            (metric, s["value"][1].as_str().unwrap().to_owned())
        })
        .collect();
    got.sort();
    let mut want: Vec<(BTreeMap<String, String>, String)> = legs
        .iter()
        .zip([
            ("ztunnel-aaaaa", "node-1", ports[0]),
            ("ztunnel-bbbbb", "node-2", ports[1]),
        ])
        .map(|(leg, (pod, node, port))| {
            let mut labels = parse_labels(&traffic_labels(leg));
            for (name, value) in [
                ("__name__", "istio_tcp_connections_opened_total".to_owned()),
                ("job", "ztunnel".to_owned()),
                ("instance", format!("127.0.0.1:{port}")),
                ("namespace", "istio-system".to_owned()),
                ("pod", pod.to_owned()),
                ("node", node.to_owned()),
                ("app", "ztunnel".to_owned()),
            ] {
                labels.insert(name.to_owned(), value);
            }
            (labels, "3".to_owned())
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        got[0].0.len(),
        27 + 7,
        "ztunnel's 27 labels, the name, 6 target labels"
    );

    for (family, total) in [
        ("istio_tcp_connections_closed_total", 3.0),
        ("istio_tcp_received_bytes_total", 600.0),
        ("istio_tcp_sent_bytes_total", 3000.0),
    ] {
        for reporter in ["source", "destination"] {
            let promql = format!("sum({family}{{app=\"ztunnel\",reporter=\"{reporter}\"}})");
            let v = prom.wait_for(&promql, Duration::from_secs(30), |r| {
                r.as_array().is_some_and(|r| !r.is_empty())
            });
            assert_eq!(v[0]["value"][1], total.to_string(), "{promql}");
        }
    }
    let active = prom.scalar("sum(workload_manager_active_proxy_count{app=\"ztunnel\"})");
    assert_eq!(active, 2.0);
    drop(server);
}

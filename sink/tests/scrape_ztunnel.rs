//! The `scrape.ztunnel` switch end to end: the stand-in API server lists a ztunnel pod (label
//! `app=ztunnel`, port `ztunnel-stats`) in `istio-system` and a sidecar pod; the sink discovers
//! only the ztunnel, scrapes its loopback `/metrics` (ztunnel's OpenMetrics body under
//! `text/plain`, as ztunnel answers a Prometheus scraper) and remote-writes its series with the
//! target labels that tie them to the pod and its node (`namespace`, `pod`, `node`, `app`).

mod common;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::*;
use kube_api::{KubeApi, PodBuilder};
use meshtap_test_support::kube_api;

/// A body in ztunnel's layout (istio/ztunnel `src/proxy/metrics.rs` label order, locality
/// labels last, `# EOF`), one series per family.
const ZTUNNEL_BODY: &str = "\
# HELP istio_build Istio component build info.
# TYPE istio_build gauge
istio_build{component=\"ztunnel\",tag=\"1.31.0\"} 1
# HELP istio_tcp_connections_opened The total number of TCP connections opened.
# TYPE istio_tcp_connections_opened counter
istio_tcp_connections_opened_total{reporter=\"source\",source_workload=\"curl\",source_canonical_service=\"curl\",source_canonical_revision=\"latest\",source_workload_namespace=\"default\",source_principal=\"spiffe://cluster.local/ns/default/sa/curl\",source_app=\"curl\",source_version=\"latest\",source_cluster=\"Kubernetes\",destination_service=\"productpage.default.svc.cluster.local\",destination_service_namespace=\"default\",destination_service_name=\"productpage\",destination_workload=\"productpage-v1\",destination_canonical_service=\"productpage\",destination_canonical_revision=\"v1\",destination_workload_namespace=\"default\",destination_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-productpage\",destination_app=\"productpage\",destination_version=\"v1\",destination_cluster=\"Kubernetes\",request_protocol=\"tcp\",response_flags=\"-\",connection_security_policy=\"mutual_tls\",source_region=\"us-east1\",source_zone=\"us-east1-b\",destination_region=\"us-east1\",destination_zone=\"us-east1-b\"} 7
# HELP workload_manager_active_proxy_count The total number current workloads with active proxies (unstable).
# TYPE workload_manager_active_proxy_count gauge
workload_manager_active_proxy_count 6
# EOF
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ztunnel_pods_are_discovered_and_scraped_with_pod_and_node_labels() {
    let receiver = Receiver::start(vec![]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ztunnel = listener.local_addr().unwrap();
    let router = Router::new().route(
        "/metrics",
        get(|| async {
            (
                [("content-type", "text/plain; charset=utf-8")],
                ZTUNNEL_BODY,
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let api = KubeApi::start().await;
    let stats_port = [
        (Some("ztunnel-stats"), ztunnel.port()),
        (Some("dns-tcp"), 15053),
    ];
    api.apply(
        PodBuilder::new("istio-system", "ztunnel-x7k2p", "127.0.0.1")
            .label("app", "ztunnel")
            .container("istio-proxy", "istio/ztunnel:1.31.0", &stats_port)
            .owner("DaemonSet", "ztunnel")
            .build(),
    );
    api.apply(
        PodBuilder::new("default", "productpage-v1-1", "127.0.0.2")
            .label("app", "productpage")
            .container(
                "istio-proxy",
                "istio/proxyv2",
                &[(Some("http-envoy-prom"), 15090)],
            )
            .build(),
    );
    let yaml = format!(
        "remote_write:\n  - url: {}\n    queue: {{batch_send_deadline: 50ms, lanes: 1}}\nscrape:\n  interval: 200ms\n  jobs: []\n  ztunnel: {{enabled: true, namespaces: [istio-system, default], api_server: '{}'}}\n",
        receiver.url(),
        api.url()
    );
    let sink = start_sink(&yaml).await;
    let opened = || {
        receiver.accepted_series().into_iter().find(|(labels, _)| {
            label(labels, "__name__") == Some("istio_tcp_connections_opened_total")
        })
    };
    assert!(
        wait_until(Duration::from_secs(20), || opened().is_some()).await,
        "the ztunnel was never scraped"
    );
    let (labels, sample) = opened().unwrap();
    assert_eq!(sample.value, 7.0);
    let instance = ztunnel.to_string();
    for (name, value) in [
        ("job", "ztunnel"),
        ("instance", instance.as_str()),
        ("namespace", "istio-system"),
        ("pod", "ztunnel-x7k2p"),
        ("node", "node-1"),
        ("app", "ztunnel"),
        ("reporter", "source"),
        ("source_zone", "us-east1-b"),
        ("connection_security_policy", "mutual_tls"),
    ] {
        assert_eq!(label(&labels, name), Some(value), "{name} in {labels:?}");
    }
    assert_eq!(
        labels.len(),
        27 + 1 + 6,
        "27 ztunnel labels, the name, 6 target labels"
    );
    let stage = sink.scrape().expect("scrape stage");
    let targets = stage.targets();
    assert_eq!(
        targets.len(),
        1,
        "only the ztunnel's stats port: {targets:?}"
    );
    assert_eq!(targets[0].url, format!("http://{ztunnel}/metrics"));
    sink.shutdown().await;
}

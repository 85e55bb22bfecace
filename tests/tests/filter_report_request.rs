//! The report request the compiled filter sends matches the filter → sink contract: path,
//! content type and encoding, pod header, bearer token (inline or from the VM env through
//! WASI `environ_get`), a decodable body naming the proxy, and a rejected token is counted.

use std::net::SocketAddr;
use std::time::Duration;

use meshtap_report::{CONTENT_ENCODING, CONTENT_TYPE, POD_HEADER, REPORT_PATH};
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::{Clock, HttpExchange, NodeInfo, Proxy, ProxyConfig, VmStatus};
use meshtap_tests::sim::receiver::ReceivedPost;
use meshtap_tests::sim::{OneCall, ReportReceiver};

const SINK_CLUSTER: &str = "outbound|9091||meshtap-sink.meshtap.svc.cluster.local";

const SCENARIO: &str = "
workloads:
  - {name: sleep-v1, namespace: apps, app: sleep, version: v1, pod: sleep-v1-5d8f7c-abcde, ip: 10.9.8.7}
  - {name: httpbin-v1, namespace: apps, app: httpbin, version: v1, port: 8000}
calls:
  - {from: sleep-v1, to: httpbin-v1, count: 1}
";

fn setup(
    plugin_config: &str,
    env: &[(&str, &str)],
    receiver: &ReportReceiver,
) -> (Proxy, HttpExchange, NodeInfo) {
    let call = OneCall::from_yaml(SCENARIO, 3, 10, 10);
    let node = call.client_node;
    let config = ProxyConfig {
        plugin_config: plugin_config.to_string(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        node: node.clone(),
        workers: 2,
        clock: Clock::manual_now(),
        clusters: vec![(SINK_CLUSTER.to_string(), receiver.addr())],
        ..ProxyConfig::default()
    };
    (
        Proxy::start(shared_module(), config).unwrap(),
        call.client,
        node,
    )
}

fn header<'a>(post: &'a ReceivedPost, name: &str) -> Option<&'a str> {
    post.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn receiver(token: Option<&str>) -> ReportReceiver {
    ReportReceiver::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        token.map(String::from),
        false,
    )
    .unwrap()
}

#[test]
fn reports_follow_the_request_contract_with_a_token_from_the_vm_env() {
    let receiver = receiver(Some("from-env-token"));
    let (mut proxy, exchange, node) = setup(
        r#"{"ingest_token_env": "MESHTAP_INGEST_TOKEN"}"#,
        &[("MESHTAP_INGEST_TOKEN", "from-env-token")],
        &receiver,
    );
    proxy.run_http_stream(0, &exchange);
    proxy.run_http_stream(1, &exchange);
    proxy.advance(Duration::from_secs(25));
    assert!(proxy.vm_statuses().iter().all(|s| *s == VmStatus::Running));

    let posts = receiver.posts();
    assert!(!posts.is_empty(), "the filter posted reports");
    for post in &posts {
        assert_eq!(post.path, REPORT_PATH);
        assert_eq!(header(post, "content-type"), Some(CONTENT_TYPE));
        assert_eq!(header(post, "content-encoding"), Some(CONTENT_ENCODING));
        assert_eq!(header(post, POD_HEADER), Some("apps/sleep-v1-5d8f7c-abcde"));
        assert_eq!(header(post, "authorization"), Some("Bearer from-env-token"));
        assert_eq!(
            header(post, "host"),
            Some("meshtap-sink.meshtap.svc.cluster.local:9091")
        );
        let report = post.report.as_ref().expect("the body decodes");
        let proxy_id = report.proxy.as_ref().unwrap();
        assert_eq!(proxy_id.namespace, "apps");
        assert_eq!(proxy_id.pod, "sleep-v1-5d8f7c-abcde");
        assert_eq!(proxy_id.workload, "sleep-v1");
        assert_eq!(proxy_id.node_id, node.id);
        assert_eq!(proxy_id.cluster_id, "Kubernetes");
        assert_eq!(proxy_id.instance_ips, vec!["10.9.8.7".to_string()]);
    }
    let sequences: Vec<u64> = posts
        .iter()
        .map(|p| p.report.as_ref().unwrap().sequence)
        .collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "sequence increases: {sequences:?}"
    );
    for call in proxy.calls() {
        assert_eq!(call.cluster, SINK_CLUSTER);
        assert!(call.timeout_ms > 0, "report calls carry the report timeout");
    }
}

#[test]
fn a_rejected_token_is_counted_as_a_failed_report() {
    let receiver = receiver(Some("the-right-one"));
    let (mut proxy, exchange, _) = setup(r#"{"ingest_token": "a-wrong-one"}"#, &[], &receiver);
    proxy.run_http_stream(0, &exchange);
    proxy.advance(Duration::from_secs(35));
    assert!(
        receiver.reports().is_empty(),
        "the receiver accepted a wrong token"
    );
    assert!(proxy.calls().len() >= 2, "the filter kept reporting");
    let statuses = proxy.vm_statuses();
    assert!(
        statuses.iter().all(|s| *s == VmStatus::Running),
        "{statuses:?}"
    );
    // The filter's next accepted report must account the rejected ones: point the cluster at a
    // receiver that accepts this token.
    let accepting = self::receiver(Some("a-wrong-one"));
    proxy.set_cluster(SINK_CLUSTER, accepting.addr());
    proxy.advance(Duration::from_secs(25));
    let last = accepting
        .reports()
        .into_iter()
        .max_by_key(|r| r.sequence)
        .expect("reports arrive");
    assert!(last.stats.unwrap().reports_failed >= 2);
}

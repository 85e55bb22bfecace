//! Access logs end to end: the compiled filter in the Envoy stand-in runs a scenario with
//! `access_log.enabled`, its reports go to a real meshtap-sink with a `logs:` endpoint, and the
//! sink pushes to a Loki-protocol receiver on loopback. Every request each sidecar saw arrives
//! as exactly one Istio TEXT line, with the pod's stream labels and the record's fields as
//! structured metadata.

// Only `Sink::with_sections` of the shared support is used here.
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshtap_test_support::loki::{LokiReceiver, RecvEntry};
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::sim::{self, Scenario, SimOptions};
use support::sink::Sink;
use tokio::runtime::Runtime;

const TOKEN: &str = "e2e-logs-token";

const SCENARIO: &str = "
seed: 11
plugin_config: {report_interval: 10s, access_log: {enabled: true}}
workloads:
  - {name: sleep-v1, namespace: apps, app: sleep, version: v1, pod: sleep-v1-7c9d-q2x4z, ip: 10.9.8.7}
  - {name: httpbin-v1, namespace: apps, app: httpbin, version: v1, pod: httpbin-v1-5b6f-k8m2p, port: 8000}
calls:
  - from: sleep-v1
    to: httpbin-v1
    count: 6
    path: /status/418
    latency_ms: 4
    request_bytes: 0
    response_bytes: 135
    outcomes: [{code: 418}]
  - from: sleep-v1
    to: httpbin-v1
    count: 4
    path: /delay/1
    latency_ms: 2
    request_bytes: 0
    response_bytes: 91
    outcomes: [{code: 503, flags: UF}]
";

/// The line after its `[start time] ` for each (reporter, path), with `{id}` for the request id.
fn expected_rest(pod: &str, path: &str) -> &'static str {
    match (pod, path) {
        ("sleep-v1-7c9d-q2x4z", "/status/418") => {
            r#""GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" "meshtap-sim" "{id}" "httpbin:8000" "10.1.0.11:8000" outbound|8000||httpbin.apps.svc.cluster.local 10.9.8.7:40000 10.1.0.11:8000 10.9.8.7:51000 - httpbin.apps.svc.cluster.local:8000"#
        }
        ("httpbin-v1-5b6f-k8m2p", "/status/418") => {
            r#""GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 4 4 "-" "meshtap-sim" "{id}" "httpbin:8000" "10.1.0.11:8000" inbound|8000|| 127.0.0.6:40000 10.1.0.11:8000 10.9.8.7:40000 outbound_.8000_._.httpbin.apps.svc.cluster.local default"#
        }
        ("sleep-v1-7c9d-q2x4z", "/delay/1") => {
            r#""GET /delay/1 HTTP/1.1" 503 UF - - "-" 0 91 2 - "-" "meshtap-sim" "{id}" "httpbin:8000" "-" outbound|8000||httpbin.apps.svc.cluster.local - 10.1.0.11:8000 10.9.8.7:51000 - httpbin.apps.svc.cluster.local:8000"#
        }
        other => panic!("no line expected for {other:?}"),
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Waits (bounded) until the receiver has `n` entries or the deadline passes.
fn wait_for_entries(loki: &LokiReceiver, n: usize) -> Vec<(String, RecvEntry)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let entries = loki.accepted_entries();
        if entries.len() >= n || Instant::now() > deadline {
            return entries;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_request_reaches_loki_once_as_an_istio_text_line() {
    let loki_runtime = Runtime::new().unwrap();
    let loki = loki_runtime.block_on(LokiReceiver::start(vec![]));
    let sink = Sink::with_sections(
        TOKEN,
        &format!(
            "logs:\n  - name: loki\n    url: {}\n    tenant_id: mesh\n    batch: {{max_wait: 50ms}}\n",
            loki.url()
        ),
    );
    let options = SimOptions {
        sink_url: Some(sink.url()),
        token: Some(TOKEN.into()),
        print_reports: false,
    };
    let started_ns = now_ns();
    let scenario = Scenario::from_yaml(SCENARIO).unwrap();
    sim::run(shared_module(), scenario, &options).expect("the scenario runs");

    // 6 calls seen by both sidecars, 4 that failed before reaching the server.
    let entries = wait_for_entries(&loki, 16);
    std::thread::sleep(Duration::from_millis(300));
    let entries_after = loki.accepted_entries();
    assert_eq!(entries_after.len(), entries.len(), "nothing arrives twice");
    assert_eq!(entries.len(), 16, "{entries:#?}");
    assert!(loki
        .pushes()
        .iter()
        .all(|p| p.headers.get("x-scope-orgid").is_some_and(|v| v == "mesh")));

    let mut by_request: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for (labels, entry) in &entries {
        let pod = entry
            .metadata("reporter")
            .map(|r| match r {
                "source" => "sleep-v1-7c9d-q2x4z",
                _ => "httpbin-v1-5b6f-k8m2p",
            })
            .expect("every entry names its reporter");
        assert_eq!(
            labels,
            &format!(r#"{{job="integrations/istio", namespace="apps", pod="{pod}"}}"#)
        );
        let id = entry.metadata("request_id").expect("request id").to_owned();
        let path = entry.metadata("path").expect("path");
        let (stamp, rest) = entry.line.split_once("] ").expect("a [start time] prefix");
        assert!(
            stamp.starts_with('[') && stamp.ends_with('Z'),
            "{}",
            entry.line
        );
        assert_eq!(rest, expected_rest(pod, path).replace("{id}", &id));
        assert_eq!(entry.metadata("source_workload"), Some("sleep-v1"));
        assert_eq!(entry.metadata("destination_workload"), Some("httpbin-v1"));
        assert_eq!(entry.metadata("destination_namespace"), Some("apps"));
        let ts = entry.timestamp_ns();
        assert!(ts >= started_ns && ts <= now_ns(), "{ts} outside the run");
        by_request.entry(id).or_default().push((pod.to_owned(), ts));
    }
    assert_eq!(by_request.len(), 10, "one request id per call");
    for (id, sides) in &by_request {
        let pods: Vec<&str> = sides.iter().map(|(p, _)| p.as_str()).collect();
        assert!(
            pods == ["sleep-v1-7c9d-q2x4z"]
                || pods.len() == 2
                    && pods.contains(&"sleep-v1-7c9d-q2x4z")
                    && pods.contains(&"httpbin-v1-5b6f-k8m2p"),
            "{id}: {pods:?}"
        );
        assert!(
            sides.iter().all(|(_, ts)| *ts == sides[0].1),
            "both sidecars log the request's start time: {sides:?}"
        );
    }
    loki.stop();
}

//! Filter-shipped access logs from the compiled filter in the host: the exact records of known
//! requests on both sidecars over 2 workers (each request once), `only_errors`, the per-VM and
//! per-report bounds with their drops counted in `FilterStats`, and records of failed posts sent
//! with a later report.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use meshtap_report::{AccessLogRecord, Report};
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::{Clock, HttpExchange, NodeInfo, Phase, Proxy, ProxyConfig, VmStatus};
use meshtap_tests::sim::{OneCall, ReportReceiver};

const SINK_CLUSTER: &str = "outbound|9091||meshtap-sink.meshtap.svc.cluster.local";

const SCENARIO: &str = "
workloads:
  - {name: sleep-v1, namespace: apps, app: sleep, version: v1, pod: sleep-v1-5d8f7c-abcde, ip: 10.9.8.7}
  - {name: httpbin-v1, namespace: apps, app: httpbin, version: v1, port: 8000}
calls:
  - {from: sleep-v1, to: httpbin-v1, count: 1}
";

fn receiver_at(addr: SocketAddr) -> ReportReceiver {
    ReportReceiver::start(addr, None, false).unwrap()
}

fn proxy(node: NodeInfo, plugin_config: &str, clock: &Clock, sink: SocketAddr) -> Proxy {
    let config = ProxyConfig {
        plugin_config: plugin_config.to_string(),
        node,
        workers: 2,
        clock: clock.clone(),
        clusters: vec![(SINK_CLUSTER.to_string(), sink)],
        ..ProxyConfig::default()
    };
    Proxy::start(shared_module(), config).unwrap()
}

/// The exchange with another path and request id (request `n`).
fn numbered(exchange: &HttpExchange, n: u32) -> HttpExchange {
    let mut e = exchange.clone();
    for (name, value) in &mut e.request_headers {
        match name.as_str() {
            ":path" => *value = format!("/item/{n}"),
            "x-request-id" => *value = format!("req-{n}"),
            _ => {}
        }
    }
    e
}

fn records(reports: &[Report]) -> Vec<AccessLogRecord> {
    reports.iter().flat_map(|r| r.access_logs.clone()).collect()
}

fn last_dropped(reports: &[Report]) -> u64 {
    reports
        .iter()
        .max_by_key(|r| r.sequence)
        .and_then(|r| r.stats.clone())
        .map_or(0, |s| s.access_logs_dropped)
}

fn assert_running(proxy: &Proxy) {
    assert!(
        proxy.vm_statuses().iter().all(|s| *s == VmStatus::Running),
        "{:?}",
        proxy.logs()
    );
}

#[test]
fn both_sidecars_ship_the_exact_record_of_each_request_once_over_two_workers() {
    let receiver = receiver_at(SocketAddr::from(([127, 0, 0, 1], 0)));
    let call = OneCall::from_yaml(SCENARIO, 3, 10, 20);
    let clock = Clock::manual_now();
    let config = r#"{"access_log": {"enabled": true}}"#;
    let mut client = proxy(call.client_node.clone(), config, &clock, receiver.addr());
    let mut server = proxy(call.server_node.clone(), config, &clock, receiver.addr());
    let server_exchange = call.server.clone().expect("the call reaches the server");
    let start_ns = clock.now_nanos() as i64;
    client.run_http_stream(0, &call.client);
    server.run_http_stream(1, &server_exchange);
    clock.advance(Duration::from_millis(5));
    client.run_http_stream(1, &numbered(&call.client, 2));
    client.advance(Duration::from_secs(25));
    server.advance(Duration::from_secs(25));
    assert_running(&client);
    assert_running(&server);

    let reports = receiver.reports();
    let mut shipped = records(&reports);
    assert_eq!(shipped.len(), 3, "{shipped:#?}");
    shipped.sort_by_key(|r| (r.reporter.clone(), r.start_time_ns));
    let client_record = AccessLogRecord {
        start_time_ns: start_ns,
        method: "GET".into(),
        path: "/".into(),
        protocol: "HTTP/1.1".into(),
        response_code: 200,
        response_code_details: "via_upstream".into(),
        bytes_received: 10,
        bytes_sent: 20,
        duration_ms: Some(3),
        upstream_service_time: "3".into(),
        user_agent: "meshtap-sim".into(),
        request_id: "6f1c2d3e-0000-4000-8000-000000000001".into(),
        authority: "httpbin:8000".into(),
        upstream_host: "10.1.0.11:8000".into(),
        upstream_cluster: "outbound|8000||httpbin.apps.svc.cluster.local".into(),
        upstream_local_address: "10.9.8.7:40000".into(),
        downstream_local_address: "10.1.0.11:8000".into(),
        downstream_remote_address: "10.9.8.7:51000".into(),
        route_name: "httpbin.apps.svc.cluster.local:8000".into(),
        source_workload: "sleep-v1".into(),
        source_namespace: "apps".into(),
        destination_workload: "httpbin-v1".into(),
        destination_namespace: "apps".into(),
        reporter: "source".into(),
        ..AccessLogRecord::default()
    };
    let server_record = AccessLogRecord {
        upstream_host: "10.1.0.11:8000".into(),
        upstream_cluster: "inbound|8000||".into(),
        upstream_local_address: "127.0.0.6:40000".into(),
        downstream_local_address: "10.1.0.11:8000".into(),
        downstream_remote_address: "10.9.8.7:40000".into(),
        requested_server_name: "outbound_.8000_._.httpbin.apps.svc.cluster.local".into(),
        route_name: "default".into(),
        reporter: "destination".into(),
        ..client_record.clone()
    };
    let second = AccessLogRecord {
        start_time_ns: start_ns + 5_000_000,
        path: "/item/2".into(),
        request_id: "req-2".into(),
        ..client_record.clone()
    };
    assert_eq!(shipped, [server_record, client_record, second]);
    assert_eq!(last_dropped(&reports), 0);
}

#[test]
fn only_errors_ships_failed_requests_only() {
    let receiver = receiver_at(SocketAddr::from(([127, 0, 0, 1], 0)));
    let call = OneCall::from_yaml(SCENARIO, 3, 10, 20);
    let clock = Clock::manual_now();
    let config = r#"{"access_log": {"enabled": true, "only_errors": true}}"#;
    let mut client = proxy(call.client_node, config, &clock, receiver.addr());
    let mut failed = numbered(&call.client, 7);
    failed
        .properties
        .set_int(&["response", "code"], 503, Phase::Response);
    for worker in [0, 1] {
        client.run_http_stream(worker, &call.client);
    }
    client.run_http_stream(1, &failed);
    client.advance(Duration::from_secs(25));
    assert_running(&client);
    let shipped = records(&receiver.reports());
    assert_eq!(shipped.len(), 1, "{shipped:#?}");
    assert_eq!(
        (shipped[0].request_id.as_str(), shipped[0].response_code),
        ("req-7", 503)
    );
}

#[test]
fn bounds_hold_per_vm_and_per_report_and_drops_are_counted() {
    let receiver = receiver_at(SocketAddr::from(([127, 0, 0, 1], 0)));
    let call = OneCall::from_yaml(SCENARIO, 3, 10, 20);
    let clock = Clock::manual_now();
    let config =
        r#"{"report_interval": "10s", "access_log": {"enabled": true, "max_per_interval": 3}}"#;
    let mut client = proxy(call.client_node, config, &clock, receiver.addr());
    // Before the first tick (1 s): worker 1 keeps 3 of 4 (1 dropped). Worker 0 leads the first
    // report, which has nothing yet; worker 1 then hands its batch to the queue.
    for n in 0..4 {
        client.run_http_stream(1, &numbered(&call.client, n));
    }
    client.advance(Duration::from_secs(2));
    // Worker 0 keeps 3 of 5 (2 dropped). At the second tick the leader gathers both batches:
    // 6 records for a bound of 3, so the 3 newest are dropped.
    for n in 10..15 {
        client.run_http_stream(0, &numbered(&call.client, n));
    }
    client.advance(Duration::from_secs(30));
    assert_running(&client);

    let reports = receiver.reports();
    assert!(
        reports.iter().all(|r| r.access_logs.len() <= 3),
        "per-report bound"
    );
    let ids: Vec<String> = records(&reports)
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(ids, ["req-0", "req-1", "req-2"], "the oldest are kept");
    assert_eq!(last_dropped(&reports), 1 + 2 + 3);
}

#[test]
fn records_of_failed_posts_arrive_with_a_later_report_once() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let sink = SocketAddr::from(([127, 0, 0, 1], port));
    let call = OneCall::from_yaml(SCENARIO, 3, 10, 20);
    let clock = Clock::manual_now();
    let config = r#"{"access_log": {"enabled": true, "max_per_interval": 50}}"#;
    let mut client = proxy(call.client_node, config, &clock, sink);
    for n in 0..4 {
        client.run_http_stream(n as usize % 2, &numbered(&call.client, n));
    }
    // Three report turns with the sink down.
    client.advance(Duration::from_secs(32));
    assert!(client.calls().len() >= 3, "the filter kept posting");
    let receiver = receiver_at(sink);
    client.advance(Duration::from_secs(25));
    assert_running(&client);
    let reports = receiver.reports();
    let mut ids: Vec<String> = records(&reports)
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["req-0", "req-1", "req-2", "req-3"]);
    assert_eq!(last_dropped(&reports), 0);
    assert!(reports
        .iter()
        .any(|r| r.stats.as_ref().unwrap().reports_failed >= 3));
}

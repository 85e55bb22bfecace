//! The compiled filter's behaviour over a proxy's life, driven through the host API: several
//! workers (no double counting), a VM replaced mid-run (counters stay monotonic), a bad config
//! (traffic passes, one error, no trap), a sink that is down (memory stays bounded, totals
//! arrive once it is back), a sink that never answers (timeouts), and the import list.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use meshtap_report::schema::REQUESTS_TOTAL;
use meshtap_report::Report;
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::{
    provided_imports, Clock, HttpExchange, LogLevel, Proxy, ProxyConfig, VmStatus,
};
use meshtap_tests::sim::{OneCall, ReportReceiver};

const SINK_CLUSTER: &str = "outbound|9091||meshtap-sink.meshtap.svc.cluster.local";

const SCENARIO: &str = "
workloads:
  - {name: sleep-v1, namespace: apps, app: sleep, version: v1}
  - {name: httpbin-v1, namespace: apps, app: httpbin, version: v1, port: 8000}
calls:
  - {from: sleep-v1, to: httpbin-v1, count: 1, latency_ms: 10, request_bytes: 100, response_bytes: 200}
";

/// A proxy for `sleep-v1` and the outbound stream of one call to httpbin.
fn sleep_proxy(workers: usize, plugin_config: &str, sink: SocketAddr) -> (Proxy, HttpExchange) {
    let call = OneCall::from_yaml(SCENARIO, 10, 100, 200);
    let config = ProxyConfig {
        plugin_config: plugin_config.to_string(),
        node: call.client_node,
        workers,
        clock: Clock::manual_now(),
        clusters: vec![(SINK_CLUSTER.to_string(), sink)],
        ..ProxyConfig::default()
    };
    (Proxy::start(shared_module(), config).unwrap(), call.client)
}

fn loopback_receiver() -> ReportReceiver {
    ReportReceiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), None, false).unwrap()
}

/// Total of `istio_requests_total` over all series of a report.
fn requests(report: &Report) -> f64 {
    report
        .families
        .iter()
        .filter(|f| f.name == REQUESTS_TOTAL)
        .flat_map(|f| f.series.iter())
        .map(|s| s.value)
        .sum()
}

fn series_count(report: &Report) -> usize {
    report
        .families
        .iter()
        .find(|f| f.name == REQUESTS_TOTAL)
        .map_or(0, |f| f.series.len())
}

fn assert_all_running(proxy: &Proxy) {
    for status in proxy.vm_statuses() {
        assert_eq!(status, VmStatus::Running, "logs: {:?}", proxy.logs());
    }
}

#[test]
fn workers_share_one_series_per_label_set() {
    let receiver = loopback_receiver();
    let (mut proxy, exchange) = sleep_proxy(3, "{}", receiver.addr());
    for i in 0..30 {
        let outcome = proxy.run_http_stream(i % 3, &exchange);
        assert!(!outcome.bypassed && outcome.trapped.is_none());
    }
    proxy.advance(Duration::from_secs(25));
    assert_all_running(&proxy);
    let reports = receiver.reports();
    let last = reports
        .iter()
        .max_by_key(|r| r.sequence)
        .expect("the proxy reported");
    assert_eq!(series_count(last), 1, "one label set, one series");
    assert_eq!(
        requests(last),
        30.0,
        "summed over the three workers, each counted once"
    );
    assert_eq!(last.stats.clone().unwrap().worker_vms, 3);
}

#[test]
fn replacing_a_vm_keeps_counters_monotonic() {
    let receiver = loopback_receiver();
    let (mut proxy, exchange) = sleep_proxy(2, "{}", receiver.addr());
    for i in 0..20 {
        proxy.run_http_stream(i % 2, &exchange);
    }
    proxy.advance(Duration::from_secs(12));
    proxy.replace_vm(0, Duration::from_secs(5)).unwrap();
    for i in 0..20 {
        proxy.run_http_stream(i % 2, &exchange);
    }
    proxy.advance(Duration::from_secs(12));
    proxy.replace_vm(1, Duration::from_secs(5)).unwrap();
    proxy.advance(Duration::from_secs(25));
    assert_all_running(&proxy);

    let mut reports = receiver.reports();
    reports.sort_by_key(|r| (r.proxy_start_ms, r.sequence));
    assert!(
        reports.len() >= 3,
        "reports before and after the replacements"
    );
    let start = reports[0].proxy_start_ms;
    assert!(
        reports.iter().all(|r| r.proxy_start_ms == start),
        "a replaced worker is not a proxy restart"
    );
    let totals: Vec<f64> = reports.iter().map(requests).collect();
    assert!(
        totals.windows(2).all(|w| w[0] <= w[1]),
        "requests_total went backwards: {totals:?}"
    );
    assert_eq!(*totals.last().unwrap(), 40.0, "{totals:?}");
}

#[test]
fn a_bad_config_passes_traffic_logs_one_error_and_never_traps() {
    let receiver = loopback_receiver();
    let (mut proxy, exchange) = sleep_proxy(
        1,
        r#"{"bogus_key": true, "report_interval": "often"}"#,
        receiver.addr(),
    );
    for _ in 0..5 {
        let outcome = proxy.run_http_stream(0, &exchange);
        assert!(outcome.trapped.is_none());
        assert!(
            outcome.paused_in.is_empty(),
            "traffic must pass: {outcome:?}"
        );
        assert_eq!(outcome.local_response, None);
    }
    proxy.advance(Duration::from_secs(25));
    assert!(
        !matches!(proxy.vm_statuses()[0], VmStatus::Trapped(_)),
        "{:?}",
        proxy.vm_statuses()
    );
    let errors: Vec<_> = proxy
        .logs()
        .into_iter()
        .filter(|l| l.level >= LogLevel::Error)
        .collect();
    assert_eq!(errors.len(), 1, "exactly one error log: {errors:?}");
    assert!(
        proxy.calls().is_empty(),
        "a misconfigured filter posts nothing"
    );
}

#[test]
fn a_down_sink_keeps_memory_bounded_and_totals_arrive_when_it_returns() {
    let port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let sink = SocketAddr::from(([127, 0, 0, 1], port));
    let (mut proxy, exchange) = sleep_proxy(1, "{}", sink);
    let (mut memory, mut shared_data) = (Vec::new(), Vec::new());
    for _ in 0..30 {
        for _ in 0..50 {
            proxy.run_http_stream(0, &exchange);
        }
        proxy.advance(Duration::from_secs(10));
        memory.push(proxy.memory_bytes()[0]);
        shared_data.push(proxy.shared().shared_data_bytes());
    }
    assert_all_running(&proxy);
    assert!(
        proxy.calls().len() >= 20,
        "the filter kept trying: {}",
        proxy.calls().len()
    );
    assert_eq!(
        memory[9], memory[29],
        "linear memory kept growing while the sink was down: {memory:?}"
    );
    assert!(
        shared_data[29] <= shared_data[9],
        "shared data kept growing while the sink was down: {shared_data:?}"
    );

    let receiver = ReportReceiver::start(sink, None, false).unwrap();
    proxy.advance(Duration::from_secs(25));
    let last = receiver
        .reports()
        .into_iter()
        .max_by_key(|r| r.sequence)
        .expect("reports arrive once the sink is back");
    assert_eq!(requests(&last), 1500.0);
    assert!(
        last.stats.unwrap().reports_failed > 0,
        "failed posts are accounted"
    );
}

#[test]
fn a_sink_that_never_answers_times_out_and_is_counted() {
    // Accepts connections (kernel backlog) but never reads or answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let (mut proxy, exchange) = sleep_proxy(
        1,
        r#"{"report_interval": "2s", "report_timeout": "300ms"}"#,
        silent.local_addr().unwrap(),
    );
    proxy.run_http_stream(0, &exchange);
    proxy.advance(Duration::from_secs(7));
    assert_all_running(&proxy);
    assert!(
        proxy.calls().len() >= 2,
        "reports were attempted: {:?}",
        proxy.calls()
    );
    assert!(proxy.calls().iter().all(|c| c.timeout_ms == 300));
    assert_eq!(
        proxy.pending_calls(),
        0,
        "timed-out calls were delivered as failures"
    );

    let receiver = loopback_receiver();
    proxy.set_cluster(SINK_CLUSTER, receiver.addr());
    proxy.advance(Duration::from_secs(5));
    let last = receiver
        .reports()
        .into_iter()
        .max_by_key(|r| r.sequence)
        .expect("reports arrive");
    assert_eq!(requests(&last), 1.0);
    assert!(
        last.stats.unwrap().reports_failed >= 2,
        "timeouts are counted as failed reports"
    );
}

#[test]
fn the_filter_imports_only_what_the_host_provides() {
    let provided = provided_imports();
    let module = shared_module();
    let missing: Vec<String> = module
        .imports()
        .into_iter()
        .filter(|i| !provided.contains(i))
        .collect();
    assert!(missing.is_empty(), "imports the host lacks: {missing:?}");
    let exports = module.exports();
    for export in [
        "_initialize",
        "proxy_abi_version_0_2_1",
        "proxy_on_memory_allocate",
        "proxy_on_context_create",
        "proxy_on_configure",
        "proxy_on_tick",
        "proxy_on_log",
        "proxy_on_http_call_response",
    ] {
        assert!(
            exports.iter().any(|e| e == export),
            "missing export {export}"
        );
    }
}

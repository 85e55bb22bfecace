//! End to end, with real parts wherever they exist: the compiled filter runs in the Envoy
//! stand-in for a scenario, its reports go to a real meshtap-sink, the sink writes remote-write
//! into a real Prometheus 2.42, and PromQL over Prometheus' HTTP API returns exactly the
//! scenario's counts, buckets, sums and labels for both reporters — HTTP requests, and for the
//! mixed scenario TCP connections and bytes (the NETWORK plugin) and gRPC messages — and an
//! evicted idle series goes stale while an active one stays.

#[allow(dead_code)]
mod support;

#[path = "support/sleep_sidecar.rs"]
mod sleep_sidecar;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use meshtap_test_support::prometheus::Prometheus;
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::Clock;
use meshtap_tests::sim::expect::{
    grpc_message_totals, request_totals, tcp_totals, FlowKey, TcpTotals,
};
use meshtap_tests::sim::{self, Scenario, SimOptions, Simulation, CALL_SPACING};
use serde_json::Value;
use support::sink::Sink;

const TOKEN: &str = "e2e-token";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn run_into(sink: &Sink, scenario: Scenario) {
    let options = SimOptions {
        sink_url: Some(sink.url()),
        token: Some(TOKEN.into()),
        print_reports: false,
    };
    sim::run(shared_module(), scenario, &options).expect("the scenario runs");
}

/// `{label value: sample value}` of a `sum by (label)` query evaluated at `at` (ms).
fn by(prom: &Prometheus, at: i64, label: &str, promql: &str) -> BTreeMap<String, f64> {
    prom.query_at(promql, at)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let key = s["metric"][label].as_str().unwrap_or("").to_string();
            let v: f64 = s["value"][1].as_str().unwrap().parse().unwrap();
            (key, v)
        })
        .collect()
}

fn total_is(expected: f64) -> impl Fn(&Value) -> bool {
    move |r| {
        r.as_array()
            .and_then(|a| a.first())
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok())
            == Some(expected)
    }
}

/// Waits (bounded) until the namespace's grand total has arrived, then checks every
/// `(workload, reporter)` total of the scenario exactly.
fn assert_totals_arrive(
    prom: &Prometheus,
    namespace: &str,
    expected: &BTreeMap<(String, String), u64>,
) {
    let grand_total = expected.values().sum::<u64>() as f64;
    let q = format!(r#"sum(istio_requests_total{{namespace="{namespace}"}})"#);
    let r = prom.wait_for(&q, Duration::from_secs(60), total_is(grand_total));
    assert!(total_is(grand_total)(&r), "{q} = {r}, want {grand_total}");
    for ((workload, reporter), n) in expected {
        let who = if reporter == "source" {
            "source_workload"
        } else {
            "destination_workload"
        };
        let q = format!(
            r#"sum(istio_requests_total{{reporter="{reporter}",{who}="{workload}",namespace="{namespace}"}})"#
        );
        assert_eq!(prom.scalar(&q), *n as f64, "{q}");
    }
}

#[test]
fn scenario_counts_arrive_exactly_in_a_real_prometheus() {
    let prom = Prometheus::start();
    let sink = Sink::start(&prom.write_url(), TOKEN);

    // 1. Known counts: fixed latency (10 ms) and sizes (100 B in, 200 B out).
    let known = scenario("known-counts.yaml");
    let expected = request_totals(&known);
    run_into(&sink, known);
    assert_totals_arrive(&prom, "apps", &expected);

    let client = r#"reporter="source",source_workload="sleep-v1",destination_service="httpbin.apps.svc.cluster.local""#;
    let codes = by(
        &prom,
        now_ms(),
        "response_code",
        &format!("sum by (response_code) (istio_requests_total{{{client}}})"),
    );
    let want: BTreeMap<String, f64> = [("0", 1.0), ("200", 10.0), ("404", 3.0), ("503", 3.0)]
        .map(|(k, v)| (k.into(), v))
        .into();
    assert_eq!(codes, want, "response codes seen by the client sidecar");

    let flags = by(
        &prom,
        now_ms(),
        "response_flags",
        &format!("sum by (response_flags) (istio_requests_total{{{client}}})"),
    );
    assert_eq!(flags.get("UF,URX"), Some(&2.0), "{flags:?}");
    assert_eq!(flags.get("DC"), Some(&1.0), "{flags:?}");

    let grpc = by(
        &prom,
        now_ms(),
        "grpc_response_status",
        r#"sum by (grpc_response_status) (istio_requests_total{reporter="source",request_protocol="grpc"})"#,
    );
    let want: BTreeMap<String, f64> = [("0", 3.0), ("14", 1.0)].map(|(k, v)| (k.into(), v)).into();
    assert_eq!(grpc, want);

    let policy = by(
        &prom,
        now_ms(),
        "connection_security_policy",
        r#"sum by (connection_security_policy) (istio_requests_total{reporter="destination",destination_workload="httpbin-v1"})"#,
    );
    assert_eq!(
        policy.get("none"),
        Some(&2.0),
        "plain-text calls: {policy:?}"
    );
    assert!(
        policy.get("mutual_tls").is_some_and(|v| *v > 0.0),
        "{policy:?}"
    );
    assert_eq!(
        by(
            &prom,
            now_ms(),
            "connection_security_policy",
            r#"sum by (connection_security_policy) (istio_requests_total{reporter="source"})"#
        )
        .keys()
        .collect::<Vec<_>>(),
        vec!["unknown"],
        "the client side never knows the security policy"
    );

    let passthrough =
        r#"istio_requests_total{reporter="source",destination_service_name="PassthroughCluster"}"#;
    assert_eq!(prom.scalar(&format!("sum({passthrough})")), 1.0);

    // Histograms: every request took 10 ms, sent 100 B and received 200 B.
    let sleep_src = r#"reporter="source",source_workload="sleep-v1""#;
    let n = expected[&("sleep-v1".to_string(), "source".to_string())] as f64;
    let bucket = |metric: &str, le: &str| {
        prom.scalar(&format!(r#"sum({metric}_bucket{{{sleep_src},le="{le}"}})"#))
    };
    assert_eq!(bucket("istio_request_duration_milliseconds", "5"), 0.0);
    assert_eq!(bucket("istio_request_duration_milliseconds", "10"), n);
    assert_eq!(bucket("istio_request_duration_milliseconds", "+Inf"), n);
    assert_eq!(bucket("istio_request_bytes", "50"), 0.0);
    assert_eq!(bucket("istio_request_bytes", "100"), n);
    assert_eq!(bucket("istio_response_bytes", "100"), 0.0);
    assert_eq!(bucket("istio_response_bytes", "250"), n);
    let sum = |m: &str| prom.scalar(&format!("sum({m}{{{sleep_src}}})"));
    assert_eq!(sum("istio_request_duration_milliseconds_sum"), 10.0 * n);
    assert_eq!(sum("istio_request_duration_milliseconds_count"), n);
    assert_eq!(sum("istio_request_bytes_sum"), 100.0 * n);
    assert_eq!(sum("istio_response_bytes_sum"), 200.0 * n);

    // Target labels the sink adds, and the 25 Istio labels of both reporters.
    let series = prom.query(r#"istio_requests_total{reporter="destination",destination_workload="httpbin-v1",response_code="200",connection_security_policy="none"}"#);
    let m = &series.as_array().expect("a vector")[0]["metric"];
    assert_eq!(m["job"], "integrations/istio");
    assert_eq!(m["namespace"], "apps");
    assert!(m["pod"].as_str().unwrap().starts_with("httpbin-v1"), "{m}");
    assert!(m["instance"].as_str().unwrap().ends_with(":15020"), "{m}");
    for (label, value) in [
        ("source_workload", "sleep-v1"),
        ("source_workload_namespace", "apps"),
        ("source_app", "sleep"),
        ("source_version", "v1"),
        ("destination_workload", "httpbin-v1"),
        ("destination_workload_namespace", "apps"),
        ("destination_app", "httpbin"),
        ("destination_service", "httpbin.apps.svc.cluster.local"),
        ("destination_service_name", "httpbin"),
        ("destination_service_namespace", "apps"),
        ("request_protocol", "http"),
        ("response_flags", "-"),
        ("source_principal", "unknown"),
    ] {
        assert_eq!(m[label], value, "{label} in {m}");
    }
    for label in meshtap_report::schema::HTTP_LABELS {
        if label != "grpc_response_status" {
            // Empty values are absent in Prometheus, as remote-write requires.
            assert!(m.get(label).is_some(), "{label} missing from {m}");
        }
    }

    // 2. Bookinfo: every (workload, reporter) total, and a latency quantile in range.
    let bookinfo = scenario("bookinfo.yaml");
    let expected = request_totals(&bookinfo);
    run_into(&sink, bookinfo);
    assert_totals_arrive(&prom, "bookinfo", &expected);
    // productpage → details latencies are uniform in [2, 20] ms.
    let p50 = prom.scalar(
        r#"histogram_quantile(0.5, sum by (le) (istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload="details-v1"}))"#,
    );
    assert!(
        (2.0..=25.0).contains(&p50),
        "p50 {p50} outside the scenario's latency range"
    );
}

/// `sum(<metric>{reporter, source_workload, destination_workload})` of a flow.
fn flow_sum(prom: &Prometheus, at: i64, metric: &str, (reporter, from, to): &FlowKey) -> f64 {
    prom.scalar_at(&format!(
        r#"sum({metric}{{reporter="{reporter}",source_workload="{from}",destination_workload="{to}"}})"#
    ), at)
}

#[test]
fn mixed_http_grpc_and_tcp_arrive_exactly_in_a_real_prometheus() {
    let prom = Prometheus::start();
    let sink = Sink::start(&prom.write_url(), TOKEN);
    let mixed = scenario("mixed.yaml");
    let requests = request_totals(&mixed);
    let tcp = tcp_totals(&mixed).unwrap();
    let grpc = grpc_message_totals(&mixed).unwrap();
    let options = SimOptions {
        sink_url: Some(sink.url()),
        token: Some(TOKEN.into()),
        print_reports: false,
    };
    let clock = Clock::manual_now();
    let mut sim = Simulation::start(shared_module(), mixed, &options, clock.clone())
        .expect("the scenario starts");
    sim.run_counts(CALL_SPACING);
    sim.flush();
    // The simulated clock runs ahead of the wall clock (connections last 25 s): query at the
    // simulated time the run ended, after its last report.
    let at = (clock.now_nanos() / 1_000_000) as i64;

    // Connections that outlive a report interval close later than they open: wait for the
    // final totals of every TCP family before comparing flows.
    let grand = |pick: fn(&TcpTotals) -> u64| tcp.values().map(pick).sum::<u64>() as f64;
    for (metric, want) in [
        ("istio_tcp_connections_opened_total", grand(|t| t.opened)),
        ("istio_tcp_connections_closed_total", grand(|t| t.closed)),
        ("istio_tcp_sent_bytes_total", grand(|t| t.sent_bytes)),
    ] {
        let q = format!("sum({metric})");
        let r = prom.wait_for_at(&q, at, Duration::from_secs(60), total_is(want));
        assert!(total_is(want)(&r), "{q} = {r}, want {want}");
    }
    for ((workload, reporter), n) in &requests {
        let who = if reporter == "source" {
            "source_workload"
        } else {
            "destination_workload"
        };
        let q = format!(r#"sum(istio_requests_total{{reporter="{reporter}",{who}="{workload}"}})"#);
        assert_eq!(prom.scalar_at(&q, at), *n as f64, "{q}");
    }

    for (flow, t) in &tcp {
        for (metric, want) in [
            ("istio_tcp_connections_opened_total", t.opened),
            ("istio_tcp_connections_closed_total", t.closed),
            ("istio_tcp_received_bytes_total", t.received_bytes),
            ("istio_tcp_sent_bytes_total", t.sent_bytes),
        ] {
            assert_eq!(
                flow_sum(&prom, at, metric, flow),
                want as f64,
                "{metric} {flow:?}"
            );
        }
    }
    for (flow, m) in &grpc {
        for (metric, want) in [
            ("istio_request_messages_total", m.request),
            ("istio_response_messages_total", m.response),
        ] {
            assert_eq!(
                flow_sum(&prom, at, metric, flow),
                want as f64,
                "{metric} {flow:?}"
            );
        }
    }

    // TCP labels: protocol, security policy per side, passthrough naming.
    assert_eq!(
        by(
            &prom,
            at,
            "request_protocol",
            "sum by (request_protocol) (istio_tcp_connections_opened_total)"
        )
        .keys()
        .collect::<Vec<_>>(),
        vec!["tcp"]
    );
    let policy = by(
        &prom,
        at,
        "destination_workload",
        r#"sum by (destination_workload) (istio_tcp_connections_opened_total{reporter="destination",connection_security_policy="mutual_tls"})"#,
    );
    assert_eq!(
        policy.keys().collect::<Vec<_>>(),
        vec!["mysql-v1"],
        "{policy:?}"
    );
    let plain = r#"istio_tcp_connections_opened_total{reporter="destination",destination_workload="redis-v1",connection_security_policy="none"}"#;
    assert_eq!(prom.scalar_at(&format!("sum({plain})"), at), 4.0);
    let passthrough = r#"istio_tcp_connections_opened_total{reporter="source",destination_service_name="PassthroughCluster"}"#;
    assert_eq!(prom.scalar_at(&format!("sum({passthrough})"), at), 3.0);
    let series = prom.query_at(
        r#"istio_tcp_sent_bytes_total{reporter="source",destination_workload="mysql-v1"}"#,
        at,
    );
    let m = &series.as_array().expect("a vector")[0]["metric"];
    for label in meshtap_report::schema::TCP_LABELS {
        assert!(m.get(label).is_some(), "{label} missing from {m}");
    }
    let grpc_labels = prom.query_at("istio_request_messages_total", at);
    let m = &grpc_labels.as_array().expect("a vector")[0]["metric"];
    assert!(m.get("response_code").is_none(), "peer labels only: {m}");

    // One istio_build per sidecar, from its HTTP plugin.
    let pods =
        r#"count(count by (pod) (istio_tcp_connections_opened_total or istio_requests_total))"#;
    assert_eq!(
        prom.scalar_at(r#"count(istio_build{component="proxy"})"#, at),
        prom.scalar_at(pods, at)
    );
}

#[test]
fn an_evicted_idle_series_goes_stale_while_an_active_one_stays() {
    let prom = Prometheus::start();
    let sink = Sink::start(&prom.write_url(), TOKEN);
    let sink_addr = sink.running.as_ref().unwrap().local_addr();
    let config = format!(
        r#"{{"report_interval":"5s","series_idle_timeout":"20s","ingest_token":"{TOKEN}"}}"#
    );
    let (mut proxy, clock, exchange) = sleep_sidecar::start(2, sink_addr, &config);
    let now = || (clock.now_nanos() / 1_000_000) as i64;
    let codes = r#"sum by (response_code) (istio_requests_total{reporter="source"})"#;
    let both = |r: &Value| r.as_array().is_some_and(|a| a.len() == 2);

    proxy.run_http_stream(0, &exchange(404));
    proxy.run_http_stream(1, &exchange(404));
    let mut active = 0.0;
    for step in 0..3 {
        proxy.run_http_stream(step % 2, &exchange(200));
        active += 1.0;
        proxy.advance(Duration::from_secs(5));
    }
    let before = now();
    prom.wait_for_at(codes, before, Duration::from_secs(60), both);
    assert_eq!(by(&prom, before, "response_code", codes)["404"], 2.0);

    for step in 0..8 {
        proxy.run_http_stream(step % 2, &exchange(200));
        active += 1.0;
        proxy.advance(Duration::from_secs(5));
    }
    proxy.advance(Duration::from_secs(10));
    let after = now();
    let only_active = BTreeMap::from([("200".to_string(), active)]);
    let want = active.to_string();
    let r = prom.wait_for_at(codes, after, Duration::from_secs(60), |r| {
        r.as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["value"][1].as_str() == Some(want.as_str()))
    });
    assert_eq!(
        by(&prom, after, "response_code", codes),
        only_active,
        "the evicted 404 series is stale: {r}"
    );
    assert_eq!(
        by(&prom, before, "response_code", codes)["404"],
        2.0,
        "its history stays"
    );
}

#[test]
fn extra_dimensions_and_custom_buckets_arrive_exactly_in_a_real_prometheus() {
    let prom = Prometheus::start();
    let sink = Sink::start(&prom.write_url(), TOKEN);
    let options = SimOptions {
        sink_url: Some(sink.url()),
        token: Some(TOKEN.into()),
        print_reports: false,
    };
    let clock = Clock::manual_now();
    let custom = scenario("custom-dimensions.yaml");
    let mut sim = Simulation::start(shared_module(), custom, &options, clock.clone())
        .expect("the scenario starts");
    sim.run_counts(CALL_SPACING);
    sim.flush();
    let at = (clock.now_nanos() / 1_000_000) as i64;
    let r = prom.wait_for_at(
        "sum(istio_requests_total)",
        at,
        Duration::from_secs(60),
        total_is(12.0),
    );
    assert!(total_is(12.0)(&r), "sum(istio_requests_total) = {r}");

    let counts = |pairs: &[(&str, f64)]| -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    for reporter in ["source", "destination"] {
        let q = format!(r#"sum by (user) (istio_requests_total{{reporter="{reporter}"}})"#);
        assert_eq!(
            by(&prom, at, "user", &q),
            counts(&[("alice", 3.0), ("bob", 2.0), ("unknown", 1.0)]),
            "{q}"
        );
        let q = format!(r#"sum by (upstream) (istio_requests_total{{reporter="{reporter}"}})"#);
        assert_eq!(
            by(&prom, at, "upstream", &q),
            counts(&[("10.1.0.11:8000", 6.0)]),
            "{q}"
        );

        let q = format!(
            r#"sum by (le) (istio_request_duration_milliseconds_bucket{{reporter="{reporter}"}})"#
        );
        assert_eq!(
            by(&prom, at, "le", &q),
            counts(&[("5", 3.0), ("50", 5.0), ("500", 5.0), ("+Inf", 6.0)]),
            "{q}: exactly the istiocustom bounds, cumulative"
        );
        let q = format!(
            r#"sum by (le) (istio_request_duration_milliseconds_bucket{{reporter="{reporter}",user="bob"}})"#
        );
        assert_eq!(
            by(&prom, at, "le", &q),
            counts(&[("5", 0.0), ("50", 2.0), ("500", 2.0), ("+Inf", 2.0)]),
            "{q}"
        );
        let q = format!(r#"sum by (le) (istio_response_bytes_bucket{{reporter="{reporter}"}})"#);
        assert_eq!(
            by(&prom, at, "le", &q),
            counts(&[("150", 2.0), ("250", 6.0), ("+Inf", 6.0)]),
            "{q}: the family's own bounds"
        );
    }
    let with_user = prom.query_at(r#"istio_request_bytes_bucket{user!=""}"#, at);
    assert_eq!(
        with_user.as_array().map(Vec::len),
        Some(0),
        "no extra label: {with_user}"
    );
    let q = r#"sum by (le) (istio_request_bytes_bucket)"#;
    assert_eq!(
        by(&prom, at, "le", q),
        counts(&[("5", 0.0), ("50", 0.0), ("500", 12.0), ("+Inf", 12.0)]),
        "{q}"
    );
}

//! End to end, with real parts wherever they exist: the compiled filter runs in the Envoy
//! stand-in for a scenario, its reports go to a real meshtap-sink, the sink writes remote-write
//! into a real Prometheus 2.42, and PromQL over Prometheus' HTTP API returns exactly the
//! scenario's counts, buckets, sums and labels for both reporters.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::prometheus::Prometheus;
use meshtap_tests::sim::{self, expect::request_totals, Scenario, SimOptions};
use serde_json::Value;
use support::sink::Sink;

const TOKEN: &str = "e2e-token";

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

/// `{label value: sample value}` of a `sum by (label)` query.
fn by(prom: &Prometheus, label: &str, promql: &str) -> BTreeMap<String, f64> {
    prom.query(promql)
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
        "response_code",
        &format!("sum by (response_code) (istio_requests_total{{{client}}})"),
    );
    let want: BTreeMap<String, f64> = [("0", 1.0), ("200", 10.0), ("404", 3.0), ("503", 3.0)]
        .map(|(k, v)| (k.into(), v))
        .into();
    assert_eq!(codes, want, "response codes seen by the client sidecar");

    let flags = by(
        &prom,
        "response_flags",
        &format!("sum by (response_flags) (istio_requests_total{{{client}}})"),
    );
    assert_eq!(flags.get("UF,URX"), Some(&2.0), "{flags:?}");
    assert_eq!(flags.get("DC"), Some(&1.0), "{flags:?}");

    let grpc = by(
        &prom,
        "grpc_response_status",
        r#"sum by (grpc_response_status) (istio_requests_total{reporter="source",request_protocol="grpc"})"#,
    );
    let want: BTreeMap<String, f64> = [("0", 3.0), ("14", 1.0)].map(|(k, v)| (k.into(), v)).into();
    assert_eq!(grpc, want);

    let policy = by(
        &prom,
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

//! The compiled filter under the host, driven by `tests/scenarios/known-counts.yaml`: the final
//! report of every pod holds exactly the expected series — all 25 labels of both reporters
//! (unknown/latest peers, peers known only from certificates, gRPC, 4xx/5xx, response flags,
//! a downstream disconnect, passthrough, plain text, no-sidecar destination) — with exact
//! counts, bucket positions and sums, summed over two workers.

use std::collections::BTreeMap;
use std::path::Path;

use meshtap_report::schema::{
    bucket_index, DEFAULT_BUCKETS, HTTP_LABELS, REQUESTS_TOTAL, REQUEST_BYTES, REQUEST_DURATION,
    RESPONSE_BYTES,
};
use meshtap_report::{MetricFamily, Report};
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::sim::{self, Scenario, SimOptions};

type Labels = BTreeMap<&'static str, String>;

fn scenario(name: &str) -> Scenario {
    Scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(name),
    )
    .unwrap()
}

/// The last report of each pod.
fn last_by_pod(reports: &[Report]) -> BTreeMap<String, Report> {
    let mut last: BTreeMap<String, Report> = BTreeMap::new();
    for report in reports {
        let pod = report
            .proxy
            .as_ref()
            .expect("report names its proxy")
            .pod
            .clone();
        if last.get(&pod).is_none_or(|r| r.sequence < report.sequence) {
            last.insert(pod, report.clone());
        }
    }
    last
}

fn by_workload(reports: &[Report]) -> BTreeMap<String, Report> {
    last_by_pod(reports)
        .into_values()
        .map(|r| (r.proxy.as_ref().unwrap().workload.clone(), r))
        .collect()
}

fn family<'a>(report: &'a Report, name: &str) -> &'a MetricFamily {
    report
        .families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| {
            panic!(
                "family {name} missing; families: {:?}",
                report.families.iter().map(|f| &f.name).collect::<Vec<_>>()
            )
        })
}

fn with(base: &Labels, changes: &[(&'static str, &str)]) -> Labels {
    let mut labels = base.clone();
    for (k, v) in changes {
        assert!(
            labels.contains_key(k) || HTTP_LABELS.contains(k),
            "unknown label {k}"
        );
        labels.insert(k, v.to_string());
    }
    labels
}

fn values(labels: &Labels) -> Vec<String> {
    HTTP_LABELS
        .iter()
        .map(|name| {
            labels
                .get(name)
                .unwrap_or_else(|| panic!("expected label {name} not set"))
                .clone()
        })
        .collect()
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// Asserts a pod's four HTTP families hold exactly `expected` (label set → request count) with
/// every request at 10 ms, 100 request bytes and 200 response bytes.
fn assert_series(report: &Report, expected: &[(Labels, u64)]) {
    let want: BTreeMap<Vec<String>, u64> = expected.iter().map(|(l, n)| (values(l), *n)).collect();
    assert_eq!(
        want.len(),
        expected.len(),
        "the expectation repeats a label set"
    );
    for name in [
        REQUESTS_TOTAL,
        REQUEST_DURATION,
        REQUEST_BYTES,
        RESPONSE_BYTES,
    ] {
        let family = family(report, name);
        assert_eq!(
            family.label_names,
            HTTP_LABELS.map(String::from).to_vec(),
            "{name} label names"
        );
        let mut got = BTreeMap::new();
        for series in &family.series {
            assert!(
                got.insert(series.label_values.clone(), series).is_none(),
                "{name}: one label set reported twice: {:?}",
                series.label_values
            );
        }
        let got_keys: Vec<_> = got.keys().cloned().collect();
        let want_keys: Vec<_> = want.keys().cloned().collect();
        assert_eq!(got_keys, want_keys, "{name}: label sets differ");
        for (labels, n) in &want {
            let series = got[labels];
            if name == REQUESTS_TOTAL {
                assert_eq!(series.value, *n as f64, "{name} {labels:?}");
                continue;
            }
            let observed = match name {
                REQUEST_DURATION => 10.0,
                REQUEST_BYTES => 100.0,
                _ => 200.0,
            };
            assert_eq!(family.bounds, DEFAULT_BUCKETS.to_vec(), "{name} bounds");
            let mut buckets = vec![0u64; DEFAULT_BUCKETS.len() + 1];
            buckets[bucket_index(&DEFAULT_BUCKETS, observed)] = *n;
            assert_eq!(series.bucket_counts, buckets, "{name} buckets {labels:?}");
            assert_eq!(series.sum, observed * *n as f64, "{name} sum {labels:?}");
        }
    }
}

const SLEEP_SA: &str = "spiffe://cluster.local/ns/apps/sa/sleep";
const HTTPBIN_SA: &str = "spiffe://cluster.local/ns/apps/sa/httpbin";
const ECHO_SA: &str = "spiffe://cluster.local/ns/apps/sa/echo";

fn source_base() -> Labels {
    labels(&[
        ("reporter", "source"),
        ("source_workload", "sleep-v1"),
        ("source_canonical_service", "sleep"),
        ("source_canonical_revision", "v1"),
        ("source_workload_namespace", "apps"),
        ("source_principal", SLEEP_SA),
        ("source_app", "sleep"),
        ("source_version", "v1"),
        ("source_cluster", "Kubernetes"),
        ("request_protocol", "http"),
        ("grpc_response_status", ""),
        ("response_flags", "-"),
        ("connection_security_policy", "unknown"),
    ])
}

fn httpbin_destination() -> Vec<(&'static str, &'static str)> {
    vec![
        ("destination_workload", "httpbin-v1"),
        ("destination_workload_namespace", "apps"),
        ("destination_principal", HTTPBIN_SA),
        ("destination_app", "httpbin"),
        ("destination_version", "v1"),
        ("destination_service", "httpbin.apps.svc.cluster.local"),
        ("destination_canonical_service", "httpbin"),
        ("destination_canonical_revision", "v1"),
        ("destination_service_name", "httpbin"),
        ("destination_service_namespace", "apps"),
        ("destination_cluster", "Kubernetes"),
    ]
}

fn echo_destination(local_version: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("destination_workload", "echo-grpc"),
        ("destination_workload_namespace", "apps"),
        ("destination_principal", ECHO_SA),
        ("destination_app", "echo"),
        ("destination_version", local_version),
        ("destination_service", "echo.apps.svc.cluster.local"),
        ("destination_canonical_service", "echo"),
        ("destination_canonical_revision", "latest"),
        ("destination_service_name", "echo"),
        ("destination_service_namespace", "apps"),
        ("destination_cluster", "Kubernetes"),
    ]
}

#[test]
fn known_counts_give_exactly_the_expected_series_for_both_reporters() {
    let reports = sim::run(
        shared_module(),
        scenario("known-counts.yaml"),
        &SimOptions::default(),
    )
    .unwrap();
    let last = by_workload(&reports);
    assert_eq!(
        last.keys().cloned().collect::<Vec<_>>(),
        vec!["echo-grpc", "httpbin-v1", "sleep-v1"],
        "one reporting proxy per sidecar workload"
    );

    // Client side (reporter=source).
    let to_httpbin = with(&source_base(), &httpbin_destination());
    let to_echo = with(
        &with(&source_base(), &echo_destination("unknown")),
        &[("request_protocol", "grpc"), ("response_code", "200")],
    );
    let endpoint_fallback_httpbin = with(
        &to_httpbin,
        &[
            ("source_principal", "unknown"),
            ("destination_principal", "unknown"),
            ("destination_app", "unknown"),
            ("destination_version", "unknown"),
            ("response_code", "503"),
            ("response_flags", "UF,URX"),
        ],
    );
    let passthrough = with(
        &source_base(),
        &[
            ("source_principal", "unknown"),
            ("destination_workload", "unknown"),
            ("destination_workload_namespace", "unknown"),
            ("destination_principal", "unknown"),
            ("destination_app", "unknown"),
            ("destination_version", "unknown"),
            ("destination_service", "api.example.com"),
            ("destination_canonical_service", "unknown"),
            ("destination_canonical_revision", "latest"),
            ("destination_service_name", "PassthroughCluster"),
            ("destination_service_namespace", "unknown"),
            ("destination_cluster", "unknown"),
            ("response_code", "200"),
        ],
    );
    let to_legacy = with(
        &source_base(),
        &[
            ("source_principal", "unknown"),
            ("destination_workload", "legacy"),
            ("destination_workload_namespace", "old"),
            ("destination_principal", "unknown"),
            ("destination_app", "unknown"),
            ("destination_version", "unknown"),
            ("destination_service", "legacy.old.svc.cluster.local"),
            ("destination_canonical_service", "legacy"),
            ("destination_canonical_revision", "v0"),
            ("destination_service_name", "legacy"),
            ("destination_service_namespace", "old"),
            ("destination_cluster", "Kubernetes"),
            ("response_code", "200"),
        ],
    );
    assert_series(
        &last["sleep-v1"],
        &[
            (with(&to_httpbin, &[("response_code", "200")]), 6),
            (with(&to_httpbin, &[("response_code", "404")]), 3),
            (with(&to_httpbin, &[("response_code", "503")]), 1),
            (with(&to_echo, &[("grpc_response_status", "0")]), 3),
            (with(&to_echo, &[("grpc_response_status", "14")]), 1),
            (endpoint_fallback_httpbin.clone(), 2),
            (passthrough, 1),
            // Plain text: no certificates, and the exchanged peer metadata carries no identity
            // (Istio's `convertStructToWorkloadMetadata`), so both principals are unknown.
            (
                with(
                    &to_httpbin,
                    &[
                        ("response_code", "200"),
                        ("source_principal", "unknown"),
                        ("destination_principal", "unknown"),
                    ],
                ),
                2,
            ),
            (to_legacy, 3),
            (
                with(
                    &endpoint_fallback_httpbin,
                    &[
                        ("source_principal", SLEEP_SA),
                        ("destination_principal", HTTPBIN_SA),
                        ("response_code", "200"),
                        ("response_flags", "-"),
                    ],
                ),
                2,
            ),
            (
                with(
                    &endpoint_fallback_httpbin,
                    &[
                        ("source_principal", SLEEP_SA),
                        ("destination_principal", HTTPBIN_SA),
                        ("response_code", "0"),
                        ("response_flags", "DC"),
                    ],
                ),
                1,
            ),
        ],
    );

    // Server side (reporter=destination).
    let destination_base = with(
        &labels(&[
            ("reporter", "destination"),
            ("source_workload", "sleep-v1"),
            ("source_canonical_service", "sleep"),
            ("source_canonical_revision", "v1"),
            ("source_workload_namespace", "apps"),
            ("source_principal", SLEEP_SA),
            ("source_app", "sleep"),
            ("source_version", "v1"),
            ("source_cluster", "Kubernetes"),
            ("request_protocol", "http"),
            ("grpc_response_status", ""),
            ("response_flags", "-"),
            ("connection_security_policy", "mutual_tls"),
        ]),
        &[],
    );
    let at_httpbin = with(&destination_base, &httpbin_destination());
    assert_series(
        &last["httpbin-v1"],
        &[
            (with(&at_httpbin, &[("response_code", "200")]), 6),
            (with(&at_httpbin, &[("response_code", "404")]), 3),
            (with(&at_httpbin, &[("response_code", "503")]), 1),
            (
                with(
                    &at_httpbin,
                    &[
                        ("response_code", "200"),
                        ("source_principal", "unknown"),
                        ("destination_principal", "unknown"),
                        ("connection_security_policy", "none"),
                    ],
                ),
                2,
            ),
            (
                with(
                    &at_httpbin,
                    &[
                        ("response_code", "200"),
                        ("source_workload", "unknown"),
                        ("source_canonical_service", "unknown"),
                        ("source_canonical_revision", "latest"),
                        ("source_app", "unknown"),
                        ("source_version", "unknown"),
                        ("source_cluster", "unknown"),
                    ],
                ),
                2,
            ),
            (with(&at_httpbin, &[("response_code", "0")]), 1),
        ],
    );
    let at_echo = with(
        &with(&destination_base, &echo_destination("")),
        &[("request_protocol", "grpc"), ("response_code", "200")],
    );
    assert_series(
        &last["echo-grpc"],
        &[
            (with(&at_echo, &[("grpc_response_status", "0")]), 3),
            (with(&at_echo, &[("grpc_response_status", "14")]), 1),
        ],
    );

    for report in last.values() {
        let stats = report.stats.clone().expect("reports carry filter stats");
        assert_eq!(
            stats.worker_vms, 2,
            "both workers' totals are in the report"
        );
        assert_eq!(stats.overflow_observations, 0);
        meshtap_report::validate(report).expect("the final report is valid");
    }
}

#[test]
fn header_only_exchange_still_identifies_both_peers() {
    let reports = sim::run(
        shared_module(),
        scenario("header-exchange.yaml"),
        &SimOptions::default(),
    )
    .unwrap();
    let last = by_workload(&reports);
    let client = with(
        &with(&source_base(), &httpbin_destination()),
        &[("response_code", "200")],
    );
    assert_series(&last["sleep-v1"], &[(client, 5)]);
    let server = with(
        &labels(&[
            ("reporter", "destination"),
            ("source_workload", "sleep-v1"),
            ("source_canonical_service", "sleep"),
            ("source_canonical_revision", "v1"),
            ("source_workload_namespace", "apps"),
            ("source_principal", SLEEP_SA),
            ("source_app", "sleep"),
            ("source_version", "v1"),
            ("source_cluster", "Kubernetes"),
            ("request_protocol", "http"),
            ("response_code", "200"),
            ("grpc_response_status", ""),
            ("response_flags", "-"),
            ("connection_security_policy", "mutual_tls"),
        ]),
        &httpbin_destination(),
    );
    assert_series(&last["httpbin-v1"], &[(server, 5)]);
}

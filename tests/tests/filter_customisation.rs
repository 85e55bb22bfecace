//! The compiled filter under the host with `tests/scenarios/custom-dimensions.yaml`: extra
//! dimensions from a request header and a property (`overrides[].tags`) and custom histogram
//! buckets (`histogram_buckets`) give exactly the expected series on both sidecars — the new
//! label per call, `unknown` without the header, the upserted families only, and the counts per
//! configured bucket — summed over two workers; and each header or property dimension costs
//! exactly one host call per request, a literal none.

use std::collections::BTreeMap;
use std::path::Path;

use meshtap_report::schema::{
    HTTP_LABELS, REQUESTS_TOTAL, REQUEST_BYTES, REQUEST_DURATION, RESPONSE_BYTES,
};
use meshtap_report::{MetricFamily, Report};
use meshtap_tests::bench::{FilterBench, Unit};
use meshtap_tests::filter_wasm::{locate, shared_module};
use meshtap_tests::sim::{self, Scenario, SimOptions};

fn family<'a>(report: &'a Report, name: &str) -> &'a MetricFamily {
    report
        .families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("family {name} missing"))
}

/// The last report of each workload.
fn last_by_workload(reports: &[Report]) -> BTreeMap<String, Report> {
    let mut last: BTreeMap<String, Report> = BTreeMap::new();
    for report in reports {
        let workload = report.proxy.as_ref().unwrap().workload.clone();
        if last
            .get(&workload)
            .is_none_or(|r| r.sequence < report.sequence)
        {
            last.insert(workload, report.clone());
        }
    }
    last
}

/// A label's value in a series.
fn label<'a>(f: &'a MetricFamily, series: usize, name: &str) -> &'a str {
    let at = f.label_names.iter().position(|n| n == name).unwrap();
    &f.series[series].label_values[at]
}

#[test]
fn header_and_property_dimensions_and_custom_buckets_give_exact_series() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/custom-dimensions.yaml");
    let scenario = Scenario::load(&path).unwrap();
    let reports = sim::run(shared_module(), scenario, &SimOptions::default()).unwrap();
    let last = last_by_workload(&reports);
    let server = "10.1.0.11:8000";
    for (workload, reporter) in [("sleep-v1", "source"), ("httpbin-v1", "destination")] {
        let report = &last[workload];
        meshtap_report::validate(report).unwrap();

        let total = family(report, REQUESTS_TOTAL);
        assert_eq!(total.label_names[..25], HTTP_LABELS);
        assert_eq!(
            total.label_names[25..],
            ["user", "upstream"],
            "in config order"
        );
        let mut by_user: BTreeMap<(String, String), f64> = BTreeMap::new();
        for (i, s) in total.series.iter().enumerate() {
            assert_eq!(label(total, i, "reporter"), reporter);
            let key = (
                label(total, i, "user").to_string(),
                label(total, i, "upstream").to_string(),
            );
            *by_user.entry(key).or_default() += s.value;
        }
        let expected: BTreeMap<(String, String), f64> = [
            (("alice".into(), server.into()), 3.0),
            (("bob".into(), server.into()), 2.0),
            (("unknown".into(), server.into()), 1.0),
        ]
        .into();
        assert_eq!(by_user, expected, "{workload}");
        assert_eq!(total.series.len(), 3, "{workload}: one series per user");

        let duration = family(report, REQUEST_DURATION);
        assert_eq!(duration.label_names.len(), 26);
        assert_eq!(duration.label_names[25], "user");
        assert_eq!(duration.bounds, [5.0, 50.0, 500.0], "istiocustom");
        let mut buckets: BTreeMap<&str, (Vec<u64>, f64)> = BTreeMap::new();
        for (i, s) in duration.series.iter().enumerate() {
            buckets.insert(label(duration, i, "user"), (s.bucket_counts.clone(), s.sum));
        }
        let expected: BTreeMap<&str, (Vec<u64>, f64)> = [
            ("alice", (vec![3, 0, 0, 0], 9.0)),
            ("bob", (vec![0, 2, 0, 0], 80.0)),
            ("unknown", (vec![0, 0, 0, 1], 700.0)),
        ]
        .into();
        assert_eq!(buckets, expected, "{workload}");

        let request_bytes = family(report, REQUEST_BYTES);
        assert_eq!(request_bytes.label_names, HTTP_LABELS, "no extra label");
        assert_eq!(request_bytes.bounds, [5.0, 50.0, 500.0]);
        assert_eq!(request_bytes.series.len(), 1, "the users are summed");
        assert_eq!(request_bytes.series[0].bucket_counts, [0, 0, 6, 0]);

        let response_bytes = family(report, RESPONSE_BYTES);
        assert_eq!(
            response_bytes.bounds,
            [150.0, 250.0],
            "the family's own list"
        );
        assert_eq!(response_bytes.series.len(), 1);
        assert_eq!(response_bytes.series[0].bucket_counts, [2, 4, 0]);
        assert_eq!(response_bytes.series[0].sum, 1000.0);
    }
}

#[test]
fn each_header_or_property_dimension_costs_one_host_call_per_request() {
    let wasm = locate().unwrap_or_else(|e| panic!("{e}"));
    let calls = |config: &str| {
        let mut bench = FilterBench::new(&wasm, config).unwrap();
        bench.run(Unit::Request, 20);
        bench.run(Unit::Request, 100).host_calls_per_unit
    };
    let plain = calls("{}");
    let customised = calls(
        r#"{"overrides": [{"metric": "ALL", "tags": {
            "user": "request.headers['x-user']",
            "upstream": "upstream.address",
            "tier": "'gold'"}}],
            "histogram_buckets": {"istiocustom": [5, 50]}}"#,
    );
    assert_eq!(customised - plain, 2.0, "{plain} → {customised}");
}

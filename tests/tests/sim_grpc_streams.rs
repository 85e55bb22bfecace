//! Long gRPC streams in a count-mode `meshtap-sim` run: a stream open for 30 s with its
//! messages spread over that time is reported by both sidecars over several report intervals —
//! the message totals of successive reports grow in steps (never backwards) and end at the
//! scenario's totals, while `istio_requests_total` counts the stream once, at its end.

use std::collections::BTreeMap;

use meshtap_report::schema::{REQUESTS_TOTAL, REQUEST_MESSAGES, RESPONSE_MESSAGES};
use meshtap_report::Report;
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::Clock;
use meshtap_tests::sim::{Scenario, SimOptions, Simulation, CALL_SPACING};

/// One stream of 6 request and 12 response messages (20-byte frames in four chunks each way,
/// a request message straddling two chunks), open for 30 s, reported every 5 s.
const SCENARIO: &str = "
seed: 5
plugin_config: {report_interval: 5s}
workloads:
  - {name: client-v1, namespace: apps, app: client, version: v1, workers: 1}
  - {name: feed-v1, namespace: apps, app: feed, version: v1, port: 9000, workers: 1}
calls:
  - from: client-v1
    to: feed-v1
    count: 1
    protocol: grpc
    path: /apps.Feed/Watch
    latency_ms: 30000
    request_messages: 6
    response_messages: 12
    request_bytes: 120
    response_bytes: 240
    chunks: 4
";

/// `(request, response, requests_total)` of one report, 0 where it has no series.
fn totals(report: &Report) -> (u64, u64, u64) {
    let value = |name: &str| -> u64 {
        report
            .families
            .iter()
            .filter(|f| f.name == name)
            .flat_map(|f| &f.series)
            .map(|s| s.value as u64)
            .sum()
    };
    (
        value(REQUEST_MESSAGES),
        value(RESPONSE_MESSAGES),
        value(REQUESTS_TOTAL),
    )
}

#[test]
fn a_long_stream_is_reported_in_steps_over_several_intervals() {
    let scenario = Scenario::from_yaml(SCENARIO).unwrap();
    let mut sim = Simulation::start(
        shared_module(),
        scenario,
        &SimOptions::default(),
        Clock::manual_now(),
    )
    .unwrap();
    sim.run_counts(CALL_SPACING);
    assert_eq!(sim.open_connections(), 0, "the stream ended on both sides");
    sim.flush();

    let mut by_pod: BTreeMap<String, Vec<&Report>> = BTreeMap::new();
    let reports = sim.reports();
    for report in &reports {
        let pod = report.proxy.as_ref().unwrap().pod.clone();
        by_pod.entry(pod).or_default().push(report);
    }
    assert_eq!(by_pod.len(), 2, "both sidecars report");
    for (pod, mut reports) in by_pod {
        reports.sort_by_key(|r| r.sequence);
        let seen: Vec<(u64, u64, u64)> = reports.iter().map(|r| totals(r)).collect();
        for pair in seen.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(
                a.0 <= b.0 && a.1 <= b.1 && a.2 <= b.2,
                "{pod}: totals went backwards: {seen:?}"
            );
        }
        assert_eq!(seen.last(), Some(&(6, 12, 1)), "{pod}: {seen:?}");
        // Messages were reported before the stream ended, in more than two steps.
        let while_open: Vec<(u64, u64)> = seen
            .iter()
            .filter(|t| t.2 == 0 && t.0 + t.1 > 0)
            .map(|t| (t.0, t.1))
            .collect();
        let steps: std::collections::BTreeSet<(u64, u64)> = while_open.iter().copied().collect();
        assert!(
            steps.len() >= 3,
            "{pod}: messages of the open stream in at least three reports: {seen:?}"
        );
    }
}

//! `scenarios/mixed.yaml` (HTTP, unary and streaming gRPC, TCP over mTLS, plaintext and
//! passthrough) through the compiled filter: every sidecar runs both plugins (HTTP and NETWORK
//! roots, reporting on their own channels), and the last reports hold exactly the scenario's
//! request totals, TCP connections opened/closed and bytes each way per (reporter, source,
//! destination) — connections that outlive a report interval included — and gRPC request and
//! response messages; `istio_build` comes from the HTTP plugin only.

use std::collections::BTreeMap;
use std::path::Path;

use meshtap_report::Report;
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::{Clock, VmStatus};
use meshtap_tests::sim::expect::{grpc_message_totals, request_totals, tcp_totals, FlowKey};
use meshtap_tests::sim::run::TCP_PLUGIN;
use meshtap_tests::sim::{Scenario, SimOptions, Simulation, CALL_SPACING};

/// The last report of every (pod, channel): the HTTP and the network plugin report apart.
fn last_by_reporter(reports: &[Report]) -> BTreeMap<(String, String), &Report> {
    let mut last: BTreeMap<(String, String), &Report> = BTreeMap::new();
    for report in reports {
        let pod = report
            .proxy
            .as_ref()
            .expect("report names its proxy")
            .pod
            .clone();
        let key = (pod, report.channel.clone());
        if last.get(&key).is_none_or(|r| r.sequence < report.sequence) {
            last.insert(key, report);
        }
    }
    last
}

/// `{(reporter, source_workload, destination_workload): [values of each family]}` over the
/// last reports, for the given families.
fn flows(reports: &[&Report], families: &[&str]) -> BTreeMap<FlowKey, Vec<u64>> {
    let mut out: BTreeMap<FlowKey, Vec<u64>> = BTreeMap::new();
    for report in reports {
        for (i, name) in families.iter().enumerate() {
            let Some(family) = report.families.iter().find(|f| f.name == *name) else {
                continue;
            };
            let at = |label: &str| family.label_names.iter().position(|l| l == label).unwrap();
            let (r, s, d) = (
                at("reporter"),
                at("source_workload"),
                at("destination_workload"),
            );
            for series in &family.series {
                let v = &series.label_values;
                let key = (v[r].clone(), v[s].clone(), v[d].clone());
                let values = out.entry(key).or_insert_with(|| vec![0; families.len()]);
                values[i] += series.value as u64;
            }
        }
    }
    out
}

#[test]
fn mixed_traffic_runs_both_plugins_and_counts_requests_exactly() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/mixed.yaml");
    let scenario = Scenario::load(&path).unwrap();
    let expected_requests = request_totals(&scenario);
    let expected_tcp = tcp_totals(&scenario).unwrap();
    let expected_grpc = grpc_message_totals(&scenario).unwrap();
    let module = shared_module();
    let mut sim = Simulation::start(
        module,
        scenario,
        &SimOptions::default(),
        Clock::manual_now(),
    )
    .unwrap();
    for proxy in sim.proxies().values() {
        let plugins = &proxy.config().extra_plugins;
        assert_eq!(plugins.len(), 1);
        assert_eq!(plugins[0].root_id, TCP_PLUGIN);
        let config: serde_json::Value = serde_json::from_str(&plugins[0].plugin_config).unwrap();
        assert_eq!(config["type"], "NETWORK");
        assert_eq!(config["report_interval"], "10s");
    }
    sim.run_counts(CALL_SPACING);
    assert_eq!(sim.open_connections(), 0);
    let opened = |reporter: &str| -> u64 {
        expected_tcp
            .iter()
            .filter(|(key, _)| key.0 == reporter)
            .map(|(_, totals)| totals.opened)
            .sum()
    };
    let totals = sim.totals();
    assert_eq!(totals.client_connections, opened("source"));
    assert_eq!(totals.server_connections, opened("destination"));
    assert_eq!(
        (totals.client_connections, totals.server_connections),
        (13, 9)
    );
    sim.flush();

    let reports = sim.reports();
    let last = last_by_reporter(&reports);
    let mut counted: BTreeMap<(String, String), u64> = BTreeMap::new();
    for report in last.values() {
        let workload = report.proxy.as_ref().unwrap().workload.clone();
        let Some(family) = report
            .families
            .iter()
            .find(|f| f.name == "istio_requests_total")
        else {
            continue;
        };
        let reporter = family
            .label_names
            .iter()
            .position(|l| l == "reporter")
            .unwrap();
        for series in &family.series {
            let key = (workload.clone(), series.label_values[reporter].clone());
            *counted.entry(key).or_default() += series.value as u64;
        }
    }
    assert_eq!(counted, expected_requests);

    let tcp_reports: Vec<&Report> = last
        .iter()
        .filter(|((_, channel), _)| channel == meshtap_report::CHANNEL_TCP)
        .map(|(_, r)| *r)
        .collect();
    let http_reports: Vec<&Report> = last
        .iter()
        .filter(|((_, channel), _)| channel == meshtap_report::CHANNEL_HTTP)
        .map(|(_, r)| *r)
        .collect();
    let tcp = flows(
        &tcp_reports,
        &[
            "istio_tcp_connections_opened_total",
            "istio_tcp_connections_closed_total",
            "istio_tcp_received_bytes_total",
            "istio_tcp_sent_bytes_total",
        ],
    );
    let want_tcp: BTreeMap<FlowKey, Vec<u64>> = expected_tcp
        .iter()
        .map(|(k, t)| {
            let v = vec![t.opened, t.closed, t.received_bytes, t.sent_bytes];
            (k.clone(), v)
        })
        .collect();
    assert_eq!(tcp, want_tcp, "TCP flows");
    assert!(
        flows(&http_reports, &["istio_tcp_connections_opened_total"]).is_empty(),
        "no TCP series from the HTTP plugin"
    );
    let grpc = flows(
        &http_reports,
        &[
            "istio_request_messages_total",
            "istio_response_messages_total",
        ],
    );
    let want_grpc: BTreeMap<FlowKey, Vec<u64>> = expected_grpc
        .iter()
        .map(|(k, m)| (k.clone(), vec![m.request, m.response]))
        .collect();
    assert_eq!(grpc, want_grpc, "gRPC messages");
    for report in &http_reports {
        let build = report.families.iter().find(|f| f.name == "istio_build");
        assert!(build.is_some(), "istio_build from every HTTP plugin");
    }
    for report in &tcp_reports {
        assert!(report.families.iter().all(|f| f.name != "istio_build"));
        meshtap_report::validate(report).unwrap();
    }
    for (name, proxy) in sim.proxies() {
        assert!(
            proxy.vm_statuses().iter().all(|s| *s == VmStatus::Running),
            "{name}: {:?}",
            proxy.vm_statuses()
        );
    }
}

//! `scenarios/mixed.yaml` (HTTP, unary and streaming gRPC, TCP over mTLS, plaintext and
//! passthrough) through the compiled filter: every sidecar runs both plugins, every TCP
//! connection is opened and closed on the sides that see it, the connections that outlive a
//! report interval are still delivered, and HTTP/gRPC request totals are exactly the
//! scenario's (TCP connections are not requests).

use std::collections::BTreeMap;
use std::path::Path;

use meshtap_report::Report;
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::{Clock, VmStatus};
use meshtap_tests::sim::expect::{request_totals, tcp_totals};
use meshtap_tests::sim::run::TCP_PLUGIN;
use meshtap_tests::sim::{Scenario, SimOptions, Simulation, CALL_SPACING};

fn last_by_pod(reports: &[Report]) -> BTreeMap<String, &Report> {
    let mut last: BTreeMap<String, &Report> = BTreeMap::new();
    for report in reports {
        let pod = report
            .proxy
            .as_ref()
            .expect("report names its proxy")
            .pod
            .clone();
        if last.get(&pod).is_none_or(|r| r.sequence < report.sequence) {
            last.insert(pod, report);
        }
    }
    last
}

#[test]
#[ignore = "needs the filter's NETWORK root (issue #4): today's filter creates HTTP contexts under \
            every root and traps in proxy_on_new_connection, as it would in Envoy"]
fn mixed_traffic_runs_both_plugins_and_counts_requests_exactly() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/mixed.yaml");
    let scenario = Scenario::load(&path).unwrap();
    let expected_requests = request_totals(&scenario);
    let expected_tcp = tcp_totals(&scenario).unwrap();
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
    let mut counted: BTreeMap<(String, String), u64> = BTreeMap::new();
    for report in last_by_pod(&reports).values() {
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
    for (name, proxy) in sim.proxies() {
        assert!(
            proxy.vm_statuses().iter().all(|s| *s == VmStatus::Running),
            "{name}: {:?}",
            proxy.vm_statuses()
        );
    }
}

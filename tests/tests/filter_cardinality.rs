//! Cardinality control of the compiled filter under Host-header fan-out: an app calls a new
//! external host with every request (PassthroughCluster, no Istio service metadata, so the
//! client sidecar's host-header fallback makes every `:authority` a new
//! `destination_service`).
//!
//! - Default `max_series` (10000): the VM holds exactly the first 10000 label sets, every later
//!   request goes to the overflow series and counts once in `overflow_observations` (also
//!   checked with a cap of 100); and the VM's linear memory after the first 10000 stays within a
//!   fixed bound however many hosts follow (values past the cap are not interned).
//! - `label_limits: {destination_service: 100}`: exactly the first 100 hosts plus `other`, each
//!   replaced value counted in `label_values_capped`, nothing in overflow.
//!
//! Counts are exact. The memory case sends 1,000,000 distinct hosts ([`MEMORY_HOSTS`]); the
//! counting cases send [`HOSTS`] each (see there why fewer).

use std::collections::BTreeSet;
use std::time::Duration;

use meshtap_report::schema::{http, REQUESTS_TOTAL};
use meshtap_report::{MetricFamily, Report};
use meshtap_tests::bench::HostFanOut;
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::VmStatus;

/// Distinct hosts per counting case. This crate's debug build spends about 90 µs of CPU per
/// request here (measured on the 2-core development machine): the memory case's 1,000,000
/// hosts take about a minute and a half, and the counting cases need no more than this to
/// pass the cap many times over.
const HOSTS: u64 = 200_000;
/// Hosts of the memory case: 990,000 past the cap.
const MEMORY_HOSTS: u64 = 1_000_000;
const MAX_SERIES: u64 = 10_000;
/// Linear memory may grow this much after the first `MAX_SERIES` hosts: a tenth of what
/// holding another `MAX_SERIES` label sets would take at the 400-byte per-series target.
const MEMORY_GROWTH_BOUND: usize = MAX_SERIES as usize * 400 / 10;

fn start(plugin_config: &str) -> HostFanOut {
    HostFanOut::start(shared_module(), plugin_config).expect("the filter starts")
}

/// The last HTTP report after the hosts, the VM still running.
fn last_report(fan_out: &mut HostFanOut) -> Report {
    let report = fan_out.last_report().expect("the filter reported");
    assert_eq!(fan_out.proxy_mut().vm_statuses(), vec![VmStatus::Running]);
    report
}

fn requests_family(report: &Report) -> &MetricFamily {
    report
        .families
        .iter()
        .find(|f| f.name == REQUESTS_TOTAL)
        .expect("istio_requests_total is reported")
}

/// `destination_service` → request count over the family's series.
fn by_destination_service(family: &MetricFamily) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = family
        .series
        .iter()
        .map(|s| {
            (
                s.label_values[http::DESTINATION_SERVICE].clone(),
                s.value as u64,
            )
        })
        .collect();
    out.sort();
    out
}

/// The report of `hosts` distinct hosts under `max_series` holds exactly the first
/// `max_series` hosts once each and the overflow series with every later request.
fn assert_held_and_overflow(report: &Report, max_series: u64, hosts: u64) {
    let stats = report.stats.clone().expect("reports carry filter stats");
    assert_eq!(stats.series_limit, max_series);
    assert_eq!(stats.series_active, max_series);
    assert_eq!(stats.label_values_capped, 0);
    let family = requests_family(report);
    assert_eq!(family.series.len() as u64, max_series + 1);
    let overflow: Vec<_> = family
        .series
        .iter()
        .filter(|s| s.label_values.iter().all(|v| v == "overflow"))
        .collect();
    assert_eq!(overflow.len(), 1, "one overflow series");
    assert_eq!(overflow[0].value as u64, hosts - max_series);
    let mut held: Vec<(String, u64)> = by_destination_service(family);
    held.retain(|(service, _)| service != "overflow");
    let mut expected: Vec<(String, u64)> =
        (0..max_series).map(|i| (HostFanOut::host(i), 1)).collect();
    expected.sort();
    assert_eq!(
        held, expected,
        "exactly the first {max_series} hosts, once each"
    );
}

#[test]
fn max_series_holds_the_first_label_sets_and_the_overflow_series_counts_the_rest() {
    let mut fan_out = start(r#"{"report_interval": "10s"}"#);
    fan_out.call_hosts(0..HOSTS);
    let report = last_report(&mut fan_out);
    assert_held_and_overflow(&report, MAX_SERIES, HOSTS);
}

#[test]
fn overflow_observations_count_each_request_past_the_cap_once() {
    let mut fan_out = start(r#"{"report_interval": "10s", "max_series": 100}"#);
    fan_out.call_hosts(0..1_000);
    let report = last_report(&mut fan_out);
    assert_held_and_overflow(&report, 100, 1_000);
    let stats = report.stats.expect("reports carry filter stats");
    assert_eq!(stats.overflow_observations, 1_000 - 100);
}

#[test]
fn linear_memory_stays_flat_after_max_series_is_reached() {
    let mut fan_out = start(r#"{"report_interval": "10s"}"#);
    fan_out.call_hosts(0..MAX_SERIES);
    // Two reports of the held label sets are built before the baseline: the second one reaches
    // the report path's steady high-water mark (measured flat over further ticks).
    fan_out.proxy_mut().advance(Duration::from_secs(20));
    let baseline = fan_out.memory_bytes();
    fan_out.call_hosts(MAX_SERIES..MEMORY_HOSTS);
    let report = last_report(&mut fan_out);
    let grown = fan_out.memory_bytes() - baseline;
    eprintln!(
        "linear memory: {baseline} bytes after {MAX_SERIES} hosts, +{grown} after {MEMORY_HOSTS}"
    );
    assert_eq!(
        report.stats.expect("stats").overflow_observations,
        MEMORY_HOSTS - MAX_SERIES
    );
    assert!(
        grown <= MEMORY_GROWTH_BOUND,
        "linear memory grew {grown} bytes after the cap (bound {MEMORY_GROWTH_BOUND})"
    );
}

#[test]
fn a_destination_service_cap_keeps_the_first_values_and_records_the_rest_as_other() {
    const CAP: u64 = 100;
    let mut fan_out =
        start(r#"{"report_interval": "10s", "label_limits": {"destination_service": 100}}"#);
    fan_out.call_hosts(0..HOSTS);
    let report = last_report(&mut fan_out);

    let stats = report.stats.clone().expect("reports carry filter stats");
    assert_eq!(stats.label_values_capped, HOSTS - CAP);
    assert_eq!(stats.overflow_observations, 0);
    assert_eq!(stats.series_active, CAP + 1);
    let family = requests_family(&report);
    let mut expected: Vec<(String, u64)> = (0..CAP).map(|i| (HostFanOut::host(i), 1)).collect();
    expected.push(("other".into(), HOSTS - CAP));
    expected.sort();
    assert_eq!(by_destination_service(family), expected);
    let names: BTreeSet<&str> = family
        .series
        .iter()
        .map(|s| s.label_values[http::DESTINATION_SERVICE_NAME].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["PassthroughCluster"]));
}

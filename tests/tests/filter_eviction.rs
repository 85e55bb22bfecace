//! Idle-series eviction of the compiled filter across worker VMs: a label set that stops
//! changing leaves the reports after `series_idle_timeout` and is counted in `series_evicted`,
//! every VM frees it, the active series stay exact and monotonic, and later traffic recreates the
//! evicted set from 1.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use meshtap_report::schema::REQUESTS_TOTAL;
use meshtap_report::Report;
use meshtap_tests::host::{Proxy, VmStatus};
use meshtap_tests::sim::ReportReceiver;

#[path = "support/sleep_sidecar.rs"]
mod sleep_sidecar;

const CONFIG: &str = r#"{"report_interval":"5s","series_idle_timeout":"20s"}"#;

/// Response codes of the label sets that go idle (each is its own series).
const IDLE_CODES: [u16; 10] = [201, 202, 203, 204, 205, 206, 207, 208, 226, 404];
const ACTIVE_CODE: u16 = 200;

/// `istio_requests_total` of a report by response code.
fn requests_by_code(report: &Report) -> BTreeMap<String, f64> {
    let mut by_code = BTreeMap::new();
    for family in report.families.iter().filter(|f| f.name == REQUESTS_TOTAL) {
        let code = family
            .label_names
            .iter()
            .position(|n| n == "response_code")
            .expect("requests carry response_code");
        for series in &family.series {
            *by_code
                .entry(series.label_values[code].clone())
                .or_default() += series.value;
        }
    }
    by_code
}

fn latest(receiver: &ReportReceiver) -> Report {
    receiver
        .reports()
        .into_iter()
        .max_by_key(|r| r.sequence)
        .expect("the proxy reported")
}

/// Bytes of each worker VM's totals snapshot in shared data (VM uids 1 and 2).
fn snapshot_bytes(proxy: &Proxy) -> Vec<usize> {
    (1..=2)
        .map(|uid| {
            let key = format!("meshtap/vm/{uid}");
            proxy
                .shared()
                .get_shared_data(&key)
                .map_or(0, |v| v.0.len())
        })
        .collect()
}

#[test]
fn idle_series_are_evicted_on_every_worker_and_come_back_from_one() {
    let receiver =
        ReportReceiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), None, false).unwrap();
    let (mut proxy, _clock, exchange) = sleep_sidecar::start(2, receiver.addr(), CONFIG);
    let mut active = 0.0;
    for code in IDLE_CODES {
        for worker in 0..2 {
            proxy.run_http_stream(worker, &exchange(code));
        }
    }
    // Before the timeout: every set is reported, the active one keeps changing.
    for step in 0..2 {
        proxy.run_http_stream(step % 2, &exchange(ACTIVE_CODE));
        active += 1.0;
        proxy.advance(Duration::from_secs(6));
    }
    let before = requests_by_code(&latest(&receiver));
    assert_eq!(before.len(), IDLE_CODES.len() + 1, "{before:?}");
    assert_eq!(before["404"], 2.0, "one request per worker");
    let bytes_before = snapshot_bytes(&proxy);

    // Past the timeout (and one more tick for every VM to apply the record).
    for step in 0..8 {
        proxy.run_http_stream(step % 2, &exchange(ACTIVE_CODE));
        active += 1.0;
        proxy.advance(Duration::from_secs(5));
    }
    // A VM's snapshot is up to one interval old in the leader's sum.
    proxy.advance(Duration::from_secs(10));
    for status in proxy.vm_statuses() {
        assert_eq!(status, VmStatus::Running, "logs: {:?}", proxy.logs());
    }
    let report = latest(&receiver);
    let after = requests_by_code(&report);
    assert_eq!(
        after,
        BTreeMap::from([(ACTIVE_CODE.to_string(), active)]),
        "only the active set is left"
    );
    let stats = report.stats.clone().unwrap();
    assert_eq!(stats.series_evicted, IDLE_CODES.len() as u64);
    assert_eq!(stats.series_active, 1);
    let bytes_after = snapshot_bytes(&proxy);
    for (b, a) in bytes_before.iter().zip(&bytes_after) {
        assert!(
            a < b,
            "every worker freed the evicted sets: {bytes_before:?} -> {bytes_after:?}"
        );
    }

    // The active series never went backwards and is exact in every report.
    let mut reports = receiver.reports();
    reports.sort_by_key(|r| r.sequence);
    let active_values: Vec<f64> = reports
        .iter()
        .filter_map(|r| requests_by_code(r).get("200").copied())
        .collect();
    assert!(
        active_values.windows(2).all(|w| w[0] <= w[1]),
        "{active_values:?}"
    );
    assert_eq!(*active_values.last().unwrap(), active);
    // Once a set left the reports it did not flap back while idle.
    let gone_at = reports
        .iter()
        .position(|r| !requests_by_code(r).contains_key("404"))
        .expect("404 was evicted");
    assert!(reports[gone_at..]
        .iter()
        .all(|r| !requests_by_code(r).contains_key("404")));

    // New traffic recreates the set from 1.
    proxy.run_http_stream(1, &exchange(404));
    proxy.advance(Duration::from_secs(11));
    let recreated = requests_by_code(&latest(&receiver));
    assert_eq!(recreated.get("404"), Some(&1.0), "{recreated:?}");
    assert_eq!(recreated[&ACTIVE_CODE.to_string()], active);
}

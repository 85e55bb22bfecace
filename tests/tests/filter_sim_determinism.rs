//! A seeded scenario on a manual clock with a fixed start is fully deterministic: two runs
//! produce byte-identical reports (same series, values, timestamps and sequence numbers).

use std::path::Path;
use std::time::Duration;

use meshtap_report::Report;
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::Clock;
use meshtap_tests::sim::{Scenario, SimOptions, Simulation, CALL_SPACING};

fn run_once() -> Vec<Report> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/bookinfo.yaml");
    let scenario = Scenario::load(&path).unwrap();
    let clock = Clock::manual_at(Duration::from_secs(1_800_000_000));
    let mut sim =
        Simulation::start(shared_module(), scenario, &SimOptions::default(), clock).unwrap();
    sim.run_counts(CALL_SPACING);
    sim.flush();
    let mut reports = sim.reports();
    reports.sort_by(|a, b| {
        let key = |r: &Report| (r.proxy.as_ref().unwrap().pod.clone(), r.sequence);
        key(a).cmp(&key(b))
    });
    reports
}

#[test]
fn the_same_seed_gives_the_same_reports() {
    let first = run_once();
    assert!(first.len() >= 6, "every pod reported");
    let second = run_once();
    assert_eq!(
        first.iter().map(meshtap_report::encode).collect::<Vec<_>>(),
        second
            .iter()
            .map(meshtap_report::encode)
            .collect::<Vec<_>>()
    );
}

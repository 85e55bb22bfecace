//! `meshtap_tests::bench::FilterBench` on the real filter: it meters fuel, counts host calls
//! and reads linear memory (the numbers themselves are for `cargo xtask bench`, not asserted).

use meshtap_tests::bench::FilterBench;
use meshtap_tests::filter_wasm;
use meshtap_tests::host::VmStatus;

#[test]
fn the_bench_helper_measures_fuel_host_calls_and_memory() {
    let wasm = filter_wasm::locate().unwrap_or_else(|e| panic!("{e}"));
    let mut bench = FilterBench::new(&wasm, "{}").unwrap();
    let warm = bench.run(50);
    let measured = bench.run(500);
    eprintln!("filter per request: {measured:?} (warm-up {warm:?})");
    assert_eq!(measured.requests, 500);
    assert!(measured.fuel_per_request > 0.0);
    assert!(
        measured.host_calls_per_request >= 1.0,
        "on_log reads properties"
    );
    assert!(measured.memory_bytes >= 65536);
    assert_eq!(bench.proxy_mut().vm_statuses(), vec![VmStatus::Running]);
}

//! `cargo xtask bench filter`, second half: the compiled filter in the Envoy stand-in.
//!
//! Prints the four figures of the per-request path of the real `.wasm`: wasm instructions per
//! request (wasmtime fuel, about one unit per instruction), wall-clock ns per request (host
//! included), host calls per request, and VM linear memory per active series. Measures only;
//! the targets are printed beside the figures for the reader.

use std::time::Instant;

use meshtap_tests::bench::FilterBench;
use meshtap_tests::filter_wasm::locate;
use meshtap_tests::host::FilterModule;

const CONFIG: &str = r#"{"report_interval": "10s"}"#;
const WARMUP: u64 = 500;
const MEASURED: u64 = 5_000;
const SERIES: u64 = 8_000;

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let wasm = locate().unwrap_or_else(|e| panic!("{e}"));

    let mut metered = FilterBench::new(&wasm, CONFIG).expect("filter loads with fuel metering");
    metered.run(WARMUP);
    let steady = metered.run(MEASURED);

    let plain = FilterModule::load(&wasm, false).expect("filter loads");
    let mut timed = FilterBench::with_module(plain.clone(), CONFIG).expect("filter starts");
    timed.run(WARMUP);
    let started = Instant::now();
    timed.run(MEASURED * 4);
    let ns = started.elapsed().as_nanos() as f64 / (MEASURED * 4) as f64;

    let mut growing = FilterBench::with_module(plain, CONFIG).expect("filter starts");
    let before = growing.run(WARMUP).memory_bytes;
    let after = growing.run_distinct(SERIES).memory_bytes;
    let per_series = (after - before) as f64 / SERIES as f64;

    println!("filter .wasm in the Envoy stand-in ({})", wasm.display());
    println!("  {:<34} {:>12} {:>10}", "figure", "measured", "target");
    println!(
        "  {:<34} {:>12.0} {:>10}",
        "wasm instructions (fuel) / request", steady.fuel_per_request, "3000"
    );
    println!(
        "  {:<34} {:>12.0} {:>10}",
        "ns / request (host included)", ns, "2000"
    );
    println!(
        "  {:<34} {:>12.1} {:>10}",
        "host calls / request", steady.host_calls_per_request, "10"
    );
    println!(
        "  {:<34} {:>12.0} {:>10}",
        "VM memory bytes / active series", per_series, "400"
    );
    println!(
        "  ({} series grew linear memory from {} to {} bytes)",
        SERIES, before, after
    );
}

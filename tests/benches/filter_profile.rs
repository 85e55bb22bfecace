//! `cargo xtask bench filter`, last part: where one HTTP request's wasm fuel goes, by layer
//! (proxy-wasm's dispatch, the guest buffers of host calls, meshtap's own code) and by function,
//! from [`meshtap_tests::fuel_profile`] on the filter built with its function names
//! (`MESHTAP_FILTER_WASM_NAMED`, the `wasm-named` profile). Measures only.

use std::path::PathBuf;

use meshtap_tests::fuel_profile::profile_request;
use meshtap_tests::host::FilterModule;

const CONFIG: &str = r#"{"report_interval": "10s"}"#;
/// Fuel per sample by default: about 200 samples for a request of 4,000
/// (`MESHTAP_FUEL_STEP` sets another: 1 samples every unit, slowly).
const STEP: u64 = 20;
const TOP_FUNCTIONS: usize = 25;

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let Some(wasm) = std::env::var_os("MESHTAP_FILTER_WASM_NAMED").map(PathBuf::from) else {
        panic!("set MESHTAP_FILTER_WASM_NAMED to a filter built with --profile wasm-named (cargo xtask bench filter does)");
    };
    let module = FilterModule::load(&wasm, true).expect("filter loads with fuel metering");
    let step = std::env::var("MESHTAP_FUEL_STEP")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|step| *step > 0)
        .unwrap_or(STEP);
    let profile = profile_request(module, CONFIG, step).expect("profile");
    println!();
    println!(
        "fuel profile of one HTTP request ({} fuel; one sample per {} fuel; {})",
        profile.fuel_per_request,
        profile.step,
        wasm.display()
    );
    let sampled: u64 = profile.layers.iter().map(|(_, fuel)| fuel).sum();
    for (layer, fuel) in &profile.layers {
        println!(
            "  {:<44} {:>6} fuel  {:>5.1} %",
            layer.name(),
            fuel,
            100.0 * *fuel as f64 / sampled as f64
        );
    }
    println!();
    println!("  {:>6} {:>9}  function", "self", "inclusive");
    for function in profile.functions.iter().take(TOP_FUNCTIONS) {
        println!(
            "  {:>6} {:>9}  {}",
            function.self_fuel, function.inclusive_fuel, function.name
        );
    }
}

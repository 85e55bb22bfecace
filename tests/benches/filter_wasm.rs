//! `cargo xtask bench filter`, second half: the compiled filter in the Envoy stand-in.
//!
//! Prints, for the real `.wasm` and from one run: wasm instructions (wasmtime fuel, about one
//! unit per instruction), host calls and wall-clock ns (host included) per HTTP request, per
//! gRPC stream and per gRPC message (frame counting, and with Envoy's grpc_stats filter state),
//! per TCP connection and per extra TCP data callback; and VM linear memory per active series.
//! A per-message or per-callback figure is the difference between two batches that differ
//! only in that count, divided by it. Then the cardinality case at full size: 1,000,000
//! requests with distinct Host headers, with the default `max_series` (linear memory after the
//! first 10,000 and at the end, held label sets, overflow) and with a `destination_service`
//! cap of 100. The HTTP request is measured again with two extra dimensions (a request header
//! and a property) and custom histogram buckets. With `MESHTAP_EMPTY_FILTER_WASM` (the
//! `meshtap-empty-filter` crate, built like the filter), the same HTTP request through that
//! baseline's two variants in the same host, and meshtap's marginal fuel and ns over each.
//! With `MESHTAP_FILTER_WASM_BEFORE` (an earlier build of the filter), the same HTTP request
//! through it too, with its marginal costs, so a change is measured before and after in one run.
//! Measures only; the issue's targets are printed beside the per-request figures
//! for the reader.

use std::path::Path;
use std::sync::Arc;

use meshtap_tests::bench::{BenchResult, FilterBench, HostFanOut, Unit};
use meshtap_tests::filter_wasm::locate;
use meshtap_tests::host::FilterModule;

const CONFIG: &str = r#"{"report_interval": "10s"}"#;
/// The same with one header and one property dimension on `istio_requests_total` and custom
/// bucket bounds on every request histogram.
const CUSTOMISED_CONFIG: &str = r#"{"report_interval": "10s",
    "overrides": [{"metric": "istio_requests_total",
                   "tags": {"user": "request.headers['x-user']", "upstream": "upstream.address"}}],
    "histogram_buckets": {"istiocustom": [5, 50, 500]}}"#;
const WARMUP: u64 = 500;
/// Units measured per batch with fuel metering; the timed batches run four times as many.
const MEASURED: u64 = 5_000;
const SERIES: u64 = 8_000;
/// Response messages of the long gRPC stream; the short one has one.
const STREAM_MESSAGES: usize = 33;
/// Distinct Host headers of the cardinality case, and the default `max_series`.
const HOSTS: u64 = 1_000_000;
const MAX_SERIES: u64 = 10_000;
/// Data callbacks of the long TCP connection; the short one has two (one each way).
const CONNECTION_CALLBACKS: usize = 34;

/// Fuel and host calls from a metered VM, ns from an unmetered one, for one kind of unit.
struct Figure {
    fuel: f64,
    host_calls: f64,
    ns: f64,
}

impl Figure {
    /// What `long` costs more than `short`, per each of its `extra` messages or callbacks.
    fn per_extra(long: &Figure, short: &Figure, extra: usize) -> Figure {
        let per = |a: f64, b: f64| (a - b) / extra as f64;
        Figure {
            fuel: per(long.fuel, short.fuel),
            host_calls: per(long.host_calls, short.host_calls),
            ns: per(long.ns, short.ns),
        }
    }
}

/// The two VMs every figure is measured on (each warmed up per unit kind before measuring).
struct Benches {
    metered: FilterBench,
    timed: FilterBench,
}

impl Benches {
    fn measure(&mut self, unit: Unit) -> Figure {
        let measured = |bench: &mut FilterBench, n: u64| -> BenchResult {
            bench.run(unit, WARMUP);
            bench.run(unit, n)
        };
        let fueled = measured(&mut self.metered, MEASURED);
        let timed = measured(&mut self.timed, MEASURED * 4);
        Figure {
            fuel: fueled.fuel_per_unit,
            host_calls: fueled.host_calls_per_unit,
            ns: timed.ns_per_unit,
        }
    }
}

fn row(name: &str, figure: &Figure, targets: [&str; 3]) {
    println!(
        "  {:<44} {:>9.0} {:>7} {:>8.1} {:>6} {:>8.0} {:>6}",
        name, figure.fuel, targets[0], figure.host_calls, targets[1], figure.ns, targets[2]
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let wasm = locate().unwrap_or_else(|e| panic!("{e}"));
    let plain = FilterModule::load(&wasm, false).expect("filter loads");
    let mut benches = Benches {
        metered: FilterBench::new(&wasm, CONFIG).expect("filter loads with fuel metering"),
        timed: FilterBench::with_module(plain.clone(), CONFIG).expect("filter starts"),
    };

    let request = benches.measure(Unit::Request);
    let stream = |response_messages, grpc_stats| Unit::GrpcStream {
        response_messages,
        grpc_stats,
    };
    let unary = benches.measure(stream(1, false));
    let long = benches.measure(stream(STREAM_MESSAGES, false));
    let unary_stats = benches.measure(stream(1, true));
    let long_stats = benches.measure(stream(STREAM_MESSAGES, true));
    let connection = benches.measure(Unit::TcpConnection { data_callbacks: 2 });
    let long_connection = benches.measure(Unit::TcpConnection {
        data_callbacks: CONNECTION_CALLBACKS,
    });
    let (series, before, after) = memory_per_series(plain.clone());
    let mut customised = Benches {
        metered: FilterBench::new(&wasm, CUSTOMISED_CONFIG).expect("filter loads with fuel"),
        timed: FilterBench::with_module(plain.clone(), CUSTOMISED_CONFIG).expect("filter starts"),
    };
    let customised_request = customised.measure(Unit::Request);

    let baselines = measure_baselines();
    let earlier = measure_earlier();

    print_header(&wasm);
    row("HTTP request", &request, ["3000", "10", "2000"]);
    print_marginal(&request, &baselines);
    if let Some((path, earlier)) = &earlier {
        println!(
            "  the same request on the earlier filter ({}):",
            path.display()
        );
        row("  HTTP request, earlier filter", earlier, ["", "", ""]);
        print_marginal(earlier, &baselines);
    }
    let none = ["", "", ""];
    row(
        "HTTP request, header + property dimension",
        &customised_request,
        none,
    );
    row("gRPC unary stream, frames counted", &unary, none);
    row(
        "gRPC message, frames counted (per extra)",
        &Figure::per_extra(&long, &unary, STREAM_MESSAGES - 1),
        none,
    );
    row(
        "gRPC unary stream, grpc_stats filter state",
        &unary_stats,
        none,
    );
    row(
        "gRPC message, grpc_stats filter state (extra)",
        &Figure::per_extra(&long_stats, &unary_stats, STREAM_MESSAGES - 1),
        none,
    );
    row(
        "TCP connection (open, 1 down, 1 up, close)",
        &connection,
        none,
    );
    row(
        "TCP data callback (per extra)",
        &Figure::per_extra(&long_connection, &connection, CONNECTION_CALLBACKS - 2),
        none,
    );
    println!(
        "  gRPC streams: 1 request message, then 1 or {STREAM_MESSAGES} response messages of \
         {} payload bytes, one body chunk each",
        meshtap_tests::bench::PAYLOAD_BYTES
    );
    println!(
        "  TCP connections: mTLS, peer in filter state, 2 or {CONNECTION_CALLBACKS} chunks \
         alternating downstream/upstream"
    );
    println!();
    println!(
        "  {:<44} {:>9.0} {:>7}",
        "VM memory bytes / active series", series, "400"
    );
    println!(
        "  ({} series grew linear memory from {} to {} bytes)",
        SERIES, before, after
    );
    println!();
    host_fan_out(plain);
}

/// The cardinality case: `HOSTS` requests with distinct Host headers, uncapped then capped.
fn host_fan_out(module: Arc<FilterModule>) {
    let mut uncapped = HostFanOut::start(module.clone(), CONFIG).expect("filter starts");
    uncapped.call_hosts(0..MAX_SERIES);
    let held = uncapped.memory_bytes();
    uncapped
        .proxy_mut()
        .advance(std::time::Duration::from_secs(10));
    let baseline = uncapped.memory_bytes();
    uncapped.call_hosts(MAX_SERIES..HOSTS);
    let stats = uncapped.last_report().and_then(|r| r.stats);
    println!("  {HOSTS} distinct Host headers (PassthroughCluster), default max_series:");
    println!(
        "    linear memory {held} bytes after {MAX_SERIES} hosts, {baseline} once they were \
         reported, {} after {HOSTS} hosts",
        uncapped.memory_bytes()
    );
    match stats {
        Some(s) => println!(
            "    series held {} (limit {}), overflow_observations {}",
            s.series_active, s.series_limit, s.overflow_observations
        ),
        None => println!("    no report arrived"),
    }
    let capped_config =
        r#"{"report_interval": "10s", "label_limits": {"destination_service": 100}}"#;
    let mut capped = HostFanOut::start(module, capped_config).expect("filter starts");
    capped.call_hosts(0..HOSTS);
    let stats = capped.last_report().and_then(|r| r.stats);
    println!("  the same with label_limits {{destination_service: 100}}:");
    match stats {
        Some(s) => println!(
            "    linear memory {} bytes, series held {}, label_values_capped {}, overflow_observations {}",
            capped.memory_bytes(),
            s.series_active,
            s.label_values_capped,
            s.overflow_observations
        ),
        None => println!("    no report arrived"),
    }
}

/// The bench request through the empty filter's two variants, when it was built.
fn measure_baselines() -> Vec<(&'static str, Figure)> {
    let Some(path) = std::env::var_os("MESHTAP_EMPTY_FILTER_WASM") else {
        return Vec::new();
    };
    let path = std::path::PathBuf::from(path);
    let plain = FilterModule::load(&path, false).expect("empty filter loads");
    let variants = [
        ("empty filter (same SDK, no reads)", CONFIG),
        (
            "empty filter + meshtap's 10 host reads",
            r#"{"host_reads": true}"#,
        ),
    ];
    variants
        .into_iter()
        .map(|(name, config)| {
            let mut benches = Benches {
                metered: FilterBench::new(&path, config).expect("empty filter loads with fuel"),
                timed: FilterBench::with_module(plain.clone(), config).expect("empty filter"),
            };
            (name, benches.measure(Unit::Request))
        })
        .collect()
}

/// The bench request through an earlier build of the filter, when one is given.
fn measure_earlier() -> Option<(std::path::PathBuf, Figure)> {
    let path = std::path::PathBuf::from(std::env::var_os("MESHTAP_FILTER_WASM_BEFORE")?);
    let plain = FilterModule::load(&path, false).expect("the earlier filter loads");
    let mut benches = Benches {
        metered: FilterBench::new(&path, CONFIG).expect("the earlier filter loads with fuel"),
        timed: FilterBench::with_module(plain, CONFIG).expect("the earlier filter starts"),
    };
    let figure = benches.measure(Unit::Request);
    Some((path, figure))
}

/// Each baseline's HTTP request, then meshtap's request minus it.
fn print_marginal(request: &Figure, baselines: &[(&str, Figure)]) {
    if baselines.is_empty() {
        println!("  (set MESHTAP_EMPTY_FILTER_WASM for meshtap's cost over an empty filter)");
    }
    let none = ["", "", ""];
    for (name, baseline) in baselines {
        row(&format!("  {name}"), baseline, none);
        let marginal = Figure {
            fuel: request.fuel - baseline.fuel,
            host_calls: request.host_calls - baseline.host_calls,
            ns: request.ns - baseline.ns,
        };
        row("    meshtap's marginal cost over it", &marginal, none);
    }
}

/// Linear memory growth per new label set, with the bytes before and after.
fn memory_per_series(module: Arc<FilterModule>) -> (f64, usize, usize) {
    let mut growing = FilterBench::with_module(module, CONFIG).expect("filter starts");
    let before = growing.run(Unit::Request, WARMUP).memory_bytes;
    let after = growing.run_distinct(SERIES).memory_bytes;
    ((after - before) as f64 / SERIES as f64, before, after)
}

fn print_header(wasm: &Path) {
    println!("filter .wasm in the Envoy stand-in ({})", wasm.display());
    println!(
        "  {:<44} {:>9} {:>7} {:>8} {:>6} {:>8} {:>6}",
        "per unit", "fuel", "target", "calls", "target", "ns", "target"
    );
}

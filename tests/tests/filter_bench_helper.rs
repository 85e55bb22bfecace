//! `meshtap_tests::bench::FilterBench` on the real filter: it meters fuel, counts host calls
//! and reads linear memory for every kind of unit, and each unit goes down the filter's
//! recording path (the reports hold exactly the requests, gRPC messages and TCP connections
//! and bytes the bench pushed); the fuel profile's samples add up to one request. The figures
//! themselves are for `cargo xtask bench`, not asserted.

use std::net::SocketAddr;
use std::time::Duration;

use meshtap_report::schema::{
    REQUESTS_TOTAL, REQUEST_MESSAGES, RESPONSE_MESSAGES, TCP_CLOSED, TCP_OPENED,
    TCP_RECEIVED_BYTES, TCP_SENT_BYTES,
};
use meshtap_report::{Report, CHANNEL_TCP};
use meshtap_tests::bench::{BenchResult, FilterBench, Unit, PAYLOAD_BYTES};
use meshtap_tests::filter_wasm;
use meshtap_tests::fuel_profile::profile_request;
use meshtap_tests::host::{FilterModule, VmStatus};
use meshtap_tests::sim::ReportReceiver;

const SINK_CLUSTER: &str = "outbound|9091||meshtap-sink.meshtap.svc.cluster.local";

/// Sum of a family's series values in the last report of `channel`.
fn total(reports: &[Report], channel: &str, family: &str) -> u64 {
    let last = reports
        .iter()
        .filter(|r| r.channel == channel)
        .max_by_key(|r| r.sequence)
        .unwrap_or_else(|| panic!("no report on channel {channel:?}"));
    last.families
        .iter()
        .filter(|f| f.name == family)
        .flat_map(|f| &f.series)
        .map(|s| s.value as u64)
        .sum()
}

fn assert_measured(result: &BenchResult, units: u64) {
    assert_eq!(result.units, units);
    assert!(result.fuel_per_unit > 0.0, "{result:?}");
    assert!(result.host_calls_per_unit >= 1.0, "{result:?}");
    assert!(result.ns_per_unit > 0.0, "{result:?}");
    assert!(result.memory_bytes >= 65536, "{result:?}");
}

#[test]
fn the_bench_helper_measures_each_unit_on_the_recording_path() {
    let wasm = filter_wasm::locate().unwrap_or_else(|e| panic!("{e}"));
    let receiver = ReportReceiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), None, false)
        .expect("loopback receiver");
    let mut bench = FilterBench::new(&wasm, "{}").unwrap();
    bench.proxy_mut().set_cluster(SINK_CLUSTER, receiver.addr());

    let stream = |response_messages, grpc_stats| Unit::GrpcStream {
        response_messages,
        grpc_stats,
    };
    // Each kind of unit runs twice, the first batch as warm-up (first label sets, caches).
    let mut twice = |unit: Unit, n: u64| {
        bench.run(unit, n);
        let measured = bench.run(unit, n);
        assert_measured(&measured, n);
        measured
    };
    twice(Unit::Request, 25);
    let unary = twice(stream(1, false), 10);
    let long = twice(stream(9, false), 10);
    twice(stream(9, true), 5);
    let connection = twice(Unit::TcpConnection { data_callbacks: 2 }, 15);
    let long_connection = twice(Unit::TcpConnection { data_callbacks: 10 }, 5);
    assert!(
        long.fuel_per_unit > unary.fuel_per_unit,
        "counting 8 more frames costs fuel: {long:?} vs {unary:?}"
    );
    assert!(
        long_connection.fuel_per_unit > connection.fuel_per_unit,
        "8 more data callbacks cost fuel: {long_connection:?} vs {connection:?}"
    );

    bench.proxy_mut().advance(Duration::from_secs(25));
    assert_eq!(bench.proxy_mut().vm_statuses(), vec![VmStatus::Running]);
    let reports = receiver.reports();
    let http = meshtap_report::CHANNEL_HTTP;
    assert_eq!(total(&reports, http, REQUESTS_TOTAL), 50 + 20 + 20 + 10);
    assert_eq!(total(&reports, http, REQUEST_MESSAGES), 20 + 20 + 10);
    assert_eq!(
        total(&reports, http, RESPONSE_MESSAGES),
        20 + 20 * 9 + 10 * 9
    );
    assert_eq!(total(&reports, CHANNEL_TCP, TCP_OPENED), 40);
    assert_eq!(total(&reports, CHANNEL_TCP, TCP_CLOSED), 40);
    // Chunks alternate downstream (received) and upstream (sent), PAYLOAD_BYTES each.
    let each_way = (30 + 10 * 5) * PAYLOAD_BYTES as u64;
    assert_eq!(total(&reports, CHANNEL_TCP, TCP_RECEIVED_BYTES), each_way);
    assert_eq!(total(&reports, CHANNEL_TCP, TCP_SENT_BYTES), each_way);
}

/// The fuel profile's samples account for the whole request: a request of F units traps for
/// every budget `k × STEP < F` and completes at the first budget ≥ F, so there are
/// `ceil(F / STEP) - 1` samples, whatever the module's function names (the CI build is
/// stripped, so every frame is `?` and one layer takes all). wasmtime checks fuel at function
/// entries and loop headers only, so a last budget less than one straight-line stretch
/// (`FUEL_CHECK_SLACK`) short of F may complete instead of trapping: one sample fewer.
#[test]
fn the_fuel_profile_samples_cover_exactly_one_request() {
    const STEP: u64 = 250;
    const FUEL_CHECK_SLACK: u64 = 64;
    let wasm = filter_wasm::locate().unwrap_or_else(|e| panic!("{e}"));
    let module = FilterModule::load(&wasm, true).unwrap();
    let profile = profile_request(module, "{}", STEP).unwrap();
    assert!(profile.fuel_per_request > 1_000, "{profile:?}");
    let sampled: u64 = profile.layers.iter().map(|(_, fuel)| fuel).sum();
    let all_budgets = (profile.fuel_per_request.div_ceil(STEP) - 1) * STEP;
    let last_unnoticed =
        sampled + STEP == all_budgets && profile.fuel_per_request - all_budgets < FUEL_CHECK_SLACK;
    assert!(sampled == all_budgets || last_unnoticed, "{profile:?}");
    let by_self: u64 = profile.functions.iter().map(|f| f.self_fuel).sum();
    assert_eq!(by_self, sampled, "every sample has one innermost function");
    assert!(profile
        .functions
        .iter()
        .all(|f| f.inclusive_fuel >= f.self_fuel && f.inclusive_fuel <= sampled));
}

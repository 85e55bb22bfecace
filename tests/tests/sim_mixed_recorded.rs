//! `scenarios/mixed.yaml` through the simulator with the recording guest in every proxy: what
//! each sidecar's network filter and HTTP filter were given matches the scenario's expected
//! figures (`sim::expect`) exactly — connections opened and closed, bytes each way, and the
//! gRPC message counts of the grpc_stats filter state — and only mTLS connections carry the
//! metadata exchange's peer; independent of meshtap's filter.

mod recorder;

use std::collections::BTreeMap;
use std::path::Path;

use meshtap_tests::host::Clock;
use meshtap_tests::sim::expect::{grpc_message_totals, tcp_totals, GrpcMessages, TcpTotals};
use meshtap_tests::sim::{Scenario, SimOptions, Simulation, CALL_SPACING};
use recorder::{code, drain};

/// Sums flows per proxy: a workload's proxy sees its `source` flows and its `destination` ones.
fn per_proxy<T: Copy + Default>(
    flows: &BTreeMap<(String, String, String), T>,
    add: impl Fn(&mut T, T),
) -> BTreeMap<String, T> {
    let mut out: BTreeMap<String, T> = BTreeMap::new();
    for ((reporter, source, destination), value) in flows {
        let workload = if reporter == "source" {
            source
        } else {
            destination
        };
        add(out.entry(workload.clone()).or_default(), *value);
    }
    out
}

#[test]
fn every_sidecar_gets_the_connections_bytes_and_grpc_messages_the_scenario_expects() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/mixed.yaml");
    let scenario = Scenario::load(&path).unwrap();
    let expected_tcp = per_proxy(&tcp_totals(&scenario).unwrap(), |a, b: TcpTotals| {
        a.opened += b.opened;
        a.closed += b.closed;
        a.received_bytes += b.received_bytes;
        a.sent_bytes += b.sent_bytes;
    });
    let expected_grpc = per_proxy(
        &grpc_message_totals(&scenario).unwrap(),
        |a, b: GrpcMessages| {
            a.request += b.request;
            a.response += b.response;
        },
    );
    let mut sim = Simulation::start(
        recorder::module(),
        scenario,
        &SimOptions::default(),
        Clock::manual_now(),
    )
    .unwrap();
    sim.run_counts(CALL_SPACING);
    assert_eq!(sim.open_connections(), 0);

    let mut seen_tcp = BTreeMap::new();
    let mut seen_grpc = BTreeMap::new();
    let mut peer_reads = BTreeMap::new();
    for (workload, proxy) in sim.proxies() {
        let events = drain(proxy);
        let count = |c: u32| events.iter().filter(|e| e.code == c).count() as u64;
        let bytes = |c: u32| -> u64 {
            events
                .iter()
                .filter(|e| e.code == c)
                .map(|e| u64::from(e.a))
                .sum()
        };
        let tcp = TcpTotals {
            opened: count(code::NEW_CONNECTION),
            closed: count(code::DOWNSTREAM_CLOSE),
            received_bytes: bytes(code::DOWNSTREAM_DATA),
            sent_bytes: bytes(code::UPSTREAM_DATA),
        };
        if tcp != TcpTotals::default() {
            seen_tcp.insert(workload.clone(), tcp);
        }
        // The grpc_stats filter state each stream showed in on_log: "<request>,<response>".
        let mut grpc = GrpcMessages::default();
        for event in events
            .iter()
            .filter(|e| e.code == code::READ && e.a == code::GRPC_STATS && e.ctx == 0)
        {
            let text = String::from_utf8(event.bytes.clone().unwrap()).unwrap();
            let (request, response) = text.split_once(',').unwrap();
            grpc.request += request.parse::<u64>().unwrap();
            grpc.response += response.parse::<u64>().unwrap();
        }
        if grpc != GrpcMessages::default() {
            seen_grpc.insert(workload.clone(), grpc);
        }
        let peers = events
            .iter()
            .filter(|e| e.code == code::READ && e.a == code::DOWNSTREAM_PEER && e.ctx == 0)
            .count();
        if peers > 0 {
            peer_reads.insert(workload.as_str(), peers);
        }
    }
    // Only the mTLS server side has a downstream peer (metadata exchange), from the first
    // data on: 5 connections × 4 chunks. Plaintext (redis) and passthrough have none.
    assert_eq!(peer_reads, BTreeMap::from([("mysql-v1", 5 * 4)]));
    assert_eq!(seen_tcp, expected_tcp);
    assert_eq!(seen_grpc, expected_grpc);
}

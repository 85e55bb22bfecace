//! Access-log selection (only_errors, seeded sampling), record building from host values and the
//! per-VM bound.

use std::collections::HashMap;

use super::*;
use crate::record::node::fixtures;

fn config(sample_rate: f64, only_errors: bool, max_per_interval: u32) -> AccessLogConfig {
    AccessLogConfig {
        sample_rate,
        only_errors,
        max_per_interval,
    }
}

fn ok() -> RequestOutcome {
    RequestOutcome {
        response_code: Some(200),
        ..RequestOutcome::default()
    }
}

fn record_at(start_time_ns: i64) -> AccessLogRecord {
    AccessLogRecord {
        start_time_ns,
        ..AccessLogRecord::default()
    }
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn errors_are_codes_from_400_no_response_flags_and_grpc_failures() {
    let with = |code: Option<i64>, flags: u64, grpc: Option<i64>| RequestOutcome {
        response_code: code,
        response_flags: flags,
        grpc_status: grpc,
    };
    assert!(!with(Some(200), 0, None).is_error());
    assert!(!with(Some(302), 0, None).is_error());
    assert!(!with(Some(200), 0, Some(0)).is_error(), "gRPC OK");
    assert!(with(Some(404), 0, None).is_error());
    assert!(with(Some(503), 0, None).is_error());
    assert!(with(Some(0), 0, None).is_error());
    assert!(with(None, 0, None).is_error(), "no response");
    assert!(with(Some(200), 0x4000, None).is_error(), "DC");
    assert!(with(Some(200), 0, Some(14)).is_error(), "UNAVAILABLE");
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn sampling_is_deterministic_for_a_seed_and_follows_the_rate() {
    let decisions = |seed: u64| -> Vec<bool> {
        let mut s = Sampler::new(seed);
        (0..10_000).map(|_| s.keep(0.25)).collect()
    };
    let a = decisions(7);
    assert_eq!(a, decisions(7), "same seed, same decisions");
    assert_ne!(a, decisions(8), "another seed, other decisions");
    let kept = a.iter().filter(|k| **k).count();
    assert!(
        (2_250..=2_750).contains(&kept),
        "kept {kept} of 10000 at 0.25"
    );
    let mut s = Sampler::new(1);
    assert!((0..1_000).all(|_| s.keep(1.0)));
    assert!((0..1_000).all(|_| !s.keep(0.0)));
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn only_errors_keeps_failures_and_the_bound_counts_drops() {
    let mut vm = VmAccessLog::new(config(1.0, true, 2), 1);
    let failed = RequestOutcome {
        response_code: Some(503),
        response_flags: 0x20,
        grpc_status: None,
    };
    assert!(!vm.admit(&ok()), "a 200 is not an error");
    for _ in 0..2 {
        assert!(vm.admit(&failed));
        vm.push(record_at(1));
    }
    assert!(!vm.admit(&failed), "the buffer is full");
    assert!(!vm.admit(&failed));
    assert!(!vm.admit(&ok()), "not selected, so not dropped either");
    let (records, dropped) = vm.take_batch().unwrap();
    assert_eq!((records.len(), dropped), (2, 2));
    assert_eq!(vm.take_batch(), None, "taken, the buffer starts over");
    assert!(vm.admit(&failed), "room again after the hand-over");
    vm.count_dropped(3);
    assert_eq!(vm.take_batch().unwrap().1, 3);
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn sampled_vm_keeps_a_seeded_share() {
    let kept = |seed| {
        let mut vm = VmAccessLog::new(config(0.5, false, 100_000), seed);
        (0..4_000).filter(|_| vm.admit(&ok())).count()
    };
    assert_eq!(kept(3), kept(3));
    assert!((1_800..=2_200).contains(&kept(3)), "{}", kept(3));
}

fn host_values() -> HashMap<HostValue, Vec<u8>> {
    let s = |v: &str| v.as_bytes().to_vec();
    let i = |v: i64| v.to_le_bytes().to_vec();
    HashMap::from([
        (START_TIME, i(1_700_000_000_123_000_000)),
        (METHOD, s("GET")),
        (PATH, s("/ratings/0?x=1")),
        (PROTOCOL, s("HTTP/1.1")),
        (CODE_DETAILS, s("via_upstream")),
        (REQUEST_BODY_SIZE, i(12)),
        (RESPONSE_BODY_SIZE, i(345)),
        (DURATION, i(7_900_000)),
        (UPSTREAM_SERVICE_TIME, s("6")),
        (USER_AGENT, s("curl/8.5.0")),
        (REQUEST_ID, s("5d2c0b3e-1")),
        (AUTHORITY, s("ratings:9080")),
        (UPSTREAM_HOST, s("10.1.0.12:9080")),
        (UPSTREAM_LOCAL_ADDRESS, s("10.1.0.11:40312")),
        (DOWNSTREAM_LOCAL_ADDRESS, s("10.96.0.20:9080")),
        (DOWNSTREAM_REMOTE_ADDRESS, s("10.1.0.11:51000")),
        (ROUTE_NAME, s("ratings.default.svc.cluster.local:9080")),
    ])
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn client_record_takes_values_from_the_host_and_the_upstream_peer() {
    let values = host_values();
    let local = fixtures::client();
    let peer = PeerInfo {
        workload: "ratings-v1".into(),
        namespace: "shop".into(),
        ..PeerInfo::default()
    };
    let ctx = RecordContext {
        reporter: Reporter::Source,
        outcome: RequestOutcome {
            response_code: Some(503),
            response_flags: 0x20 | 0x8000,
            grpc_status: None,
        },
        upstream_cluster: "outbound|9080||ratings.shop.svc.cluster.local",
        local: &local,
        downstream_peer: None,
        upstream_peer: Some(&peer),
        now_ns: || panic!("request.time is there"),
    };
    let mut reads = Vec::new();
    let record = build_record(&ctx, |v| {
        reads.push(v);
        values.get(&v).cloned()
    });
    assert_eq!(
        record,
        AccessLogRecord {
            start_time_ns: 1_700_000_000_123_000_000,
            method: "GET".into(),
            path: "/ratings/0?x=1".into(),
            protocol: "HTTP/1.1".into(),
            response_code: 503,
            response_flags: "UF,URX".into(),
            response_code_details: "via_upstream".into(),
            bytes_received: 12,
            bytes_sent: 345,
            duration_ms: Some(7),
            upstream_service_time: "6".into(),
            user_agent: "curl/8.5.0".into(),
            request_id: "5d2c0b3e-1".into(),
            authority: "ratings:9080".into(),
            upstream_host: "10.1.0.12:9080".into(),
            upstream_cluster: "outbound|9080||ratings.shop.svc.cluster.local".into(),
            upstream_local_address: "10.1.0.11:40312".into(),
            downstream_local_address: "10.96.0.20:9080".into(),
            downstream_remote_address: "10.1.0.11:51000".into(),
            route_name: "ratings.default.svc.cluster.local:9080".into(),
            source_workload: "productpage-v1".into(),
            source_namespace: "default".into(),
            destination_workload: "ratings-v1".into(),
            destination_namespace: "shop".into(),
            reporter: "source".into(),
            ..AccessLogRecord::default()
        }
    );
    assert_eq!(
        reads.iter().filter(|v| **v == PATH).count(),
        1,
        "path read after the missing original path"
    );
}

#[cfg_attr(not(target_arch = "wasm32"), test)]
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
fn server_record_prefers_the_original_path_and_names_the_downstream_peer() {
    let mut values = host_values();
    values.insert(ORIGINAL_PATH, b"/before/rewrite".to_vec());
    values.remove(&START_TIME);
    values.remove(&DURATION);
    let local = fixtures::server();
    let ctx = RecordContext {
        reporter: Reporter::Destination,
        outcome: RequestOutcome::default(),
        upstream_cluster: "inbound|9080||",
        local: &local,
        downstream_peer: None,
        upstream_peer: None,
        now_ns: || 42,
    };
    let record = build_record(&ctx, |v| values.get(&v).cloned());
    assert_eq!(record.path, "/before/rewrite");
    assert_eq!(
        record.start_time_ns, 42,
        "the host clock without request.time"
    );
    assert_eq!(record.duration_ms, None);
    assert_eq!(record.response_code, 0);
    assert_eq!(record.response_flags, "", "no flag is an empty string");
    assert_eq!(
        (
            record.source_workload.as_str(),
            record.source_namespace.as_str()
        ),
        ("", ""),
        "unknown peer"
    );
    assert_eq!(record.destination_workload, "ratings-v1");
    assert_eq!(record.reporter, "destination");
}

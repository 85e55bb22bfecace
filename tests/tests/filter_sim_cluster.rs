//! The simulator's cluster endpoints (`Simulation::start_cluster`): `mixed.yaml` (HTTP, gRPC,
//! TCP) through the compiled filter, then each sidecar's `:15020` and istiod's `:15014` bodies
//! parse with the sink's own parser (`meshtap-textformat`, no skipped line) and with
//! Prometheus' (`promtool check metrics`, from Debian's prometheus package), hold the families
//! a real sidecar and istiod expose, and move: request counters equal the scenario's totals,
//! byte histograms sum the wire sizes where the filter reports the total sizes, istiod's
//! pushes grow with simulated time. The CRI log files have the kubelet's layout and
//! one Istio TEXT access line per request each sidecar saw.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use meshtap_logformat::access::parse_text;
use meshtap_logformat::cri::{parse_cri_line, PodLogPath};
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::Clock;
use meshtap_tests::sim::cluster::pod_logs::pod_uid;
use meshtap_tests::sim::cluster::Cluster;
use meshtap_tests::sim::{expect, Scenario, SimOptions, Simulation, CALL_SPACING};
use meshtap_textformat::{Parser, TypedSamples};

fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("the endpoint accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_string()
}

/// Sample values per family (summed over series) with the sink's parser; no line skipped.
fn parse_with_sink_parser(body: &str) -> BTreeMap<String, f64> {
    let mut reader = TypedSamples::new(Parser::for_content_type(
        body.as_bytes(),
        Some("text/plain; version=0.0.4"),
    ));
    let mut totals = BTreeMap::new();
    for sample in reader.by_ref() {
        let sample = sample.expect("every line parses");
        *totals.entry(sample.sample.name.to_string()).or_insert(0.0) += sample.sample.value;
    }
    assert_eq!(reader.stats().bad_lines, 0);
    totals
}

/// Prometheus' own text parser (expfmt, through promtool) accepts the body; lint remarks
/// (missing HELP, counter names) are not parse errors.
fn assert_prometheus_parses(body: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed with Debian's prometheus (`cargo xtask test`)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("parsing error"), "{text}");
}

fn scenario_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/mixed.yaml")
}

#[test]
fn cluster_endpoints_serve_istio_shaped_bodies_that_move_with_traffic() {
    let scenario = Scenario::load(&scenario_path()).unwrap();
    let expected_requests = expect::request_totals(&scenario);
    let root = std::env::temp_dir().join(format!("meshtap-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let clock = Clock::manual_now();
    let cluster = Cluster::for_scenario(&scenario, clock.clone(), &root).unwrap();
    let mut sim =
        Simulation::start(shared_module(), scenario, &SimOptions::default(), clock).unwrap();
    let cluster = sim.attach_cluster(cluster).clone();
    let istiod_before = parse_with_sink_parser(&get(cluster.istiod, "/metrics"));
    sim.run_counts(CALL_SPACING);
    sim.flush();

    for sidecar in &cluster.sidecars {
        let body = get(sidecar.stats, "/stats/prometheus");
        assert_prometheus_parses(&body);
        let families = parse_with_sink_parser(&body);
        for family in [
            "istio_agent_cert_expiry_seconds",
            "istio_agent_process_cpu_seconds_total",
            "envoy_cluster_upstream_cx_active",
            "envoy_cluster_upstream_rq_total",
            "envoy_server_live",
        ] {
            assert!(families.contains_key(family), "{family} on {}", sidecar.pod);
        }
        let requests: u64 = ["source", "destination"]
            .iter()
            .filter_map(|r| expected_requests.get(&(sidecar.workload.clone(), r.to_string())))
            .sum();
        let scraped = families.get("istio_requests_total").copied().unwrap_or(0.0);
        assert_eq!(
            scraped as u64, requests,
            "istio_requests_total of {}",
            sidecar.pod
        );
        if requests > 0 {
            for histogram in [
                "istio_request_duration_milliseconds_count",
                "istio_response_bytes_count",
            ] {
                assert_eq!(
                    families[histogram] as u64, requests,
                    "{histogram} of {}",
                    sidecar.pod
                );
            }
        }
    }
    let tcp_sides: BTreeSet<&str> = cluster
        .sidecars
        .iter()
        .filter(|s| {
            get(s.stats, "/stats/prometheus").contains("istio_tcp_connections_opened_total{")
        })
        .map(|s| s.workload.as_str())
        .collect();
    assert_eq!(
        tcp_sides,
        BTreeSet::from([
            "mysql-v1",
            "productpage-v1",
            "ratings-v1",
            "redis-v1",
            "reviews-v1"
        ])
    );

    // Istio's native filter meters the wire: productpage → details (only details-v1's
    // inbound traffic) sets wire sizes of 95 and 262 bytes against total sizes of 120 and
    // 300, which is what the filter reports.
    let details = cluster
        .sidecars
        .iter()
        .find(|s| s.workload == "details-v1")
        .unwrap();
    let native = parse_with_sink_parser(&get(details.stats, "/stats/prometheus"));
    assert_eq!(native["istio_request_bytes_sum"], 20.0 * 95.0);
    assert_eq!(native["istio_response_bytes_sum"], 20.0 * 262.0);
    let reported = |family: &str| -> f64 {
        let reports = sim.reports();
        let last = reports
            .iter()
            .filter(|r| r.proxy.as_ref().is_some_and(|p| p.pod == details.pod))
            .filter(|r| {
                r.families
                    .iter()
                    .any(|f| f.name == family && !f.series.is_empty())
            })
            .max_by_key(|r| r.sequence)
            .expect("details-v1 reported");
        last.families
            .iter()
            .filter(|f| f.name == family)
            .flat_map(|f| &f.series)
            .map(|s| s.sum)
            .sum()
    };
    assert_eq!(reported("istio_request_bytes"), 20.0 * 120.0);
    assert_eq!(reported("istio_response_bytes"), 20.0 * 300.0);

    let istiod_body = get(cluster.istiod, "/metrics");
    assert_prometheus_parses(&istiod_body);
    let istiod = parse_with_sink_parser(&istiod_body);
    assert_eq!(istiod["pilot_xds"] as usize, cluster.sidecars.len());
    for family in [
        "pilot_total_xds_rejects",
        "pilot_total_xds_internal_errors",
        "pilot_proxy_convergence_time_count",
        "pilot_xds_push_time_count",
        "process_cpu_seconds_total",
        "go_goroutines",
    ] {
        assert!(istiod.contains_key(family), "{family} on istiod");
    }
    // mixed.yaml runs > 25 s of simulated time: several config changes, each pushed to all.
    assert!(istiod["pilot_xds_pushes"] > istiod_before["pilot_xds_pushes"]);
    assert!(
        istiod["pilot_proxy_convergence_time_count"]
            > istiod_before["pilot_proxy_convergence_time_count"]
    );
    assert!(istiod["process_cpu_seconds_total"] > istiod_before["process_cpu_seconds_total"]);

    assert_kubelet_logs(&root, &cluster.sidecars, &expected_requests);
    std::fs::remove_dir_all(&root).unwrap();
}

/// `<root>/<ns>_<pod>_<uid>/istio-proxy/0.log`, CRI lines, one TEXT access line per request.
fn assert_kubelet_logs(
    root: &Path,
    sidecars: &[meshtap_tests::sim::cluster::SidecarTarget],
    expected: &BTreeMap<(String, String), u64>,
) {
    for sidecar in sidecars {
        let path = root
            .join(format!(
                "{}_{}_{}",
                sidecar.namespace,
                sidecar.pod,
                pod_uid(&sidecar.pod)
            ))
            .join("istio-proxy/0.log");
        let path_text = path.to_str().unwrap();
        let parsed = PodLogPath::parse(path_text).unwrap();
        assert_eq!(
            (parsed.namespace, parsed.pod),
            (sidecar.namespace.as_str(), sidecar.pod.as_str())
        );
        assert_eq!((parsed.container, parsed.restart_count), ("istio-proxy", 0));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut access_lines = 0;
        for line in text.lines() {
            let cri = parse_cri_line(line.as_bytes()).expect("a CRI line");
            assert!(!cri.partial);
            let message = std::str::from_utf8(cri.message).unwrap();
            if message.starts_with('[') {
                parse_text(message).unwrap_or_else(|e| panic!("{e}: {message}"));
                access_lines += 1;
            }
        }
        let requests: u64 = ["source", "destination"]
            .iter()
            .filter_map(|r| expected.get(&(sidecar.workload.clone(), r.to_string())))
            .sum();
        assert_eq!(access_lines, requests, "access lines of {}", sidecar.pod);
    }
}

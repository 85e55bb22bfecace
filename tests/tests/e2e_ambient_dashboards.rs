//! meshtap's own Grafana dashboards (`manifests/dashboards/`) answer on a mixed mesh in a real
//! Prometheus: the demo's sidecar mesh (`support::demo_mesh`, `meshtap-sim` with the compiled
//! filter) and two nodes' simulated ztunnels (`sim::ambient::ztunnel_stats`) found through the
//! stand-in Kubernetes API and scraped by a second sink's `scrape.ztunnel`, both remote-writing
//! into one Prometheus. `../shared/tools/check_dashboards.py` extracts every panel's queries
//! from our JSON and runs them per panel (a panel answers when any of its targets does), once
//! per value of the `qrep` reporter variable. Every panel must answer except the ones in
//! [`CANNOT_ANSWER`], each with the reason (also in the README).

#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use meshtap_test_support::kube_api::{KubeApi, PodBuilder};
use meshtap_test_support::prometheus::Prometheus;
use meshtap_tests::sim::ambient::ztunnel_stats::ztunnel_metrics_body;
use meshtap_tests::sim::ambient::{AmbientPeer, Direction, L4Leg};
use meshtap_tests::sim::cluster::StatsServer;
use support::demo_mesh::DemoMesh;
use support::sink::Sink;

const CADVISOR: &str = "cAdvisor's `container_*` series (the kubelet serves them; meshtap and \
    its simulator do not)";
const NOT_SIMULATED: &str = "a ztunnel family the simulated ztunnel does not serve \
    (`istio_tcp_sockets_open`, ztunnel 1.29+; `istio_dns_*`, only with DNS capture)";

/// `(dashboard, panel title, why)` of the panels the scenario cannot answer.
const CANNOT_ANSWER: &[(&str, &str, &str)] = &[
    ("meshtap-ztunnel", "Memory Usage", CADVISOR),
    ("meshtap-ztunnel", "CPU Usage", CADVISOR),
    ("meshtap-ztunnel", "Open Sockets", NOT_SIMULATED),
    ("meshtap-ztunnel", "DNS Requests", NOT_SIMULATED),
];

/// The dashboards' variables, set to the demo's names.
const VARS: [(&str, &str); 3] = [
    ("workload", "reviews-v1"),
    ("namespace", "default"),
    ("service", "reviews.default.svc.cluster.local"),
];

/// Enough samples for `[1m]` rates: three of a reviews-v1 request series, a reviews-v1 TCP
/// series and a ztunnel series.
const ENOUGH_SAMPLES: &str = r#"max(count_over_time(istio_requests_total{destination_workload="reviews-v1"}[1m])) >= 3 and max(count_over_time(istio_tcp_received_bytes_total{source_workload="reviews-v1"}[1m])) >= 3 and max(count_over_time(istio_tcp_received_bytes_total{app="ztunnel"}[1m])) >= 3"#;

fn peer(name: &str, ip: &str, zone: &str) -> AmbientPeer {
    AmbientPeer {
        workload: format!("{name}-v1"),
        pod: format!("{name}-v1-7f6d8b9c4-x2k8q"),
        namespace: "shop".to_owned(),
        canonical_service: name.to_owned(),
        canonical_revision: "v1".to_owned(),
        service_account: name.to_owned(),
        ip: ip.to_owned(),
        region: "us-east1".to_owned(),
        zone: zone.to_owned(),
    }
}

/// An ambient namespace `shop` on two nodes: cart (node-1) → inventory (node-2) directly, both
/// ztunnels counting it; cart → the waypoint in front of `orders`, counted by node-1's only.
fn ztunnel_legs(round: u64) -> [Vec<L4Leg>; 2] {
    let leg = |direction, destination: AmbientPeer, service: &str, connections: u64| L4Leg {
        direction,
        source: peer("cart", "10.244.1.20", "us-east1-b"),
        destination,
        service: format!("{service}.shop.svc.cluster.local"),
        port: 8080,
        connections: connections * round,
        received_bytes: 700 * connections * round,
        sent_bytes: 4100 * connections * round,
        response_flags: "-".to_owned(),
    };
    let inventory = || peer("inventory", "10.244.2.31", "us-east1-c");
    let waypoint = peer("waypoint", "10.244.1.40", "us-east1-b");
    [
        vec![
            leg(Direction::Outbound, inventory(), "inventory", 3),
            leg(Direction::Outbound, waypoint, "orders", 5),
        ],
        vec![leg(Direction::Inbound, inventory(), "inventory", 3)],
    ]
}

fn ztunnel_pod(name: &str, node: &str, port: u16) -> serde_json::Value {
    let mut pod = PodBuilder::new("istio-system", name, "127.0.0.1")
        .label("app", "ztunnel")
        .container(
            "istio-proxy",
            "istio/ztunnel:1.31.0",
            &[(Some("ztunnel-stats"), port)],
        )
        .owner("DaemonSet", "ztunnel")
        .build();
    pod["spec"]["nodeName"] = serde_json::json!(node);
    pod
}

/// Two nodes' ztunnels whose counters grow with every scrape, and a sink scraping them through
/// the stand-in Kubernetes API into `prometheus`. Dropped together.
struct Ztunnels {
    _sink: Sink,
    _api: KubeApi,
    _server: StatsServer,
    _runtime: tokio::runtime::Runtime,
}

fn start_ztunnels(prometheus: &Prometheus) -> Ztunnels {
    let listeners: Vec<TcpListener> = (0..2)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let rounds = std::sync::atomic::AtomicU64::new(0);
    let server = StatsServer::start(listeners, vec!["/metrics"; 2], move |node| {
        let round = rounds.fetch_add(1, std::sync::atomic::Ordering::Relaxed) / 2 + 1;
        let legs = ztunnel_legs(round);
        ztunnel_metrics_body(&legs[node], 1)
    })
    .unwrap();
    let ports: Vec<u16> = server.addrs().iter().map(|a| a.port()).collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = runtime.block_on(KubeApi::start());
    api.apply(ztunnel_pod("ztunnel-4hq7z", "node-1", ports[0]));
    api.apply(ztunnel_pod("ztunnel-9vwlm", "node-2", ports[1]));
    let sink = Sink::with_sections(
        "ztunnels",
        &format!(
            "remote_write:\n  - url: \"{}\"\n    queue:\n      batch_send_deadline: 200ms\nscrape:\n  interval: 1s\n  jobs: []\n  ztunnel: {{enabled: true, api_server: '{}'}}\n",
            prometheus.write_url(),
            api.url()
        ),
    );
    Ztunnels {
        _sink: sink,
        _api: api,
        _server: server,
        _runtime: runtime,
    }
}

/// `../shared` beside the workspace root, where CI checks it out.
fn check_tool() -> PathBuf {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tools/check_dashboards.py");
    assert!(
        tool.exists(),
        "{} is missing: the dashboard check needs the `shared` checkout beside the repository",
        tool.display()
    );
    tool
}

/// Our dashboards' queries, extracted by the check tool into `out`.
fn extract_queries(tool: &Path, out: &Path) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let run = Command::new("python3")
        .arg(tool)
        .arg("--extract")
        .args(&files)
        .arg("--output")
        .arg(out)
        .output()
        .expect("python3 runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// `dashboard: title` of every panel without data with `qrep` set, per panel.
fn empty_panels(
    tool: &Path,
    queries: &Path,
    prometheus: &Prometheus,
    qrep: &str,
) -> BTreeSet<String> {
    let out = queries.with_file_name(format!("results-{qrep}.json"));
    let mut check = Command::new("python3");
    check
        .arg(tool)
        .args([
            "--prom",
            &prometheus.base(),
            "--per-panel",
            "--timeout",
            "10",
        ])
        .arg("--queries")
        .arg(queries)
        .args(["--var", &format!("qrep={qrep}")])
        .arg("--json-out")
        .arg(&out);
    for (name, value) in VARS {
        check.args(["--var", &format!("{name}={value}")]);
    }
    let run = check.output().expect("python3 runs");
    eprintln!("qrep={qrep}:\n{}", String::from_utf8_lossy(&run.stdout));
    let results: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("--json-out written")).unwrap();
    assert!(results.len() > 100, "only {} queries ran", results.len());
    let panel = |r: &serde_json::Value| {
        format!(
            "{}: {}",
            r["dashboard"].as_str().unwrap_or("?"),
            r["panel_title"].as_str().unwrap_or("?")
        )
    };
    let answered: BTreeSet<String> = results
        .iter()
        .filter(|r| r["status"] == "DATA")
        .map(panel)
        .collect();
    results
        .iter()
        .map(panel)
        .filter(|p| !answered.contains(p))
        .collect()
}

#[test]
fn every_panel_of_our_dashboards_answers_on_a_mixed_mesh() {
    let tool = check_tool();
    let prometheus = Prometheus::start();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e_ambient_dashboards");
    let backend = format!(
        "remote_write:\n  - url: \"{}\"\n    queue: {{batch_send_deadline: 200ms}}\n",
        prometheus.write_url()
    );
    let mut mesh = DemoMesh::start(&work, 120, "1s", &backend);
    let _ztunnels = start_ztunnels(&prometheus);
    let enough = prometheus.wait_for(ENOUGH_SAMPLES, Duration::from_secs(60), |r| {
        r.as_array().is_some_and(|a| !a.is_empty())
    });
    assert!(
        enough.as_array().is_some_and(|a| !a.is_empty()),
        "the mesh's and the ztunnels' series did not reach Prometheus:\n{}",
        mesh.sim_log()
    );
    assert!(
        mesh.sim_running(),
        "meshtap-sim stopped:\n{}",
        mesh.sim_log()
    );

    let queries = work.join("queries.json");
    extract_queries(&tool, &queries);
    let mut empty = empty_panels(&tool, &queries, &prometheus, "destination");
    let with_source = empty_panels(&tool, &queries, &prometheus, "source");
    empty.extend(with_source);
    let allowed: BTreeSet<String> = CANNOT_ANSWER
        .iter()
        .map(|(dashboard, title, _)| format!("{dashboard}: {title}"))
        .collect();
    for answered in allowed.iter().filter(|p| !empty.contains(*p)) {
        eprintln!("now answers (take it off CANNOT_ANSWER): {answered}");
    }
    let unexpected: Vec<&String> = empty.iter().filter(|p| !allowed.contains(*p)).collect();
    assert!(
        unexpected.is_empty(),
        "{} panels without data:\n{}",
        unexpected.len(),
        unexpected
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

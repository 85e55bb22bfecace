//! meshtap's own Grafana dashboards (`manifests/dashboards/`) answer on a mixed mesh in a real
//! Prometheus: the demo as `cargo xtask demo` runs it (`support::demo_mesh`, `meshtap-sim` with
//! the compiled filter): Bookinfo's sidecars, and the ambient namespace `travel` whose waypoint
//! runs the filter (`reporter="waypoint"`) and whose two nodes' ztunnels are scraped as job
//! `ztunnel`. `../shared/tools/check_dashboards.py` extracts every panel's queries from our
//! JSON and runs them per panel (a panel answers when any of its targets does), for both values
//! of the `qrep` reporter variable and three sets of the other variables: a sidecar workload
//! (reviews-v1), an ambient server behind the waypoint (flights-v1) and an ambient client of it
//! (frontend-v1). Every panel must answer for the sidecar workload and for one of the ambient
//! ones (which have no sidecar, so their requests can only come from the waypoint), except the
//! ones in [`CANNOT_ANSWER`], each with the reason (also in the README).

#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use meshtap_test_support::prometheus::Prometheus;
use support::demo_mesh::DemoMesh;

const CADVISOR: &str = "cAdvisor's `container_*` series (the kubelet serves them; meshtap and \
    its simulator do not)";

/// `(dashboard, panel title, why)` of the panels the scenario cannot answer.
const CANNOT_ANSWER: &[(&str, &str, &str)] = &[
    ("meshtap-ztunnel", "Memory Usage", CADVISOR),
    ("meshtap-ztunnel", "CPU Usage", CADVISOR),
];

/// The dashboards' variables for a sidecar workload of the demo, and for the ambient server
/// and client around its waypoint; namespace and workload filters on "All" (`.*`).
const SIDECAR_VARS: [(&str, &str); 5] = [
    ("workload", "reviews-v1"),
    ("namespace", "default"),
    ("service", "reviews.default.svc.cluster.local"),
    ("srcns", ".*"),
    ("dstns", ".*"),
];
const AMBIENT_SERVER_VARS: [(&str, &str); 5] = [
    ("workload", "flights-v1"),
    ("namespace", "travel"),
    ("service", "flights.travel.svc.cluster.local"),
    ("srcns", ".*"),
    ("dstns", ".*"),
];
const AMBIENT_CLIENT_VARS: [(&str, &str); 5] = [
    ("workload", "frontend-v1"),
    ("namespace", "travel"),
    ("service", "hotels.travel.svc.cluster.local"),
    ("srcns", ".*"),
    ("dstns", ".*"),
];

/// Enough samples for `[1m]` rates: three of reviews-v1's request and TCP series, of the
/// waypoint's requests to flights and of a ztunnel's L4 series.
const ENOUGH_SAMPLES: &str = r#"max(count_over_time(istio_requests_total{destination_workload="reviews-v1"}[1m])) >= 3 and max(count_over_time(istio_tcp_received_bytes_total{source_workload="reviews-v1"}[1m])) >= 3 and max(count_over_time(istio_requests_total{reporter="waypoint",destination_workload="flights-v1"}[1m])) >= 3 and max(count_over_time(istio_tcp_received_bytes_total{app="ztunnel"}[1m])) >= 3"#;

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

/// `dashboard: title` of every panel without data with `vars` and `qrep` set, per panel.
fn empty_panels(
    tool: &Path,
    queries: &Path,
    prometheus: &Prometheus,
    vars: &[(&str, &str)],
    qrep: &str,
) -> BTreeSet<String> {
    let out = queries.with_file_name(format!("results-{}-{qrep}.json", vars[0].1));
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
    for (name, value) in vars {
        check.args(["--var", &format!("{name}={value}")]);
    }
    let run = check.output().expect("python3 runs");
    eprintln!(
        "{vars:?} qrep={qrep}:\n{}",
        String::from_utf8_lossy(&run.stdout)
    );
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

/// The panels empty with `vars` under both `qrep` values.
fn empty_with(
    tool: &Path,
    queries: &Path,
    prometheus: &Prometheus,
    vars: &[(&str, &str)],
) -> BTreeSet<String> {
    let destination = empty_panels(tool, queries, prometheus, vars, "destination");
    let source = empty_panels(tool, queries, prometheus, vars, "source");
    destination.intersection(&source).cloned().collect()
}

#[test]
fn every_panel_of_our_dashboards_answers_on_a_mixed_mesh() {
    let tool = check_tool();
    let prometheus = Prometheus::start();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e_ambient_dashboards");
    // Held to the end: dropping it stops the simulator.
    let _mesh = DemoMesh::start_into_prometheus(
        &work,
        &prometheus,
        ENOUGH_SAMPLES,
        Duration::from_secs(60),
        "the sidecars', the waypoint's and the ztunnels' series",
    );

    let queries = work.join("queries.json");
    extract_queries(&tool, &queries);
    let mut empty = empty_with(&tool, &queries, &prometheus, &SIDECAR_VARS);
    let server = empty_with(&tool, &queries, &prometheus, &AMBIENT_SERVER_VARS);
    let client = empty_with(&tool, &queries, &prometheus, &AMBIENT_CLIENT_VARS);
    empty.extend(server.intersection(&client).cloned());
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

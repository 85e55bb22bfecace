//! The Istio Grafana dashboards and Kiali's queries on the demo's data: the demo as `cargo
//! xtask demo` runs it (`support::demo_mesh`) writing remote-write into a real Prometheus for a
//! bounded time, then `../shared/tools/check_dashboards.py --per-panel` (beside the repository,
//! as in CI) with the dashboards' variables set to the demo's `reviews-v1` /
//! `reviews.default.svc.cluster.local`, once on the dashboards and once on
//! `../shared/reference/kiali_queries.json`. Every panel must answer except the ones in
//! [`CANNOT_ANSWER`], each with the reason the demo cannot feed it (also in the README).

#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use meshtap_test_support::prometheus::Prometheus;
use support::demo_mesh::DemoMesh;

/// Why the panels in [`CANNOT_ANSWER`] stay empty.
const CADVISOR: &str = "cAdvisor's `container_*` series (CPU, memory, disk of containers): \
    the kubelet serves them, meshtap and its simulator do not";

/// `(dashboard, panel id, panel title, why)` of the panels the demo cannot answer.
const CANNOT_ANSWER: &[(&str, u64, &str, &str)] = &[
    ("pilot-dashboard", 6, "CPU Usage", CADVISOR),
    ("istio-performance-dashboard", 4, "vCPU / 1k rps", CADVISOR),
    ("istio-performance-dashboard", 7, "vCPU", CADVISOR),
    ("istio-performance-dashboard", 902, "Memory Usage", CADVISOR),
    ("istio-performance-dashboard", 72, "Memory", CADVISOR),
    ("istio-performance-dashboard", 73, "vCPU", CADVISOR),
    ("istio-performance-dashboard", 702, "Disk", CADVISOR),
];

/// How a panel is named in the test's messages: dashboard, panel id (`-` for Kiali's
/// queries, which have none) and title.
fn panel_name(dashboard: &str, id: Option<u64>, title: &str) -> String {
    let id = id.map_or("-".to_owned(), |id| id.to_string());
    format!("{dashboard} #{id} {title}")
}

/// Enough samples for the dashboards' `[1m]` rates: three reports (5 s apart) of a
/// reviews-v1 HTTP and a reviews-v1 TCP series.
const ENOUGH_SAMPLES: &str = r#"max(count_over_time(istio_requests_total{destination_workload="reviews-v1"}[1m])) >= 3 and max(count_over_time(istio_tcp_received_bytes_total{source_workload="reviews-v1"}[1m])) >= 3"#;

/// `../shared` beside the workspace root, where CI checks it out.
fn shared_dir() -> PathBuf {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    let tool = shared.join("tools/check_dashboards.py");
    assert!(
        tool.exists(),
        "{} is missing: the dashboard check needs the `shared` checkout beside the repository \
         (../shared/tools/check_dashboards.py and ../shared/reference/)",
        tool.display()
    );
    shared
}

/// Runs the check tool with `extra` arguments; returns the panels with no data, per panel as
/// Grafana shows them (a panel answers when any of its targets does).
fn empty_panels(shared: &Path, prometheus: &Prometheus, out: &Path, extra: &[&str]) -> Vec<String> {
    let run = Command::new("python3")
        .arg(shared.join("tools/check_dashboards.py"))
        .args([
            "--prom",
            &prometheus.base(),
            "--per-panel",
            "--timeout",
            "10",
        ])
        .args(["--var", "workload=reviews-v1"])
        .args(["--var", "service=reviews.default.svc.cluster.local"])
        .arg("--json-out")
        .arg(out)
        .args(extra)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&run.stderr));
    let text = std::fs::read_to_string(out).expect("check_dashboards.py wrote --json-out");
    let results: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let panel = |r: &serde_json::Value| {
        panel_name(
            r["dashboard"].as_str().unwrap_or("?"),
            r["panel_id"].as_u64(),
            r["panel_title"].as_str().unwrap_or("?"),
        )
    };
    let answered: BTreeSet<String> = results
        .iter()
        .filter(|r| r["status"] == "DATA")
        .map(panel)
        .collect();
    let all: BTreeSet<String> = results.iter().map(panel).collect();
    assert!(!all.is_empty(), "no query ran:\n{stdout}");
    all.difference(&answered).cloned().collect()
}

#[test]
fn the_dashboards_and_kiali_answer_on_the_demo() {
    let shared = shared_dir();
    let prometheus = Prometheus::start();
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e_demo_dashboards");
    // Held to the end: dropping it stops the simulator.
    let _mesh = DemoMesh::start_into_prometheus(
        &work,
        &prometheus,
        ENOUGH_SAMPLES,
        Duration::from_secs(45),
        "reviews-v1's series",
    );

    let mut empty = empty_panels(&shared, &prometheus, &work.join("dashboards.json"), &[]);
    let kiali = shared.join("reference/kiali_queries.json");
    let kiali = kiali.to_str().unwrap();
    empty.extend(empty_panels(
        &shared,
        &prometheus,
        &work.join("kiali.json"),
        &["--queries", kiali],
    ));
    let allowed: BTreeSet<String> = CANNOT_ANSWER
        .iter()
        .map(|(dashboard, id, title, _)| panel_name(dashboard, Some(*id), title))
        .collect();
    let unexpected: Vec<&String> = empty.iter().filter(|p| !allowed.contains(*p)).collect();
    for answered in allowed.iter().filter(|p| !empty.contains(p)) {
        eprintln!("now answers (take it off CANNOT_ANSWER): {answered}");
    }
    assert!(
        unexpected.is_empty(),
        "{} panels without data on the demo:\n{}",
        unexpected.len(),
        unexpected
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

//! The live view of the running demo mesh in a real browser: `demo.yaml` through the
//! `meshtap-sim` binary serving its cluster, the sink on the config the simulator writes (as
//! `cargo xtask demo` runs them, no backend), and headless chromium driven by
//! `sink/tests/browser/view.mjs` checking what a person would see: the demo's services with
//! non-zero rates, the graph's edges, TCP rows, the ambient namespace `travel` (its waypoint's
//! services and edges marked ambient, its ztunnels' workload pairs each counted by one ztunnel),
//! istiod's pushes, filter-shipped and tailed access-log lines, the scrape jobs `up`, and no
//! console error. The screenshot lands in the
//! target dir (`demo-live-view.png`; the README's `sink/docs/live-view.png` is one of these).
//!
//! Skipped (with a message) only when chromium, node or playwright-core is missing and
//! `MESHTAP_REQUIRE_BROWSER` is unset; `cargo xtask test` sets it.

#[allow(dead_code)]
mod support;

use std::path::Path;
use std::time::Duration;

use meshtap_test_support::browser;
use support::demo_mesh::DemoMesh;

const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);

fn service(name: &str) -> String {
    format!("{name}.default.svc.cluster.local")
}

#[test]
fn the_demo_mesh_shows_in_chromium() {
    if !browser::require_or_skip("the_demo_mesh_shows_in_chromium") {
        return;
    }
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e_demo_view");
    // Long enough for the browser's checks; the simulator is killed when the test ends.
    let mut mesh = DemoMesh::start(&work.join("demo"), 150, "1s", "");
    let expect = serde_json::json!({
        "services": [service("details"), service("reviews"), service("ratings")],
        "edges": [
            ["productpage-v1.default", service("details")],
            ["productpage-v1.default", service("reviews")],
            ["reviews-v2.default", service("ratings")],
            ["reviews-v3.default", service("ratings")],
        ],
        "tcp_services": [service("mysqldb"), service("redis")],
        "ambient_services": ["flights.travel.svc.cluster.local", "hotels.travel.svc.cluster.local"],
        "ambient_edges": [
            ["frontend-v1.travel", "flights.travel.svc.cluster.local"],
            ["frontend-v1.travel", "hotels.travel.svc.cluster.local"],
        ],
        "ambient_pairs": [
            ["frontend-v1.travel", "waypoint.travel", "source"],
            ["waypoint.travel", "flights-v1.travel", "destination"],
            ["hotels-v1.travel", "bookings-db-v1.travel", "destination"],
        ],
        "push_types": ["cds", "eds", "lds"],
        "log_service": service("reviews"),
        "log_origins": ["filter", "file"],
        "scrape_jobs": ["istiod", "integrations/istio", "ztunnel"],
    });
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("demo-live-view.png");
    let checked = browser::check_view(
        &mesh.page_url(),
        &expect,
        &screenshot,
        &work.join("browser"),
        BROWSER_TIMEOUT,
    );
    assert!(
        mesh.sim_running(),
        "meshtap-sim stopped:\n{}",
        mesh.sim_log()
    );
    if let Err(failure) = checked {
        panic!("{failure}\nsimulator:\n{}", mesh.sim_log());
    }
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot too small"
    );
    eprintln!("screenshot: {}", screenshot.display());
}

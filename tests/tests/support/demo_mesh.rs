//! The demo as `cargo xtask demo` runs it, for the demo's end-to-end tests: the `meshtap-sim`
//! binary on `scenarios/demo.yaml` in rate mode serving its cluster (`--cluster-dir`), a real
//! meshtap-sink (in-process) on the sink config the simulator writes plus the test's backends,
//! and the sink's URL handed to the simulator on stdin. The simulator is killed on drop.
//!
//! It starts and stops; what the demo must show is asserted by the tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshtap_test_support::prometheus::Prometheus;
use meshtap_tests::filter_wasm;

use super::sink::Sink;

pub const DEMO_TOKEN: &str = "meshtap-demo-token";
/// How long the simulator may take to load the filter and announce its cluster.
const ANNOUNCE_LIMIT: Duration = Duration::from_secs(60);

/// The simulator's process, killed on drop (also when a test panics while starting).
struct SimProcess(Child);

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct DemoMesh {
    sim: SimProcess,
    pub sink: Sink,
    pub dir: PathBuf,
}

impl DemoMesh {
    /// Runs the demo for `seconds` of traffic under `dir` (emptied first), scraping every
    /// `scrape_interval`, with `backends` (top-level sink config sections) appended to the
    /// simulator's sink config.
    pub fn start(dir: &Path, seconds: u64, scrape_interval: &str, backends: &str) -> DemoMesh {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/demo.yaml");
        let wasm = filter_wasm::locate().unwrap_or_else(|hint| panic!("{hint}"));
        let mut sim = SimProcess(
            Command::new(env!("CARGO_BIN_EXE_meshtap-sim"))
                .arg("--wasm")
                .arg(wasm)
                .arg("--scenario")
                .arg(scenario)
                .args(["--sink-url", "-", "--token", DEMO_TOKEN])
                .args(["--seconds", &seconds.to_string()])
                .args(["--scrape-interval", scrape_interval])
                .arg("--cluster-dir")
                .arg(dir.join("cluster"))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("sim.log")).unwrap())
                .spawn()
                .expect("meshtap-sim starts"),
        );
        let config = wait_for_sink_config(&mut sim, dir);
        let sink = Sink::from_yaml(&format!("{config}{backends}"));
        let mut stdin = sim.0.stdin.take().unwrap();
        writeln!(stdin, "{}", sink.url()).unwrap();
        DemoMesh {
            sim,
            sink,
            dir: dir.to_owned(),
        }
    }

    /// The page's address.
    pub fn page_url(&self) -> String {
        format!("{}/", self.sink.url())
    }

    /// Runs the demo (120 s of traffic, 1 s scrapes) writing to `prometheus`, and waits up to
    /// `wait` until the query `enough` returns a series; panics naming `what` did not arrive.
    #[allow(
        dead_code,
        reason = "used by the dashboards tests, not by every test binary"
    )]
    pub fn start_into_prometheus(
        dir: &Path,
        prometheus: &Prometheus,
        enough: &str,
        wait: Duration,
        what: &str,
    ) -> DemoMesh {
        let backend = format!(
            "remote_write:\n  - url: \"{}\"\n    queue: {{batch_send_deadline: 200ms}}\n",
            prometheus.write_url()
        );
        let mut mesh = DemoMesh::start(dir, 120, "1s", &backend);
        let answer = prometheus.wait_for(enough, wait, |r| {
            r.as_array().is_some_and(|a| !a.is_empty())
        });
        assert!(
            answer.as_array().is_some_and(|a| !a.is_empty()),
            "{what} did not reach Prometheus:\n{}",
            mesh.sim_log()
        );
        assert!(
            mesh.sim_running(),
            "meshtap-sim stopped:\n{}",
            mesh.sim_log()
        );
        mesh
    }

    /// What the simulator wrote to stderr so far.
    pub fn sim_log(&self) -> String {
        sim_log(&self.dir)
    }

    /// Whether the simulator is still running.
    pub fn sim_running(&mut self) -> bool {
        self.sim.0.try_wait().unwrap().is_none()
    }
}

fn sim_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("sim.log")).unwrap_or_default()
}

/// The sink config the simulator writes once its cluster is served.
fn wait_for_sink_config(sim: &mut SimProcess, dir: &Path) -> String {
    let path = dir.join("cluster/sink.yaml");
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return text;
        }
        if let Some(status) = sim.0.try_wait().unwrap() {
            panic!("meshtap-sim exited with {status}:\n{}", sim_log(dir));
        }
        assert!(
            started.elapsed() < ANNOUNCE_LIMIT,
            "meshtap-sim announced no cluster within {ANNOUNCE_LIMIT:?}:\n{}",
            sim_log(dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

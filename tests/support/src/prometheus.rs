//! A real Prometheus (Debian's 2.42 package) started on a free loopback port with the
//! remote-write receiver on and a temporary TSDB, for the end-to-end tests of every crate;
//! killed (and its storage removed) on drop, also when a test panics.
//!
//! It only launches and queries: assertions live in the tests.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PROMETHEUS_BIN: &str = "/usr/bin/prometheus";

pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub addr: String,
}

impl Prometheus {
    /// Starts Prometheus on a free port and waits (bounded) until `/-/ready` answers 200.
    pub fn start() -> Prometheus {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Prometheus::start_on(port)
    }

    /// Starts Prometheus on 127.0.0.1:`port` (for a test whose writer was pointed there
    /// before Prometheus ran) and waits (bounded) until `/-/ready` answers 200.
    pub fn start_on(port: u16) -> Prometheus {
        assert!(
            std::path::Path::new(PROMETHEUS_BIN).exists(),
            "{PROMETHEUS_BIN} is missing: `cargo xtask test` installs Debian's prometheus package"
        );
        let addr = format!("127.0.0.1:{port}");
        let dir = std::env::temp_dir().join(format!("meshtap-prom-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        // No scrape jobs: everything arrives by remote-write.
        std::fs::write(
            dir.join("prometheus.yml"),
            "global:\n  scrape_interval: 1m\n",
        )
        .unwrap();
        let child = Command::new(PROMETHEUS_BIN)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus");
        let prom = Prometheus { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(resp) = ureq::get(&format!("http://{}/-/ready", prom.addr)).call() {
                if resp.status() == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready in 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        prom
    }

    /// The remote-write receiver URL.
    pub fn write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs an instant query now and returns `data.result` (a JSON array).
    pub fn query(&self, promql: &str) -> serde_json::Value {
        self.query_with(promql, None)
    }

    /// Runs an instant query at `time_ms` (ms since the Unix epoch).
    pub fn query_at(&self, promql: &str, time_ms: i64) -> serde_json::Value {
        self.query_with(promql, Some(time_ms))
    }

    fn query_with(&self, promql: &str, time_ms: Option<i64>) -> serde_json::Value {
        let mut request =
            ureq::get(&format!("http://{}/api/v1/query", self.addr)).query("query", promql);
        if let Some(ms) = time_ms {
            request = request.query("time", format!("{:.3}", ms as f64 / 1000.0));
        }
        let mut resp = request
            .call()
            .unwrap_or_else(|e| panic!("query {promql:?} failed: {e}"));
        let text = resp.body_mut().read_to_string().expect("query answer body");
        let body: serde_json::Value = serde_json::from_str(&text).expect("query answer is JSON");
        assert_eq!(body["status"], "success", "query {promql:?}: {body}");
        body["data"]["result"].clone()
    }

    /// The single value of a query that must return exactly one sample (NaN if none).
    pub fn scalar(&self, promql: &str) -> f64 {
        scalar_of(promql, &self.query(promql))
    }

    /// [`Prometheus::scalar`] evaluated at `time_ms` (samples written with a simulated clock
    /// can lie ahead of the wall clock).
    pub fn scalar_at(&self, promql: &str, time_ms: i64) -> f64 {
        scalar_of(promql, &self.query_at(promql, time_ms))
    }

    /// Polls `promql` until `done` accepts its result or `timeout` passes; returns the last result.
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.poll(timeout, done, || self.query(promql))
    }

    /// [`Prometheus::wait_for`] with the query evaluated at `time_ms`.
    pub fn wait_for_at(
        &self,
        promql: &str,
        time_ms: i64,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.poll(timeout, done, || self.query_at(promql, time_ms))
    }

    fn poll(
        &self,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
        query: impl Fn() -> serde_json::Value,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let r = query();
            if done(&r) || Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The single value of a vector result that must hold at most one sample (NaN if none).
fn scalar_of(promql: &str, r: &serde_json::Value) -> f64 {
    let arr = r.as_array().expect("vector result");
    if arr.is_empty() {
        return f64::NAN;
    }
    assert_eq!(
        arr.len(),
        1,
        "{promql:?} returned {} series: {r}",
        arr.len()
    );
    arr[0]["value"][1].as_str().unwrap().parse().unwrap()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

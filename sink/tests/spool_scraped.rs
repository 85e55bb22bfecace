//! Scraped samples through the spool: a sink scrapes a target while its endpoint is down, is
//! killed (SIGKILL), and the next sink on the same directory delivers what was spooled to a real
//! Prometheus started only then. Scraped records are spooled in the long-copy form and made
//! snappy's own when sent, so this is the check, by an independent decoder, that what reaches
//! the endpoint is what was scraped: every scrape spooled arrives once, whole, with its values.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use common::sink_process::{free_port, SinkProcess};
use common::*;
use meshtap_test_support::prometheus::Prometheus;

/// Long label values, as an Istio sidecar's are: a record repeats the previous one in copies
/// far longer than snappy's 64 bytes.
const WORKLOAD: &str =
    "reviews-v1-7d8f9c6b5-x2k4q.bookinfo.svc.cluster.local/long-enough-to-repeat";

/// The target's body at its `n`-th scrape: bucket `le=1` is `n`, `le=10` `2n`, `+Inf` and
/// the count `3n`, the sum `4n`.
fn body(n: u64) -> String {
    let labels = format!("destination_workload=\"{WORKLOAD}\",source_workload=\"{WORKLOAD}\"");
    let mut text = String::from("# TYPE spool_test_duration histogram\n");
    for (le, v) in [("1", n), ("10", 2 * n), ("+Inf", 3 * n)] {
        text.push_str(&format!(
            "spool_test_duration_bucket{{{labels},le=\"{le}\"}} {v}\n"
        ));
    }
    text.push_str(&format!("spool_test_duration_sum{{{labels}}} {}\n", 4 * n));
    text.push_str(&format!(
        "spool_test_duration_count{{{labels}}} {}\n",
        3 * n
    ));
    text
}

async fn serve_target() -> (std::net::SocketAddr, Arc<AtomicU64>) {
    let served = Arc::new(AtomicU64::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(served): State<Arc<AtomicU64>>| async move {
                body(served.fetch_add(1, Ordering::SeqCst) + 1)
            }),
        )
        .with_state(served.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, served)
}

fn sink_yaml(spool: &std::path::Path, url: &str, scrape: &str) -> String {
    format!(
        "shutdown_timeout: 1s
spool: {{dir: {}, max_bytes: 64MiB, segment_bytes: 1MiB}}
remote_write:
  - name: rw
    url: {url}
    send_metadata: false
    queue: {{lanes: 2, batch_send_deadline: 50ms, min_backoff: 20ms, max_backoff: 200ms}}
{scrape}",
        spool.display()
    )
}

/// The samples of a range-vector result as (timestamp ms, value), per series by `le` (the sum
/// and the count have none).
fn samples(result: &serde_json::Value) -> Vec<(String, Vec<(i64, f64)>)> {
    let mut out: Vec<(String, Vec<(i64, f64)>)> = result
        .as_array()
        .expect("a matrix")
        .iter()
        .map(|series| {
            let name = format!(
                "{}{}",
                series["metric"]["__name__"].as_str().unwrap(),
                series["metric"]["le"].as_str().unwrap_or("")
            );
            let points = series["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let ms = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                    (ms, p[1].as_str().unwrap().parse().unwrap())
                })
                .collect();
            (name, points)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn scraped_samples_spooled_before_a_kill_reach_a_real_prometheus_whole_and_once() {
    let dir = std::env::temp_dir().join(format!("meshtap-spool-scraped-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _cleanup = Cleanup(dir.clone());
    let (target, served) = serve_target().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let scrape = format!(
        "scrape:\n  interval: 1s\n  timeout: 1s\n  jobs:\n    - name: spooltest\n      static_configs: [{{targets: ['{target}']}}]\n"
    );

    // Nothing listens on the endpoint's port: every scrape is spooled.
    let first = SinkProcess::start(&dir, &sink_yaml(&dir.join("spool"), &url, &scrape)).await;
    let queued = "meshtap_sink_queue_samples{endpoint=\"rw\"}";
    let mut spooled = 0.0;
    for _ in 0..400 {
        spooled = self_metric(first.addr, queued).await.unwrap_or(0.0);
        if served.load(Ordering::SeqCst) >= 3 && spooled >= 15.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(spooled >= 15.0, "{spooled} queued\n{}", first.log());
    first.signal("KILL");
    first.wait_exit().await;

    // The next sink scrapes nothing: what arrives is what the first one spooled.
    let prometheus = Prometheus::start_on(port);
    let second = SinkProcess::start(&dir, &sink_yaml(&dir.join("spool"), &url, "")).await;
    let now = now_ms();
    let job = "{job=\"spooltest\"}[5m]";
    let points = |r: &serde_json::Value| -> usize { samples(r).iter().map(|(_, p)| p.len()).sum() };
    let arrived = prometheus.wait_for_at(job, now, Duration::from_secs(30), |r| {
        points(r) as f64 >= spooled
    });
    assert!(
        points(&arrived) as f64 >= spooled,
        "{} samples arrived, {spooled} were spooled\n{}",
        points(&arrived),
        second.log()
    );

    // Every scrape that arrived is whole, with the values served, and each arrived once.
    let histogram = samples(&prometheus.query_at("{__name__=~\"spool_test_duration.*\"}[5m]", now));
    let names: Vec<&str> = histogram.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "spool_test_duration_bucket+Inf",
            "spool_test_duration_bucket1",
            "spool_test_duration_bucket10",
            "spool_test_duration_count",
            "spool_test_duration_sum"
        ]
    );
    let ones = &histogram[1].1;
    let scrapes = ones.len() as u64;
    assert!(scrapes >= 3, "{ones:?}");
    let expected_ns: Vec<f64> = (1..=scrapes).map(|n| n as f64).collect();
    let ns: Vec<f64> = ones.iter().map(|(_, v)| *v).collect();
    assert_eq!(
        ns, expected_ns,
        "scrapes 1.. in order, none twice or missing"
    );
    for (name, factor) in [
        ("spool_test_duration_bucket+Inf", 3.0),
        ("spool_test_duration_bucket10", 2.0),
        ("spool_test_duration_count", 3.0),
        ("spool_test_duration_sum", 4.0),
    ] {
        let points = &histogram.iter().find(|(n, _)| n == name).unwrap().1;
        let want: Vec<(i64, f64)> = ones.iter().map(|(t, n)| (*t, n * factor)).collect();
        assert_eq!(points, &want, "{name}");
    }
}

struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

//! The spool across real process lifetimes: samples written while the endpoint is down survive
//! a SIGKILL and a SIGTERM of the sink, and the next sink started on the same directory sends
//! them, each exactly once, to the recording receiver and to a real Prometheus started only
//! after the first sink died; filter-shipped access logs answered 204 right before a SIGKILL
//! likewise reach a Loki receiver.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::sink_process::{free_port, SinkProcess};
use common::*;
use meshtap_report::AccessLogRecord;
use meshtap_test_support::loki::LokiReceiver;
use meshtap_test_support::prometheus::Prometheus;

const SVC: &str = "ratings.default.svc.cluster.local";
const REPORTS: i64 = 4;

struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!("meshtap-spool-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sink_yaml(dir: &Path, url: &str) -> String {
    format!(
        "shutdown_timeout: 1s
spool: {{dir: {}, max_bytes: 64MiB, segment_bytes: 1MiB}}
remote_write:
  - url: {url}
    send_metadata: false
    queue: {{lanes: 2, batch_send_deadline: 50ms, min_backoff: 20ms, max_backoff: 200ms}}
",
        dir.join("spool").display()
    )
}

/// `REPORTS` reports of one pod, a second apart, ending `end_ms`: report i counts `10 + i`
/// requests with code 200 and `i` with code 503. Returns the expected (code, ts, value).
async fn post_reports(sink: &SinkProcess, pod: &str, end_ms: i64) -> Vec<(String, i64, f64)> {
    let mut expected = Vec::new();
    for i in 0..REPORTS {
        let ts = end_ms - (REPORTS - 1 - i) * 1000;
        let ok = 10.0 + i as f64;
        let failed = i as f64;
        let mut r = report(
            "default",
            pod,
            1000,
            ts,
            vec![requests_family(vec![
                (http_values(SVC, "200", "destination"), ok),
                (http_values(SVC, "503", "destination"), failed),
            ])],
        );
        r.sequence = i as u64 + 1;
        assert_eq!(post_report(sink.addr, &r, None).await.0, 204);
        expected.push(("200".to_owned(), ts, ok));
        expected.push(("503".to_owned(), ts, failed));
    }
    expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
    expected
}

/// The `istio_requests_total` samples of `pod` the receiver accepted, as (code, ts, value).
fn accepted(receiver: &Receiver, pod: &str) -> Vec<(String, i64, f64)> {
    let mut got: Vec<(String, i64, f64)> = receiver
        .accepted_series()
        .into_iter()
        .filter(|(labels, _)| {
            label(labels, "__name__") == Some("istio_requests_total")
                && label(labels, "pod") == Some(pod)
        })
        .map(|(labels, s)| {
            let code = label(&labels, "response_code").unwrap().to_owned();
            (code, s.timestamp, s.value)
        })
        .collect();
    got.sort_by(|a, b| a.partial_cmp(b).unwrap());
    got
}

/// Waits until the sink has tried the endpoint and its spool holds bytes.
async fn wait_until_spooled(sink: &SinkProcess, receiver: Option<&Receiver>) {
    let mut spooled = false;
    for _ in 0..250 {
        let bytes = self_metric(sink.addr, "meshtap_sink_spool_bytes{endpoint=\"rw\"}").await;
        let tried = receiver.is_none_or(|r| !r.received().is_empty());
        if bytes.unwrap_or(0.0) > 0.0 && tried {
            spooled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(spooled, "nothing spooled\n{}", sink.log());
}

fn named(yaml: String) -> String {
    yaml.replace("  - url:", "  - name: rw\n    url:")
}

/// A sink whose receiver refuses everything (503), with `pod`'s reports spooled; returns the
/// config, the sink and the expected samples.
async fn spooled_during_an_outage(
    dir: &TestDir,
    receiver: &Receiver,
    pod: &str,
) -> (String, SinkProcess, Vec<(String, i64, f64)>) {
    receiver.refuse_with(Some(503));
    let yaml = named(sink_yaml(&dir.0, &receiver.url()));
    let sink = SinkProcess::start(&dir.0, &yaml).await;
    let expected = post_reports(&sink, pod, now_ms()).await;
    wait_until_spooled(&sink, Some(receiver)).await;
    (yaml, sink, expected)
}

/// Lets the receiver accept again, starts the next sink on the same spool and checks that it
/// delivers exactly `expected`; returns that sink.
async fn next_sink_delivers(
    dir: &TestDir,
    yaml: &str,
    receiver: &Receiver,
    pod: &str,
    expected: &[(String, i64, f64)],
) -> SinkProcess {
    // The dead sink's last requests answered (refused) before the receiver accepts again.
    receiver.wait_until_idle().await;
    assert!(
        accepted(receiver, pod).is_empty(),
        "the receiver refused everything"
    );
    receiver.refuse_with(None);
    let sink = SinkProcess::start(&dir.0, yaml).await;
    let delivered = wait_until(Duration::from_secs(10), || {
        accepted(receiver, pod).len() >= expected.len()
    })
    .await;
    assert!(delivered, "{:?}\n{}", accepted(receiver, pod), sink.log());
    // Exactly once: nothing the first sink spooled was acknowledged before it stopped.
    assert_eq!(accepted(receiver, pod), expected);
    sink
}

#[tokio::test]
async fn a_killed_sink_sends_what_it_spooled_once_restarted() {
    let dir = TestDir::new("kill");
    let receiver = Receiver::start(vec![]).await;
    let (yaml, first, expected) = spooled_during_an_outage(&dir, &receiver, "p-kill").await;
    first.signal("KILL");
    let (exit, _) = first.wait_exit().await;
    assert!(!exit.success());

    let second = next_sink_delivers(&dir, &yaml, &receiver, "p-kill", &expected).await;
    let log = second.log();
    assert!(
        log.contains("unsent records from the previous run will be sent first"),
        "{log}"
    );
    let queued = self_metric(second.addr, "meshtap_sink_queue_samples{endpoint=\"rw\"}").await;
    assert_eq!(queued, Some(0.0));
}

#[tokio::test]
async fn sigterm_during_an_outage_keeps_the_samples_for_the_next_start() {
    let dir = TestDir::new("term");
    let receiver = Receiver::start(vec![]).await;
    let (yaml, first, expected) = spooled_during_an_outage(&dir, &receiver, "p-term").await;
    first.signal("TERM");
    let (exit, log) = first.wait_exit().await;
    assert!(exit.success(), "{exit:?}\n{log}");
    assert!(
        log.contains("kept in the spool for the next start"),
        "{log}"
    );
    // Every sample is accounted for: the spooled ones and the one being retried.
    assert!(log.contains(&format!("kept={}", expected.len())), "{log}");
    assert!(!log.contains("dropped at shutdown"), "{log}");

    next_sink_delivers(&dir, &yaml, &receiver, "p-term", &expected).await;
}

#[tokio::test]
async fn spooled_samples_reach_a_real_prometheus_started_after_the_sink_died() {
    let dir = TestDir::new("prometheus");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    let yaml = named(sink_yaml(&dir.0, &url));

    // Nothing listens on the port yet: every attempt fails to connect.
    let first = SinkProcess::start(&dir.0, &yaml).await;
    let end = now_ms() - 5_000;
    let expected = post_reports(&first, "p-prom", end).await;
    wait_until_spooled(&first, None).await;
    first.signal("KILL");
    first.wait_exit().await;

    let prometheus = Prometheus::start_on(port);
    let _second = SinkProcess::start(&dir.0, &yaml).await;
    let query = "istio_requests_total{pod=\"p-prom\"}";
    let per_series = format!("count_over_time({query}[10s])");
    let result = prometheus.wait_for_at(&per_series, end, Duration::from_secs(20), |r| {
        series_values(r)
            .iter()
            .filter(|v| **v == REPORTS as f64)
            .count()
            == 2
    });
    assert_eq!(
        series_values(&result),
        [REPORTS as f64; 2],
        "every spooled sample of both series, once: {result}"
    );
    for (code, ts, value) in expected {
        let promql = format!("istio_requests_total{{pod=\"p-prom\",response_code=\"{code}\"}}");
        assert_eq!(prometheus.scalar_at(&promql, ts), value, "{code} at {ts}");
    }
}

/// The values of a vector result.
fn series_values(result: &serde_json::Value) -> Vec<f64> {
    result
        .as_array()
        .expect("a vector")
        .iter()
        .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn access_logs_spooled_during_a_loki_outage_arrive_once_after_a_kill() {
    let dir = TestDir::new("loki");
    let loki = LokiReceiver::start(vec![]).await;
    loki.refuse_with(Some(503));
    let yaml = format!(
        "shutdown_timeout: 1s\nspool: {{dir: {}}}\nlogs:\n  - name: loki\n    url: {}\n    batch: {{max_wait: 50ms, min_backoff: 20ms, max_backoff: 200ms}}\n",
        dir.0.join("spool").display(),
        loki.url()
    );
    let first = SinkProcess::start(&dir.0, &yaml).await;
    let paths: Vec<String> = (0..6).map(|i| format!("/items/{i}")).collect();
    for (i, chunk) in paths.chunks(2).enumerate() {
        let mut r = report("shop", "frontend-1", 1_000, now_ms(), vec![]);
        r.sequence = i as u64 + 1;
        r.access_logs = chunk
            .iter()
            .map(|path| AccessLogRecord {
                start_time_ns: now_ms() * 1_000_000,
                method: "GET".into(),
                path: path.clone(),
                protocol: "HTTP/1.1".into(),
                response_code: 200,
                reporter: "destination".into(),
                ..Default::default()
            })
            .collect();
        assert_eq!(post_report(first.addr, &r, None).await.0, 204);
    }
    // Killed right after the last answer: a 204 means the records were already in the spool.
    first.signal("KILL");
    first.wait_exit().await;
    loki.wait_until_idle().await;
    assert!(loki.accepted_lines().is_empty());

    loki.refuse_with(None);
    let second = SinkProcess::start(&dir.0, &yaml).await;
    let delivered = wait_until(Duration::from_secs(10), || {
        loki.accepted_lines().len() >= paths.len()
    })
    .await;
    assert!(delivered, "{:?}\n{}", loki.accepted_lines(), second.log());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines = loki.accepted_lines();
    assert_eq!(lines.len(), paths.len(), "{lines:?}");
    for path in &paths {
        let found = lines
            .iter()
            .filter(|l| l.contains(&format!("\"GET {path} HTTP/1.1\"")))
            .count();
        assert_eq!(found, 1, "{path} in {lines:?}");
    }
}

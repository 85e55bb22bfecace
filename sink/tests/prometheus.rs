//! End to end against a real Prometheus (Debian's `prometheus` 2.42 at `/usr/bin/prometheus`,
//! remote-write receiver enabled): synthetic reports go to the sink, PromQL reads back exactly
//! the expected values, and series of a vanished pod disappear from instant queries.

mod common;

use std::time::{Duration, Instant};

use common::*;
use meshtap_test_support::prometheus::Prometheus;
use serde_json::Value;

const SVC: &str = "reviews.default.svc.cluster.local";
const BOUNDS: [f64; 4] = [0.5, 1.0, 5.0, 10.0];

/// The shared loopback Prometheus launcher (`meshtap_test_support::prometheus`), queried at a
/// given time and answered as (labels, value) pairs.
struct PrometheusAt(Prometheus);

impl PrometheusAt {
    fn start() -> PrometheusAt {
        PrometheusAt(Prometheus::start())
    }

    fn base(&self) -> String {
        self.0.base()
    }

    async fn query(&self, promql: &str, time_ms: i64) -> Vec<(Value, f64)> {
        self.0
            .query_at(promql, time_ms)
            .as_array()
            .expect("a vector result")
            .iter()
            .map(|r| {
                let value = r["value"][1].as_str().unwrap().parse().unwrap();
                (r["metric"].clone(), value)
            })
            .collect()
    }

    async fn scalar(&self, promql: &str, time_ms: i64) -> f64 {
        let result = self.query(promql, time_ms).await;
        assert_eq!(result.len(), 1, "{promql}: {result:?}");
        result[0].1
    }
}

fn pod_report(
    pod: &str,
    ts: i64,
    interval_ms: u32,
    codes: &[(&str, f64)],
    buckets: Vec<u64>,
    sum: f64,
) -> meshtap_report::Report {
    let mut r = report(
        "default",
        pod,
        1000,
        ts,
        vec![
            requests_family(
                codes
                    .iter()
                    .map(|(c, v)| (http_values(SVC, c, "destination"), *v))
                    .collect(),
            ),
            histogram_family(
                "istio_request_duration_milliseconds",
                &BOUNDS,
                vec![(http_values(SVC, "200", "destination"), buckets, sum)],
            ),
        ],
    );
    r.interval_ms = interval_ms;
    r
}

#[tokio::test]
async fn prometheus_stores_exactly_what_the_reports_say() {
    let prometheus = PrometheusAt::start();
    let yaml = format!(
        "remote_write:\n  - url: {}/api/v1/write\n    external_labels: {{mesh: m1}}\n    queue: {{batch_send_deadline: 50ms, lanes: 1}}\n",
        prometheus.base()
    );
    let sink = start_sink(&yaml).await;
    let addr = sink.local_addr();
    let sent = |n: f64| {
        let metric = format!(
            "meshtap_sink_samples_sent_total{{endpoint=\"{}/api/v1/write\"}}",
            prometheus.base()
        );
        async move {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(20) {
                if self_metric(addr, &metric)
                    .await
                    .is_some_and(|sent| sent >= n)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!(
                "{metric} never reached {n}: {}",
                get_text(addr, "/metrics").await.1
            );
        }
    };

    let t0 = now_ms() - 3000;
    // Pod a: long interval (stays), pod b: short interval (goes silent later).
    let a = pod_report(
        "reviews-a",
        t0,
        60_000,
        &[("200", 10.0), ("503", 2.0)],
        vec![3, 4, 2, 1, 0],
        25.0,
    );
    let b = pod_report(
        "reviews-b",
        t0,
        300,
        &[("200", 5.0)],
        vec![1, 1, 1, 1, 1],
        40.0,
    );
    assert_eq!(post_report(addr, &a, None).await.0, 204);
    assert_eq!(post_report(addr, &b, None).await.0, 204);
    // 3 counters + 2 × (5 buckets + sum + count).
    // One lane: samples go out in the order they were queued, so the first 17 are these.
    sent(17.0).await;

    let by_code = prometheus
        .query("sum by (response_code) (istio_requests_total)", t0)
        .await;
    let mut by_code: Vec<(String, f64)> = by_code
        .into_iter()
        .map(|(m, v)| (m["response_code"].as_str().unwrap().to_owned(), v))
        .collect();
    by_code.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(by_code, [("200".to_owned(), 15.0), ("503".to_owned(), 2.0)]);

    let series = prometheus
        .query(
            "istio_requests_total{pod=\"reviews-a\",response_code=\"200\"}",
            t0,
        )
        .await;
    assert_eq!(series.len(), 1);
    let labels = &series[0].0;
    assert_eq!(labels["job"], "integrations/istio");
    assert_eq!(labels["namespace"], "default");
    assert_eq!(labels["instance"], "10.1.2.3:15020");
    assert_eq!(labels["mesh"], "m1");
    assert_eq!(labels["destination_service"], SVC);
    assert!(
        labels.get("source_version").is_none(),
        "empty label exported: {labels}"
    );

    let bucket = |le: &str| {
        format!("istio_request_duration_milliseconds_bucket{{pod=\"reviews-a\",le=\"{le}\"}}")
    };
    for (le, want) in [
        ("0.5", 3.0),
        ("1", 7.0),
        ("5", 9.0),
        ("10", 10.0),
        ("+Inf", 10.0),
    ] {
        assert_eq!(prometheus.scalar(&bucket(le), t0).await, want, "le={le}");
    }
    assert_eq!(
        prometheus
            .scalar("sum(istio_request_duration_milliseconds_sum)", t0)
            .await,
        65.0
    );
    assert_eq!(
        prometheus
            .scalar("sum(istio_request_duration_milliseconds_count)", t0)
            .await,
        15.0
    );
    // Both pods: per-bucket 4,5,3,2,1 → cumulative 4,9,12,14,15; the median (rank 7.5) lies in
    // (0.5, 1]: 0.5 + 0.5 × (7.5 − 4) / 5 = 0.85.
    let p50 = prometheus
        .scalar(
            "histogram_quantile(0.5, sum by (le) (istio_request_duration_milliseconds_bucket))",
            t0,
        )
        .await;
    assert!((p50 - 0.85).abs() < 1e-9, "p50 {p50}");

    // Pod a drops its 503 series; pod b stops reporting and is swept after 3 × 300 ms.
    let t1 = t0 + 1000;
    let a2 = pod_report(
        "reviews-a",
        t1,
        60_000,
        &[("200", 12.0)],
        vec![3, 5, 2, 1, 0],
        26.0,
    );
    assert_eq!(post_report(addr, &a2, None).await.0, 204);
    // a2: 8 samples + 1 marker; then b's 8 markers when swept.
    sent(17.0 + 9.0 + 8.0).await;
    let later = now_ms() + 1000;
    let remaining = prometheus.query("istio_requests_total", later).await;
    assert_eq!(remaining.len(), 1, "{remaining:?}");
    assert_eq!(remaining[0].0["pod"], "reviews-a");
    assert_eq!(remaining[0].0["response_code"], "200");
    assert_eq!(remaining[0].1, 12.0);
    assert_eq!(
        prometheus
            .scalar("count(istio_request_duration_milliseconds_bucket)", later)
            .await,
        5.0
    );
    // Before the markers the vanished series were there.
    assert_eq!(prometheus.query("istio_requests_total", t0).await.len(), 3);
    sink.shutdown().await;
}

//! `/v1/summary`: per-service request rate, error share and latency quantiles from cumulative
//! report deltas, destination reporter preferred; also a sink with no remote_write at all.

mod common;

use common::*;
use serde_json::Value;

const BOUNDS: [f64; 3] = [10.0, 20.0, 40.0];

fn pod_report(
    pod: &str,
    ts: i64,
    reporter: &str,
    service: &str,
    ok: f64,
    errors: f64,
    buckets: Vec<u64>,
) -> meshtap_report::Report {
    let mut r = report(
        "default",
        pod,
        1,
        ts,
        vec![
            requests_family(vec![
                (http_values(service, "200", reporter), ok),
                (http_values(service, "503", reporter), errors),
            ]),
            histogram_family(
                "istio_request_duration_milliseconds",
                &BOUNDS,
                vec![(http_values(service, "200", reporter), buckets, 0.0)],
            ),
        ],
    );
    r.interval_ms = 60_000;
    r
}

#[tokio::test]
async fn summary_reports_rates_errors_and_quantiles_per_service() {
    let sink = start_sink("view: {window: 30s}").await;
    let addr = sink.local_addr();
    let reviews = "reviews.default.svc.cluster.local";
    let ratings = "ratings.default.svc.cluster.local";
    let t0 = 1_700_000_000_000;
    for (pod, ts, reporter, service, ok, err, buckets) in [
        (
            "reviews-1",
            t0,
            "destination",
            reviews,
            100.0,
            10.0,
            vec![0, 0, 0, 0],
        ),
        (
            "reviews-1",
            t0 + 10_000,
            "destination",
            reviews,
            180.0,
            30.0,
            vec![50, 50, 0, 0],
        ),
        (
            "productpage-1",
            t0,
            "source",
            reviews,
            1000.0,
            0.0,
            vec![0, 0, 0, 0],
        ),
        (
            "productpage-1",
            t0 + 10_000,
            "source",
            reviews,
            9000.0,
            0.0,
            vec![0, 0, 0, 800],
        ),
        (
            "client-1",
            t0,
            "source",
            ratings,
            5.0,
            0.0,
            vec![0, 0, 0, 0],
        ),
        (
            "client-1",
            t0 + 10_000,
            "source",
            ratings,
            25.0,
            0.0,
            vec![0, 0, 20, 0],
        ),
    ] {
        let r = pod_report(pod, ts, reporter, service, ok, err, buckets);
        assert_eq!(post_report(addr, &r, None).await.0, 204);
    }
    let (status, body) = get_text(addr, "/v1/summary").await;
    assert_eq!(status, 200);
    let summary: Value = serde_json::from_str(&body).unwrap();
    let services = summary["services"].as_array().unwrap();
    assert_eq!(services.len(), 2, "{body}");
    let row = |name: &str| {
        services
            .iter()
            .find(|s| s["service"] == name)
            .unwrap()
            .clone()
    };

    let r = row(reviews);
    assert_eq!(r["reporter"], "destination");
    assert_eq!(r["request_rate"], 10.0);
    assert_eq!(r["error_rate"], 0.2);
    assert_eq!(r["p50_ms"], 10.0);
    assert!((r["p99_ms"].as_f64().unwrap() - 19.8).abs() < 1e-9, "{r}");
    assert_eq!(r["requests_total"], 210.0);

    let r = row(ratings);
    assert_eq!(r["reporter"], "source");
    assert_eq!(r["request_rate"], 2.0);
    assert_eq!(r["error_rate"], 0.0);
    assert_eq!(r["p50_ms"], 30.0);

    let (status, table) = get_text(addr, "/v1/summary?format=text").await;
    assert_eq!(status, 200);
    assert!(table.starts_with("SERVICE"), "{table}");
    let line = table.lines().find(|l| l.starts_with(reviews)).unwrap();
    for cell in ["destination", "10.00", "20.0", "10.0", "19.8"] {
        assert!(line.contains(cell), "{cell} missing in {line:?}");
    }
    assert_eq!(get_text(addr, "/v1/summary?format=xml").await.0, 400);
    sink.shutdown().await;
}

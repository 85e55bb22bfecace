//! Remote-write behaviour against recording receivers: headers and auth, label and timestamp
//! rules, metadata, retries (5xx, 429 + Retry-After, refused 4xx), age and capacity drops,
//! stale markers, and independence of endpoints.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;

const TOKEN: &str = "ingest-token";
const SVC: &str = "reviews.default.svc.cluster.local";

fn requests_report(pod: &str, ts: i64, codes: &[&str]) -> meshtap_report::Report {
    report(
        "default",
        pod,
        1000,
        ts,
        vec![requests_family(
            codes
                .iter()
                .map(|c| (http_values(SVC, c, "destination"), (ts % 100_000) as f64))
                .collect(),
        )],
    )
}

/// One `remote_write` entry; `queue` entries override the test defaults (one lane, fast batches).
fn endpoint(url: &str, extra: &str) -> String {
    endpoint_with_queue(url, "", extra)
}

fn endpoint_with_queue(url: &str, queue: &str, extra: &str) -> String {
    let mut q = vec![
        "batch_send_deadline: 50ms",
        "min_backoff: 30ms",
        "max_backoff: 200ms",
        "lanes: 1",
    ];
    for item in queue.split(", ").filter(|i| !i.is_empty()) {
        let key = item.split(':').next().unwrap();
        q.retain(|d| !d.starts_with(key));
        q.push(item);
    }
    format!("  - url: {url}\n    queue: {{{}}}\n{extra}", q.join(", "))
}

fn sink_yaml(endpoints: &[String], ingest_extra: &str) -> String {
    format!(
        "shutdown_timeout: 1s\ningest: {{tokens: [{TOKEN}]{ingest_extra}}}\nremote_write:\n{}",
        endpoints.join("")
    )
}

fn endpoint_metric(name: &str, url: &str) -> String {
    format!("{name}{{endpoint=\"{url}\"}}")
}

#[tokio::test]
async fn requests_carry_protocol_headers_auth_and_well_formed_series() {
    let mimir = Receiver::start(vec![]).await;
    let other = Receiver::start(vec![]).await;
    let yaml = sink_yaml(
        &[
            endpoint(&mimir.url(), "    basic_auth: {username: alice, password: secret}\n    headers: {X-Scope-OrgID: team-a, Content-type-x: keep}\n    metadata_interval: 1h\n"),
            endpoint(&other.url(), "    bearer_token: tok-123\n    tenant_id: team-b\n    external_labels: {cluster: c1, zone: z}\n    send_metadata: false\n"),
        ],
        "",
    );
    let sink = start_sink(&yaml).await;
    let t0 = now_ms();
    for i in 0..5 {
        let r = requests_report("p-1", t0 + i * 1000, &["200", "503"]);
        assert_eq!(post_report(sink.local_addr(), &r, Some(TOKEN)).await.0, 204);
    }
    let both = wait_until(Duration::from_secs(10), || {
        mimir.accepted_series().len() >= 10 && other.accepted_series().len() >= 10
    })
    .await;
    assert!(both, "not delivered");

    for (receiver, auth, tenant) in [
        (&mimir, "Basic YWxpY2U6c2VjcmV0", "team-a"),
        (&other, "Bearer tok-123", "team-b"),
    ] {
        for r in receiver.sample_requests() {
            let h = &r.headers;
            assert_eq!(h["content-encoding"], "snappy");
            assert_eq!(h["content-type"], "application/x-protobuf");
            assert_eq!(h["x-prometheus-remote-write-version"], "0.1.0");
            assert!(h["user-agent"].to_str().unwrap().starts_with("meshtap/"));
            assert_eq!(h["authorization"], auth);
            assert_eq!(h["x-scope-orgid"], tenant);
        }
        let mut last_ts: HashMap<Vec<(String, String)>, i64> = HashMap::new();
        for (labels, sample) in receiver.accepted_series() {
            assert!(
                labels.windows(2).all(|w| w[0].0 < w[1].0),
                "labels not sorted/unique: {labels:?}"
            );
            assert!(labels.iter().all(|(n, v)| !n.is_empty() && !v.is_empty()));
            if let Some(prev) = last_ts.insert(labels.clone(), sample.timestamp) {
                assert!(sample.timestamp > prev, "series out of order: {labels:?}");
            }
        }
        assert_eq!(last_ts.len(), 2, "two series");
    }
    assert_eq!(mimir.sample_requests()[0].headers["content-type-x"], "keep");
    let series = other.accepted_series();
    assert_eq!(label(&series[0].0, "cluster"), Some("c1"));
    assert_eq!(label(&series[0].0, "zone"), Some("z"));

    // Metadata goes to the endpoint that wants it, soon after the family appeared.
    assert!(
        wait_until(Duration::from_secs(5), || mimir
            .received()
            .iter()
            .any(|r| !r.request.metadata.is_empty()))
        .await
    );
    let meta = mimir
        .received()
        .into_iter()
        .find(|r| !r.request.metadata.is_empty())
        .unwrap();
    let m = &meta.request.metadata[0];
    assert_eq!(
        (m.metric_family_name.as_str(), m.r#type, m.help.as_str()),
        ("istio_requests_total", 1, "Total requests.")
    );
    assert!(other
        .received()
        .iter()
        .all(|r| r.request.metadata.is_empty()));
    sink.shutdown().await;
}

#[tokio::test]
async fn a_503_is_retried_and_delivered_once() {
    let receiver = Receiver::start(vec![Answer::status(503)]).await;
    let sink = start_sink(&sink_yaml(
        &[endpoint(&receiver.url(), "    send_metadata: false\n")],
        "",
    ))
    .await;
    let r = requests_report("p-1", now_ms(), &["200", "404", "500"]);
    assert_eq!(post_report(sink.local_addr(), &r, Some(TOKEN)).await.0, 204);
    assert!(
        wait_until(Duration::from_secs(10), || receiver.accepted_series().len()
            >= 3)
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = receiver.sample_requests();
    assert_eq!(requests.len(), 2, "one refused attempt, one delivery");
    assert_eq!(requests[0].status, 503);
    assert_eq!(requests[1].headers["retry-attempt"], "1");
    assert_eq!(
        receiver.accepted_series().len(),
        3,
        "delivered exactly once"
    );
    let url = receiver.url();
    let addr = sink.local_addr();
    assert_eq!(
        self_metric(
            addr,
            &endpoint_metric("meshtap_sink_samples_retried_total", &url)
        )
        .await,
        Some(3.0)
    );
    assert_eq!(
        self_metric(
            addr,
            &endpoint_metric("meshtap_sink_samples_sent_total", &url)
        )
        .await,
        Some(3.0)
    );
    sink.shutdown().await;
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let mut limited = Answer::status(429);
    limited.headers.push(("retry-after", "1".into()));
    let receiver = Receiver::start(vec![limited]).await;
    let sink = start_sink(&sink_yaml(
        &[endpoint(&receiver.url(), "    send_metadata: false\n")],
        "",
    ))
    .await;
    let r = requests_report("p-1", now_ms(), &["200"]);
    assert_eq!(post_report(sink.local_addr(), &r, Some(TOKEN)).await.0, 204);
    assert!(
        wait_until(Duration::from_secs(10), || receiver.accepted_series().len()
            == 1)
        .await
    );
    let requests = receiver.sample_requests();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?}, before Retry-After: 1"
    );
    sink.shutdown().await;
}

#[tokio::test]
async fn a_429_is_refused_when_retry_on_429_is_off_and_a_400_is_never_retried() {
    let (logs, _guard) = CapturedLogs::start();
    let mut bad = Answer::status(400);
    bad.body = "err-mimir-max-series-per-user".into();
    let receiver = Receiver::start(vec![bad, Answer::status(429)]).await;
    let sink = start_sink(&sink_yaml(
        &[endpoint_with_queue(
            &receiver.url(),
            "retry_on_429: false",
            "    send_metadata: false\n",
        )],
        "",
    ))
    .await;
    let addr = sink.local_addr();
    let t0 = now_ms();
    assert_eq!(
        post_report(
            addr,
            &requests_report("p-1", t0, &["200", "201"]),
            Some(TOKEN)
        )
        .await
        .0,
        204
    );
    assert!(
        wait_until(Duration::from_secs(10), || receiver.sample_requests().len()
            == 1)
        .await
    );
    assert_eq!(
        post_report(
            addr,
            &requests_report("p-1", t0 + 1000, &["200", "201"]),
            Some(TOKEN)
        )
        .await
        .0,
        204
    );
    assert!(
        wait_until(Duration::from_secs(10), || receiver.sample_requests().len()
            == 2)
        .await
    );
    assert_eq!(
        post_report(
            addr,
            &requests_report("p-1", t0 + 2000, &["200", "201"]),
            Some(TOKEN)
        )
        .await
        .0,
        204
    );
    assert!(
        wait_until(Duration::from_secs(10), || receiver.accepted_series().len()
            == 2)
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let statuses: Vec<u16> = receiver
        .sample_requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [400, 429, 204], "refused batches are not retried");
    let url = receiver.url();
    assert_eq!(
        self_metric(
            addr,
            &endpoint_metric("meshtap_sink_samples_failed_total", &url)
        )
        .await,
        Some(4.0)
    );
    assert_eq!(
        self_metric(
            addr,
            &endpoint_metric("meshtap_sink_samples_retried_total", &url)
        )
        .await,
        Some(0.0)
    );
    let log = logs.text();
    assert!(
        log.contains("err-mimir-max-series-per-user"),
        "refusal body not logged:\n{log}"
    );
    sink.shutdown().await;
}

#[tokio::test]
async fn old_samples_are_dropped_while_retrying_and_a_full_queue_drops_the_oldest() {
    let script = (0..1000).map(|_| Answer::status(503)).collect();
    let receiver = Receiver::start(script).await;
    let yaml = sink_yaml(
        &[endpoint_with_queue(
            &receiver.url(),
            "batch_send_deadline: 20ms, max_samples_per_send: 2, capacity: 4, min_backoff: 50ms, max_backoff: 50ms, max_sample_age: 2s, when_full: drop_oldest",
            "    send_metadata: false\n",
        )],
        "",
    );
    let sink = start_sink(&yaml).await;
    let addr = sink.local_addr();
    let url = receiver.url();
    // Ten 2-sample reports while the endpoint fails: capacity 4 keeps only the newest batches
    // (`drop_oldest`; a `block` endpoint would answer 503 instead).
    let t0 = now_ms();
    for i in 0..10 {
        assert_eq!(
            post_report(
                addr,
                &requests_report("p-1", t0 + i, &["200", "500"]),
                Some(TOKEN)
            )
            .await
            .0,
            204
        );
    }
    let dropped_full = endpoint_metric("meshtap_sink_samples_dropped_total", &url)
        .replace("\"}", "\",reason=\"queue_full\"}");
    let dropped_old = endpoint_metric("meshtap_sink_samples_dropped_total", &url)
        .replace("\"}", "\",reason=\"too_old\"}");
    let full = self_metric(addr, &dropped_full).await.unwrap();
    assert!(full >= 10.0, "queue_full drops: {full}");
    // After max_sample_age everything still held is dropped as too old and the queue empties.
    let mut emptied = false;
    for _ in 0..100 {
        if self_metric(addr, &endpoint_metric("meshtap_sink_queue_samples", &url)).await
            == Some(0.0)
        {
            emptied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(emptied, "queue never emptied");
    let old = self_metric(addr, &dropped_old).await.unwrap();
    assert_eq!(
        full + old,
        20.0,
        "every sample is accounted for (full {full}, old {old})"
    );
    assert_eq!(receiver.accepted_series().len(), 0);
    sink.shutdown().await;
}

#[tokio::test]
async fn vanished_series_and_silent_pods_get_bit_exact_stale_markers() {
    let receiver = Receiver::start(vec![]).await;
    let sink = start_sink(&sink_yaml(
        &[endpoint(&receiver.url(), "    send_metadata: false\n")],
        ", stale_after_intervals: 2",
    ))
    .await;
    let addr = sink.local_addr();
    let t0 = now_ms();
    let mut r = requests_report("p-1", t0, &["200", "503"]);
    r.interval_ms = 1000;
    assert_eq!(post_report(addr, &r, Some(TOKEN)).await.0, 204);
    let mut r = requests_report("p-1", t0 + 300, &["200"]);
    r.interval_ms = 1000;
    let before_last_post = Instant::now();
    assert_eq!(post_report(addr, &r, Some(TOKEN)).await.0, 204);
    let stale = |code: &str| {
        receiver.accepted_series().into_iter().any(|(labels, s)| {
            label(&labels, "response_code") == Some(code)
                && s.value.to_bits() == 0x7ff0_0000_0000_0002
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), || stale("503")).await,
        "no marker for the vanished series"
    );
    let marker = receiver
        .accepted_series()
        .into_iter()
        .find(|(l, s)| label(l, "response_code") == Some("503") && s.value.is_nan())
        .unwrap();
    assert_eq!(marker.1.timestamp, t0 + 300);
    assert!(!stale("200"));
    // The pod goes silent: after 2 × 1000 ms its remaining series go stale too.
    assert!(
        wait_until(Duration::from_secs(10), || stale("200")).await,
        "no marker for the silent pod"
    );
    assert!(before_last_post.elapsed() >= Duration::from_millis(2000));
    assert_eq!(
        self_metric(addr, "meshtap_sink_active_pods").await,
        Some(0.0)
    );
    assert_eq!(
        self_metric(addr, "meshtap_sink_stale_markers_total").await,
        Some(2.0)
    );
    sink.shutdown().await;
}

#[tokio::test]
async fn a_down_endpoint_does_not_block_another() {
    let up = Receiver::start(vec![]).await;
    let down_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_url = format!("http://{}/api/v1/push", down_listener.local_addr().unwrap());
    drop(down_listener);
    let yaml = sink_yaml(
        &[
            endpoint(&down_url, "    name: down\n    send_metadata: false\n"),
            endpoint(&up.url(), "    name: up\n    send_metadata: false\n"),
        ],
        "",
    );
    let sink = start_sink(&yaml).await;
    let addr = sink.local_addr();
    let t0 = now_ms();
    for i in 0..3 {
        assert_eq!(
            post_report(
                addr,
                &requests_report("p-1", t0 + i * 1000, &["200"]),
                Some(TOKEN)
            )
            .await
            .0,
            204
        );
    }
    assert!(wait_until(Duration::from_secs(10), || up.accepted_series().len() == 3).await);
    assert_eq!(
        self_metric(addr, "meshtap_sink_samples_sent_total{endpoint=\"up\"}").await,
        Some(3.0)
    );
    assert_eq!(
        self_metric(addr, "meshtap_sink_samples_sent_total{endpoint=\"down\"}").await,
        Some(0.0)
    );
    let mut retried = 0.0;
    for _ in 0..100 {
        retried = self_metric(
            addr,
            "meshtap_sink_samples_retried_total{endpoint=\"down\"}",
        )
        .await
        .unwrap();
        if retried > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(retried > 0.0);
    assert!(
        self_metric(addr, "meshtap_sink_queue_samples{endpoint=\"down\"}")
            .await
            .unwrap()
            >= 1.0
    );
    // Shutdown gives up on the down endpoint at the deadline and counts what it held.
    let summary = sink.shutdown().await;
    let down = summary
        .dropped
        .iter()
        .find(|(name, _)| name == "down")
        .unwrap();
    assert!(down.1 >= 1, "{summary:?}");
    let up = summary
        .dropped
        .iter()
        .find(|(name, _)| name == "up")
        .unwrap();
    assert_eq!(up.1, 0);
}

#[tokio::test]
async fn unreadable_tls_files_stop_the_start_with_the_key_path() {
    let yaml = "remote_write:\n  - url: https://127.0.0.1:1/api/v1/push\n    tls: {ca_file: /nonexistent/ca.pem}\n";
    let mut config = meshtap_sink::SinkConfig::from_yaml(yaml, &|_| None).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let err = match meshtap_sink::RunningSink::start(&config).await {
        Ok(_) => panic!("started without its CA file"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.starts_with("remote_write[0].tls: cannot read /nonexistent/ca.pem"),
        "{err}"
    );
}

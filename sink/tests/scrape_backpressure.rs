//! A remote-write receiver slower than the scrapes loses nothing: the scrape loop waits for
//! room in the queue (a small one here) instead of the queue dropping batches, so every scrape
//! that reached the receiver arrived whole, and nothing was counted as dropped. The job's
//! live-series gauge counts the target's series. An endpoint set to `when_full: drop_oldest`
//! that is down does not hold the scrapes (and so the other endpoints) up, nor does a down
//! endpoint with a spool, which later receives every scrape.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use common::*;
use prost::Message;

/// Series in the target's body; each scrape also yields the 5 report series.
const SERIES: usize = 600;
const PER_SCRAPE: u64 = SERIES as u64 + 5;

/// Samples received per timestamp (one timestamp per scrape).
#[derive(Default)]
struct Slow {
    per_timestamp: Mutex<BTreeMap<i64, u64>>,
}

/// Answers every push after 40 ms: 600 samples in batches of 50 take about half a second,
/// longer than the 200 ms interval.
async fn slow_receive(State(slow): State<Arc<Slow>>, body: Bytes) -> StatusCode {
    tokio::time::sleep(Duration::from_millis(40)).await;
    let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
    let request = RecvWriteRequest::decode(raw.as_slice()).unwrap();
    let mut per_timestamp = slow.per_timestamp.lock().unwrap();
    for series in request.timeseries {
        for sample in series.samples {
            *per_timestamp.entry(sample.timestamp).or_default() += 1;
        }
    }
    StatusCode::NO_CONTENT
}

async fn listen(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// The scrape target serving `SERIES` series, and a loopback receiver counting what it gets.
async fn target_and_receiver() -> (SocketAddr, SocketAddr, Arc<Slow>) {
    let body: String = (0..SERIES)
        .map(|i| format!("app_items{{item=\"{i}\"}} {i}\n"))
        .collect();
    let target = listen(Router::new().route("/metrics", get(move || async move { body }))).await;
    let slow = Arc::new(Slow::default());
    let receiver = listen(
        Router::new()
            .route("/api/v1/push", post(slow_receive))
            .with_state(slow.clone()),
    )
    .await;
    (target, receiver, slow)
}

impl Slow {
    /// Scrapes that arrived whole.
    fn complete(&self) -> usize {
        self.per_timestamp
            .lock()
            .unwrap()
            .values()
            .filter(|&&n| n == PER_SCRAPE)
            .count()
    }
}

/// A loopback address nothing listens on: every push to it is refused and retried.
async fn nothing_listening() -> SocketAddr {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The sink's `samples_dropped_total` for a full queue at the endpoint pushing to `addr`.
async fn dropped_queue_full(sink: SocketAddr, addr: SocketAddr) -> Option<f64> {
    self_metric(
        sink,
        &format!("meshtap_sink_samples_dropped_total{{endpoint=\"http://{addr}/api/v1/push\",reason=\"queue_full\"}}"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_slows_the_scrapes_down_and_loses_no_sample() {
    let (target, receiver, slow) = target_and_receiver().await;
    let sink = start_sink(&format!(
        "remote_write:\n  - url: http://{receiver}/api/v1/push\n    queue: {{lanes: 1, capacity: 100, max_samples_per_send: 50, batch_send_deadline: 50ms}}\nscrape:\n  interval: 200ms\n  timeout: 1s\n  jobs:\n    - name: app\n      static_configs: [{{targets: ['{target}']}}]\n"
    ))
    .await;
    assert!(
        wait_until(Duration::from_secs(30), || slow.complete() >= 3).await,
        "three whole scrapes delivered: {:?}",
        slow.per_timestamp.lock().unwrap()
    );
    let dropped = dropped_queue_full(sink.local_addr(), receiver).await;
    let series = self_metric(sink.local_addr(), "meshtap_sink_scrape_series{job=\"app\"}").await;
    assert_eq!(series, Some(SERIES as f64), "the target's live series");
    sink.shutdown().await;
    let per_timestamp = slow.per_timestamp.lock().unwrap().clone();
    // Every scrape but the last one (cut by the shutdown) arrived whole.
    let scrapes: Vec<u64> = per_timestamp.values().copied().collect();
    let (_, earlier) = scrapes.split_last().unwrap();
    assert!(
        earlier.iter().all(|&n| n == PER_SCRAPE),
        "samples per scrape: {scrapes:?}"
    );
    assert_eq!(dropped, Some(0.0), "no sample counted as dropped");
}

/// With a second endpoint that is down and set to `when_full: drop_oldest`, scrapes never wait
/// for it: the healthy endpoint keeps getting whole scrapes while the down one drops its oldest
/// batches (with the default `block`, its full queue would hold every scrape up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_drop_oldest_endpoint_does_not_hold_up_the_others() {
    let (target, receiver, healthy) = target_and_receiver().await;
    let down = nothing_listening().await;
    let sink = start_sink(&format!(
        "remote_write:\n  - url: http://{receiver}/api/v1/push\n    queue: {{lanes: 1, max_samples_per_send: 1000, batch_send_deadline: 50ms}}\n  - url: http://{down}/api/v1/push\n    queue: {{lanes: 1, capacity: 100, max_samples_per_send: 50, batch_send_deadline: 50ms, when_full: drop_oldest}}\nscrape:\n  interval: 200ms\n  timeout: 1s\n  jobs:\n    - name: app\n      static_configs: [{{targets: ['{target}']}}]\n"
    ))
    .await;
    assert!(
        wait_until(Duration::from_secs(30), || healthy.complete() >= 5).await,
        "five whole scrapes at the healthy endpoint: {:?}",
        healthy.per_timestamp.lock().unwrap()
    );
    let dropped = dropped_queue_full(sink.local_addr(), down).await;
    sink.shutdown().await;
    assert!(
        dropped.is_some_and(|n| n > 0.0),
        "the down endpoint dropped its oldest batches: {dropped:?}"
    );
}

/// With a spool, a down endpoint (`block`, the default) does not hold the scrapes up either:
/// its batches go to disk instead of waiting for room in memory, the healthy endpoint keeps
/// getting whole scrapes, and once the down endpoint answers it receives every scrape whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_endpoint_with_a_spool_holds_nothing_up_and_gets_every_scrape_later() {
    let (target, receiver, healthy) = target_and_receiver().await;
    let down = nothing_listening().await;
    let dir = std::env::temp_dir().join(format!("meshtap-scrape-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sink = start_sink(&format!(
        "spool: {{dir: {}, max_bytes: 64MiB, segment_bytes: 1MiB}}\nremote_write:\n  - url: http://{receiver}/api/v1/push\n    queue: {{lanes: 1, max_samples_per_send: 1000, batch_send_deadline: 50ms}}\n  - name: down\n    url: http://{down}/api/v1/push\n    queue: {{lanes: 1, capacity: 1000, max_samples_per_send: 1000, batch_send_deadline: 50ms, min_backoff: 20ms, max_backoff: 200ms}}\nscrape:\n  interval: 200ms\n  timeout: 1s\n  jobs:\n    - name: app\n      static_configs: [{{targets: ['{target}']}}]\n",
        dir.display()
    ))
    .await;
    assert!(
        wait_until(Duration::from_secs(30), || healthy.complete() >= 5).await,
        "five whole scrapes at the healthy endpoint while the other is down: {:?}",
        healthy.per_timestamp.lock().unwrap()
    );
    let spooled = self_metric(
        sink.local_addr(),
        "meshtap_sink_spool_bytes{endpoint=\"down\"}",
    )
    .await;
    assert!(spooled.is_some_and(|b| b > 0.0), "{spooled:?}");

    // The endpoint comes up.
    let revived = Arc::new(Slow::default());
    let listener = tokio::net::TcpListener::bind(down).await.unwrap();
    let router = Router::new()
        .route("/api/v1/push", post(slow_receive))
        .with_state(revived.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let caught_up = wait_until(Duration::from_secs(30), || {
        let wanted: Vec<i64> = complete_timestamps(&healthy);
        let got = complete_timestamps(&revived);
        wanted.len() >= 5 && wanted.iter().all(|ts| got.contains(ts))
    })
    .await;
    assert!(
        caught_up,
        "every whole scrape reaches the revived endpoint: {:?} vs {:?}",
        complete_timestamps(&healthy),
        complete_timestamps(&revived)
    );
    let dropped = self_metric(
        sink.local_addr(),
        "meshtap_sink_samples_dropped_total{endpoint=\"down\",reason=\"queue_full\"}",
    )
    .await;
    sink.shutdown().await;
    assert_eq!(dropped, Some(0.0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Timestamps of the scrapes that arrived whole.
fn complete_timestamps(slow: &Slow) -> Vec<i64> {
    slow.per_timestamp
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, &n)| n == PER_SCRAPE)
        .map(|(ts, _)| *ts)
        .collect()
}

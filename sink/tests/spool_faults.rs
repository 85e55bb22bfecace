//! Fault tests of the promise behind a 204 with a spool: what was answered 204 arrives.
//!
//! The sink binary is killed with SIGKILL ten times while its endpoint refuses everything, each
//! time right after a report was answered; the sink started after the outage must deliver
//! every sample that was answered 204 (counted at the recording receiver, which decodes bodies
//! with its own messages; duplicates are reported). And a full spool of a `when_full: block`
//! endpoint answers 503 instead of dropping what it holds, `spool.sync: always` answers only
//! after an fsync, and `spool.sync: interval` fsyncs only what waits for the endpoint.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::sink_process::SinkProcess;
use common::*;

const SVC: &str = "reviews.default.svc.cluster.local";
const KILLS: usize = 10;
const REPORTS_PER_RUN: usize = 3;
const SERIES_PER_REPORT: usize = 40;

struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let dir = std::env::temp_dir().join(format!(
            "meshtap-spool-faults-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A sample's identity: (pod, response code, timestamp).
type Key = (String, String, i64);

/// One endpoint, a long batch deadline (so a lane would hold a partial batch in
/// memory for a second if pushes were not written through) and quick retries.
/// `sizes` are the spool's `max_bytes` and `segment_bytes` keys.
fn spooled_yaml(dir: &Path, url: &str, sizes: &str, lanes: usize) -> String {
    format!(
        "shutdown_timeout: 1s
spool: {{dir: {}, {sizes}}}
remote_write:
  - name: rw
    url: {url}
    send_metadata: false
    queue: {{lanes: {lanes}, batch_send_deadline: 1s, min_backoff: 20ms, max_backoff: 100ms}}
",
        dir.join("spool").display()
    )
}

/// A report of `pod` at `ts` with `SERIES_PER_REPORT` series (codes 200, 201, ...).
fn numbered_report(pod: &str, ts: i64, sequence: u64) -> (meshtap_report::Report, Vec<Key>) {
    let series: Vec<(Vec<String>, f64)> = (0..SERIES_PER_REPORT)
        .map(|i| {
            let code = (200 + i).to_string();
            (http_values(SVC, &code, "destination"), sequence as f64)
        })
        .collect();
    let keys = (0..SERIES_PER_REPORT)
        .map(|i| (pod.to_owned(), (200 + i).to_string(), ts))
        .collect();
    let mut r = report("default", pod, 1000, ts, vec![requests_family(series)]);
    r.sequence = sequence;
    (r, keys)
}

/// Every `istio_requests_total` sample the receiver accepted, by key, with how often.
fn accepted_keys(receiver: &Receiver) -> BTreeMap<Key, usize> {
    let mut got = BTreeMap::new();
    for (labels, sample) in receiver.accepted_series() {
        if label(&labels, "__name__") != Some("istio_requests_total") || sample.value.is_nan() {
            continue;
        }
        let key = (
            label(&labels, "pod").unwrap_or_default().to_owned(),
            label(&labels, "response_code")
                .unwrap_or_default()
                .to_owned(),
            sample.timestamp,
        );
        *got.entry(key).or_insert(0) += 1;
    }
    got
}

#[tokio::test]
async fn ten_sigkills_during_an_outage_lose_nothing_answered_204() {
    let dir = TestDir::new("kills");
    let receiver = Receiver::start(vec![]).await;
    receiver.refuse_with(Some(503));
    let yaml = spooled_yaml(
        &dir.0,
        &receiver.url(),
        "max_bytes: 64MiB, segment_bytes: 1MiB",
        2,
    );
    let start_ms = now_ms() - 60_000;
    let mut acknowledged: BTreeSet<Key> = BTreeSet::new();
    let mut refused = 0;
    for run in 0..KILLS {
        let sink = SinkProcess::start(&dir.0, &yaml).await;
        let pod = format!("p-{run}");
        for i in 0..REPORTS_PER_RUN {
            let ts = start_ms + (run * REPORTS_PER_RUN + i) as i64 * 100;
            let (r, keys) = numbered_report(&pod, ts, i as u64 + 1);
            match post_report(sink.addr, &r, None).await.0 {
                204 => acknowledged.extend(keys),
                _ => refused += 1,
            }
        }
        // Killed right after the last answer: nothing gets a chance to flush.
        sink.signal("KILL");
        let (exit, _) = sink.wait_exit().await;
        assert!(!exit.success());
    }
    receiver.wait_until_idle().await;
    assert!(
        accepted_keys(&receiver).is_empty(),
        "the receiver refused everything"
    );
    receiver.refuse_with(None);
    let last = SinkProcess::start(&dir.0, &yaml).await;
    let all_arrived = wait_until(Duration::from_secs(30), || {
        let got = accepted_keys(&receiver);
        acknowledged.iter().all(|k| got.contains_key(k))
    })
    .await;
    let got = accepted_keys(&receiver);
    let lost: Vec<&Key> = acknowledged
        .iter()
        .filter(|k| !got.contains_key(*k))
        .collect();
    let duplicates: usize = got.values().map(|n| n - 1).sum();
    println!(
        "spool faults: {KILLS} SIGKILLs during a 503 outage; {} samples answered 204 ({refused} reports refused), {} arrived, {} lost, {duplicates} duplicates",
        acknowledged.len(),
        got.len(),
        lost.len(),
    );
    assert!(
        all_arrived && lost.is_empty(),
        "lost {} of {}: {:?}\n{}",
        lost.len(),
        acknowledged.len(),
        lost.iter().take(5).collect::<Vec<_>>(),
        last.log()
    );
    assert_eq!(refused, 0, "an empty spool refused a report");
    assert_eq!(
        acknowledged.len(),
        KILLS * REPORTS_PER_RUN * SERIES_PER_REPORT
    );
}

#[tokio::test]
async fn a_full_spool_of_a_blocking_endpoint_answers_503_and_drops_nothing() {
    let dir = TestDir::new("full");
    let receiver = Receiver::start(vec![]).await;
    receiver.refuse_with(Some(503));
    // One lane of two 64 KiB segments.
    let yaml = spooled_yaml(
        &dir.0,
        &receiver.url(),
        "max_bytes: 128KiB, segment_bytes: 64KiB",
        1,
    );
    let sink = start_sink(&yaml).await;
    let addr = sink.local_addr();
    let start_ms = now_ms() - 60_000;
    let mut acknowledged: BTreeSet<Key> = BTreeSet::new();
    let mut refusal = None;
    for i in 0..2000u64 {
        let (r, keys) = numbered_report(&format!("p-{i}"), start_ms + i as i64, 1);
        let (status, body) = post_report(addr, &r, None).await;
        if status == 204 {
            acknowledged.extend(keys);
        } else {
            refusal = Some((status, body));
            break;
        }
    }
    let (status, body) = refusal.expect("the spool never filled up");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("queue full"), "{body}");
    let not_stored = self_metric(addr, "meshtap_sink_reports_total{result=\"not_stored\"}").await;
    assert_eq!(not_stored, Some(1.0));
    let dropped = self_metric(
        addr,
        "meshtap_sink_samples_dropped_total{endpoint=\"rw\",reason=\"queue_full\"}",
    )
    .await;
    assert_eq!(dropped, Some(0.0), "a blocking spool dropped samples");

    receiver.refuse_with(None);
    let all_arrived = wait_until(Duration::from_secs(30), || {
        let got = accepted_keys(&receiver);
        acknowledged.iter().all(|k| got.contains_key(k))
    })
    .await;
    assert!(all_arrived, "not every acknowledged sample arrived");
    // Room again: reports are taken.
    let (r, _) = numbered_report("p-after", now_ms(), 1);
    assert_eq!(post_report(addr, &r, None).await.0, 204);
    sink.shutdown().await;
}

#[tokio::test]
async fn with_sync_always_a_report_is_answered_after_an_fsync_covering_it() {
    let dir = TestDir::new("sync");
    let receiver = Receiver::start(vec![]).await;
    receiver.refuse_with(Some(503));
    let syncs = "meshtap_sink_spool_syncs_total";
    for (policy, fsynced_before_the_answer) in
        [("always", true), ("interval, sync_interval: 1h", false)]
    {
        let yaml = spooled_yaml(
            &dir.0.join(policy.replace([',', ':', ' '], "")),
            &receiver.url(),
            &format!("max_bytes: 64MiB, segment_bytes: 1MiB, sync: {policy}"),
            1,
        );
        let sink = start_sink(&yaml).await;
        let addr = sink.local_addr();
        assert_eq!(self_metric(addr, syncs).await, Some(0.0));
        let (r, _) = numbered_report("p-sync", now_ms(), 1);
        assert_eq!(post_report(addr, &r, None).await.0, 204);
        let after = self_metric(addr, syncs).await.unwrap();
        assert_eq!(
            after >= 1.0,
            fsynced_before_the_answer,
            "sync: {policy}: {after} rounds"
        );
        sink.shutdown().await;
    }
}

/// Polls a self-metric until `check` holds, for at most 30 s; returns the last value.
async fn metric_when(addr: std::net::SocketAddr, name: &str, check: impl Fn(f64) -> bool) -> f64 {
    let start = std::time::Instant::now();
    loop {
        let value = self_metric(addr, name).await.unwrap_or(f64::NAN);
        if check(value) || start.elapsed() > Duration::from_secs(30) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With `sync: interval`, what the endpoint takes at once is never fsynced (rounds leave the
/// files, counted as skipped); once the endpoint refuses, the record left waiting is fsynced
/// by a round within the interval.
#[tokio::test]
async fn with_sync_interval_only_records_left_waiting_are_fsynced() {
    let dir = TestDir::new("sync-delivered");
    let receiver = Receiver::start(vec![]).await;
    // Rounds every 2 s, fsyncing what waited 2 s: far longer than a delivery over loopback.
    let yaml = spooled_yaml(
        &dir.0,
        &receiver.url(),
        "max_bytes: 64MiB, segment_bytes: 1MiB, sync: interval, sync_interval: 4s",
        1,
    );
    let sink = start_sink(&yaml).await;
    let addr = sink.local_addr();
    let (syncs, skipped) = (
        "meshtap_sink_spool_syncs_total",
        "meshtap_sink_spool_sync_skipped_total",
    );
    let mut delivered = Vec::new();
    for i in 0..3 {
        let (r, keys) = numbered_report("p-delivered", now_ms() + i, i as u64 + 1);
        assert_eq!(post_report(addr, &r, None).await.0, 204);
        delivered.extend(keys);
    }
    let arrived = wait_until(Duration::from_secs(30), || {
        let got = accepted_keys(&receiver);
        delivered.iter().all(|k| got.contains_key(k))
    })
    .await;
    assert!(arrived, "the reports were delivered");
    // Two rounds after the deliveries: both left the files alone.
    let left = metric_when(addr, skipped, |n| n >= 2.0).await;
    assert!(left >= 2.0, "{left} files left by rounds");
    assert_eq!(
        self_metric(addr, syncs).await,
        Some(0.0),
        "nothing waited: no fsync"
    );
    receiver.refuse_with(Some(503));
    let (r, _) = numbered_report("p-waiting", now_ms(), 1);
    assert_eq!(post_report(addr, &r, None).await.0, 204);
    let rounds = metric_when(addr, syncs, |n| n >= 1.0).await;
    assert!(
        rounds >= 1.0,
        "the waiting record was fsynced ({rounds} rounds)"
    );
    sink.shutdown().await;
}

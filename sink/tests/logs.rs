//! The sink's `log_files` tailer against a loopback Loki receiver, on CRI files written in the
//! real formats: `P`/`F` chunk joining, pod labels from the path, access-log fields as
//! structured metadata (other lines passed through; ztunnel's connection records in ztunnel
//! pods' files, named by `ztunnel_files`), new files picked up, rename rotation (the
//! old file read to its end, and the files rotated while a push waited for Loki), copytruncate,
//! deletion, and positions that record each file from its first read, advance only after Loki
//! acknowledged and let a restarted sink resume with nothing lost or repeated.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{self_metric, start_sink, wait_until};
use meshtap_test_support::loki::{LokiReceiver, Reply};

const ACCESS_TEXT: &str = "[2024-06-28T06:40:16.284Z] \"GET /reviews/0 HTTP/1.1\" 200 - via_upstream - \"-\" 0 358 5 4 \"-\" \"curl/8.5.0\" \"7e1c\" \"reviews:9080\" \"10.244.0.12:9080\" outbound|9080||reviews.default.svc.cluster.local 10.244.0.9:51234 10.96.12.3:9080 10.244.0.9:40218 - default";
/// A connection record as ztunnel's `IstioFormat` writes it (istio/ztunnel `src/telemetry.rs`).
const ZTUNNEL_TEXT: &str = "2026-09-21T14:03:18.120334Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.1.17:39112 src.workload=\"productpage-v1-54bb874995-hbj5v\" src.namespace=\"default\" src.cluster=\"Kubernetes\" dst.addr=203.0.113.10:443 direction=\"outbound\" bytes_sent=801 bytes_recv=4344 duration=\"1873ms\"";
const AGENT_LINE: &str = "2024-06-28T06:40:16.285918Z\tinfo\tEnvoy proxy is ready";

/// A scratch directory laid out like a node's `/var/log/pods`.
struct Node {
    root: PathBuf,
}

impl Node {
    fn new(test: &str) -> Node {
        let root = std::env::temp_dir().join(format!("meshtap-logs-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("pods")).unwrap();
        Node { root }
    }

    fn log(&self, pod_dir: &str, name: &str) -> PathBuf {
        let dir = self.root.join("pods").join(pod_dir).join("istio-proxy");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn positions(&self) -> PathBuf {
        self.root.join("state/positions.json")
    }

    fn yaml(&self, loki: &LokiReceiver) -> String {
        format!(
            "log_files:\n  include: {}/pods/*/istio-proxy/*.log\n  positions_file: {}\n  poll_interval: 50ms\nlogs:\n  - name: loki\n    url: {}\n    labels: {{cluster: east}}\n    batch: {{min_backoff: 20ms, max_backoff: 100ms}}\n",
            self.root.display(),
            self.positions().display(),
            loki.url()
        )
    }

    /// A saved offset (`offset`: acknowledged, `read`) of `path`, if any.
    fn saved(&self, path: &Path, offset: &str) -> Option<u64> {
        let text = std::fs::read_to_string(self.positions()).ok()?;
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        doc["files"]
            .as_array()?
            .iter()
            .find(|f| f["path"] == path.display().to_string())
            .map(|f| f[offset].as_u64().unwrap())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// A containerd CRI line.
fn cri(second: u32, tag: &str, message: &str) -> String {
    format!("2024-06-28T06:40:{second:02}.000000123Z stdout {tag} {message}\n")
}

fn numbered(range: std::ops::Range<u32>, prefix: &str) -> (String, Vec<String>) {
    let messages: Vec<String> = range
        .clone()
        .map(|i| format!("{prefix} line {i}"))
        .collect();
    let text = range
        .zip(&messages)
        .map(|(i, m)| cri(i % 60, "F", m))
        .collect();
    (text, messages)
}

#[tokio::test]
async fn tails_cri_lines_joining_chunks_with_pod_labels_and_access_log_metadata() {
    let node = Node::new("tail");
    let loki = LokiReceiver::start(vec![]).await;
    let log = node.log("shop_reviews-v1-7f9c_0b1e2d", "0.log");
    let (head, tail) = ACCESS_TEXT.split_at(60);
    append(
        &log,
        &format!(
            "{}{}{}{}",
            cri(16, "P", head),
            cri(16, "F", tail),
            cri(17, "F", AGENT_LINE),
            "not a CRI line\n"
        ),
    );
    let sink = start_sink(&node.yaml(&loki)).await;
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 2).await);
    let entries = loki.accepted_entries();
    assert_eq!(
        entries[0].0,
        r#"{cluster="east", container="istio-proxy", job="integrations/istio", namespace="shop", pod="reviews-v1-7f9c"}"#
    );
    let access = &entries[0].1;
    assert_eq!(access.line, ACCESS_TEXT, "P and F chunks joined");
    assert_eq!(access.timestamp_ns(), 1_719_556_816_000_000_123);
    assert_eq!(access.metadata("response_code"), Some("200"));
    assert_eq!(
        access.metadata("upstream_cluster"),
        Some("outbound|9080||reviews.default.svc.cluster.local")
    );
    let agent = &entries[1].1;
    assert_eq!(agent.line, AGENT_LINE);
    assert!(
        agent.structured_metadata.is_empty(),
        "other lines pass through"
    );
    let at = sink.local_addr();
    assert_eq!(
        self_metric(at, "meshtap_sink_tail_malformed_lines_total").await,
        Some(1.0)
    );

    // A pod appearing later is picked up at the next poll.
    let other = node.log("shop_cart-1_9a8b", "0.log");
    append(&other, &cri(20, "F", "cart says hi"));
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 3).await);
    let (labels, entry) = loki.accepted_entries().pop().unwrap();
    assert_eq!(entry.line, "cart says hi");
    assert!(labels.contains(r#"pod="cart-1""#), "{labels}");
    assert_eq!(self_metric(at, "meshtap_sink_tail_files").await, Some(2.0));
    sink.shutdown().await;
    loki.stop();
}

#[tokio::test]
async fn rename_rotation_reads_the_old_file_to_its_end_then_releases_it() {
    let node = Node::new("rotate");
    let loki = LokiReceiver::start(vec![]).await;
    let log = node.log("shop_reviews-1_uid", "0.log");
    let (first, mut expected) = numbered(0..3, "old");
    append(&log, &first);
    let sink = start_sink(&node.yaml(&loki)).await;
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 3).await);

    // The runtime writes its last lines, kubelet renames the file and a new one starts.
    let (last, more) = numbered(3..6, "old");
    append(&log, &last);
    let rotated = log.with_file_name("0.log.20240628-064100");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, &cri(7, "F", "old line written after the rename"));
    let (fresh, new_lines) = numbered(10..13, "new");
    append(&log, &fresh);
    expected.extend(more);
    expected.push("old line written after the rename".into());
    expected.extend(new_lines);

    assert!(
        wait_until(Duration::from_secs(10), || loki.accepted_lines().len()
            >= expected.len())
        .await
    );
    assert_eq!(
        loki.accepted_lines(),
        expected,
        "every line once, the old file first"
    );
    let at = sink.local_addr();
    let mut released = None;
    for _ in 0..250 {
        released = self_metric(at, "meshtap_sink_tail_files_released_total").await;
        if released == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(released, Some(1.0));
    assert_eq!(self_metric(at, "meshtap_sink_tail_files").await, Some(1.0));

    // A deleted file is released too.
    std::fs::remove_file(&log).unwrap();
    let mut files = None;
    for _ in 0..250 {
        files = self_metric(at, "meshtap_sink_tail_files").await;
        if files == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(files, Some(0.0));
    sink.shutdown().await;
    loki.stop();
}

#[tokio::test]
async fn copytruncate_is_detected_and_the_file_reread_from_the_start() {
    let node = Node::new("truncate");
    let loki = LokiReceiver::start(vec![]).await;
    let log = node.log("shop_reviews-1_uid", "0.log");
    let (first, mut expected) = numbered(0..5, "before");
    append(&log, &first);
    let sink = start_sink(&node.yaml(&loki)).await;
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 5).await);
    // logrotate's copytruncate: the same inode, emptied, then written again (shorter).
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    append(&log, &cri(30, "F", "after truncation"));
    expected.push("after truncation".into());
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 6).await);
    assert_eq!(loki.accepted_lines(), expected);
    assert_eq!(
        self_metric(sink.local_addr(), "meshtap_sink_tail_truncations_total").await,
        Some(1.0)
    );
    sink.shutdown().await;
    loki.stop();
}

#[tokio::test]
async fn positions_advance_only_after_acknowledgement_and_a_restart_loses_nothing() {
    let node = Node::new("positions");
    let loki = LokiReceiver::start(vec![Reply::status(503), Reply::status(500)]).await;
    let log = node.log("shop_reviews-1_uid", "0.log");
    let (first, mut expected) = numbered(0..3, "first");
    append(&log, &first);
    let sink = start_sink(&node.yaml(&loki)).await;
    // While Loki fails, nothing is acknowledged, so no position is saved past the start.
    assert!(wait_until(Duration::from_secs(10), || loki.pushes().len() >= 2).await);
    assert!(node.saved(&log, "offset").unwrap_or(0) == 0);
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 3).await);
    let length = std::fs::metadata(&log).unwrap().len();
    assert!(
        wait_until(Duration::from_secs(10), || node.saved(&log, "offset")
            == Some(length))
        .await
    );
    sink.shutdown().await;

    // Written while the sink is down, then a P chunk whose F comes after the restart.
    let (second, more) = numbered(3..6, "second");
    append(&log, &second);
    append(&log, &cri(40, "P", "split "));
    expected.extend(more);
    let sink = start_sink(&node.yaml(&loki)).await;
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 6).await);
    append(&log, &cri(40, "F", "across a poll"));
    expected.push("split across a poll".into());
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 7).await);
    assert_eq!(
        loki.accepted_lines(),
        expected,
        "nothing lost, nothing repeated"
    );
    sink.shutdown().await;
    loki.stop();
}

#[tokio::test]
async fn files_rotated_while_a_push_waits_for_loki_are_all_read_once_it_answers() {
    let node = Node::new("rotated-while-waiting");
    let loki = LokiReceiver::start(vec![]).await;
    loki.refuse_with(Some(503));
    let log = node.log("shop_reviews-1_uid", "0.log");
    let (first, mut expected) = numbered(0..3, "first");
    append(&log, &first);
    let sink = start_sink(&node.yaml(&loki)).await;
    assert!(wait_until(Duration::from_secs(10), || !loki.pushes().is_empty()).await);
    // Known from its first read on, though nothing was acknowledged.
    assert_eq!(node.saved(&log, "offset"), Some(0));
    assert_eq!(node.saved(&log, "read"), Some(first.len() as u64));

    // While the push waits: the file's last lines, a rotation, a file that is rotated away
    // before the tailer looks again, and the new file.
    let (rest, more) = numbered(3..5, "first");
    append(&log, &rest);
    std::fs::rename(&log, log.with_file_name("0.log.20240628-064100")).unwrap();
    let (between, between_lines) = numbered(10..12, "between");
    append(&log, &between);
    std::fs::rename(&log, log.with_file_name("0.log.20240628-064200")).unwrap();
    let (fresh, new_lines) = numbered(20..22, "new");
    append(&log, &fresh);
    expected.extend(more);
    expected.extend(between_lines);
    expected.extend(new_lines);

    loki.refuse_with(None);
    assert!(
        wait_until(Duration::from_secs(10), || loki.accepted_lines().len()
            >= expected.len())
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(loki.accepted_lines(), expected, "every file once, in order");
    assert_eq!(
        self_metric(
            sink.local_addr(),
            "meshtap_sink_tail_rotated_files_lost_total"
        )
        .await,
        Some(0.0)
    );
    sink.shutdown().await;
    loki.stop();
}

#[tokio::test]
async fn a_file_rotated_unseen_after_the_last_one_of_its_log_was_released_is_read() {
    let node = Node::new("rotated-after-release");
    let loki = LokiReceiver::start(vec![]).await;
    let log = node.log("shop_reviews-1_uid", "0.log");
    let (first, mut expected) = numbered(0..2, "first");
    append(&log, &first);
    let sink = start_sink(&node.yaml(&loki)).await;
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 2).await);
    // Rotated, read to its end and released: the tailer has no file of this log open.
    std::fs::rename(&log, log.with_file_name("0.log.20240628-064100")).unwrap();
    let at = sink.local_addr();
    let mut released = None;
    for _ in 0..250 {
        released = self_metric(at, "meshtap_sink_tail_files_released_total").await;
        if released == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(released, Some(1.0));

    // Another pod's push waits for Loki while this log gets a file that is rotated away
    // before the tailer looks again, then a new one.
    loki.refuse_with(Some(503));
    let pushes = loki.pushes().len();
    let other = node.log("shop_cart-1_uid", "0.log");
    append(&other, &cri(30, "F", "cart line"));
    assert!(wait_until(Duration::from_secs(10), || loki.pushes().len() > pushes).await);
    let (unseen, unseen_lines) = numbered(10..12, "unseen");
    append(&log, &unseen);
    std::fs::rename(&log, log.with_file_name("0.log.20240628-064200")).unwrap();
    let (fresh, new_lines) = numbered(20..22, "new");
    append(&log, &fresh);
    expected.push("cart line".into());
    expected.extend(unseen_lines);
    expected.extend(new_lines);

    loki.refuse_with(None);
    assert!(
        wait_until(Duration::from_secs(10), || loki.accepted_lines().len()
            >= expected.len())
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        loki.accepted_lines(),
        expected,
        "the unseen file once, the released one not again"
    );
    sink.shutdown().await;
    loki.stop();
}

/// Writes two lines to `log`, runs a sink until Loki has them and their position is saved,
/// then stops it; returns the lines.
async fn read_two_lines_then_stop(node: &Node, loki: &LokiReceiver, log: &Path) -> Vec<String> {
    let (first, lines) = numbered(0..2, "old");
    append(log, &first);
    let sink = start_sink(&node.yaml(loki)).await;
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 2).await);
    let length = std::fs::metadata(log).unwrap().len();
    assert!(
        wait_until(Duration::from_secs(10), || node.saved(log, "offset")
            == Some(length))
        .await
    );
    sink.shutdown().await;
    lines
}

#[tokio::test]
async fn a_file_rotated_while_the_sink_was_stopped_is_finished_first() {
    let node = Node::new("rotated-while-down");
    let loki = LokiReceiver::start(vec![]).await;
    let log = node.log("shop_reviews-1_uid", "0.log");
    let mut expected = read_two_lines_then_stop(&node, &loki, &log).await;

    // While stopped: more lines, a rename rotation, and a new file.
    let (late, more) = numbered(2..4, "old");
    append(&log, &late);
    std::fs::rename(&log, log.with_file_name("0.log.20240628-064100")).unwrap();
    let (fresh, new_lines) = numbered(10..12, "new");
    append(&log, &fresh);
    expected.extend(more);
    expected.extend(new_lines);
    let sink = start_sink(&node.yaml(&loki)).await;
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() >= 6).await);
    assert_eq!(
        loki.accepted_lines(),
        expected,
        "the rotated file's rest, then the new file"
    );
    sink.shutdown().await;
    loki.stop();
}

/// The kubelet's compression of a rotated file: `<path>.gz` written, then `<path>` removed.
fn gzip_in_place(path: &Path) {
    gzip_copy(path);
    std::fs::remove_file(path).unwrap();
}

/// `<path>.gz` written beside `<path>` (the kubelet's compression caught half way).
fn gzip_copy(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    let name = format!("{}.gz", path.file_name().unwrap().to_str().unwrap());
    std::fs::write(path.with_file_name(name), gz.finish().unwrap()).unwrap();
}

#[tokio::test]
async fn files_rotated_and_compressed_while_the_sink_was_stopped_are_read_from_where_it_stopped() {
    let node = Node::new("rotated-compressed");
    let loki = LokiReceiver::start(vec![]).await;
    let log = node.log("shop_ratings-1_uid", "0.log");
    // Rotated and compressed before the sink ever ran: not this sink's to read.
    let ancient = log.with_file_name("0.log.20240628-063000");
    append(&ancient, &numbered(0..3, "ancient").0);
    gzip_in_place(&ancient);
    let mut expected = read_two_lines_then_stop(&node, &loki, &log).await;

    // While stopped: more lines, a rotation the kubelet then compresses, a second rotation
    // (the newest rotated file stays plain) and a new file.
    let (late, more) = numbered(2..4, "old");
    append(&log, &late);
    let rotated = log.with_file_name("0.log.20240628-064100");
    std::fs::rename(&log, &rotated).unwrap();
    let (middle, middle_lines) = numbered(20..22, "middle");
    append(&log, &middle);
    let newest = log.with_file_name("0.log.20240628-064200");
    std::fs::rename(&log, &newest).unwrap();
    gzip_in_place(&rotated);
    // Stopped while the kubelet was compressing the newest one too: both forms exist.
    gzip_copy(&newest);
    let (fresh, new_lines) = numbered(40..42, "new");
    append(&log, &fresh);
    expected.extend(more);
    expected.extend(middle_lines);
    expected.extend(new_lines);

    // The compressed file's rest, the later rotated file, then the new file; nothing older.
    restart_and_expect(&node, loki, &expected, 0.0).await;
}

#[tokio::test]
async fn a_file_deleted_after_rotation_while_stopped_is_counted_lost_and_the_later_ones_read() {
    let node = Node::new("rotated-deleted");
    let loki = LokiReceiver::start(vec![]).await;
    let log = node.log("shop_cart-2_uid", "0.log");
    let mut expected = read_two_lines_then_stop(&node, &loki, &log).await;

    // While stopped: the file rotates and the kubelet, keeping few files, deletes it; a later
    // rotation survives, compressed.
    append(&log, &numbered(2..4, "old").0);
    std::fs::remove_file(&log).unwrap();
    let (later, later_lines) = numbered(30..32, "later");
    append(&log, &later);
    let rotated = log.with_file_name("0.log.20240628-065000");
    std::fs::rename(&log, &rotated).unwrap();
    gzip_in_place(&rotated);
    let (fresh, new_lines) = numbered(40..41, "new");
    append(&log, &fresh);
    expected.extend(later_lines);
    expected.extend(new_lines);

    restart_and_expect(&node, loki, &expected, 1.0).await;
}

/// Starts the sink again and checks that Loki ends up with exactly `expected` (in order) and
/// that `lost` files were counted as rotated away.
async fn restart_and_expect(node: &Node, loki: LokiReceiver, expected: &[String], lost: f64) {
    let sink = start_sink(&node.yaml(&loki)).await;
    let arrived = wait_until(Duration::from_secs(10), || {
        loki.accepted_lines().len() >= expected.len()
    })
    .await;
    assert!(arrived, "{:?}", loki.accepted_lines());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(loki.accepted_lines(), expected);
    let counted = self_metric(
        sink.local_addr(),
        "meshtap_sink_tail_rotated_files_lost_total",
    )
    .await;
    assert_eq!(counted, Some(lost));
    sink.shutdown().await;
    loki.stop();
}

#[tokio::test]
async fn ztunnel_pods_files_get_ztunnel_fields_and_sidecars_files_envoy_fields() {
    let node = Node::new("ztunnel");
    let loki = LokiReceiver::start(vec![]).await;
    let ztunnel = node.log("istio-system_ztunnel-x7k2p_5c1d", "0.log");
    append(&ztunnel, &cri(18, "F", ZTUNNEL_TEXT));
    let sidecar = node.log("shop_reviews-v1-7f9c_0b1e2d", "0.log");
    append(
        &sidecar,
        &format!(
            "{}{}",
            cri(19, "F", ZTUNNEL_TEXT),
            cri(20, "F", ACCESS_TEXT)
        ),
    );
    let yaml = node.yaml(&loki).replace(
        "  poll_interval: 50ms\n",
        &format!(
            "  poll_interval: 50ms\n  ztunnel_files: {}/pods/*_ztunnel-*/istio-proxy/*.log\n",
            node.root.display()
        ),
    );
    let sink = start_sink(&yaml).await;
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 3).await);
    let entries = loki.accepted_entries();
    let of_pod = |pod: &str| {
        entries
            .iter()
            .filter(|(labels, _)| labels.contains(&format!("pod=\"{pod}\"")))
            .map(|(_, entry)| entry)
            .collect::<Vec<_>>()
    };
    let [record] = of_pod("ztunnel-x7k2p")[..] else {
        panic!("{entries:?}")
    };
    assert_eq!(record.line, ZTUNNEL_TEXT);
    assert_eq!(record.metadata("level"), Some("info"));
    assert_eq!(record.metadata("message"), Some("connection complete"));
    assert_eq!(
        record.metadata("src_workload"),
        Some("productpage-v1-54bb874995-hbj5v")
    );
    assert_eq!(record.metadata("dst_addr"), Some("203.0.113.10:443"));
    assert_eq!(record.metadata("direction"), Some("outbound"));
    assert_eq!(record.metadata("bytes_recv"), Some("4344"));
    assert_eq!(record.metadata("duration"), Some("1873ms"));
    let [not_envoy, access] = of_pod("reviews-v1-7f9c")[..] else {
        panic!("{entries:?}")
    };
    assert!(not_envoy.structured_metadata.is_empty(), "a sidecar's file");
    assert_eq!(access.metadata("response_code"), Some("200"));
    sink.shutdown().await;
    loki.stop();
}

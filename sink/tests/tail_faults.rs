//! The file tailer across real process lifetimes with Loki down from the start: a writer
//! appends numbered CRI lines to a pod's log and rotates it the kubelet's way (older rotated
//! files gzipped, the log renamed to `<n>.log.<stamp>`), while the sink binary is killed with
//! SIGKILL again and again (and stopped once with SIGTERM), with rotations both while it runs
//! and while it is down. Once the Loki stand-in answers, the last sink must deliver every line:
//! lines lost (must be 0) and duplicated are counted against the stand-in and printed. The
//! same with Loki answering: kills lose nothing and repeat at most the unsaved pushes. A file
//! rotated away and deleted before any of it was acknowledged is counted and logged.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use common::sink_process::SinkProcess;
use common::{self_metric, wait_until};
use meshtap_test_support::loki::LokiReceiver;

/// Lines the writer appends at a time.
const BURST: u32 = 100;

struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let dir =
            std::env::temp_dir().join(format!("meshtap-tail-faults-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TestDir(dir)
    }

    fn yaml(&self, loki: &LokiReceiver) -> String {
        format!(
            "shutdown_timeout: 1s\nlog_files:\n  include: {root}/pods/*/istio-proxy/*.log\n  positions_file: {root}/state/positions.json\n  poll_interval: 50ms\nlogs:\n  - name: loki\n    url: {url}\n    batch: {{min_backoff: 20ms, max_backoff: 100ms}}\n",
            root = self.0.display(),
            url = loki.url()
        )
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A container writing numbered lines to its log, and the kubelet rotating it.
struct Writer {
    log: PathBuf,
    written: u32,
    rotations: u32,
}

impl Writer {
    fn new(dir: &TestDir) -> Writer {
        let log = dir.0.join("pods/shop_writer-1_uid/istio-proxy/0.log");
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        Writer {
            log,
            written: 0,
            rotations: 0,
        }
    }

    /// Appends `BURST` lines `line <n>`, numbered on from the last.
    fn write(&mut self) {
        let mut text = String::new();
        for n in self.written..self.written + BURST {
            let (minute, ms) = (n / 60_000, n % 60_000);
            text.push_str(&format!(
                "2024-06-28T07:{minute:02}:{:02}.{:03}000000Z stdout F line {n}\n",
                ms / 1000,
                ms % 1000
            ));
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        file.write_all(text.as_bytes()).unwrap();
        self.written += BURST;
    }

    /// The kubelet's rotation: every rotated file still plain is compressed (`.gz.tmp`
    /// written, renamed to `.gz`, the plain one removed), then the log is renamed to
    /// `<n>.log.<stamp>`; the runtime starts a new file at the next write.
    fn rotate(&mut self) {
        let dir = self.log.parent().unwrap();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().into_string().unwrap();
            if name.starts_with("0.log.") && !name.ends_with(".gz") {
                let plain = entry.path();
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&std::fs::read(&plain).unwrap()).unwrap();
                let temp = dir.join(format!("{name}.gz.tmp"));
                std::fs::write(&temp, gz.finish().unwrap()).unwrap();
                std::fs::rename(&temp, dir.join(format!("{name}.gz"))).unwrap();
                std::fs::remove_file(&plain).unwrap();
            }
        }
        let second = 100 + self.rotations;
        let stamp = format!("20240628-06{:02}{:02}", second / 60, second % 60);
        std::fs::rename(&self.log, self.log.with_file_name(format!("0.log.{stamp}"))).unwrap();
        self.rotations += 1;
    }
}

/// Distinct line numbers the stand-in accepted, with how often each arrived.
fn received(loki: &LokiReceiver) -> HashMap<u32, u32> {
    let mut counts = HashMap::new();
    for line in loki.accepted_lines() {
        let n: u32 = line
            .strip_prefix("line ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        *counts.entry(n).or_insert(0) += 1;
    }
    counts
}

/// Starts a sink and waits (bounded) until the last line written so far reached Loki; returns
/// the sink and whether it did.
async fn start_until_the_last_line_arrives(
    dir: &TestDir,
    loki: &LokiReceiver,
    writer: &Writer,
) -> (SinkProcess, bool) {
    let sink = SinkProcess::start(&dir.0, &dir.yaml(loki)).await;
    let last = writer.written - 1;
    let arrived = wait_until(Duration::from_secs(15), || {
        received(loki).contains_key(&last)
    })
    .await;
    (sink, arrived)
}

/// Whether the positions file holds the live log acknowledged up to its current length.
fn acknowledged_to_the_end(dir: &TestDir, writer: &Writer) -> bool {
    let Ok(length) = std::fs::metadata(&writer.log).map(|m| m.len()) else {
        return false;
    };
    let Ok(text) = std::fs::read(dir.0.join("state/positions.json")) else {
        return false;
    };
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return false;
    };
    let live = writer.log.to_string_lossy();
    document["files"].as_array().is_some_and(|files| {
        files.iter().any(|file| {
            file["path"].as_str() == Some(live.as_ref()) && file["offset"].as_u64() == Some(length)
        })
    })
}

/// Starts the sink and waits until it tried to push (so it read its files and saved them).
async fn start_and_wait_for_a_push(dir: &TestDir, loki: &LokiReceiver) -> SinkProcess {
    let before = loki.pushes().len();
    let sink = SinkProcess::start(&dir.0, &dir.yaml(loki)).await;
    let pushed = wait_until(Duration::from_secs(15), || loki.pushes().len() > before).await;
    assert!(pushed, "the sink never tried to push\n{}", sink.log());
    sink
}

#[derive(Clone, Copy, PartialEq)]
enum Stop {
    Kill,
    Term,
}

#[tokio::test]
async fn no_line_is_lost_across_kills_and_rotations_while_loki_is_down_from_the_start() {
    let dir = TestDir::new("outage");
    let loki = LokiReceiver::start(vec![]).await;
    loki.refuse_with(Some(503));
    let mut writer = Writer::new(&dir);
    let stops = [
        Stop::Kill,
        Stop::Kill,
        Stop::Kill,
        Stop::Term,
        Stop::Kill,
        Stop::Kill,
        Stop::Kill,
    ];
    for (round, stop) in stops.iter().enumerate() {
        writer.write();
        let sink = start_and_wait_for_a_push(&dir, &loki).await;
        // Rotations while the sink waits for Loki: one, or two in a row (the file between is
        // never seen under the live name).
        for _ in 0..=round % 2 {
            writer.write();
            writer.rotate();
        }
        writer.write();
        match stop {
            Stop::Kill => sink.signal("KILL"),
            Stop::Term => sink.signal("TERM"),
        }
        let (status, log) = sink.wait_exit().await;
        assert_eq!(status.success(), *stop == Stop::Term, "{status:?}\n{log}");
        // Rotations while the sink is down.
        if round % 3 != 1 {
            writer.write();
            writer.rotate();
        }
    }
    writer.write();
    loki.wait_until_idle().await;
    assert!(loki.accepted_lines().is_empty());

    let sink = start_and_wait_for_a_push(&dir, &loki).await;
    loki.refuse_with(None);
    let all = wait_until(Duration::from_secs(30), || {
        received(&loki).len() as u32 >= writer.written
    })
    .await;
    // A last burst arriving means every push before it was answered: duplicates are final.
    writer.write();
    let settled = wait_until(Duration::from_secs(15), || {
        received(&loki).contains_key(&(writer.written - 1))
    })
    .await;
    let counts = received(&loki);
    let lost = (0..writer.written)
        .filter(|n| !counts.contains_key(n))
        .count();
    let entries: u32 = counts.values().sum();
    let duplicated = entries - counts.len() as u32;
    let kills = stops.iter().filter(|s| **s == Stop::Kill).count();
    println!(
        "tail faults: {} lines written, {} rotations, {kills} SIGKILLs and 1 SIGTERM with Loki down; {} distinct lines received ({entries} entries), {lost} lost, {duplicated} duplicated",
        writer.written,
        writer.rotations,
        counts.len(),
    );
    assert!(all && settled, "{lost} lines lost\n{}", sink.log());
    assert_eq!(lost, 0);
    assert_eq!(
        self_metric(sink.addr, "meshtap_sink_tail_rotated_files_lost_total").await,
        Some(0.0)
    );
    loki.stop();
}

#[tokio::test]
async fn kills_while_loki_answers_lose_nothing_and_repeat_at_most_the_unsaved_pushes() {
    let dir = TestDir::new("answering");
    let loki = LokiReceiver::start(vec![]).await;
    let mut writer = Writer::new(&dir);
    let kills = 5;
    for round in 0..kills {
        writer.write();
        let (sink, arrived) = start_until_the_last_line_arrives(&dir, &loki, &writer).await;
        assert!(arrived, "{}", sink.log());
        // The push was answered; its acknowledgement is saved a moment later (on a loaded
        // machine, possibly after the test's next step): wait for it, so that what a kill may
        // repeat is bounded by what follows.
        let saved = wait_until(Duration::from_secs(15), || {
            acknowledged_to_the_end(&dir, &writer)
        })
        .await;
        assert!(
            saved,
            "positions never acknowledged the whole log\n{}",
            sink.log()
        );
        // Killed while it reads, pushes or saves the next lines.
        writer.write();
        sink.signal("KILL");
        sink.wait_exit().await;
        if round % 2 == 0 {
            writer.rotate();
        }
    }
    writer.write();
    let (sink, arrived) = start_until_the_last_line_arrives(&dir, &loki, &writer).await;
    let counts = received(&loki);
    let lost = (0..writer.written)
        .filter(|n| !counts.contains_key(n))
        .count();
    let duplicated = counts.values().sum::<u32>() - counts.len() as u32;
    println!(
        "tail faults, Loki answering: {} lines written, {} rotations, {kills} SIGKILLs; {} distinct lines received, {lost} lost, {duplicated} duplicated",
        writer.written,
        writer.rotations,
        counts.len(),
    );
    assert!(arrived, "{}", sink.log());
    assert_eq!(lost, 0);
    // A kill repeats at most what was read and not saved as acknowledged: the two bursts
    // written since the last saved position.
    assert!(duplicated <= 2 * BURST * kills, "{duplicated} duplicated");
    loki.stop();
}

#[tokio::test]
async fn a_file_rotated_and_deleted_before_it_was_acknowledged_is_counted_and_logged() {
    let dir = TestDir::new("deleted");
    let loki = LokiReceiver::start(vec![]).await;
    loki.refuse_with(Some(503));
    let mut writer = Writer::new(&dir);
    writer.write();
    let sink = start_and_wait_for_a_push(&dir, &loki).await;
    sink.signal("KILL");
    sink.wait_exit().await;

    // While the sink is down the log rotates and the kubelet, keeping few files, deletes it.
    writer.rotate();
    let rotated = std::fs::read_dir(writer.log.parent().unwrap())
        .unwrap()
        .flatten()
        .find(|e| e.file_name() != "0.log")
        .unwrap()
        .path();
    std::fs::remove_file(rotated).unwrap();
    writer.write();

    loki.wait_until_idle().await;
    let sink = SinkProcess::start(&dir.0, &dir.yaml(&loki)).await;
    loki.refuse_with(None);
    let delivered = wait_until(Duration::from_secs(15), || {
        received(&loki).len() as u32 == BURST
    })
    .await;
    assert!(delivered, "{}", sink.log());
    assert_eq!(
        received(&loki).keys().min(),
        Some(&BURST),
        "the new file, whole"
    );
    assert_eq!(
        self_metric(sink.addr, "meshtap_sink_tail_rotated_files_lost_total").await,
        Some(1.0)
    );
    let log = sink.log();
    let warning = log
        .lines()
        .find(|l| l.contains("rotated away"))
        .unwrap_or_else(|| panic!("no warning\n{log}"));
    assert!(
        warning.contains(&writer.log.display().to_string()),
        "{warning}"
    );
    loki.stop();
}

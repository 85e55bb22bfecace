//! Tailing with no Loki endpoint: `log_files` and the live view alone. The tailed lines reach
//! the view's log panel (`/v1/live`), their offsets are saved as done once the view has them,
//! and a restarted sink resumes after them: it shows only the lines written since, once each.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const LOG: &str = "pods/default_ratings-v1-5f9c_0a1b/istio-proxy/0.log";

fn cri_line(path: &str) -> String {
    format!(
        "2026-01-05T10:00:00.000000000Z stdout F [2026-01-05T10:00:00.000Z] \"GET {path} HTTP/1.1\" 200 - via_upstream - \"-\" 0 48 2 1 \"-\" \"curl/8\" \"r-1\" \"ratings:9080\" \"10.1.0.7:9080\" inbound|9080||ratings.default.svc.cluster.local 127.0.0.6:40000 10.1.0.7:9080 10.1.0.5:51000 - default\n"
    )
}

/// The tailed lines `/v1/live` shows, oldest first.
async fn file_lines(sink: SocketAddr) -> Vec<String> {
    let (code, body) = get_text(sink, "/v1/live").await;
    assert_eq!(code, 200, "{body}");
    let live: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut lines: Vec<String> = live["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["origin"] == "file")
        .map(|l| l["line"].as_str().unwrap().to_owned())
        .collect();
    lines.reverse();
    lines
}

/// Waits (at most 10 s) until the view shows `n` tailed lines; returns them.
async fn wait_for_lines(sink: SocketAddr, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let lines = file_lines(sink).await;
        if lines.len() >= n || start.elapsed() > Duration::from_secs(10) {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn saved_offset(positions: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(positions).ok()?;
    let document: serde_json::Value = serde_json::from_str(&text).ok()?;
    document["files"][0]["offset"].as_u64()
}

#[tokio::test]
async fn tailed_lines_reach_the_view_without_loki_and_are_not_shown_twice() {
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("view_tail");
    let _ = std::fs::remove_dir_all(&work);
    let log = work.join(LOG);
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, cri_line("/ratings/1") + &cri_line("/ratings/2")).unwrap();
    let positions = work.join("positions.json");
    let yaml = format!(
        "log_files:\n  include: {}/pods/*/istio-proxy/*.log\n  positions_file: {}\n  poll_interval: 50ms\n",
        work.display(),
        positions.display()
    );

    let sink = start_sink(&yaml).await;
    let lines = wait_for_lines(sink.local_addr(), 2).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains("/ratings/1") && lines[1].contains("/ratings/2"));
    let length = std::fs::metadata(&log).unwrap().len();
    let start = Instant::now();
    while saved_offset(&positions) != Some(length) && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        saved_offset(&positions),
        Some(length),
        "offset saved as done"
    );
    sink.shutdown().await;

    let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut file, cri_line("/ratings/3").as_bytes()).unwrap();
    let sink = start_sink(&yaml).await;
    let lines = wait_for_lines(sink.local_addr(), 1).await;
    // One more poll cycle: anything resent would show up by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines_after = file_lines(sink.local_addr()).await;
    assert_eq!(lines, lines_after);
    assert_eq!(
        lines.len(),
        1,
        "only the new line after a restart: {lines:?}"
    );
    assert!(lines[0].contains("/ratings/3"));
    sink.shutdown().await;
}

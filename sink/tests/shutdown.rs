//! The real binary: SIGTERM stops intake and flushes queued samples before exiting, and
//! `/readyz` reports readiness.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

/// Kills the child if the test fails before it exits.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn sigterm_flushes_queued_samples_then_exits() {
    let receiver = Receiver::start(vec![]).await;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("meshtap-sink-shutdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("sink.yaml");
    // The batch deadline is far away: only the shutdown flush can send these samples.
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\nshutdown_timeout: 5s\nremote_write:\n  - url: {}\n    send_metadata: false\n    queue: {{batch_send_deadline: 1h}}\n",
            receiver.url()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_meshtap-sink"))
        .arg("--config")
        .arg(&config)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(child);
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut ready = false;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if let Ok(r) = client.get(format!("http://{addr}/readyz")).send().await {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "sink never became ready");

    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = report(
        "default",
        "p-1",
        1,
        ts,
        vec![requests_family(vec![
            (
                http_values("a.default.svc.cluster.local", "200", "destination"),
                3.0,
            ),
            (
                http_values("a.default.svc.cluster.local", "500", "destination"),
                1.0,
            ),
        ])],
    );
    assert_eq!(post_report(addr, &r, None).await.0, 204);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        receiver.accepted_series().is_empty(),
        "sent before the flush"
    );

    let status = Command::new("kill")
        .args(["-TERM", &guard.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = guard.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "sink did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut log = String::new();
    guard
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(exit.success(), "exit {exit:?}\n{log}");
    assert_eq!(
        receiver.accepted_series().len(),
        2,
        "flushed on SIGTERM\n{log}"
    );
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("queue flushed"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

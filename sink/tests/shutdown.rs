//! The real binary: SIGTERM stops intake and flushes queued samples before exiting, and
//! `/readyz` reports readiness.

mod common;

use std::time::Duration;

use common::sink_process::SinkProcess;
use common::*;

#[tokio::test]
async fn sigterm_flushes_queued_samples_then_exits() {
    let receiver = Receiver::start(vec![]).await;
    let dir = std::env::temp_dir().join(format!("meshtap-sink-shutdown-{}", std::process::id()));
    // The batch deadline is far away: only the shutdown flush can send these samples.
    let sink = SinkProcess::start(
        &dir,
        &format!(
            "shutdown_timeout: 5s\nremote_write:\n  - url: {}\n    send_metadata: false\n    queue: {{batch_send_deadline: 1h}}\n",
            receiver.url()
        ),
    )
    .await;

    let ts = now_ms();
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
    assert_eq!(post_report(sink.addr, &r, None).await.0, 204);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        receiver.accepted_series().is_empty(),
        "sent before the flush"
    );

    sink.signal("TERM");
    let (exit, log) = sink.wait_exit().await;
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

//! The sink's Loki exporter against a loopback Loki receiver: filter-shipped access-log records
//! arrive as Istio's TEXT (or JSON) lines with stream labels and structured metadata, tenant and
//! auth headers are sent, 429/5xx are retried (with `Retry-After`), a 400 is counted and not
//! retried, and over-long lines are truncated or dropped and counted.

mod common;

use std::time::Duration;

use common::{post_report, report, self_metric, start_sink, wait_until};
use meshtap_report::AccessLogRecord;
use meshtap_test_support::loki::{LokiReceiver, Reply};

const CART_LINE: &str = "[2023-03-14T08:15:42.118Z] \"POST /cart HTTP/2\" 503 UF upstream_reset_before_response_started{connection_failure} - \"-\" 120 91 3 - \"-\" \"grpc-go/1.56\" \"1c9d\" \"cart:80\" \"10.42.0.8:80\" outbound|80||cart.shop.svc.cluster.local - 10.96.0.20:80 10.42.1.9:40990 - default";

fn cart_record(start_time_ns: i64) -> AccessLogRecord {
    AccessLogRecord {
        start_time_ns,
        method: "POST".into(),
        path: "/cart".into(),
        protocol: "HTTP/2".into(),
        response_code: 503,
        response_flags: "UF".into(),
        response_code_details: "upstream_reset_before_response_started{connection_failure}".into(),
        bytes_received: 120,
        bytes_sent: 91,
        duration_ms: Some(3),
        user_agent: "grpc-go/1.56".into(),
        request_id: "1c9d".into(),
        authority: "cart:80".into(),
        upstream_host: "10.42.0.8:80".into(),
        upstream_cluster: "outbound|80||cart.shop.svc.cluster.local".into(),
        downstream_local_address: "10.96.0.20:80".into(),
        downstream_remote_address: "10.42.1.9:40990".into(),
        route_name: "default".into(),
        source_workload: "frontend-v1".into(),
        source_namespace: "shop".into(),
        destination_workload: "cart-v2".into(),
        destination_namespace: "shop".into(),
        reporter: "source".into(),
        ..Default::default()
    }
}

const T0: i64 = 1_678_781_742_118_000_000;

fn report_with_logs(ts_ms: i64, records: Vec<AccessLogRecord>) -> meshtap_report::Report {
    let mut r = report("shop", "frontend-1", 1_000, ts_ms, vec![]);
    r.access_logs = records;
    r
}

fn sink_yaml(loki: &LokiReceiver, extra: &str) -> String {
    format!("logs:\n  - name: loki\n    url: {}\n{extra}", loki.url())
}

#[tokio::test]
async fn access_logs_arrive_as_istio_text_lines_with_labels_and_metadata() {
    let loki = LokiReceiver::start(vec![]).await;
    let yaml = sink_yaml(
        &loki,
        "    tenant_id: mesh\n    bearer_token: l0ki\n    labels: {cluster: east}\n    batch: {max_wait: 50ms}\n",
    );
    let sink = start_sink(&yaml).await;
    // Out of order on purpose: each stream must arrive sorted by timestamp.
    let later = AccessLogRecord {
        response_code: 200,
        response_flags: String::new(),
        response_code_details: "via_upstream".into(),
        ..cart_record(T0 + 5_000_000)
    };
    let mut posted = report_with_logs(2_000, vec![later, cart_record(T0)]);
    posted.stats = Some(meshtap_report::FilterStats {
        access_logs_dropped: 7,
        ..Default::default()
    });
    let (status, _) = post_report(sink.local_addr(), &posted, None).await;
    assert_eq!(status, 204);
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 2).await);
    let pushes = loki.pushes();
    let headers = &pushes[0].headers;
    assert_eq!(headers["x-scope-orgid"], "mesh");
    assert_eq!(headers["authorization"], "Bearer l0ki");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let entries = loki.accepted_entries();
    assert_eq!(
        entries[0].0,
        r#"{cluster="east", job="integrations/istio", namespace="shop", pod="frontend-1"}"#
    );
    let first = &entries[0].1;
    assert_eq!(first.line, CART_LINE);
    assert_eq!(first.timestamp_ns(), T0);
    assert_eq!(first.metadata("method"), Some("POST"));
    assert_eq!(first.metadata("response_code"), Some("503"));
    assert_eq!(first.metadata("response_flags"), Some("UF"));
    assert_eq!(first.metadata("source_workload"), Some("frontend-v1"));
    assert_eq!(first.metadata("destination_workload"), Some("cart-v2"));
    assert_eq!(first.metadata("reporter"), Some("source"));
    assert_eq!(first.metadata("user_agent"), None);
    let second = &entries[1].1;
    assert_eq!(second.timestamp_ns(), T0 + 5_000_000);
    assert!(second
        .line
        .starts_with("[2023-03-14T08:15:42.123Z] \"POST /cart HTTP/2\" 200 - via_upstream "));
    assert_eq!(
        self_metric(
            sink.local_addr(),
            "meshtap_sink_log_entries_sent_total{endpoint=\"loki\"}"
        )
        .await,
        Some(2.0)
    );
    assert_eq!(
        self_metric(
            sink.local_addr(),
            "meshtap_filter_access_logs_dropped_total{namespace=\"shop\",pod=\"frontend-1\",channel=\"http\"}"
        )
        .await,
        Some(7.0),
        "records the filter could not ship are counted"
    );
    sink.shutdown().await;
    loki.stop();
}

#[tokio::test]
async fn queued_records_are_sent_at_shutdown() {
    let loki = LokiReceiver::start(vec![]).await;
    let sink = start_sink(&sink_yaml(&loki, "    batch: {max_wait: 1h}\n")).await;
    post_report(
        sink.local_addr(),
        &report_with_logs(2_000, vec![cart_record(T0)]),
        None,
    )
    .await;
    let summary = sink.shutdown().await;
    assert_eq!(loki.accepted_lines(), vec![CART_LINE.to_owned()]);
    assert_eq!(summary.log_entries_dropped, vec![("loki".to_owned(), 0)]);
    loki.stop();
}

#[test]
fn log_config_errors_name_the_key() {
    let refuse = |yaml: &str| {
        meshtap_sink::SinkConfig::from_yaml(yaml, &|_| None)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refuse("view: {enabled: false}\nlog_files: {include: /var/log/pods/*/*/*.log}"),
        "log_files: needs at least one `logs` endpoint or the live view (`view.enabled`) to send to"
    );
    assert!(refuse("logs: [{url: http://l, batch: {max_wait: 5x}}]")
        .starts_with("logs[0].batch.max_wait"));
    assert!(refuse("logs: [{url: http://l, access_log_format: xml}]")
        .starts_with("logs[0].access_log_format"));
    assert!(refuse("logs: [{url: http://l, labels: {job: x}}]").starts_with("logs[0].labels.job"));
    assert!(
        refuse("logs: [{url: http://l}]\nlog_files: {include: var/log/*.log}")
            .starts_with("log_files.include")
    );
    assert!(refuse("logs: [{url: http://l}, {url: http://l}]").starts_with("logs: two endpoints"));
}

#[tokio::test]
async fn json_format_and_basic_auth() {
    let loki = LokiReceiver::start(vec![]).await;
    let yaml = sink_yaml(
        &loki,
        "    access_log_format: json\n    basic_auth: {username: u, password: p}\n    batch: {max_wait: 50ms}\n",
    );
    let sink = start_sink(&yaml).await;
    post_report(
        sink.local_addr(),
        &report_with_logs(2_000, vec![cart_record(T0)]),
        None,
    )
    .await;
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 1).await);
    assert_eq!(loki.pushes()[0].headers["authorization"], "Basic dTpw");
    let line = &loki.accepted_lines()[0];
    let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    assert_eq!(json["response_code"], 503);
    assert_eq!(json["method"], "POST");
    assert_eq!(json["start_time"], "2023-03-14T08:15:42.118Z");
    sink.shutdown().await;
    loki.stop();
}

#[tokio::test]
async fn retries_429_and_5xx_honouring_retry_after_then_delivers_once() {
    let loki = LokiReceiver::start(vec![
        Reply {
            status: 429,
            retry_after: Some("1"),
            body: "rate limited",
        },
        Reply::status(503),
    ])
    .await;
    let yaml = sink_yaml(
        &loki,
        "    batch: {max_wait: 50ms, min_backoff: 20ms, max_backoff: 100ms}\n",
    );
    let sink = start_sink(&yaml).await;
    post_report(
        sink.local_addr(),
        &report_with_logs(2_000, vec![cart_record(T0)]),
        None,
    )
    .await;
    assert!(wait_until(Duration::from_secs(10), || loki.accepted_lines().len() == 1).await);
    let pushes = loki.pushes();
    assert_eq!(
        pushes.iter().map(|p| p.status).collect::<Vec<_>>(),
        vec![429, 503, 204]
    );
    assert!(
        pushes.iter().all(|p| p.request == pushes[0].request),
        "a retry resends the same push"
    );
    let at = sink.local_addr();
    assert_eq!(
        self_metric(
            at,
            "meshtap_sink_log_entries_retried_total{endpoint=\"loki\"}"
        )
        .await,
        Some(2.0)
    );
    assert_eq!(
        self_metric(at, "meshtap_sink_log_entries_sent_total{endpoint=\"loki\"}").await,
        Some(1.0)
    );
    sink.shutdown().await;
    loki.stop();
}

#[tokio::test]
async fn a_400_is_a_partial_success_counted_and_not_retried() {
    let loki = LokiReceiver::start(vec![Reply {
        status: 400,
        retry_after: None,
        body: "entry too far behind",
    }])
    .await;
    let yaml = sink_yaml(
        &loki,
        "    batch: {max_wait: 50ms, min_backoff: 20ms, max_backoff: 100ms}\n",
    );
    let sink = start_sink(&yaml).await;
    let at = sink.local_addr();
    post_report(at, &report_with_logs(2_000, vec![cart_record(T0)]), None).await;
    assert!(wait_until(Duration::from_secs(10), || loki.pushes().len() == 1).await);
    // The next report's push is the second request: the refused one was not sent again.
    post_report(
        at,
        &report_with_logs(3_000, vec![cart_record(T0 + 1_000_000_000)]),
        None,
    )
    .await;
    assert!(wait_until(Duration::from_secs(10), || loki.pushes().len() == 2).await);
    let pushes = loki.pushes();
    assert_eq!(pushes[1].status, 204);
    assert_eq!(
        pushes[1].request.streams[0].entries[0].timestamp_ns(),
        T0 + 1_000_000_000
    );
    assert_eq!(
        self_metric(
            at,
            "meshtap_sink_log_entries_refused_total{endpoint=\"loki\"}"
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        self_metric(
            at,
            "meshtap_sink_log_entries_retried_total{endpoint=\"loki\"}"
        )
        .await,
        Some(0.0)
    );
    sink.shutdown().await;
    loki.stop();
}

#[tokio::test]
async fn long_lines_are_truncated_or_dropped_and_counted() {
    let loki = LokiReceiver::start(vec![]).await;
    let yaml = format!(
        "logs:\n  - name: cut\n    url: {url}\n    batch: {{max_wait: 50ms, max_line_bytes: 40}}\n  - name: drop\n    url: {url}\n    batch: {{max_wait: 50ms, max_line_bytes: 40, oversize_lines: drop}}\n",
        url = loki.url()
    );
    let sink = start_sink(&yaml).await;
    let at = sink.local_addr();
    post_report(at, &report_with_logs(2_000, vec![cart_record(T0)]), None).await;
    assert!(
        wait_until(Duration::from_secs(10), || !loki
            .accepted_lines()
            .is_empty())
        .await
    );
    let dropped = "meshtap_sink_log_entries_dropped_total{endpoint=\"drop\",reason=\"oversize\"}";
    let mut polls = 0;
    while self_metric(at, dropped).await != Some(1.0) && polls < 500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        polls += 1;
    }
    assert_eq!(self_metric(at, dropped).await, Some(1.0));
    // The drop endpoint had nothing left to push: the only push is the truncated line.
    assert_eq!(loki.accepted_lines(), vec![CART_LINE[..40].to_owned()]);
    assert_eq!(loki.pushes().len(), 1);
    assert_eq!(
        self_metric(
            at,
            "meshtap_sink_log_lines_truncated_total{endpoint=\"cut\"}"
        )
        .await,
        Some(1.0)
    );
    sink.shutdown().await;
    loki.stop();
}

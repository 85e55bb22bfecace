//! `POST /v1/reports`: status codes, result counting, and the exact series a report becomes.

mod common;

use std::time::Duration;

use common::*;
use meshtap_report::MetricKind;

fn sink_yaml(receiver: &str, extra: &str) -> String {
    format!(
        r#"
ingest: {{tokens: [good-token, other-token], max_body_bytes: 2000}}
remote_write:
  - url: {receiver}
    external_labels: {{cluster: test-cluster}}
    send_metadata: false
    queue: {{batch_send_deadline: 50ms, lanes: 2}}
{extra}
"#
    )
}

#[tokio::test]
async fn answers_401_413_400_and_204_and_counts_them() {
    let receiver = Receiver::start(vec![]).await;
    let sink = start_sink(&sink_yaml(&receiver.url(), "")).await;
    let addr = sink.local_addr();
    let good = report(
        "default",
        "p-1",
        1000,
        2000,
        vec![requests_family(vec![(
            http_values("a.default.svc.cluster.local", "200", "destination"),
            1.0,
        )])],
    );

    assert_eq!(post_report(addr, &good, None).await.0, 401);
    assert_eq!(post_report(addr, &good, Some("bad-token")).await.0, 401);

    let (status, text) = post_body(addr, vec![0u8; 5000], Some("good-token")).await;
    assert_eq!(status, 413, "{text}");

    let (status, text) =
        post_body(addr, b"definitely not snappy".to_vec(), Some("good-token")).await;
    assert_eq!(status, 400);
    assert!(text.contains("snappy"), "{text}");

    let mut invalid = good.clone();
    invalid.families[0].series[0].label_values.pop();
    let (status, text) = post_report(addr, &invalid, Some("good-token")).await;
    assert_eq!(status, 400);
    assert!(
        text.contains("invalid report") && text.contains("label values"),
        "{text}"
    );

    let mut no_proxy = good.clone();
    no_proxy.proxy = None;
    assert_eq!(
        post_report(addr, &no_proxy, Some("good-token")).await.0,
        400
    );

    assert_eq!(post_report(addr, &good, Some("other-token")).await.0, 204);
    // The same report again is out of order: dropped, counted, still 204.
    assert_eq!(post_report(addr, &good, Some("good-token")).await.0, 204);

    for (result, n) in [
        ("accepted", 1.0),
        ("unauthorized", 2.0),
        ("too_large", 1.0),
        ("bad_body", 1.0),
        ("invalid", 2.0),
        ("out_of_order", 1.0),
    ] {
        let series = format!("meshtap_sink_reports_total{{result=\"{result}\"}}");
        assert_eq!(self_metric(addr, &series).await, Some(n), "{series}");
    }
    assert_eq!(get_text(addr, "/healthz").await.0, 200);
    assert_eq!(get_text(addr, "/readyz").await.0, 200);
    sink.shutdown().await;
    receiver.stop();
}

#[tokio::test]
async fn a_report_becomes_exactly_these_series() {
    let receiver = Receiver::start(vec![]).await;
    let sink = start_sink(&sink_yaml(&receiver.url(), "")).await;
    let service = "reviews.default.svc.cluster.local";
    let mut r = report(
        "default",
        "reviews-1",
        1000,
        1_700_000_000_000,
        vec![
            requests_family(vec![(http_values(service, "200", "destination"), 7.0)]),
            histogram_family(
                "istio_request_duration_milliseconds",
                &[0.5, 1.0, 1_800_000.0],
                vec![(
                    http_values(service, "200", "destination"),
                    vec![1, 2, 3, 4],
                    1234.5,
                )],
            ),
        ],
    );
    r.stats = Some(meshtap_report::FilterStats {
        series_active: 3,
        series_limit: 100,
        overflow_observations: 2,
        reports_failed: 1,
        ..Default::default()
    });
    assert_eq!(r.families[1].kind, MetricKind::Histogram as i32);
    assert_eq!(
        post_report(sink.local_addr(), &r, Some("good-token"))
            .await
            .0,
        204
    );
    let delivered = wait_until(Duration::from_secs(10), || {
        receiver.accepted_series().len() >= 7
    })
    .await;
    assert!(
        delivered,
        "{:?}\n{}",
        receiver.received(),
        get_text(sink.local_addr(), "/metrics").await.1
    );
    let series = receiver.accepted_series();
    assert_eq!(series.len(), 1 + 4 + 2, "{series:?}");

    let find = |name: &str, le: Option<&str>| {
        series
            .iter()
            .find(|(labels, _)| {
                label(labels, "__name__") == Some(name) && label(labels, "le") == le
            })
            .unwrap_or_else(|| panic!("no {name} le={le:?}"))
    };
    let (labels, sample) = find("istio_requests_total", None);
    assert_eq!(sample.value, 7.0);
    assert_eq!(sample.timestamp, 1_700_000_000_000);
    // Family labels minus the empty `source_version`, 4 target labels, 1 external, __name__.
    assert_eq!(labels.len(), 24 + 4 + 1 + 1, "{labels:?}");
    assert_eq!(label(labels, "source_version"), None);
    assert_eq!(label(labels, "namespace"), Some("default"));
    assert_eq!(label(labels, "pod"), Some("reviews-1"));
    assert_eq!(label(labels, "instance"), Some("10.1.2.3:15020"));
    assert_eq!(label(labels, "job"), Some("integrations/istio"));
    assert_eq!(label(labels, "cluster"), Some("test-cluster"));
    assert_eq!(label(labels, "destination_service"), Some(service));
    assert_eq!(label(labels, "response_code"), Some("200"));

    for (le, cumulative) in [("0.5", 1.0), ("1", 3.0), ("1800000", 6.0), ("+Inf", 10.0)] {
        let (labels, sample) = find("istio_request_duration_milliseconds_bucket", Some(le));
        assert_eq!(sample.value, cumulative, "le={le}");
        assert_eq!(labels.len(), 24 + 4 + 1 + 1 + 1);
    }
    assert_eq!(
        find("istio_request_duration_milliseconds_sum", None)
            .1
            .value,
        1234.5
    );
    assert_eq!(
        find("istio_request_duration_milliseconds_count", None)
            .1
            .value,
        10.0
    );

    for (name, value) in [
        ("meshtap_filter_series_active", 3.0),
        ("meshtap_filter_overflow_observations_total", 2.0),
        ("meshtap_filter_reports_failed_total", 1.0),
    ] {
        let line = format!("{name}{{namespace=\"default\",pod=\"reviews-1\",channel=\"http\"}}");
        assert_eq!(
            self_metric(sink.local_addr(), &line).await,
            Some(value),
            "{line}"
        );
    }
    sink.shutdown().await;
    receiver.stop();
}

/// A TCP counter family with one series of the 23 TCP labels.
fn tcp_family(value: f64) -> meshtap_report::MetricFamily {
    let names = meshtap_report::schema::TCP_LABELS;
    meshtap_report::MetricFamily {
        name: "istio_tcp_connections_opened_total".into(),
        kind: MetricKind::Counter as i32,
        label_names: names.iter().map(|s| s.to_string()).collect(),
        series: vec![meshtap_report::Series {
            label_values: names.iter().map(|n| format!("{n}-value")).collect(),
            value,
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn the_http_and_tcp_channels_of_a_pod_are_ordered_and_staled_apart() {
    let receiver = Receiver::start(vec![]).await;
    let sink = start_sink(&sink_yaml(&receiver.url(), "")).await;
    let service = "reviews.default.svc.cluster.local";
    let t = 1_700_000_000_000;
    let http = |ts: i64| {
        let families = vec![requests_family(vec![(
            http_values(service, "200", "destination"),
            3.0,
        )])];
        report("default", "reviews-1", 1000, ts, families)
    };
    let mut tcp = report(
        "default",
        "reviews-1",
        2000,
        t - 5_000,
        vec![tcp_family(2.0)],
    );
    tcp.channel = meshtap_report::CHANNEL_TCP.into();
    // The TCP plugin's clock and lifetime are its own: an older timestamp is not out of order,
    // and its report (without request series) does not make the HTTP series stale.
    for r in [http(t), tcp.clone(), http(t + 10_000)] {
        let (status, body) = post_report(sink.local_addr(), &r, Some("good-token")).await;
        assert_eq!(status, 204, "{body}");
    }
    let delivered = wait_until(Duration::from_secs(10), || {
        receiver.accepted_series().len() >= 2
    })
    .await;
    assert!(delivered, "{:?}", receiver.received());
    let metrics = sink.local_addr();
    let accepted = "meshtap_sink_reports_total{result=\"accepted\"}";
    assert_eq!(self_metric(metrics, accepted).await, Some(3.0));
    assert_eq!(
        self_metric(metrics, "meshtap_sink_stale_markers_total").await,
        Some(0.0)
    );
    let series = receiver.accepted_series();
    let (labels, sample) = series
        .iter()
        .find(|(l, _)| label(l, "__name__") == Some("istio_tcp_connections_opened_total"))
        .expect("the TCP series");
    assert_eq!(sample.value, 2.0);
    assert_eq!(
        label(labels, "pod"),
        Some("reviews-1"),
        "same target labels"
    );
    assert_eq!(
        label(labels, "request_protocol"),
        Some("request_protocol-value")
    );
    let tcp_stats =
        "meshtap_filter_series_active{namespace=\"default\",pod=\"reviews-1\",channel=\"tcp\"}";
    let mut with_stats = tcp;
    with_stats.timestamp_ms += 10_000;
    with_stats.stats = Some(meshtap_report::FilterStats {
        series_active: 4,
        ..Default::default()
    });
    post_report(metrics, &with_stats, Some("good-token")).await;
    assert_eq!(self_metric(metrics, tcp_stats).await, Some(4.0));
    sink.shutdown().await;
    receiver.stop();
}

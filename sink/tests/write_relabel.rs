//! The real binary with two remote-write endpoints, one with `write_relabel_configs` (a `drop`
//! on metric names and a `replace` that reads an external label) and one without: each
//! receiver gets the series its endpoint's rules leave, from reports and from a scrape alike.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::sink_process::SinkProcess;
use common::*;

/// A scrape target serving two gauges.
async fn scrape_target() -> std::net::SocketAddr {
    let app = Router::new().route(
        "/metrics",
        get(|| async { "wr_kept 1\nwr_dropped{x=\"1\"} 2\n" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Distinct label sets a receiver took.
fn series(receiver: &Receiver) -> BTreeSet<Vec<(String, String)>> {
    receiver
        .accepted_series()
        .into_iter()
        .map(|(labels, _)| labels)
        .collect()
}

fn names(series: &BTreeSet<Vec<(String, String)>>) -> BTreeSet<String> {
    series
        .iter()
        .filter_map(|l| label(l, "__name__").map(str::to_owned))
        .collect()
}

/// Label sets of `name` with `response_code` (absent for scraped series).
fn of<'a>(
    series: &'a BTreeSet<Vec<(String, String)>>,
    name: &str,
    code: Option<&str>,
) -> Vec<&'a Vec<(String, String)>> {
    series
        .iter()
        .filter(|l| label(l, "__name__") == Some(name) && label(l, "response_code") == code)
        .collect()
}

#[tokio::test]
async fn each_endpoint_sends_what_its_own_rules_leave() {
    let relabeled = Receiver::start(vec![]).await;
    let plain = Receiver::start(vec![]).await;
    let target = scrape_target().await;
    let dir = std::env::temp_dir().join(format!("meshtap-write-relabel-{}", std::process::id()));
    let yaml = format!(
        r#"remote_write:
  - name: relabeled
    url: '{}'
    send_metadata: false
    external_labels: {{cluster: c1}}
    queue: {{batch_send_deadline: 50ms, lanes: 2}}
    write_relabel_configs:
      - source_labels: [__name__, response_code]
        regex: 'wr_dropped;.*|istio_requests_total;500'
        action: drop
      - {{source_labels: [cluster], target_label: tier, replacement: 'gold-$1'}}
  - name: plain
    url: '{}'
    send_metadata: false
    queue: {{batch_send_deadline: 50ms, lanes: 2}}
scrape:
  interval: 300ms
  jobs:
    - name: wr
      static_configs: [{{targets: ['{target}']}}]
"#,
        relabeled.url(),
        plain.url()
    );
    let sink = SinkProcess::start(&dir, &yaml).await;
    let r = report(
        "default",
        "p-1",
        1,
        now_ms(),
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

    let wanted = ["wr_kept", "wr_dropped", "istio_requests_total"];
    let arrived = wait_until(Duration::from_secs(15), || {
        let plain_names = names(&series(&plain));
        let relabeled_names = names(&series(&relabeled));
        wanted.iter().all(|n| plain_names.contains(*n))
            && ["wr_kept", "istio_requests_total"]
                .iter()
                .all(|n| relabeled_names.contains(*n))
    })
    .await;
    assert!(
        arrived,
        "{:?}\n{:?}\n{}",
        series(&plain),
        series(&relabeled),
        sink.log()
    );
    // A few more scrapes: a dropped series would have arrived by now.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (plain, relabeled) = (series(&plain), series(&relabeled));

    let mut expected_names = names(&plain);
    expected_names.remove("wr_dropped");
    assert_eq!(
        names(&relabeled),
        expected_names,
        "only wr_dropped is left out by name"
    );
    assert_eq!(of(&plain, "istio_requests_total", Some("500")).len(), 1);
    assert!(of(&relabeled, "istio_requests_total", Some("500")).is_empty());
    // Every series sent to `relabeled` is one of `plain`'s plus cluster and tier.
    for labels in &relabeled {
        assert_eq!(label(labels, "cluster"), Some("c1"), "{labels:?}");
        assert_eq!(label(labels, "tier"), Some("gold-c1"), "{labels:?}");
        let mut original = labels.clone();
        original.retain(|(n, _)| n != "cluster" && n != "tier");
        assert!(
            plain.contains(&original),
            "{labels:?} is not a relabeled plain series"
        );
    }
    assert!(plain
        .iter()
        .all(|l| label(l, "tier").is_none() && label(l, "cluster").is_none()));
    assert_eq!(
        of(&plain, "wr_kept", None),
        vec![&vec![
            ("__name__".to_owned(), "wr_kept".to_owned()),
            ("instance".to_owned(), target.to_string()),
            ("job".to_owned(), "wr".to_owned()),
        ]]
    );

    let dropped = |endpoint: &str| {
        format!("meshtap_sink_samples_relabel_dropped_total{{endpoint=\"{endpoint}\"}}")
    };
    let dropped_relabeled = self_metric(sink.addr, &dropped("relabeled")).await.unwrap();
    assert!(dropped_relabeled >= 2.0, "{dropped_relabeled}");
    assert_eq!(self_metric(sink.addr, &dropped("plain")).await, Some(0.0));
    drop(sink);
    std::fs::remove_dir_all(&dir).unwrap();
}

//! Who a report is from: the scrape merge marks the pod the report body names (never a
//! header's), and `ingest.verify_identity` accepts a report only from a caller whose SPIFFE
//! identity (last `x-forwarded-client-cert` element) is in the reported pod's namespace.

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::*;
use meshtap_report::Report;
use meshtap_sink::floor::PodKey;

/// Posts `report` with extra request headers; returns (status, body text).
async fn post_with(sink: SocketAddr, report: &Report, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{sink}{}", meshtap_report::REPORT_PATH))
        .header("content-type", meshtap_report::CONTENT_TYPE)
        .header("content-encoding", meshtap_report::CONTENT_ENCODING)
        .body(meshtap_report::encode(report));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("sink answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn one_series_report(namespace: &str, pod: &str) -> Report {
    report(
        namespace,
        pod,
        1000,
        now_ms(),
        vec![requests_family(vec![(
            http_values("reviews.default.svc.cluster.local", "200", "destination"),
            3.0,
        )])],
    )
}

/// What the sink's sidecar writes for a caller with service account `sa` in `namespace`.
fn xfcc_of(namespace: &str, sa: &str) -> String {
    format!(
        "By=spiffe://cluster.local/ns/meshtap-system/sa/meshtap-sink;Hash=9d1c0e;Subject=\"\";URI=spiffe://cluster.local/ns/{namespace}/sa/{sa}"
    )
}

const XFCC: &str = "x-forwarded-client-cert";

/// A scrape job whose one target accepts connections but never answers (its scrapes time out);
/// only the merge registry matters here.
async fn sink_with_scrape(extra: &str) -> (meshtap_sink::RunningSink, tokio::net::TcpListener) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink = start_sink(&format!(
        "{extra}scrape:\n  interval: 1s\n  timeout: 500ms\n  jobs:\n    - name: integrations/istio\n      static_configs: [{{targets: ['{}'], labels: {{namespace: default, pod: body-pod}}}}]\n",
        silent.local_addr().unwrap()
    ))
    .await;
    (sink, silent)
}

fn is_reported(sink: &meshtap_sink::RunningSink, namespace: &str, pod: &str) -> bool {
    let stage = sink.scrape().expect("scrape stage running");
    stage
        .source_merge()
        .is_reported(&PodKey::new(namespace, pod), Instant::now())
}

#[tokio::test]
async fn the_merge_marks_the_pod_the_body_names_not_the_headers() {
    let (sink, _silent) = sink_with_scrape("").await;
    let addr = sink.local_addr();
    let (status, text) = post_with(
        addr,
        &one_series_report("default", "body-pod"),
        &[(meshtap_report::POD_HEADER, "default/header-pod")],
    )
    .await;
    assert_eq!(status, 204, "{text}");
    assert!(is_reported(&sink, "default", "body-pod"));
    assert!(!is_reported(&sink, "default", "header-pod"));
    // Without any header the body still names the pod.
    let (status, _) = post_with(addr, &one_series_report("apps", "bare"), &[]).await;
    assert_eq!(status, 204);
    assert!(is_reported(&sink, "apps", "bare"));
    sink.shutdown().await;
}

#[tokio::test]
async fn a_report_refused_by_identity_marks_no_pod() {
    let (sink, _silent) = sink_with_scrape("ingest: {verify_identity: true}\n").await;
    let addr = sink.local_addr();
    let forged = one_series_report("default", "body-pod");
    let (status, _) = post_with(addr, &forged, &[(XFCC, &xfcc_of("intruder", "x"))]).await;
    assert_eq!(status, 403);
    assert!(!is_reported(&sink, "default", "body-pod"));
    let (status, _) = post_with(addr, &forged, &[(XFCC, &xfcc_of("default", "reviews"))]).await;
    assert_eq!(status, 204);
    assert!(is_reported(&sink, "default", "body-pod"));
    sink.shutdown().await;
}

#[tokio::test]
async fn verify_identity_accepts_only_a_caller_of_the_reports_namespace() {
    let receiver = Receiver::start(vec![]).await;
    let sink = start_sink(&format!(
        "ingest: {{tokens: [good-token], verify_identity: true}}\nremote_write:\n  - url: {}\n    send_metadata: false\n    queue: {{batch_send_deadline: 50ms, lanes: 1}}\n",
        receiver.url()
    ))
    .await;
    let addr = sink.local_addr();
    let auth = ("authorization", "Bearer good-token");
    let apps_report = one_series_report("apps", "sleep-1");

    // The token is checked first: a bad one is 401 whatever the identity.
    let (status, _) = post_with(
        addr,
        &apps_report,
        &[
            ("authorization", "Bearer bad"),
            (XFCC, &xfcc_of("apps", "sleep")),
        ],
    )
    .await;
    assert_eq!(status, 401);

    let (status, text) = post_with(addr, &apps_report, &[auth]).await;
    assert_eq!(status, 403);
    assert!(text.contains("no x-forwarded-client-cert header"), "{text}");

    let (status, text) =
        post_with(addr, &apps_report, &[auth, (XFCC, &xfcc_of("other", "x"))]).await;
    assert_eq!(status, 403);
    assert_eq!(
        text.trim_end(),
        "ingest.verify_identity: caller identity spiffe://cluster.local/ns/other/sa/x (namespace other) may not report for pod apps/sleep-1"
    );

    let no_spiffe =
        "By=spiffe://cluster.local/ns/meshtap-system/sa/meshtap-sink;Hash=9d;Subject=\"\";URI=";
    let (status, text) = post_with(addr, &apps_report, &[auth, (XFCC, no_spiffe)]).await;
    assert_eq!(status, 403);
    assert!(text.contains("has no spiffe:// URI"), "{text}");

    let (status, text) = post_with(
        addr,
        &apps_report,
        &[auth, (XFCC, "URI=\"spiffe://cluster.local")],
    )
    .await;
    assert_eq!(status, 403);
    assert!(text.contains("without its closing quote"), "{text}");

    // A caller's own earlier element naming the right namespace does not help.
    let forged = format!(
        "URI=spiffe://cluster.local/ns/apps/sa/sleep,{}",
        xfcc_of("other", "x")
    );
    let (status, _) = post_with(addr, &apps_report, &[auth, (XFCC, &forged)]).await;
    assert_eq!(status, 403);

    // Nothing refused reached the exporter.
    assert_eq!(
        self_metric(addr, "meshtap_sink_samples_ingested_total").await,
        Some(0.0)
    );

    let genuine = format!(
        "URI=spiffe://cluster.local/ns/other/sa/x,{}",
        xfcc_of("apps", "sleep")
    );
    let (status, text) = post_with(addr, &apps_report, &[auth, (XFCC, &genuine)]).await;
    assert_eq!(status, 204, "{text}");

    for (result, n) in [("accepted", 1.0), ("unauthorized", 1.0), ("forbidden", 5.0)] {
        let series = format!("meshtap_sink_reports_total{{result=\"{result}\"}}");
        assert_eq!(self_metric(addr, &series).await, Some(n), "{series}");
    }
    let delivered = wait_until(std::time::Duration::from_secs(10), || {
        receiver
            .accepted_series()
            .iter()
            .any(|(labels, _)| label(labels, "pod") == Some("sleep-1"))
    })
    .await;
    assert!(
        delivered,
        "the accepted report's series reached remote-write"
    );
    let pods: Vec<String> = receiver
        .accepted_series()
        .iter()
        .filter_map(|(labels, _)| label(labels, "namespace").map(str::to_owned))
        .collect();
    assert!(pods.iter().all(|ns| ns == "apps"), "{pods:?}");
    sink.shutdown().await;
    receiver.stop();
}

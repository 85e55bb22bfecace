//! Kubernetes pod discovery end to end: the stand-in API server ([`kube_api`]) answers the
//! watcher's pod list and watch in the API's JSON shapes; the sink scrapes the annotated pod's
//! fixture endpoint and remote-writes to a recording receiver; a DELETED event turns the pod's
//! series stale. The sidecar answers gzip-compressed, as Envoy does when asked.

mod common;

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use common::*;
use kube_api::{Kind, KubeApi};
use meshtap_remotewrite::series::is_stale_marker;
use meshtap_test_support::kube_api;

const BODY: &str = "\
# TYPE envoy_server_live gauge
envoy_server_live{} 1
# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{cluster_name=\"xds-grpc\"} 3
";

/// The sidecar endpoint: gzip when the scraper accepts it (the test fails otherwise).
async fn sidecar_metrics(headers: axum::http::HeaderMap) -> Response {
    let accepts_gzip = headers
        .get("accept-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("gzip"));
    if !accepts_gzip {
        return (axum::http::StatusCode::NOT_ACCEPTABLE, "gzip expected").into_response();
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, BODY.as_bytes()).unwrap();
    (
        [
            ("content-type", "text/plain; version=0.0.4"),
            ("content-encoding", "gzip"),
        ],
        encoder.finish().unwrap(),
    )
        .into_response()
}

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_pods_are_scraped_until_deleted() {
    let receiver = Receiver::start(vec![]).await;
    let sidecar = serve(Router::new().route("/stats/prometheus", get(sidecar_metrics))).await;
    let annotated = format!(
        r#"{{"prometheus.io/scrape":"true","prometheus.io/port":"{}","prometheus.io/path":"/stats/prometheus"}}"#,
        sidecar.port()
    );
    let api = KubeApi::start().await;
    api.apply(kube_api::pod("reviews-v1-1", &annotated, "127.0.0.1"));
    api.apply(kube_api::pod("ratings-v1-1", "{}", "127.0.0.2"));
    let yaml = format!(
        "remote_write:\n  - url: {}\n    queue: {{batch_send_deadline: 50ms, lanes: 1}}\nscrape:\n  interval: 200ms\n  jobs:\n    - name: integrations/istio\n      kubernetes_sd: {{api_server: '{}'}}\n",
        receiver.url(),
        api.url()
    );
    let sink = start_sink(&yaml).await;

    let live = |stale: bool| {
        receiver
            .accepted_series()
            .into_iter()
            .any(|(labels, sample)| {
                label(&labels, "__name__") == Some("envoy_server_live")
                    && is_stale_marker(sample.value) == stale
            })
    };
    assert!(
        wait_until(Duration::from_secs(20), || live(false)).await,
        "the annotated pod was never scraped"
    );
    let series = receiver.accepted_series();
    let (labels, sample) = series
        .iter()
        .find(|(l, _)| label(l, "__name__") == Some("envoy_server_live"))
        .unwrap();
    assert_eq!(sample.value, 1.0);
    assert_eq!(label(labels, "namespace"), Some("default"));
    assert_eq!(label(labels, "pod"), Some("reviews-v1-1"));
    assert_eq!(label(labels, "container"), Some("istio-proxy"));
    assert_eq!(label(labels, "job"), Some("integrations/istio"));
    assert_eq!(
        label(labels, "instance"),
        Some(sidecar.to_string().as_str())
    );
    let stage = sink.scrape().expect("scrape stage");
    let targets = stage.targets();
    assert_eq!(targets.len(), 1, "the unannotated pod is not a target");
    assert_eq!(targets[0].url, format!("http://{sidecar}/stats/prometheus"));

    // The pod is deleted: its series (up included) get stale markers and the target stops.
    api.delete(Kind::Pod, "default", "reviews-v1-1");
    assert!(
        wait_until(Duration::from_secs(20), || live(true)).await,
        "no stale marker after the pod was deleted"
    );
    assert!(receiver
        .accepted_series()
        .iter()
        .any(|(l, s)| { label(l, "__name__") == Some("up") && is_stale_marker(s.value) }));
    assert!(stage.targets().is_empty());
    sink.shutdown().await;
}

//! The scrape stage end to end: fixture bodies in the shape of Istio's output (written for
//! these tests) are served from 127.0.0.1, the sink scrapes them and remote-writes into a real
//! Prometheus, and PromQL reads back labels, values, `up` and staleness; a pod the filter
//! reports keeps a single `istio_requests_total`.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use common::*;
use meshtap_test_support::prometheus::Prometheus;
use serde_json::Value;

/// An istiod `:15014/metrics` body: Go text format with HELP/TYPE.
const ISTIOD: &str = "\
# HELP pilot_xds Number of endpoints connected to this pilot using XDS.
# TYPE pilot_xds gauge
pilot_xds{version=\"1.14.3\"} 4
# HELP pilot_xds_pushes Pilot build and send errors for lds, rds, cds and eds.
# TYPE pilot_xds_pushes counter
pilot_xds_pushes{type=\"cds\"} 31
pilot_xds_pushes{type=\"eds\"} 57
pilot_xds_pushes{type=\"lds\"} 31
pilot_xds_pushes{type=\"rds\"} 29
# HELP pilot_proxy_convergence_time Delay in seconds between config change and a proxy receiving all required configuration.
# TYPE pilot_proxy_convergence_time histogram
pilot_proxy_convergence_time_bucket{le=\"0.1\"} 40
pilot_proxy_convergence_time_bucket{le=\"1\"} 44
pilot_proxy_convergence_time_bucket{le=\"+Inf\"} 45
pilot_proxy_convergence_time_sum 3.5
pilot_proxy_convergence_time_count 45
";

/// A sidecar's merged `:15020/stats/prometheus` body: istio-agent, then Envoy (with its
/// `{}` and raw values), then the application's metrics.
fn sidecar_body(with_retry_series: bool) -> String {
    let mut body = String::from(
        "\
# HELP istio_agent_pilot_xds_pushes Pilot build and send errors for lds, rds, cds and eds.
# TYPE istio_agent_pilot_xds_pushes counter
istio_agent_pilot_xds_pushes{type=\"cds\"} 2
# TYPE envoy_cluster_upstream_rq_total counter
envoy_cluster_upstream_rq_total{cluster_name=\"outbound|9080||ratings.default.svc.cluster.local\"} 17
envoy_cluster_upstream_rq_total{cluster_name=\"xds-grpc\"} 3
",
    );
    if with_retry_series {
        body.push_str(
            "# TYPE envoy_cluster_upstream_rq_retry counter\nenvoy_cluster_upstream_rq_retry{cluster_name=\"xds-grpc\"} 1\n",
        );
    }
    body.push_str(
        "\
# TYPE envoy_server_live gauge
envoy_server_live{} 1
# TYPE istio_requests_total counter
istio_requests_total{response_code=\"200\",reporter=\"destination\",source_workload=\"productpage-v1\",destination_service=\"reviews.default.svc.cluster.local\"} 999
# HELP reviews_requests_served_total Requests the reviews app served.
# TYPE reviews_requests_served_total counter
reviews_requests_served_total{path=\"/reviews\"} 42
",
    );
    body
}

/// What a fixture server answers.
#[derive(Clone)]
enum Serve {
    Body(String),
    Fail,
}

#[derive(Clone)]
struct Fixture {
    serve: Arc<Mutex<Serve>>,
    addr: SocketAddr,
    timeout_headers: Arc<Mutex<Vec<String>>>,
}

async fn answer(State(fixture): State<Fixture>, headers: HeaderMap) -> Response {
    if let Some(t) = headers.get("x-prometheus-scrape-timeout-seconds") {
        fixture
            .timeout_headers
            .lock()
            .unwrap()
            .push(t.to_str().unwrap().to_owned());
    }
    let serve = fixture.serve.lock().unwrap().clone();
    match serve {
        Serve::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Serve::Body(body) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response(),
    }
}

impl Fixture {
    async fn start(path: &'static str, body: String) -> Fixture {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fixture = Fixture {
            serve: Arc::new(Mutex::new(Serve::Body(body))),
            addr: listener.local_addr().unwrap(),
            timeout_headers: Arc::default(),
        };
        let app = Router::new()
            .route(path, get(answer))
            .with_state(fixture.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fixture
    }

    fn set(&self, serve: Serve) {
        *self.serve.lock().unwrap() = serve;
    }
}

/// Polls an instant query (now) until `done` holds, for at most 30 s; returns the last result.
async fn wait_query(
    prometheus: &Arc<Prometheus>,
    promql: &str,
    done: impl Fn(&[(Value, f64)]) -> bool + Send + 'static,
) -> Vec<(Value, f64)> {
    let prometheus = prometheus.clone();
    let promql = promql.to_owned();
    tokio::task::spawn_blocking(move || {
        let parse = |r: &Value| -> Vec<(Value, f64)> {
            r.as_array()
                .expect("a vector")
                .iter()
                .map(|s| {
                    (
                        s["metric"].clone(),
                        s["value"][1].as_str().unwrap().parse().unwrap(),
                    )
                })
                .collect()
        };
        let last = prometheus.wait_for(&promql, Duration::from_secs(30), |r| done(&parse(r)));
        parse(&last)
    })
    .await
    .unwrap()
}

fn one(result: &[(Value, f64)]) -> bool {
    result.len() == 1
}

fn sink_yaml(prometheus: &Prometheus, jobs: &str) -> String {
    format!(
        "remote_write:\n  - url: {}\n    queue: {{batch_send_deadline: 50ms, lanes: 1}}\nscrape:\n  interval: 300ms\n  timeout: 2s\n  jobs:\n{jobs}",
        prometheus.write_url()
    )
}

/// Posts a filter report of pod `default/<pod>` with one `istio_requests_total` series, named
/// by the `x-meshtap-pod` header as the filter does; the sink must accept it.
async fn post_pod_report(sink: &meshtap_sink::RunningSink, pod: &str, value: f64) {
    let ts = now_ms();
    let report = report(
        "default",
        pod,
        1000,
        ts,
        vec![requests_family(vec![(
            http_values("reviews.default.svc.cluster.local", "200", "destination"),
            value,
        )])],
    );
    let status = reqwest::Client::new()
        .post(format!(
            "http://{}{}",
            sink.local_addr(),
            meshtap_report::REPORT_PATH
        ))
        .header("content-type", meshtap_report::CONTENT_TYPE)
        .header("content-encoding", meshtap_report::CONTENT_ENCODING)
        .header(meshtap_report::POD_HEADER, format!("default/{pod}"))
        .body(meshtap_report::encode(&report))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_series_arrive_with_target_labels_and_go_stale() {
    let prometheus = Arc::new(Prometheus::start());
    let istiod = Fixture::start("/metrics", ISTIOD.to_owned()).await;
    let sidecar = Fixture::start("/stats/prometheus", sidecar_body(true)).await;
    let jobs = format!(
        "    - name: istiod\n      static_configs: [{{targets: ['{}']}}]\n    - name: integrations/istio\n      metrics_path: /stats/prometheus\n      static_configs: [{{targets: ['{}'], labels: {{namespace: default, pod: reviews-v1-1, container: istio-proxy}}}}]\n",
        istiod.addr, sidecar.addr
    );
    let sink = start_sink(&sink_yaml(&prometheus, &jobs)).await;

    let cds = wait_query(&prometheus, "pilot_xds_pushes{type=\"cds\"}", one).await;
    assert_eq!(cds.len(), 1, "{cds:?}");
    assert_eq!(cds[0].1, 31.0);
    assert_eq!(cds[0].0["job"], "istiod");
    assert_eq!(cds[0].0["instance"], istiod.addr.to_string());
    let xds = wait_query(&prometheus, "pilot_xds", one).await;
    assert_eq!(xds[0].1, 4.0);
    assert_eq!(xds[0].0["version"], "1.14.3");
    let p = wait_query(
        &prometheus,
        "histogram_quantile(0.5, pilot_proxy_convergence_time_bucket)",
        one,
    )
    .await;
    assert!((p[0].1 - 0.05625).abs() < 1e-9, "{p:?}");

    let envoy = wait_query(
        &prometheus,
        "envoy_cluster_upstream_rq_total{cluster_name=\"xds-grpc\"}",
        one,
    )
    .await;
    assert_eq!(envoy[0].1, 3.0);
    let labels = &envoy[0].0;
    assert_eq!(labels["job"], "integrations/istio");
    assert_eq!(labels["namespace"], "default");
    assert_eq!(labels["pod"], "reviews-v1-1");
    assert_eq!(labels["container"], "istio-proxy");
    assert_eq!(labels["instance"], sidecar.addr.to_string());
    let app = wait_query(&prometheus, "reviews_requests_served_total", one).await;
    assert_eq!(app[0].1, 42.0);
    assert_eq!(app[0].0["path"], "/reviews");
    assert_eq!(app[0].0["pod"], "reviews-v1-1");
    let live = wait_query(&prometheus, "envoy_server_live", one).await;
    assert_eq!(live[0].1, 1.0);
    // No filter reports this pod: its own istio_requests_total is kept.
    let istio = wait_query(&prometheus, "istio_requests_total", one).await;
    assert_eq!(istio[0].1, 999.0);
    let up = wait_query(&prometheus, "up", |r| r.len() == 2).await;
    assert!(up.iter().all(|(_, v)| *v == 1.0), "{up:?}");
    let scraped = wait_query(&prometheus, "scrape_samples_scraped{job=\"istiod\"}", one).await;
    assert_eq!(scraped[0].1, 10.0);
    let added = wait_query(&prometheus, "scrape_series_added{job=\"istiod\"}", |r| {
        r.len() == 1 && r[0].1 == 0.0
    })
    .await;
    assert_eq!(added[0].1, 0.0, "later scrapes add no series");

    // A series missing from the next scrape vanishes.
    sidecar.set(Serve::Body(sidecar_body(false)));
    let retry = wait_query(&prometheus, "envoy_cluster_upstream_rq_retry", |r| {
        r.is_empty()
    })
    .await;
    assert!(retry.is_empty(), "{retry:?}");
    assert_eq!(
        wait_query(&prometheus, "envoy_server_live", one)
            .await
            .len(),
        1
    );

    // istiod dies: up goes to 0 and its series vanish.
    istiod.set(Serve::Fail);
    let down = wait_query(&prometheus, "up{job=\"istiod\"}", |r| {
        r.len() == 1 && r[0].1 == 0.0
    })
    .await;
    assert_eq!(down[0].1, 0.0, "{down:?}");
    let gone = wait_query(&prometheus, "pilot_xds_pushes", |r| r.is_empty()).await;
    assert!(gone.is_empty(), "{gone:?}");

    // The sidecar target goes away: all its series, up included, vanish.
    let stage = sink.scrape().expect("scrape stage running");
    stage.set_targets("integrations/istio", vec![]);
    let gone = wait_query(&prometheus, "{job=\"integrations/istio\"}", |r| {
        r.is_empty()
    })
    .await;
    assert!(gone.is_empty(), "{gone:?}");
    assert_eq!(stage.targets().len(), 1);

    let headers = istiod.timeout_headers.lock().unwrap().clone();
    assert!(!headers.is_empty());
    assert!(
        headers.iter().all(|h| h == "0.3"),
        "timeout capped at the 300ms interval: {headers:?}"
    );
    sink.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_the_filter_reports_keeps_one_istio_requests_total() {
    let prometheus = Arc::new(Prometheus::start());
    let sidecar = Fixture::start("/stats/prometheus", sidecar_body(false)).await;
    // The scraped pod is the reported pod: same namespace, pod, instance and job.
    let jobs = format!(
        "    - name: integrations/istio\n      metrics_path: /stats/prometheus\n      static_configs: [{{targets: ['{}'], labels: {{namespace: default, pod: reviews-a}}}}]\n      relabel_configs:\n        - {{target_label: instance, replacement: '10.1.2.3:15020'}}\n",
        sidecar.addr
    );
    let sink = start_sink(&sink_yaml(&prometheus, &jobs)).await;
    let scraped = wait_query(&prometheus, "istio_requests_total", one).await;
    assert_eq!(scraped[0].1, 999.0, "scraped before any report");

    post_pod_report(&sink, "reviews-a", 7.0).await;
    let merged = wait_query(&prometheus, "istio_requests_total", |r| {
        r.len() == 1 && r[0].1 == 7.0
    })
    .await;
    assert_eq!(
        merged.len(),
        1,
        "duplicate istio_requests_total: {merged:?}"
    );
    assert_eq!(merged[0].1, 7.0);
    let labels = &merged[0].0;
    assert_eq!(labels["instance"], "10.1.2.3:15020");
    assert_eq!(labels["job"], "integrations/istio");
    // Envoy's and the app's series keep flowing with the filter series' target labels.
    let envoy = wait_query(&prometheus, "envoy_server_live", one).await;
    for name in ["namespace", "pod", "instance", "job"] {
        assert_eq!(envoy[0].0[name], labels[name], "{name}");
    }
    sink.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_prefer_scrape_a_scraped_pod_keeps_its_scraped_istio_requests_total() {
    let prometheus = Arc::new(Prometheus::start());
    let sidecar = Fixture::start("/stats/prometheus", sidecar_body(false)).await;
    let jobs = format!(
        "    - name: integrations/istio\n      metrics_path: /stats/prometheus\n      static_configs: [{{targets: ['{}'], labels: {{namespace: default, pod: reviews-a}}}}]\n  merge: {{prefer: scrape}}\n",
        sidecar.addr
    );
    let sink = start_sink(&sink_yaml(&prometheus, &jobs)).await;
    // The scraped pod reports too, then a pod nobody scrapes (same sink, same queue: once the
    // second report's series is in Prometheus, the first one's would be as well).
    post_pod_report(&sink, "reviews-a", 7.0).await;
    post_pod_report(&sink, "ratings-b", 5.0).await;
    let unscraped = wait_query(&prometheus, "istio_requests_total{pod=\"ratings-b\"}", one).await;
    assert_eq!(
        unscraped[0].1, 5.0,
        "a pod nobody scrapes keeps its filter series"
    );
    let scraped = wait_query(
        &prometheus,
        "istio_requests_total{pod=\"reviews-a\"}",
        |r| r.len() == 1 && r[0].1 == 999.0,
    )
    .await;
    assert_eq!(
        scraped.len(),
        1,
        "the filter's series of a scraped pod were kept: {scraped:?}"
    );
    assert_eq!(scraped[0].1, 999.0);
    assert_eq!(scraped[0].0["instance"], sidecar.addr.to_string());
    // The filter's non-series output is unaffected: the report was accepted and counted.
    assert_eq!(
        self_metric(
            sink.local_addr(),
            "meshtap_sink_reports_total{result=\"accepted\"}"
        )
        .await,
        Some(2.0)
    );
    sink.shutdown().await;
}

#[tokio::test]
async fn scraped_families_go_out_as_remote_write_metadata() {
    let istiod = Fixture::start("/metrics", ISTIOD.to_owned()).await;
    let receiver = Receiver::start(vec![]).await;
    let sink = start_sink(&format!(
        "remote_write:\n  - url: {}\n    queue: {{batch_send_deadline: 50ms, lanes: 1}}\nscrape:\n  interval: 300ms\n  jobs:\n    - name: istiod\n      static_configs: [{{targets: ['{}']}}]\n",
        receiver.url(),
        istiod.addr
    ))
    .await;
    let metadata = || -> Vec<(String, i32, String)> {
        receiver
            .received()
            .into_iter()
            .flat_map(|r| r.request.metadata)
            .map(|m| (m.metric_family_name, m.r#type, m.help))
            .collect()
    };
    let sent = wait_until(Duration::from_secs(10), || {
        metadata()
            .iter()
            .any(|(name, _, _)| name == "pilot_proxy_convergence_time")
    })
    .await;
    assert!(sent, "{:?}", metadata());
    let all = metadata();
    let find = |family: &str| all.iter().find(|(name, _, _)| name == family).cloned();
    // Remote-write types: COUNTER = 1, GAUGE = 2, HISTOGRAM = 3.
    assert_eq!(
        find("pilot_xds_pushes"),
        Some((
            "pilot_xds_pushes".into(),
            1,
            "Pilot build and send errors for lds, rds, cds and eds.".into()
        ))
    );
    assert_eq!(find("pilot_xds").map(|m| m.1), Some(2));
    assert_eq!(find("pilot_proxy_convergence_time").map(|m| m.1), Some(3));
    sink.shutdown().await;
}

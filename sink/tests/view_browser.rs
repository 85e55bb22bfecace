//! The live view in a real browser: a sink fed with filter reports (requests and access-log
//! records, from sidecars and from an ambient waypoint), a scraped istiod-shaped loopback
//! server, a scraped ztunnel-shaped one and a tailed CRI log file; then Debian's headless
//! chromium, driven by `browser/view.mjs` (playwright-core), checks the services' rates, the
//! graph's edges, TCP traffic, the ambient part (the waypoint's service and edge marked ambient
//! and preferred over the client sidecar's report of the same requests; ztunnel's workload
//! pairs, each counted by one ztunnel), istiod's pushes, the log lines and their filters, and
//! that the page logs no error. The screenshot lands in the target dir.
//!
//! Skipped (with a message) only when chromium, node or playwright-core is missing and
//! `MESHTAP_REQUIRE_BROWSER` is unset; `cargo xtask test` sets it.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use meshtap_report::schema::{
    HTTP_LABELS, TCP_CLOSED, TCP_LABELS, TCP_OPENED, TCP_RECEIVED_BYTES, TCP_SENT_BYTES,
};
use meshtap_report::{AccessLogRecord, MetricFamily, MetricKind, Series};
use meshtap_test_support::browser;
use meshtap_test_support::loki::LokiReceiver;

const REVIEWS: &str = "reviews.default.svc.cluster.local";
const RATINGS: &str = "ratings.default.svc.cluster.local";
const MONGODB: &str = "mongodb.default.svc.cluster.local";
/// Served through an ambient waypoint.
const DETAILS: &str = "details.default.svc.cluster.local";
const BOUNDS: [f64; 3] = [10.0, 50.0, 250.0];
const BROWSER_TIMEOUT: Duration = Duration::from_secs(150);

/// HTTP label values with the source workload and its namespace set.
fn edge_values(source: &str, service: &str, code: &str, reporter: &str) -> Vec<String> {
    let mut values = http_values(service, code, reporter);
    for (name, value) in HTTP_LABELS.iter().zip(values.iter_mut()) {
        match *name {
            "source_workload" => *value = source.to_owned(),
            "source_workload_namespace" => *value = "default".to_owned(),
            _ => {}
        }
    }
    values
}

/// The `n`th report of a pod that saw `source` call `service` as `reporter`, with a 5xx share.
fn pod_report(
    (pod, source, service, reporter): (&str, &str, &str, &str),
    n: u64,
    start_ms: i64,
) -> meshtap_report::Report {
    let ok = 20.0 * n as f64;
    let errors = n as f64;
    let buckets = vec![12 * n, 6 * n, 2 * n, 0];
    let mut r = report(
        "default",
        pod,
        start_ms,
        now_ms(),
        vec![
            requests_family(vec![
                (edge_values(source, service, "200", reporter), ok),
                (edge_values(source, service, "503", reporter), errors),
            ]),
            histogram_family(
                "istio_request_duration_milliseconds",
                &BOUNDS,
                vec![(edge_values(source, service, "200", reporter), buckets, 0.0)],
            ),
        ],
    );
    r.access_logs = vec![access_record(service, 200), access_record(service, 503)];
    r
}

fn access_record(service: &str, status: u32) -> AccessLogRecord {
    AccessLogRecord {
        start_time_ns: now_ms() * 1_000_000,
        method: "GET".into(),
        path: "/reviews/0".into(),
        protocol: "HTTP/1.1".into(),
        response_code: status,
        duration_ms: Some(4),
        authority: format!("{}:9080", service.split('.').next().unwrap()),
        upstream_cluster: format!("inbound|9080||{service}"),
        ..Default::default()
    }
}

/// The `n`th report of the mongodb pod's network plugin: TCP counters from ratings.
fn tcp_report(n: u64, start_ms: i64) -> meshtap_report::Report {
    let values: Vec<String> = TCP_LABELS
        .iter()
        .map(|name| match *name {
            "reporter" => "destination".to_owned(),
            "destination_service" => MONGODB.to_owned(),
            "source_workload" => "ratings-v1".to_owned(),
            _ => "x".to_owned(),
        })
        .collect();
    let family = |name: &str, per_report: f64| MetricFamily {
        name: name.into(),
        kind: MetricKind::Counter as i32,
        label_names: TCP_LABELS.iter().map(|s| s.to_string()).collect(),
        series: vec![Series {
            label_values: values.clone(),
            value: per_report * n as f64,
            ..Default::default()
        }],
        ..Default::default()
    };
    let families = vec![
        family(TCP_SENT_BYTES, 48_000.0),
        family(TCP_RECEIVED_BYTES, 9_000.0),
        family(TCP_OPENED, 2.0),
        family(TCP_CLOSED, 2.0),
    ];
    report("default", "mongodb-v1-1", start_ms, now_ms(), families)
}

/// An istiod `:15014/metrics` whose counters grow with every scrape.
async fn start_istiod() -> SocketAddr {
    let scrapes = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = scrapes.fetch_add(1, Ordering::Relaxed) + 1;
            async move {
                format!(
                    "# TYPE pilot_xds_pushes counter\n\
                     pilot_xds_pushes{{type=\"cds\"}} {}\n\
                     pilot_xds_pushes{{type=\"eds\"}} {}\n\
                     pilot_xds_pushes{{type=\"lds\"}} {}\n\
                     # TYPE pilot_xds gauge\n\
                     pilot_xds{{version=\"1.22.0\"}} 3\n\
                     # TYPE pilot_total_xds_rejects counter\n\
                     pilot_total_xds_rejects 1\n\
                     # TYPE pilot_xds_write_timeout counter\n\
                     pilot_xds_write_timeout 0\n\
                     # TYPE pilot_proxy_convergence_time histogram\n\
                     pilot_proxy_convergence_time_bucket{{le=\"0.1\"}} {}\n\
                     pilot_proxy_convergence_time_bucket{{le=\"1\"}} {}\n\
                     pilot_proxy_convergence_time_bucket{{le=\"+Inf\"}} {}\n\
                     pilot_proxy_convergence_time_sum {n}\n\
                     pilot_proxy_convergence_time_count {}\n",
                    3 * n,
                    10 * n,
                    2 * n,
                    5 * n,
                    6 * n,
                    6 * n,
                    6 * n
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// ztunnel's labels of one connection leg (its order, locality labels last), as the
/// `reporter` side saw `source` → `destination` for `service`, all in namespace bookinfo.
fn ztunnel_labels(reporter: &str, source: &str, destination: &str, service: &str) -> String {
    let peer = |side: &str, workload: &str| {
        format!(
            "{side}_workload=\"{workload}\",{side}_canonical_service=\"{workload}\",{side}_canonical_revision=\"v1\",{side}_workload_namespace=\"bookinfo\",{side}_principal=\"spiffe://cluster.local/ns/bookinfo/sa/{workload}\",{side}_app=\"{workload}\",{side}_version=\"v1\",{side}_cluster=\"Kubernetes\""
        )
    };
    format!(
        "reporter=\"{reporter}\",{},destination_service=\"{service}.bookinfo.svc.cluster.local\",destination_service_namespace=\"bookinfo\",destination_service_name=\"{service}\",{},request_protocol=\"tcp\",response_flags=\"-\",connection_security_policy=\"mutual_tls\",source_region=\"r1\",source_zone=\"z1\",destination_region=\"r1\",destination_zone=\"z2\"",
        peer("source", source),
        peer("destination", destination)
    )
}

/// A ztunnel `:15020/metrics` whose `istio_tcp_*` counters grow with every scrape (2
/// connections, a fifth of the response bytes as request bytes): both nodes' ztunnels' legs of
/// productpage → reviews (the server's counts 90 % of the client's bytes, so the chosen side
/// shows) and the client's leg of curl → the waypoint.
async fn start_ztunnel() -> SocketAddr {
    let scrapes = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let n = scrapes.fetch_add(1, Ordering::Relaxed) + 1;
            let legs = [
                (
                    "source",
                    "productpage-v1",
                    "reviews-v1",
                    "reviews",
                    1000_u64,
                ),
                (
                    "destination",
                    "productpage-v1",
                    "reviews-v1",
                    "reviews",
                    900,
                ),
                ("source", "curl", "waypoint", "details", 300),
            ];
            let mut body = String::new();
            let families = [
                ("istio_tcp_connections_opened", 0),
                ("istio_tcp_received_bytes", 5),
                ("istio_tcp_sent_bytes", 1),
            ];
            for (family, bytes_divisor) in families {
                body.push_str(&format!("# TYPE {family} counter\n"));
                for (reporter, source, destination, service, bytes) in legs {
                    let labels = ztunnel_labels(reporter, source, destination, service);
                    let per_scrape = bytes.checked_div(bytes_divisor).unwrap_or(2);
                    body.push_str(&format!("{family}_total{{{labels}}} {}\n", per_scrape * n));
                }
            }
            body.push_str("# EOF\n");
            async move { body }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A kubelet pod log of the ratings sidecar with two access-log lines (200 and 404).
fn write_pod_log(root: &Path) {
    let dir = root.join("pods/default_ratings-v1-5f9c_0a1b/istio-proxy");
    std::fs::create_dir_all(&dir).unwrap();
    let line = |status: u32| {
        let now = httpdate_rfc3339();
        format!(
            "{now} stdout F [{now}] \"GET /ratings/0 HTTP/1.1\" {status} - via_upstream - \"-\" 0 48 2 1 \"-\" \"curl/8\" \"r-{status}\" \"ratings:9080\" \"10.1.0.7:9080\" inbound|9080||{RATINGS} 127.0.0.6:40000 10.1.0.7:9080 10.1.0.5:51000 - default\n"
        )
    };
    std::fs::write(dir.join("0.log"), line(200) + &line(404)).unwrap();
}

/// The current time as RFC 3339 with milliseconds (CRI and Envoy timestamps).
fn httpdate_rfc3339() -> String {
    let mut out = String::new();
    meshtap_logformat::write_rfc3339_millis(now_ms() * 1_000_000, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_shows_the_mesh_in_chromium() {
    if !browser::require_or_skip("the_live_view_shows_the_mesh_in_chromium") {
        return;
    }
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("view_browser");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    write_pod_log(&work);
    let istiod = start_istiod().await;
    let ztunnel = start_ztunnel().await;
    let loki = LokiReceiver::start(vec![]).await;
    let sink = start_sink(&format!(
        "view: {{window: 10s, trend_step: 500ms}}\n\
         scrape:\n  interval: 300ms\n  jobs:\n    - name: istiod\n      static_configs: [{{targets: ['{istiod}']}}]\n\
         \x20   - name: ztunnel\n      static_configs: [{{targets: ['{ztunnel}'], labels: {{app: ztunnel}}}}]\n\
         log_files:\n  include: {root}/pods/*/istio-proxy/*.log\n  positions_file: {root}/positions.json\n  poll_interval: 100ms\n\
         logs:\n  - name: loki\n    url: {loki}\n",
        root = work.display(),
        loki = loki.url(),
    ))
    .await;
    let addr = sink.local_addr();
    let feeder = tokio::spawn(async move {
        let start_ms = now_ms();
        for n in 1..=600u64 {
            for reporting in [
                ("reviews-v1-1", "productpage-v1", REVIEWS, "destination"),
                ("ratings-v1-1", "reviews-v1", RATINGS, "destination"),
                // The same requests to details, from the client's sidecar and the waypoint.
                ("productpage-v1-1", "productpage-v1", DETAILS, "source"),
                ("waypoint-6f8d-1", "productpage-v1", DETAILS, "waypoint"),
            ] {
                let r = pod_report(reporting, n, start_ms);
                assert_eq!(post_report(addr, &r, None).await.0, 204);
            }
            let r = tcp_report(n, start_ms);
            assert_eq!(post_report(addr, &r, None).await.0, 204);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("live-view.png");
    let expect = serde_json::json!({
        "services": [REVIEWS, RATINGS, DETAILS],
        "edges": [["productpage-v1.default", REVIEWS], ["reviews-v1.default", RATINGS]],
        "ambient_services": [DETAILS],
        "ambient_edges": [["productpage-v1.default", DETAILS]],
        "ambient_pairs": [
            ["productpage-v1.bookinfo", "reviews-v1.bookinfo", "destination"],
            ["curl.bookinfo", "waypoint.bookinfo", "source"],
        ],
        "push_types": ["cds", "eds", "lds"],
        "log_service": RATINGS,
        "tcp_services": [MONGODB],
        "log_origins": ["filter", "file"],
        "scrape_jobs": ["istiod", "ztunnel"],
    });
    let (screenshot_path, browser_work) = (screenshot.clone(), work.clone());
    let url = format!("http://{addr}/");
    let checked = tokio::task::spawn_blocking(move || {
        browser::check_view(
            &url,
            &expect,
            &screenshot_path,
            &browser_work,
            BROWSER_TIMEOUT,
        )
    })
    .await
    .unwrap();
    feeder.abort();
    if let Err(failure) = checked {
        panic!("{failure}");
    }
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot too small"
    );
    eprintln!("screenshot: {}", screenshot.display());
    sink.shutdown().await;
}

//! Shared helpers of the sink's integration tests: synthetic reports, an in-process sink, and a
//! recording remote-write receiver that decodes bodies with its own message set.
//!
//! Everything listens on 127.0.0.1 and every wait is bounded.
#![allow(dead_code)]

pub mod ready_line;
pub mod sink_process;
pub mod tls_server;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use meshtap_report::schema::HTTP_LABELS;
use meshtap_report::{MetricFamily, MetricKind, Proxy, Report, Series};
use meshtap_sink::{RunningSink, SinkConfig};
use meshtap_test_support::counted_listener::{CountedListener, OpenConnections};
use prost::Message;

/// The receiver's own view of `prometheus.WriteRequest` (independent of the sink's).
#[derive(Clone, PartialEq, Message)]
pub struct RecvWriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<RecvTimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<RecvMetadata>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecvTimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<RecvLabel>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<RecvSample>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecvLabel {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecvSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecvMetadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// One request the receiver saw.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub headers: HeaderMap,
    pub request: RecvWriteRequest,
    /// The status the receiver answered.
    pub status: u16,
}

/// A scripted answer: status, extra headers, body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: vec![],
            body: String::new(),
        }
    }
}

#[derive(Default)]
struct ReceiverState {
    script: Mutex<VecDeque<Answer>>,
    /// While set, every request is answered with this status (after the script).
    refusing: Mutex<Option<u16>>,
    received: Mutex<Vec<Received>>,
}

/// A remote-write receiver on 127.0.0.1 that records decoded requests. It answers from its
/// script first, then 204.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
    open: OpenConnections,
    server: tokio::task::JoinHandle<()>,
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&body)
        .expect("body is snappy block data");
    let request = RecvWriteRequest::decode(raw.as_slice()).expect("body is a WriteRequest");
    let answer = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| state.refusing.lock().unwrap().map(Answer::status))
        .unwrap_or_else(|| Answer::status(204));
    state.received.lock().unwrap().push(Received {
        at: Instant::now(),
        headers,
        request,
        status: answer.status,
    });
    let mut response = (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
    for (name, value) in answer.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

impl Receiver {
    pub async fn start(script: Vec<Answer>) -> Receiver {
        let state = Arc::new(ReceiverState {
            script: Mutex::new(script.into()),
            refusing: Mutex::default(),
            received: Mutex::default(),
        });
        let app = Router::new()
            .route("/api/v1/push", post(receive))
            .with_state(state.clone());
        let (listener, open) = CountedListener::bind().await;
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            addr,
            state,
            open,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/api/v1/push", self.addr)
    }

    /// Answers every request with `status` from now on (`None`: accept again).
    pub fn refuse_with(&self, status: Option<u16>) {
        *self.state.refusing.lock().unwrap() = status;
    }

    /// Waits until no connection is open: once the sinks that wrote here are dead, every
    /// request they sent has been answered and recorded (see
    /// `meshtap_test_support::counted_listener`).
    pub async fn wait_until_idle(&self) {
        self.open.wait_until_none().await;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Requests carrying samples (not metadata-only).
    pub fn sample_requests(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| !r.request.timeseries.is_empty())
            .collect()
    }

    /// Every series of accepted requests, as (sorted label text, samples).
    pub fn accepted_series(&self) -> Vec<(Vec<(String, String)>, RecvSample)> {
        self.received()
            .into_iter()
            .filter(|r| r.status < 300)
            .flat_map(|r| r.request.timeseries)
            .flat_map(|ts| {
                let labels: Vec<(String, String)> =
                    ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
                ts.samples.into_iter().map(move |s| (labels.clone(), s))
            })
            .collect()
    }

    pub fn stop(self) {
        self.server.abort();
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Polls `check` every 20 ms for at most `limit`.
pub async fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// Starts a sink on 127.0.0.1:0 from a YAML document (no environment lookups).
pub async fn start_sink(yaml: &str) -> RunningSink {
    let mut config = SinkConfig::from_yaml(yaml, &|_| None).expect("test config is valid");
    config.listen = "127.0.0.1:0".parse().unwrap();
    RunningSink::start(&config).await.expect("sink starts")
}

/// Label values of an HTTP series (Istio's order), with a few set and `source_version` empty.
pub fn http_values(service: &str, code: &str, reporter: &str) -> Vec<String> {
    HTTP_LABELS
        .iter()
        .map(|name| match *name {
            "reporter" => reporter.to_owned(),
            "destination_service" => service.to_owned(),
            "destination_service_name" => service.split('.').next().unwrap().to_owned(),
            "response_code" => code.to_owned(),
            "source_workload" => "productpage-v1".to_owned(),
            "source_version" => String::new(),
            "request_protocol" => "http".to_owned(),
            _ => "x".to_owned(),
        })
        .collect()
}

/// A report of pod `namespace/pod` with the given families.
pub fn report(
    namespace: &str,
    pod: &str,
    start_ms: i64,
    ts_ms: i64,
    families: Vec<MetricFamily>,
) -> Report {
    Report {
        protocol_version: meshtap_report::PROTOCOL_VERSION,
        proxy: Some(Proxy {
            namespace: namespace.into(),
            pod: pod.into(),
            workload: "reviews-v1".into(),
            instance_ips: vec!["10.1.2.3".into(), "10.9.9.9".into()],
            ..Default::default()
        }),
        proxy_start_ms: start_ms,
        timestamp_ms: ts_ms,
        sequence: 1,
        // Long enough that no test pod is swept as silent unless a test shortens it.
        interval_ms: 60_000,
        families,
        ..Default::default()
    }
}

/// `istio_requests_total` with `(labels, value)` series.
pub fn requests_family(series: Vec<(Vec<String>, f64)>) -> MetricFamily {
    MetricFamily {
        name: "istio_requests_total".into(),
        kind: MetricKind::Counter as i32,
        help: "Total requests.".into(),
        label_names: HTTP_LABELS.iter().map(|s| s.to_string()).collect(),
        bounds: vec![],
        series: series
            .into_iter()
            .map(|(label_values, value)| Series {
                label_values,
                value,
                ..Default::default()
            })
            .collect(),
    }
}

/// A histogram family with `bounds` and `(labels, per-bucket counts, sum)` series.
pub fn histogram_family(
    name: &str,
    bounds: &[f64],
    series: Vec<(Vec<String>, Vec<u64>, f64)>,
) -> MetricFamily {
    MetricFamily {
        name: name.into(),
        kind: MetricKind::Histogram as i32,
        help: String::new(),
        label_names: HTTP_LABELS.iter().map(|s| s.to_string()).collect(),
        bounds: bounds.to_vec(),
        series: series
            .into_iter()
            .map(|(label_values, bucket_counts, sum)| Series {
                label_values,
                bucket_counts,
                sum,
                ..Default::default()
            })
            .collect(),
    }
}

/// Posts a report body to the sink; returns (status, body text).
pub async fn post_body(sink: SocketAddr, body: Vec<u8>, token: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("http://{sink}{}", meshtap_report::REPORT_PATH))
        .header("content-type", meshtap_report::CONTENT_TYPE)
        .header("content-encoding", meshtap_report::CONTENT_ENCODING)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("sink answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

pub async fn post_report(sink: SocketAddr, report: &Report, token: Option<&str>) -> (u16, String) {
    post_body(sink, meshtap_report::encode(report), token).await
}

/// GET a sink path; returns the body text.
pub async fn get_text(sink: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{sink}{path}"))
        .await
        .expect("sink answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The value of a self-metric line (exact series text) in `/metrics`.
pub async fn self_metric(sink: SocketAddr, series: &str) -> Option<f64> {
    let (_, text) = get_text(sink, "/metrics").await;
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.parse().unwrap())
}

/// Label map lookup.
pub fn label<'a>(labels: &'a [(String, String)], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Log lines written by `tracing` on this thread while the guard lives (a current-thread tokio
/// test runs the sink's tasks on this thread too).
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    pub fn start() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

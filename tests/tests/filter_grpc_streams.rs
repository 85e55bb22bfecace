//! The compiled filter under the host with a long gRPC stream: the stream stays open across
//! report ticks and sends messages between them, and every report carries exactly the messages
//! counted up to its tick (`istio_request_messages_total`, `istio_response_messages_total`),
//! the deltas adding up to the stream's total at its end, under one label set equal to the
//! stream's 20 peer labels. For both reporters (the client sidecar's `source`, whose peer is
//! known from the response on, so earlier messages wait; the server sidecar's `destination`),
//! with the filter counting frames and with Envoy's grpc_stats filter state.

use std::net::SocketAddr;
use std::time::Duration;

use meshtap_report::schema::{PEER_LABELS, REQUESTS_TOTAL, REQUEST_MESSAGES, RESPONSE_MESSAGES};
use meshtap_report::Report;
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::grpc_frames::frames;
use meshtap_tests::host::{
    Clock, HttpExchange, HttpHandle, HttpStep, NodeInfo, Proxy, ProxyConfig, VmStatus,
};
use meshtap_tests::sim::{OneCall, ReportReceiver};

const SINK_CLUSTER: &str = "outbound|9091||meshtap-sink.meshtap.svc.cluster.local";

const SCENARIO: &str = "
workloads:
  - {name: client-v1, namespace: apps, app: client, version: v1}
  - {name: echo-grpc, namespace: apps, app: echo, version: v1, port: 9000}
calls:
  - {from: client-v1, to: echo-grpc, count: 1, protocol: grpc}
";

/// One sidecar reporting every second to its own receiver.
struct Sidecar {
    proxy: Proxy,
    receiver: ReportReceiver,
}

impl Sidecar {
    fn start(node: NodeInfo) -> Sidecar {
        let receiver =
            ReportReceiver::start(SocketAddr::from(([127, 0, 0, 1], 0)), None, false).unwrap();
        let config = ProxyConfig {
            plugin_config: r#"{"report_interval": "1s", "report_timeout": "1s"}"#.into(),
            node,
            clock: Clock::manual_now(),
            clusters: vec![(SINK_CLUSTER.to_string(), receiver.addr())],
            ..ProxyConfig::default()
        };
        let mut proxy = Proxy::start(shared_module(), config).unwrap();
        // Until the VM leads and reports (it waits for a free lease first).
        for _ in 0..30 {
            if !receiver.reports().is_empty() {
                break;
            }
            proxy.advance(Duration::from_secs(1));
        }
        let logs = proxy.logs();
        assert!(!receiver.reports().is_empty(), "no report; logs: {logs:?}");
        Sidecar { proxy, receiver }
    }

    fn step(&mut self, stream: &HttpHandle, step: HttpStep<'_>) {
        let outcome = self.proxy.http_step(stream, step).unwrap();
        assert!(
            !outcome.bypassed && outcome.trapped.is_none(),
            "{outcome:?}"
        );
    }

    /// Moves time one report interval on (one tick) and returns the report of that tick.
    fn tick(&mut self) -> Report {
        let before = self.receiver.reports().len();
        self.proxy.advance(Duration::from_secs(1));
        for status in self.proxy.vm_statuses() {
            assert_eq!(status, VmStatus::Running, "logs: {:?}", self.proxy.logs());
        }
        let reports = self.receiver.reports();
        assert_eq!(reports.len(), before + 1, "one report per tick");
        reports.into_iter().max_by_key(|r| r.sequence).unwrap()
    }
}

/// The label values and value of the only series of `family`, if it has one.
fn only_series(report: &Report, family: &str) -> Option<(Vec<String>, f64)> {
    let family = report.families.iter().find(|f| f.name == family)?;
    assert_eq!(family.label_names, PEER_LABELS, "{}", family.name);
    assert!(family.series.len() <= 1, "one label set: {family:?}");
    let series = family.series.first()?;
    Some((series.label_values.clone(), series.value))
}

/// `(request, response)` message totals of a report, with their label set; `None` when the
/// report has no message series.
fn messages(report: &Report) -> Option<(Vec<String>, u64, u64)> {
    let request = only_series(report, REQUEST_MESSAGES);
    let response = only_series(report, RESPONSE_MESSAGES);
    let labels = request.as_ref().or(response.as_ref())?.0.clone();
    for (other, _) in request.iter().chain(response.iter()) {
        assert_eq!(other, &labels, "both families under the same labels");
    }
    let value = |s: Option<(Vec<String>, f64)>| s.map_or(0, |(_, v)| v as u64);
    Some((labels, value(request), value(response)))
}

/// A body chunk of `n` framed messages.
fn messages_chunk(n: usize) -> Vec<u8> {
    frames(&vec![40; n])
}

/// Runs the long stream through `sidecar`, checking each tick's report; `reporter` is the
/// expected `reporter` label (the server side, `destination`, knows its peer from the request
/// on; the client side from the response on).
fn long_stream(
    sidecar: &mut Sidecar,
    mut exchange: HttpExchange,
    grpc_stats: bool,
    reporter: &str,
) {
    exchange.grpc_stats_filter = grpc_stats;
    let what = format!("{reporter}, grpc_stats {grpc_stats}");
    let response = exchange.response.clone().expect("the call has a response");
    let peer_from_request = reporter == "destination";
    let (stream, opened) = sidecar.proxy.open_http(0, &exchange, false).unwrap();
    assert!(!opened.bypassed && opened.trapped.is_none(), "{opened:?}");

    // One request message, then a tick: the server knows its peer, the client not yet.
    sidecar.step(&stream, HttpStep::RequestBody(&messages_chunk(1), false));
    let first = messages(&sidecar.tick());
    if peer_from_request {
        assert_eq!(first.map(|m| (m.1, m.2)), Some((1, 0)), "{what}");
    } else {
        assert_eq!(first, None, "{what}: the messages wait for the peer");
    }

    // Two more, the response headers, a tick: 3 request messages either way.
    sidecar.step(&stream, HttpStep::RequestBody(&messages_chunk(2), false));
    sidecar.step(&stream, HttpStep::ResponseHeaders(&response.headers, false));
    let (labels, request, response_messages) = messages(&sidecar.tick()).expect(&what);
    assert_eq!((request, response_messages), (3, 0), "{what}");
    assert_eq!(labels[0], reporter, "{what}");

    // Two response messages, one split across two chunks.
    let two = messages_chunk(2);
    let (head, tail) = two.split_at(13);
    sidecar.step(&stream, HttpStep::ResponseBody(head, false));
    sidecar.step(&stream, HttpStep::ResponseBody(tail, false));
    let third = messages(&sidecar.tick()).expect(&what);
    assert_eq!(third, (labels.clone(), 3, 2), "{what}");

    // A tick without messages changes nothing.
    assert_eq!(messages(&sidecar.tick()), Some(third), "{what}");

    // The stream's last messages, its end, and the tick after it.
    sidecar.step(&stream, HttpStep::RequestBody(&messages_chunk(1), true));
    sidecar.step(&stream, HttpStep::ResponseBody(&messages_chunk(3), false));
    let trailers = [("grpc-status".to_string(), "0".to_string())];
    sidecar.step(&stream, HttpStep::ResponseTrailers(&trailers));
    let closed = sidecar.proxy.close_http(stream).unwrap();
    assert!(closed.trapped.is_none(), "{closed:?}");
    let last = sidecar.tick();
    assert_eq!(messages(&last), Some((labels.clone(), 4, 5)), "{what}");

    // The messages' labels are the stream's peer labels in istio_requests_total.
    let requests = last
        .families
        .iter()
        .find(|f| f.name == REQUESTS_TOTAL)
        .expect("requests_total");
    assert_eq!(requests.series.len(), 1, "{what}");
    assert_eq!(
        requests.series[0].label_values[..PEER_LABELS.len()],
        labels[..],
        "{what}"
    );
    assert_eq!(
        messages(&sidecar.tick()),
        Some((labels, 4, 5)),
        "{what}: nothing counted twice after the end"
    );
}

fn both_reporters(grpc_stats: bool) {
    let call = OneCall::from_yaml(SCENARIO, 10, 100, 200);
    let mut client = Sidecar::start(call.client_node.clone());
    long_stream(&mut client, call.client.clone(), grpc_stats, "source");
    let mut server = Sidecar::start(call.server_node.clone());
    let server_view = call.server.clone().expect("the server sees the call");
    long_stream(&mut server, server_view, grpc_stats, "destination");
}

#[test]
fn messages_of_an_open_stream_are_reported_every_tick_by_counting_frames() {
    both_reporters(false);
}

#[test]
fn messages_of_an_open_stream_are_reported_every_tick_from_grpc_stats() {
    both_reporters(true);
}

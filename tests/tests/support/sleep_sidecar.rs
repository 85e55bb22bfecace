//! The sleep-v1 sidecar of a two-workload mesh, running the compiled filter on a manual clock,
//! with its outbound call to httpbin answered with any response code (each code is its own
//! label set). Shared by the eviction tests; it must not assert anything.

use std::net::SocketAddr;

use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::{Clock, HttpExchange, Phase, Proxy, ProxyConfig};
use meshtap_tests::sim::OneCall;

const SINK_CLUSTER: &str = "outbound|9091||meshtap-sink.meshtap.svc.cluster.local";

const SCENARIO: &str = "
workloads:
  - {name: sleep-v1, namespace: apps, app: sleep, version: v1}
  - {name: httpbin-v1, namespace: apps, app: httpbin, version: v1, port: 8000}
calls:
  - {from: sleep-v1, to: httpbin-v1, count: 1, latency_ms: 10, request_bytes: 100, response_bytes: 200}
";

/// The sidecar with `workers` workers reporting to `sink`, its clock, and the outbound exchange
/// answered with a given code.
pub fn start(
    workers: usize,
    sink: SocketAddr,
    plugin_config: &str,
) -> (Proxy, Clock, impl Fn(u16) -> HttpExchange) {
    let call = OneCall::from_yaml(SCENARIO, 10, 100, 200);
    let clock = Clock::manual_now();
    let config = ProxyConfig {
        plugin_config: plugin_config.to_string(),
        node: call.client_node,
        workers,
        clock: clock.clone(),
        clusters: vec![(SINK_CLUSTER.to_string(), sink)],
        ..ProxyConfig::default()
    };
    let template = call.client;
    let with_code = move |code: u16| {
        let mut exchange = template.clone();
        let response = exchange.response.as_mut().expect("the call is answered");
        for (name, value) in &mut response.headers {
            if name == ":status" {
                *value = code.to_string();
            }
        }
        exchange
            .properties
            .set_int(&["response", "code"], i64::from(code), Phase::Response);
        exchange
    };
    let proxy = Proxy::start(shared_module(), config).expect("the sidecar starts");
    (proxy, clock, with_code)
}

//! Runs a deployment's filter configuration (pluginConfig JSON, VM environment, node metadata,
//! sink cluster name) in the Envoy-faithful test host against a loopback report receiver, and
//! returns what came out: reports, warning/error logs and VM statuses.
//!
//! It drives one sleep → httpbin call per worker, from the client side (outbound) or the server
//! side (inbound), or one call through an ambient waypoint, and lets two report intervals pass. It asserts nothing itself.

use std::net::SocketAddr;
use std::time::Duration;

use meshtap_report::Report;
use meshtap_tests::filter_wasm::shared_module;
use meshtap_tests::host::{Clock, LogLevel, NodeInfo, Proxy, ProxyConfig, VmStatus};
use meshtap_tests::sim::receiver::ReceivedPost;
use meshtap_tests::sim::{OneCall, ReportReceiver};

use crate::waypoint_call::{waypoint_node, waypoint_request, WaypointPeers};

const SCENARIO: &str = "
workloads:
  - {name: sleep-v1, namespace: apps, app: sleep, version: v1}
  - {name: httpbin-v1, namespace: apps, app: httpbin, version: v1, port: 8080}
calls:
  - {from: sleep-v1, to: httpbin-v1, count: 1}
";

/// Which side of the call the proxy sits on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Side {
    /// The caller's sidecar (outbound listener).
    Client,
    /// The callee's sidecar (inbound listener).
    Server,
    /// An ambient waypoint between them (`crate::waypoint_call`).
    Waypoint,
}

/// What a filter deployment needs to run.
pub struct PluginRun<'a> {
    pub root_id: &'a str,
    pub vm_id: &'a str,
    pub plugin_config: String,
    pub env: Vec<(String, String)>,
    /// `None`: the scenario workload's own node metadata.
    pub node: Option<NodeInfo>,
    pub sink_cluster: &'a str,
    /// The bearer token the receiver requires (`None`: any).
    pub accepted_token: Option<&'a str>,
    pub side: Side,
}

/// What came out of a run.
pub struct PluginOutcome {
    pub posts: Vec<ReceivedPost>,
    pub reports: Vec<Report>,
    /// Logs at warning level or above, as `level: message`.
    pub complaints: Vec<String>,
    pub statuses: Vec<VmStatus>,
    pub node: NodeInfo,
}

impl PluginOutcome {
    /// The latest report's total of `istio_requests_total` (0 without reports).
    pub fn requests_total(&self) -> f64 {
        self.reports
            .iter()
            .max_by_key(|r| r.sequence)
            .and_then(|r| {
                r.families
                    .iter()
                    .find(|f| f.name == meshtap_report::schema::REQUESTS_TOTAL)
            })
            .map(|f| f.series.iter().map(|s| s.value).sum())
            .unwrap_or(0.0)
    }
}

/// Runs `run` with two worker VMs, one call on each, and 25 s of (manual) time.
pub fn run_plugin(run: PluginRun<'_>) -> PluginOutcome {
    let receiver = ReportReceiver::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        run.accepted_token.map(String::from),
        false,
    )
    .expect("a loopback receiver starts");
    let call = OneCall::from_yaml(SCENARIO, 7, 120, 480);
    let (exchange, own_node) = match run.side {
        Side::Client => (call.client, call.client_node),
        Side::Server => (
            call.server.expect("the server sidecar sees the call"),
            call.server_node,
        ),
        Side::Waypoint => (
            waypoint_request(&WaypointPeers::template()),
            waypoint_node(),
        ),
    };
    let node = run.node.unwrap_or(own_node);
    let config = ProxyConfig {
        vm_id: run.vm_id.to_owned(),
        root_id: run.root_id.to_owned(),
        plugin_name: run.root_id.to_owned(),
        plugin_config: run.plugin_config,
        env: run.env,
        node: node.clone(),
        workers: 2,
        clock: Clock::manual_now(),
        clusters: vec![(run.sink_cluster.to_owned(), receiver.addr())],
        ..ProxyConfig::default()
    };
    let mut proxy = Proxy::start(shared_module(), config).expect("the proxy starts");
    for worker in 0..proxy.workers() {
        let outcome = proxy.run_http_stream(worker, &exchange);
        assert!(
            outcome.trapped.is_none(),
            "worker {worker} trapped: {outcome:?}"
        );
    }
    proxy.advance(Duration::from_secs(25));
    let complaints = proxy
        .logs()
        .into_iter()
        .filter(|l| l.level >= LogLevel::Warn)
        .map(|l| format!("{:?}: {}", l.level, l.message))
        .collect();
    PluginOutcome {
        posts: receiver.posts(),
        reports: receiver.reports(),
        complaints,
        statuses: proxy.vm_statuses(),
        node,
    }
}

//! The first call of a small fixed scenario as each sidecar sees it: the exchange the client
//! (outbound) and server (inbound) sidecars observe, the connection the client's network
//! filter would see for it, and both proxies' node metadata. The fixture
//! tests, the benchmark helper and the manifest checks drive single streams with it.
//!
//! Only builds values; running them through a proxy is the caller's business.

use crate::host::{HttpExchange, NodeInfo, TcpConnectionSpec};

use super::mesh::{CallInstance, ResolvedWorkload, Target};
use super::scenario::Scenario;

/// One call between the scenario's first two workloads.
pub struct OneCall {
    /// What the caller's sidecar sees.
    pub client: HttpExchange,
    /// What the callee's sidecar sees (`None` when the call never reaches it).
    pub server: Option<HttpExchange>,
    /// What the caller's sidecar's network filter sees when the call is carried as a TCP
    /// connection (the properties only; the data is the caller's choice).
    pub client_tcp: TcpConnectionSpec,
    pub client_node: NodeInfo,
    pub server_node: NodeInfo,
}

impl OneCall {
    /// The first outcome of the first call of `yaml` (at least two workloads and one call), with
    /// fixed latency and sizes; the call goes to the second workload, or to the call's
    /// `external` host through the PassthroughCluster (then no server sees it). Panics on an
    /// invalid scenario: callers pass fixed text.
    pub fn from_yaml(
        yaml: &str,
        latency_ms: u64,
        request_bytes: u64,
        response_bytes: u64,
    ) -> OneCall {
        let scenario = Scenario::from_yaml(yaml).expect("the fixed scenario parses");
        let from = ResolvedWorkload::resolve(&scenario, 0);
        let to = ResolvedWorkload::resolve(&scenario, 1);
        let call = &scenario.calls[0];
        let instance = CallInstance {
            call,
            outcome: &call.outcomes[0],
            latency_ms,
            request_bytes,
            response_bytes,
            request_wire_bytes: request_bytes,
            response_wire_bytes: response_bytes,
            request_messages: 1,
            response_messages: 1,
            mesh: &scenario.mesh,
            request_id: "6f1c2d3e-0000-4000-8000-000000000001".into(),
        };
        let target = match &call.external {
            Some(host) => Target::External(host),
            None => Target::Workload(&to),
        };
        OneCall {
            client: instance.client_view(&from, target),
            server: match target {
                Target::Workload(to) => instance.server_view(&from, to),
                Target::External(_) => None,
            },
            client_tcp: instance.tcp_client_view(&from, target),
            client_node: from.node(&scenario.mesh),
            server_node: to.node(&scenario.mesh),
        }
    }
}

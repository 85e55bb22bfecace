//! What a count-mode scenario should produce, computed from the scenario alone: request totals
//! per (workload, reporter), TCP connections and bytes and gRPC messages per (reporter, source
//! workload, destination workload), for end-to-end checks against a sink or Prometheus.
//!
//! Only counts; label values are the filter's business and are asserted by the filter tests.
//! Flows are keyed by the scenario's workload names (`unknown` for an external destination),
//! which is what each side's labels say when peer metadata is known.

use std::collections::BTreeMap;

use super::run::split_by_weight;
use super::scenario::{Call, Dataplane, Outcome, Protocol, Range, Scenario};

/// `(reporter, source workload, destination workload)`; reporter is `source` or `destination`.
pub type FlowKey = (String, String, String);

/// Expected TCP figures of one flow, named after Istio's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpTotals {
    /// `istio_tcp_connections_opened_total`.
    pub opened: u64,
    /// `istio_tcp_connections_closed_total` (every connection of a count-mode run closes).
    pub closed: u64,
    /// `istio_tcp_received_bytes_total`: client → server bytes.
    pub received_bytes: u64,
    /// `istio_tcp_sent_bytes_total`: server → client bytes.
    pub sent_bytes: u64,
}

/// Expected gRPC messages of one flow (`istio_request_messages_total`,
/// `istio_response_messages_total`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrpcMessages {
    pub request: u64,
    pub response: u64,
}

/// Why exact figures cannot be computed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpectError {
    #[error("call #{call}: `{field}` is a range; exact expectations need a fixed value")]
    NotFixed { call: usize, field: &'static str },
}

fn fixed(range: Range, call: usize, field: &'static str) -> Result<u64, ExpectError> {
    match range {
        Range::Fixed(value) => Ok(value),
        Range::Between(_) => Err(ExpectError::NotFixed { call, field }),
    }
}

/// Each call of `protocol` with how many instances of each outcome run, and the flow keys of
/// the sides that see them: `(call index, call, outcome, n, client key, server key)`.
type Share<'a> = (
    usize,
    &'a Call,
    &'a Outcome,
    u64,
    Option<FlowKey>,
    Option<FlowKey>,
);

fn shares(scenario: &Scenario, protocol: Protocol) -> Vec<Share<'_>> {
    let sidecar = |name: &str| scenario.dataplane_of(name) == Dataplane::Sidecar;
    let mut out = Vec::new();
    for (index, call) in scenario.calls.iter().enumerate() {
        if call.protocol != protocol {
            continue;
        }
        let destination = call.to.clone().unwrap_or_else(|| "unknown".into());
        let key = |reporter: &str| (reporter.to_string(), call.from.clone(), destination.clone());
        let weights: Vec<u64> = call.outcomes.iter().map(|o| u64::from(o.weight)).collect();
        let split = split_by_weight(call.count.unwrap_or(0), &weights);
        for (outcome, n) in call.outcomes.iter().zip(split).filter(|(_, n)| *n > 0) {
            let client = sidecar(&call.from).then(|| key("source"));
            let server = call
                .to
                .as_deref()
                .filter(|to| sidecar(to) && outcome.server_sees_it())
                .map(|_| key("destination"));
            out.push((index, call, outcome, n, client, server));
        }
    }
    out
}

/// `istio_requests_total` summed per `(workload, reporter)`, where reporter is `source` (the
/// caller's sidecar) or `destination` (the callee's sidecar). Workloads without a sidecar
/// report nothing; outcomes that never reach the server count on the client side only. TCP
/// calls are connections, not requests.
pub fn request_totals(scenario: &Scenario) -> BTreeMap<(String, String), u64> {
    let mut totals = BTreeMap::new();
    let sidecar = |name: &str| scenario.dataplane_of(name) == Dataplane::Sidecar;
    for call in scenario
        .calls
        .iter()
        .filter(|c| c.protocol != Protocol::Tcp)
    {
        let weights: Vec<u64> = call.outcomes.iter().map(|o| u64::from(o.weight)).collect();
        let shares = split_by_weight(call.count.unwrap_or(0), &weights);
        for (outcome, n) in call.outcomes.iter().zip(shares) {
            if n == 0 {
                continue;
            }
            if sidecar(&call.from) {
                *totals
                    .entry((call.from.clone(), "source".to_string()))
                    .or_default() += n;
            }
            if let Some(to) = call.to.as_deref().filter(|to| sidecar(to)) {
                if outcome.server_sees_it() {
                    *totals
                        .entry((to.to_string(), "destination".to_string()))
                        .or_default() += n;
                }
            }
        }
    }
    totals
}

/// TCP connections and bytes per flow. A connection that never reaches the server (a
/// client-only flag such as `UF`) opens and closes on the client side without data; a
/// plaintext connection's server side sees an `unknown` source.
pub fn tcp_totals(scenario: &Scenario) -> Result<BTreeMap<FlowKey, TcpTotals>, ExpectError> {
    let mut totals: BTreeMap<FlowKey, TcpTotals> = BTreeMap::new();
    for (index, call, outcome, n, client, server) in shares(scenario, Protocol::Tcp) {
        let reached = outcome.server_sees_it();
        // Without mTLS there is no TCP metadata exchange: the server side cannot name its
        // client (the client side still names the server from endpoint metadata).
        let plaintext = !call.mtls.unwrap_or(scenario.mesh.mtls)
            || scenario.dataplane_of(&call.from) != Dataplane::Sidecar;
        let server = server.map(|(reporter, from, to)| {
            let from = if plaintext {
                "unknown".to_string()
            } else {
                from
            };
            (reporter, from, to)
        });
        let received = fixed(call.request_bytes, index, "request_bytes")?;
        let sent = fixed(call.response_bytes, index, "response_bytes")?;
        for key in client.into_iter().chain(server) {
            let entry = totals.entry(key).or_default();
            entry.opened += n;
            entry.closed += n;
            if reached {
                entry.received_bytes += n * received;
                entry.sent_bytes += n * sent;
            }
        }
    }
    Ok(totals)
}

/// gRPC messages per flow: every side that sees a call sees its request messages; the
/// response carries messages only with HTTP status 200 and gRPC status OK.
pub fn grpc_message_totals(
    scenario: &Scenario,
) -> Result<BTreeMap<FlowKey, GrpcMessages>, ExpectError> {
    let mut totals: BTreeMap<FlowKey, GrpcMessages> = BTreeMap::new();
    for (index, call, outcome, n, client, server) in shares(scenario, Protocol::Grpc) {
        let request = fixed(call.request_messages, index, "request_messages")?;
        let response = fixed(call.response_messages, index, "response_messages")?;
        for key in client.into_iter().chain(server) {
            let entry = totals.entry(key).or_default();
            entry.request += n * request;
            if outcome.grpc_response_has_messages() {
                entry.response += n * response;
            }
        }
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookinfo_totals() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/bookinfo.yaml");
        let scenario = Scenario::load(std::path::Path::new(path)).unwrap();
        let totals = request_totals(&scenario);
        let get = |w: &str, r: &str| totals[&(w.to_string(), r.to_string())];
        assert_eq!(get("productpage-v1", "source"), 185);
        assert_eq!(get("reviews-v2", "source"), 36);
        assert_eq!(get("reviews-v2", "destination"), 36);
        assert_eq!(get("ratings-v1", "destination"), 76);
        assert_eq!(totals.len(), 8);
    }

    fn flow(reporter: &str, from: &str, to: &str) -> FlowKey {
        (reporter.into(), from.into(), to.into())
    }

    fn mixed() -> Scenario {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/mixed.yaml");
        Scenario::load(std::path::Path::new(path)).unwrap()
    }

    #[test]
    fn mixed_request_totals_leave_tcp_out() {
        let totals = request_totals(&mixed());
        let get = |w: &str, r: &str| totals[&(w.to_string(), r.to_string())];
        assert_eq!(get("productpage-v1", "source"), 30 + 20);
        assert_eq!(get("reviews-v1", "source"), 5);
        assert_eq!(get("reviews-v1", "destination"), 30);
        assert_eq!(get("details-v1", "destination"), 20);
        assert_eq!(get("ratings-v1", "destination"), 5);
        assert_eq!(totals.len(), 5);
    }

    #[test]
    fn mixed_tcp_totals() {
        let totals = tcp_totals(&mixed()).unwrap();
        let tcp = |totals: u64, received: u64, sent: u64| TcpTotals {
            opened: totals,
            closed: totals,
            received_bytes: received,
            sent_bytes: sent,
        };
        // mTLS, 6 connections of 4000 up / 12000 down, 1 of them UF (client side only, no data).
        assert_eq!(
            totals[&flow("source", "reviews-v1", "mysql-v1")],
            tcp(6, 5 * 4000, 5 * 12000)
        );
        assert_eq!(
            totals[&flow("destination", "reviews-v1", "mysql-v1")],
            tcp(5, 5 * 4000, 5 * 12000)
        );
        // Plaintext to a sidecar: both sides count; the server cannot name its client.
        assert_eq!(
            totals[&flow("source", "ratings-v1", "redis-v1")],
            tcp(4, 4 * 300, 4 * 900)
        );
        assert_eq!(
            totals[&flow("destination", "unknown", "redis-v1")],
            tcp(4, 4 * 300, 4 * 900)
        );
        // PassthroughCluster: the client side only.
        assert_eq!(
            totals[&flow("source", "productpage-v1", "unknown")],
            tcp(3, 3 * 512, 3 * 2048)
        );
        assert_eq!(totals.len(), 5);
    }

    #[test]
    fn mixed_grpc_messages() {
        let totals = grpc_message_totals(&mixed()).unwrap();
        let messages = |request: u64, response: u64| GrpcMessages { request, response };
        // Unary: 20 calls, 2 of them UNAVAILABLE (no response messages).
        assert_eq!(
            totals[&flow("source", "productpage-v1", "details-v1")],
            messages(20, 18)
        );
        assert_eq!(
            totals[&flow("destination", "productpage-v1", "details-v1")],
            messages(20, 18)
        );
        // Streaming: 5 calls of 3 request and 8 response messages.
        assert_eq!(
            totals[&flow("source", "reviews-v1", "ratings-v1")],
            messages(15, 40)
        );
        assert_eq!(
            totals[&flow("destination", "reviews-v1", "ratings-v1")],
            messages(15, 40)
        );
        assert_eq!(totals.len(), 4);
    }

    #[test]
    fn ranges_have_no_exact_expectation() {
        let scenario = Scenario::from_yaml(
            "
workloads: [{name: a, app: a}, {name: b, app: b}]
calls:
  - {from: a, to: b, count: 2, protocol: tcp, request_bytes: [1, 9]}
",
        )
        .unwrap();
        assert_eq!(
            tcp_totals(&scenario),
            Err(ExpectError::NotFixed {
                call: 0,
                field: "request_bytes"
            })
        );
        assert!(grpc_message_totals(&scenario).unwrap().is_empty());
    }
}

//! Istio's 25 request-metric label values (native stats filter, Istio 1.18+), computed from a
//! [`RequestFacts`] and the [`LocalNode`].
//!
//! Owns the rules: which side supplies which label, `unknown`/`latest` defaults for peers, raw
//! local values, destination-service fallbacks and the passthrough/blackhole overrides. It writes
//! into a reused [`LabelValues`] scratch so the steady state allocates nothing. It must not read
//! from the host nor aggregate.

use std::fmt::Write;

use meshtap_report::schema::{http::*, Reporter, HTTP_LABELS, PEER_LABELS};

use crate::record::facts::RequestFacts;
use crate::record::flags::write_flags;
use crate::record::node::LocalNode;
use crate::record::peer::{namespace_from_san, PeerInfo};

/// Number of labels of the request metrics.
pub(crate) const LABEL_COUNT: usize = HTTP_LABELS.len();

const UNKNOWN: &str = "unknown";
const LATEST: &str = "latest";

/// Cluster names that name the destination service themselves.
const SELF_NAMING_CLUSTERS: [&str; 5] = [
    "BlackHoleCluster",
    "PassthroughCluster",
    "InboundPassthroughCluster",
    "InboundPassthroughClusterIpv4",
    "InboundPassthroughClusterIpv6",
];

/// The 25 label values in Istio's order; reused between requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelValues(pub [String; LABEL_COUNT]);

impl LabelValues {
    pub(crate) fn get(&self, index: usize) -> &str {
        &self.0[index]
    }

    /// The 20 peer labels, which the gRPC message families carry alone.
    pub(crate) fn peer_values(&self) -> Vec<&str> {
        self.0[..PEER_LABELS.len()]
            .iter()
            .map(String::as_str)
            .collect()
    }

    /// Istio's 23 TCP labels from labels computed for a connection: the peer labels,
    /// `request_protocol="tcp"`, the response flags and the security policy.
    pub(crate) fn tcp_values(&self) -> Vec<&str> {
        let mut values = self.peer_values();
        values.push("tcp");
        values.push(&self.0[RESPONSE_FLAGS]);
        values.push(&self.0[CONNECTION_SECURITY_POLICY]);
        values
    }

    fn set(&mut self, index: usize, value: &str) {
        let slot = &mut self.0[index];
        slot.clear();
        slot.push_str(value);
    }

    fn set_or(&mut self, index: usize, value: &str, default: &str) {
        self.set(index, if value.is_empty() { default } else { value });
    }
}

/// How the request's sides map to the reporter.
#[derive(Debug, Clone, Copy)]
pub struct LabelRules {
    pub reporter: Reporter,
    /// Use `:authority` as destination service when the cluster names none (client side only).
    pub host_header_fallback: bool,
}

/// Computes the labels of one request into `out`.
pub fn compute(local: &LocalNode, rules: LabelRules, facts: &RequestFacts, out: &mut LabelValues) {
    out.set(REPORTER, rules.reporter.as_str());
    match rules.reporter {
        Reporter::Source => {
            local_source(local, facts.upstream_local_san, out);
            peer_destination(facts, out);
            out.set(CONNECTION_SECURITY_POLICY, UNKNOWN);
        }
        Reporter::Destination => {
            peer_source(facts, out);
            local_destination(local, facts.downstream_local_san, out);
            server_security(facts, out);
        }
        Reporter::Waypoint => {
            peer_source(facts, out);
            waypoint_destination(facts, out);
            server_security(facts, out);
        }
    }
    destination_service(local, rules, facts, out);
    request_outcome(facts, out);
}

fn local_source(local: &LocalNode, local_san: &str, out: &mut LabelValues) {
    out.set(SOURCE_WORKLOAD, &local.workload);
    out.set(SOURCE_CANONICAL_SERVICE, &local.canonical_service);
    out.set(SOURCE_CANONICAL_REVISION, &local.canonical_revision);
    out.set(SOURCE_WORKLOAD_NAMESPACE, &local.namespace);
    out.set_or(SOURCE_PRINCIPAL, local_san, UNKNOWN);
    out.set(SOURCE_APP, &local.app);
    out.set(SOURCE_VERSION, &local.version);
    out.set(SOURCE_CLUSTER, &local.cluster_id);
}

fn local_destination(local: &LocalNode, local_san: &str, out: &mut LabelValues) {
    out.set(DESTINATION_WORKLOAD, &local.workload);
    out.set(DESTINATION_WORKLOAD_NAMESPACE, &local.namespace);
    out.set_or(DESTINATION_PRINCIPAL, local_san, UNKNOWN);
    out.set(DESTINATION_APP, &local.app);
    out.set(DESTINATION_VERSION, &local.version);
    out.set(DESTINATION_CANONICAL_SERVICE, &local.canonical_service);
    out.set(DESTINATION_CANONICAL_REVISION, &local.canonical_revision);
    out.set(DESTINATION_CLUSTER, &local.cluster_id);
}

const EMPTY_PEER: &PeerInfo = &PeerInfo {
    workload: String::new(),
    namespace: String::new(),
    cluster: String::new(),
    canonical_service: String::new(),
    canonical_revision: String::new(),
    app: String::new(),
    version: String::new(),
    identity: String::new(),
};

fn workload_namespace<'a>(san: &'a str, peer: &'a PeerInfo) -> &'a str {
    namespace_from_san(san).unwrap_or(&peer.namespace)
}

fn peer_source(facts: &RequestFacts, out: &mut LabelValues) {
    let peer = facts.downstream_peer.unwrap_or(EMPTY_PEER);
    let san = facts.downstream_peer_san;
    out.set_or(SOURCE_WORKLOAD, &peer.workload, UNKNOWN);
    out.set_or(SOURCE_CANONICAL_SERVICE, &peer.canonical_service, UNKNOWN);
    out.set_or(SOURCE_CANONICAL_REVISION, &peer.canonical_revision, LATEST);
    out.set_or(
        SOURCE_WORKLOAD_NAMESPACE,
        workload_namespace(san, peer),
        UNKNOWN,
    );
    out.set_or(SOURCE_PRINCIPAL, san, UNKNOWN);
    out.set_or(SOURCE_APP, &peer.app, UNKNOWN);
    out.set_or(SOURCE_VERSION, &peer.version, UNKNOWN);
    out.set_or(SOURCE_CLUSTER, &peer.cluster, UNKNOWN);
}

fn peer_destination(facts: &RequestFacts, out: &mut LabelValues) {
    let peer = facts.upstream_peer.unwrap_or(EMPTY_PEER);
    let san = facts.upstream_peer_san;
    let principal = if san.is_empty() { &peer.identity } else { san };
    set_destination(out, peer, workload_namespace(san, peer), principal, LATEST);
}

/// The destination at a waypoint: the upstream peer as the waypoint's workload discovery found
/// it for the selected endpoint, with no certificate involved. Follows the `ServerGateway` case of
/// `IstioStatsFilter::populatePeerInfo` (istio/proxy `istio_stats.cc`): namespace from the peer
/// (not from a SAN), principal = the peer's `identity`, revision defaulting to `unknown`.
fn waypoint_destination(facts: &RequestFacts, out: &mut LabelValues) {
    let peer = facts.upstream_peer.unwrap_or(EMPTY_PEER);
    set_destination(out, peer, &peer.namespace, &peer.identity, UNKNOWN);
}

/// The destination workload labels of `peer`, with the namespace and principal the reporter
/// found and the revision used when the peer has none.
fn set_destination(
    out: &mut LabelValues,
    peer: &PeerInfo,
    namespace: &str,
    principal: &str,
    revision_default: &'static str,
) {
    out.set_or(DESTINATION_WORKLOAD, &peer.workload, UNKNOWN);
    out.set_or(DESTINATION_WORKLOAD_NAMESPACE, namespace, UNKNOWN);
    out.set_or(DESTINATION_PRINCIPAL, principal, UNKNOWN);
    out.set_or(DESTINATION_APP, &peer.app, UNKNOWN);
    out.set_or(DESTINATION_VERSION, &peer.version, UNKNOWN);
    out.set_or(
        DESTINATION_CANONICAL_SERVICE,
        &peer.canonical_service,
        UNKNOWN,
    );
    out.set_or(
        DESTINATION_CANONICAL_REVISION,
        &peer.canonical_revision,
        revision_default,
    );
    out.set_or(DESTINATION_CLUSTER, &peer.cluster, UNKNOWN);
}

fn server_security(facts: &RequestFacts, out: &mut LabelValues) {
    let mtls = !facts.downstream_peer_san.is_empty() && !facts.downstream_local_san.is_empty();
    out.set(
        CONNECTION_SECURITY_POLICY,
        if mtls { "mutual_tls" } else { "none" },
    );
}

fn destination_service(
    local: &LocalNode,
    rules: LabelRules,
    facts: &RequestFacts,
    out: &mut LabelValues,
) {
    let server = rules.reporter == Reporter::Destination;
    let services = facts.services;
    let service_host = services.map(|s| s.host.as_str()).unwrap_or_default();
    let header_host = match facts.authority {
        Some(a) if rules.host_header_fallback && !server && !a.is_empty() => a,
        _ => "",
    };
    let (host, name) = if !service_host.is_empty() {
        let name = match services.map(|s| s.name.as_str()) {
            Some(n) if !n.is_empty() => n,
            _ => service_host.split('.').next().unwrap_or(service_host),
        };
        (service_host, name)
    } else if !header_host.is_empty() {
        (header_host, header_host)
    } else if server {
        (
            local.canonical_service.as_str(),
            local.canonical_service.as_str(),
        )
    } else {
        ("", services.map(|s| s.name.as_str()).unwrap_or_default())
    };
    out.set_or(DESTINATION_SERVICE, host, UNKNOWN);
    out.set_or(DESTINATION_SERVICE_NAME, name, UNKNOWN);

    if let Some(cluster) = facts
        .cluster_name
        .filter(|c| SELF_NAMING_CLUSTERS.contains(c))
    {
        out.set(DESTINATION_SERVICE_NAME, cluster);
    }
    match facts.route_name {
        Some("block_all") => out.set(DESTINATION_SERVICE_NAME, "BlackHoleCluster"),
        Some("allow_any") => out.set(DESTINATION_SERVICE_NAME, "PassthroughCluster"),
        _ => {}
    }

    let service_namespace = services.map(|s| s.namespace.as_str()).unwrap_or_default();
    // A waypoint has no fallback: `services[0].namespace` or `unknown`.
    let fallback_namespace = match rules.reporter {
        Reporter::Destination => local.namespace.as_str(),
        Reporter::Source => facts
            .upstream_peer
            .map(|p| p.namespace.as_str())
            .unwrap_or_default(),
        Reporter::Waypoint => "",
    };
    let namespace = if service_namespace.is_empty() {
        fallback_namespace
    } else {
        service_namespace
    };
    out.set_or(DESTINATION_SERVICE_NAMESPACE, namespace, UNKNOWN);
}

fn request_outcome(facts: &RequestFacts, out: &mut LabelValues) {
    out.set(REQUEST_PROTOCOL, if facts.grpc { "grpc" } else { "http" });
    let code = &mut out.0[RESPONSE_CODE];
    code.clear();
    let _ = write!(code, "{}", facts.response_code.unwrap_or(0));
    let grpc_status = &mut out.0[GRPC_RESPONSE_STATUS];
    grpc_status.clear();
    if let (true, Some(status)) = (facts.grpc, facts.grpc_status) {
        let _ = write!(grpc_status, "{status}");
    }
    let flags = &mut out.0[RESPONSE_FLAGS];
    flags.clear();
    write_flags(flags, facts.response_flags);
}

#[cfg(test)]
mod tests;
